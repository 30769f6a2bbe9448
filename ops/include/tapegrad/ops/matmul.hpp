#pragma once
// Matrix products through OpenBLAS dgemm: of 2-D tensors, of batches of matrices (with broadcast
// batch dimensions, as torch.matmul), and bmm.
#include <source_location>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

struct MatmulOptions {
  bool transpose_a = false;  // use a^T instead of a (no copy: dgemm's transpose flag)
  bool transpose_b = false;  // use b^T instead of b
};

// y = op(a) op(b), op(m) = m or m^T (of the last two dimensions).
//   shapes: op(a) [n, k], op(b) [k, m] -> y [n, m]; ShapeError naming both shapes otherwise.
//   derivative (no transposes): da = g b^T, db = a^T g; with transposes the same products are
//   taken through the flags, never through a transposed copy.
//
// Batched (either operand of rank >= 3), as torch.matmul: the last two dimensions are matrices,
// the ones before them batch dimensions, broadcast together (NumPy rules).
//   shapes: a [..A, n, k], b [..B, k, m] -> y [broadcast(A, B), n, m], e.g.
//           [B, n, k] x [B, k, m] -> [B, n, m],  [B, n, k] x [k, m] -> [B, n, m],
//           [n, k] x [B, k, m] -> [B, n, m],  [B1, 1, n, k] x [B2, k, m] -> [B1, B2, n, m]
//   kernel: one cblas_dgemm per batch element, reading broadcast operands in place (no copies);
//           a batch of a against one matrix b, untransposed a, is one dgemm [B*n, k] x [k, m].
//   derivative: the same two products, batched (da = g op(b)^T, db = op(a)^T g through the
//           transpose flags); the engine sums them over the batch dimensions an operand was
//           broadcast along (sum_to).
// 1-D operands, as torch.matmul: a [k] is read as [1, k] and b [k] as [k, 1], and the added
// dimension is removed from y: [k] x [k] -> [] (a dot product), [k] x [.., k, m] -> [.., m],
// [.., n, k] x [k] -> [.., n]. A transpose flag on a 1-D operand is a ShapeError (a vector has
// no transpose); scalars (rank 0) are a ShapeError, as in PyTorch.
Tensor matmul(const Tensor& a, const Tensor& b, MatmulOptions options = {},
              std::source_location where = std::source_location::current());

// y = bmm(a, b), as torch.bmm: strictly [B, n, k] x [B, k, m] -> [B, n, m] (no broadcasting, no
// 1-D operands: a ShapeError naming both shapes otherwise). The batched matmul above, under its
// own name.
//   derivative: da = g b^T, db = a^T g, per batch element
Tensor bmm(const Tensor& a, const Tensor& b,
           std::source_location where = std::source_location::current());

}  // namespace tapegrad
