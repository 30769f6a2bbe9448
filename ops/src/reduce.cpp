// Reductions over all elements or one axis: each kernel, then its rule. Formulas in reduce.hpp.
#include "tapegrad/ops/reduce.hpp"

#include <algorithm>
#include <cmath>
#include <string_view>

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

// "v beats m" for max and min. A NaN beats everything and nothing beats a NaN, so a line with a
// NaN anywhere reduces to NaN (std::max keeps its first argument when either is NaN, which
// dropped a NaN unless it came first).
bool greater(double v, double m) {
  return v > m || (std::isnan(v) && !std::isnan(m));
}
bool less(double v, double m) {
  return v < m || (std::isnan(v) && !std::isnan(m));
}

// The index of the first element of each line that no later element beats.
// x [outer, n, inner] -> [outer, inner]
template <class Beats>
std::vector<std::size_t> first_extreme(std::span<const double> xv, const kernels::AxisSplit& s,
                                       Beats beats) {
  std::vector<std::size_t> at(s.outer * s.inner, 0);
  for (std::size_t o = 0; o < s.outer; ++o) {
    for (std::size_t i = 0; i < s.inner; ++i) {
      std::size_t best = 0;
      for (std::size_t k = 1; k < s.n; ++k) {
        if (beats(xv[(o * s.n + k) * s.inner + i], xv[(o * s.n + best) * s.inner + i])) best = k;
      }
      at[o * s.inner + i] = best;
    }
  }
  return at;
}

template <class Beats>
Values extreme_along(const Tensor& x, const kernels::AxisSplit& s, Beats beats) {
  const std::span<const double> xv = x.values();
  const std::vector<std::size_t> at = first_extreme(xv, s, beats);
  Values y(at.size());
  for (std::size_t o = 0; o < s.outer; ++o) {
    for (std::size_t i = 0; i < s.inner; ++i) {
      y[o * s.inner + i] = xv[(o * s.n + at[o * s.inner + i]) * s.inner + i];
    }
  }
  return y;
}

template <class Beats>
Values arg_extreme_along(const Tensor& x, const kernels::AxisSplit& s, Beats beats) {
  const std::vector<std::size_t> at = first_extreme(x.values(), s, beats);
  return {at.begin(), at.end()};
}

// Weights that share a max's (or min's) gradient among its ties: [x == y] / (number of ties),
// PyTorch's amax/amin rule. A NaN line has no element equal to y = NaN: count 0, and 0/0 = NaN
// over the whole line, as PyTorch's (g / count) * mask.
Tensor extreme_weights(const Tensor& x, const Tensor& y, const kernels::AxisSplit& s) {
  const std::span<const double> xv = x.values();
  const std::span<const double> yv = y.values();
  Values w(xv.size(), 0.0);
  for (std::size_t o = 0; o < s.outer; ++o) {
    for (std::size_t i = 0; i < s.inner; ++i) {
      const double m = yv[o * s.inner + i];
      double count = 0;
      for (std::size_t k = 0; k < s.n; ++k) count += xv[(o * s.n + k) * s.inner + i] == m;
      for (std::size_t k = 0; k < s.n; ++k) {
        const std::size_t at = (o * s.n + k) * s.inner + i;
        w[at] = static_cast<double>(xv[at] == m) / count;
      }
    }
  }
  return Tensor::from_values(std::move(w), x.shape());
}

// n - correction, checked: a ValueError when it leaves no degrees of freedom.
// `line` says what holds the n elements ("axis 1", "the tensor"), for the message.
double degrees_of_freedom(std::string_view op, const Shape& shape, std::string_view line,
                          std::size_t n, double correction) {
  if (!std::isfinite(correction)) {
    throw ValueError(fmt::format("{}: correction must be finite, got {} ({} of shape {})", op,
                                 correction, line, shape));
  }
  const double dof = static_cast<double>(n) - correction;
  if (!(dof > 0.0)) {
    throw ValueError(fmt::format(
        "{}: correction {} leaves no degrees of freedom: {} holds {} elements, n - correction = "
        "{} (shape {}); PyTorch returns inf or NaN here. Use correction = 0 for the spread of a "
        "single sample",
        op, correction, line, n, dof, shape));
  }
  return dof;
}

