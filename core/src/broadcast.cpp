#include "tapegrad/core/broadcast.hpp"

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"

namespace tapegrad {

namespace detail {

std::vector<std::size_t> broadcast_strides(const Shape& from, const Shape& to) {
  std::vector<std::size_t> strides(to.rank(), 0);
  const std::vector<std::size_t> own = from.strides();
  const std::size_t offset = to.rank() - from.rank();
  for (std::size_t i = 0; i < from.rank(); ++i) {
    strides[i + offset] = from[i] == 1 ? 0 : own[i];
  }
  return strides;
}

Tensor accumulate(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) {
    throw ShapeError(
        fmt::format("accumulate: gradient shapes differ ({} vs {})", a.shape(), b.shape()));
  }
  Values values(a.values().begin(), a.values().end());
  const std::span<const double> bv = b.values();
  for (std::size_t i = 0; i < values.size(); ++i) values[i] += bv[i];
  return record({"accumulate", "da = g, db = g"}, a.shape(), std::move(values), {a, b},
                [](const Tensor& g, const Tensor&, std::span<const Tensor>) {
                  return TensorList{g, g};
                });
}

Tensor copy(const Tensor& x) {
  if (!x.requires_grad()) return x.detach();
  Values values(x.values().begin(), x.values().end());
  return record(
      {"copy", "dx = g"}, x.shape(), std::move(values), {x},
      [](const Tensor& g, const Tensor&, std::span<const Tensor>) { return TensorList{g}; });
}

}  // namespace detail

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  if (!broadcasts_to(x.shape(), shape)) {
    throw ShapeError(
        fmt::format("broadcast_to: cannot broadcast ({} vs {}); aligned from the right, "
                    "each dimension of the tensor must equal the target's or be 1",
                    x.shape(), shape));
  }
  // y[i] = x[broadcast index of i]
  Values values = allocate_values("broadcast_to", shape);
  const std::span<const double> xv = x.values();
  const auto x_strides = detail::broadcast_strides(x.shape(), shape);
  detail::for_each_broadcast(
      shape, x_strides, x_strides,
      [&](std::size_t o, std::size_t xi, std::size_t) { values[o] = xv[xi]; });
  return record({"broadcast_to", "dx = sum_to(g, x.shape)"}, shape, std::move(values), {x},
                [](const Tensor& g, const Tensor&, std::span<const Tensor> in) {
                  return TensorList{sum_to(g, in[0].shape())};
                });
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  if (!broadcasts_to(shape, x.shape())) {
    throw ShapeError(
        fmt::format("sum_to: cannot sum ({} vs {}); the target shape must "
                    "broadcast to the tensor's",
                    x.shape(), shape));
  }
  // y[j] = sum of x[i] over every i that broadcast_to(y) would fill from j
  Values values(shape.numel(), 0.0);
  const std::span<const double> xv = x.values();
  const auto y_strides = detail::broadcast_strides(shape, x.shape());
  detail::for_each_broadcast(
      x.shape(), y_strides, y_strides,
      [&](std::size_t xi, std::size_t yi, std::size_t) { values[yi] += xv[xi]; });
  return record({"sum_to", "dx = broadcast_to(g, x.shape)"}, shape, std::move(values), {x},
                [](const Tensor& g, const Tensor&, std::span<const Tensor> in) {
                  return TensorList{broadcast_to(g, in[0].shape())};
                });
}

}  // namespace tapegrad
