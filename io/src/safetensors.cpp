#include "tapegrad/io/safetensors.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <set>
#include <span>
#include <tuple>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tapegrad/core/error.hpp"
#include "tapegrad/nn/module.hpp"

namespace tapegrad::io {
namespace {

using nlohmann::json;

constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;  // the reference reader's limit
constexpr std::size_t kChunkBytes = std::size_t{1} << 20;
constexpr std::string_view kMetadataKey = "__metadata__";

enum class Dtype { F64, F32 };

std::size_t dtype_size(Dtype dtype) {
  return dtype == Dtype::F64 ? 8 : 4;
}

struct Entry {
  std::string name;
  Dtype dtype = Dtype::F64;
  Shape shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

std::string errno_text() {
  return std::strerror(errno);
}

// A short, flat rendering of a JSON "shape" for error messages: at most kShown entries, nested
// values abbreviated to [...] / {...} and long strings cut. json::dump() is not used on
// untrusted values: it recurses once per nesting level, so a header of nested brackets (legal
// JSON, up to the 100 MB header limit) would overflow the stack.
std::string describe_shape(const json& shape) {
  constexpr std::size_t kShown = 8;
  constexpr std::size_t kStringChars = 16;
  std::string text = "[";
  std::size_t i = 0;
  for (const json& entry : shape) {
    if (i > 0) text += ", ";
    if (i++ == kShown) {
      text += fmt::format("... ({} entries)", shape.size());
      break;
    }
    if (entry.is_array()) {
      text += entry.empty() ? "[]" : "[...]";
    } else if (entry.is_object()) {
      text += entry.empty() ? "{}" : "{...}";
    } else if (entry.is_string() && entry.get_ref<const std::string&>().size() > kStringChars) {
      text += json(entry.get_ref<const std::string&>().substr(0, kStringChars))
                  .dump(-1, ' ', false, json::error_handler_t::replace);
      text.insert(text.size() - 1, "...");
    } else {
      text += entry.dump(-1, ' ', false, json::error_handler_t::replace);  // a scalar: flat
    }
  }
  return text + "]";
}

// --- reading ---------------------------------------------------------------------------------

// Reads and validates a safetensors file from wherever its bytes are: a file (read with seeks,
// so memory follows the tensors, never the header's claims) or a buffer in memory. Both share
// every check below; only size() and read_at() differ.
class Reader {
 public:
  Reader(std::string name, std::string_view op) : name_(std::move(name)), op_(op) {}
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  virtual ~Reader() = default;

  [[noreturn]] void fail(std::string_view what) const {
    throw FormatError(fmt::format("{}: {}: {}", op_, name_, what));
  }

