#pragma once
// Private helpers shared by the op kernels: elementwise maps and the outer/axis/inner split that
// every reduction along one axis uses. Not installed; ops/ code only.
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "tapegrad/core/broadcast.hpp"
#include "tapegrad/core/parallel.hpp"
#include "tapegrad/core/tensor.hpp"

namespace tapegrad::kernels {

// Calls f(i) for every i in [0, n), the range split across threads when n >= 2 grain
// (parallel.hpp). f must only write what element i owns.
template <class F>
[[gnu::noinline]] void for_each_element_split(std::size_t n, std::size_t grain, F f) {
  parallel_for(n, grain, [&f](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) f(i);
  });
}
template <class F>
void for_each_element(std::size_t n, std::size_t grain, F f) {
  // Small ranges (every scalar op) loop here; the closures the pool needs are built in a
  // function of their own, so the compiler does not build them before this test. Callers' `f`
  // copy their pointers rather than refer to them, so nothing needs to be in memory here either.
  if (n / 2 < grain) [[likely]] {
    for (std::size_t i = 0; i < n; ++i) f(i);
    return;
  }
  for_each_element_split(n, grain, f);
}

// y[i] = f(x[i]). `grain`: parallel_grain_costly for maps that call into libm.
template <class F>
Values map(const Tensor& x, F f, std::size_t grain = parallel_grain_cheap) {
  const std::span<const double> xv = x.values();
  Values y(xv.size());
  // Pointers copied into the closure (not referenced): see for_each_element.
  for_each_element(xv.size(), grain,
                   [out = y.data(), in = xv.data(), f](std::size_t i) { out[i] = f(in[i]); });
  return y;
}

// z[i] = f(a[i], b[i]) for two tensors of one shape (the caller checks it).
template <class F>
Values map2(const Tensor& a, const Tensor& b, F f, std::size_t grain = parallel_grain_cheap) {
  const std::span<const double> av = a.values();
  Values z(av.size());
  for_each_element(av.size(), grain,
                   [out = z.data(), ap = av.data(), bp = b.values().data(), f](std::size_t i) {
                     out[i] = f(ap[i], bp[i]);
                   });
  return z;
}

// detail::for_each_broadcast(out, a_strides, b_strides, fn) with the rows (runs of the last axis)
// shared by the threads, at least ~`grain` elements of out per thread. fn must only write what
// output element o owns.
template <class Fn>
void for_each_broadcast_split(const Shape& out, const std::vector<std::size_t>& a_strides,
                              const std::vector<std::size_t>& b_strides, std::size_t grain, Fn fn) {
  if (out.numel() == 0) return;
  const std::size_t row = out.rank() == 0 ? 1 : static_cast<std::size_t>(out[out.rank() - 1]);
  parallel_for(out.numel() / row, grain / row + 1, [&](std::size_t first, std::size_t last) {
    detail::for_each_broadcast_rows(out, a_strides, b_strides, first, last, fn);
  });
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
