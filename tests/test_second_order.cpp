// SecondOrderGradCheck: gradgradcheck over every differentiable op and every loss (each rule,
// recorded under create_graph, differentiated again and compared with finite differences of the
// first derivative). SecondOrder: jacobian, hessian and hvp against closed forms, among them the
// seed notes' Hessian of softmax + cross-entropy, diag(p) - p p^T.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tapegrad/core/autograd.hpp"
#include "tapegrad/core/broadcast.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/functional.hpp"
#include "tapegrad/core/gradcheck.hpp"
#include "tapegrad/core/random.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/nn/losses.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/constants.hpp"
#include "tapegrad/ops/matmul.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape_ops.hpp"
#include "tapegrad/ops/softmax.hpp"
#include "tapegrad/ops/unary.hpp"

#include "test_inputs.hpp"

namespace {

using namespace tapegrad;  // NOLINT: the ops read best unqualified
using Inputs = std::vector<Tensor>;
using namespace tapegrad::test_inputs;  // NOLINT

// ---------------------------------------------------------------------------------------------
// Helpers

// gradgradcheck of f, and of square(f): a linear op's own second derivative is zero, so only
// with something curved after it does its rule have to carry a gradient that depends on the
// inputs (a linear op whose rule ran on raw doubles would pass the first and fail the second).
::testing::AssertionResult GradgradPasses(const Function& f, const Inputs& inputs,
                                          std::uint64_t seed = 0) {
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

// A probability distribution along the last axis (soft targets).
Tensor distribution(const Shape& shape, std::uint64_t seed) {
  Tensor t = in_range(shape, seed, 0.1, 1.0).detach();
  const auto c = static_cast<std::size_t>(shape[shape.rank() - 1]);
  auto v = t.mutable_values();
  for (std::size_t row = 0; row < v.size(); row += c) {
    double total = 0.0;
    for (std::size_t j = 0; j < c; ++j) total += v[row + j];
    for (std::size_t j = 0; j < c; ++j) v[row + j] /= total;
  }
  return t;
}

using Unary = std::function<Tensor(const Tensor&)>;

void check_unary(const Unary& op, const std::function<Tensor(const Shape&, std::uint64_t)>& make) {
  std::uint64_t seed = 11;
  for (const Shape& shape : {Shape{}, Shape{4}, Shape{2, 3}}) {
    SCOPED_TRACE(fmt::format("shape {}", shape));
    EXPECT_TRUE(GradgradPasses([&](const Inputs& x) { return op(x[0]); }, {make(shape, seed)}));
    ++seed;
  }
}

Tensor normal_of(const Shape& s, std::uint64_t seed) {
  return normal(s, seed);
}

// Max relative error, |a - b| / max(|b|, floor), over two equal-length value lists.
double max_relative_error(std::span<const double> a, std::span<const double> b,
                          double floor = 1e-300) {
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::abs(a[i] - b[i]) / std::max(std::abs(b[i]), floor));
  }
  return worst;
}

std::vector<double> softmax_values(std::span<const double> z) {
  double m = z[0];
  for (double v : z) m = std::max(m, v);
  std::vector<double> p(z.size());
  double total = 0.0;
  for (std::size_t i = 0; i < z.size(); ++i) total += (p[i] = std::exp(z[i] - m));
  for (double& v : p) v /= total;
  return p;
}

// diag(p) - p p^T, row-major.
std::vector<double> diag_p_minus_ppt(const std::vector<double>& p) {
  const std::size_t c = p.size();
  std::vector<double> h(c * c);
  for (std::size_t i = 0; i < c; ++i) {
    for (std::size_t j = 0; j < c; ++j) h[i * c + j] = (i == j ? p[i] : 0.0) - p[i] * p[j];
  }
  return h;
}

// ---------------------------------------------------------------------------------------------
// Unary ops