// sum_k (x_k - mean)^2 / dof along each line, two passes (mean first: no cancellation).
// x [outer, n, inner] -> [outer, inner]
Values line_variance(const Tensor& x, const kernels::AxisSplit& s, double dof) {
  const std::span<const double> xv = x.values();
  Values mean(s.outer * s.inner, 0.0), y(s.outer * s.inner, 0.0);
  for (std::size_t o = 0; o < s.outer; ++o) {
    for (std::size_t k = 0; k < s.n; ++k) {
      for (std::size_t i = 0; i < s.inner; ++i)
        mean[o * s.inner + i] += xv[(o * s.n + k) * s.inner + i];
    }
  }
  for (double& m : mean) m /= static_cast<double>(s.n);
  for (std::size_t o = 0; o < s.outer; ++o) {
    for (std::size_t k = 0; k < s.n; ++k) {
      for (std::size_t i = 0; i < s.inner; ++i) {
        const double d = xv[(o * s.n + k) * s.inner + i] - mean[o * s.inner + i];
        y[o * s.inner + i] += d * d;
      }
    }
  }
  for (double& v : y) v /= dof;
  return y;
}

// var's rule, written in ops (so the rule of std_dev, and second order, reuse it):
//   dx = broadcast(g) * 2 (x - mean(x, axis)) / dof
Tensor var_backward(const Tensor& g, const Tensor& x, std::size_t axis, double dof) {
  const auto a = static_cast<std::int64_t>(axis);
  return expand_over_axis(g, x.shape(), axis) * ((x - mean(x, a, true)) * (2.0 / dof));
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
  Values y(s.outer * s.inner, 0.0);
  // Columns i0 .. i1 - 1 of the outer slices o0 .. o1 - 1, each output summed in order of k.
  const auto add_rows = [&](std::size_t o0, std::size_t o1, std::size_t i0, std::size_t i1) {
    for (std::size_t o = o0; o < o1; ++o) {
      for (std::size_t k = 0; k < s.n; ++k) {
        const double* row = xv.data() + (o * s.n + k) * s.inner;
        double* out = y.data() + o * s.inner;
        for (std::size_t i = i0; i < i1; ++i) out[i] += row[i];
      }
    }
  };
  // Threads share the outputs (every output's additions keep their order): by outer slices, or
  // by columns when there is one slice (a bias gradient's sum over rows).
  if (s.outer > 1) {
    parallel_for(s.outer, parallel_grain_cheap / std::max<std::size_t>(1, s.n * s.inner) + 1,
                 [&](std::size_t o0, std::size_t o1) { add_rows(o0, o1, 0, s.inner); });
  } else {
    parallel_for(s.inner, parallel_grain_cheap / std::max<std::size_t>(1, s.n) + 1,
                 [&](std::size_t i0, std::size_t i1) { add_rows(0, s.outer, i0, i1); });
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
  return record(
      {"max", "dx = broadcast(g) * [x == max] / count"},
      kernels::reduced_shape(x.shape(), s.axis, keepdim), extreme_along(x, s, greater), {x},
      [s](const Tensor& g, const Tensor& y, Inputs in) {
        return Grads{expand_over_axis(g, in[0].shape(), s.axis) * extreme_weights(in[0], y, s)};
      },
      where);
}

Tensor amax(const Tensor& x, std::source_location where) {
  return max(x, where);
}
Tensor amax(const Tensor& x, std::int64_t axis, bool keepdim, std::source_location where) {
  return max(x, axis, keepdim, where);
}

Tensor min(const Tensor& x, std::source_location where) {
  if (x.numel() == 0) {
    throw ShapeError(
        fmt::format("min: cannot take the min of an empty tensor (shape {})", x.shape()));
  }
  return min(reshape(x, {-1}, where), 0, false, where);
}

Tensor min(const Tensor& x, std::int64_t axis, bool keepdim, std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "min");
  kernels::require_nonempty_axis(x.shape(), s, "min");
  return record(
      {"min", "dx = broadcast(g) * [x == min] / count"},
      kernels::reduced_shape(x.shape(), s.axis, keepdim), extreme_along(x, s, less), {x},
      [s](const Tensor& g, const Tensor& y, Inputs in) {
        return Grads{expand_over_axis(g, in[0].shape(), s.axis) * extreme_weights(in[0], y, s)};
      },
      where);
}

Tensor amin(const Tensor& x, std::source_location where) {
  return min(x, where);
}
Tensor amin(const Tensor& x, std::int64_t axis, bool keepdim, std::source_location where) {
  return min(x, axis, keepdim, where);
}

