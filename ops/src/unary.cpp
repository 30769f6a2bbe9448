// Elementwise ops of one tensor: each kernel, then its rule. Formulas are in unary.hpp.
#include "tapegrad/ops/unary.hpp"

#include <cmath>
#include <source_location>

#include <fmt/format.h>

#include "kernels.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/constants.hpp"

namespace tapegrad {

namespace {
using Inputs = std::span<const Tensor>;
using Grads = TensorList;

// Ops defined only on part of the real line say so instead of returning NaN.
template <class InDomain>
void check_domain(std::string_view op, const Tensor& x, InDomain in_domain,
                  std::string_view domain) {
  const std::span<const double> xv = x.values();
  for (std::size_t i = 0; i < xv.size(); ++i) {
    if (!in_domain(xv[i])) {
      throw ValueError(
          fmt::format("{}: input value {} at flat index {} is outside the domain {} "
                      "(input shape {})",
                      op, xv[i], i, domain, x.shape()));
    }
  }
}

double stable_sigmoid(double x) {
  // Never exponentiate a large positive number: e^-x for x >= 0, e^x / (1 + e^x) otherwise.
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}
}  // namespace

Tensor neg(const Tensor& x, std::source_location where) {
  return record(
      {"neg", "dx = -g"}, x.shape(), kernels::map(x, [](double v) { return -v; }), {x},
      [](const Tensor& g, const Tensor&, Inputs) { return Grads{neg(g)}; }, where);
}

Tensor exp(const Tensor& x, std::source_location where) {
  return record(
      {"exp", "dx = g * y"}, x.shape(), kernels::map(x, [](double v) { return std::exp(v); }), {x},
      [](const Tensor& g, const Tensor& y, Inputs) { return Grads{g * y}; }, where);
}

Tensor log(const Tensor& x, std::source_location where) {
  check_domain(
      "log", x, [](double v) { return v >= 0.0; }, "x >= 0");
  return record(
      {"log", "dx = g / x"}, x.shape(), kernels::map(x, [](double v) { return std::log(v); }), {x},
      [](const Tensor& g, const Tensor&, Inputs in) { return Grads{g / in[0]}; }, where);
}

Tensor sqrt(const Tensor& x, std::source_location where) {
  check_domain(
      "sqrt", x, [](double v) { return v >= 0.0; }, "x >= 0");
  return record(
      {"sqrt", "dx = g / (2 y)"}, x.shape(), kernels::map(x, [](double v) { return std::sqrt(v); }),
      {x}, [](const Tensor& g, const Tensor& y, Inputs) { return Grads{g / (y * 2.0)}; }, where);
}

Tensor abs(const Tensor& x, std::source_location where) {
  return record(
      {"abs", "dx = g * sign(x)"}, x.shape(), kernels::map(x, [](double v) { return std::abs(v); }),
      {x},
      [](const Tensor& g, const Tensor&, Inputs in) {
        // sign(x) is piecewise constant, so it enters the rule as a constant tensor.
        const Tensor sign = Tensor::from_values(
            kernels::map(in[0], [](double v) { return double((v > 0) - (v < 0)); }), in[0].shape());
        return Grads{g * sign};
      },
      where);
}

Tensor square(const Tensor& x, std::source_location where) {
  return record(
      {"square", "dx = g * 2 x"}, x.shape(), kernels::map(x, [](double v) { return v * v; }), {x},
      [](const Tensor& g, const Tensor&, Inputs in) { return Grads{g * in[0] * 2.0}; }, where);
}

Tensor pow(const Tensor& x, double p, std::source_location where) {
  if (p != std::floor(p)) {
    check_domain(
        "pow", x, [](double v) { return v >= 0.0; },
        "x >= 0 (a fractional exponent of a negative number is not real)");
  }
  return record(
      {"pow", "dx = g * p * x^(p-1)"}, x.shape(),
      kernels::map(x, [p](double v) { return std::pow(v, p); }), {x},
      [p](const Tensor& g, const Tensor&, Inputs in) {
        // x^0 is constant; skipping p * x^-1 avoids 0 * inf at x = 0.
        if (p == 0.0) return Grads{zeros_like(in[0])};
        return Grads{g * p * pow(in[0], p - 1.0)};
      },
      where);
}

// The rules of sigmoid, tanh and relu each run as ONE fused op instead of three (plus a constant
// 1): the backward sweep of a small network is mostly these. Each fused op is itself an op with a
// rule written in ops, so gradients of gradients still work.

// z = g * y * (1 - y)          dg = g2 * y * (1 - y),   dy = g2 * g * (1 - 2 y)
Tensor sigmoid_backward(const Tensor& g, const Tensor& y) {
  const auto gv = g.values();
  const auto yv = y.values();
  std::vector<double> z(gv.size());
  for (std::size_t i = 0; i < z.size(); ++i) z[i] = gv[i] * yv[i] * (1.0 - yv[i]);
  return record({"sigmoid_backward", "dg = g2 * y * (1 - y), dy = g2 * g * (1 - 2 y)"}, g.shape(),
                std::move(z), {g, y}, [](const Tensor& g2, const Tensor&, Inputs in) {
                  const Tensor& g = in[0];
                  const Tensor& y = in[1];
                  return Grads{kernels::needs_grad(in, 0) ? sigmoid_backward(g2, y) : Tensor(),
                               kernels::needs_grad(in, 1) ? g2 * g * (1.0 - 2.0 * y) : Tensor()};
                });
}

// z = g * (1 - y^2)            dg = g2 * (1 - y^2),     dy = -2 g2 g y
Tensor tanh_backward(const Tensor& g, const Tensor& y) {
  const auto gv = g.values();
  const auto yv = y.values();
  std::vector<double> z(gv.size());
  for (std::size_t i = 0; i < z.size(); ++i) z[i] = gv[i] * (1.0 - yv[i] * yv[i]);
  return record({"tanh_backward", "dg = g2 * (1 - y^2), dy = -2 g2 g y"}, g.shape(), std::move(z),
                {g, y}, [](const Tensor& g2, const Tensor&, Inputs in) {
                  const Tensor& g = in[0];
                  const Tensor& y = in[1];
                  return Grads{kernels::needs_grad(in, 0) ? tanh_backward(g2, y) : Tensor(),
                               kernels::needs_grad(in, 1) ? g2 * g * y * -2.0 : Tensor()};
                });
}

// z = g * [x > 0]              dg = g2 * [x > 0],       dx = 0 (the mask is piecewise constant)
Tensor relu_backward(const Tensor& g, const Tensor& x) {
  const auto gv = g.values();
  const auto xv = x.values();
  std::vector<double> z(gv.size());
  for (std::size_t i = 0; i < z.size(); ++i) z[i] = xv[i] > 0.0 ? gv[i] : 0.0;
  return record(
      {"relu_backward", "dg = g2 * [x > 0]"}, g.shape(), std::move(z), {g, x},
      [](const Tensor& g2, const Tensor&, Inputs in) {
        return Grads{kernels::needs_grad(in, 0) ? relu_backward(g2, in[1]) : Tensor(), Tensor()};
      });
}

Tensor sigmoid(const Tensor& x, std::source_location where) {
  return record(
      {"sigmoid", "dx = g * y * (1 - y)"}, x.shape(), kernels::map(x, stable_sigmoid), {x},
      [](const Tensor& g, const Tensor& y, Inputs) { return Grads{sigmoid_backward(g, y)}; },
      where);
}

Tensor tanh(const Tensor& x, std::source_location where) {
  return record(
      {"tanh", "dx = g * (1 - y^2)"}, x.shape(),
      kernels::map(x, [](double v) { return std::tanh(v); }), {x},
      [](const Tensor& g, const Tensor& y, Inputs) { return Grads{tanh_backward(g, y)}; }, where);
}

Tensor relu(const Tensor& x, std::source_location where) {
  return record(
      {"relu", "dx = g * [x > 0]"}, x.shape(),
      kernels::map(x, [](double v) { return v > 0.0 ? v : 0.0; }), {x},
      [](const Tensor& g, const Tensor&, Inputs in) { return Grads{relu_backward(g, in[0])}; },
      where);
}

Tensor clamp(const Tensor& x, double low, double high, std::source_location where) {
  if (!(low <= high)) {
    throw ValueError(
        fmt::format("clamp: low must not exceed high (low {} vs high {}); input shape {}", low,
                    high, x.shape()));
  }
  return record(
      {"clamp", "dx = g * [low <= x <= high]"}, x.shape(),
      kernels::map(x, [=](double v) { return v < low ? low : (v > high ? high : v); }), {x},
      [=](const Tensor& g, const Tensor&, Inputs in) {
        const Tensor inside = Tensor::from_values(
            kernels::map(in[0], [=](double v) { return low <= v && v <= high ? 1.0 : 0.0; }),
            in[0].shape());
        return Grads{g * inside};
      },
      where);
}

}  // namespace tapegrad
