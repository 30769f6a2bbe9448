// Safetensors: bit-exact round trips, hand-written F32 files, metadata, every validation path of
// load_into (which must leave the parameters untouched and name the tensor at fault), and atomic
// saves that never leave a half-written file.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/io/safetensors.hpp"

namespace {

namespace fs = std::filesystem;
using tapegrad::Shape;
using tapegrad::Tensor;
using tapegrad::io::FormatError;
using tapegrad::io::load_into;
using tapegrad::io::NamedTensors;
using tapegrad::io::read_safetensors;
using tapegrad::io::save_safetensors;
using Bytes = std::vector<unsigned char>;

std::vector<std::uint64_t> bits(const Tensor& t) {
  std::vector<std::uint64_t> out;
  for (double v : t.values()) out.push_back(std::bit_cast<std::uint64_t>(v));
  return out;
}

Bytes le64(std::uint64_t v) {
  Bytes out;
  for (int b = 0; b < 8; ++b) out.push_back(static_cast<unsigned char>(v >> (8 * b)));
  return out;
}

Bytes f32_bytes(const std::vector<float>& values) {
  Bytes out;
  for (float f : values) {
    const auto raw = std::bit_cast<std::uint32_t>(f);
    for (int b = 0; b < 4; ++b) out.push_back(static_cast<unsigned char>(raw >> (8 * b)));
  }
  return out;
}

Bytes f64_bytes(const std::vector<double>& values) {
  Bytes out;
  for (double d : values) {
    const Bytes b = le64(std::bit_cast<std::uint64_t>(d));
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tapegrad_st_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add);
    fs::remove_all(dir_);
  }

  static Bytes file_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  fs::path write_bytes(const std::string& name, const Bytes& bytes) {
    fs::path path = dir_ / name;
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  // A file with this header text (unpadded, length as given unless overridden) and buffer.
  fs::path write_raw(const std::string& name, const std::string& header, const Bytes& buffer,
                     std::uint64_t header_len_field = UINT64_MAX) {
    Bytes bytes = le64(header_len_field == UINT64_MAX ? header.size() : header_len_field);
    bytes.insert(bytes.end(), header.begin(), header.end());
    bytes.insert(bytes.end(), buffer.begin(), buffer.end());
    return write_bytes(name, bytes);
  }

  // No "*.tmp-*" file left behind in the test directory.
  void expect_no_temporaries() const {
    for (const auto& entry : fs::directory_iterator(dir_)) {
      EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos)
          << "leftover temporary " << entry.path();
    }
  }

  fs::path dir_;
};

// The parameters of a tiny model: "w" [2, 3] = 1..6 and "b" [3] = 7..9.
NamedTensors model_parameters(double offset = 0.0) {
  return {
      {"w", tapegrad::from_values(
                {1 + offset, 2 + offset, 3 + offset, 4 + offset, 5 + offset, 6 + offset}, {2, 3})
                .requires_grad_()},
      {"b", tapegrad::from_values({7 + offset, 8 + offset, 9 + offset}, {3}).requires_grad_()}};
}

// Expects load_into(path) on fresh parameters to throw a FormatError containing every fragment
// and the path, and the parameters to keep their values bit for bit.
void expect_load_rejected(const fs::path& path, const std::vector<std::string>& fragments) {
  NamedTensors params = model_parameters(100.0);
  std::vector<std::vector<std::uint64_t>> before;
  for (const auto& p : params) before.push_back(bits(p.second));
  try {
    load_into(path, params);
    ADD_FAILURE() << "load_into accepted " << path;
  } catch (const FormatError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path.string()), std::string::npos) << message;
    for (const std::string& fragment : fragments) {
      EXPECT_NE(message.find(fragment), std::string::npos)
          << "expected '" << fragment << "' in: " << message;
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(bits(params[i].second), before[i]) << "parameter " << params[i].first << " changed";
  }
}

