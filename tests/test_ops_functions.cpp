// The functions of issue 13 (sin, cos, tan, log1p, expm1, erf, softplus, gelu, silu, leaky_relu,
// elu, minimum, maximum) and issue 12 item 9 (the fused rules check their shapes):
//   OpsGradCheck           first derivatives against finite differences, scalar to rank 3, and
//                          broadcasting for minimum/maximum
//   SecondOrderGradCheck   gradgradcheck of every one (the rules are differentiable again)
//   OpsClosedForm          exact values: ties, NaN, the linear region, sin(z) is ours
//   TorchParity            values and gradients against PyTorch float64, edge values included
//   Misuse                 the domain of log1p, bad options, mismatched shapes
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numbers>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

#include "test_inputs.hpp"
#include "torch_oracle.hpp"

// `sin(z)` must pick tapegrad::sin: with the using-directive (the complaint was that
// std::sin was picked, with a confusing error), with `using namespace std` as well, and by
// argument-dependent lookup alone. Each line below fails to compile if it picks anything else.
namespace with_using_directive {
using namespace tapegrad;  // NOLINT: the case under test
inline Tensor call_sin(const Tensor& z) {
  return sin(z);
}
static_assert(std::is_same_v<decltype(sin(std::declval<const Tensor&>())), Tensor>);
static_assert(std::is_same_v<decltype(sin(0.5)), double>);  // doubles still reach std::sin
}  // namespace with_using_directive

namespace with_both_directives {
using namespace std;       // NOLINT: the case under test
using namespace tapegrad;  // NOLINT
static_assert(std::is_same_v<decltype(sin(std::declval<const Tensor&>())), Tensor>);
static_assert(std::is_same_v<decltype(erf(std::declval<const Tensor&>())), Tensor>);
static_assert(std::is_same_v<decltype(log1p(std::declval<const Tensor&>())), Tensor>);
}  // namespace with_both_directives

namespace by_adl_alone {
inline tapegrad::Tensor call_cos(const tapegrad::Tensor& z) {
  return cos(z);  // no using: found through the argument's namespace
}
}  // namespace by_adl_alone

