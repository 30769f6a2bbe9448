#include "tapegrad/core/broadcast.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"
#include "tapegrad/core/parallel.hpp"
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
  const std::span<const double> av = a.values();
  const std::span<const double> bv = b.values();
  Values values(av.size());
  tapegrad::parallel_for(values.size(), parallel_grain_cheap,
                         [&](std::size_t begin, std::size_t end) {
                           for (std::size_t i = begin; i < end; ++i) values[i] = av[i] + bv[i];
                         });
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

namespace {
// When `to` is x's trailing dimensions with leading ones dropped or set to 1 (x [a, b, c] to
// [c], [1, c], [b, c], ...): the number of elements of those trailing dimensions; else 0.
std::size_t trailing_kept(const Shape& x, const Shape& to) {
  const std::size_t rank = x.rank(), offset = rank - to.rank();
  std::size_t first_kept = rank;  // axes first_kept .. rank - 1 are kept whole
  while (first_kept > offset && to[first_kept - 1 - offset] == x[first_kept - 1]) --first_kept;
  for (std::size_t axis = offset; axis < first_kept; ++axis) {
    if (to[axis - offset] != 1) return 0;
  }
  std::size_t columns = 1;
  for (std::size_t axis = first_kept; axis < rank; ++axis)
    columns *= static_cast<std::size_t>(x[axis]);
  return first_kept == rank || x.numel() == 0 ? 0 : columns;
}
}  // namespace

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  if (!broadcasts_to(shape, x.shape())) {
    throw ShapeError(
        fmt::format("sum_to: cannot sum ({} vs {}); the target shape must "
                    "broadcast to the tensor's",
                    x.shape(), shape));
  }
  // y[j] = sum of x[i] over every i that broadcast_to(y) would fill from j, in the order of i
  Values values(shape.numel(), 0.0);
  const std::span<const double> xv = x.values();
  if (const std::size_t columns = trailing_kept(x.shape(), shape); columns > 0) {
    // The bias-gradient case, x [rows, columns] -> y [columns]: threads share the columns, and
    // each column's additions keep their order (row by row), as in the general walk below.
    const std::size_t rows = xv.size() / columns;
    parallel_for(columns, parallel_grain_cheap / std::max<std::size_t>(1, rows) + 1,
                 [&](std::size_t c0, std::size_t c1) {
                   for (std::size_t r = 0; r < rows; ++r) {
                     const double* row = xv.data() + r * columns;
                     for (std::size_t c = c0; c < c1; ++c) values[c] += row[c];
                   }
                 });
  } else {
    const auto y_strides = detail::broadcast_strides(shape, x.shape());
    detail::for_each_broadcast(
        x.shape(), y_strides, y_strides,
        [&](std::size_t xi, std::size_t yi, std::size_t) { values[yi] += xv[xi]; });
  }
  return record({"sum_to", "dx = broadcast_to(g, x.shape)"}, shape, std::move(values), {x},
                [](const Tensor& g, const Tensor&, std::span<const Tensor> in) {
                  return TensorList{broadcast_to(g, in[0].shape())};
                });
}

}  // namespace tapegrad
