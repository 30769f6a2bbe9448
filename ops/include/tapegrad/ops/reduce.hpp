#pragma once
// Reductions. `axis` may be negative (-1 is the last axis); keepdim keeps the reduced axis with
// size 1 (so the result broadcasts against x). Shapes: x [d0, .., dk, ..] -> [d0, .., 1 or -, ..];
// without an axis, over all elements -> [] (a scalar).
#include <cstdint>

#include <source_location>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

// y = sum_i x_i                            dx = broadcast(g)
Tensor sum(const Tensor& x, std::source_location where = std::source_location::current());
Tensor sum(const Tensor& x, std::int64_t axis, bool keepdim = false,
           std::source_location where = std::source_location::current());
// y = (1/n) sum_i x_i                      dx = broadcast(g) / n
// Mean over an empty axis (n = 0) is a ShapeError rather than a silent NaN.
Tensor mean(const Tensor& x, std::source_location where = std::source_location::current());
Tensor mean(const Tensor& x, std::int64_t axis, bool keepdim = false,
            std::source_location where = std::source_location::current());
// y = max_i x_i                            dx = broadcast(g) * [x == y] / (number of maxima)
// Ties share the gradient equally (PyTorch's amax). Empty input is a ShapeError.
Tensor max(const Tensor& x, std::source_location where = std::source_location::current());
Tensor max(const Tensor& x, std::int64_t axis, bool keepdim = false,
           std::source_location where = std::source_location::current());

}  // namespace tapegrad