namespace {

using namespace tapegrad;               // NOLINT: the ops read best unqualified
using namespace tapegrad::test_inputs;  // NOLINT
using tapegrad::test::Outputs;
using tapegrad::test::TorchOracle;
using Inputs = std::vector<Tensor>;
using Span = std::span<const Tensor>;
using UnaryFn = std::function<Tensor(const Tensor&)>;
using MakeFn = std::function<Tensor(const Shape&, std::uint64_t)>;

constexpr double inf = std::numeric_limits<double>::infinity();
const double nan = std::numeric_limits<double>::quiet_NaN();

// ---------------------------------------------------------------------------------------------
// Helpers

::testing::AssertionResult GradcheckPasses(const Function& f, const Inputs& inputs) {
  const GradcheckResult r = gradcheck(f, inputs);
  if (!r.passed) return ::testing::AssertionFailure() << r.report;
  std::size_t want = 0;
  {
    Tape tape;
    const Tensor out = f(inputs);
    for (const Tensor& t : inputs) want += t.requires_grad() ? t.numel() * out.numel() : 0;
  }
  if (r.elements_checked != want) {
    return ::testing::AssertionFailure()
           << "gradcheck compared " << r.elements_checked << " Jacobian entries, expected " << want;
  }
  return ::testing::AssertionSuccess();
}

// gradgradcheck of f and of square(f): a piecewise-linear op's own second derivative is zero, so
// only with something curved after it must its rule carry a gradient that depends on the inputs.
::testing::AssertionResult GradgradPasses(const Function& f, const Inputs& inputs,
                                          std::uint64_t seed) {
  const GradcheckResult plain = gradgradcheck(f, inputs, {.seed = seed});
  if (!plain.passed) return ::testing::AssertionFailure() << "f: " << plain.report;
  const Function squared = [&f](const Inputs& x) { return square(f(x)); };
  const GradcheckResult curved = gradgradcheck(squared, inputs, {.seed = seed + 1});
  if (!curved.passed) return ::testing::AssertionFailure() << "square(f): " << curved.report;
  if (plain.elements_checked == 0 || curved.elements_checked == 0) {
    return ::testing::AssertionFailure() << "nothing was checked";
  }
  return ::testing::AssertionSuccess();
}

struct NamedUnary {
  const char* name;
  UnaryFn fn;
  MakeFn make;  // inputs inside the domain and away from kinks
};

MakeFn range(double low, double high) {
  return [=](const Shape& s, std::uint64_t seed) { return in_range(s, seed, low, high); };
}
MakeFn avoiding(std::vector<double> kinks, double low, double high) {
  return [=](const Shape& s, std::uint64_t seed) {
    return away_from(s, seed, kinks, low, high, 0.05);
  };
}

// Every new unary op, with its options varied. Kinks: leaky_relu and elu at 0, softplus where
// beta x = threshold.
std::vector<NamedUnary> unary_ops() {
  return {
      {"sin", [](const Tensor& x) { return sin(x); }, range(-4, 4)},
      {"cos", [](const Tensor& x) { return cos(x); }, range(-4, 4)},
      {"tan", [](const Tensor& x) { return tan(x); }, range(-1.3, 1.3)},
      {"log1p", [](const Tensor& x) { return log1p(x); }, range(-0.9, 3)},
      {"expm1", [](const Tensor& x) { return expm1(x); }, range(-3, 3)},
      {"erf", [](const Tensor& x) { return erf(x); }, range(-2.5, 2.5)},
      {"softplus", [](const Tensor& x) { return softplus(x); }, range(-6, 6)},
      {"softplus linear region", [](const Tensor& x) { return softplus(x); }, range(21, 30)},
      {"softplus beta 2 threshold 3", [](const Tensor& x) { return softplus(x, 2.0, 3.0); },
       avoiding({1.5}, -3, 3)},
      {"softplus beta -0.5", [](const Tensor& x) { return softplus(x, -0.5); }, range(-4, 4)},
      {"gelu", [](const Tensor& x) { return gelu(x); }, range(-4, 4)},
      {"gelu tanh", [](const Tensor& x) { return gelu(x, GeluApproximate::tanh); }, range(-4, 4)},
      {"gelu \"tanh\"", [](const Tensor& x) { return gelu(x, "tanh"); }, range(-4, 4)},
      {"silu", [](const Tensor& x) { return silu(x); }, range(-6, 6)},
      {"leaky_relu", [](const Tensor& x) { return leaky_relu(x); }, avoiding({0}, -3, 3)},
      {"leaky_relu 0.3", [](const Tensor& x) { return leaky_relu(x, 0.3); }, avoiding({0}, -3, 3)},
      {"elu", [](const Tensor& x) { return elu(x); }, avoiding({0}, -4, 3)},
      {"elu alpha 1.7", [](const Tensor& x) { return elu(x, 1.7); }, avoiding({0}, -4, 3)},
  };
}

using BinaryFn = std::function<Tensor(const Tensor&, const Tensor&)>;
struct NamedBinary {
  const char* name;
  BinaryFn fn;
};
std::vector<NamedBinary> extremum_ops() {
  return {{"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }},
          {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }}};
}

struct ShapePair {
  Shape a, b;
};
std::vector<ShapePair> broadcast_pairs() {
  return {{{}, {}},
          {{5}, {5}},
          {{3, 4}, {3, 4}},
          {{2, 3, 4}, {2, 3, 4}},
          {{3, 4}, {4}},
          {{4}, {3, 4}},
          {{2, 3, 4}, {3, 1}},
          {{1, 4}, {3, 1}},
          {{}, {2, 3}},
          {{2, 1, 4}, {2, 3, 1}}};
}

// Two tensors whose values (after broadcasting) never come within 0.05 of each other, so no
// finite-difference step crosses a switch between the sides: a is drawn, b = a's partner
// shifted by at least 0.1 in either direction.
std::pair<Tensor, Tensor> untied(const Shape& sa, const Shape& sb, std::uint64_t seed) {
  const Tensor a = distinct(sa, seed);
  Tensor b = normal(sb, seed + 500).detach();
  // Push every b away from every a it meets (a is small, so this is a full check).
  auto bv = b.mutable_values();
  for (double& v : bv) {
    bool near = true;
    while (near) {
      near = false;
      for (double u : a.values()) {
        if (std::abs(u - v) < 0.1) {
          v += 0.137;
          near = true;
        }
      }
    }
  }
  b.requires_grad_();
  return {a, b};
}

template <class E>
::testing::AssertionResult ThrowsWith(const std::function<void()>& f,
                                      const std::vector<std::string>& fragments) {
  try {
    f();
  } catch (const E& e) {
    const std::string what = e.what();
    for (const std::string& fragment : fragments) {
      if (what.find(fragment) == std::string::npos) {
        return ::testing::AssertionFailure()
               << "message \"" << what << "\" does not contain \"" << fragment << "\"";
      }
    }
    return ::testing::AssertionSuccess() << what;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw the wrong type: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

// The gradient of sum(y * seed) with respect to each input, on a fresh tape.
std::vector<Tensor> gradients(const std::function<Tensor(Span)>& f, std::vector<Tensor> inputs) {
  Tape tape;
  const Tensor y = f(inputs);
  return grad(sum(y), inputs);
}

std::vector<double> values_of(const Tensor& t) {
  return {t.values().begin(), t.values().end()};
}

// ---------------------------------------------------------------------------------------------
// OpsGradCheck

TEST(OpsGradCheck, NewFunctionsAllRanks) {
  std::uint64_t seed = 1300;
  for (const NamedUnary& op : unary_ops()) {
    for (const Shape& shape : {Shape{}, Shape{5}, Shape{3, 4}, Shape{2, 3, 4}}) {
      SCOPED_TRACE(fmt::format("{} on {}", op.name, shape));
      EXPECT_TRUE(
          GradcheckPasses([&](const Inputs& x) { return op.fn(x[0]); }, {op.make(shape, seed++)}));
    }
  }
}

TEST(OpsGradCheck, MinimumMaximumBroadcasting) {
  std::uint64_t seed = 1400;
  for (const NamedBinary& op : extremum_ops()) {
    for (const ShapePair& p : broadcast_pairs()) {
      SCOPED_TRACE(fmt::format("{}({}, {})", op.name, p.a, p.b));
      const auto [a, b] = untied(p.a, p.b, seed++);
      EXPECT_TRUE(GradcheckPasses([&](const Inputs& x) { return op.fn(x[0], x[1]); }, {a, b}));
      // One side constant: the rule skips it and the other still checks.
      EXPECT_TRUE(
          GradcheckPasses([&](const Inputs& x) { return op.fn(x[0], x[1]); }, {a, b.detach()}));
    }
  }
}

// The functions inside one expression, as users write them.
TEST(OpsGradCheck, NewFunctionsComposed) {
  const Function f = [](const Inputs& x) {
    return sum(gelu(sin(x[0]) * x[1]) + softplus(maximum(x[0], x[1]), 2.0) -
               elu(log1p(square(x[1]))) * erf(x[0]));
  };
  EXPECT_TRUE(GradcheckPasses(f, {normal({3, 4}, 1501), normal({4}, 1502)}));
}

// ---------------------------------------------------------------------------------------------
// SecondOrderGradCheck

TEST(SecondOrderGradCheck, NewFunctions) {
  std::uint64_t seed = 1600;
  for (const NamedUnary& op : unary_ops()) {
    for (const Shape& shape : {Shape{}, Shape{4}, Shape{2, 3}}) {
      SCOPED_TRACE(fmt::format("{} on {}", op.name, shape));
      EXPECT_TRUE(GradgradPasses([&](const Inputs& x) { return op.fn(x[0]); },
                                 {op.make(shape, seed)}, seed));
      ++seed;
    }
  }
}

TEST(SecondOrderGradCheck, MinimumMaximum) {
  std::uint64_t seed = 1700;
  for (const NamedBinary& op : extremum_ops()) {
    for (const ShapePair& p : broadcast_pairs()) {
      SCOPED_TRACE(fmt::format("{}({}, {})", op.name, p.a, p.b));
      const auto [a, b] = untied(p.a, p.b, seed);
      // Times a curved function of both, so the second derivative is not zero everywhere.
      EXPECT_TRUE(
          GradgradPasses([&](const Inputs& x) { return op.fn(x[0], x[1]) * sin(x[0]) * cos(x[1]); },
                         {a, b}, seed));
      ++seed;
    }
  }
}

// The fused rules of item 9 stay differentiable after the shape check was added.
TEST(SecondOrderGradCheck, FusedRulesOfSigmoidTanhRelu) {
  const Tensor g = normal({2, 3}, 1801);
  const Tensor y = in_range({2, 3}, 1802, 0.1, 0.9);
  const Tensor x = away_from({2, 3}, 1803, {0.0}, -2, 2);
  EXPECT_TRUE(
      GradgradPasses([](const Inputs& v) { return sigmoid_backward(v[0], v[1]); }, {g, y}, 1804));
  EXPECT_TRUE(
      GradgradPasses([](const Inputs& v) { return tanh_backward(v[0], v[1]); }, {g, y}, 1806));
  EXPECT_TRUE(
      GradgradPasses([](const Inputs& v) { return relu_backward(v[0], v[1]); }, {g, x}, 1808));
  EXPECT_TRUE(
      GradgradPasses([](const Inputs& v) { return gelu_backward(v[0], v[1]); }, {g, x}, 1810));
}

TEST(OpsGradCheck, GeluBackwardBothInputs) {
  const Tensor g = normal({3, 4}, 1811);
  const Tensor x = normal({3, 4}, 1812) * 2.0;
  EXPECT_TRUE(GradcheckPasses([](const Inputs& v) { return gelu_backward(v[0], v[1]); }, {g, x}));
}

// The fused rule is the composed one it replaced, g * (Phi(x) + x phi(x)) written with erf and
// exp, to the rounding; and dy/dx of gelu through it is that closed form.
TEST(OpsClosedForm, GeluBackwardEqualsTheComposedRule) {
  const Tensor g = normal({5, 7}, 1813);
  const Tensor x = normal({5, 7}, 1814) * 3.0;
  const Tensor composed =
      g * ((erf(x * (0.5 * std::numbers::sqrt2)) + 1.0) * 0.5 +
           x * exp(square(x) * -0.5) * (0.5 * std::numbers::sqrt2 * std::numbers::inv_sqrtpi));
  const Tensor fused = gelu_backward(g, x);
  for (std::size_t i = 0; i < x.numel(); ++i) {
    EXPECT_NEAR(fused.values()[i], composed.values()[i],
                1e-15 * (1.0 + std::abs(composed.values()[i])));
    const double v = x.values()[i];
    const double slope = 0.5 * (1.0 + std::erf(v / std::numbers::sqrt2)) +
                         v * std::exp(-0.5 * v * v) / std::sqrt(2.0 * std::numbers::pi);
    EXPECT_NEAR(fused.values()[i], g.values()[i] * slope, 1e-14 * (1.0 + std::abs(slope)));
  }
}

// ---------------------------------------------------------------------------------------------
// OpsClosedForm

TEST(OpsClosedForm, UnqualifiedSinIsTapegradSin) {
  const Tensor z = tensor({0.0, std::numbers::pi / 6, std::numbers::pi / 2}).requires_grad_();
  Tape tape;
  const Tensor y = with_using_directive::call_sin(z);
  EXPECT_EQ(y.op(), "sin");
  EXPECT_EQ(values_of(y), (std::vector<double>{0.0, std::sin(std::numbers::pi / 6), 1.0}));
  const Tensor c = by_adl_alone::call_cos(z);
  EXPECT_EQ(c.op(), "cos");
  EXPECT_DOUBLE_EQ(c.values()[0], 1.0);
}

TEST(OpsClosedForm, TiesSplitTheGradientHalfAndHalf) {
  for (const NamedBinary& op : extremum_ops()) {
    SCOPED_TRACE(op.name);
    const Tensor a = tensor({1.0, 2.0, 3.0}).requires_grad_();
    const Tensor b = tensor({1.0, 5.0, -1.0}).requires_grad_();
    const auto g = gradients([&](Span x) { return op.fn(x[0], x[1]); }, {a, b});
    const bool is_min = std::string(op.name) == "minimum";
    EXPECT_EQ(values_of(g[0]), (std::vector<double>{0.5, is_min ? 1.0 : 0.0, is_min ? 0.0 : 1.0}));
    EXPECT_EQ(values_of(g[1]), (std::vector<double>{0.5, is_min ? 0.0 : 1.0, is_min ? 1.0 : 0.0}));
  }
  // A broadcast tie: the scalar side collects half of every tied element's gradient.
  const Tensor a = tensor({{1.0, 1.0, 4.0}}).requires_grad_();
  const Tensor b = scalar(1.0).requires_grad_();
  const auto g = gradients([](Span x) { return maximum(x[0], x[1]); }, {a, b});
  EXPECT_EQ(values_of(g[0]), (std::vector<double>{0.5, 0.5, 1.0}));
  EXPECT_EQ(values_of(g[1]), (std::vector<double>{1.0}));
}

TEST(OpsClosedForm, MinimumMaximumPropagateNaN) {
  for (const NamedBinary& op : extremum_ops()) {
    SCOPED_TRACE(op.name);
    const Tensor a = tensor({nan, 1.0, nan, inf}).requires_grad_();
    const Tensor b = tensor({1.0, nan, nan, inf}).requires_grad_();
    Tape tape;
    const Tensor y = op.fn(a, b);
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(std::isnan(y.values()[i])) << i;
    EXPECT_EQ(y.values()[3], inf);
    // PyTorch 1.13 passes the whole gradient to both sides where the result is NaN.
    const auto g = grad(sum(y), {a, b});
    EXPECT_EQ(values_of(g[0]), (std::vector<double>{1.0, 1.0, 1.0, 0.5}));
    EXPECT_EQ(values_of(g[1]), (std::vector<double>{1.0, 1.0, 1.0, 0.5}));
  }
}

TEST(OpsClosedForm, SoftplusLinearRegionIsExact) {
  const Tensor x = tensor({20.0, 20.5, 40.0, 1e6}).requires_grad_();
  const auto g = gradients([](Span v) { return softplus(v[0]); }, {x});
  Tape tape;
  const Tensor y = softplus(x);
  EXPECT_EQ(y.values()[0], std::log1p(std::exp(20.0)));  // beta x == threshold: not yet linear
  EXPECT_EQ(values_of(y).back(), 1e6);
  EXPECT_EQ(y.values()[1], 20.5);
  EXPECT_EQ(g[0].values()[1], 1.0);
  EXPECT_EQ(g[0].values()[3], 1.0);
  // With beta 2, the switch is at x = threshold / beta.
  EXPECT_EQ(softplus(tensor({10.5}), 2.0).values()[0], 10.5);
  EXPECT_DOUBLE_EQ(softplus(tensor({0.0}), 2.0).values()[0], std::log(2.0) / 2.0);
}

TEST(OpsClosedForm, KinksTakePyTorchsSide) {
  const Tensor zero = scalar(0.0).requires_grad_();
  auto slope = [&](const UnaryFn& f) {
    return gradients([&](Span v) { return f(v[0]); }, {zero})[0].item();
  };
  EXPECT_EQ(slope([](const Tensor& x) { return leaky_relu(x, 0.2); }), 0.2);
  EXPECT_EQ(slope([](const Tensor& x) { return elu(x, 1.5); }), 1.5);
  EXPECT_EQ(slope([](const Tensor& x) { return gelu(x); }), 0.5);
  EXPECT_EQ(slope([](const Tensor& x) { return gelu(x, "tanh"); }), 0.5);
  EXPECT_EQ(slope([](const Tensor& x) { return silu(x); }), 0.5);
  EXPECT_EQ(slope([](const Tensor& x) { return softplus(x); }), 0.5);
  EXPECT_DOUBLE_EQ(slope([](const Tensor& x) { return erf(x); }),
                   2.0 / std::sqrt(std::numbers::pi));
}

TEST(OpsClosedForm, SmallArgumentsKeepTheirDigits) {
  // log1p and expm1 exist for this: 1 + 1e-300 is 1 in doubles.
  EXPECT_EQ(log1p(tensor({1e-300})).values()[0], 1e-300);
  EXPECT_EQ(expm1(tensor({1e-300})).values()[0], 1e-300);
  EXPECT_EQ(log1p(tensor({-1.0})).values()[0], -inf);  // the edge of the domain is a value
  EXPECT_GT(std::abs(tan(tensor({std::numbers::pi / 2})).values()[0]), 1e15);
  // elu of a large negative x saturates at -alpha without NaN in the gradient.
  const Tensor x = tensor({-800.0, 800.0}).requires_grad_();
  const auto g = gradients([](Span v) { return elu(v[0], 2.0); }, {x});
  EXPECT_EQ(values_of(g[0]), (std::vector<double>{0.0, 1.0}));
}

// ---------------------------------------------------------------------------------------------
// TorchParity

// Values chosen to sit on every edge of the new ops: 0, tiny, large, the softplus threshold.
Tensor edges(std::vector<double> v, bool grad = true) {
  const Shape s{static_cast<std::int64_t>(v.size())};
  Tensor t = from_values(std::move(v), s);
  if (grad) t.requires_grad_();
  return t;
}

TEST(TorchParity, NewFunctionsValuesAndGradients) {
  TorchOracle oracle;
  const Tensor wide = edges({-800, -30, -5, -1, -1e-10, -0.0, 0, 1e-300, 1e-10, 0.5, 5, 30, 800});
  struct Case {
    const char* name;
    const char* expr;
    UnaryFn fn;
    Tensor edge;
  };
  const std::vector<Case> cases = {
      {"sin", "torch.sin(x0)", [](const Tensor& x) { return sin(x); },
       edges({0, 1e-300, -3, 100, 1e6})},
      {"cos", "torch.cos(x0)", [](const Tensor& x) { return cos(x); },
       edges({0, 1e-300, -3, 100, 1e6})},
      {"tan", "torch.tan(x0)", [](const Tensor& x) { return tan(x); },
       edges({0, 1e-300, 1.5, -1.57, std::numbers::pi / 2})},
      {"log1p", "torch.log1p(x0)", [](const Tensor& x) { return log1p(x); },
       edges({-1, -0.999999, -0.5, 0, 1e-300, 1e-10, 1, 1e300})},
      {"expm1", "torch.expm1(x0)", [](const Tensor& x) { return expm1(x); },
       edges({-800, -30, -1e-10, 0, 1e-300, 1e-10, 1, 30, 700, 710})},
      {"erf", "torch.erf(x0)", [](const Tensor& x) { return erf(x); },
       edges({-30, -6, -3, -1e-300, 0, 1e-300, 0.5, 3, 6, 30})},
      {"softplus", "F.softplus(x0)", [](const Tensor& x) { return softplus(x); },
       edges({-800, -30, -1, 0, 1, 19.99, 20, 20.01, 30, 800})},
      {"softplus beta 2 threshold 5", "F.softplus(x0, beta=2, threshold=5)",
       [](const Tensor& x) { return softplus(x, 2.0, 5.0); },
       edges({-400, -1, 0, 2.49, 2.5, 2.51, 3, 400})},
      {"softplus beta 0.5", "F.softplus(x0, beta=0.5)",
       [](const Tensor& x) { return softplus(x, 0.5); }, edges({-80, -1, 0, 39.9, 40, 40.1, 80})},
      {"gelu", "F.gelu(x0)", [](const Tensor& x) { return gelu(x); }, wide},
      {"gelu tanh", "F.gelu(x0, approximate='tanh')",
       [](const Tensor& x) { return gelu(x, GeluApproximate::tanh); }, wide},
      {"silu", "F.silu(x0)", [](const Tensor& x) { return silu(x); }, wide},
      {"leaky_relu", "F.leaky_relu(x0)", [](const Tensor& x) { return leaky_relu(x); }, wide},
      {"leaky_relu 0.2", "F.leaky_relu(x0, 0.2)",
       [](const Tensor& x) { return leaky_relu(x, 0.2); }, wide},
      {"elu", "F.elu(x0)", [](const Tensor& x) { return elu(x); }, wide},
      {"elu alpha 1.5", "F.elu(x0, 1.5)", [](const Tensor& x) { return elu(x, 1.5); }, wide},
  };
  std::uint64_t seed = 1900;
  for (const Case& c : cases) {
    const UnaryFn fn = c.fn;
    // Random inputs N(0, 4), inside the domain for log1p.
    Tensor random = normal({3, 4}, seed++, 2.0);
    if (std::string(c.name) == "log1p") random = in_range({3, 4}, seed++, -0.99, 5.0);
    oracle.add(c.name, c.expr, {random}, [fn](Span x) { return Outputs{fn(x[0])}; });
    oracle.add(fmt::format("{} at edges", c.name), c.expr, {c.edge},
               [fn](Span x) { return Outputs{fn(x[0])}; });
  }
  for (const NamedBinary& op : extremum_ops()) {
    const BinaryFn fn = op.fn;
    const std::string expr = fmt::format("torch.{}(x0, x1)", op.name);
    for (const ShapePair& p : broadcast_pairs()) {
      oracle.add(fmt::format("{}({}, {})", op.name, p.a, p.b), expr,
                 {normal(p.a, seed), normal(p.b, seed + 1)},
                 [fn](Span x) { return Outputs{fn(x[0], x[1])}; });
      seed += 2;
    }
    // Ties (also through broadcasting), NaN on either side, infinities.
    oracle.add(fmt::format("{} ties, NaN, inf", op.name), expr,
               {edges({1, 2, nan, 3, nan, inf, -inf, inf, 0.0}),
                edges({1, 3, 1, nan, nan, inf, -inf, -inf, -0.0})},
               [fn](Span x) { return Outputs{fn(x[0], x[1])}; });
    oracle.add(fmt::format("{} broadcast ties", op.name), expr,
               {from_values({1, 2, 1, 1, 0, 1}, {2, 3}).requires_grad_(), edges({1, 1, 2})},
               [fn](Span x) { return Outputs{fn(x[0], x[1])}; });
    oracle.add(fmt::format("{} with a constant", op.name), expr,
               {normal({3, 4}, seed++), edges({0.5, -0.5, 0, 1}, false)},
               [fn](Span x) { return Outputs{fn(x[0], x[1])}; });
  }
  // The functions composed, so that each rule receives a gradient that is not all ones.
  oracle.add("composed",
             "F.gelu(torch.sin(x0) * x1) + F.softplus(torch.maximum(x0, x1), 2.0) - "
             "F.elu(torch.log1p(x1 * x1)) * torch.erf(x0) + F.silu(torch.minimum(x0, x1)) * "
             "torch.expm1(torch.cos(x0)) + F.leaky_relu(torch.tan(x1), 0.1)",
             {normal({3, 4}, seed), normal({4}, seed + 1)}, [](Span x) {
               return Outputs{gelu(sin(x[0]) * x[1]) + softplus(maximum(x[0], x[1]), 2.0) -
                              elu(log1p(x[1] * x[1])) * erf(x[0]) +
                              silu(minimum(x[0], x[1])) * expm1(cos(x[0])) +
                              leaky_relu(tan(x[1]), 0.1)};
             });
  const auto r = oracle.run(1e-12);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_EQ(r.cases, oracle.size());
  RecordProperty("worst_error", fmt::format("{:.3g}", r.worst_error));
  fmt::print("TorchParity.NewFunctionsValuesAndGradients: {} cases, worst error {:.3g}\n", r.cases,
             r.worst_error);
}

// ---------------------------------------------------------------------------------------------
// Misuse

TEST(Misuse, Log1pBelowMinusOne) {
  EXPECT_TRUE(ThrowsWith<ValueError>(
      [] {
        log1p(tensor({0.5, -1.5}));
      },
      {"log1p", "-1.5", "flat index 1", "x >= -1", "[2]"}));
  EXPECT_TRUE(ThrowsWith<ValueError>([] { log1p(tensor({nan})); }, {"log1p", "nan"}));
}

TEST(Misuse, FusedRulesWithMismatchedShapes) {
  const Tensor g = zeros({2, 3});
  const Tensor other = zeros({3});
  EXPECT_TRUE(ThrowsWith<ShapeError>([&] { sigmoid_backward(g, other); },
                                     {"sigmoid_backward", "g and y", "([2, 3] vs [3])"}));
  EXPECT_TRUE(ThrowsWith<ShapeError>([&] { tanh_backward(g, other); },
                                     {"tanh_backward", "g and y", "([2, 3] vs [3])"}));
  EXPECT_TRUE(ThrowsWith<ShapeError>(
      [&] {
        relu_backward(g, zeros({3, 2}));
      },
      {"relu_backward", "g and x", "([2, 3] vs [3, 2])"}));
  EXPECT_TRUE(ThrowsWith<ShapeError>([&] { gelu_backward(g, other); },
                                     {"gelu_backward", "g and x", "([2, 3] vs [3])"}));
  // Same element count, other shape: still refused (it would silently pair the wrong elements).
  EXPECT_TRUE(ThrowsWith<ShapeError>([&] { sigmoid_backward(g, zeros({6})); },
                                     {"sigmoid_backward", "([2, 3] vs [6])"}));
}

TEST(Misuse, MinimumMaximumShapesThatDoNotBroadcast) {
  EXPECT_TRUE(ThrowsWith<ShapeError>(
      [] {
        minimum(zeros({2, 3}), zeros({4}));
      },
      {"minimum", "[2, 3]", "[4]"}));
  EXPECT_TRUE(ThrowsWith<ShapeError>(
      [] {
        maximum(zeros({3}), zeros({2, 2}));
      },
      {"maximum", "[3]", "[2, 2]"}));
}

TEST(Misuse, BadFunctionOptions) {
  EXPECT_TRUE(ThrowsWith<ValueError>([] { gelu(zeros({2}), "exact"); },
                                     {"gelu", "\"none\" or \"tanh\"", "\"exact\"", "[2]"}));
  EXPECT_TRUE(ThrowsWith<ValueError>([] { softplus(zeros({2}), 0.0); },
                                     {"softplus", "beta", "non-zero", "[2]"}));
  EXPECT_TRUE(ThrowsWith<ValueError>([] { softplus(zeros({2}), inf); }, {"softplus", "beta"}));
  EXPECT_TRUE(
      ThrowsWith<ValueError>([] { softplus(zeros({2}), 1.0, nan); }, {"softplus", "threshold"}));
}

}  // namespace
