#include "tapegrad/io/idx.hpp"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace tapegrad::io {
namespace {

constexpr std::size_t kChunkBytes = std::size_t{1} << 20;  // a multiple of every element size
constexpr std::size_t kMaxDims = 8;

[[noreturn]] void fail(const std::filesystem::path& path, std::string_view what) {
  throw FormatError(fmt::format("read_idx: {}: {}", path.string(), what));
}

// A byte source over a plain file or a gzip stream. read() returns the bytes read, 0 at the end
// of the data, and throws FormatError on read errors and corrupt or truncated gzip data.
class Source {
 public:
  explicit Source(const std::filesystem::path& path) : path_(path) {
    std::FILE* file = std::fopen(path.c_str(), "rb");
    if (file == nullptr) fail(path, fmt::format("cannot open: {}", std::strerror(errno)));
    file_.reset(file);
    struct stat info {};
    if (::fstat(fileno(file), &info) != 0) {
      fail(path, fmt::format("cannot stat: {}", std::strerror(errno)));
    }
    if (!S_ISREG(info.st_mode)) fail(path, "is not a regular file");
    file_size_ = static_cast<std::uint64_t>(info.st_size);

    std::array<unsigned char, 2> magic{};
    const std::size_t got = std::fread(magic.data(), 1, magic.size(), file);
    gzip_ = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    if (gzip_) {
      file_.reset();
      gz_ = gzopen(path.c_str(), "rb");
      if (gz_ == nullptr) fail(path, fmt::format("cannot open as gzip: {}", std::strerror(errno)));
      gzbuffer(gz_, 1 << 17);
    } else {
      std::rewind(file);
    }
  }
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;
  ~Source() {
    if (gz_ != nullptr) gzclose(gz_);
  }

  bool gzip() const { return gzip_; }
  std::uint64_t file_size() const { return file_size_; }

  std::size_t read(unsigned char* out, std::size_t n) {
    if (!gzip_) {
      const std::size_t got = std::fread(out, 1, n, file_.get());
      if (got < n && std::ferror(file_.get()) != 0) {
        fail(path_, fmt::format("read error: {}", std::strerror(errno)));
      }
      return got;
    }
    const int got = gzread(gz_, out, static_cast<unsigned>(n));
    if (got < 0) {
      int code = Z_OK;
      const char* message = gzerror(gz_, &code);
      if (code == Z_BUF_ERROR) fail(path_, "gzip stream is truncated (unexpected end of file)");
      fail(path_, fmt::format("corrupt gzip data: {}", message != nullptr ? message : "?"));
    }
    if (got == 0) {
      // gzread reports a stream cut short (even inside the CRC/length trailer) as end of data
      // with Z_BUF_ERROR; a complete stream ends with Z_OK.
      int code = Z_OK;
      (void)gzerror(gz_, &code);
      if (code == Z_BUF_ERROR) fail(path_, "gzip stream is truncated (unexpected end of file)");
    }
    return static_cast<std::size_t>(got);
  }

  // Reads until `n` bytes arrived or the data ended; returns the count.
  std::size_t read_fully(unsigned char* out, std::size_t n) {
    std::size_t total = 0;
    while (total < n) {
      const std::size_t got = read(out + total, n - total);
      if (got == 0) break;
      total += got;
    }
    return total;
  }

 private:
  struct FileCloser {
    void operator()(std::FILE* file) const { std::fclose(file); }
  };
  std::filesystem::path path_;
  std::unique_ptr<std::FILE, FileCloser> file_;
  gzFile gz_ = nullptr;
  bool gzip_ = false;
  std::uint64_t file_size_ = 0;
};

std::uint32_t load_be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

std::uint64_t load_be64(const unsigned char* p) {
  return (std::uint64_t{load_be32(p)} << 32) | load_be32(p + 4);
}

bool known_type(std::uint8_t code) {
  switch (code) {
    case 0x08:
    case 0x09:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x0E:
      return true;
    default:
      return false;
  }
}

// Converts `count` big-endian elements of `type` at `bytes` and appends them to `out`.
void decode(IdxType type, const unsigned char* bytes, std::size_t count, std::vector<double>& out) {
  switch (type) {
    case IdxType::UByte:
      for (std::size_t i = 0; i < count; ++i) out.push_back(bytes[i]);
      break;
    case IdxType::SByte:
      for (std::size_t i = 0; i < count; ++i) out.push_back(static_cast<std::int8_t>(bytes[i]));
      break;
    case IdxType::Int16:
      for (std::size_t i = 0; i < count; ++i) {
        const auto raw = static_cast<std::uint16_t>((bytes[2 * i] << 8) | bytes[2 * i + 1]);
        out.push_back(static_cast<std::int16_t>(raw));
      }
      break;
    case IdxType::Int32:
      for (std::size_t i = 0; i < count; ++i) {
        out.push_back(static_cast<std::int32_t>(load_be32(bytes + 4 * i)));
      }
      break;
    case IdxType::Float32:
      for (std::size_t i = 0; i < count; ++i) {
        out.push_back(std::bit_cast<float>(load_be32(bytes + 4 * i)));
      }
      break;
    case IdxType::Float64:
      for (std::size_t i = 0; i < count; ++i) {
        out.push_back(std::bit_cast<double>(load_be64(bytes + 8 * i)));
      }
      break;
  }
}

}  // namespace

