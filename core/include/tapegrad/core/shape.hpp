#pragma once
// Shape: the dimensions of a contiguous row-major tensor, and NumPy's broadcasting rules.
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace tapegrad {

class Shape {
 public:
  Shape() = default;  // rank 0: a scalar with one element
  Shape(std::initializer_list<std::int64_t> dims);
  explicit Shape(std::vector<std::int64_t> dims);

  std::size_t rank() const { return dims_.size(); }
  // Number of elements: the product of the dimensions (1 for a scalar).
  std::size_t numel() const;
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
