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
// y = min(a, b) elementwise (torch.minimum)   da = g * w_a,  db = g * w_b, where
//   w_a = 1 where a < b, 0 where a > b, 1/2 where a == b (ties split the gradient, as PyTorch),
//   and 1 for both where either is NaN (the result is NaN, and PyTorch passes g to both);
//   w_b is the same with a and b swapped.
Tensor minimum(const Tensor& a, const Tensor& b,
               std::source_location where = std::source_location::current());
// y = max(a, b) elementwise (torch.maximum)   da = g * w_a,  db = g * w_b, as minimum with the
//   comparisons reversed: w_a = 1 where a > b, 0 where a < b, 1/2 at ties, 1 where NaN.
Tensor maximum(const Tensor& a, const Tensor& b,
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

// The tensor-tensor operators are the ops themselves (inline: no call layer of their own).
inline Tensor operator+(Operand a, const Tensor& b) {
  return add(a.tensor, b, a.where);
}
inline Tensor operator-(Operand a, const Tensor& b) {
  return sub(a.tensor, b, a.where);
}
inline Tensor operator*(Operand a, const Tensor& b) {
  return mul(a.tensor, b, a.where);
}
inline Tensor operator/(Operand a, const Tensor& b) {
  return div(a.tensor, b, a.where);
}
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