  SafetensorsFile read() {
    const std::uint64_t file_size = size();
    std::array<unsigned char, 8> prefix{};
    read_at(0, prefix.data(), static_cast<std::size_t>(std::min<std::uint64_t>(file_size, 8)));
    const std::span<const unsigned char> start(prefix.data(),
                                               std::min<std::uint64_t>(file_size, 8));
    if (file_size < 8) {
      fail_header(start, fmt::format("file is {} bytes, too short for the 8-byte header length; "
                                     "the file is truncated or not a safetensors file",
                                     file_size));
    }
    std::uint64_t header_len = 0;
    for (std::size_t i = 0; i < 8; ++i) header_len |= std::uint64_t{prefix[i]} << (8 * i);
    if (header_len > file_size - 8) {
      fail_header(start, fmt::format("header length {} is larger than the {} bytes that follow "
                                     "it; the file is truncated or not a safetensors file",
                                     header_len, file_size - 8));
    }
    if (header_len > kMaxHeaderBytes) {
      fail_header(start, fmt::format("header length {} exceeds the limit of {} bytes", header_len,
                                     kMaxHeaderBytes));
    }
    std::string header(static_cast<std::size_t>(header_len), '\0');
    read_at(8, reinterpret_cast<unsigned char*>(header.data()), header.size());
    const std::uint64_t buffer_size = file_size - 8 - header_len;

    SafetensorsFile result;
    std::vector<Entry> entries = parse_header(start, header, result.metadata);
    check_layout(entries, buffer_size);

    // Every range is now known to lie inside the file, so reading allocates at most its size.
    std::vector<unsigned char> bytes;
    for (const Entry& entry : entries) {
      const std::uint64_t length = entry.end - entry.begin;
      bytes.resize(static_cast<std::size_t>(length));
      read_at(8 + header_len + entry.begin, bytes.data(), bytes.size());
      Values values(entry.shape.numel());
      if (entry.dtype == Dtype::F64) {
        for (std::size_t i = 0; i < values.size(); ++i) {
          std::uint64_t raw = 0;
          for (std::size_t b = 0; b < 8; ++b) raw |= std::uint64_t{bytes[8 * i + b]} << (8 * b);
          values[i] = std::bit_cast<double>(raw);
        }
      } else {
        for (std::size_t i = 0; i < values.size(); ++i) {
          std::uint32_t raw = 0;
          for (std::size_t b = 0; b < 4; ++b) raw |= std::uint32_t{bytes[4 * i + b]} << (8 * b);
          values[i] = std::bit_cast<float>(raw);
        }
      }
      result.tensors.emplace_back(entry.name, Tensor::from_values(std::move(values), entry.shape));
    }
    std::sort(result.tensors.begin(), result.tensors.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    return result;
  }

 protected:
  // Total size of the input in bytes.
  virtual std::uint64_t size() const = 0;
  // Reads exactly `n` bytes at `offset` into `out`, or fails.
  virtual void read_at(std::uint64_t offset, unsigned char* out, std::size_t n) = 0;

 private:
  // Fails with `what`, unless the first bytes show the file is of another known format (a
  // PyTorch .pt zip, a pickle): then that is what the message says, with how to convert it.
  [[noreturn]] void fail_header(std::span<const unsigned char> start, std::string_view what) const {
    const auto starts_with = [&](std::initializer_list<unsigned char> magic) {
      return start.size() >= magic.size() && std::equal(magic.begin(), magic.end(), start.begin());
    };
    constexpr std::string_view kConvert =
        "Convert it once in Python: safetensors.torch.save_file(state_dict, "
        "'model.safetensors') with the safetensors package, or, with the standard library "
        "only, the state_dict writer in docs/errors.md (\"Converting a PyTorch checkpoint\"); "
        "then load the .safetensors file";
    if (starts_with({'P', 'K', 0x03, 0x04})) {
      fail(fmt::format(
          "is a zip archive (it starts with \"PK\\x03\\x04\"), the format PyTorch's torch.save "
          "writes (.pt, .pth), not a safetensors file. {}",
          kConvert));
    }
    if (start.size() >= 2 && start[0] == 0x80 && start[1] >= 2 && start[1] <= 5) {
      fail(fmt::format(
          "is a Python pickle (protocol {}), the format of PyTorch's legacy torch.save and of "
          "pickle.dump, not a safetensors file. {}",
          start[1], kConvert));
    }
    fail(what);
  }

  std::vector<Entry> parse_header(std::span<const unsigned char> start, const std::string& header,
                                  std::map<std::string, std::string>& metadata) const {
    json root;
    try {
      root = json::parse(header);
    } catch (const json::exception& e) {
      fail_header(start, fmt::format("header is not valid JSON: {}", e.what()));
    }
    if (!root.is_object()) {
      fail_header(start, fmt::format("header is JSON {}, not an object", root.type_name()));
    }

    std::vector<Entry> entries;
    for (const auto& [name, value] : root.items()) {
      if (name == kMetadataKey) {
        if (!value.is_object()) fail("\"__metadata__\" is not an object of strings");
        for (const auto& [key, text] : value.items()) {
          if (!text.is_string()) {
            fail(fmt::format("\"__metadata__\" entry '{}' is {}, not a string", key,
                             text.type_name()));
          }
          metadata.emplace(key, text.get<std::string>());
        }
        continue;
      }
      entries.push_back(parse_entry(name, value));
    }
    return entries;
  }

  Entry parse_entry(const std::string& name, const json& value) const {
    const auto bad = [&](std::string_view what) {
      fail(fmt::format("tensor '{}': {}", name, what));
    };
    if (!value.is_object()) bad("entry is not an object with dtype, shape and data_offsets");
    Entry entry;
    entry.name = name;

    const auto dtype_it = value.find("dtype");
    if (dtype_it == value.end() || !dtype_it->is_string()) bad("missing or non-string \"dtype\"");
    const std::string dtype = dtype_it->get<std::string>();
    static const std::set<std::string, std::less<>> kOtherDtypes = {
        "BOOL", "U8",  "I8",      "U16",     "I16",     "F16", "BF16",    "U32",     "I32",
        "U64",  "I64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4",  "F6_E2M3", "F6_E3M2", "C64"};
    if (dtype == "F64") {
      entry.dtype = Dtype::F64;
    } else if (dtype == "F32") {
      entry.dtype = Dtype::F32;
    } else if (kOtherDtypes.contains(dtype)) {
      bad(fmt::format("dtype {} is not supported (tapegrad reads F64 and F32)", dtype));
    } else {
      bad(fmt::format("unknown dtype \"{}\" (tapegrad reads F64 and F32)", dtype));
    }

    const auto shape_it = value.find("shape");
    if (shape_it == value.end() || !shape_it->is_array()) bad("missing or non-array \"shape\"");
    std::vector<std::int64_t> dims;
    std::uint64_t numel = 1;
    for (const json& dim : *shape_it) {
      if (!dim.is_number_unsigned() ||
          dim.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
        bad(fmt::format("shape {} has an entry that is not a non-negative integer",
                        describe_shape(*shape_it)));
      }
      const auto d = dim.get<std::uint64_t>();
      if (__builtin_mul_overflow(numel, d, &numel)) {
        bad(fmt::format("shape {} overflows a 64-bit element count", describe_shape(*shape_it)));
      }
      dims.push_back(static_cast<std::int64_t>(d));
    }
    entry.shape = Shape(std::move(dims));

    const auto offsets_it = value.find("data_offsets");
    if (offsets_it == value.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
        !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
      bad("\"data_offsets\" must be [begin, end] with non-negative integers");
    }
    entry.begin = (*offsets_it)[0].get<std::uint64_t>();
    entry.end = (*offsets_it)[1].get<std::uint64_t>();
    if (entry.end < entry.begin) {
      bad(fmt::format("data_offsets [{}, {}] end before they begin", entry.begin, entry.end));
    }
    std::uint64_t bytes = 0;
    if (__builtin_mul_overflow(numel, dtype_size(entry.dtype), &bytes)) {
      bad(fmt::format("shape {} of {} overflows a 64-bit byte count", entry.shape, dtype));
    }
    if (bytes != entry.end - entry.begin) {
      bad(fmt::format("shape {} of {} needs {} bytes but data_offsets [{}, {}] span {}",
                      entry.shape, dtype, bytes, entry.begin, entry.end, entry.end - entry.begin));
    }
    return entry;
  }

  // Ranges, in offset order, must tile [0, buffer_size) exactly: no overlap, no gap, no tail.
  // Ranges that tile a longer buffer mean the file was cut short, and the message says so.
  void check_layout(std::vector<Entry>& entries, std::uint64_t buffer_size) const {
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
    });
    std::uint64_t covered = 0;
    const Entry* previous = nullptr;
    for (const Entry& entry : entries) {
      if (entry.begin < covered) {
        fail(fmt::format("tensor '{}': data_offsets [{}, {}] overlap tensor '{}' [{}, {}]",
                         entry.name, entry.begin, entry.end, previous->name, previous->begin,
                         previous->end));
      }
      if (entry.begin > covered) {
        fail(fmt::format("tensor '{}': data_offsets [{}, {}] leave a gap of {} bytes before it",
                         entry.name, entry.begin, entry.end, entry.begin - covered));
      }
      covered = entry.end;
      previous = &entry;
    }
    if (covered > buffer_size) {
      const Entry& cut = *std::find_if(entries.begin(), entries.end(),
                                       [&](const Entry& e) { return e.end > buffer_size; });
      fail(fmt::format(
          "tensor '{}': data_offsets [{}, {}] are outside the {}-byte data buffer: the file is "
          "truncated ({} bytes missing: the header describes {} bytes of tensor data and {} "
          "follow it), or its header is wrong. Was it cut short by a download, a copy or a full "
          "disk?",
          cut.name, cut.begin, cut.end, buffer_size, covered - buffer_size, covered, buffer_size));
    }
    if (covered != buffer_size) {
      fail(
          fmt::format("the tensors cover {} bytes of the {}-byte data buffer ({} bytes unclaimed "
                      "at the end)",
                      covered, buffer_size, buffer_size - covered));
    }
  }

