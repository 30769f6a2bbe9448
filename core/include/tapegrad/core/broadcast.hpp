#pragma once
// The two ops the engine itself needs for broadcasting. The backward sweep calls sum_to in ONE
// place to bring every gradient back to its input's shape, so no op unbroadcasts on its own.
#include <cstdint>
#include <vector>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

// sum_to(x, shape): sums x over the dimensions that broadcasting added or stretched, so that
// broadcast_to(result, x.shape()) has x's shape again.
//   shapes: x [..., d_i, ...] -> `shape`, where `shape` broadcasts to x.shape()
//   derivative: d/dx = broadcast_to(grad, x.shape())
Tensor sum_to(const Tensor& x, const Shape& shape);

// broadcast_to(x, shape): repeats x along the dimensions where x has 1 (or is missing).
//   shapes: x.shape() must broadcast to `shape`
//   derivative: d/dx = sum_to(grad, x.shape())
Tensor broadcast_to(const Tensor& x, const Shape& shape);

}  // namespace tapegrad

namespace tapegrad::detail {

// Strides of a tensor of shape `from` read as if it had shape `to` (which it broadcasts to):
// one stride per axis of `to`, 0 along the axes where `from` is 1 or missing.
std::vector<std::size_t> broadcast_strides(const Shape& from, const Shape& to);

// Visits every element of `out` in row-major order as fn(out_offset, a_offset, b_offset), where
// the a/b offsets follow the strides made by broadcast_strides. The innermost axis runs in a
// plain loop, so the overhead is per row, not per element. The _rows form visits only the rows
// (runs of the innermost axis) first_row .. last_row - 1, so that threads can share the rows.
template <class Fn>
void for_each_broadcast_rows(const Shape& out, const std::vector<std::size_t>& a_strides,
                             const std::vector<std::size_t>& b_strides, std::size_t first_row,
                             std::size_t last_row, Fn&& fn) {
  const std::size_t rank = out.rank();
  if (out.numel() == 0 || first_row >= last_row) return;
  if (rank == 0) {
    fn(std::size_t{0}, std::size_t{0}, std::size_t{0});
    return;
  }
  const auto inner = static_cast<std::size_t>(out[rank - 1]);
  const std::size_t a_inner = a_strides[rank - 1], b_inner = b_strides[rank - 1];
  // The multi-index of first_row over the outer axes, and the offsets it starts at.
  std::vector<std::int64_t> index(rank, 0);
  std::size_t out_offset = first_row * inner, a_offset = 0, b_offset = 0;
  for (std::size_t axis = rank - 1, rest = first_row; axis-- > 0;) {
    const auto extent = static_cast<std::size_t>(out[axis]);
    index[axis] = static_cast<std::int64_t>(rest % extent);
    rest /= extent;
    a_offset += static_cast<std::size_t>(index[axis]) * a_strides[axis];
    b_offset += static_cast<std::size_t>(index[axis]) * b_strides[axis];
  }
  for (std::size_t row = first_row;;) {
    for (std::size_t j = 0; j < inner; ++j) {
      fn(out_offset++, a_offset + j * a_inner, b_offset + j * b_inner);
    }
    if (++row == last_row) return;
    // Advance the multi-index over the outer axes, carrying like an odometer.
    std::size_t axis = rank - 1;
    for (;;) {
      if (axis == 0) return;
      --axis;
      ++index[axis];
      a_offset += a_strides[axis];
      b_offset += b_strides[axis];
      if (index[axis] < out[axis]) break;
      a_offset -= a_strides[axis] * static_cast<std::size_t>(out[axis]);
      b_offset -= b_strides[axis] * static_cast<std::size_t>(out[axis]);
      index[axis] = 0;
    }
  }
}

template <class Fn>
void for_each_broadcast(const Shape& out, const std::vector<std::size_t>& a_strides,
                        const std::vector<std::size_t>& b_strides, Fn&& fn) {
  const std::size_t rank = out.rank();
  const std::size_t rows =
      rank == 0 ? 1
                : (out[rank - 1] == 0 ? 0 : out.numel() / static_cast<std::size_t>(out[rank - 1]));
  for_each_broadcast_rows(out, a_strides, b_strides, 0, rows, fn);
}

// a + b for two gradients of one shape: the engine's accumulation when a tensor is used more
// than once. A recorded op (rule: g, g) so accumulation is differentiable under create_graph.
Tensor accumulate(const Tensor& a, const Tensor& b);

// A new tensor with x's values: the engine's copy when one gradient would otherwise be handed to
// two leaves (or be the caller's seed object). A recorded op (rule: g) when x requires grad, so a
// copied gradient stays differentiable under create_graph; a plain detached copy otherwise.
Tensor copy(const Tensor& x);

}  // namespace tapegrad::detail
