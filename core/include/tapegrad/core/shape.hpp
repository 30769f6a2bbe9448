#pragma once
// Shape: the dimensions of a contiguous row-major tensor, and NumPy's broadcasting rules.
//
// A Shape is one pointer: to an immutable, reference-counted record of the dimensions, shared by
// every copy (null for a scalar, so a scalar's shape costs nothing to make, copy or compare). Every
// tensor carries its shape, and most ops copy their input's; a copy is one counter increment
// instead of a vector allocation, and the tensor header stays small.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace tapegrad {

namespace detail {
// Reference counts of the shared records behind Shape and Tensor. Taking a reference is one atomic
// increment. Dropping one is free of atomic operations when the count is 1: whoever holds the only
// reference is the only one who could make another, so nobody can race with it (acquire pairs with
// the release of whoever dropped the count to 1 on another thread).
inline void count_up(std::uint32_t& count) noexcept {
  std::atomic_ref<std::uint32_t>(count).fetch_add(1, std::memory_order_relaxed);
}
// True when the caller dropped the last reference and must free the object.
inline bool count_down(std::uint32_t& count) noexcept {
  std::atomic_ref<std::uint32_t> counter(count);
  if (counter.load(std::memory_order_acquire) == 1) return true;
  return counter.fetch_sub(1, std::memory_order_acq_rel) == 1;
}

struct ShapeRep {
  std::uint32_t refs;
  std::size_t numel;
  std::vector<std::int64_t> dims;
};
}  // namespace detail

class Shape {
 public:
  // The most elements a shape may have: its float64 buffer must be addressable (at most
  // PTRDIFF_MAX bytes, std::vector's own limit), 2^60 - 1 values on a 64-bit platform.
  static constexpr std::size_t max_numel = PTRDIFF_MAX / sizeof(double);

  Shape() noexcept = default;  // rank 0: a scalar with one element
  // Throws ShapeError naming the shape for a negative dimension, or for more than max_numel
  // elements (an element count that overflows 64 bits included): no tensor can have that shape.
  // A shape with a zero dimension has no elements whatever its other dimensions, as in PyTorch.
  Shape(std::initializer_list<std::int64_t> dims);
  explicit Shape(std::vector<std::int64_t> dims);

  Shape(const Shape& other) noexcept : rep_(other.rep_) {
    if (rep_ != nullptr) detail::count_up(rep_->refs);
  }
  Shape(Shape&& other) noexcept : rep_(std::exchange(other.rep_, nullptr)) {}
  Shape& operator=(const Shape& other) noexcept {
    Shape(other).swap(*this);
    return *this;
  }
  Shape& operator=(Shape&& other) noexcept {
    Shape(std::move(other)).swap(*this);
    return *this;
  }
  ~Shape() {
    if (rep_ != nullptr && detail::count_down(rep_->refs)) delete rep_;
  }
  void swap(Shape& other) noexcept { std::swap(rep_, other.rep_); }

  std::size_t rank() const { return rep_ == nullptr ? 0 : rep_->dims.size(); }
  // Number of elements: the product of the dimensions (1 for a scalar), checked at construction.
  std::size_t numel() const { return rep_ == nullptr ? 1 : rep_->numel; }
  // Bytes of this shape's float64 buffer: numel() * sizeof(double), at most PTRDIFF_MAX.
  std::size_t bytes() const { return numel() * sizeof(double); }
  std::int64_t operator[](std::size_t i) const { return rep_->dims[i]; }
  const std::vector<std::int64_t>& dims() const { return rep_ == nullptr ? no_dims : rep_->dims; }
  bool operator==(const Shape& other) const { return rep_ == other.rep_ || dims() == other.dims(); }

  // The multi-index of the element at row-major offset `flat` (gradcheck and check_gradient
  // report positions this way).
  std::vector<std::int64_t> index_of(std::size_t flat) const;

  // Row-major strides in elements: stride[rank-1] = 1.
  std::vector<std::size_t> strides() const;

  // Turns a possibly negative axis into [0, rank); throws AxisError naming `op` otherwise.
  std::size_t normalize_axis(std::int64_t axis, std::string_view op) const;

 private:
  static const std::vector<std::int64_t> no_dims;
  detail::ShapeRep* rep_ = nullptr;  // null: rank 0
};

// NumPy broadcasting: align trailing dimensions; each pair must be equal or contain a 1.
// Throws ShapeError "<op>: shapes cannot be broadcast together ([2, 3] vs [4])".
// Equal shapes (the common case, scalars included) are answered inline.
Shape broadcast_different_shapes(const Shape& lhs, const Shape& rhs, std::string_view op);
inline Shape broadcast_shapes(const Shape& lhs, const Shape& rhs, std::string_view op) {
  if (lhs == rhs) return lhs;
  return broadcast_different_shapes(lhs, rhs, op);
}

// True when `from` broadcasts to exactly `to` (so a gradient of shape `to` can be summed to
// `from`).
bool broadcasts_to(const Shape& from, const Shape& to);

}  // namespace tapegrad

// Prints a shape as "[2, 3]" ("[]" for a scalar).
template <>
struct fmt::formatter<tapegrad::Shape> : fmt::formatter<std::string_view> {
  format_context::iterator format(const tapegrad::Shape& shape, format_context& ctx) const;
};
