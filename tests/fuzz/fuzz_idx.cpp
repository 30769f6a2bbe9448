// libFuzzer target for the IDX reader (read_idx_bytes, the code behind read_idx).
//
// Each input is read twice: as it is (plain IDX, or gzip when it starts with 1f 8b, so corrupt
// gzip streams are explored too) and, unless it already is gzip, wrapped in a valid gzip stream,
// so the parser is also driven through the decompressor (one member, and split over two). A
// FormatError is the expected outcome for bad input; anything else (another exception type, a
// crash, a sanitizer report) is a bug. All reads must agree: the same data, or all an error.
#include <zlib.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <vector>

#include "tapegrad/core/error.hpp"
#include "tapegrad/io/idx.hpp"

namespace {

using tapegrad::io::IdxData;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "fuzz_idx: %s\n", what);
  std::abort();
}

std::optional<IdxData> read(std::span<const std::uint8_t> bytes, const char* name) {
  try {
    IdxData data = tapegrad::io::read_idx_bytes(bytes, name);
    if (data.values.size() != data.shape.numel()) die("values do not fill the shape");
    return data;
  } catch (const tapegrad::Error&) {
    return std::nullopt;  // expected: a clean error
  }
}

// `bytes` as one gzip member (level 1: the fuzzer wants speed, not ratio).
std::vector<std::uint8_t> gzip(std::span<const std::uint8_t> bytes) {
  z_stream stream{};
  if (deflateInit2(&stream, 1, Z_DEFLATED, 9 + 16, 1, Z_DEFAULT_STRATEGY) != Z_OK) die("deflate");
  std::vector<std::uint8_t> out(deflateBound(&stream, static_cast<uLong>(bytes.size())) + 32);
  stream.next_in = const_cast<Bytef*>(bytes.data());
  stream.avail_in = static_cast<uInt>(bytes.size());
  stream.next_out = out.data();
  stream.avail_out = static_cast<uInt>(out.size());
  if (deflate(&stream, Z_FINISH) != Z_STREAM_END) die("deflate did not finish");
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

bool same(const IdxData& a, const IdxData& b) {
  if (a.type != b.type || a.shape != b.shape || a.values.size() != b.values.size()) return false;
  for (std::size_t i = 0; i < a.values.size(); ++i) {
    if (std::bit_cast<std::uint64_t>(a.values[i]) != std::bit_cast<std::uint64_t>(b.values[i])) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  const std::optional<IdxData> plain = read(bytes, "fuzz.idx");
  if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) return 0;  // already gzip

  // One gzip member.
  const std::vector<std::uint8_t> compressed = gzip(bytes);
  const std::optional<IdxData> unzipped = read(compressed, "fuzz.idx.gz");
  if (plain.has_value() != unzipped.has_value()) die("plain and gzip reads disagree on success");
  if (plain && !same(*plain, *unzipped)) die("plain and gzip reads return different data");

  // Two members back to back (as `cat a.gz b.gz` makes), split somewhere in the middle, then one
  // stray byte, which is ignored after a complete member.
  const std::size_t cut = size == 0 ? 0 : data[size - 1] % (size + 1);
  std::vector<std::uint8_t> members = gzip(bytes.first(cut));
  const std::vector<std::uint8_t> second = gzip(bytes.subspan(cut));
  members.insert(members.end(), second.begin(), second.end());
  members.push_back(0);
  const std::optional<IdxData> joined = read(members, "fuzz-members.idx.gz");
  if (plain.has_value() != joined.has_value()) die("plain and 2-member reads disagree on success");
  if (plain && !same(*plain, *joined)) die("plain and 2-member reads return different data");
  return 0;
}
