#pragma once
// Elementwise ops of one tensor. Shapes: x [any] -> y [same]. `g` is dLoss/dy; each derivative
// below is the rule the op records, written with differentiable ops so it can be differentiated
// again (create_graph).
#include <source_location>
#include <string_view>

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

// The functions of issue 13. Names, argument order and values follow PyTorch (torch.sin, ...,
// torch.nn.functional.softplus, gelu, silu, leaky_relu, elu); `sin(z)` under
// `using namespace tapegrad` picks these (a Tensor never converts to double).
//
// y = sin x                                dx = g * cos x
Tensor sin(const Tensor& x, std::source_location where = std::source_location::current());
// y = cos x                                dx = -g * sin x
Tensor cos(const Tensor& x, std::source_location where = std::source_location::current());
// y = tan x                                dx = g * (1 + y^2)   (as PyTorch: from the result)
// No domain check: near pi/2 the value is huge or inf, which is the value.
Tensor tan(const Tensor& x, std::source_location where = std::source_location::current());
// y = ln(1 + x), accurate for small |x|  (x >= -1; log1p(-1) = -inf)   dx = g / (1 + x)
// x < -1 (or NaN) is a ValueError naming the element, as log.
Tensor log1p(const Tensor& x, std::source_location where = std::source_location::current());
// y = e^x - 1, accurate for small |x|      dx = g * (y + 1)     (as PyTorch: from the result)
Tensor expm1(const Tensor& x, std::source_location where = std::source_location::current());
// y = erf x = (2 / sqrt(pi)) int_0^x e^(-t^2) dt        dx = g * (2 / sqrt(pi)) e^(-x^2)
Tensor erf(const Tensor& x, std::source_location where = std::source_location::current());

// y = ln(1 + e^(beta x)) / beta  where beta x <= threshold,  y = x  where beta x > threshold
//                                          dx = g * sigmoid(beta x)  (inner region),  g  (linear)
// PyTorch's softplus, linear region included (the gradient there is exactly g). beta must be
// finite and non-zero, threshold not NaN: a ValueError otherwise.
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0,
                std::source_location where = std::source_location::current());

// gelu's two forms, PyTorch's approximate="none" / "tanh".
enum class GeluApproximate { none, tanh };
// none (default, exact):
//   y = x Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2     (the standard normal CDF)
//   dx = g * (Phi(x) + x phi(x)),  phi(x) = e^(-x^2 / 2) / sqrt(2 pi)
// tanh:
//   y = x (1 + t) / 2,  t = tanh(u),  u = sqrt(2 / pi) (x + 0.044715 x^3)
//   dx = g * ((1 + t) / 2 + x (1 - t^2) u' / 2),  u' = sqrt(2 / pi) (1 + 3 * 0.044715 x^2)
// The rules are written with erf, exp and tanh, so second order works.
Tensor gelu(const Tensor& x, GeluApproximate approximate = GeluApproximate::none,
            std::source_location where = std::source_location::current());
// PyTorch's spelling: gelu(x, "tanh") or gelu(x, "none"); any other string is a ValueError.
Tensor gelu(const Tensor& x, std::string_view approximate,
            std::source_location where = std::source_location::current());

// y = x sigmoid(x)  (silu, "swish")         dx = g * s (1 + x (1 - s)),  s = sigmoid(x)
Tensor silu(const Tensor& x, std::source_location where = std::source_location::current());
// y = x  where x > 0,  negative_slope * x  elsewhere
//                                          dx = g  where x > 0,  g * negative_slope elsewhere
// (at x = 0 the slope is negative_slope, as PyTorch)
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01,
                  std::source_location where = std::source_location::current());
// y = x  where x > 0,  alpha (e^x - 1) elsewhere (computed with expm1)
//                                          dx = g  where x > 0,  g * alpha e^x elsewhere
// (at x = 0 the slope is alpha, as PyTorch)
Tensor elu(const Tensor& x, double alpha = 1.0,
           std::source_location where = std::source_location::current());

// The fused rules of sigmoid, tanh and relu, as ops of their own (so they can be differentiated
// again). Shapes: g and y (or x) [same] -> [same]; different shapes are a ShapeError naming both.
// Called by the rules; public for tests.
//   sigmoid_backward(g, y) = g * y * (1 - y)   dg = g2 * y * (1 - y), dy = g2 * g * (1 - 2 y)
//   tanh_backward(g, y)    = g * (1 - y^2)     dg = g2 * (1 - y^2),   dy = -2 g2 g y
//   relu_backward(g, x)    = g * [x > 0]       dg = g2 * [x > 0],     dx = 0
//   gelu_backward(g, x)    = g * (Phi(x) + x phi(x))     (exact gelu; phi, Phi as above)
//                                              dg = g2 * (Phi(x) + x phi(x)),
//                                              dx = g2 * g * phi(x) (2 - x^2)
// gelu_backward is one pass where the composed rule made nine tensors (a third of a tiny-GPT
// step went to them); it equals the composition to the rounding (tests/test_ops_functions.cpp).
Tensor sigmoid_backward(const Tensor& g, const Tensor& y);
Tensor tanh_backward(const Tensor& g, const Tensor& y);
Tensor relu_backward(const Tensor& g, const Tensor& x);
Tensor gelu_backward(const Tensor& g, const Tensor& x);

}  // namespace tapegrad
