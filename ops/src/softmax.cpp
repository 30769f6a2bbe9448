// Softmax, log-softmax and logsumexp along one axis: fused, stable kernels and their rules.
// Formulas in softmax.hpp.
#include "tapegrad/ops/softmax.hpp"

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

// For each (outer, inner) line along the axis: its max m and s = sum_k e^(x_k - m).
// x [outer, n, inner] -> max, sum_exp [outer, inner]
void line_max_and_sum_exp(std::span<const double> x, const kernels::AxisSplit& s,
                          std::vector<double>& max, std::vector<double>& sum_exp) {
  max.assign(s.outer * s.inner, -INFINITY);
  sum_exp.assign(s.outer * s.inner, 0.0);
  for (std::size_t o = 0; o < s.outer; ++o) {
    for (std::size_t k = 0; k < s.n; ++k) {
      for (std::size_t i = 0; i < s.inner; ++i) {
        double& m = max[o * s.inner + i];
        m = std::max(m, x[(o * s.n + k) * s.inner + i]);
      }
    }
    for (std::size_t k = 0; k < s.n; ++k) {
      for (std::size_t i = 0; i < s.inner; ++i) {
        sum_exp[o * s.inner + i] += std::exp(x[(o * s.n + k) * s.inner + i] - max[o * s.inner + i]);
      }
    }
  }
}
}  // namespace

Tensor softmax(const Tensor& x, std::int64_t axis, std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "softmax");
  kernels::require_nonempty_axis(x.shape(), s, "softmax");
  const std::span<const double> xv = x.values();
  std::vector<double> max, sum_exp;
  line_max_and_sum_exp(xv, s, max, sum_exp);
  std::vector<double> y(xv.size());
  for (std::size_t o = 0; o < s.outer; ++o) {
    for (std::size_t k = 0; k < s.n; ++k) {
      for (std::size_t i = 0; i < s.inner; ++i) {
        const std::size_t at = (o * s.n + k) * s.inner + i;
        y[at] = std::exp(xv[at] - max[o * s.inner + i]) / sum_exp[o * s.inner + i];
      }
    }
  }
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
  std::vector<double> max, sum_exp;
  line_max_and_sum_exp(xv, s, max, sum_exp);
  std::vector<double> y(xv.size());
  for (std::size_t o = 0; o < s.outer; ++o) {
    for (std::size_t k = 0; k < s.n; ++k) {
      for (std::size_t i = 0; i < s.inner; ++i) {
        const std::size_t at = (o * s.n + k) * s.inner + i;
        y[at] = xv[at] - max[o * s.inner + i] - std::log(sum_exp[o * s.inner + i]);
      }
    }
  }
  const auto a = static_cast<std::int64_t>(s.axis);
  return record(
      {"log_softmax", "dx = g - exp(y) * sum(g, axis)"}, x.shape(), std::move(y), {x},
      [a](const Tensor& g, const Tensor& y, Inputs) { return Grads{g - exp(y) * sum(g, a, true)}; },
      where);
}

Tensor logsumexp(const Tensor& x, std::int64_t axis, bool keepdim, std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "logsumexp");
  kernels::require_nonempty_axis(x.shape(), s, "logsumexp");
  std::vector<double> max, sum_exp;
  line_max_and_sum_exp(x.values(), s, max, sum_exp);
  std::vector<double> y(max.size());
  for (std::size_t j = 0; j < y.size(); ++j) y[j] = max[j] + std::log(sum_exp[j]);
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
