#pragma once
// Elementwise ops of two tensors, with NumPy broadcasting:
//   shapes: a [..], b [..] -> y [broadcast_shapes(a, b)]; ShapeError if they do not broadcast.
// Rules return gradients in y's shape; the engine sums each down to its input's shape (sum_to).
// Operators with a double treat it as a constant scalar tensor.
#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

// y = a + b                                da = g,           db = g
Tensor add(const Tensor& a, const Tensor& b);
// y = a - b                                da = g,           db = -g
Tensor sub(const Tensor& a, const Tensor& b);
// y = a * b                                da = g * b,       db = g * a
Tensor mul(const Tensor& a, const Tensor& b);
// y = a / b                                da = g / b,       db = -g * a / b^2
Tensor div(const Tensor& a, const Tensor& b);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

}  // namespace tapegrad