TEST_F(Safetensors, RoundTripIsBitExact) {
  const double big = std::numeric_limits<double>::max();
  const double denorm = std::numeric_limits<double>::denorm_min();
  const NamedTensors saved = {
      {"layer.weight", tapegrad::from_values({1e-308, -0.0, big, -big, denorm, 1.0 / 3.0}, {2, 3})},
      {"bias", tapegrad::from_values({0.0, -1e-300, 2.2250738585072014e-308}, {3})},
      {"scalar", tapegrad::scalar(-123.456)},
      {"empty", tapegrad::zeros({0, 4})},
      {"inf", tapegrad::from_values({std::numeric_limits<double>::infinity(),
                                     -std::numeric_limits<double>::infinity()},
                                    {1, 2, 1})},
  };
  const fs::path path = dir_ / "model.safetensors";
  save_safetensors(path, saved);
  const tapegrad::io::SafetensorsFile file = read_safetensors(path);
  ASSERT_EQ(file.tensors.size(), saved.size());
  EXPECT_TRUE(file.metadata.empty());
  // Sorted by name.
  for (std::size_t i = 1; i < file.tensors.size(); ++i) {
    EXPECT_LT(file.tensors[i - 1].first, file.tensors[i].first);
  }
  for (const auto& [name, tensor] : saved) {
    SCOPED_TRACE(name);
    const Tensor& loaded = file.at(name);
    EXPECT_EQ(loaded.shape(), tensor.shape());
    EXPECT_EQ(bits(loaded), bits(tensor));
    EXPECT_TRUE(loaded.is_leaf());
    EXPECT_FALSE(loaded.requires_grad());
  }
  EXPECT_EQ(file.find("nope"), nullptr);
  EXPECT_THROW((void)file.at("nope"), tapegrad::ValueError);
  expect_no_temporaries();
}

TEST_F(Safetensors, FileLayoutFollowsTheFormat) {
  const fs::path path = dir_ / "layout.safetensors";
  save_safetensors(path, model_parameters(), {{"format", "tapegrad"}});
  const Bytes bytes = file_bytes(path);
  ASSERT_GE(bytes.size(), 8u);
  std::uint64_t n = 0;
  for (int b = 0; b < 8; ++b) n |= std::uint64_t{bytes[static_cast<std::size_t>(b)]} << (8 * b);
  EXPECT_EQ(n % 8, 0u) << "the buffer starts at a multiple of 8";
  ASSERT_LE(8 + n, bytes.size());
  const std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  EXPECT_EQ(header.front(), '{');
  const auto json = nlohmann::json::parse(header);
  EXPECT_EQ(json["__metadata__"]["format"], "tapegrad");
  // Tensors packed in name order: "b" (24 bytes) then "w" (48 bytes).
  EXPECT_EQ(json["b"]["dtype"], "F64");
  EXPECT_EQ(json["b"]["shape"], nlohmann::json::array({3}));
  EXPECT_EQ(json["b"]["data_offsets"], nlohmann::json::array({0, 24}));
  EXPECT_EQ(json["w"]["shape"], nlohmann::json::array({2, 3}));
  EXPECT_EQ(json["w"]["data_offsets"], nlohmann::json::array({24, 72}));
  EXPECT_EQ(bytes.size(), 8 + n + 72);
  const Bytes buffer(bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n), bytes.end());
  EXPECT_EQ(buffer, f64_bytes({7, 8, 9, 1, 2, 3, 4, 5, 6}));
  // A new file gets ordinary permissions, not mkstemp's 0600.
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                fs::perms::others_read);
}

TEST_F(Safetensors, EmptyFileHasAPaddedHeader) {
  const fs::path path = dir_ / "empty.safetensors";
  save_safetensors(path, {});
  const Bytes bytes = file_bytes(path);
  Bytes expected = le64(8);
  for (char c : std::string("{}      ")) expected.push_back(static_cast<unsigned char>(c));
  EXPECT_EQ(bytes, expected);
  EXPECT_TRUE(read_safetensors(path).tensors.empty());
}

TEST_F(Safetensors, MetadataRoundTrip) {
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"},
      {"epoch", "12"},
      {"note", "quotes \" and \\ and unicode \xc3\xa9"},
      {"", ""}};
  const fs::path path = dir_ / "meta.safetensors";
  save_safetensors(path, model_parameters(), metadata);
  EXPECT_EQ(read_safetensors(path).metadata, metadata);
}

