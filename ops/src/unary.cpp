// Elementwise ops of one tensor: each kernel, then its rule. Formulas are in unary.hpp.
#include "tapegrad/ops/unary.hpp"

#include <cmath>

#include <fmt/format.h>

#include "kernels.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/constants.hpp"

namespace tapegrad {

namespace {
using Inputs = std::span<const Tensor>;
using Grads = std::vector<Tensor>;

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

Tensor neg(const Tensor& x) {
  return record("neg", x.shape(), kernels::map(x, [](double v) { return -v; }), {x},
                [](const Tensor& g, const Tensor&, Inputs) { return Grads{neg(g)}; });
}

Tensor exp(const Tensor& x) {
  return record("exp", x.shape(), kernels::map(x, [](double v) { return std::exp(v); }), {x},
                [](const Tensor& g, const Tensor& y, Inputs) { return Grads{g * y}; });
}

Tensor log(const Tensor& x) {
  check_domain(
      "log", x, [](double v) { return v >= 0.0; }, "x >= 0");
  return record("log", x.shape(), kernels::map(x, [](double v) { return std::log(v); }), {x},
                [](const Tensor& g, const Tensor&, Inputs in) { return Grads{g / in[0]}; });
}

Tensor sqrt(const Tensor& x) {
  check_domain(
      "sqrt", x, [](double v) { return v >= 0.0; }, "x >= 0");
  return record("sqrt", x.shape(), kernels::map(x, [](double v) { return std::sqrt(v); }), {x},
                [](const Tensor& g, const Tensor& y, Inputs) { return Grads{g / (y * 2.0)}; });
}

Tensor abs(const Tensor& x) {
  return record("abs", x.shape(), kernels::map(x, [](double v) { return std::abs(v); }), {x},
                [](const Tensor& g, const Tensor&, Inputs in) {
                  // sign(x) is piecewise constant, so it enters the rule as a constant tensor.
                  const Tensor sign = Tensor::from_values(
                      kernels::map(in[0], [](double v) { return double((v > 0) - (v < 0)); }),
                      in[0].shape());
                  return Grads{g * sign};
                });
}

Tensor square(const Tensor& x) {
  return record("square", x.shape(), kernels::map(x, [](double v) { return v * v; }), {x},
                [](const Tensor& g, const Tensor&, Inputs in) { return Grads{g * in[0] * 2.0}; });
}

Tensor pow(const Tensor& x, double p) {
  if (p != std::floor(p)) {
    check_domain(
        "pow", x, [](double v) { return v >= 0.0; },
        "x >= 0 (a fractional exponent of a negative number is not real)");
  }
  return record("pow", x.shape(), kernels::map(x, [p](double v) { return std::pow(v, p); }), {x},
                [p](const Tensor& g, const Tensor&, Inputs in) {
                  // x^0 is constant; skipping p * x^-1 avoids 0 * inf at x = 0.
                  if (p == 0.0) return Grads{zeros_like(in[0])};
                  return Grads{g * p * pow(in[0], p - 1.0)};
                });
}

Tensor sigmoid(const Tensor& x) {
  return record("sigmoid", x.shape(), kernels::map(x, stable_sigmoid), {x},
                [](const Tensor& g, const Tensor& y, Inputs) { return Grads{g * y * (1.0 - y)}; });
}

Tensor tanh(const Tensor& x) {
  return record("tanh", x.shape(), kernels::map(x, [](double v) { return std::tanh(v); }), {x},
                [](const Tensor& g, const Tensor& y, Inputs) { return Grads{g * (1.0 - y * y)}; });
}

Tensor relu(const Tensor& x) {
  return record(
      "relu", x.shape(), kernels::map(x, [](double v) { return v > 0.0 ? v : 0.0; }), {x},
      [](const Tensor& g, const Tensor&, Inputs in) { return Grads{g * positive_mask(in[0])}; });
}

Tensor clamp(const Tensor& x, double low, double high) {
  if (!(low <= high)) {
    throw ValueError(
        fmt::format("clamp: low must not exceed high (low {} vs high {}); input shape {}", low,
                    high, x.shape()));
  }
  return record(
      "clamp", x.shape(),
      kernels::map(x, [=](double v) { return v < low ? low : (v > high ? high : v); }), {x},
      [=](const Tensor& g, const Tensor&, Inputs in) {
        const Tensor inside = Tensor::from_values(
            kernels::map(in[0], [=](double v) { return low <= v && v <= high ? 1.0 : 0.0; }),
            in[0].shape());
        return Grads{g * inside};
      });
}

}  // namespace tapegrad