TEST(SecondOrderGradCheck, Neg) {
  check_unary([](const Tensor& x) { return neg(x); }, normal_of);
  check_unary([](const Tensor& x) { return -x; }, normal_of);
}
TEST(SecondOrderGradCheck, Exp) {
  check_unary([](const Tensor& x) { return exp(x); }, normal_of);
}
TEST(SecondOrderGradCheck, Log) {
  check_unary([](const Tensor& x) { return log(x); },
              [](const Shape& s, std::uint64_t seed) { return in_range(s, seed, 0.5, 3.0); });
}
TEST(SecondOrderGradCheck, Sqrt) {
  check_unary([](const Tensor& x) { return sqrt(x); },
              [](const Shape& s, std::uint64_t seed) { return in_range(s, seed, 0.5, 3.0); });
}
TEST(SecondOrderGradCheck, AbsAwayFromZero) {
  check_unary([](const Tensor& x) { return abs(x); },
              [](const Shape& s, std::uint64_t seed) { return away_from(s, seed, {0.0}, -2, 2); });
}
TEST(SecondOrderGradCheck, Square) {
  check_unary([](const Tensor& x) { return square(x); }, normal_of);
}
TEST(SecondOrderGradCheck, PowFractionalAndNegativeExponentsOnPositiveInputs) {
  for (double p : {0.5, 1.5, 2.5, -1.0, -0.5}) {
    SCOPED_TRACE(fmt::format("p = {}", p));
    check_unary([p](const Tensor& x) { return pow(x, p); },
                [](const Shape& s, std::uint64_t seed) { return in_range(s, seed, 0.5, 2.0); });
  }
}
TEST(SecondOrderGradCheck, PowIntegerExponentsOnAnyInputs) {
  for (double p : {2.0, 3.0, 4.0}) {
    SCOPED_TRACE(fmt::format("p = {}", p));
    check_unary([p](const Tensor& x) { return pow(x, p); }, normal_of);
  }
}
TEST(SecondOrderGradCheck, Sigmoid) {
  check_unary([](const Tensor& x) { return sigmoid(x); },
              [](const Shape& s, std::uint64_t seed) { return normal(s, seed, 2.0); });
}
TEST(SecondOrderGradCheck, Tanh) {
  check_unary([](const Tensor& x) { return tanh(x); }, normal_of);
}
TEST(SecondOrderGradCheck, ReluAwayFromKink) {
  check_unary([](const Tensor& x) { return relu(x); },
              [](const Shape& s, std::uint64_t seed) { return away_from(s, seed, {0.0}, -2, 2); });
}
TEST(SecondOrderGradCheck, ClampAwayFromBounds) {
  check_unary([](const Tensor& x) { return clamp(x, -0.5, 1.0); },
              [](const Shape& s, std::uint64_t seed) {
                return away_from(s, seed, {-0.5, 1.0}, -2, 2);
              });
}

// ---------------------------------------------------------------------------------------------
// Binary ops, with broadcasting

struct NamedBinary {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> fn;
};

TEST(SecondOrderGradCheck, AddSubMulDivAndTheirOperatorsWithBroadcasting) {
  const std::vector<NamedBinary> ops = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }},
      {"a + b", [](const Tensor& a, const Tensor& b) { return a + b; }},
      {"a - b", [](const Tensor& a, const Tensor& b) { return a - b; }},
      {"a * b", [](const Tensor& a, const Tensor& b) { return a * b; }},
      {"a / b", [](const Tensor& a, const Tensor& b) { return a / b; }},
  };
  const std::vector<std::pair<Shape, Shape>> shapes = {{Shape{3}, Shape{3}},
                                                       {Shape{2, 3}, Shape{3}},
                                                       {Shape{2, 1}, Shape{1, 3}},
                                                       {Shape{}, Shape{2, 2}}};
  std::uint64_t seed = 100;
  for (const NamedBinary& op : ops) {
    for (const auto& [sa, sb] : shapes) {
      SCOPED_TRACE(fmt::format("{} with shapes {} and {}", op.name, sa, sb));
      const Tensor a = normal(sa, seed++);
      const Tensor b = away_from(sb, seed++, {0.0}, -2.0, 2.0, 0.5);  // b may be a divisor
      EXPECT_TRUE(GradgradPasses([&](const Inputs& x) { return op.fn(x[0], x[1]); }, {a, b}));
    }
  }
}

