#pragma once
// Non-differentiable helpers that build constant tensors (no tape node, no gradient).
#include <cstdint>
#include <span>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

// one_hot(labels, classes): [n] class indices (stored as doubles holding integers) -> [n, classes]
// with a 1 at each label. A label outside [0, classes) or not an integer is a ValueError naming it.
Tensor one_hot(const Tensor& labels, std::int64_t classes);

// 1 where x > 0, else 0; same shape. The masks the relu rule uses.
Tensor positive_mask(const Tensor& x);

}  // namespace tapegrad
