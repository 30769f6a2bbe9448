#pragma once
// Softmax and its stable logarithm along one axis.
#include <cstdint>

#include <source_location>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

// y_i = e^(x_i - m) / sum_j e^(x_j - m), m = max_j x_j (subtracting m changes nothing but
// prevents overflow). Fused kernel; tested equal to exp(x - max) / sum(exp(x - max)).
//   shapes: x [..] -> y [same]; an empty axis is a ShapeError
//   derivative: dx = y * (g - sum(g * y, axis, keepdim))
// Masked entries (-inf) get probability 0 and gradient 0. As PyTorch, a line that is entirely
// -inf (fully masked), or holds +inf or NaN, is NaN in value and gradient (inf - inf).
Tensor softmax(const Tensor& x, std::int64_t axis = -1,
               std::source_location where = std::source_location::current());

// y_i = x_i - logsumexp(x), stable for any finite x.
//   derivative: dx = g - exp(y) * sum(g, axis, keepdim)
// A -inf entry gives -inf and passes g through unchanged (exp(y) = 0); a line that is all -inf,
// or holds +inf or NaN, is NaN in value and gradient, as PyTorch.
Tensor log_softmax(const Tensor& x, std::int64_t axis = -1,
                   std::source_location where = std::source_location::current());

// y = m + ln sum_j e^(x_j - m), m = max_j x_j (m = 0 when it is infinite, as PyTorch).
//   derivative: dx = broadcast(g) * exp(x - y)   (= g * softmax(x))
// As PyTorch: a line that is all -inf gives -inf (the log of an empty sum) and a line with a +inf
// gives +inf; their gradients follow the formula (exp(-inf - -inf) and exp(inf - inf) are NaN,
// exp(finite - inf) is 0). A NaN anywhere gives NaN.
Tensor logsumexp(const Tensor& x, std::int64_t axis, bool keepdim = false,
                 std::source_location where = std::source_location::current());

}  // namespace tapegrad
