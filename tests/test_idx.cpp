// IdxReader: IDX files (MNIST's format), plain and gzip, every element type, and every way a file
// can lie: each is a FormatError naming the file, never a crash or a huge allocation.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include <bit>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "tapegrad/core/error.hpp"
#include "tapegrad/io/idx.hpp"

namespace {

namespace fs = std::filesystem;
using tapegrad::Shape;
using tapegrad::io::FormatError;
using tapegrad::io::IdxData;
using tapegrad::io::IdxType;
using tapegrad::io::read_idx;
using Bytes = std::vector<unsigned char>;

void put_be32(Bytes& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<unsigned char>(v >> shift));
}
void put_be64(Bytes& out, std::uint64_t v) {
  put_be32(out, static_cast<std::uint32_t>(v >> 32));
  put_be32(out, static_cast<std::uint32_t>(v));
}

Bytes header(std::uint8_t type, const std::vector<std::uint32_t>& dims) {
  Bytes out = {0, 0, type, static_cast<unsigned char>(dims.size())};
  for (std::uint32_t d : dims) put_be32(out, d);
  return out;
}

Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// One test case per element type: the payload bytes and the values they must decode to.
struct TypeCase {
  const char* name;
  IdxType type;
  Bytes payload;
  std::vector<double> values;
};

std::vector<TypeCase> type_cases() {
  std::vector<TypeCase> cases;
  cases.push_back({"ubyte", IdxType::UByte, {0, 1, 127, 128, 255, 42}, {0, 1, 127, 128, 255, 42}});
  cases.push_back(
      {"sbyte", IdxType::SByte, {0x80, 0xFF, 0x00, 0x7F, 0x01, 0xFE}, {-128, -1, 0, 127, 1, -2}});
  {
    TypeCase c{"int16", IdxType::Int16, {}, {-32768, -1, 0, 258, 32767, -300}};
    for (double v : c.values) {
      const auto raw = static_cast<std::uint16_t>(static_cast<std::int16_t>(v));
      c.payload.push_back(static_cast<unsigned char>(raw >> 8));
      c.payload.push_back(static_cast<unsigned char>(raw));
    }
    cases.push_back(c);
  }
  {
    TypeCase c{"int32", IdxType::Int32, {}, {-2147483648.0, -1, 0, 16909060, 2147483647, 7}};
    for (double v : c.values) {
      put_be32(c.payload, static_cast<std::uint32_t>(static_cast<std::int32_t>(v)));
    }
    cases.push_back(c);
  }
  {
    const std::vector<float> floats = {1.5f, -0.0f, 3.4e38f, 1e-45f, -0.1f, 0.0f};
    TypeCase c{"float32", IdxType::Float32, {}, {}};
    for (float f : floats) {
      put_be32(c.payload, std::bit_cast<std::uint32_t>(f));
      c.values.push_back(f);
    }
    cases.push_back(c);
  }
  {
    TypeCase c{"float64",
               IdxType::Float64,
               {},
               {1e-308, -0.0, 1.7976931348623157e308, 4.9e-324, -2.5, 3.141592653589793}};
    for (double d : c.values) put_be64(c.payload, std::bit_cast<std::uint64_t>(d));
    cases.push_back(c);
  }
  return cases;
}

class IdxReader : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tapegrad_idx_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write_plain(const std::string& name, const Bytes& bytes) {
    fs::path path = dir_ / name;
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    EXPECT_TRUE(out.good());
    return path;
  }

  fs::path write_gzip(const std::string& name, const Bytes& bytes) {
    fs::path path = dir_ / name;
    gzFile gz = gzopen(path.c_str(), "wb");
    EXPECT_NE(gz, nullptr);
    if (!bytes.empty()) {
      EXPECT_EQ(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())),
                static_cast<int>(bytes.size()));
    }
    EXPECT_EQ(gzclose(gz), Z_OK);
    return path;
  }

  static Bytes file_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  // Expects read_idx(path) to throw a FormatError whose message names the file and contains
  // `fragment`.
  static void expect_format_error(const fs::path& path, const std::string& fragment,
                                  std::uint64_t max_elements = tapegrad::io::kIdxMaxElements) {
    try {
      (void)read_idx(path, max_elements);
      ADD_FAILURE() << "no error reading " << path;
    } catch (const FormatError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(path.string()), std::string::npos) << message;
      EXPECT_NE(message.find(fragment), std::string::npos)
          << "expected '" << fragment << "' in: " << message;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "wrong exception type: " << e.what();
    }
  }

  fs::path dir_;
};