std::size_t idx_element_size(IdxType type) {
  switch (type) {
    case IdxType::UByte:
    case IdxType::SByte:
      return 1;
    case IdxType::Int16:
      return 2;
    case IdxType::Int32:
    case IdxType::Float32:
      return 4;
    case IdxType::Float64:
      return 8;
  }
  return 0;
}

IdxData read_idx(const std::filesystem::path& path, std::uint64_t max_elements) {
  Source source(path);
  const char* kind = source.gzip() ? "decompressed data" : "file";

  std::array<unsigned char, 4> magic{};
  const std::size_t got_magic = source.read_fully(magic.data(), magic.size());
  if (got_magic < magic.size()) {
    fail(path, fmt::format("{} is too short for an IDX header ({} bytes, need at least 4)", kind,
                           got_magic));
  }
  if (magic[0] != 0 || magic[1] != 0) {
    fail(path, fmt::format("bad magic: expected 00 00 <type> <ndims>, got {:02x} {:02x} {:02x} "
                           "{:02x} (not an IDX file)",
                           magic[0], magic[1], magic[2], magic[3]));
  }
  if (!known_type(magic[2])) {
    fail(path, fmt::format("unknown element type 0x{:02x} (expected 0x08 ubyte, 0x09 sbyte, 0x0B "
                           "int16, 0x0C int32, 0x0D float32 or 0x0E float64)",
                           magic[2]));
  }
  const auto type = static_cast<IdxType>(magic[2]);
  const std::size_t ndims = magic[3];
  if (ndims < 1 || ndims > kMaxDims) {
    fail(path, fmt::format("dimension count {} is outside 1..{}", ndims, kMaxDims));
  }

  std::array<unsigned char, 4 * kMaxDims> dim_bytes{};
  const std::size_t got_dims = source.read_fully(dim_bytes.data(), 4 * ndims);
  if (got_dims < 4 * ndims) {
    fail(path, fmt::format("header is truncated: {} dimensions need {} bytes, got {}", ndims,
                           4 * ndims, got_dims));
  }
  std::vector<std::int64_t> dims(ndims);
  bool any_zero = false;
  for (std::size_t i = 0; i < ndims; ++i) {
    dims[i] = load_be32(dim_bytes.data() + 4 * i);
    any_zero = any_zero || dims[i] == 0;
  }
  const Shape shape(dims);

  // Element count, checked for overflow (a zero dimension makes the count 0 whatever the rest).
  std::uint64_t numel = 1;
  if (any_zero) {
    numel = 0;
  } else {
    for (std::int64_t d : dims) {
      if (__builtin_mul_overflow(numel, static_cast<std::uint64_t>(d), &numel)) {
        fail(path, fmt::format("dimensions {} overflow a 64-bit element count", shape));
      }
    }
  }
  if (numel > max_elements) {
    fail(path, fmt::format("dimensions {} claim {} elements, more than the limit of {}", shape,
                           numel, max_elements));
  }
  const std::size_t element_size = idx_element_size(type);
  const std::uint64_t header_bytes = 4 + 4 * ndims;
  std::uint64_t payload_bytes = 0;
  if (__builtin_mul_overflow(numel, element_size, &payload_bytes)) {
    fail(path, fmt::format("dimensions {} overflow a 64-bit byte count", shape));
  }

  // A plain file's size is known up front: a lying header fails before any allocation.
  if (!source.gzip()) {
    const std::uint64_t expected = header_bytes + payload_bytes;
    if (source.file_size() < expected) {
      fail(path, fmt::format("payload is truncated: dimensions {} need {} bytes after the "
                             "{}-byte header, the file has {}",
                             shape, payload_bytes, header_bytes,
                             source.file_size() - std::min(source.file_size(), header_bytes)));
    }
    if (source.file_size() > expected) {
      fail(path, fmt::format("{} trailing bytes after the {}-byte payload of dimensions {}",
                             source.file_size() - expected, payload_bytes, shape));
    }
  }

  IdxData data;
  data.type = type;
  data.shape = shape;
  // Plain files were size-checked above; gzip streams grow the buffer only as data arrives.
  data.values.reserve(source.gzip() ? std::min<std::uint64_t>(numel, kChunkBytes) : numel);
  std::vector<unsigned char> chunk(std::min<std::uint64_t>(payload_bytes, kChunkBytes));
  std::uint64_t remaining = payload_bytes;
  while (remaining > 0) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, chunk.size()));
    const std::size_t got = source.read_fully(chunk.data(), want);
    if (got < want) {
      fail(path, fmt::format("payload is truncated: dimensions {} need {} bytes, the {} ends "
                             "after {}",
                             shape, payload_bytes, kind, payload_bytes - remaining + got));
    }
    const std::size_t count = want / element_size;
    if (data.values.capacity() - data.values.size() < count) {
      // Geometric growth, capped at the claimed element count.
      const std::uint64_t grown =
          std::max<std::uint64_t>(data.values.capacity() * 2, data.values.size() + count);
      data.values.reserve(std::min<std::uint64_t>(grown, numel));
    }
    decode(type, chunk.data(), count, data.values);
    remaining -= want;
  }

  unsigned char extra = 0;
  if (source.read(&extra, 1) != 0) {
    fail(path, fmt::format("trailing bytes in the {} after the {}-byte payload of dimensions {}",
                           kind, payload_bytes, shape));
  }
  return data;
}

Tensor read_idx_tensor(const std::filesystem::path& path, std::uint64_t max_elements) {
  IdxData data = read_idx(path, max_elements);
  return Tensor::from_values(std::move(data.values), data.shape);
}

}  // namespace tapegrad::io
