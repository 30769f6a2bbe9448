#pragma once
// Elementwise ops of one tensor. Shapes: x [any] -> y [same]. `g` is dLoss/dy; each derivative
// below is the rule the op records, written with differentiable ops so it can be differentiated
// again (create_graph).
#include <source_location>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

// y = -x                                   dx = -g
Tensor neg(const Tensor& x, std::source_location where = std::source_location::current());
// y = e^x                                  dx = g * y
Tensor exp(const Tensor& x, std::source_location where = std::source_location::current());
// y = ln x  (x > 0; ln 0 = -inf)           dx = g / x
Tensor log(const Tensor& x, std::source_location where = std::source_location::current());
// y = sqrt(x)  (x >= 0)                    dx = g / (2 y)
Tensor sqrt(const Tensor& x, std::source_location where = std::source_location::current());
// y = |x|                                  dx = g * sign(x)   (sign(0) = 0, as PyTorch)
Tensor abs(const Tensor& x, std::source_location where = std::source_location::current());
// y = x^2                                  dx = g * 2 x
Tensor square(const Tensor& x, std::source_location where = std::source_location::current());
// y = x^p for a constant p                 dx = g * p * x^(p-1)
Tensor pow(const Tensor& x, double p, std::source_location where = std::source_location::current());
// y = sigma(x) = 1 / (1 + e^-x)            dx = g * y * (1 - y)
// Computed without overflow for large |x|.
Tensor sigmoid(const Tensor& x, std::source_location where = std::source_location::current());
// y = tanh(x)                              dx = g * (1 - y^2)
Tensor tanh(const Tensor& x, std::source_location where = std::source_location::current());
// y = max(x, 0)                            dx = g * [x > 0]   (0 at x = 0, as PyTorch)
Tensor relu(const Tensor& x, std::source_location where = std::source_location::current());
// y = min(max(x, low), high)               dx = g * [low <= x <= high]   (as PyTorch)
// low > high is a ValueError.
Tensor clamp(const Tensor& x, double low, double high,
             std::source_location where = std::source_location::current());

// The fused rules of sigmoid, tanh and relu, as ops of their own (so they can be differentiated
// again). Shapes: g and y (or x) [same] -> [same]. Called by the rules; public for tests.
//   sigmoid_backward(g, y) = g * y * (1 - y)   dg = g2 * y * (1 - y), dy = g2 * g * (1 - 2 y)
//   tanh_backward(g, y)    = g * (1 - y^2)     dg = g2 * (1 - y^2),   dy = -2 g2 g y
//   relu_backward(g, x)    = g * [x > 0]       dg = g2 * [x > 0],     dx = 0
Tensor sigmoid_backward(const Tensor& g, const Tensor& y);
Tensor tanh_backward(const Tensor& g, const Tensor& y);
Tensor relu_backward(const Tensor& g, const Tensor& x);

}  // namespace tapegrad