TEST(SecondOrderGradCheck, OperatorsWithDoubles) {
  const std::vector<std::pair<const char*, Unary>> ops = {
      {"x + 2", [](const Tensor& x) { return x + 2.0; }},
      {"x - 2", [](const Tensor& x) { return x - 2.0; }},
      {"x * 3", [](const Tensor& x) { return x * 3.0; }},
      {"x / 3", [](const Tensor& x) { return x / 3.0; }},
      {"2 + x", [](const Tensor& x) { return 2.0 + x; }},
      {"2 - x", [](const Tensor& x) { return 2.0 - x; }},
      {"3 * x", [](const Tensor& x) { return 3.0 * x; }},
      {"3 / x", [](const Tensor& x) { return 3.0 / x; }},
  };
  std::uint64_t seed = 200;
  for (const auto& [name, op] : ops) {
    SCOPED_TRACE(name);
    const Tensor x = away_from(Shape{2, 2}, seed++, {0.0}, -2.0, 2.0, 0.5);
    EXPECT_TRUE(GradgradPasses([&](const Inputs& in) { return op(in[0]); }, {x}));
  }
}

// One tensor on both sides: the engine's accumulate node is differentiated twice too.
TEST(SecondOrderGradCheck, SameTensorOnBothSidesAndAccumulate) {
  const Tensor x = away_from(Shape{3}, 300, {0.0}, -2.0, 2.0, 0.5);
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return in[0] * in[0]; }, {x}));
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return in[0] / in[0] + exp(in[0]); }, {x}));
  EXPECT_TRUE(
      GradgradPasses([](const Inputs& in) { return detail::accumulate(square(in[0]), exp(in[1])); },
                     {x, normal(Shape{3}, 301)}));
}

// ---------------------------------------------------------------------------------------------
// Reductions, matmul, shape ops, broadcasting ops

TEST(SecondOrderGradCheck, SumAllAndEveryAxis) {
  const Tensor x = normal(Shape{2, 3}, 400);
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return sum(in[0]); }, {x}));
  for (std::int64_t axis : {0, 1, -1}) {
    for (bool keepdim : {false, true}) {
      SCOPED_TRACE(fmt::format("axis {} keepdim {}", axis, keepdim));
      EXPECT_TRUE(GradgradPasses(
          [axis, keepdim](const Inputs& in) { return sum(in[0], axis, keepdim); }, {x}));
    }
  }
}

TEST(SecondOrderGradCheck, MeanAllAndEveryAxis) {
  const Tensor x = normal(Shape{2, 3}, 401);
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return mean(in[0]); }, {x}));
  for (std::int64_t axis : {0, 1, -1}) {
    for (bool keepdim : {false, true}) {
      SCOPED_TRACE(fmt::format("axis {} keepdim {}", axis, keepdim));
      EXPECT_TRUE(GradgradPasses(
          [axis, keepdim](const Inputs& in) { return mean(in[0], axis, keepdim); }, {x}));
    }
  }
}

TEST(SecondOrderGradCheck, MaxAllAndEveryAxisWithoutTies) {
  const Tensor x = distinct(Shape{3, 4}, 402);
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return max(in[0]); }, {x}));
  for (std::int64_t axis : {0, 1}) {
    for (bool keepdim : {false, true}) {
      SCOPED_TRACE(fmt::format("axis {} keepdim {}", axis, keepdim));
      EXPECT_TRUE(GradgradPasses(
          [axis, keepdim](const Inputs& in) { return max(in[0], axis, keepdim); }, {x}));
    }
  }
}

TEST(SecondOrderGradCheck, MatmulEveryTransposeFlag) {
  std::uint64_t seed = 500;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      SCOPED_TRACE(fmt::format("transpose_a {} transpose_b {}", ta, tb));
      const Tensor a = normal(ta ? Shape{3, 2} : Shape{2, 3}, seed++);
      const Tensor b = normal(tb ? Shape{4, 3} : Shape{3, 4}, seed++);
      EXPECT_TRUE(GradgradPasses(
          [ta, tb](const Inputs& in) {
            return matmul(in[0], in[1], {.transpose_a = ta, .transpose_b = tb});
          },
          {a, b}));
    }
  }
  // The product of a matrix with itself: both rules meet at one input.
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return matmul(in[0], in[0]); },
                             {normal(Shape{3, 3}, seed++)}));
}

TEST(SecondOrderGradCheck, ReshapeAndTranspose) {
  const Tensor x = normal(Shape{2, 3, 2}, 600);
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return reshape(in[0], {3, -1}); }, {x}));
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return reshape(in[0], {12}); }, {x}));
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return transpose(in[0], 0, 2); }, {x}));
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return transpose(in[0], -1, 1); }, {x}));
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return transpose(in[0]); },
                             {normal(Shape{2, 3}, 601)}));
}

