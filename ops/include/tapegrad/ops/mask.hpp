#pragma once
// Selecting and masking elementwise, with PyTorch's names and argument order. Conditions and masks
// are doubles read as booleans: nonzero (NaN included, as PyTorch's bool()) is true. They never
// receive gradients; they enter the rules as constant copies.
#include <cstdint>
#include <source_location>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

// y = where(condition, a, b): a where the condition holds, b elsewhere (torch.where).
//   y_i = c_i != 0 ? a_i : b_i
//   shapes: condition, a and b broadcast together (NumPy rules, all three) -> y [broadcast];
//           a ShapeError naming the three shapes otherwise
//   derivative: da = where(c, g, 0),  db = where(c, 0, g)   (summed to a's and b's shapes)
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b,
             std::source_location where = std::source_location::current());

// y = masked_fill(x, mask, value): x with `value` wherever the mask holds (Tensor.masked_fill).
//   y_i = m_i != 0 ? value : x_i
//   shapes: x [..], mask broadcasts to x's shape -> y [x.shape]; a ShapeError otherwise
//   derivative: dx = masked_fill(g, mask, 0): exactly 0 at filled places, also when value is
//   -inf or NaN (masked attention logits: masked_fill(s, mask, -inf) then softmax).
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value,
                   std::source_location where = std::source_location::current());

// Lower and upper triangles of the last two dimensions (batched over the others), as torch.tril /
// torch.triu: element (i, j) is kept when j - i <= k (tril) or j - i >= k (triu), else 0. k = 0 is
// the main diagonal, k > 0 above it, k < 0 below it.
//   shapes: x [.., n, m] (rank >= 2; a ShapeError otherwise) -> y [same]
//   derivative: dx = tril(g, k)  (triu: triu(g, k))
Tensor tril(const Tensor& x, std::int64_t k = 0,
            std::source_location where = std::source_location::current());
Tensor triu(const Tensor& x, std::int64_t k = 0,
            std::source_location where = std::source_location::current());

}  // namespace tapegrad
