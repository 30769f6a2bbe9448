#include "tapegrad/io/idx.hpp"

#include <sys/stat.h>

#define ZLIB_CONST  // next_in is a pointer to const
#include <zlib.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace tapegrad::io {
namespace {

constexpr std::size_t kChunkBytes = std::size_t{1} << 20;      // a multiple of every element size
constexpr std::size_t kGzipChunkBytes = std::size_t{1} << 16;  // likewise
constexpr std::size_t kGzipStartElements = std::size_t{1} << 13;
constexpr std::size_t kInputBytes = std::size_t{1} << 17;  // read-ahead from a file
constexpr std::size_t kMaxDims = 8;

// The raw bytes of a file or of a buffer in memory, decompressed on the fly when they start with
// the gzip magic. read() returns the bytes read, 0 at the end of the data, and throws FormatError
// naming the source on read errors and on corrupt or truncated gzip data. Both kinds of input go
// through the same code, so the in-memory entry point (and its fuzzer) exercise what files do.
class Source {
 public:
  explicit Source(const std::filesystem::path& path) : name_(path.string()) {
    std::FILE* file = std::fopen(path.c_str(), "rb");
    if (file == nullptr) fail(fmt::format("cannot open: {}", std::strerror(errno)));
    file_.reset(file);
    struct stat info {};
    if (::fstat(fileno(file), &info) != 0) {
      fail(fmt::format("cannot stat: {}", std::strerror(errno)));
    }
    if (!S_ISREG(info.st_mode)) fail("is not a regular file");
    size_ = static_cast<std::uint64_t>(info.st_size);
    buffer_.resize(kInputBytes);
    start();
  }
  Source(std::span<const std::uint8_t> bytes, std::string_view name)
      : name_(name), next_(bytes.data()), avail_(bytes.size()), size_(bytes.size()) {
    start();
  }
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;
  ~Source() {
    if (inflating_) inflateEnd(&stream_);
  }

  [[noreturn]] void fail(std::string_view what) const {
    throw FormatError(fmt::format("read_idx: {}: {}", name_, what));
  }

  bool gzip() const { return gzip_; }
  // Size of the raw input (the compressed size for gzip).
  std::uint64_t size() const { return size_; }

