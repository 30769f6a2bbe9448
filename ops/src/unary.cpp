// Elementwise ops of one tensor: each kernel, then its rule. Formulas are in unary.hpp.
#include "tapegrad/ops/unary.hpp"

#include <cmath>
#include <limits>
#include <numbers>
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

// A constant 0/1 (or other piecewise-constant) tensor of x's shape: the masks of piecewise rules.
// Constant on purpose: its derivative is zero almost everywhere, so it enters the rule as a leaf.
template <class F>
Tensor piecewise(const Tensor& x, F f) {
  return Tensor::from_values(kernels::map(x, f), x.shape());
}

// The fused rules read both arguments elementwise: they must have one shape.
[[noreturn]] void throw_not_same_shape(std::string_view op, const Tensor& g, const Tensor& other,
                                       std::string_view other_name) {
  throw ShapeError(fmt::format("{}: g and {} must have the same shape ({} vs {})", op, other_name,
                               g.shape(), other.shape()));
}
inline void check_same_shape(std::string_view op, const Tensor& g, const Tensor& other,
                             std::string_view other_name) {
  if (g.shape() != other.shape()) [[unlikely]]
    throw_not_same_shape(op, g, other, other_name);
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
      {"exp", "dx = g * y"}, x.shape(),
      kernels::map(
          x, [](double v) { return std::exp(v); }, parallel_grain_costly),
      {x}, [](const Tensor& g, const Tensor& y, Inputs) { return Grads{g * y}; }, where);
}

Tensor log(const Tensor& x, std::source_location where) {
  check_domain(
      "log", x, [](double v) { return v >= 0.0; }, "x >= 0");
  return record(
      {"log", "dx = g / x"}, x.shape(),
      kernels::map(
          x, [](double v) { return std::log(v); }, parallel_grain_costly),
      {x}, [](const Tensor& g, const Tensor&, Inputs in) { return Grads{g / in[0]}; }, where);
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
      kernels::map(
          x, [p](double v) { return std::pow(v, p); }, parallel_grain_costly),
      {x},
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
  check_same_shape("sigmoid_backward", g, y, "y");
  Values z = kernels::map2(g, y, [](double gi, double yi) { return gi * yi * (1.0 - yi); });
  return record({"sigmoid_backward", "dg = g2 * y * (1 - y), dy = g2 * g * (1 - 2 y)"}, g.shape(),
                std::move(z), {g, y}, [](const Tensor& g2, const Tensor&, Inputs in) {
                  const Tensor& g = in[0];
                  const Tensor& y = in[1];
                  return Grads{kernels::needs_grad(in, 0) ? sigmoid_backward(g2, y) : Tensor(),
                               kernels::needs_grad(in, 1) ? g2 * g * (1.0 - 2.0 * y) : Tensor()};
                });
}

// z = g * (Phi(x) + x phi(x))  dg = g2 * (Phi(x) + x phi(x)),  dx = g2 * g * phi(x) (2 - x^2)
Tensor gelu_backward(const Tensor& g, const Tensor& x) {
  constexpr double inv_sqrt2 = 0.5 * std::numbers::sqrt2;
  constexpr double inv_sqrt_2pi = 0.5 * std::numbers::sqrt2 * std::numbers::inv_sqrtpi;
  check_same_shape("gelu_backward", g, x, "x");
  Values z = kernels::map2(
      g, x,
      [](double gi, double v) {
        const double cdf = 0.5 * (1.0 + std::erf(v * inv_sqrt2));
        const double pdf = inv_sqrt_2pi * std::exp(-0.5 * v * v);
        return gi * (cdf + v * pdf);
      },
      parallel_grain_costly);
  return record({"gelu_backward", "dg = g2 * (Phi(x) + x phi(x)), dx = g2 * g * phi(x) (2 - x^2)"},
                g.shape(), std::move(z), {g, x}, [](const Tensor& g2, const Tensor&, Inputs in) {
                  const Tensor& g = in[0];
                  const Tensor& x = in[1];
                  if (!kernels::needs_grad(in, 1)) return Grads{gelu_backward(g2, x), Tensor()};
                  const Tensor pdf = exp(square(x) * -0.5) * inv_sqrt_2pi;
                  return Grads{kernels::needs_grad(in, 0) ? gelu_backward(g2, x) : Tensor(),
                               g2 * g * pdf * (2.0 - square(x))};
                });
}

