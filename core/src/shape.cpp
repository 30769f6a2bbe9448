#include "tapegrad/core/shape.hpp"

#include <cstdint>
#include <limits>
#include <string>

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"

namespace tapegrad {

const std::vector<std::int64_t> Shape::no_dims;

namespace {
std::string format_dims(const std::vector<std::int64_t>& dims) {
  return fmt::format("[{}]", fmt::join(dims, ", "));
}
}  // namespace

Shape::Shape(std::initializer_list<std::int64_t> dims) : Shape(std::vector<std::int64_t>(dims)) {}

Shape::Shape(std::vector<std::int64_t> dims) {
  if (dims.empty()) return;
  // The product is taken over the non-zero dimensions with an overflow check, so that an empty
  // shape such as [0, 2^62, 2^62] stays valid (as in PyTorch) and no product ever wraps.
  std::size_t nonzero_product = 1;
  bool overflow = false;
  bool empty = false;
  for (std::int64_t d : dims) {
    if (d < 0) throw ShapeError(fmt::format("Shape: negative dimension in {}", format_dims(dims)));
    if (d == 0) {
      empty = true;
    } else if (!overflow) {
      const auto n = static_cast<std::size_t>(d);
      overflow = nonzero_product > std::numeric_limits<std::size_t>::max() / n;
      if (!overflow) nonzero_product *= n;
    }
  }
  if ((overflow || nonzero_product > max_numel) && !empty) {
    if (overflow) {
      throw ShapeError(fmt::format(
          "Shape: too many elements in {}: the product of the dimensions overflows 64 bits (a "
          "tensor holds at most {} float64 values)",
          format_dims(dims), max_numel));
    }
    throw ShapeError(fmt::format(
        "Shape: too many elements in {}: {} float64 values need {:.4g} bytes, more than any "
        "buffer can hold (at most {} values, {} bytes)",
        format_dims(dims), nonzero_product,
        static_cast<double>(nonzero_product) * static_cast<double>(sizeof(double)), max_numel,
        PTRDIFF_MAX));
  }
  rep_ = new detail::ShapeRep{1, empty ? 0 : nonzero_product, std::move(dims)};
}

std::vector<std::int64_t> Shape::index_of(std::size_t flat) const {
  const std::vector<std::int64_t>& extents = dims();
  std::vector<std::int64_t> index(extents.size());
  for (std::size_t axis = extents.size(); axis-- > 0;) {
    const auto d = static_cast<std::size_t>(extents[axis]);
    index[axis] = static_cast<std::int64_t>(flat % d);
    flat /= d;
  }
  return index;
}

std::vector<std::size_t> Shape::strides() const {
  const std::vector<std::int64_t>& d = dims();
  std::vector<std::size_t> strides(d.size());
  std::size_t stride = 1;
  for (std::size_t i = d.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= static_cast<std::size_t>(d[i]);
  }
  return strides;
}

std::size_t Shape::normalize_axis(std::int64_t axis, std::string_view op) const {
  const auto rank = static_cast<std::int64_t>(this->rank());
  if (rank == 0) {
    throw AxisError(
        fmt::format("{}: axis {} given for a scalar (shape []), which has no axes; call "
                    "the op without an axis, or reshape(x, {{1}}) first",
                    op, axis));
  }
  if (axis < -rank || axis >= rank) {
    throw AxisError(
        fmt::format("{}: axis {} is out of range for a tensor of rank {} (shape {}); "
                    "valid axes are {}..{}",
                    op, axis, rank, *this, -rank, rank - 1));
  }
  return static_cast<std::size_t>(axis < 0 ? axis + rank : axis);
}

Shape broadcast_different_shapes(const Shape& lhs, const Shape& rhs, std::string_view op) {
  const std::size_t rank = std::max(lhs.rank(), rhs.rank());
  std::vector<std::int64_t> dims(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    // Align from the right: missing leading dimensions count as 1.
    const std::int64_t a = i < rank - lhs.rank() ? 1 : lhs[i - (rank - lhs.rank())];
    const std::int64_t b = i < rank - rhs.rank() ? 1 : rhs[i - (rank - rhs.rank())];
    if (a != b && a != 1 && b != 1) {
      throw ShapeError(fmt::format(
          "{}: shapes cannot be broadcast together ({} vs {}); dimension {} is {} vs {}: aligned "
          "from the right, each pair must be equal or contain a 1",
          op, lhs, rhs, static_cast<std::int64_t>(i) - static_cast<std::int64_t>(rank), a, b));
    }
    dims[i] = a == 1 ? b : a;
  }
  try {
    return Shape(std::move(dims));
  } catch (const ShapeError& e) {
    // Two shapes that each fit can broadcast to one that does not ([2^32, 1] vs [1, 2^32]).
    throw ShapeError(fmt::format("{}: broadcasting {} with {}: {}", op, lhs, rhs, e.what()));
  }
}

bool broadcasts_to(const Shape& from, const Shape& to) {
  if (from.rank() > to.rank()) return false;
  const std::size_t offset = to.rank() - from.rank();
  for (std::size_t i = 0; i < from.rank(); ++i) {
    if (from[i] != 1 && from[i] != to[i + offset]) return false;
  }
  return true;
}

}  // namespace tapegrad

fmt::format_context::iterator fmt::formatter<tapegrad::Shape>::format(const tapegrad::Shape& shape,
                                                                      format_context& ctx) const {
  return fmt::formatter<std::string_view>::format(
      fmt::format("[{}]", fmt::join(shape.dims(), ", ")), ctx);
}