  std::string name_;
  std::string_view op_;
};

class FileReader final : public Reader {
 public:
  FileReader(const std::filesystem::path& path, std::string_view op) : Reader(path.string(), op) {
    file_.reset(std::fopen(path.c_str(), "rb"));
    if (!file_) fail(fmt::format("cannot open: {}", errno_text()));
    struct stat info {};
    if (::fstat(fileno(file_.get()), &info) != 0) {
      fail(fmt::format("cannot stat: {}", errno_text()));
    }
    if (!S_ISREG(info.st_mode)) fail("is not a regular file");
    size_ = static_cast<std::uint64_t>(info.st_size);
  }

 private:
  std::uint64_t size() const override { return size_; }
  void read_at(std::uint64_t offset, unsigned char* out, std::size_t n) override {
    if (offset > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max()) ||
        ::fseeko(file_.get(), static_cast<off_t>(offset), SEEK_SET) != 0) {
      fail(fmt::format("cannot seek to byte {}: {}", offset, errno_text()));
    }
    if (std::fread(out, 1, n, file_.get()) != n) {
      fail(std::ferror(file_.get()) != 0 ? fmt::format("read error: {}", errno_text())
                                         : std::string("file ended early (was it truncated?)"));
    }
  }

  FilePtr file_;
  std::uint64_t size_ = 0;
};

class MemoryReader final : public Reader {
 public:
  MemoryReader(std::span<const std::uint8_t> bytes, std::string_view name, std::string_view op)
      : Reader(std::string(name), op), bytes_(bytes) {}