  std::size_t read(unsigned char* out, std::size_t n) {
    return gzip_ ? read_gzip(out, n) : read_plain(out, n);
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

  void start() {
    gzip_ = ensure(2) && next_[0] == 0x1f && next_[1] == 0x8b;
    if (gzip_) {
      // 15 + 16: a gzip wrapper (header and CRC-32/length trailer) around a 32 KiB-window stream.
      if (inflateInit2(&stream_, 15 + 16) != Z_OK) fail("cannot start gzip decompression");
      inflating_ = true;
    }
  }

  // Makes more raw bytes available at next_ (keeping the unconsumed ones); false at the end.
  bool refill() {
    if (!file_) return false;  // memory: everything was available from the start
    if (avail_ > 0 && next_ != buffer_.data()) std::memmove(buffer_.data(), next_, avail_);
    const std::size_t got =
        std::fread(buffer_.data() + avail_, 1, buffer_.size() - avail_, file_.get());
    if (got == 0 && std::ferror(file_.get()) != 0) {
      fail(fmt::format("read error: {}", std::strerror(errno)));
    }
    next_ = buffer_.data();
    avail_ += got;
    return got > 0;
  }

  // True when at least `n` (<= kInputBytes) raw bytes are available.
  bool ensure(std::size_t n) {
    while (avail_ < n) {
      if (!refill()) return false;
    }
    return true;
  }

  std::size_t read_plain(unsigned char* out, std::size_t n) {
    std::size_t total = 0;
    while (total < n && (avail_ > 0 || refill())) {
      const std::size_t count = std::min(avail_, n - total);
      std::memcpy(out + total, next_, count);
      next_ += count;
      avail_ -= count;
      total += count;
    }
    return total;
  }

  // Decompresses into `out`; returns once at least one byte is produced (0 at the end). After a
  // complete gzip member another one may follow (as `cat a.gz b.gz` makes); anything else after
  // a complete member is ignored, as zlib's gzread does.
  std::size_t read_gzip(unsigned char* out, std::size_t n) {
    if (done_ || n == 0) return 0;
    const auto want = static_cast<uInt>(std::min<std::size_t>(n, UINT_MAX));
    stream_.next_out = out;
    stream_.avail_out = want;
    while (stream_.avail_out == want) {
      if (member_ended_) {
        if (!ensure(2) || next_[0] != 0x1f || next_[1] != 0x8b) {
          done_ = true;
          break;
        }
        if (inflateReset(&stream_) != Z_OK) fail("cannot restart gzip decompression");
        member_ended_ = false;
      }
      if (avail_ == 0 && !refill()) fail("gzip stream is truncated (unexpected end of file)");
      stream_.next_in = next_;
      stream_.avail_in = static_cast<uInt>(std::min<std::size_t>(avail_, UINT_MAX));
      const uInt offered = stream_.avail_in;
      const int code = inflate(&stream_, Z_NO_FLUSH);
      const std::size_t consumed = offered - stream_.avail_in;
      next_ += consumed;
      avail_ -= consumed;
      stream_.next_in = nullptr;
      stream_.avail_in = 0;
      if (code == Z_STREAM_END) {
        member_ended_ = true;
      } else if (code == Z_MEM_ERROR) {
        fail("out of memory while decompressing");
      } else if (code != Z_OK) {
        fail(fmt::format("corrupt gzip data: {}", stream_.msg != nullptr ? stream_.msg : "?"));
      } else if (consumed == 0 && stream_.avail_out == want) {
        fail("corrupt gzip data: decompression makes no progress");
      }
    }
    return want - stream_.avail_out;
  }

  std::string name_;
  std::unique_ptr<std::FILE, FileCloser> file_;
  std::vector<unsigned char> buffer_;    // read-ahead of a file
  const unsigned char* next_ = nullptr;  // the raw bytes not consumed yet ...
  std::size_t avail_ = 0;                // ... and their count
  std::uint64_t size_ = 0;
  bool gzip_ = false;
  z_stream stream_{};
  bool inflating_ = false;
  bool member_ended_ = false;
  bool done_ = false;
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
void decode(IdxType type, const unsigned char* bytes, std::size_t count, Values& out) {
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

namespace {

IdxData read_idx_from(Source& source, std::uint64_t max_elements) {
  const char* kind = source.gzip() ? "decompressed data" : "file";

  std::array<unsigned char, 4> magic{};
  const std::size_t got_magic = source.read_fully(magic.data(), magic.size());
  if (got_magic < magic.size()) {
    source.fail(fmt::format("{} is too short for an IDX header ({} bytes, need at least 4)", kind,
                            got_magic));
  }
  if (magic[0] != 0 || magic[1] != 0) {
    source.fail(
        fmt::format("bad magic: expected 00 00 <type> <ndims>, got {:02x} {:02x} {:02x} "
                    "{:02x} (not an IDX file)",
                    magic[0], magic[1], magic[2], magic[3]));
  }
  if (!known_type(magic[2])) {
    source.fail(
        fmt::format("unknown element type 0x{:02x} (expected 0x08 ubyte, 0x09 sbyte, 0x0B "
                    "int16, 0x0C int32, 0x0D float32 or 0x0E float64)",
                    magic[2]));
  }
  const auto type = static_cast<IdxType>(magic[2]);
  const std::size_t ndims = magic[3];
  if (ndims < 1 || ndims > kMaxDims) {
    source.fail(fmt::format("dimension count {} is outside 1..{}", ndims, kMaxDims));
  }

  std::array<unsigned char, 4 * kMaxDims> dim_bytes{};
  const std::size_t got_dims = source.read_fully(dim_bytes.data(), 4 * ndims);
  if (got_dims < 4 * ndims) {
    source.fail(fmt::format("header is truncated: {} dimensions need {} bytes, got {}", ndims,
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
        source.fail(fmt::format("dimensions {} overflow a 64-bit element count", shape));
      }
    }
  }
  if (numel > max_elements) {
    source.fail(fmt::format("dimensions {} claim {} elements, more than the limit of {}", shape,
                            numel, max_elements));
  }
  const std::size_t element_size = idx_element_size(type);
  const std::uint64_t header_bytes = 4 + 4 * ndims;
  std::uint64_t payload_bytes = 0;
  if (__builtin_mul_overflow(numel, element_size, &payload_bytes)) {
    source.fail(fmt::format("dimensions {} overflow a 64-bit byte count", shape));
  }

  // A plain file's size is known up front: a lying header fails before any allocation.
  if (!source.gzip()) {
    const std::uint64_t expected = header_bytes + payload_bytes;
    if (source.size() < expected) {
      source.fail(
          fmt::format("payload is truncated: dimensions {} need {} bytes after the "
                      "{}-byte header, the file has {}",
                      shape, payload_bytes, header_bytes,
                      source.size() - std::min(source.size(), header_bytes)));
    }
    if (source.size() > expected) {
      source.fail(fmt::format("{} trailing bytes after the {}-byte payload of dimensions {}",
                              source.size() - expected, payload_bytes, shape));
    }
  }

  IdxData data;
  data.type = type;
  data.shape = shape;
  // Plain files were size-checked above; gzip streams grow the buffer only as data arrives, from
  // a start small enough that a tiny file with a lying header costs next to nothing.
  data.values.reserve(source.gzip() ? std::min<std::uint64_t>(numel, kGzipStartElements) : numel);
  std::vector<unsigned char> chunk(
      std::min<std::uint64_t>(payload_bytes, source.gzip() ? kGzipChunkBytes : kChunkBytes));
  std::uint64_t remaining = payload_bytes;
  while (remaining > 0) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, chunk.size()));
    const std::size_t got = source.read_fully(chunk.data(), want);
    if (got < want) {
      source.fail(
          fmt::format("payload is truncated: dimensions {} need {} bytes, the {} ends "
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
    source.fail(fmt::format("trailing bytes in the {} after the {}-byte payload of dimensions {}",
                            kind, payload_bytes, shape));
  }
  return data;
}

}  // namespace

IdxData read_idx(const std::filesystem::path& path, std::uint64_t max_elements) {
  Source source(path);
  return read_idx_from(source, max_elements);
}

IdxData read_idx_bytes(std::span<const std::uint8_t> bytes, std::string_view name,
                       std::uint64_t max_elements) {
  Source source(bytes, name);
  return read_idx_from(source, max_elements);
}

Tensor read_idx_tensor(const std::filesystem::path& path, std::uint64_t max_elements) {
  IdxData data = read_idx(path, max_elements);
  return Tensor::from_values(std::move(data.values), data.shape);
}

}  // namespace tapegrad::io
