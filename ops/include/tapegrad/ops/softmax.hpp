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
Tensor softmax(const Tensor& x, std::int64_t axis = -1,
               std::source_location where = std::source_location::current());

// y_i = x_i - logsumexp(x), stable for any finite x.
//   derivative: dx = g - exp(y) * sum(g, axis, keepdim)
Tensor log_softmax(const Tensor& x, std::int64_t axis = -1,
                   std::source_location where = std::source_location::current());

// y = m + ln sum_j e^(x_j - m), m = max_j x_j.
//   derivative: dx = broadcast(g) * exp(x - y)   (= g * softmax(x))
Tensor logsumexp(const Tensor& x, std::int64_t axis, bool keepdim = false,
                 std::source_location where = std::source_location::current());

}  // namespace tapegrad
