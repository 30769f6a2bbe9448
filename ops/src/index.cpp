// Gathers and scatter-adds: each kernel, then its rule. Formulas and shapes in index.hpp.
#include "tapegrad/ops/index.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include <fmt/format.h>

#include "kernels.hpp"
#include "tapegrad/core/broadcast.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"

namespace tapegrad {

namespace {
using Inputs = std::span<const Tensor>;
using Grads = TensorList;

// Every index as an offset along the indexed axis, checked to be an integer in [0, bound).
// `x` and `indices` name the shapes in the message; positions are flat for 1-D indices and
// multi-indices otherwise.
std::vector<std::size_t> checked_indices(std::string_view op, const Tensor& x, std::size_t axis,
                                         const Tensor& indices) {
  const auto bound = static_cast<std::size_t>(x.shape()[axis]);
  const std::span<const double> iv = indices.values();
  std::vector<std::size_t> out(iv.size());
  for (std::size_t p = 0; p < iv.size(); ++p) {
    const double v = iv[p];
    const bool integer = std::isfinite(v) && v == std::floor(v);
    if (integer && v >= 0 && v < static_cast<double>(bound)) {
      out[p] = static_cast<std::size_t>(v);
      continue;
    }
    const std::string position =
        indices.rank() <= 1 ? fmt::format("{}", p)
                            : fmt::format("[{}]", fmt::join(indices.shape().index_of(p), ", "));
    if (!integer) {
      throw ValueError(fmt::format(
          "{}: index {} at position {} is not an integer (indices are doubles holding integers; "
          "valid indices for axis {} are 0..{}) (x {} vs indices {})",
          op, v, position, axis, static_cast<std::int64_t>(bound) - 1, x.shape(), indices.shape()));
    }
    throw ValueError(
        fmt::format("{}: index {} at position {} is out of range for axis {} of size {} (valid "
                    "0..{}; negative indices are not accepted, as in PyTorch) (x {} vs indices {})",
                    op, v, position, axis, bound, static_cast<std::int64_t>(bound) - 1, x.shape(),
                    indices.shape()));
  }
  return out;
}

void require_index_vector(std::string_view op, const Tensor& x, const Tensor& indices) {
  if (indices.rank() > 1) {
    throw ShapeError(
        fmt::format("{}: indices must be 1-D (or a single index of shape []); flatten them with "
                    "reshape(indices, {{-1}}) ({} vs indices {})",
                    op, x.shape(), indices.shape()));
  }
}

// gather and scatter_add: indices of x's rank, no larger than x except along the axis.
void require_gather_indices(std::string_view op, const Tensor& x, std::size_t axis,
                            const Tensor& indices) {
  bool fits = indices.rank() == x.rank();
  for (std::size_t d = 0; fits && d < x.rank(); ++d) {
    fits = d == axis || indices.shape()[d] <= x.shape()[d];
  }
  if (!fits) {
    throw ShapeError(fmt::format(
        "{}: indices must have x's rank and be no larger than x except along axis {} ({} vs "
        "indices {})",
        op, axis, x.shape(), indices.shape()));
  }
}

// Visits every element of indices as fn(flat position p, offset in x of its row along the axis),
// the offset leaving out the axis itself: the element gather reads is base + index * stride.
template <class Fn>
void for_each_gather(const Tensor& x, std::size_t axis, const Tensor& indices, Fn&& fn) {
  std::vector<std::size_t> x_strides = x.shape().strides();
  x_strides[axis] = 0;
  detail::for_each_broadcast(indices.shape(), x_strides, indices.shape().strides(),
                             [&](std::size_t p, std::size_t base, std::size_t) { fn(p, base); });
}
}  // namespace

Tensor index_select(const Tensor& x, std::int64_t axis, const Tensor& indices,
                    std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "index_select");
  require_index_vector("index_select", x, indices);
  const std::vector<std::size_t> idx = checked_indices("index_select", x, s.axis, indices);
  // x [outer, n, inner] -> y [outer, len, inner]
  const std::size_t len = idx.size();
  const std::span<const double> xv = x.values();
  Values y(s.outer * len * s.inner);
  for (std::size_t o = 0; o < s.outer; ++o) {
    for (std::size_t j = 0; j < len; ++j) {
      const double* from = xv.data() + (o * s.n + idx[j]) * s.inner;
      std::copy(from, from + s.inner, y.data() + (o * len + j) * s.inner);
    }
  }
  std::vector<std::int64_t> dims = x.shape().dims();
  dims[s.axis] = static_cast<std::int64_t>(len);
  const auto a = static_cast<std::int64_t>(s.axis);
  return record(
      {"index_select", "dx = index_add(zeros(x.shape), axis, indices, g)"}, Shape(std::move(dims)),
      std::move(y), {x},
      [a, constant = indices.detach()](const Tensor& g, const Tensor&, Inputs in) {
        return Grads{index_add(zeros(in[0].shape()), a, constant, g)};
      },
      where);
}

