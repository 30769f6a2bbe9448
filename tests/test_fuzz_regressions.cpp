// FuzzRegressions: inputs that once crashed a reader (found with the libFuzzer targets in
// tests/fuzz/, ./scripts/fuzz) and now give a clean tapegrad::Error. Each input is embedded (or,
// when large, generated) here so the regular suite keeps them fixed without clang or libFuzzer.
//
// IoInMemory: the in-memory entry points the fuzzers drive (read_idx_bytes,
// read_safetensors_bytes, load_into_bytes) agree with the file readers, including the gzip
// details the IDX reader decompresses itself.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <bit>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/io/idx.hpp"
#include "tapegrad/io/safetensors.hpp"

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;
using tapegrad::io::FormatError;
using tapegrad::io::NamedTensors;

// Expects `read` to throw a tapegrad::Error (and nothing else) mentioning `fragment`.
template <typename Read>
void expect_clean_error(Read read, const std::string& fragment) {
  try {
    read();
    ADD_FAILURE() << "no error";
  } catch (const tapegrad::Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
        << "expected '" << fragment << "' in: " << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a tapegrad::Error: " << e.what();
  }
}

// A safetensors file: the 8-byte little-endian header length, `header`, then `buffer`.
Bytes safetensors_bytes(const std::string& header, const Bytes& buffer) {
  Bytes bytes(8);
  for (std::size_t b = 0; b < 8; ++b) {
    bytes[b] = static_cast<std::uint8_t>(static_cast<std::uint64_t>(header.size()) >> (8 * b));
  }
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.insert(bytes.end(), buffer.begin(), buffer.end());
  return bytes;
}

