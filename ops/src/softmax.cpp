// Softmax, log-softmax and logsumexp along one axis: fused, stable kernels and their rules.
// Formulas in softmax.hpp.
#include "tapegrad/ops/softmax.hpp"

#include <algorithm>
#include <cmath>

#include "kernels.hpp"
#include "tapegrad/core/broadcast.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape_ops.hpp"
#include "tapegrad/ops/unary.hpp"

namespace tapegrad {

namespace {
using Inputs = std::span<const Tensor>;
using Grads = TensorList;

// For each (outer, inner) line along the axis: its max m (NaN if the line holds one) and
// s = sum_k e^(x_k - shift(m)). softmax and log_softmax shift by m itself, as PyTorch's kernels:
// a line that is all -inf, or holds +inf, gives inf - inf = NaN, as in PyTorch. logsumexp shifts
// an infinite m by 0 instead (PyTorch's logsumexp does), so an all -inf line sums to 0 and its
// log is -inf, and a +inf element makes the sum, and the log, +inf.
// x [outer, n, inner] -> max, sum_exp [outer, inner], for the outer slices first .. last - 1;
// and each e^(x - shift(max)) into `exps` [outer, n, inner] unless it is null.
template <class Shift>
void line_max_and_sum_exp(std::span<const double> x, const kernels::AxisSplit& s, double* max,
                          double* sum_exp, Shift shift, std::size_t first, std::size_t last,
                          double* exps = nullptr) {
  for (std::size_t o = first; o < last; ++o) {
    for (std::size_t i = 0; i < s.inner; ++i) {
      max[o * s.inner + i] = -INFINITY;
      sum_exp[o * s.inner + i] = 0.0;
    }
    for (std::size_t k = 0; k < s.n; ++k) {
      for (std::size_t i = 0; i < s.inner; ++i) {
        double& m = max[o * s.inner + i];
        const double v = x[(o * s.n + k) * s.inner + i];
        if (!std::isnan(m) && (v > m || std::isnan(v))) m = v;  // a NaN, once met, stays
      }
    }
    for (std::size_t k = 0; k < s.n; ++k) {
      for (std::size_t i = 0; i < s.inner; ++i) {
        const std::size_t at = (o * s.n + k) * s.inner + i;
        const double e = std::exp(x[at] - shift(max[o * s.inner + i]));
        sum_exp[o * s.inner + i] += e;
        if (exps != nullptr) exps[at] = e;
      }
    }
  }
}

// Outer slices are independent: threads share them, each slice at least ~parallel_grain_costly
// elements' worth of exp.
std::size_t slices_per_thread(const kernels::AxisSplit& s) {
  return parallel_grain_costly / std::max<std::size_t>(1, s.n * s.inner) + 1;
}

double by_max(double m) {
  return m;
}
double by_finite_max(double m) {
  return std::isinf(m) ? 0.0 : m;
}
}  // namespace

Tensor softmax(const Tensor& x, std::int64_t axis, std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "softmax");
  kernels::require_nonempty_axis(x.shape(), s, "softmax");
  const std::span<const double> xv = x.values();
  Values max(s.outer * s.inner), sum_exp(s.outer * s.inner), y(xv.size());
  parallel_for(s.outer, slices_per_thread(s), [&](std::size_t first, std::size_t last) {
    // y holds e^(x - max) first (each computed once), then is divided by the sums.
    line_max_and_sum_exp(xv, s, max.data(), sum_exp.data(), by_max, first, last, y.data());
    for (std::size_t o = first; o < last; ++o) {
      for (std::size_t k = 0; k < s.n; ++k) {
        for (std::size_t i = 0; i < s.inner; ++i) {
          y[(o * s.n + k) * s.inner + i] /= sum_exp[o * s.inner + i];
        }
      }
    }
  });
  const auto a = static_cast<std::int64_t>(s.axis);
  return record(
      {"softmax", "dx = y * (g - sum(g * y, axis))"}, x.shape(), std::move(y), {x},
      [a](const Tensor& g, const Tensor& y, Inputs) {
        return Grads{y * (g - sum(g * y, a, true))};
      },
      where);
}

Tensor log_softmax(const Tensor& x, std::int64_t axis, std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "log_softmax");
  kernels::require_nonempty_axis(x.shape(), s, "log_softmax");
  const std::span<const double> xv = x.values();
  Values max(s.outer * s.inner), sum_exp(s.outer * s.inner), y(xv.size());
  parallel_for(s.outer, slices_per_thread(s), [&](std::size_t first, std::size_t last) {
    line_max_and_sum_exp(xv, s, max.data(), sum_exp.data(), by_max, first, last);
    for (std::size_t o = first; o < last; ++o) {
      for (std::size_t k = 0; k < s.n; ++k) {
        for (std::size_t i = 0; i < s.inner; ++i) {
          const std::size_t at = (o * s.n + k) * s.inner + i;
          y[at] = xv[at] - max[o * s.inner + i] - std::log(sum_exp[o * s.inner + i]);
        }
      }
    }
  });
  const auto a = static_cast<std::int64_t>(s.axis);
  return record(
      {"log_softmax", "dx = g - exp(y) * sum(g, axis)"}, x.shape(), std::move(y), {x},
      [a](const Tensor& g, const Tensor& y, Inputs) { return Grads{g - exp(y) * sum(g, a, true)}; },
      where);
}

Tensor logsumexp(const Tensor& x, std::int64_t axis, bool keepdim, std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "logsumexp");
  kernels::require_nonempty_axis(x.shape(), s, "logsumexp");
  Values max(s.outer * s.inner), sum_exp(s.outer * s.inner);
  parallel_for(s.outer, slices_per_thread(s), [&](std::size_t first, std::size_t last) {
    line_max_and_sum_exp(x.values(), s, max.data(), sum_exp.data(), by_finite_max, first, last);
  });
  Values y(max.size());
  for (std::size_t j = 0; j < y.size(); ++j) y[j] = by_finite_max(max[j]) + std::log(sum_exp[j]);
  const std::size_t a = s.axis;
  return record(
      {"logsumexp", "dx = g * exp(x - y)"}, kernels::reduced_shape(x.shape(), a, keepdim),
      std::move(y), {x},
      [a](const Tensor& g, const Tensor& y, Inputs in) {
        const Shape kept = kernels::reduced_shape(in[0].shape(), a, true);
        const Tensor g_kept = reshape(g, kept.dims());
        const Tensor y_kept = reshape(y, kept.dims());
        return Grads{g_kept * exp(in[0] - y_kept)};
      },
      where);
}

}  // namespace tapegrad
