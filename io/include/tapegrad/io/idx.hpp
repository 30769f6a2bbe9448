#pragma once
// IDX files: the format of MNIST and Fashion-MNIST, plain or gzip-compressed.
//
// Layout (all integers big-endian):
//   bytes 0-1   0x00 0x00
//   byte  2     element type: 0x08 ubyte, 0x09 sbyte, 0x0B int16, 0x0C int32, 0x0D float32,
//               0x0E float64
//   byte  3     number of dimensions, 1..8
//   then        one uint32 per dimension
//   then        the elements, row-major, exactly prod(dims) * element size bytes
// A file starting with the gzip magic 1f 8b is decompressed on the fly; the decompressed bytes
// must follow the layout above. As with gzip -d, several gzip members back to back form one
// stream, and bytes after a complete member that do not start another one are ignored.
//
// Reading never trusts the header beyond what the data backs up: the element count is checked
// for overflow and against a limit before anything is allocated, the payload is read in chunks
// (memory grows with the bytes actually present, never beyond what the header claims), and a
// file that ends early or carries bytes after the payload is a FormatError naming the path.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

#include "tapegrad/core/shape.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/io/error.hpp"

namespace tapegrad::io {

enum class IdxType : std::uint8_t {
  UByte = 0x08,
  SByte = 0x09,
  Int16 = 0x0B,
  Int32 = 0x0C,
  Float32 = 0x0D,
  Float64 = 0x0E,
};

// Bytes per element of `type` (1, 1, 2, 4, 4, 8).
std::size_t idx_element_size(IdxType type);

// The contents of an IDX file: its element type, its shape (the header's dimensions) and the
// elements converted to double (exact for every IDX type), row-major.
struct IdxData {
  IdxType type = IdxType::UByte;
  Shape shape;
  Values values;  // shape.numel() elements
};

// Default upper bound on the element count of one IDX file: 2^28 elements, i.e. 2 GiB of
// doubles (Fashion-MNIST's training images are 47 million). Larger claims fail before reading.
inline constexpr std::uint64_t kIdxMaxElements = std::uint64_t{1} << 28;

// Reads an IDX file, plain or gzip. Throws FormatError naming `path` when the file cannot be
// opened, the magic or element type is wrong, the dimension count is outside 1..8, the dimensions
// overflow or exceed `max_elements`, or the payload is shorter or longer than the header says
// (or the gzip stream is corrupt).
IdxData read_idx(const std::filesystem::path& path, std::uint64_t max_elements = kIdxMaxElements);

// read_idx on bytes already in memory (an embedded or downloaded file, plain or gzip), with the
// same checks and messages; `name` stands in for the path in them.
IdxData read_idx_bytes(std::span<const std::uint8_t> bytes, std::string_view name,
                       std::uint64_t max_elements = kIdxMaxElements);

// read_idx as a leaf tensor (requires_grad false) with the header's shape.
Tensor read_idx_tensor(const std::filesystem::path& path,
                       std::uint64_t max_elements = kIdxMaxElements);

}  // namespace tapegrad::io
