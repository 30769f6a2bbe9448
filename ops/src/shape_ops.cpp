// Ops that move values: each kernel, then its rule. Formulas in shape_ops.hpp.
#include "tapegrad/ops/shape_ops.hpp"

#include <fmt/format.h>

#include "tapegrad/core/broadcast.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"

namespace tapegrad {

namespace {
using Inputs = std::span<const Tensor>;
using Grads = TensorList;

Shape infer_shape(const Shape& from, std::vector<std::int64_t> dims) {
  std::size_t known = 1;
  std::size_t inferred = dims.size();
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1) {
      if (inferred != dims.size()) {
        throw ShapeError(fmt::format("reshape: only one dimension may be -1 ({} vs [{}])", from,
                                     fmt::join(dims, ", ")));
      }
      inferred = i;
    } else if (dims[i] < 0) {
      throw ShapeError(fmt::format("reshape: negative dimension {} ({} vs [{}])", dims[i], from,
                                   fmt::join(dims, ", ")));
    } else {
      known *= static_cast<std::size_t>(dims[i]);
    }
  }
  if (inferred != dims.size()) {
    if (known == 0 || from.numel() % known != 0) {
      throw ShapeError(fmt::format("reshape: cannot infer the -1 dimension ({} vs [{}])", from,
                                   fmt::join(dims, ", ")));
    }
    dims[inferred] = static_cast<std::int64_t>(from.numel() / known);
  }
  Shape result(std::move(dims));
  if (result.numel() != from.numel()) {
    throw ShapeError(fmt::format("reshape: element counts differ ({} has {}, {} has {})", from,
                                 from.numel(), result, result.numel()));
  }
  return result;
}
}  // namespace

Tensor reshape(const Tensor& x, std::vector<std::int64_t> dims, std::source_location where) {
  Shape target = infer_shape(x.shape(), std::move(dims));
  if (target == x.shape()) return x;
  std::vector<double> values(x.values().begin(), x.values().end());
  return record(
      {"reshape", "dx = reshape(g, x.shape)"}, std::move(target), std::move(values), {x},
      [](const Tensor& g, const Tensor&, Inputs in) {
        return Grads{reshape(g, in[0].shape().dims())};
      },
      where);
}

Tensor transpose(const Tensor& x, std::int64_t axis_a, std::int64_t axis_b,
                 std::source_location where) {
  const std::size_t a = x.shape().normalize_axis(axis_a, "transpose");
  const std::size_t b = x.shape().normalize_axis(axis_b, "transpose");
  std::vector<std::int64_t> dims = x.shape().dims();
  std::swap(dims[a], dims[b]);
  Shape out(std::move(dims));
  // Walk the output in order, reading x through its strides with the two axes swapped.
  std::vector<std::size_t> strides = x.shape().strides();
  std::swap(strides[a], strides[b]);
  const std::span<const double> xv = x.values();
  std::vector<double> y(out.numel());
  detail::for_each_broadcast(out, strides, strides,
                             [&](std::size_t o, std::size_t xi, std::size_t) { y[o] = xv[xi]; });
  return record(
      {"transpose", "dx = transpose(g, axis_a, axis_b)"}, std::move(out), std::move(y), {x},
      [a, b](const Tensor& g, const Tensor&, Inputs) {
        return Grads{transpose(g, static_cast<std::int64_t>(a), static_cast<std::int64_t>(b))};
      },
      where);
}

Tensor transpose(const Tensor& x, std::source_location where) {
  if (x.rank() != 2) {
    throw ShapeError(
        fmt::format("transpose: the matrix transpose needs a 2-D tensor, got shape {}; "
                    "use transpose(x, axis_a, axis_b) for other ranks",
                    x.shape()));
  }
  return transpose(x, 0, 1, where);
}

}  // namespace tapegrad
