#pragma once
// Shape: the dimensions of a contiguous row-major tensor, and NumPy's broadcasting rules.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace tapegrad {

class Shape {
 public:
  // The most elements a shape may have: its float64 buffer must be addressable (at most
  // PTRDIFF_MAX bytes, std::vector's own limit), 2^60 - 1 values on a 64-bit platform.
  static constexpr std::size_t max_numel = PTRDIFF_MAX / sizeof(double);

  Shape() = default;  // rank 0: a scalar with one element
  // Throws ShapeError naming the shape for a negative dimension, or for more than max_numel
  // elements (an element count that overflows 64 bits included): no tensor can have that shape.
  // A shape with a zero dimension has no elements whatever its other dimensions, as in PyTorch.
  Shape(std::initializer_list<std::int64_t> dims);
  explicit Shape(std::vector<std::int64_t> dims);

  std::size_t rank() const { return dims_.size(); }
  // Number of elements: the product of the dimensions (1 for a scalar), checked at construction.
  std::size_t numel() const { return numel_; }
  // Bytes of this shape's float64 buffer: numel() * sizeof(double), at most PTRDIFF_MAX.
  std::size_t bytes() const { return numel_ * sizeof(double); }
  std::int64_t operator[](std::size_t i) const { return dims_[i]; }
  const std::vector<std::int64_t>& dims() const { return dims_; }
  bool operator==(const Shape&) const = default;

  // The multi-index of the element at row-major offset `flat` (gradcheck and check_gradient
  // report positions this way).
  std::vector<std::int64_t> index_of(std::size_t flat) const;

  // Row-major strides in elements: stride[rank-1] = 1.
  std::vector<std::size_t> strides() const;

  // Turns a possibly negative axis into [0, rank); throws AxisError naming `op` otherwise.
  std::size_t normalize_axis(std::int64_t axis, std::string_view op) const;

 private:
  std::vector<std::int64_t> dims_;
  std::size_t numel_ = 1;
};

// NumPy broadcasting: align trailing dimensions; each pair must be equal or contain a 1.
// Throws ShapeError "<op>: shapes cannot be broadcast together ([2, 3] vs [4])".
Shape broadcast_shapes(const Shape& lhs, const Shape& rhs, std::string_view op);

// True when `from` broadcasts to exactly `to` (so a gradient of shape `to` can be summed to
// `from`).
bool broadcasts_to(const Shape& from, const Shape& to);

}  // namespace tapegrad

// Prints a shape as "[2, 3]" ("[]" for a scalar).
template <>
struct fmt::formatter<tapegrad::Shape> : fmt::formatter<std::string_view> {
  format_context::iterator format(const tapegrad::Shape& shape, format_context& ctx) const;
};
