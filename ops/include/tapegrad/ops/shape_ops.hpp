#pragma once
// Ops that move values without computing new ones.
#include <cstdint>
#include <vector>

#include <source_location>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

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

}  // namespace tapegrad
