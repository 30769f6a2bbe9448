// where, masked_fill, tril and triu: each kernel, then its rule. Formulas and shapes in mask.hpp.
#include "tapegrad/ops/mask.hpp"

#include <cmath>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "kernels.hpp"
#include "tapegrad/core/broadcast.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"

namespace tapegrad {

namespace {
using Inputs = std::span<const Tensor>;
using Grads = TensorList;

// 1 where t is nonzero, 0 elsewhere, read through t's strides as a tensor of shape `to`.
std::vector<bool> truth_broadcast(const Tensor& t, const Shape& to) {
  const std::span<const double> tv = t.values();
  std::vector<bool> out(to.numel());
  const auto strides = detail::broadcast_strides(t.shape(), to);
  detail::for_each_broadcast(to, strides, strides, [&](std::size_t o, std::size_t ti, std::size_t) {
    out[o] = tv[ti] != 0.0;  // NaN != 0: true, as PyTorch's bool(nan)
  });
  return out;
}

// Lower (keep j - i <= k) or upper (keep j - i >= k) triangle of every [n, m] matrix.
Tensor triangle(const Tensor& x, std::int64_t k, bool lower, std::source_location where) {
  const char* op = lower ? "tril" : "triu";
  if (x.rank() < 2) {
    throw ShapeError(
        fmt::format("{}: needs a tensor of rank >= 2 (the last two dimensions are the "
                    "matrix), got shape {}",
                    op, x.shape()));
  }
  const auto n = static_cast<std::size_t>(x.shape()[x.rank() - 2]);
  const auto m = static_cast<std::size_t>(x.shape()[x.rank() - 1]);
  const std::size_t batch = n * m == 0 ? 0 : x.numel() / (n * m);
  const std::span<const double> xv = x.values();
  // x [batch, n, m] -> y [batch, n, m]
  Values y(xv.size(), 0.0);
  for (std::size_t b = 0; b < batch; ++b) {
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = 0; j < m; ++j) {
        const std::int64_t d = static_cast<std::int64_t>(j) - static_cast<std::int64_t>(i);
        const std::size_t at = (b * n + i) * m + j;
        if (lower ? d <= k : d >= k) y[at] = xv[at];
      }
    }
  }
  return record(
      {op, lower ? "dx = tril(g, k)" : "dx = triu(g, k)"}, x.shape(), std::move(y), {x},
      [k, lower](const Tensor& g, const Tensor&, Inputs) {
        return Grads{lower ? tril(g, k) : triu(g, k)};
      },
      where);
}
}  // namespace

Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b,
             std::source_location location) {
  Shape out;
  try {
    out = broadcast_shapes(broadcast_shapes(condition.shape(), a.shape(), "where"), b.shape(),
                           "where");
  } catch (const ShapeError&) {
    throw ShapeError(
        fmt::format("where: condition, a and b cannot be broadcast together ({} vs {} vs {})",
                    condition.shape(), a.shape(), b.shape()));
  }
  const std::vector<bool> c = truth_broadcast(condition, out);
  const std::span<const double> av = a.values();
  const std::span<const double> bv = b.values();
  Values y(out.numel());
  detail::for_each_broadcast(
      out, detail::broadcast_strides(a.shape(), out), detail::broadcast_strides(b.shape(), out),
      [&](std::size_t o, std::size_t ai, std::size_t bi) { y[o] = c[o] ? av[ai] : bv[bi]; });
  return record(
      {"where", "da = where(c, g, 0), db = where(c, 0, g)"}, std::move(out), std::move(y), {a, b},
      [constant = condition.detach()](const Tensor& g, const Tensor&, Inputs in) {
        const Tensor zero = scalar(0.0);
        return Grads{kernels::needs_grad(in, 0) ? tapegrad::where(constant, g, zero) : Tensor(),
                     kernels::needs_grad(in, 1) ? tapegrad::where(constant, zero, g) : Tensor()};
      },
      location);
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value, std::source_location where) {
  if (!broadcasts_to(mask.shape(), x.shape())) {
    throw ShapeError(
        fmt::format("masked_fill: the mask must broadcast to x's shape (x {} vs mask {})",
                    x.shape(), mask.shape()));
  }
  // The mask is read through its broadcast strides (no full-size copy of it), rows split across
  // threads for large x.
  const std::span<const double> xv = x.values();
  const std::span<const double> mv = mask.values();
  Values y(xv.size());
  const auto strides = detail::broadcast_strides(mask.shape(), x.shape());
  kernels::for_each_broadcast_split(x.shape(), strides, strides, parallel_grain_cheap,
                                    [&](std::size_t o, std::size_t mi, std::size_t) {
                                      y[o] = mv[mi] != 0.0 ? value : xv[o];  // NaN != 0: filled
                                    });
  // Filling with -inf is how attention masks logits: those infinities are asked for, so anomaly
  // mode does not report them (an inf x already held was reported by the op that made it).
  std::optional<AnomalyGuard> intended;
  if (std::isinf(value) && is_anomaly_enabled()) intended.emplace(false);
  return record(
      {"masked_fill", "dx = masked_fill(g, mask, 0)"}, x.shape(), std::move(y), {x},
      // Filled places get an exact 0, never value * 0 (NaN for value = -inf).
      [constant = mask.detach()](const Tensor& g, const Tensor&, Inputs) {
        return Grads{masked_fill(g, constant, 0.0)};
      },
      where);
}

Tensor tril(const Tensor& x, std::int64_t k, std::source_location where) {
  return triangle(x, k, true, where);
}

Tensor triu(const Tensor& x, std::int64_t k, std::source_location where) {
  return triangle(x, k, false, where);
}

}  // namespace tapegrad