TEST(SecondOrderGradCheck, SumToAndBroadcastTo) {
  const Tensor x = normal(Shape{2, 3}, 700);
  for (const Shape& target : {Shape{3}, Shape{2, 1}, Shape{1, 3}, Shape{}}) {
    SCOPED_TRACE(fmt::format("sum_to {}", target));
    EXPECT_TRUE(GradgradPasses([target](const Inputs& in) { return sum_to(in[0], target); }, {x}));
  }
  const Tensor row = normal(Shape{3}, 701);
  for (const Shape& target : {Shape{2, 3}, Shape{4, 2, 3}}) {
    SCOPED_TRACE(fmt::format("broadcast_to {}", target));
    EXPECT_TRUE(
        GradgradPasses([target](const Inputs& in) { return broadcast_to(in[0], target); }, {row}));
  }
  EXPECT_TRUE(GradgradPasses(
      [](const Inputs& in) {
        return broadcast_to(in[0], Shape{2, 3});
      },
      {normal(Shape{2, 1}, 702)}));
}

TEST(SecondOrderGradCheck, SoftmaxLogSoftmaxLogsumexpEveryAxis) {
  const Tensor x = normal(Shape{2, 3}, 800);
  for (std::int64_t axis : {0, 1, -1}) {
    SCOPED_TRACE(fmt::format("axis {}", axis));
    EXPECT_TRUE(GradgradPasses([axis](const Inputs& in) { return softmax(in[0], axis); }, {x}));
    EXPECT_TRUE(GradgradPasses([axis](const Inputs& in) { return log_softmax(in[0], axis); }, {x}));
    for (bool keepdim : {false, true}) {
      EXPECT_TRUE(GradgradPasses(
          [axis, keepdim](const Inputs& in) { return logsumexp(in[0], axis, keepdim); }, {x}));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Losses: the fused ones (ops with their own rules) and the composed ones

TEST(SecondOrderGradCheck, BceWithLogitsEveryReductionAndTargetGradient) {
  const Tensor z = normal(Shape{2, 3}, 900, 2.0);
  const Tensor t = in_range(Shape{2, 3}, 901, 0.0, 1.0);  // requires grad: d/dt is checked too
  for (nn::Reduction r : {nn::Reduction::mean, nn::Reduction::sum, nn::Reduction::none}) {
    SCOPED_TRACE(fmt::format("reduction {}", static_cast<int>(r)));
    EXPECT_TRUE(GradgradPasses(
        [r](const Inputs& in) { return nn::bce_with_logits(in[0], in[1], r); }, {z, t}));
    EXPECT_TRUE(GradgradPasses(
        [r](const Inputs& in) { return nn::bce_with_logits(in[0], in[1], r); }, {z, t.detach()}));
  }
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return nn::bce_with_logits(in[0], in[1]); },
                             {normal(Shape{}, 902), in_range(Shape{}, 903, 0.0, 1.0)}));
}

TEST(SecondOrderGradCheck, CrossEntropyWithLogitsSoftOneHotAndIndexTargets) {
  const Tensor z = normal(Shape{2, 4}, 1000, 2.0);
  const Tensor soft = distribution(Shape{2, 4}, 1001);
  const Tensor hot = from_values({0, 0, 1, 0, 1, 0, 0, 0}, Shape{2, 4});
  const Tensor index = tensor({2.0, 0.0});
  for (nn::Reduction r : {nn::Reduction::mean, nn::Reduction::sum, nn::Reduction::none}) {
    SCOPED_TRACE(fmt::format("reduction {}", static_cast<int>(r)));
    EXPECT_TRUE(GradgradPasses(
        [r](const Inputs& in) { return nn::cross_entropy_with_logits(in[0], in[1], r); },
        {z, soft.detach()}));
    EXPECT_TRUE(GradgradPasses(
        [&hot, r](const Inputs& in) { return nn::cross_entropy_with_logits(in[0], hot, r); }, {z}));
    EXPECT_TRUE(GradgradPasses(
        [&index, r](const Inputs& in) { return nn::cross_entropy_with_logits(in[0], index, r); },
        {z}));
  }
  // One sample [C] with a class index [].
  EXPECT_TRUE(GradgradPasses(
      [](const Inputs& in) { return nn::cross_entropy_with_logits(in[0], scalar(1.0)); },
      {normal(Shape{3}, 1002)}));
}

