#pragma once
// Private helpers shared by the op kernels: elementwise maps and the outer/axis/inner split that
// every reduction along one axis uses. Not installed; ops/ code only.
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad::kernels {

// y[i] = f(x[i])
template <class F>
Values map(const Tensor& x, F f) {
  const std::span<const double> xv = x.values();
  Values y(xv.size());
  for (std::size_t i = 0; i < xv.size(); ++i) y[i] = f(xv[i]);
  return y;
}

// A tensor seen as [outer, n, inner] around one axis: element (o, k, i) is at (o * n + k) * inner +
// i.
struct AxisSplit {
  std::size_t outer = 1;
  std::size_t n = 1;
  std::size_t inner = 1;
  std::size_t axis = 0;
};
AxisSplit split_at(const Shape& shape, std::int64_t axis, std::string_view op);

// The shape after reducing `axis`: kept with size 1 (keepdim) or removed.
Shape reduced_shape(const Shape& shape, std::size_t axis, bool keepdim);

// Throws ShapeError when the axis is empty: "<op>: cannot take <op> over an empty axis ...".
void require_nonempty_axis(const Shape& shape, const AxisSplit& split, std::string_view op);

// Did the rule's input k ask for a gradient? Rules skip the work for constants.
inline bool needs_grad(std::span<const Tensor> inputs, std::size_t k) {
  return inputs[k].requires_grad();
}

}  // namespace tapegrad::kernels