TEST_F(Safetensors, ReadsF32WrittenByHandAsDouble) {
  const std::vector<float> x = {1.5f, -2.25f, 0.1f, 3.0e38f};
  const std::vector<float> y = {-0.0f, 1e-45f};
  Bytes buffer = f32_bytes(x);
  const Bytes tail = f32_bytes(y);
  buffer.insert(buffer.end(), tail.begin(), tail.end());
  // Unpadded header, keys in non-alphabetical order, extra whitespace: all legal.
  const fs::path path =
      write_raw("f32.safetensors",
                R"({ "x": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
           "__metadata__": {"format": "np"},
           "a": {"shape": [2], "dtype": "F32", "data_offsets": [16, 24]} })",
                buffer);
  const auto file = read_safetensors(path);
  ASSERT_EQ(file.tensors.size(), 2u);
  EXPECT_EQ(file.metadata.at("format"), "np");
  EXPECT_EQ(file.at("x").shape(), (Shape{2, 2}));
  for (std::size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(file.at("x").values()[i], static_cast<double>(x[i]));
  }
  EXPECT_TRUE(std::signbit(file.at("a").values()[0]));
  EXPECT_EQ(file.at("a").values()[1], static_cast<double>(1e-45f));

  // F32 loads into parameters too (widened), mixed with F64.
  const fs::path mixed =
      write_raw("mixed.safetensors",
                R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
          "b": {"dtype": "F64", "shape": [3], "data_offsets": [24, 48]}})",
                [] {
                  Bytes b = f32_bytes({0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f});
                  const Bytes d = f64_bytes({-1, -2, -3});
                  b.insert(b.end(), d.begin(), d.end());
                  return b;
                }());
  NamedTensors params = model_parameters();
  load_into(mixed, params);
  EXPECT_EQ(params[0].second.at({1, 2}), 5.5);
  EXPECT_EQ(params[1].second.at({2}), -3.0);
}

TEST_F(Safetensors, LoadIntoCopiesValuesIntoTheSameTensors) {
  const fs::path path = dir_ / "params.safetensors";
  save_safetensors(path, model_parameters(0.25));
  NamedTensors params = model_parameters(100.0);
  const Tensor w = params[0].second;  // another handle to the same tensor
  load_into(path, params);
  EXPECT_TRUE(w.same(params[0].second));
  EXPECT_EQ(w.at({0, 0}), 1.25);
  EXPECT_EQ(params[1].second.at({2}), 9.25);
  EXPECT_TRUE(w.requires_grad());
}

TEST_F(Safetensors, LoadIntoRejectsMissingTensor) {
  const fs::path path = dir_ / "missing.safetensors";
  save_safetensors(path, {model_parameters()[0]});
  expect_load_rejected(path, {"missing tensor 'b'"});
}

TEST_F(Safetensors, LoadIntoRejectsExtraTensor) {
  NamedTensors saved = model_parameters();
  saved.emplace_back("extra.weight", tapegrad::zeros({2}));
  const fs::path path = dir_ / "extra.safetensors";
  save_safetensors(path, saved);
  expect_load_rejected(path, {"unexpected tensor 'extra.weight'"});
}

TEST_F(Safetensors, LoadIntoRejectsWronglyShapedTensor) {
  NamedTensors saved = model_parameters();
  saved[0].second = tapegrad::zeros({3, 2});  // same count, transposed shape
  const fs::path path = dir_ / "shape.safetensors";
  save_safetensors(path, saved);
  expect_load_rejected(path, {"tensor 'w' has shape [3, 2] in the file but [2, 3] in the model"});
}

TEST_F(Safetensors, LoadIntoListsEveryMismatch) {
  const fs::path path = dir_ / "all.safetensors";
  save_safetensors(path, {{"w", tapegrad::zeros({6})}, {"c", tapegrad::zeros({1})}});
  expect_load_rejected(path,
                       {"missing tensor 'b'", "tensor 'w' has shape [6]", "unexpected tensor 'c'"});
}

TEST_F(Safetensors, LoadIntoRejectsHeaderLengthLargerThanFile) {
  const std::string header = R"({"b":{"dtype":"F64","shape":[3],"data_offsets":[0,24]}})";
  expect_load_rejected(write_raw("len.safetensors", header, Bytes(24, 0), 1000),
                       {"header length 1000 is larger than"});
  expect_load_rejected(write_raw("huge.safetensors", header, Bytes(24, 0), UINT64_MAX - 1),
                       {"header length"});
  expect_load_rejected(write_bytes("tiny.safetensors", Bytes{1, 2, 3}), {"too short"});
}

TEST_F(Safetensors, LoadIntoRejectsOffsetsOutOfRange) {
  const std::string header = R"({"w":{"dtype":"F64","shape":[2,3],"data_offsets":[0,48]},)"
                             R"("b":{"dtype":"F64","shape":[3],"data_offsets":[48,72]}})";
  // The buffer holds 64 bytes, "b" claims up to 72.
  expect_load_rejected(write_raw("range.safetensors", header, Bytes(64, 0)),
                       {"tensor 'b'", "outside the 64-byte data buffer"});
  // Offsets near 2^64 must not wrap around.
  const std::string wrap =
      R"({"w":{"dtype":"F64","shape":[2,3],"data_offsets":[18446744073709551600,64]}})";
  expect_load_rejected(write_raw("wrap.safetensors", wrap, Bytes(64, 0)),
                       {"tensor 'w'", "end before they begin"});
}