 private:
  std::uint64_t size() const override { return bytes_.size(); }
  void read_at(std::uint64_t offset, unsigned char* out, std::size_t n) override {
    if (offset > bytes_.size() || n > bytes_.size() - offset) {
      fail(fmt::format("{} bytes at byte {} are past the end of the {}-byte buffer", n, offset,
                       bytes_.size()));
    }
    if (n > 0) std::memcpy(out, bytes_.data() + offset, n);
  }

  std::span<const std::uint8_t> bytes_;
};

// --- writing ---------------------------------------------------------------------------------

// A temporary file next to the target; removed on destruction unless committed.
class TempFile {
 public:
  explicit TempFile(const std::filesystem::path& target) : target_(target) {
    std::string name = target.string() + ".tmp-XXXXXX";
    fd_ = ::mkstemp(name.data());
    if (fd_ < 0) {
      fail(fmt::format("cannot create a temporary file next to it: {}", errno_text()));
    }
    name_ = std::move(name);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_ && !name_.empty()) ::unlink(name_.c_str());
  }

  [[noreturn]] void fail(std::string_view what) const {
    throw FormatError(fmt::format("save_safetensors: {}: {}", target_.string(), what));
  }

  void write(const unsigned char* data, std::size_t n) {
    while (n > 0) {
      const ssize_t written = ::write(fd_, data, n);
      if (written < 0) {
        if (errno == EINTR) continue;
        fail(fmt::format("write failed: {}", errno_text()));
      }
      data += written;
      n -= static_cast<std::size_t>(written);
    }
  }