void expect_same_bits(std::span<const double> got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(std::bit_cast<std::uint64_t>(got[i]), std::bit_cast<std::uint64_t>(want[i]))
        << "element " << i << ": " << got[i] << " vs " << want[i];
  }
}

TEST_F(IdxReader, ReadsEveryTypePlainAndGzip) {
  for (const TypeCase& c : type_cases()) {
    SCOPED_TRACE(c.name);
    const Bytes bytes = concat(header(static_cast<std::uint8_t>(c.type), {2, 3}), c.payload);
    for (const fs::path& path : {write_plain(std::string(c.name) + ".idx", bytes),
                                 write_gzip(std::string(c.name) + ".idx.gz", bytes)}) {
      const IdxData data = read_idx(path);
      EXPECT_EQ(data.type, c.type);
      EXPECT_EQ(data.shape, (Shape{2, 3}));
      expect_same_bits(data.values, c.values);
    }
  }
}

TEST_F(IdxReader, ElementSizes) {
  EXPECT_EQ(tapegrad::io::idx_element_size(IdxType::UByte), 1u);
  EXPECT_EQ(tapegrad::io::idx_element_size(IdxType::SByte), 1u);
  EXPECT_EQ(tapegrad::io::idx_element_size(IdxType::Int16), 2u);
  EXPECT_EQ(tapegrad::io::idx_element_size(IdxType::Int32), 4u);
  EXPECT_EQ(tapegrad::io::idx_element_size(IdxType::Float32), 4u);
  EXPECT_EQ(tapegrad::io::idx_element_size(IdxType::Float64), 8u);
}