Tensor index_add(const Tensor& x, std::int64_t axis, const Tensor& indices, const Tensor& source,
                 std::source_location where) {
  const kernels::AxisSplit s = kernels::split_at(x.shape(), axis, "index_add");
  require_index_vector("index_add", x, indices);
  const std::size_t len = indices.numel();
  bool fits = source.rank() == x.rank();
  for (std::size_t d = 0; fits && d < x.rank(); ++d) {
    fits = source.shape()[d] == (d == s.axis ? static_cast<std::int64_t>(len) : x.shape()[d]);
  }
  if (!fits) {
    throw ShapeError(fmt::format(
        "index_add: source must have x's shape with the number of indices ({}) at axis {} ({} vs "
        "source {})",
        len, s.axis, x.shape(), source.shape()));
  }
  const std::vector<std::size_t> idx = checked_indices("index_add", x, s.axis, indices);
  // y = x [outer, n, inner];  y[o, idx[j], i] += source[o, j, i]
  Values y(x.values().begin(), x.values().end());
  const std::span<const double> sv = source.values();
  for (std::size_t o = 0; o < s.outer; ++o) {
    for (std::size_t j = 0; j < len; ++j) {
      const double* from = sv.data() + (o * len + j) * s.inner;
      double* to = y.data() + (o * s.n + idx[j]) * s.inner;
      for (std::size_t i = 0; i < s.inner; ++i) to[i] += from[i];
    }
  }
  const auto a = static_cast<std::int64_t>(s.axis);
  return record(
      {"index_add", "dx = g, dsource = index_select(g, axis, indices)"}, x.shape(), std::move(y),
      {x, source},
      [a, constant = indices.detach()](const Tensor& g, const Tensor&, Inputs in) {
        return Grads{g, kernels::needs_grad(in, 1) ? index_select(g, a, constant) : Tensor()};
      },
      where);
}

Tensor gather(const Tensor& x, std::int64_t axis, const Tensor& indices,
              std::source_location where) {
  const std::size_t ax = x.shape().normalize_axis(axis, "gather");
  require_gather_indices("gather", x, ax, indices);
  const std::vector<std::size_t> idx = checked_indices("gather", x, ax, indices);
  const std::size_t stride = x.shape().strides()[ax];
  const std::span<const double> xv = x.values();
  Values y(indices.numel());
  for_each_gather(x, ax, indices,
                  [&](std::size_t p, std::size_t base) { y[p] = xv[base + idx[p] * stride]; });
  const auto a = static_cast<std::int64_t>(ax);
  return record(
      {"gather", "dx = scatter_add(zeros(x.shape), axis, indices, g)"}, indices.shape(),
      std::move(y), {x},
      [a, constant = indices.detach()](const Tensor& g, const Tensor&, Inputs in) {
        return Grads{scatter_add(zeros(in[0].shape()), a, constant, g)};
      },
      where);
}

Tensor scatter_add(const Tensor& x, std::int64_t axis, const Tensor& indices, const Tensor& source,
                   std::source_location where) {
  const std::size_t ax = x.shape().normalize_axis(axis, "scatter_add");
  require_gather_indices("scatter_add", x, ax, indices);
  if (source.shape() != indices.shape()) {
    throw ShapeError(fmt::format(
        "scatter_add: source must have the shape of indices ({} vs indices {}); x is {}",
        source.shape(), indices.shape(), x.shape()));
  }
  const std::vector<std::size_t> idx = checked_indices("scatter_add", x, ax, indices);
  const std::size_t stride = x.shape().strides()[ax];
  const std::span<const double> sv = source.values();
  Values y(x.values().begin(), x.values().end());
  for_each_gather(x, ax, indices,
                  [&](std::size_t p, std::size_t base) { y[base + idx[p] * stride] += sv[p]; });
  const auto a = static_cast<std::int64_t>(ax);
  return record(
      {"scatter_add", "dx = g, dsource = gather(g, axis, indices)"}, x.shape(), std::move(y),
      {x, source},
      [a, constant = indices.detach()](const Tensor& g, const Tensor&, Inputs in) {
        return Grads{g, kernels::needs_grad(in, 1) ? gather(g, a, constant) : Tensor()};
      },
      where);
}

}  // namespace tapegrad