// z = g * (1 - y^2)            dg = g2 * (1 - y^2),     dy = -2 g2 g y
Tensor tanh_backward(const Tensor& g, const Tensor& y) {
  check_same_shape("tanh_backward", g, y, "y");
  Values z = kernels::map2(g, y, [](double gi, double yi) { return gi * (1.0 - yi * yi); });
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
  check_same_shape("relu_backward", g, x, "x");
  Values z = kernels::map2(g, x, [](double gi, double xi) { return xi > 0.0 ? gi : 0.0; });
  return record(
      {"relu_backward", "dg = g2 * [x > 0]"}, g.shape(), std::move(z), {g, x},
      [](const Tensor& g2, const Tensor&, Inputs in) {
        return Grads{kernels::needs_grad(in, 0) ? relu_backward(g2, in[1]) : Tensor(), Tensor()};
      });
}

Tensor sigmoid(const Tensor& x, std::source_location where) {
  return record(
      {"sigmoid", "dx = g * y * (1 - y)"}, x.shape(),
      kernels::map(
          x, [](double v) { return stable_sigmoid(v); }, parallel_grain_costly),
      {x}, [](const Tensor& g, const Tensor& y, Inputs) { return Grads{sigmoid_backward(g, y)}; },
      where);
}

Tensor tanh(const Tensor& x, std::source_location where) {
  return record(
      {"tanh", "dx = g * (1 - y^2)"}, x.shape(),
      kernels::map(
          x, [](double v) { return std::tanh(v); }, parallel_grain_costly),
      {x}, [](const Tensor& g, const Tensor& y, Inputs) { return Grads{tanh_backward(g, y)}; },
      where);
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

Tensor sin(const Tensor& x, std::source_location where) {
  return record(
      {"sin", "dx = g * cos(x)"}, x.shape(),
      kernels::map(
          x, [](double v) { return std::sin(v); }, parallel_grain_costly),
      {x}, [](const Tensor& g, const Tensor&, Inputs in) { return Grads{g * cos(in[0])}; }, where);
}

Tensor cos(const Tensor& x, std::source_location where) {
  return record(
      {"cos", "dx = -g * sin(x)"}, x.shape(),
      kernels::map(
          x, [](double v) { return std::cos(v); }, parallel_grain_costly),
      {x}, [](const Tensor& g, const Tensor&, Inputs in) { return Grads{g * neg(sin(in[0]))}; },
      where);
}

Tensor tan(const Tensor& x, std::source_location where) {
  return record(
      {"tan", "dx = g * (1 + y^2)"}, x.shape(),
      kernels::map(
          x, [](double v) { return std::tan(v); }, parallel_grain_costly),
      {x}, [](const Tensor& g, const Tensor& y, Inputs) { return Grads{g * (square(y) + 1.0)}; },
      where);
}

Tensor log1p(const Tensor& x, std::source_location where) {
  check_domain(
      "log1p", x, [](double v) { return v >= -1.0; }, "x >= -1");
  return record(
      {"log1p", "dx = g / (1 + x)"}, x.shape(),
      kernels::map(
          x, [](double v) { return std::log1p(v); }, parallel_grain_costly),
      {x}, [](const Tensor& g, const Tensor&, Inputs in) { return Grads{g / (in[0] + 1.0)}; },
      where);
}

Tensor expm1(const Tensor& x, std::source_location where) {
  return record(
      {"expm1", "dx = g * (y + 1)"}, x.shape(),
      kernels::map(
          x, [](double v) { return std::expm1(v); }, parallel_grain_costly),
      {x}, [](const Tensor& g, const Tensor& y, Inputs) { return Grads{g * (y + 1.0)}; }, where);
}

Tensor erf(const Tensor& x, std::source_location where) {
  return record(
      {"erf", "dx = g * 2/sqrt(pi) * exp(-x^2)"}, x.shape(),
      kernels::map(
          x, [](double v) { return std::erf(v); }, parallel_grain_costly),
      {x},
      [](const Tensor& g, const Tensor&, Inputs in) {
        return Grads{g * exp(neg(square(in[0]))) * (2.0 * std::numbers::inv_sqrtpi)};
      },
      where);
}

Tensor softplus(const Tensor& x, double beta, double threshold, std::source_location where) {
  if (!std::isfinite(beta) || beta == 0.0 || std::isnan(threshold)) {
    throw ValueError(fmt::format(
        "softplus: beta must be finite and non-zero and threshold not NaN (beta {} vs threshold "
        "{}); input shape {}",
        beta, threshold, x.shape()));
  }
  // PyTorch's kernel, to the rounding: linear where beta x > threshold.
  return record(
      {"softplus", "dx = g * sigmoid(beta x), or g where beta x > threshold"}, x.shape(),
      kernels::map(
          x,
          [=](double v) {
            return v * beta > threshold ? v : std::log1p(std::exp(v * beta)) / beta;
          },
          parallel_grain_costly),
      {x},
      [=](const Tensor& g, const Tensor&, Inputs in) {
        const Tensor linear = piecewise(in[0], [=](double v) { return v * beta > threshold; });
        const Tensor inner = piecewise(in[0], [=](double v) { return !(v * beta > threshold); });
        return Grads{g * (sigmoid(in[0] * beta) * inner + linear)};
      },
      where);
}

Tensor gelu(const Tensor& x, GeluApproximate approximate, std::source_location where) {
  constexpr double inv_sqrt2 = 0.5 * std::numbers::sqrt2;
  constexpr double beta = std::numbers::sqrt2 * std::numbers::inv_sqrtpi;  // sqrt(2 / pi)
  constexpr double kappa = 0.044715;
  if (approximate == GeluApproximate::none) {
    return record(
        {"gelu", "dx = g * (Phi(x) + x phi(x))"}, x.shape(),
        kernels::map(
            x, [](double v) { return v * 0.5 * (1.0 + std::erf(v * inv_sqrt2)); },
            parallel_grain_costly),
        {x},
        [](const Tensor& g, const Tensor&, Inputs in) { return Grads{gelu_backward(g, in[0])}; },
        where);
  }
  return record(
      {"gelu", "dx = g * ((1 + t) / 2 + x (1 - t^2) u' / 2), t = tanh(u)"}, x.shape(),
      kernels::map(
          x,
          [](double v) {
            const double inner = beta * (v + kappa * v * v * v);
            return 0.5 * v * (1.0 + std::tanh(inner));
          },
          parallel_grain_costly),
      {x},
      [](const Tensor& g, const Tensor&, Inputs in) {
        const Tensor& x = in[0];
        const Tensor x2 = square(x);
        const Tensor t = tanh((x + x * x2 * kappa) * beta);
        const Tensor du = (x2 * (3.0 * kappa) + 1.0) * beta;
        return Grads{g * ((t + 1.0) * 0.5 + x * 0.5 * (1.0 - square(t)) * du)};
      },
      where);
}

Tensor gelu(const Tensor& x, std::string_view approximate, std::source_location where) {
  if (approximate == "none") return gelu(x, GeluApproximate::none, where);
  if (approximate == "tanh") return gelu(x, GeluApproximate::tanh, where);
  throw ValueError(
      fmt::format("gelu: approximate must be \"none\" or \"tanh\", got \"{}\" (input shape {})",
                  approximate, x.shape()));
}

Tensor silu(const Tensor& x, std::source_location where) {
  return record(
      {"silu", "dx = g * s (1 + x (1 - s)), s = sigmoid(x)"}, x.shape(),
      kernels::map(
          x, [](double v) { return v / (1.0 + std::exp(-v)); }, parallel_grain_costly),
      {x},
      [](const Tensor& g, const Tensor&, Inputs in) {
        const Tensor s = sigmoid(in[0]);
        return Grads{g * s * (in[0] * (1.0 - s) + 1.0)};
      },
      where);
}

Tensor leaky_relu(const Tensor& x, double negative_slope, std::source_location where) {
  return record(
      {"leaky_relu", "dx = g * (x > 0 ? 1 : negative_slope)"}, x.shape(),
      kernels::map(x, [=](double v) { return v > 0.0 ? v : v * negative_slope; }), {x},
      [=](const Tensor& g, const Tensor&, Inputs in) {
        return Grads{g *
                     piecewise(in[0], [=](double v) { return v > 0.0 ? 1.0 : negative_slope; })};
      },
      where);
}

Tensor elu(const Tensor& x, double alpha, std::source_location where) {
  return record(
      {"elu", "dx = g * (x > 0 ? 1 : alpha e^x)"}, x.shape(),
      kernels::map(
          x, [=](double v) { return v > 0.0 ? v : alpha * std::expm1(v); }, parallel_grain_costly),
      {x},
      [=](const Tensor& g, const Tensor&, Inputs in) {
        const Tensor& x = in[0];
        const Tensor positive = piecewise(x, [](double v) { return v > 0.0; });
        const Tensor rest = piecewise(x, [](double v) { return !(v > 0.0); });
        // e^min(x, 0): the masked-off side never overflows to inf (0 * inf would be NaN).
        const Tensor e = exp(clamp(x, -std::numeric_limits<double>::infinity(), 0.0));
        return Grads{g * (positive + rest * e * alpha)};
      },
      where);
}

}  // namespace tapegrad