TEST_F(IdxReader, RowMajorTensorOfManyDimensions) {
  // [2, 3, 4] ubyte, element (i, j, k) = 12 i + 4 j + k, plus a rank-8 file of 2^8 elements.
  Bytes payload;
  for (int v = 0; v < 24; ++v) payload.push_back(static_cast<unsigned char>(v));
  const fs::path path = write_gzip("cube.idx3.gz", concat(header(0x08, {2, 3, 4}), payload));
  const tapegrad::Tensor t = tapegrad::io::read_idx_tensor(path);
  EXPECT_EQ(t.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(t.at({1, 2, 3}), 23.0);
  EXPECT_EQ(t.at({1, 0, 2}), 14.0);
  EXPECT_TRUE(t.is_leaf());
  EXPECT_FALSE(t.requires_grad());

  const Bytes eight(256, 7);
  const IdxData rank8 =
      read_idx(write_plain("rank8.idx", concat(header(0x08, {2, 2, 2, 2, 2, 2, 2, 2}), eight)));
  EXPECT_EQ(rank8.shape.rank(), 8u);
  EXPECT_EQ(rank8.values.size(), 256u);
}

TEST_F(IdxReader, ZeroSizedDimensionIsAnEmptyTensor) {
  for (const fs::path& path : {write_plain("empty.idx", header(0x08, {0, 28, 28})),
                               write_gzip("empty.idx.gz", header(0x08, {0, 28, 28}))}) {
    const IdxData data = read_idx(path);
    EXPECT_EQ(data.shape, (Shape{0, 28, 28}));
    EXPECT_TRUE(data.values.empty());
  }
}

TEST_F(IdxReader, LargerFileAcrossManyChunks) {
  // 3 MiB of payload crosses the reader's 1 MiB chunks; gzip makes it a multi-block stream.
  const std::uint32_t n = 3u << 20;
  Bytes payload(n);
  for (std::uint32_t i = 0; i < n; ++i)
    payload[i] = static_cast<unsigned char>(i * 2654435761u >> 24);
  const Bytes bytes = concat(header(0x08, {n}), payload);
  for (const fs::path& path : {write_plain("big.idx", bytes), write_gzip("big.idx.gz", bytes)}) {
    const IdxData data = read_idx(path);
    ASSERT_EQ(data.values.size(), n);
    EXPECT_EQ(data.values[0], payload[0]);
    EXPECT_EQ(data.values[n / 2 + 1], payload[n / 2 + 1]);
    EXPECT_EQ(data.values[n - 1], payload[n - 1]);
  }
}

TEST_F(IdxReader, MissingFileNamesIt) {
  expect_format_error(dir_ / "no-such-file.idx", "cannot open");
}

TEST_F(IdxReader, WrongMagic) {
  expect_format_error(write_plain("magic.idx", concat(Bytes{0x01, 0x00, 0x08, 0x01}, Bytes(5, 0))),
                      "bad magic");
  // A PNG is not an IDX file either.
  expect_format_error(write_plain("png.idx", Bytes{0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a}),
                      "bad magic");
  expect_format_error(write_gzip("magic.idx.gz", Bytes{0x00, 0x01, 0x08, 0x01, 0, 0, 0, 0}),
                      "bad magic");
}

TEST_F(IdxReader, UnknownElementType) {
  for (std::uint8_t type : {0x00, 0x07, 0x0A, 0x0F, 0xFF}) {
    expect_format_error(write_plain("type.idx", concat(header(type, {1}), Bytes(8, 0))),
                        "unknown element type");
  }
}

TEST_F(IdxReader, DimensionCountOutsideOneToEight) {
  expect_format_error(write_plain("zero.idx", Bytes{0, 0, 0x08, 0}), "dimension count 0");
  expect_format_error(
      write_plain("nine.idx", concat(header(0x08, {1, 1, 1, 1, 1, 1, 1, 1, 1}), Bytes{5})),
      "dimension count 9");
}

TEST_F(IdxReader, TruncatedHeader) {
  expect_format_error(write_plain("short.idx", Bytes{0, 0}), "too short");
  expect_format_error(write_plain("empty.idx", Bytes{}), "too short");
  expect_format_error(write_plain("dims.idx", Bytes{0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0}),
                      "header is truncated");
  expect_format_error(write_gzip("dims.idx.gz", Bytes{0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0}),
                      "header is truncated");
}

TEST_F(IdxReader, TruncatedPayload) {
  const Bytes bytes = concat(header(0x0C, {10}), Bytes(39, 1));  // 40 bytes needed
  expect_format_error(write_plain("short.idx", bytes), "payload is truncated");
  expect_format_error(write_gzip("short.idx.gz", bytes), "payload is truncated");
}

TEST_F(IdxReader, TrailingBytes) {
  const Bytes bytes = concat(header(0x08, {4}), Bytes(5, 1));  // one byte too many
  expect_format_error(write_plain("long.idx", bytes), "trailing bytes");
  expect_format_error(write_gzip("long.idx.gz", bytes), "trailing bytes");
}

TEST_F(IdxReader, DimensionProductOverflow) {
  // Issue 12 (trust-core): Shape now checks its own element count, and read_idx builds a Shape
  // from the header's dimensions before its own overflow check, so these headers may be refused
  // by Shape (a ShapeError naming the dimensions) until read_idx formats the dimensions without
  // building a Shape; either refusal is accepted here.
  const auto expect_refused = [](const fs::path& path, std::uint64_t max_elements) {
    try {
      (void)read_idx(path, max_elements);
      ADD_FAILURE() << "no error reading " << path;
    } catch (const FormatError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(path.string()), std::string::npos) << message;
      EXPECT_NE(message.find("overflow"), std::string::npos) << message;
    } catch (const tapegrad::ShapeError& e) {
      EXPECT_NE(std::string(e.what()).find("too many elements"), std::string::npos) << e.what();
    }
  };
  // (2^32 - 1)^3 does not fit in 64 bits.
  const Bytes bytes = header(0x08, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu});
  const std::uint64_t no_limit = std::numeric_limits<std::uint64_t>::max();
  expect_refused(write_plain("overflow.idx", bytes), no_limit);
  expect_refused(write_gzip("overflow.idx.gz", bytes), no_limit);
  // (2^32 - 1)^2 elements fits, but not times 8 bytes for doubles.
  expect_refused(write_plain("overflow8.idx", header(0x0E, {0xFFFFFFFFu, 0xFFFFFFFFu})), no_limit);
  // With the default limit the same headers are refused as too large.
  expect_refused(write_plain("limit.idx", bytes), tapegrad::io::kIdxMaxElements);
}

