#pragma once
// Ops that move values without computing new ones: reshaping, permuting, expanding, and taking
// parts of a tensor (narrow, slice, select). Joining and splitting are in join.hpp.
//
// Names, argument order and edge cases follow PyTorch. Every `axis` may be negative (-1 is the
// last); an axis out of range is an AxisError. Where PyTorch lets a scalar (shape []) take axis 0
// or -1 (squeeze, flatten), so does tapegrad. Every op returns a new contiguous tensor (no
// views), except that an op which would change nothing (squeeze of no size-1 axis, flatten of a
// single axis, expand to x's own shape) returns x itself and records nothing, as reshape does.
#include <cstdint>
#include <limits>
#include <vector>

#include <source_location>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

// ---------------------------------------------------------------------------------------------
// Shape

// Same values, new shape with the same number of elements; one dimension may be -1 (inferred):
// reshape(x, {2, -1}). Pass a Shape as shape.dims().
//   derivative: dx = reshape(g, x.shape().dims())
Tensor reshape(const Tensor& x, std::vector<std::int64_t> dims,
               std::source_location where = std::source_location::current());
// Swaps two axes (a copy: storage stays contiguous).
//   shapes: [.., d_a, .., d_b, ..] -> [.., d_b, .., d_a, ..]
//   derivative: dx = transpose(g, axis_a, axis_b)
Tensor transpose(const Tensor& x, std::int64_t axis_a, std::int64_t axis_b,
                 std::source_location where = std::source_location::current());
// Matrix transpose: [n, m] -> [m, n]; a ShapeError for other ranks.
Tensor transpose(const Tensor& x, std::source_location where = std::source_location::current());

// squeeze(x): removes every axis of size 1.      [2, 1, 3, 1] -> [2, 3]
// squeeze(x, axis): removes `axis` if its size is 1; otherwise x is returned unchanged (as
// PyTorch: squeezing a size-3 axis is not an error).   [2, 1, 3], axis 1 -> [2, 3]
//   derivative: dx = reshape(g, x.shape)
Tensor squeeze(const Tensor& x, std::source_location where = std::source_location::current());
Tensor squeeze(const Tensor& x, std::int64_t axis,
               std::source_location where = std::source_location::current());
// Inserts an axis of size 1 at position `axis` of the result, which may be -(rank+1)..rank
// (-1 appends one at the end).   [2, 3], axis 1 -> [2, 1, 3];  axis -1 -> [2, 3, 1]
//   derivative: dx = reshape(g, x.shape)
Tensor unsqueeze(const Tensor& x, std::int64_t axis,
                 std::source_location where = std::source_location::current());
// Merges axes start..end (inclusive) into one.   [2, 3, 4, 5], start 1, end 2 -> [2, 12, 5];
// flatten(x) -> [numel]; a scalar flattens to [1]. start after end is an AxisError.
//   derivative: dx = reshape(g, x.shape)
Tensor flatten(const Tensor& x, std::int64_t start = 0, std::int64_t end = -1,
               std::source_location where = std::source_location::current());
// Reorders the axes: result axis i is x's axis dims[i]; `dims` must name every axis once.
//   y[i_0, .., i_{r-1}] = x[j] with j[dims[k]] = i_k.   [2, 3, 4], dims {2, 0, 1} -> [4, 2, 3]
//   derivative: dx = permute(g, inverse(dims)), inverse[dims[k]] = k
Tensor permute(const Tensor& x, std::vector<std::int64_t> dims,
               std::source_location where = std::source_location::current());
// Repeats x along its size-1 axes and along new leading axes, as PyTorch's expand:
//   shapes: x [d...] -> `shape`, aligned from the right; each d must equal the target or be 1.
//   -1 in `shape` keeps x's size there (only where x has an axis: not in new leading ones).
//   expand(x [3, 1], {2, -1, 4}) -> [2, 3, 4]
//   derivative: dx = sum_to(g, x.shape)   (core/broadcast.hpp; the engine's own unbroadcast)
// broadcast_to(x, Shape) (core/broadcast.hpp) is the same op without -1.
Tensor expand(const Tensor& x, std::vector<std::int64_t> shape,
              std::source_location where = std::source_location::current());

// ---------------------------------------------------------------------------------------------
// Select: parts of one axis. Shapes: x [.., n, ..] (n the size of `axis`) -> [.., m, ..].
// Their derivatives put g back into zeros of x's shape with slice_backward, itself an op whose
// rule is the slice again, so second derivatives work.

// The elements start, start+1, .., start+length-1 of `axis`.   m = length
// start may be negative (counts from the end: -2 is n-2); start in [-n, n] and
// 0 <= length <= n - start, else a ValueError (no clamping: as PyTorch's narrow).
//   derivative: dx = slice_backward(g, x.shape, axis, start, start + length, 1)
Tensor narrow(const Tensor& x, std::int64_t axis, std::int64_t start, std::int64_t length,
              std::source_location where = std::source_location::current());
// Python slicing along one axis, x[.., start:stop:step, ..]: a negative start or stop counts
// from the end (+n), then both are clamped to [0, n], as Python does, so out-of-range bounds
// give a shorter (possibly empty) result rather than an error. Pass `slice_end` as stop for
// "to the end" (Python's x[start:]). step >= 1; step <= 0 is a ValueError.
//   m = max(0, ceil((stop - start) / step)) after clamping; y[.., k, ..] = x[.., start + k step,
//   ..] derivative: dx = slice_backward(g, x.shape, axis, start, stop, step)
inline constexpr std::int64_t slice_end = std::numeric_limits<std::int64_t>::max();
Tensor slice(const Tensor& x, std::int64_t axis, std::int64_t start, std::int64_t stop,
             std::int64_t step = 1, std::source_location where = std::source_location::current());
// The element `index` of `axis`, with the axis removed: y = x[.., index, ..].
//   shapes: [.., n, ..] -> [.., ..];   index in [-n, n) (negative counts from the end), else a
//   ValueError naming the index and n. A scalar has no axis to select from (AxisError).
//   derivative: dx = slice_backward(unsqueeze(g, axis), x.shape, axis, index, index + 1, 1)
Tensor select(const Tensor& x, std::int64_t axis, std::int64_t index,
              std::source_location where = std::source_location::current());
// The rule of narrow, slice and select, as an op of its own (PyTorch's slice_backward): zeros of
// `input_shape` with g written at start, start+step, .. (< stop) along `axis`. start and stop
// are taken as given: 0 <= start <= stop <= n, step >= 1, and g's shape must be input_shape with
// `axis` of size ceil((stop - start) / step) (a ShapeError otherwise).
//   y[.., start + k step, ..] = g[.., k, ..], every other element 0
//   derivative: dg = slice(g2, axis, start, stop, step)
Tensor slice_backward(const Tensor& g, const Shape& input_shape, std::int64_t axis,
                      std::int64_t start, std::int64_t stop, std::int64_t step,
                      std::source_location where = std::source_location::current());

}  // namespace tapegrad
