// Broadcasting elementwise ops of two tensors: each kernel, then its rule. Formulas in binary.hpp.
#include "tapegrad/ops/binary.hpp"

#include <fmt/format.h>

#include "kernels.hpp"
#include "tapegrad/core/broadcast.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/ops/unary.hpp"

namespace tapegrad {

namespace {
using Inputs = std::span<const Tensor>;
using Grads = std::vector<Tensor>;

// y = f(a, b) with NumPy broadcasting. Same shapes and a scalar side take plain loops.
template <class F>
std::vector<double> broadcast_kernel(const Tensor& a, const Tensor& b, const Shape& out, F f) {
  const std::span<const double> av = a.values();
  const std::span<const double> bv = b.values();
  std::vector<double> y(out.numel());
  if (a.shape() == b.shape()) {
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = f(av[i], bv[i]);
  } else if (b.numel() == 1 && a.shape() == out) {
    const double s = bv[0];
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = f(av[i], s);
  } else if (a.numel() == 1 && b.shape() == out) {
    const double s = av[0];
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = f(s, bv[i]);
  } else {
    detail::for_each_broadcast(
        out, detail::broadcast_strides(a.shape(), out), detail::broadcast_strides(b.shape(), out),
        [&](std::size_t o, std::size_t ai, std::size_t bi) { y[o] = f(av[ai], bv[bi]); });
  }
  return y;
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Shape out = broadcast_shapes(a.shape(), b.shape(), "add");
  auto y = broadcast_kernel(a, b, out, [](double u, double v) { return u + v; });
  return record("add", std::move(out), std::move(y), {a, b},
                [](const Tensor& g, const Tensor&, Inputs) {
                  return Grads{g, g};
                });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Shape out = broadcast_shapes(a.shape(), b.shape(), "sub");
  auto y = broadcast_kernel(a, b, out, [](double u, double v) { return u - v; });
  return record("sub", std::move(out), std::move(y), {a, b},
                [](const Tensor& g, const Tensor&, Inputs in) {
                  return Grads{g, kernels::needs_grad(in, 1) ? neg(g) : Tensor()};
                });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Shape out = broadcast_shapes(a.shape(), b.shape(), "mul");
  auto y = broadcast_kernel(a, b, out, [](double u, double v) { return u * v; });
  return record("mul", std::move(out), std::move(y), {a, b},
                [](const Tensor& g, const Tensor&, Inputs in) {
                  return Grads{kernels::needs_grad(in, 0) ? g * in[1] : Tensor(),
                               kernels::needs_grad(in, 1) ? g * in[0] : Tensor()};
                });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Shape out = broadcast_shapes(a.shape(), b.shape(), "div");
  auto y = broadcast_kernel(a, b, out, [](double u, double v) { return u / v; });
  return record("div", std::move(out), std::move(y), {a, b},
                [](const Tensor& g, const Tensor& y, Inputs in) {
                  // d(a/b)/db = -a/b^2 = -y/b
                  return Grads{kernels::needs_grad(in, 0) ? g / in[1] : Tensor(),
                               kernels::needs_grad(in, 1) ? neg(g * y / in[1]) : Tensor()};
                });
}

Tensor operator+(const Tensor& a, const Tensor& b) {
  return add(a, b);
}
Tensor operator-(const Tensor& a, const Tensor& b) {
  return sub(a, b);
}
Tensor operator*(const Tensor& a, const Tensor& b) {
  return mul(a, b);
}
Tensor operator/(const Tensor& a, const Tensor& b) {
  return div(a, b);
}
Tensor operator-(const Tensor& x) {
  return neg(x);
}
Tensor operator+(const Tensor& a, double b) {
  return add(a, scalar(b));
}
Tensor operator-(const Tensor& a, double b) {
  return sub(a, scalar(b));
}
Tensor operator*(const Tensor& a, double b) {
  return mul(a, scalar(b));
}
Tensor operator/(const Tensor& a, double b) {
  return div(a, scalar(b));
}
Tensor operator+(double a, const Tensor& b) {
  return add(scalar(a), b);
}
Tensor operator-(double a, const Tensor& b) {
  return sub(scalar(a), b);
}
Tensor operator*(double a, const Tensor& b) {
  return mul(scalar(a), b);
}
Tensor operator/(double a, const Tensor& b) {
  return div(scalar(a), b);
}

}  // namespace tapegrad
