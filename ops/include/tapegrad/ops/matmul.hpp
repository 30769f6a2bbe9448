#pragma once
// Matrix product of 2-D tensors, forward and both backward products through OpenBLAS dgemm.
#include <source_location>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

struct MatmulOptions {
  bool transpose_a = false;  // use a^T instead of a (no copy: dgemm's transpose flag)
  bool transpose_b = false;  // use b^T instead of b
};

// y = op(a) op(b), op(m) = m or m^T.
//   shapes: op(a) [n, k], op(b) [k, m] -> y [n, m]; ShapeError naming both shapes otherwise.
//   derivative (no transposes): da = g b^T, db = a^T g; with transposes the same products are
//   taken through the flags, never through a transposed copy.
Tensor matmul(const Tensor& a, const Tensor& b, MatmulOptions options = {},
              std::source_location where = std::source_location::current());

}  // namespace tapegrad