// The target as a variable. A finite difference in t leaves the probability simplex, so this
// checks that the loss's value and both its rules agree for any t (value sum(t) lse(z) - t . z,
// dz = g (sum(t) softmax(z) - t)); square(f) makes d(grad t)/dt depend on the value.
TEST(SecondOrderGradCheck, CrossEntropyWithLogitsSoftTargetAsVariable) {
  const Tensor z = normal(Shape{2, 4}, 1010, 2.0);
  const Tensor soft = distribution(Shape{2, 4}, 1011).requires_grad_();
  for (nn::Reduction r : {nn::Reduction::mean, nn::Reduction::sum, nn::Reduction::none}) {
    SCOPED_TRACE(fmt::format("reduction {}", static_cast<int>(r)));
    EXPECT_TRUE(GradgradPasses(
        [r](const Inputs& in) { return nn::cross_entropy_with_logits(in[0], in[1], r); },
        {z, soft}));
  }
}

TEST(SecondOrderGradCheck, ComposedLosses) {
  const Tensor pred = in_range(Shape{2, 3}, 1100, 0.1, 0.9);
  const Tensor target = in_range(Shape{2, 3}, 1101, 0.0, 1.0);
  EXPECT_TRUE(
      GradgradPasses([](const Inputs& in) { return nn::mse(in[0], in[1]); }, {pred, target}));
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return nn::half_squared_error(in[0], in[1]); },
                             {pred, target}));
  EXPECT_TRUE(GradgradPasses(
      [](const Inputs& in) { return nn::binary_cross_entropy(in[0], in[1]); }, {pred, target}));
  Tensor soft = distribution(Shape{2, 3}, 1102);
  soft.requires_grad_();
  EXPECT_TRUE(
      GradgradPasses([](const Inputs& in) { return nn::cross_entropy(softmax(in[0]), in[1]); },
                     {normal(Shape{2, 3}, 1103), soft}));
}

// A custom op whose rule computes on raw doubles: first derivatives right, so gradcheck passes;
// its gradient is a constant, so the second derivative is lost, and gradgradcheck must say so.
TEST(SecondOrderGradCheck, GradgradcheckCatchesARuleOnRawDoubles) {
  const auto raw_square = [](const Tensor& x) {
    std::vector<double> v(x.values().begin(), x.values().end());
    for (double& e : v) e *= e;
    return record("raw_square", x.shape(), std::move(v), {x},
                  [](const Tensor& g, const Tensor&, std::span<const Tensor> in) {
                    std::vector<double> d(g.values().begin(), g.values().end());
                    for (std::size_t i = 0; i < d.size(); ++i) d[i] *= 2.0 * in[0].values()[i];
                    return std::vector<Tensor>{from_values(std::move(d), g.shape())};
                  });
  };
  const Function f = [&](const Inputs& in) { return raw_square(in[0]); };
  const Tensor x = normal(Shape{3}, 1200);
  EXPECT_TRUE(gradcheck(f, {x}).passed);
  const GradcheckResult r = gradgradcheck(f, {x});
  EXPECT_FALSE(r.passed) << r.report;
  EXPECT_NE(r.report.find("gradgradcheck FAILED"), std::string::npos) << r.report;
  // The true second derivative of u . x^2 is 2 u on the diagonal; the tape saw 0.
  EXPECT_EQ(r.analytic, 0.0);
  EXPECT_GT(std::abs(r.numeric), 1e-3);
}

TEST(SecondOrderGradCheck, GradgradcheckLeavesInputsAloneAndNeedsAGradInput) {
  const Tensor x = normal(Shape{2}, 1300);
  const std::vector<double> before(x.values().begin(), x.values().end());
  EXPECT_TRUE(gradgradcheck([](const Inputs& in) { return exp(in[0]); }, {x}).passed);
  EXPECT_EQ(std::vector<double>(x.values().begin(), x.values().end()), before);
  EXPECT_THROW(gradgradcheck([](const Inputs& in) { return exp(in[0]); }, {x.detach()}),
               ValueError);
}

// ---------------------------------------------------------------------------------------------
// jacobian, hessian, hvp against closed forms