// argmax and argmin are constants: a leaf built from the values, never recorded.
Tensor argmax(const Tensor& x, std::source_location) {
  if (x.numel() == 0) {
    throw ShapeError(
        fmt::format("argmax: cannot take the argmax of an empty tensor (shape {})", x.shape()));
  }
  const Shape flat{static_cast<std::int64_t>(x.numel())};
  return Tensor::from_values(arg_extreme_along(x, kernels::split_at(flat, 0, "argmax"), greater),
                             Shape{});
}

Tensor argmax(const Tensor& x, std::int64_t axis, bool keepdim, std::source_location) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "argmax");
  kernels::require_nonempty_axis(x.shape(), s, "argmax");
  return Tensor::from_values(arg_extreme_along(x, s, greater),
                             kernels::reduced_shape(x.shape(), s.axis, keepdim));
}

Tensor argmin(const Tensor& x, std::source_location) {
  if (x.numel() == 0) {
    throw ShapeError(
        fmt::format("argmin: cannot take the argmin of an empty tensor (shape {})", x.shape()));
  }
  const Shape flat{static_cast<std::int64_t>(x.numel())};
  return Tensor::from_values(arg_extreme_along(x, kernels::split_at(flat, 0, "argmin"), less),
                             Shape{});
}

Tensor argmin(const Tensor& x, std::int64_t axis, bool keepdim, std::source_location) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "argmin");
  kernels::require_nonempty_axis(x.shape(), s, "argmin");
  return Tensor::from_values(arg_extreme_along(x, s, less),
                             kernels::reduced_shape(x.shape(), s.axis, keepdim));
}

Tensor var(const Tensor& x, std::int64_t axis, double correction, bool keepdim,
           std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "var");
  kernels::require_nonempty_axis(x.shape(), s, "var");
  const double dof =
      degrees_of_freedom("var", x.shape(), fmt::format("axis {}", s.axis), s.n, correction);
  const std::size_t a = s.axis;
  return record(
      {"var", "dx = broadcast(g) * 2 (x - mean(x)) / (n - correction)"},
      kernels::reduced_shape(x.shape(), a, keepdim), line_variance(x, s, dof), {x},
      [a, dof](const Tensor& g, const Tensor&, Inputs in) {
        return Grads{var_backward(g, in[0], a, dof)};
      },
      where);
}

Tensor var(const Tensor& x, VarOptions options, std::source_location where) {
  if (x.numel() == 0) {
    throw ShapeError(
        fmt::format("var: cannot take the variance of an empty tensor (shape {})", x.shape()));
  }
  degrees_of_freedom("var", x.shape(), "the tensor", x.numel(), options.correction);
  return var(reshape(x, {-1}, where), 0, options.correction, false, where);
}

Tensor std_dev(const Tensor& x, std::int64_t axis, double correction, bool keepdim,
               std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "std_dev");
  kernels::require_nonempty_axis(x.shape(), s, "std_dev");
  const double dof =
      degrees_of_freedom("std_dev", x.shape(), fmt::format("axis {}", s.axis), s.n, correction);
  Values y = line_variance(x, s, dof);
  for (double& v : y) v = std::sqrt(v);
  const std::size_t a = s.axis;
  return record(
      {"std_dev", "dx = var's rule of g / (2 y), 0 where y == 0"},
      kernels::reduced_shape(x.shape(), a, keepdim), std::move(y), {x},
      [a, dof](const Tensor& g, const Tensor& y, Inputs in) {
        // dy/dvar = 1 / (2 y). Where y == 0 the line is constant, every deviation is 0, and
        // PyTorch sends 0; y + [y == 0] keeps the division away from 0/0 there.
        const Tensor zero = Tensor::from_values(
            kernels::map(y, [](double v) { return v == 0.0 ? 1.0 : 0.0; }), y.shape());
        const Tensor g_var = g * (1.0 - zero) / ((y + zero) * 2.0);
        return Grads{var_backward(g_var, in[0], a, dof)};
      },
      where);
}

Tensor std_dev(const Tensor& x, VarOptions options, std::source_location where) {
  if (x.numel() == 0) {
    throw ShapeError(fmt::format(
        "std_dev: cannot take the standard deviation of an empty tensor (shape {})", x.shape()));
  }
  degrees_of_freedom("std_dev", x.shape(), "the tensor", x.numel(), options.correction);
  return std_dev(reshape(x, {-1}, where), 0, options.correction, false, where);
}

}  // namespace tapegrad