Bytes gzip(const Bytes& bytes) {
  z_stream stream{};
  EXPECT_EQ(deflateInit2(&stream, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out(deflateBound(&stream, static_cast<uLong>(bytes.size())) + 32);
  stream.next_in = const_cast<Bytef*>(bytes.data());
  stream.avail_in = static_cast<uInt>(bytes.size());
  stream.next_out = out.data();
  stream.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("tapegrad_fuzzreg_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() { fs::remove_all(path_); }

  fs::path file(const std::string& name) const { return path_ / name; }
  fs::path write(const std::string& name, const Bytes& bytes) const {
    fs::path path = file(name);
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    return path;
  }

 private:
  fs::path path_;
};

// --- FuzzRegressions -------------------------------------------------------------------------

// A "shape" of brackets nested 262144 deep is legal JSON well under the 100 MB header limit.
// The error message used to print the shape with json::dump(), which recurses once per level:
// a stack overflow (SIGSEGV) instead of a FormatError. Found by running the fuzz_safetensors
// target on a generated input (the nesting needs more than the fuzzer's 4 KB inputs).
TEST(FuzzRegressions, SafetensorsDeeplyNestedShapeIsAnErrorNotAStackOverflow) {
  constexpr std::size_t kDepth = std::size_t{1} << 18;  // plenty to overflow an 8 MB stack
  const std::string header = R"({"b":{"dtype":"F64","shape":[1,)" + std::string(kDepth, '[') +
                             std::string(kDepth, ']') + R"(],"data_offsets":[0,8]}})";
  const Bytes bytes = safetensors_bytes(header, Bytes(8, 0));
  expect_clean_error([&] { (void)tapegrad::io::read_safetensors_bytes(bytes, "deep"); },
                     "shape [1, [...]] has an entry that is not a non-negative integer");
  NamedTensors params{{"b", tapegrad::zeros({1})}};
  expect_clean_error([&] { tapegrad::io::load_into_bytes(bytes, "deep", params); },
                     "not a non-negative integer");
  const TempDir dir;
  const fs::path path = dir.write("deep.safetensors", bytes);
  expect_clean_error([&] { tapegrad::io::load_into(path, params); }, path.string());
}

// The message shows at most 8 entries of a long shape, and cuts long strings.
TEST(FuzzRegressions, SafetensorsShapeInMessagesIsBounded) {
  const std::string long_string(1000, 'x');
  std::string shape = "[\"" + long_string + "\"";
  for (int i = 0; i < 1000; ++i) shape += ",1";
  shape += "]";
  const Bytes bytes = safetensors_bytes(
      R"({"b":{"dtype":"F64","shape":)" + shape + R"(,"data_offsets":[0,8]}})", Bytes(8, 0));
  try {
    (void)tapegrad::io::read_safetensors_bytes(bytes, "long");
    ADD_FAILURE() << "no error";
  } catch (const FormatError& e) {
    const std::string message = e.what();
    EXPECT_NE(
        message.find(R"(shape ["xxxxxxxxxxxxxxxx...", 1, 1, 1, 1, 1, 1, 1, ... (1001 entries)])"),
        std::string::npos)
        << message;
    EXPECT_LT(message.size(), 300u) << message;
  }
}

// --- IoInMemory ------------------------------------------------------------------------------

Bytes idx_ubyte(const std::vector<std::uint32_t>& dims, const Bytes& payload) {
  Bytes bytes{0, 0, 0x08, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8)
      bytes.push_back(static_cast<std::uint8_t>(d >> shift));
  }
  return concat(bytes, payload);
}

TEST(IoInMemory, ReadIdxBytesMatchesReadIdx) {
  const Bytes plain = idx_ubyte({2, 3}, Bytes{1, 2, 3, 4, 5, 255});
  const TempDir dir;
  for (const Bytes& bytes : {plain, gzip(plain)}) {
    const tapegrad::io::IdxData from_memory = tapegrad::io::read_idx_bytes(bytes, "mem.idx");
    const tapegrad::io::IdxData from_file = tapegrad::io::read_idx(dir.write("f.idx", bytes));
    EXPECT_EQ(from_memory.shape, tapegrad::Shape({2, 3}));
    EXPECT_EQ(from_memory.shape, from_file.shape);
    EXPECT_EQ(from_memory.values, from_file.values);
    EXPECT_EQ(from_memory.values, (tapegrad::Values{1, 2, 3, 4, 5, 255}));
  }
  expect_clean_error(
      [&] {
        (void)tapegrad::io::read_idx_bytes(Bytes{0, 0, 8}, "short.idx");
      },
      "read_idx: short.idx: file is too short");
  expect_clean_error([] { (void)tapegrad::io::read_idx_bytes({}, "empty.idx"); }, "empty.idx");
}

// gzip details the reader handles itself, as zlib's gzread (and gzip -d) do: members back to back
// form one stream; after a complete member, bytes that do not start another are ignored; a member
// cut short is an error.
TEST(IoInMemory, GzipMembersAndTrailingBytes) {
  const Bytes plain = idx_ubyte({5}, Bytes{9, 8, 7, 6, 5});
  const Bytes first(plain.begin(), plain.begin() + 10);  // the header and 2 elements
  const Bytes rest(plain.begin() + 10, plain.end());
  const tapegrad::Values want{9, 8, 7, 6, 5};
  const Bytes members = concat(gzip(first), gzip(rest));
  EXPECT_EQ(tapegrad::io::read_idx_bytes(members, "members.gz").values, want);
  EXPECT_EQ(tapegrad::io::read_idx_bytes(concat(members, Bytes{0, 0, 0}), "padded.gz").values,
            want);
  EXPECT_EQ(tapegrad::io::read_idx_bytes(concat(gzip(plain), gzip({})), "empty-member.gz").values,
            want);
  // A second member that is cut short, or corrupt.
  const Bytes second = gzip(rest);
  expect_clean_error(
      [&] {
        (void)tapegrad::io::read_idx_bytes(
            concat(gzip(first), Bytes(second.begin(), second.end() - 3)), "cut.gz");
      },
      "truncated");
  Bytes bad = second;
  bad[bad.size() - 6] ^= 0xFF;  // the CRC-32
  expect_clean_error(
      [&] { (void)tapegrad::io::read_idx_bytes(concat(gzip(first), bad), "crc.gz"); },
      "corrupt gzip data");
  // Too few elements across all members is still a truncated payload.
  expect_clean_error([&] { (void)tapegrad::io::read_idx_bytes(gzip(first), "short.gz"); },
                     "payload is truncated");
}

// From a file the reader sees the raw bytes through a 128 KiB read-ahead buffer; a member that
// ends right at (or one byte before) the buffer's end must still find the next one.
TEST(IoInMemory, GzipMemberBoundaryAtTheReadAheadEdge) {
  constexpr std::size_t kReadAhead = std::size_t{1} << 17;
  std::uint64_t state = 88172645463325252u;
  Bytes noise(kReadAhead);  // incompressible: deflate stores it, so sizes are predictable
  for (auto& byte : noise) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    byte = static_cast<std::uint8_t>(state);
  }
  const Bytes tail{1, 2, 3};
  const auto first_member = [&](std::size_t n) {
    return gzip(concat(idx_ubyte({static_cast<std::uint32_t>(n + tail.size())}, {}),
                       Bytes(noise.begin(), noise.begin() + static_cast<std::ptrdiff_t>(n))));
  };
  // Stored blocks add a fixed overhead per block; measure it near the edge, then probe around.
  const std::size_t probe = kReadAhead - 200;
  const std::size_t overhead = first_member(probe).size() - probe;
  const TempDir dir;
  int edges = 0;
  for (std::size_t n = kReadAhead - overhead - 6; n <= kReadAhead - overhead + 2; ++n) {
    const Bytes compressed = first_member(n);
    if (compressed.size() + 2 < kReadAhead || compressed.size() > kReadAhead) continue;
    ++edges;
    const fs::path path = dir.write("edge.idx.gz", concat(compressed, gzip(tail)));
    const tapegrad::io::IdxData data = tapegrad::io::read_idx(path);
    ASSERT_EQ(data.values.size(), n + tail.size());
    EXPECT_EQ(data.values[n - 1], noise[n - 1]);
    EXPECT_EQ(data.values.back(), 3.0);
  }
  EXPECT_EQ(edges, 3);  // the first member ends 2 bytes, 1 byte and 0 bytes before the edge
}

TEST(IoInMemory, SafetensorsBytesMatchFiles) {
  const TempDir dir;
  const fs::path path = dir.file("model.safetensors");
  const NamedTensors saved{{"w", tapegrad::from_values({1, 2, 3, 4, 5, 6}, {2, 3})},
                           {"b", tapegrad::from_values({-1, 0.5, 7}, {3})}};
  tapegrad::io::save_safetensors(path, saved, {{"epoch", "3"}});
  std::ifstream in(path, std::ios::binary);
  const Bytes bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

  const tapegrad::io::SafetensorsFile file = tapegrad::io::read_safetensors_bytes(bytes, "mem");
  ASSERT_EQ(file.tensors.size(), 2u);
  EXPECT_EQ(file.metadata.at("epoch"), "3");
  EXPECT_EQ(file.at("w").shape(), tapegrad::Shape({2, 3}));
  const auto values = file.at("b").values();
  EXPECT_EQ(std::vector<double>(values.begin(), values.end()), (std::vector<double>{-1, 0.5, 7}));

  NamedTensors params{{"w", tapegrad::zeros({2, 3})}, {"b", tapegrad::zeros({3})}};
  tapegrad::io::load_into_bytes(bytes, "mem", params);
  EXPECT_EQ(params[1].second.values()[2], 7.0);

  // Errors name the buffer as the file readers name the path; a failed load changes nothing.
  NamedTensors wrong{{"w", tapegrad::zeros({3, 2})}, {"b", tapegrad::zeros({3})}};
  expect_clean_error([&] { tapegrad::io::load_into_bytes(bytes, "model.bin", wrong); },
                     "load_into: model.bin: does not match the parameters");
  EXPECT_EQ(wrong[1].second.values()[2], 0.0);
  const Bytes cut(bytes.begin(), bytes.end() - 1);
  expect_clean_error([&] { (void)tapegrad::io::read_safetensors_bytes(cut, "cut"); },
                     "read_safetensors: cut:");
}

}  // namespace