  void commit() {
    struct stat previous {};
    const mode_t mode =
        ::stat(target_.c_str(), &previous) == 0 ? (previous.st_mode & 07777) : mode_t{0644};
    if (::fchmod(fd_, mode) != 0) fail(fmt::format("cannot set permissions: {}", errno_text()));
    if (::fsync(fd_) != 0) fail(fmt::format("fsync failed: {}", errno_text()));
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail(fmt::format("close failed: {}", errno_text()));
    if (std::rename(name_.c_str(), target_.c_str()) != 0) {
      fail(fmt::format("cannot rename {} over it: {}", name_, errno_text()));
    }
    committed_ = true;
    // Make the rename itself durable (best effort: not every file system allows it).
    std::filesystem::path dir = target_.parent_path();
    if (dir.empty()) dir = ".";
    const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (dir_fd >= 0) {
      ::fsync(dir_fd);
      ::close(dir_fd);
    }
  }

 private:
  std::filesystem::path target_;
  std::string name_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

const Tensor* SafetensorsFile::find(std::string_view name) const {
  for (const auto& [key, tensor] : tensors) {
    if (key == name) return &tensor;
  }
  return nullptr;
}

const Tensor& SafetensorsFile::at(std::string_view name) const {
  if (const Tensor* tensor = find(name)) return *tensor;
  std::string names;
  for (const auto& entry : tensors)
    names += fmt::format("{}'{}'", names.empty() ? "" : ", ", entry.first);
  throw ValueError(fmt::format("SafetensorsFile::at: no tensor '{}' (the file has {})", name,
                               names.empty() ? std::string("none") : names));
}

void save_safetensors(const std::filesystem::path& path, const NamedTensors& named,
                      const std::map<std::string, std::string>& metadata) {
  const auto invalid = [&](std::string_view what) {
    throw ValueError(fmt::format("save_safetensors: {}: {}", path.string(), what));
  };
  std::vector<const std::pair<std::string, Tensor>*> order;
  order.reserve(named.size());
  for (const auto& entry : named) order.push_back(&entry);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->first < b->first; });

  json header = json::object();
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    const auto& [name, tensor] = *order[i];
    if (name.empty()) invalid("a tensor has an empty name");
    if (name == kMetadataKey) invalid("\"__metadata__\" is reserved and cannot name a tensor");
    if (i > 0 && order[i - 1]->first == name)
      invalid(fmt::format("tensor name '{}' appears twice", name));
    if (!tensor.defined()) invalid(fmt::format("tensor '{}' is undefined", name));
    const std::uint64_t bytes = tensor.numel() * 8;
    header[name] = {{"dtype", "F64"},
                    {"shape", tensor.shape().dims()},
                    {"data_offsets", json::array({offset, offset + bytes})}};
    offset += bytes;
  }
  if (!metadata.empty()) header[std::string(kMetadataKey)] = metadata;

  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    invalid(fmt::format("a tensor name or metadata string is not valid UTF-8 ({})", e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  TempFile file(path);
  std::array<unsigned char, 8> prefix{};
  for (std::size_t b = 0; b < 8; ++b) {
    prefix[b] = static_cast<unsigned char>(static_cast<std::uint64_t>(text.size()) >> (8 * b));
  }
  file.write(prefix.data(), prefix.size());
  file.write(reinterpret_cast<const unsigned char*>(text.data()), text.size());

  std::vector<unsigned char> chunk;
  chunk.reserve(kChunkBytes);
  for (const auto* entry : order) {
    for (double value : entry->second.values()) {
      const auto raw = std::bit_cast<std::uint64_t>(value);
      for (std::size_t b = 0; b < 8; ++b)
        chunk.push_back(static_cast<unsigned char>(raw >> (8 * b)));
      if (chunk.size() >= kChunkBytes) {
        file.write(chunk.data(), chunk.size());
        chunk.clear();
      }
    }
  }
  file.write(chunk.data(), chunk.size());
  file.commit();
}

SafetensorsFile read_safetensors(const std::filesystem::path& path) {
  return FileReader(path, "read_safetensors").read();
}

SafetensorsFile read_safetensors_bytes(std::span<const std::uint8_t> bytes, std::string_view name) {
  return MemoryReader(bytes, name, "read_safetensors").read();
}

namespace {

// load_into on a file from `reader`; `file_name` is its path (or stands in for one) in messages.
// Returns the file's metadata.
std::map<std::string, std::string> load_into_from(Reader&& reader, std::string_view op,
                                                  std::string_view file_name,
                                                  const NamedTensors& named_parameters) {
  SafetensorsFile file = reader.read();

  std::vector<std::string> problems;
  std::set<std::string, std::less<>> expected;
  for (const auto& [name, parameter] : named_parameters) {
    if (!expected.insert(name).second) {
      throw ValueError(
          fmt::format("{}: {}: parameter name '{}' appears twice", op, file_name, name));
    }
    if (!parameter.defined() || !parameter.is_leaf()) {
      throw ValueError(fmt::format(
          "{}: {}: parameter '{}' is {}; load into model->named_parameters()", op, file_name, name,
          parameter.defined() ? fmt::format("the result of '{}', not a leaf", parameter.op())
                              : std::string("undefined")));
    }
    const Tensor* stored = file.find(name);
    if (stored == nullptr) {
      problems.push_back(fmt::format("missing tensor '{}' (shape {})", name, parameter.shape()));
    } else if (stored->shape() != parameter.shape()) {
      problems.push_back(fmt::format("tensor '{}' has shape {} in the file but {} in the model",
                                     name, stored->shape(), parameter.shape()));
    }
  }
  for (const auto& [name, stored] : file.tensors) {
    if (!expected.contains(name)) {
      problems.push_back(fmt::format("unexpected tensor '{}' (shape {})", name, stored.shape()));
    }
  }
  if (!problems.empty()) {
    std::string joined;
    for (const std::string& problem : problems) joined += (joined.empty() ? "" : "; ") + problem;
    throw FormatError(fmt::format(
        "{}: {}: does not match the parameters: {}. Was it saved from a model of another "
        "architecture? Compare read_safetensors(path).tensors with model->named_parameters()",
        op, file_name, joined));
  }

  for (const auto& [name, parameter] : named_parameters) {
    const std::span<const double> source = file.find(name)->values();
    Tensor target = parameter;  // a handle: writing through it writes the model's tensor
    std::copy(source.begin(), source.end(), target.mutable_values().begin());
  }
  return std::move(file.metadata);
}

}  // namespace

void load_into(const std::filesystem::path& path, const NamedTensors& named_parameters) {
  load_into_from(FileReader(path, "load_into"), "load_into", path.string(), named_parameters);
}

void load_into_bytes(std::span<const std::uint8_t> bytes, std::string_view name,
                     const NamedTensors& named_parameters) {
  load_into_from(MemoryReader(bytes, name, "load_into"), "load_into", name, named_parameters);
}

void save_model(const nn::Module& model, const std::filesystem::path& path,
                const std::map<std::string, std::string>& metadata) {
  save_safetensors(path, model.named_parameters(), metadata);
}

std::map<std::string, std::string> load_model(nn::Module& model,
                                              const std::filesystem::path& path) {
  return load_into_from(FileReader(path, "load_model"), "load_model", path.string(),
                        model.named_parameters());
}

}  // namespace tapegrad::io