// The seed notes: the Hessian of -sum t ln softmax(z) with respect to z is diag(p) - p p^T,
// whatever the target (one-hot or soft). Composed and fused, over 120 random draws.
TEST(SecondOrder, SoftmaxCrossEntropyHessianClosedForm) {
  Generator gen(2024);
  double worst = 0.0;
  for (int draw = 0; draw < 120; ++draw) {
    const auto c = static_cast<std::int64_t>(2 + gen.below(5));
    std::vector<double> zv(static_cast<std::size_t>(c)), tv(static_cast<std::size_t>(c), 0.0);
    for (double& v : zv) v = 2.0 * gen.normal();
    if (draw % 2 == 0) {
      tv[gen.below(static_cast<std::uint64_t>(c))] = 1.0;
    } else {
      double total = 0.0;
      for (double& v : tv) total += (v = 0.1 + gen.uniform());
      for (double& v : tv) v /= total;
    }
    const Tensor z = from_values(zv, Shape{c});
    const Tensor t = from_values(tv, Shape{c});
    const std::vector<double> expected = diag_p_minus_ppt(softmax_values(zv));

    const Tensor composed = hessian([&t](const Tensor& x) { return -sum(t * log(softmax(x))); }, z);
    const Tensor fused =
        hessian([&t](const Tensor& x) { return nn::cross_entropy_with_logits(x, t); }, z);
    ASSERT_EQ(composed.shape(), (Shape{c, c}));
    ASSERT_EQ(fused.shape(), (Shape{c, c}));
    // Relative to each entry, |a - b| <= 1e-10 |b|: no entry is 0, since every p_i > 0.
    const double e = std::max(max_relative_error(composed.values(), expected),
                              max_relative_error(fused.values(), expected));
    worst = std::max(worst, e);
    ASSERT_LE(e, 1e-10) << fmt::format("draw {}: z = [{}], t = [{}]\nautodiff {}\nclosed [{}]",
                                       draw, fmt::join(zv, ", "), fmt::join(tv, ", "), composed,
                                       fmt::join(expected, ", "));
  }
  RecordProperty("worst_relative_error", fmt::format("{:.3g}", worst));
}

TEST(SecondOrder, SigmoidHessianIsDiagonalSecondDerivative) {
  // sigma''(z) = sigma (1 - sigma) (1 - 2 sigma), the seed notes' second-order fact.
  const Tensor z = tensor({-2.0, -0.3, 0.0, 1.7});
  const Tensor h = hessian([](const Tensor& x) { return sum(sigmoid(x)); }, z);
  ASSERT_EQ(h.shape(), (Shape{4, 4}));
  for (std::int64_t i = 0; i < 4; ++i) {
    for (std::int64_t j = 0; j < 4; ++j) {
      const double s = 1.0 / (1.0 + std::exp(-z.at({i})));
      const double want = i == j ? s * (1 - s) * (1 - 2 * s) : 0.0;
      EXPECT_NEAR(h.at({i, j}), want, 1e-15) << i << ", " << j;
    }
  }
}

TEST(SecondOrder, JacobianOfSoftmaxIsDiagPMinusPPT) {
  Generator gen(77);
  for (int draw = 0; draw < 100; ++draw) {
    const auto c = static_cast<std::int64_t>(2 + gen.below(5));
    std::vector<double> zv(static_cast<std::size_t>(c));
    for (double& v : zv) v = 2.0 * gen.normal();
    const Tensor j =
        jacobian([](const Tensor& x) { return softmax(x); }, from_values(zv, Shape{c}));
    ASSERT_EQ(j.shape(), (Shape{c, c}));
    const std::vector<double> expected = diag_p_minus_ppt(softmax_values(zv));
    for (std::size_t k = 0; k < expected.size(); ++k) {
      ASSERT_NEAR(j.values()[k], expected[k], 1e-14) << "draw " << draw << " entry " << k;
    }
  }
}