// Caps this process's address space a little above what it uses now, so an allocation driven by
// a lying header (gigabytes) throws bad_alloc instead of succeeding quietly.
class AddressSpaceCap {
 public:
  explicit AddressSpaceCap(std::uint64_t headroom) {
    ::getrlimit(RLIMIT_AS, &saved_);
    std::ifstream statm("/proc/self/statm");
    std::uint64_t pages = 0;
    statm >> pages;
    rlimit capped = saved_;
    capped.rlim_cur = pages * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)) + headroom;
    active_ = pages > 0 &&
              (saved_.rlim_max == RLIM_INFINITY || capped.rlim_cur <= saved_.rlim_max) &&
              ::setrlimit(RLIMIT_AS, &capped) == 0;
  }
  ~AddressSpaceCap() {
    if (active_) ::setrlimit(RLIMIT_AS, &saved_);
  }
  bool active() const { return active_; }

 private:
  rlimit saved_{};
  bool active_ = false;
};

TEST_F(IdxReader, LyingHeaderFailsFastWithoutAllocating) {
  // A 100-byte file whose header claims 4 billion elements.
  const Bytes bytes = concat(header(0x08, {4000000000u}), Bytes(92, 3));
  ASSERT_EQ(bytes.size(), 100u);
  const fs::path plain = write_plain("liar.idx", bytes);
  const fs::path gzip = write_gzip("liar.idx.gz", bytes);
  const std::uint64_t no_limit = std::numeric_limits<std::uint64_t>::max();

  const auto start = std::chrono::steady_clock::now();
  {
    // 4e9 doubles would be 32 GB; allow this process 256 MB more than it has now.
    AddressSpaceCap cap(256u << 20);
    EXPECT_TRUE(cap.active()) << "could not cap the address space; the checks still run";
    // Refused by the element limit before reading the payload.
    expect_format_error(plain, "more than the limit");
    expect_format_error(gzip, "more than the limit");
    // Even with no limit: the plain file's size gives the lie away before allocating, and the
    // gzip stream is read in chunks, so memory follows the bytes actually present.
    expect_format_error(plain, "payload is truncated", no_limit);
    expect_format_error(gzip, "payload is truncated", no_limit);
    // A claim under the default limit (2e8 ubyte elements = 1.6 GB of doubles) in 100 bytes.
    const Bytes under = concat(header(0x08, {200000000u}), Bytes(92, 3));
    expect_format_error(write_gzip("under.idx.gz", under), "payload is truncated");
    expect_format_error(write_plain("under.idx", under), "payload is truncated");
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 2.0);
}

TEST_F(IdxReader, CorruptGzipStream) {
  Bytes payload(4096);
  for (std::size_t i = 0; i < payload.size(); ++i)
    payload[i] = static_cast<unsigned char>(i * 7 % 251);
  const Bytes good = file_bytes(write_gzip("good.idx.gz", concat(header(0x08, {4096}), payload)));
  ASSERT_GT(good.size(), 40u);

  // The gzip trailer (CRC-32 and length) cut off.
  Bytes cut(good.begin(), good.end() - 6);
  expect_format_error(write_plain("cut.idx.gz", cut), "truncated");
  // Half the deflate stream missing.
  Bytes half(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(good.size() / 2));
  expect_format_error(write_plain("half.idx.gz", half), "truncated");
  // A wrong CRC-32 in the trailer.
  Bytes crc = good;
  crc[crc.size() - 8] ^= 0xFF;
  expect_format_error(write_plain("crc.idx.gz", crc), "corrupt gzip data");
  // A garbled deflate stream: whatever zlib makes of it, it is a FormatError naming the file.
  Bytes garbled = good;
  for (std::size_t i = 12; i < garbled.size() - 8; i += 3) garbled[i] ^= 0x5A;
  expect_format_error(write_plain("garbled.idx.gz", garbled), "");
  // Just the magic.
  expect_format_error(write_plain("magic-only.idx.gz", Bytes{0x1f, 0x8b}), "");
}

TEST_F(IdxReader, IsATapegradError) {
  const fs::path path = write_plain("magic.idx", Bytes{1, 2, 3, 4});
  EXPECT_THROW((void)read_idx(path), tapegrad::Error);
}

}  // namespace
