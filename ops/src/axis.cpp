#include <fmt/format.h>

#include "kernels.hpp"
#include "tapegrad/core/error.hpp"

namespace tapegrad::kernels {

AxisSplit split_at(const Shape& shape, std::int64_t axis, std::string_view op) {
  AxisSplit split;
  split.axis = shape.normalize_axis(axis, op);
  for (std::size_t d = 0; d < split.axis; ++d) split.outer *= static_cast<std::size_t>(shape[d]);
  split.n = static_cast<std::size_t>(shape[split.axis]);
  for (std::size_t d = split.axis + 1; d < shape.rank(); ++d) {
    split.inner *= static_cast<std::size_t>(shape[d]);
  }
  return split;
}

Shape reduced_shape(const Shape& shape, std::size_t axis, bool keepdim) {
  std::vector<std::int64_t> dims = shape.dims();
  if (keepdim) {
    dims[axis] = 1;
  } else {
    dims.erase(dims.begin() + static_cast<std::ptrdiff_t>(axis));
  }
  return Shape(std::move(dims));
}

void require_nonempty_axis(const Shape& shape, const AxisSplit& split, std::string_view op) {
  if (split.n == 0) {
    throw ShapeError(
        fmt::format("{}: cannot reduce over an empty axis (axis {} of shape {}); is the "
                    "batch empty, or does a layer have 0 outputs?",
                    op, split.axis, shape));
  }
}

}  // namespace tapegrad::kernels