TEST(SecondOrder, JacobianLayoutIsOutputShapeThenInputShape) {
  // y = A x for x [2, 3]: dy[i, j] / dx[k, l] = A[i, k] [j == l].
  const Tensor a = tensor({{1, 2}, {3, 4}, {5, 6}, {7, 8}});
  const Tensor x = normal(Shape{2, 3}, 1400);
  const Tensor jac = jacobian([&a](const Tensor& in) { return matmul(a, in); }, x);
  ASSERT_EQ(jac.shape(), (Shape{4, 3, 2, 3}));
  for (std::int64_t i = 0; i < 4; ++i) {
    for (std::int64_t j = 0; j < 3; ++j) {
      for (std::int64_t k = 0; k < 2; ++k) {
        for (std::int64_t l = 0; l < 3; ++l) {
          EXPECT_EQ(jac.at({i, j, k, l}), j == l ? a.at({i, k}) : 0.0);
        }
      }
    }
  }
  // Scalar output: the gradient, in x's shape. Scalar input: f(x)'s shape.
  EXPECT_EQ(jacobian([](const Tensor& in) { return sum(in); }, x).shape(), (Shape{2, 3}));
  EXPECT_EQ(jacobian(
                [](const Tensor& in) {
                  return in * tensor({1.0, 2.0});
                },
                scalar(3.0))
                .shape(),
            (Shape{2}));
  // f independent of x: zeros.
  const Tensor none = jacobian([](const Tensor&) { return tensor({1.0, 2.0}); }, scalar(3.0));
  EXPECT_EQ(none.shape(), (Shape{2}));
  EXPECT_EQ(none.values()[0], 0.0);
}

TEST(SecondOrder, HvpEqualsHessianTimesVector) {
  // A softmax classifier's loss as a function of its weights W [3, 2]: H is [3, 2, 3, 2].
  Generator gen(31);
  const Tensor inputs = randn(Shape{5, 3}, gen);
  const Tensor labels = tensor({0.0, 1.0, 1.0, 0.0, 1.0});
  const TensorFunction loss = [&](const Tensor& w) {
    return nn::cross_entropy_with_logits(tanh(matmul(inputs, w)), labels);
  };
  for (int draw = 0; draw < 20; ++draw) {
    const Tensor w = randn(Shape{3, 2}, gen);
    const Tensor v = randn(Shape{3, 2}, gen);
    const Tensor h = hessian(loss, w);
    ASSERT_EQ(h.shape(), (Shape{3, 2, 3, 2}));
    const Tensor hv = hvp(loss, w, v);
    ASSERT_EQ(hv.shape(), w.shape());
    for (std::size_t i = 0; i < 6; ++i) {
      double expected = 0.0;
      for (std::size_t j = 0; j < 6; ++j) expected += h.values()[i * 6 + j] * v.values()[j];
      EXPECT_NEAR(hv.values()[i], expected, 1e-13 * std::max(1.0, std::abs(expected)));
      // And the Hessian is symmetric, as it must be.
      for (std::size_t j = 0; j < 6; ++j) {
        EXPECT_NEAR(h.values()[i * 6 + j], h.values()[j * 6 + i], 1e-14);
      }
    }
  }
}

TEST(SecondOrder, FunctionalToolsWorkOnTensorsFromAnyTapeAndReturnConstants) {
  Tape outer;
  const Tensor w = tensor({0.3, -0.2}).requires_grad_();
  const Tensor x = exp(w);  // recorded on `outer`
  const Tensor h = hessian([](const Tensor& in) { return sum(pow(in, 3.0)); }, x);
  EXPECT_TRUE(h.is_leaf());
  EXPECT_FALSE(h.requires_grad());
  EXPECT_NEAR(h.at({0, 0}), 6.0 * x.at({0}), 1e-14);
  EXPECT_EQ(h.at({0, 1}), 0.0);
  EXPECT_EQ(outer.size(), 1u);  // nothing was added to the caller's tape
  const Tensor hv = hvp([](const Tensor& in) { return sum(pow(in, 3.0)); }, x, tensor({1.0, 1.0}));
  EXPECT_FALSE(hv.requires_grad());
  EXPECT_NEAR(hv.at({1}), 6.0 * x.at({1}), 1e-14);
}

TEST(SecondOrder, HessianOfALinearFunctionIsZeroAndMisuseIsAnError) {
  const Tensor x = tensor({1.0, 2.0});
  const Tensor h = hessian([](const Tensor& in) { return sum(in * 3.0); }, x);
  for (double v : h.values()) EXPECT_EQ(v, 0.0);
  EXPECT_THROW(hessian([](const Tensor& in) { return exp(in); }, x), ValueError);
  EXPECT_THROW(hvp([](const Tensor& in) { return sum(exp(in)); }, x, tensor({1.0})), ShapeError);
}

}  // namespace
