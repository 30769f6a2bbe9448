#pragma once
// Drawing from distributions given as tensors: constants, never recorded on the tape (a draw has
// no derivative), every draw from an explicit Generator so a run is reproducible bit for bit.
//
//   tapegrad::Generator gen(1);
//   Tensor p = softmax(logits / temperature);              // [B, vocab]
//   Tensor next = tapegrad::multinomial(p, 1, gen);         // [B, 1] token indices
#include <cstdint>

#include "tapegrad/core/random.hpp"
#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

// torch.multinomial: `num_samples` indices per row, index j drawn with probability
// weights[j] / sum(weights) (the weights need not sum to 1).
//   shapes: weights [k] -> [num_samples];  weights [n, k] -> [n, num_samples]
//   result: doubles holding integers in [0, k), ready for index_select / gather / Embedding.
//   replacement = false (PyTorch's default): no index twice in a row's draws, so num_samples
//   must not exceed the row's number of non-zero weights.
// A weight that is negative, NaN or infinite, a row summing to 0, a rank other than 1 or 2, or
// num_samples < 1 is a ValueError (ShapeError for the rank) naming the op and the shape.
Tensor multinomial(const Tensor& weights, std::int64_t num_samples, Generator& generator,
                   bool replacement = false);

}  // namespace tapegrad