TEST_F(Safetensors, LoadIntoRejectsOverlappingOffsets) {
  const std::string header = R"({"w":{"dtype":"F64","shape":[2,3],"data_offsets":[0,48]},)"
                             R"("b":{"dtype":"F64","shape":[3],"data_offsets":[40,64]}})";
  expect_load_rejected(write_raw("overlap.safetensors", header, Bytes(64, 0)),
                       {"tensor 'b'", "overlap tensor 'w'"});
}

TEST_F(Safetensors, LoadIntoRejectsGapsAndUnclaimedBytes) {
  const std::string gap = R"({"w":{"dtype":"F64","shape":[2,3],"data_offsets":[0,48]},)"
                          R"("b":{"dtype":"F64","shape":[3],"data_offsets":[56,80]}})";
  expect_load_rejected(write_raw("gap.safetensors", gap, Bytes(80, 0)),
                       {"tensor 'b'", "gap of 8 bytes"});
  const std::string tail = R"({"w":{"dtype":"F64","shape":[2,3],"data_offsets":[0,48]},)"
                           R"("b":{"dtype":"F64","shape":[3],"data_offsets":[48,72]}})";
  expect_load_rejected(write_raw("tail.safetensors", tail, Bytes(80, 0)), {"8 bytes unclaimed"});
}

TEST_F(Safetensors, LoadIntoRejectsByteLengthThatDisagreesWithShape) {
  const std::string header = R"({"w":{"dtype":"F64","shape":[2,3],"data_offsets":[0,40]},)"
                             R"("b":{"dtype":"F64","shape":[3],"data_offsets":[40,64]}})";
  expect_load_rejected(write_raw("bytes.safetensors", header, Bytes(64, 0)),
                       {"tensor 'w'", "needs 48 bytes", "span 40"});
  // A shape whose element count overflows.
  const std::string overflow =
      R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,0]}})";
  expect_load_rejected(write_raw("overflow.safetensors", overflow, Bytes{}),
                       {"tensor 'w'", "overflow"});
  const std::string negative = R"({"w":{"dtype":"F64","shape":[-1,3],"data_offsets":[0,0]}})";
  expect_load_rejected(write_raw("negative.safetensors", negative, Bytes{}),
                       {"tensor 'w'", "not a non-negative integer"});
}

TEST_F(Safetensors, LoadIntoRejectsUnknownAndUnsupportedDtypes) {
  const std::string unknown = R"({"w":{"dtype":"Q7","shape":[2,3],"data_offsets":[0,48]},)"
                              R"("b":{"dtype":"F64","shape":[3],"data_offsets":[48,72]}})";
  expect_load_rejected(write_raw("unknown.safetensors", unknown, Bytes(72, 0)),
                       {"tensor 'w'", "unknown dtype \"Q7\""});
  const std::string f16 = R"({"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},)"
                          R"("b":{"dtype":"F64","shape":[3],"data_offsets":[12,36]}})";
  expect_load_rejected(write_raw("f16.safetensors", f16, Bytes(36, 0)),
                       {"tensor 'w'", "dtype F16 is not supported"});
  const std::string no_dtype = R"({"w":{"shape":[2,3],"data_offsets":[0,48]}})";
  expect_load_rejected(write_raw("nodtype.safetensors", no_dtype, Bytes(48, 0)),
                       {"tensor 'w'", "dtype"});
}

TEST_F(Safetensors, LoadIntoRejectsBadJson) {
  expect_load_rejected(write_raw("json.safetensors", R"({"w": {"dtype": "F64",)", Bytes{}),
                       {"not valid JSON"});
  expect_load_rejected(write_raw("array.safetensors", "[1, 2, 3]", Bytes{}), {"not an object"});
  expect_load_rejected(write_raw("utf8.safetensors", "{\"\xff\": 1}", Bytes{}), {"not valid JSON"});
  expect_load_rejected(write_raw("meta.safetensors", R"({"__metadata__": {"epoch": 3}})", Bytes{}),
                       {"__metadata__", "'epoch'", "not a string"});
  expect_load_rejected(write_raw("entry.safetensors", R"({"w": [1, 2]})", Bytes{}),
                       {"tensor 'w'", "not an object"});
}

TEST_F(Safetensors, LoadIntoRejectsTruncatedFile) {
  const fs::path path = dir_ / "truncated.safetensors";
  save_safetensors(path, model_parameters());
  Bytes bytes = file_bytes(path);
  bytes.resize(bytes.size() - 5);
  expect_load_rejected(write_bytes("truncated.safetensors", bytes), {"tensor 'w'", "outside"});
  expect_load_rejected(dir_ / "does-not-exist.safetensors", {"cannot open"});
}

