#pragma once
// Elementwise ops of two tensors, with NumPy broadcasting:
//   shapes: a [..], b [..] -> y [broadcast_shapes(a, b)]; ShapeError if they do not broadcast.
// Rules return gradients in y's shape; the engine sums each down to its input's shape (sum_to).
// Operators with a double treat it as a constant scalar tensor.
#include <source_location>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

// y = a + b                                da = g,           db = g
Tensor add(const Tensor& a, const Tensor& b,
           std::source_location where = std::source_location::current());
// y = a - b                                da = g,           db = -g
Tensor sub(const Tensor& a, const Tensor& b,
           std::source_location where = std::source_location::current());
// y = a * b                                da = g * b,       db = g * a
Tensor mul(const Tensor& a, const Tensor& b,
           std::source_location where = std::source_location::current());
// y = a / b                                da = g / b,       db = -g * a / b^2
Tensor div(const Tensor& a, const Tensor& b,
           std::source_location where = std::source_location::current());

// The tensor on the left of an operator (or under unary minus), with the line it was written on,
// so anomaly mode can name the user's line for `a / b` as it does for `div(a, b)`.
struct Operand {
  const Tensor& tensor;
  std::source_location where;
  Operand(const Tensor& t,  // NOLINT: implicit on purpose, every Tensor is an Operand
          std::source_location at = std::source_location::current())
      : tensor(t), where(at) {}
};

Tensor operator+(Operand a, const Tensor& b);
Tensor operator-(Operand a, const Tensor& b);
Tensor operator*(Operand a, const Tensor& b);
Tensor operator/(Operand a, const Tensor& b);
Tensor operator-(Operand x);
Tensor operator+(Operand a, double b);
Tensor operator-(Operand a, double b);
Tensor operator*(Operand a, double b);
Tensor operator/(Operand a, double b);
Tensor operator+(double a, Operand b);
Tensor operator-(double a, Operand b);
Tensor operator*(double a, Operand b);
Tensor operator/(double a, Operand b);

}  // namespace tapegrad
