// Broadcasting elementwise ops of two tensors: each kernel, then its rule. Formulas in binary.hpp.
#include "tapegrad/ops/binary.hpp"

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "kernels.hpp"
#include "tapegrad/core/broadcast.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/ops/unary.hpp"

namespace tapegrad {

namespace {
using Inputs = std::span<const Tensor>;
using Grads = TensorList;

// y = f(a, b) with NumPy broadcasting. Same shapes and a scalar side take plain loops; large
// outputs are split across threads (by rows in the general case).
template <class F>
Values broadcast_kernel(const Tensor& a, const Tensor& b, const Shape& out, F f) {
  const double* const av = a.values().data();
  const double* const bv = b.values().data();
  Values y(out.numel());
  double* const yv = y.data();
  const std::size_t n = y.size();
  // The element loops' closures hold copies of the pointers: closures holding references make the
  // compiler keep the pointers in memory, which every scalar op would pay.
  if (a.shape() == b.shape()) {
    kernels::for_each_element(n, parallel_grain_cheap,
                              [yv, av, bv, f](std::size_t i) { yv[i] = f(av[i], bv[i]); });
  } else if (b.numel() == 1 && a.shape() == out) {
    const double s = bv[0];
    kernels::for_each_element(n, parallel_grain_cheap,
                              [yv, av, s, f](std::size_t i) { yv[i] = f(av[i], s); });
  } else if (a.numel() == 1 && b.shape() == out) {
    const double s = av[0];
    kernels::for_each_element(n, parallel_grain_cheap,
                              [yv, bv, s, f](std::size_t i) { yv[i] = f(s, bv[i]); });
  } else {
    kernels::for_each_broadcast_split(
        out, detail::broadcast_strides(a.shape(), out), detail::broadcast_strides(b.shape(), out),
        parallel_grain_cheap, [yv, av, bv, f](std::size_t o, std::size_t ai, std::size_t bi) {
          yv[o] = f(av[ai], bv[bi]);
        });
  }
  return y;
}

// The gradient weights of minimum/maximum, constants in the output's shape: `wins` says where
// one side alone is the result. Ties give 1/2 to each side; NaN (neither wins nor ties) gives 1
// to both, as PyTorch 1.13's rule: where(a == b, g / 2, g).masked_fill_(loses, 0).
template <class Wins>
Tensor extremum_weight(const Tensor& a, const Tensor& b, const Shape& out, Wins wins) {
  return Tensor::from_values(broadcast_kernel(a, b, out,
                                              [wins](double u, double v) {
                                                if (u == v) return 0.5;
                                                return wins(v, u) ? 0.0 : 1.0;
                                              }),
                             out);
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b, std::source_location where) {
  Shape out = broadcast_shapes(a.shape(), b.shape(), "add");
  auto y = broadcast_kernel(a, b, out, [](double u, double v) { return u + v; });
  return record(
      {"add", "da = g, db = g"}, std::move(out), std::move(y), {a, b},
      [](const Tensor& g, const Tensor&, Inputs) {
        return Grads{g, g};
      },
      where);
}

Tensor sub(const Tensor& a, const Tensor& b, std::source_location where) {
  Shape out = broadcast_shapes(a.shape(), b.shape(), "sub");
  auto y = broadcast_kernel(a, b, out, [](double u, double v) { return u - v; });
  return record(
      {"sub", "da = g, db = -g"}, std::move(out), std::move(y), {a, b},
      [](const Tensor& g, const Tensor&, Inputs in) {
        return Grads{g, kernels::needs_grad(in, 1) ? neg(g) : Tensor()};
      },
      where);
}

Tensor mul(const Tensor& a, const Tensor& b, std::source_location where) {
  Shape out = broadcast_shapes(a.shape(), b.shape(), "mul");
  auto y = broadcast_kernel(a, b, out, [](double u, double v) { return u * v; });
  return record(
      {"mul", "da = g * b, db = g * a"}, std::move(out), std::move(y), {a, b},
      [](const Tensor& g, const Tensor&, Inputs in) {
        return Grads{kernels::needs_grad(in, 0) ? g * in[1] : Tensor(),
                     kernels::needs_grad(in, 1) ? g * in[0] : Tensor()};
      },
      where);
}

Tensor div(const Tensor& a, const Tensor& b, std::source_location where) {
  Shape out = broadcast_shapes(a.shape(), b.shape(), "div");
  auto y = broadcast_kernel(a, b, out, [](double u, double v) { return u / v; });
  return record(
      {"div", "da = g / b, db = -g * y / b"}, std::move(out), std::move(y), {a, b},
      [](const Tensor& g, const Tensor& y, Inputs in) {
        // d(a/b)/db = -a/b^2 = -y/b
        return Grads{kernels::needs_grad(in, 0) ? g / in[1] : Tensor(),
                     kernels::needs_grad(in, 1) ? neg(g * y / in[1]) : Tensor()};
      },
      where);
}

Tensor minimum(const Tensor& a, const Tensor& b, std::source_location where) {
  Shape out = broadcast_shapes(a.shape(), b.shape(), "minimum");
  auto y = broadcast_kernel(a, b, out, [](double u, double v) {
    return std::isnan(u) || std::isnan(v) ? std::numeric_limits<double>::quiet_NaN()
                                          : (u < v ? u : v);
  });
  return record(
      {"minimum", "da = g * [a < b], db = g * [b < a] (ties: g / 2 each)"}, std::move(out),
      std::move(y), {a, b},
      [](const Tensor& g, const Tensor& y, Inputs in) {
        const auto less = [](double u, double v) { return u < v; };
        return Grads{kernels::needs_grad(in, 0) ? g * extremum_weight(in[0], in[1], y.shape(), less)
                                                : Tensor(),
                     kernels::needs_grad(in, 1) ? g * extremum_weight(in[1], in[0], y.shape(), less)
                                                : Tensor()};
      },
      where);
}

Tensor maximum(const Tensor& a, const Tensor& b, std::source_location where) {
  Shape out = broadcast_shapes(a.shape(), b.shape(), "maximum");
  auto y = broadcast_kernel(a, b, out, [](double u, double v) {
    return std::isnan(u) || std::isnan(v) ? std::numeric_limits<double>::quiet_NaN()
                                          : (u > v ? u : v);
  });
  return record(
      {"maximum", "da = g * [a > b], db = g * [b > a] (ties: g / 2 each)"}, std::move(out),
      std::move(y), {a, b},
      [](const Tensor& g, const Tensor& y, Inputs in) {
        const auto greater = [](double u, double v) { return u > v; };
        return Grads{
            kernels::needs_grad(in, 0) ? g * extremum_weight(in[0], in[1], y.shape(), greater)
                                       : Tensor(),
            kernels::needs_grad(in, 1) ? g * extremum_weight(in[1], in[0], y.shape(), greater)
                                       : Tensor()};
      },
      where);
}

Tensor operator-(Operand x) {
  return neg(x.tensor, x.where);
}
Tensor operator+(Operand a, double b) {
  return add(a.tensor, scalar(b), a.where);
}
Tensor operator-(Operand a, double b) {
  return sub(a.tensor, scalar(b), a.where);
}
Tensor operator*(Operand a, double b) {
  return mul(a.tensor, scalar(b), a.where);
}
Tensor operator/(Operand a, double b) {
  return div(a.tensor, scalar(b), a.where);
}
Tensor operator+(double a, Operand b) {
  return add(scalar(a), b.tensor, b.where);
}
Tensor operator-(double a, Operand b) {
  return sub(scalar(a), b.tensor, b.where);
}
Tensor operator*(double a, Operand b) {
  return mul(scalar(a), b.tensor, b.where);
}
Tensor operator/(double a, Operand b) {
  return div(scalar(a), b.tensor, b.where);
}

}  // namespace tapegrad