TEST_F(Safetensors, LoadIntoRejectsNonLeafOrDuplicateParameters) {
  const fs::path path = dir_ / "ok.safetensors";
  save_safetensors(path, model_parameters());
  NamedTensors duplicate = model_parameters();
  duplicate.push_back(duplicate[0]);
  EXPECT_THROW(load_into(path, duplicate), tapegrad::ValueError);
  NamedTensors undefined = model_parameters();
  undefined[1].second = Tensor();
  EXPECT_THROW(load_into(path, undefined), tapegrad::ValueError);
  EXPECT_EQ(undefined[0].second.at({0, 0}), 1.0);
}

TEST_F(Safetensors, SaveRejectsBadNamesBeforeWriting) {
  const fs::path path = dir_ / "bad.safetensors";
  const Tensor t = tapegrad::zeros({2});
  for (const NamedTensors& named :
       {NamedTensors{{"a", t}, {"a", t}}, NamedTensors{{"", t}}, NamedTensors{{"__metadata__", t}},
        NamedTensors{{"a", Tensor()}}, NamedTensors{{"bad\xff", t}}}) {
    EXPECT_THROW(save_safetensors(path, named), tapegrad::ValueError);
  }
  EXPECT_THROW(save_safetensors(path, {{"a", t}}, {{"k", "\xfe"}}), tapegrad::ValueError);
  EXPECT_FALSE(fs::exists(path));
  expect_no_temporaries();
}

TEST_F(Safetensors, SaveReplacesAnExistingFileKeepingItsMode) {
  const fs::path path = dir_ / "replace.safetensors";
  save_safetensors(path, model_parameters(1.0));
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  save_safetensors(path, model_parameters(2.0));
  EXPECT_EQ(read_safetensors(path).at("b").at({0}), 9.0);
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  expect_no_temporaries();
}

TEST_F(Safetensors, AtomicSaveKeepsOldFileWhenTemporaryCannotBeCreated) {
  // A file name of 250 bytes is legal, but "<name>.tmp-XXXXXX" exceeds NAME_MAX (255), so the
  // temporary cannot be created (this works even as root, unlike a read-only directory).
  const fs::path path = dir_ / (std::string(234, 'p') + ".safetensors");
  ASSERT_EQ(path.filename().string().size(), 246u);
  const Bytes old = {'o', 'l', 'd', ' ', 'b', 'y', 't', 'e', 's'};
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(old.data()), static_cast<std::streamsize>(old.size()));
  }
  ASSERT_EQ(file_bytes(path), old);
  try {
    save_safetensors(path, model_parameters());
    ADD_FAILURE() << "save succeeded";
  } catch (const FormatError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path.string()), std::string::npos) << message;
    EXPECT_NE(message.find("cannot create a temporary file"), std::string::npos) << message;
  }
  EXPECT_EQ(file_bytes(path), old);
  expect_no_temporaries();
}

TEST_F(Safetensors, AtomicSaveIntoReadOnlyDirectory) {
  const fs::path path = dir_ / "ro.safetensors";
  save_safetensors(path, model_parameters(1.0));
  const Bytes old = file_bytes(path);
  fs::permissions(dir_, fs::perms::owner_read | fs::perms::owner_exec);
  if (::geteuid() == 0) {
    GTEST_SKIP() << "running as root, which writes into read-only directories; the NAME_MAX and "
                    "RLIMIT_FSIZE tests cover the failure paths instead";
  }
  EXPECT_THROW(save_safetensors(path, model_parameters(2.0)), FormatError);
  EXPECT_EQ(file_bytes(path), old);
  expect_no_temporaries();
}

TEST_F(Safetensors, AtomicSaveKeepsOldFileWhenWritingFails) {
  // A file size limit makes write() fail with EFBIG halfway through the tensor data.
  const fs::path path = dir_ / "full.safetensors";
  save_safetensors(path, model_parameters(1.0));
  const Bytes old = file_bytes(path);

  NamedTensors big = {{"big", tapegrad::full({100000}, 0.5)}};  // 800 KB
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  rlimit limited = saved;
  limited.rlim_cur = rlim_t{64} * 1024;
  const auto previous_handler = std::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limited), 0);
  std::string message;
  try {
    save_safetensors(path, big);
  } catch (const FormatError& e) {
    message = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, previous_handler);

  EXPECT_NE(message.find("write failed"), std::string::npos) << message;
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
  EXPECT_EQ(file_bytes(path), old);
  expect_no_temporaries();
  // And the directory still works for the next save.
  save_safetensors(path, big);
  EXPECT_EQ(read_safetensors(path).at("big").numel(), 100000u);
}

}  // namespace
