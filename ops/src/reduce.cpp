// Reductions over all elements or one axis: each kernel, then its rule. Formulas in reduce.hpp.
#include "tapegrad/ops/reduce.hpp"

#include <fmt/format.h>

#include "kernels.hpp"
#include "tapegrad/core/broadcast.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad {

namespace {
using Inputs = std::span<const Tensor>;
using Grads = TensorList;

// The gradient of a reduction, spread back over the reduced axis: g [reduced] -> [x.shape()].
Tensor expand_over_axis(const Tensor& g, const Shape& x_shape, std::size_t axis) {
  return broadcast_to(reshape(g, kernels::reduced_shape(x_shape, axis, true).dims()), x_shape);
}

// Weights that share a max's gradient among its maxima: [x == max] / (number of maxima).
Tensor max_weights(const Tensor& x, const Tensor& y, const kernels::AxisSplit& s) {
  const std::span<const double> xv = x.values();
  const std::span<const double> yv = y.values();
  std::vector<double> w(xv.size(), 0.0);
  for (std::size_t o = 0; o < s.outer; ++o) {
    for (std::size_t i = 0; i < s.inner; ++i) {
      const double m = yv[o * s.inner + i];
      double count = 0;
      for (std::size_t k = 0; k < s.n; ++k) count += xv[(o * s.n + k) * s.inner + i] == m;
      for (std::size_t k = 0; k < s.n; ++k) {
        const std::size_t at = (o * s.n + k) * s.inner + i;
        if (xv[at] == m) w[at] = 1.0 / count;
      }
    }
  }
  return Tensor::from_values(std::move(w), x.shape());
}
}  // namespace

Tensor sum(const Tensor& x, std::source_location where) {
  double total = 0.0;
  for (double v : x.values()) total += v;
  return record(
      {"sum", "dx = broadcast_to(g, x.shape)"}, Shape{}, {total}, {x},
      [](const Tensor& g, const Tensor&, Inputs in) {
        return Grads{broadcast_to(g, in[0].shape())};
      },
      where);
}

Tensor sum(const Tensor& x, std::int64_t axis, bool keepdim, std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "sum");
  // x [outer, n, inner] -> y [outer, inner]
  const std::span<const double> xv = x.values();
  std::vector<double> y(s.outer * s.inner, 0.0);
  for (std::size_t o = 0; o < s.outer; ++o) {
    for (std::size_t k = 0; k < s.n; ++k) {
      const double* row = xv.data() + (o * s.n + k) * s.inner;
      double* out = y.data() + o * s.inner;
      for (std::size_t i = 0; i < s.inner; ++i) out[i] += row[i];
    }
  }
  const std::size_t a = s.axis;
  return record(
      {"sum", "dx = broadcast_to(g, x.shape)"}, kernels::reduced_shape(x.shape(), a, keepdim),
      std::move(y), {x},
      [a](const Tensor& g, const Tensor&, Inputs in) {
        return Grads{expand_over_axis(g, in[0].shape(), a)};
      },
      where);
}

Tensor mean(const Tensor& x, std::source_location where) {
  if (x.numel() == 0) {
    throw ShapeError(fmt::format("mean: cannot average an empty tensor (shape {})", x.shape()));
  }
  return div(sum(x, where), scalar(static_cast<double>(x.numel())), where);
}

Tensor mean(const Tensor& x, std::int64_t axis, bool keepdim, std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "mean");
  kernels::require_nonempty_axis(x.shape(), s, "mean");
  return div(sum(x, axis, keepdim, where), scalar(static_cast<double>(s.n)), where);
}

Tensor max(const Tensor& x, std::source_location where) {
  if (x.numel() == 0) {
    throw ShapeError(
        fmt::format("max: cannot take the max of an empty tensor (shape {})", x.shape()));
  }
  return max(reshape(x, {-1}, where), 0, false, where);
}

Tensor max(const Tensor& x, std::int64_t axis, bool keepdim, std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "max");
  kernels::require_nonempty_axis(x.shape(), s, "max");
  // x [outer, n, inner] -> y [outer, inner]
  const std::span<const double> xv = x.values();
  std::vector<double> y(s.outer * s.inner);
  for (std::size_t o = 0; o < s.outer; ++o) {
    for (std::size_t i = 0; i < s.inner; ++i) {
      double m = xv[o * s.n * s.inner + i];
      for (std::size_t k = 1; k < s.n; ++k) m = std::max(m, xv[(o * s.n + k) * s.inner + i]);
      y[o * s.inner + i] = m;
    }
  }
  return record(
      {"max", "dx = broadcast(g) * [x == max] / count"},
      kernels::reduced_shape(x.shape(), s.axis, keepdim), std::move(y), {x},
      [s](const Tensor& g, const Tensor& y, Inputs in) {
        return Grads{expand_over_axis(g, in[0].shape(), s.axis) * max_weights(in[0], y, s)};
      },
      where);
}

}  // namespace tapegrad
