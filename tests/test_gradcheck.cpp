// OpsGradCheck: every differentiable op and loss compared with central finite differences
// through the public tapegrad::gradcheck, over scalars, vectors, matrices and rank-3 tensors,
// plus second-order checks (gradients recorded with create_graph) and checks that gradcheck
// itself catches a wrong derivative rule.
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

// The Jacobian entries gradcheck must compare: numel(f(inputs)) times the elements of every
// input that requires grad. Evaluated on a scratch tape (f may itself call tapegrad::grad).
std::size_t expected_entries(const Function& f, const Inputs& inputs) {
  Tape tape;
  const Tensor out = f(inputs);
  std::size_t in = 0;
  for (const Tensor& t : inputs) {
    if (t.requires_grad()) in += t.numel();
  }
  return in * out.numel();
}

::testing::AssertionResult GradcheckPasses(const Function& f, const Inputs& inputs,
                                           GradcheckOptions options = {}) {
  const GradcheckResult r = gradcheck(f, inputs, options);
  if (!r.passed) return ::testing::AssertionFailure() << r.report;
  const std::size_t want = expected_entries(f, inputs);
  if (r.elements_checked != want) {
    return ::testing::AssertionFailure()
           << "gradcheck compared " << r.elements_checked << " Jacobian entries, expected " << want;
  }
  return ::testing::AssertionSuccess();
}

// Scalars, vectors, matrices, rank 3.
std::vector<Shape> all_ranks() {
  return {Shape{}, Shape{5}, Shape{3, 4}, Shape{2, 3, 4}};
}

Tensor constant(Tensor t) {
  t.requires_grad_(false);
  return t;
}

using UnaryFn = std::function<Tensor(const Tensor&)>;
using MakeFn = std::function<Tensor(const Shape&, std::uint64_t)>;

void check_unary_all_ranks(const UnaryFn& op, const MakeFn& make, std::uint64_t seed) {
  for (const Shape& shape : all_ranks()) {
    SCOPED_TRACE(fmt::format("shape {}", shape));
    EXPECT_TRUE(GradcheckPasses([&](const Inputs& x) { return op(x[0]); }, {make(shape, seed++)}));
  }
}

using BinaryFn = std::function<Tensor(const Tensor&, const Tensor&)>;

struct NamedBinary {
  const char* name;
  BinaryFn fn;
};

std::vector<NamedBinary> binary_ops() {
  return {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
      {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }},
      {"operator+", [](const Tensor& a, const Tensor& b) { return a + b; }},
      {"operator-", [](const Tensor& a, const Tensor& b) { return a - b; }},
      {"operator*", [](const Tensor& a, const Tensor& b) { return a * b; }},
      {"operator/", [](const Tensor& a, const Tensor& b) { return a / b; }},
  };
}

// a normal, b kept away from 0 (it may be a divisor).
void check_binary_pair(const Shape& sa, const Shape& sb, std::uint64_t seed) {
  for (const NamedBinary& op : binary_ops()) {
    SCOPED_TRACE(fmt::format("{}({}, {})", op.name, sa, sb));
    const Tensor a = normal(sa, seed);
    const Tensor b = away_from(sb, seed + 1000, {0.0}, -2.0, 2.0, 0.5);
    EXPECT_TRUE(GradcheckPasses([&](const Inputs& x) { return op.fn(x[0], x[1]); }, {a, b}));
    ++seed;
  }
}

// A copy of x's values as a new tensor, recorded with an arbitrary rule: the custom op through
// which the tests below feed gradcheck deliberately wrong derivatives.
template <class RuleFn>
Tensor identity_with_rule(const Tensor& x, RuleFn rule) {
  std::vector<double> v(x.values().begin(), x.values().end());
  return record("test_identity", x.shape(), std::move(v), {x}, std::move(rule));
}

Tensor twice_g_identity(const Tensor& x) {  // rule says 2 g; the truth is g
  return identity_with_rule(
      x, [](const Tensor& g, const Tensor&, std::span<const Tensor>) -> std::vector<Tensor> {
        return {g * 2.0};
      });
}

// ---------------------------------------------------------------------------------------------
// Unary ops

TEST(OpsGradCheck, Neg) {
  check_unary_all_ranks([](const Tensor& x) { return neg(x); },
                        [](const Shape& s, std::uint64_t seed) { return normal(s, seed); }, 10);
  check_unary_all_ranks([](const Tensor& x) { return -x; },
                        [](const Shape& s, std::uint64_t seed) { return normal(s, seed); }, 20);
}

TEST(OpsGradCheck, Exp) {
  check_unary_all_ranks([](const Tensor& x) { return exp(x); },
                        [](const Shape& s, std::uint64_t seed) { return normal(s, seed); }, 30);
}

TEST(OpsGradCheck, Log) {
  check_unary_all_ranks(
      [](const Tensor& x) { return log(x); },
      [](const Shape& s, std::uint64_t seed) { return in_range(s, seed, 0.3, 3.0); }, 40);
}

TEST(OpsGradCheck, Sqrt) {
  check_unary_all_ranks(
      [](const Tensor& x) { return sqrt(x); },
      [](const Shape& s, std::uint64_t seed) { return in_range(s, seed, 0.3, 3.0); }, 50);
}

TEST(OpsGradCheck, AbsAwayFromZero) {
  check_unary_all_ranks(
      [](const Tensor& x) { return abs(x); },
      [](const Shape& s, std::uint64_t seed) { return away_from(s, seed, {0.0}, -2.0, 2.0); }, 60);
}

TEST(OpsGradCheck, Square) {
  check_unary_all_ranks([](const Tensor& x) { return square(x); },
                        [](const Shape& s, std::uint64_t seed) { return normal(s, seed); }, 70);
}

TEST(OpsGradCheck, PowOnPositiveInputs) {
  std::uint64_t seed = 80;
  for (double p : {2.0, 3.0, 1.0, 0.5, 1.5, 2.7, -1.0, -2.5, -0.5, 0.0}) {
    for (const Shape& shape : all_ranks()) {
      SCOPED_TRACE(fmt::format("pow(x, {}) on {}", p, shape));
      EXPECT_TRUE(GradcheckPasses([p](const Inputs& x) { return pow(x[0], p); },
                                  {in_range(shape, seed++, 0.5, 2.0)}));
    }
  }
}

TEST(OpsGradCheck, PowIntegerExponentOnNegativeInputs) {
  std::uint64_t seed = 200;
  for (double p : {2.0, 3.0, 4.0}) {
    for (const Shape& shape : all_ranks()) {
      SCOPED_TRACE(fmt::format("pow(x, {}) on {}", p, shape));
      EXPECT_TRUE(GradcheckPasses([p](const Inputs& x) { return pow(x[0], p); },
                                  {away_from(shape, seed++, {0.0}, -2.0, 2.0)}));
    }
  }
}

TEST(OpsGradCheck, Sigmoid) {
  check_unary_all_ranks(
      [](const Tensor& x) { return sigmoid(x); },
      [](const Shape& s, std::uint64_t seed) { return in_range(s, seed, -6.0, 6.0); }, 300);
}

TEST(OpsGradCheck, Tanh) {
  check_unary_all_ranks(
      [](const Tensor& x) { return tanh(x); },
      [](const Shape& s, std::uint64_t seed) { return in_range(s, seed, -3.0, 3.0); }, 310);
}

TEST(OpsGradCheck, ReluAwayFromKink) {
  check_unary_all_ranks(
      [](const Tensor& x) { return relu(x); },
      [](const Shape& s, std::uint64_t seed) { return away_from(s, seed, {0.0}, -2.0, 2.0); }, 320);
}

TEST(OpsGradCheck, ClampAwayFromBounds) {
  // Values inside and on both sides outside [-0.5, 0.7].
  check_unary_all_ranks([](const Tensor& x) { return clamp(x, -0.5, 0.7); },
                        [](const Shape& s, std::uint64_t seed) {
                          return away_from(s, seed, {-0.5, 0.7}, -1.5, 1.5);
                        },
                        330);
}

// ---------------------------------------------------------------------------------------------
// Binary ops

TEST(OpsGradCheck, BinarySameShape) {
  std::uint64_t seed = 400;
  for (const Shape& shape : all_ranks()) {
    check_binary_pair(shape, shape, seed);
    seed += 10;
  }
}

TEST(OpsGradCheck, BinaryScalarWithTensor) {
  check_binary_pair(Shape{}, Shape{3, 4}, 500);
  check_binary_pair(Shape{3, 4}, Shape{}, 520);
  check_binary_pair(Shape{}, Shape{2, 3, 4}, 540);
  check_binary_pair(Shape{5}, Shape{}, 560);
}

TEST(OpsGradCheck, BinaryBroadcasting) {
  const std::vector<std::pair<Shape, Shape>> pairs = {
      {Shape{3, 1}, Shape{1, 4}}, {Shape{2, 3}, Shape{3}},       {Shape{}, Shape{2, 3}},
      {Shape{3}, Shape{2, 3}},    {Shape{2, 1, 4}, Shape{3, 1}}, {Shape{4}, Shape{2, 3, 1}},
      {Shape{1}, Shape{3, 2}},    {Shape{2, 3, 4}, Shape{1, 4}},
  };
  std::uint64_t seed = 600;
  for (const auto& [sa, sb] : pairs) {
    check_binary_pair(sa, sb, seed);
    seed += 10;
  }
}

TEST(OpsGradCheck, SameTensorOnBothSides) {
  const Tensor x = away_from(Shape{3, 2}, 700, {0.0}, -2.0, 2.0, 0.3);
  EXPECT_TRUE(GradcheckPasses([](const Inputs& v) { return v[0] * v[0]; }, {x}));
  EXPECT_TRUE(GradcheckPasses([](const Inputs& v) { return v[0] + v[0] * 3.0; }, {x}));
  EXPECT_TRUE(GradcheckPasses([](const Inputs& v) { return (v[0] - 1.0) / (v[0] * v[0]); }, {x}));
}

TEST(OpsGradCheck, OperatorsWithDoubles) {
  const std::vector<std::pair<const char*, UnaryFn>> ops = {
      {"x + 2.5", [](const Tensor& x) { return x + 2.5; }},
      {"2.5 + x", [](const Tensor& x) { return 2.5 + x; }},
      {"x - 1.5", [](const Tensor& x) { return x - 1.5; }},
      {"1.5 - x", [](const Tensor& x) { return 1.5 - x; }},
      {"x * -3", [](const Tensor& x) { return x * -3.0; }},
      {"-3 * x", [](const Tensor& x) { return -3.0 * x; }},
      {"x / 4", [](const Tensor& x) { return x / 4.0; }},
      {"3 / x", [](const Tensor& x) { return 3.0 / x; }},
  };
  std::uint64_t seed = 800;
  for (const auto& [name, op] : ops) {
    for (const Shape& shape : all_ranks()) {
      SCOPED_TRACE(fmt::format("{} on {}", name, shape));
      EXPECT_TRUE(GradcheckPasses([&op](const Inputs& x) { return op(x[0]); },
                                  {away_from(shape, seed++, {0.0}, -2.0, 2.0, 0.4)}));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Reductions

using ReduceAll = std::function<Tensor(const Tensor&)>;
using ReduceAxis = std::function<Tensor(const Tensor&, std::int64_t, bool)>;

void check_reduction(const ReduceAll& all, const ReduceAxis& along, const MakeFn& make,
                     std::uint64_t seed) {
  for (const Shape& shape : {Shape{5}, Shape{3, 4}, Shape{2, 3, 4}}) {
    const Tensor x = make(shape, seed++);
    {
      SCOPED_TRACE(fmt::format("all of {}", shape));
      EXPECT_TRUE(GradcheckPasses([&](const Inputs& v) { return all(v[0]); }, {x}));
    }
    const auto rank = static_cast<std::int64_t>(shape.rank());
    for (std::int64_t axis = -rank; axis < rank; ++axis) {
      for (bool keepdim : {false, true}) {
        SCOPED_TRACE(fmt::format("{} axis {} keepdim {}", shape, axis, keepdim));
        EXPECT_TRUE(
            GradcheckPasses([&](const Inputs& v) { return along(v[0], axis, keepdim); }, {x}));
      }
    }
  }
}

TEST(OpsGradCheck, SumAllAndEveryAxis) {
  check_reduction([](const Tensor& x) { return sum(x); },
                  [](const Tensor& x, std::int64_t a, bool k) { return sum(x, a, k); },
                  [](const Shape& s, std::uint64_t seed) { return normal(s, seed); }, 900);
}

TEST(OpsGradCheck, MeanAllAndEveryAxis) {
  check_reduction([](const Tensor& x) { return mean(x); },
                  [](const Tensor& x, std::int64_t a, bool k) { return mean(x, a, k); },
                  [](const Shape& s, std::uint64_t seed) { return normal(s, seed); }, 910);
}

TEST(OpsGradCheck, MaxAllAndEveryAxisWithoutTies) {
  check_reduction([](const Tensor& x) { return max(x); },
                  [](const Tensor& x, std::int64_t a, bool k) { return max(x, a, k); },
                  [](const Shape& s, std::uint64_t seed) { return distinct(s, seed); }, 920);
}

TEST(OpsGradCheck, ReductionOfScalar) {
  const Tensor x = normal(Shape{}, 930);
  EXPECT_TRUE(GradcheckPasses([](const Inputs& v) { return sum(v[0]); }, {x}));
  EXPECT_TRUE(GradcheckPasses([](const Inputs& v) { return mean(v[0]); }, {x}));
  EXPECT_TRUE(GradcheckPasses([](const Inputs& v) { return max(v[0]); }, {x}));
}

// ---------------------------------------------------------------------------------------------
// Matmul

TEST(OpsGradCheck, MatmulAllTransposeFlags) {
  // op(a) [2, 3], op(b) [3, 4] -> [2, 4]; nothing square.
  std::uint64_t seed = 1000;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      SCOPED_TRACE(fmt::format("transpose_a {} transpose_b {}", ta, tb));
      const Tensor a = normal(ta ? Shape{3, 2} : Shape{2, 3}, seed++);
      const Tensor b = normal(tb ? Shape{4, 3} : Shape{3, 4}, seed++);
      const MatmulOptions options{.transpose_a = ta, .transpose_b = tb};
      EXPECT_TRUE(GradcheckPasses(
          [options](const Inputs& x) { return matmul(x[0], x[1], options); }, {a, b}));
    }
  }
}

TEST(OpsGradCheck, MatmulThinShapes) {
  const std::vector<std::pair<Shape, Shape>> pairs = {{Shape{1, 3}, Shape{3, 1}},
                                                      {Shape{4, 1}, Shape{1, 5}},
                                                      {Shape{1, 1}, Shape{1, 1}},
                                                      {Shape{5, 2}, Shape{2, 3}}};
  std::uint64_t seed = 1100;
  for (const auto& [sa, sb] : pairs) {
    SCOPED_TRACE(fmt::format("{} x {}", sa, sb));
    EXPECT_TRUE(GradcheckPasses([](const Inputs& x) { return matmul(x[0], x[1]); },
                                {normal(sa, seed), normal(sb, seed + 1)}));
    seed += 2;
  }
}

TEST(OpsGradCheck, MatmulOneSideConstant) {
  const Tensor a = normal(Shape{2, 3}, 1200);
  const Tensor b = constant(normal(Shape{3, 4}, 1201));
  EXPECT_TRUE(GradcheckPasses([](const Inputs& x) { return matmul(x[0], x[1]); }, {a, b}));
  EXPECT_TRUE(GradcheckPasses([](const Inputs& x) { return matmul(x[1], x[0]); },
                              {normal(Shape{3, 4}, 1202), constant(normal(Shape{2, 3}, 1203))}));
}

// ---------------------------------------------------------------------------------------------
// Shape ops

TEST(OpsGradCheck, Reshape) {
  using Dims = std::vector<std::int64_t>;
  const Tensor x = normal(Shape{2, 3, 4}, 1300);
  for (const Dims& to : {Dims{4, -1}, Dims{24}, Dims{-1}, Dims{2, 12}, Dims{3, 2, 4},
                         Dims{-1, 3, 2}, Dims{1, 24, 1}}) {
    SCOPED_TRACE(fmt::format("reshape to {}", fmt::join(to, ", ")));
    EXPECT_TRUE(GradcheckPasses([to](const Inputs& v) { return reshape(v[0], to); }, {x}));
  }
  EXPECT_TRUE(GradcheckPasses([](const Inputs& v) { return reshape(v[0], Dims{}); },
                              {normal(Shape{1}, 1301)}));
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& v) {
        return reshape(v[0], Dims{1, 1});
      },
      {normal(Shape{}, 1302)}));
  // Reshape then an op that cares about positions.
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& v) {
        return reshape(v[0], Dims{4, -1}) * tensor({1.0, 2.0, 3.0, 4.0, 5.0, 6.0});
      },
      {x}));
}

TEST(OpsGradCheck, Transpose) {
  EXPECT_TRUE(GradcheckPasses([](const Inputs& v) { return transpose(v[0]); },
                              {normal(Shape{3, 5}, 1400)}));
  EXPECT_TRUE(GradcheckPasses([](const Inputs& v) { return transpose(v[0]); },
                              {normal(Shape{1, 4}, 1401)}));
  const Tensor x = normal(Shape{2, 3, 4}, 1402);
  const std::vector<std::pair<std::int64_t, std::int64_t>> swaps = {{0, 2},  {0, 1},  {1, 2},
                                                                    {-1, 0}, {2, -2}, {1, 1}};
  for (const auto& [a, b] : swaps) {
    SCOPED_TRACE(fmt::format("transpose({}, {})", a, b));
    // Multiplying by a position-dependent weight makes a wrong permutation visible.
    EXPECT_TRUE(GradcheckPasses(
        [a, b](const Inputs& v) {
          const Tensor t = transpose(v[0], a, b);
          Generator gen(77);
          return t * constant(randn(t.shape(), gen));
        },
        {x}));
  }
}

TEST(OpsGradCheck, SumToEveryTargetShape) {
  const Tensor x = normal(Shape{2, 3, 4}, 1500);
  for (const Shape& to : {Shape{3, 1}, Shape{4}, Shape{}, Shape{2, 1, 4}, Shape{1, 3, 4},
                          Shape{2, 3, 4}, Shape{1, 1, 1}, Shape{3, 4}}) {
    SCOPED_TRACE(fmt::format("sum_to {}", to));
    EXPECT_TRUE(GradcheckPasses([to](const Inputs& v) { return sum_to(v[0], to); }, {x}));
  }
}

TEST(OpsGradCheck, BroadcastToEveryKind) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {Shape{3, 1}, Shape{2, 3, 4}}, {Shape{}, Shape{2, 3}},     {Shape{4}, Shape{3, 4}},
      {Shape{1, 4}, Shape{3, 4}},    {Shape{3, 4}, Shape{3, 4}}, {Shape{2, 1, 1}, Shape{2, 3, 2}}};
  std::uint64_t seed = 1600;
  for (const auto& [from, to] : cases) {
    SCOPED_TRACE(fmt::format("broadcast_to {} -> {}", from, to));
    EXPECT_TRUE(GradcheckPasses([to](const Inputs& v) { return broadcast_to(v[0], to); },
                                {normal(from, seed++)}));
  }
}

// ---------------------------------------------------------------------------------------------
// Softmax family

void check_every_axis(const std::function<Tensor(const Tensor&, std::int64_t)>& op,
                      std::uint64_t seed) {
  for (const Shape& shape : {Shape{5}, Shape{3, 4}, Shape{2, 3, 4}}) {
    const Tensor x = normal(shape, seed++, 2.0);
    const auto rank = static_cast<std::int64_t>(shape.rank());
    for (std::int64_t axis = -rank; axis < rank; ++axis) {
      SCOPED_TRACE(fmt::format("{} axis {}", shape, axis));
      EXPECT_TRUE(GradcheckPasses([&](const Inputs& v) { return op(v[0], axis); }, {x}));
    }
  }
}

TEST(OpsGradCheck, SoftmaxEveryAxis) {
  check_every_axis([](const Tensor& x, std::int64_t a) { return softmax(x, a); }, 1700);
  EXPECT_TRUE(
      GradcheckPasses([](const Inputs& v) { return softmax(v[0]); }, {normal(Shape{3, 4}, 1710)}));
}

TEST(OpsGradCheck, LogSoftmaxEveryAxis) {
  check_every_axis([](const Tensor& x, std::int64_t a) { return log_softmax(x, a); }, 1800);
  EXPECT_TRUE(GradcheckPasses([](const Inputs& v) { return log_softmax(v[0]); },
                              {normal(Shape{3, 4}, 1810)}));
}

TEST(OpsGradCheck, LogsumexpEveryAxisAndKeepdim) {
  check_every_axis([](const Tensor& x, std::int64_t a) { return logsumexp(x, a, false); }, 1900);
  check_every_axis([](const Tensor& x, std::int64_t a) { return logsumexp(x, a, true); }, 1950);
}

TEST(OpsGradCheck, SoftmaxWithLargeLogits) {
  // Stability: logits near 700 would overflow a naive exp; the gradient must still be right.
  const Tensor x = in_range(Shape{2, 3}, 1990, 695.0, 700.0);
  EXPECT_TRUE(GradcheckPasses([](const Inputs& v) { return softmax(v[0], 1); }, {x}));
  EXPECT_TRUE(GradcheckPasses([](const Inputs& v) { return log_softmax(v[0], 1); }, {x}));
  EXPECT_TRUE(GradcheckPasses([](const Inputs& v) { return logsumexp(v[0], 1); }, {x},
                              GradcheckOptions{.eps = 1e-6, .atol = 1e-6, .rtol = 1e-5}));
}

// ---------------------------------------------------------------------------------------------
// Losses

const nn::Reduction kReductions[] = {nn::Reduction::mean, nn::Reduction::sum, nn::Reduction::none};

const char* name(nn::Reduction r) {
  switch (r) {
    case nn::Reduction::mean:
      return "mean";
    case nn::Reduction::sum:
      return "sum";
    case nn::Reduction::none:
      return "none";
  }
  return "?";
}

TEST(OpsGradCheck, MseAndHalfSquaredError) {
  std::uint64_t seed = 2000;
  for (const Shape& shape : all_ranks()) {
    SCOPED_TRACE(fmt::format("shape {}", shape));
    const Tensor pred = normal(shape, seed++);
    const Tensor target = normal(shape, seed++);
    EXPECT_TRUE(
        GradcheckPasses([](const Inputs& v) { return nn::mse(v[0], v[1]); }, {pred, target}));
    EXPECT_TRUE(GradcheckPasses([](const Inputs& v) { return nn::half_squared_error(v[0], v[1]); },
                                {pred, target}));
  }
}

TEST(OpsGradCheck, BinaryCrossEntropy) {
  std::uint64_t seed = 2100;
  for (const Shape& shape : {Shape{}, Shape{5}, Shape{4, 3}, Shape{2, 3, 2}}) {
    for (nn::Reduction r : kReductions) {
      SCOPED_TRACE(fmt::format("shape {} reduction {}", shape, name(r)));
      const Tensor prob = in_range(shape, seed++, 0.1, 0.9);
      const Tensor soft = in_range(shape, seed++, 0.0, 1.0);
      EXPECT_TRUE(GradcheckPasses(
          [r](const Inputs& v) { return nn::binary_cross_entropy(v[0], v[1], r); }, {prob, soft}));
      // Hard 0/1 targets, held constant.
      std::vector<double> hard(shape.numel());
      for (std::size_t i = 0; i < hard.size(); ++i) hard[i] = static_cast<double>(i % 2);
      const Tensor t = from_values(hard, shape);
      EXPECT_TRUE(GradcheckPasses(
          [r, t](const Inputs& v) { return nn::binary_cross_entropy(v[0], t, r); }, {prob}));
    }
  }
}

TEST(OpsGradCheck, CrossEntropyOneHotAndSoftTargets) {
  std::uint64_t seed = 2200;
  for (const Shape& shape : {Shape{4}, Shape{3, 4}}) {
    for (nn::Reduction r : kReductions) {
      SCOPED_TRACE(fmt::format("shape {} reduction {}", shape, name(r)));
      const Tensor prob = in_range(shape, seed++, 0.05, 0.95);
      const Tensor labels = shape.rank() == 1 ? tensor({2.0}) : tensor({1.0, 3.0, 0.0});
      Tensor onehot = one_hot(labels, 4);
      if (shape.rank() == 1) onehot = reshape(onehot, {4});
      EXPECT_TRUE(GradcheckPasses(
          [r, onehot](const Inputs& v) { return nn::cross_entropy(v[0], onehot, r); }, {prob}));
      const Tensor soft = in_range(shape, seed++, 0.0, 1.0);
      EXPECT_TRUE(GradcheckPasses([r](const Inputs& v) { return nn::cross_entropy(v[0], v[1], r); },
                                  {prob, soft}));
      // Through softmax, the way a classifier uses it.
      const Tensor logits = normal(shape, seed++);
      EXPECT_TRUE(GradcheckPasses(
          [r, onehot](const Inputs& v) { return nn::cross_entropy(softmax(v[0]), onehot, r); },
          {logits}));
    }
  }
}

TEST(OpsGradCheck, CrossEntropyIndexTargets) {
  std::uint64_t seed = 2300;
  for (nn::Reduction r : kReductions) {
    SCOPED_TRACE(name(r));
    const Tensor prob = in_range(Shape{4, 3}, seed++, 0.05, 0.95);
    const Tensor idx = tensor({2.0, 0.0, 1.0, 2.0});
    EXPECT_TRUE(GradcheckPasses(
        [r, idx](const Inputs& v) { return nn::cross_entropy(v[0], idx, r); }, {prob}));
    // One sample [C] with a scalar index.
    const Tensor one = in_range(Shape{5}, seed++, 0.05, 0.95);
    EXPECT_TRUE(GradcheckPasses(
        [r](const Inputs& v) { return nn::cross_entropy(v[0], scalar(3.0), r); }, {one}));
  }
}

TEST(OpsGradCheck, BceWithLogits) {
  std::uint64_t seed = 2400;
  for (const Shape& shape : {Shape{}, Shape{5}, Shape{4, 3}, Shape{2, 3, 2}}) {
    for (nn::Reduction r : kReductions) {
      SCOPED_TRACE(fmt::format("shape {} reduction {}", shape, name(r)));
      const Tensor z = normal(shape, seed++, 3.0);
      const Tensor t = in_range(shape, seed++, 0.0, 1.0);
      EXPECT_TRUE(GradcheckPasses(
          [r](const Inputs& v) { return nn::bce_with_logits(v[0], v[1], r); }, {z, t}));
    }
  }
}

TEST(OpsGradCheck, CrossEntropyWithLogits) {
  std::uint64_t seed = 2500;
  for (nn::Reduction r : kReductions) {
    SCOPED_TRACE(name(r));
    const Tensor z = normal(Shape{3, 4}, seed++, 2.0);
    // Soft targets whose rows sum to 1, differentiated with respect to both arguments
    // (the header promises dt = -g * log_softmax(z)).
    const Tensor soft = softmax(normal(Shape{3, 4}, seed++)).detach().requires_grad_();
    EXPECT_TRUE(GradcheckPasses(
        [r](const Inputs& v) { return nn::cross_entropy_with_logits(v[0], v[1], r); }, {z, soft}));
    EXPECT_TRUE(GradcheckPasses(
        [r, soft](const Inputs& v) { return nn::cross_entropy_with_logits(v[0], soft, r); }, {z}));
    const Tensor onehot = one_hot(tensor({1.0, 3.0, 0.0}), 4);
    EXPECT_TRUE(GradcheckPasses(
        [r, onehot](const Inputs& v) { return nn::cross_entropy_with_logits(v[0], onehot, r); },
        {z}));
    const Tensor idx = tensor({1.0, 3.0, 0.0});
    EXPECT_TRUE(GradcheckPasses(
        [r, idx](const Inputs& v) { return nn::cross_entropy_with_logits(v[0], idx, r); }, {z}));
    const Tensor one = normal(Shape{4}, seed++);
    EXPECT_TRUE(GradcheckPasses(
        [r](const Inputs& v) { return nn::cross_entropy_with_logits(v[0], scalar(2.0), r); },
        {one}));
  }
}

// The closed forms the losses header promises, checked exactly (not by finite differences).
TEST(OpsGradCheck, LossGradientsMatchClosedForms) {
  Tape tape;
  Generator gen(2600);
  const Tensor z = randn(Shape{3, 4}, gen).requires_grad_();
  const Tensor onehot = one_hot(tensor({1.0, 3.0, 0.0}), 4);

  // cross_entropy(softmax(z), t), mean over 3 samples: dz = (p - t) / 3.
  const Tensor p = softmax(z, -1);
  const auto g1 = grad(nn::cross_entropy(p, onehot), {z});
  // Fused with index targets: the same.
  const auto g2 = grad(nn::cross_entropy_with_logits(z, tensor({1.0, 3.0, 0.0})), {z});
  for (std::size_t i = 0; i < 12; ++i) {
    const double want = (p.values()[i] - onehot.values()[i]) / 3.0;
    EXPECT_NEAR(g1[0].values()[i], want, 1e-12) << i;
    EXPECT_NEAR(g2[0].values()[i], want, 1e-12) << i;
  }

  // bce(sigmoid(z), t), mean over 12 elements: dz = (sigmoid(z) - t) / 12; fused the same.
  const Tensor t = rand(Shape{3, 4}, gen);
  const Tensor s = sigmoid(z);
  const auto g3 = grad(nn::binary_cross_entropy(s, t), {z});
  const auto g4 = grad(nn::bce_with_logits(z, t), {z});
  for (std::size_t i = 0; i < 12; ++i) {
    const double want = (s.values()[i] - t.values()[i]) / 12.0;
    EXPECT_NEAR(g3[0].values()[i], want, 1e-12) << i;
    EXPECT_NEAR(g4[0].values()[i], want, 1e-12) << i;
  }

  // mse: 2 (pred - target) / numel; half_squared_error: pred - target.
  const Tensor target = randn(Shape{3, 4}, gen);
  const auto g5 = grad(nn::mse(z, target), {z});
  const auto g6 = grad(nn::half_squared_error(z, target), {z});
  for (std::size_t i = 0; i < 12; ++i) {
    const double d = z.values()[i] - target.values()[i];
    EXPECT_NEAR(g5[0].values()[i], 2.0 * d / 12.0, 1e-12) << i;
    EXPECT_NEAR(g6[0].values()[i], d, 1e-12) << i;
  }
}

TEST(OpsGradCheck, FusedLossesEqualTheirCompositions) {
  Generator gen(2700);
  const Tensor z = randn(Shape{3, 4}, gen);
  const Tensor t = rand(Shape{3, 4}, gen);
  const Tensor onehot = one_hot(tensor({1.0, 3.0, 0.0}), 4);
  for (nn::Reduction r : kReductions) {
    SCOPED_TRACE(name(r));
    const Tensor fused = nn::bce_with_logits(z, t, r);
    const Tensor composed = nn::binary_cross_entropy(sigmoid(z), t, r);
    ASSERT_EQ(fmt::format("{}", fused.shape()), fmt::format("{}", composed.shape()));
    for (std::size_t i = 0; i < fused.numel(); ++i) {
      EXPECT_NEAR(fused.values()[i], composed.values()[i], 1e-12);
    }
    const Tensor ce_fused = nn::cross_entropy_with_logits(z, onehot, r);
    const Tensor ce_index = nn::cross_entropy_with_logits(z, tensor({1.0, 3.0, 0.0}), r);
    const Tensor ce_composed = nn::cross_entropy(softmax(z), onehot, r);
    ASSERT_EQ(fmt::format("{}", ce_fused.shape()), fmt::format("{}", ce_composed.shape()));
    ASSERT_EQ(fmt::format("{}", ce_index.shape()), fmt::format("{}", ce_composed.shape()));
    for (std::size_t i = 0; i < ce_fused.numel(); ++i) {
      EXPECT_NEAR(ce_fused.values()[i], ce_composed.values()[i], 1e-12);
      EXPECT_NEAR(ce_index.values()[i], ce_composed.values()[i], 1e-12);
    }
  }
  EXPECT_EQ(fmt::format("{}", nn::bce_with_logits(z, t, nn::Reduction::none).shape()), "[3, 4]");
  EXPECT_EQ(
      fmt::format("{}", nn::cross_entropy_with_logits(z, onehot, nn::Reduction::none).shape()),
      "[3]");
  EXPECT_EQ(fmt::format("{}", nn::cross_entropy_with_logits(z, onehot).shape()), "[]");
}

// ---------------------------------------------------------------------------------------------
// Second order: gradcheck of a gradient recorded with create_graph.

Tensor first_grad(const Tensor& y, const Tensor& x) {
  return grad(y, {x}, GradOptions{.create_graph = true})[0];
}

TEST(OpsGradCheck, SecondOrderSigmoid) {
  EXPECT_TRUE(GradcheckPasses([](const Inputs& v) { return first_grad(sum(sigmoid(v[0])), v[0]); },
                              {in_range(Shape{2, 3}, 3000, -3.0, 3.0)}));
}

TEST(OpsGradCheck, SecondOrderTanh) {
  EXPECT_TRUE(GradcheckPasses([](const Inputs& v) { return first_grad(sum(tanh(v[0])), v[0]); },
                              {in_range(Shape{5}, 3010, -2.0, 2.0)}));
}

TEST(OpsGradCheck, SecondOrderExp) {
  EXPECT_TRUE(GradcheckPasses([](const Inputs& v) { return first_grad(sum(exp(v[0])), v[0]); },
                              {normal(Shape{2, 2, 2}, 3020)}));
}

TEST(OpsGradCheck, SecondOrderLog) {
  EXPECT_TRUE(GradcheckPasses([](const Inputs& v) { return first_grad(sum(log(v[0])), v[0]); },
                              {in_range(Shape{4}, 3030, 0.5, 2.0)}));
}

TEST(OpsGradCheck, SecondOrderSoftmax) {
  Generator gen(3040);
  const Tensor w = randn(Shape{3, 4}, gen);  // a constant weighting: sum(softmax) alone is 1
  for (std::int64_t axis : {0, 1}) {
    SCOPED_TRACE(axis);
    EXPECT_TRUE(GradcheckPasses(
        [w, axis](const Inputs& v) { return first_grad(sum(softmax(v[0], axis) * w), v[0]); },
        {normal(Shape{3, 4}, 3041)}));
  }
}

TEST(OpsGradCheck, SecondOrderMatmul) {
  const Tensor a = normal(Shape{2, 3}, 3050, 0.5);
  const Tensor b = normal(Shape{3, 4}, 3051, 0.5);
  // d/da sum(tanh(a b)) = (1 - tanh(ab)^2) b^T depends on both a and b.
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& v) { return first_grad(sum(tanh(matmul(v[0], v[1]))), v[0]); }, {a, b}));
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& v) { return first_grad(sum(tanh(matmul(v[0], v[1]))), v[1]); }, {a, b}));
  const Tensor at = normal(Shape{3, 2}, 3052, 0.5);
  const Tensor bt = normal(Shape{4, 3}, 3053, 0.5);
  const MatmulOptions both{.transpose_a = true, .transpose_b = true};
  EXPECT_TRUE(GradcheckPasses(
      [both](const Inputs& v) { return first_grad(sum(tanh(matmul(v[0], v[1], both))), v[0]); },
      {at, bt}));
}

TEST(OpsGradCheck, SecondOrderDiv) {
  const Tensor a = normal(Shape{2, 3}, 3060);
  const Tensor b = in_range(Shape{2, 3}, 3061, 0.5, 2.0);
  // grads of sum(a / b): 1/b and -a/b^2; their sum depends on both.
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& v) {
        const auto g = grad(sum(div(v[0], v[1])), {v[0], v[1]}, GradOptions{.create_graph = true});
        return g[0] + g[1];
      },
      {a, b}));
  // Broadcast divisor: the engine's sum_to must be recorded too.
  const Tensor c = in_range(Shape{3}, 3062, 0.5, 2.0);
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& v) { return first_grad(sum(div(v[0], v[1]) * v[0]), v[1]); }, {a, c}));
}

TEST(OpsGradCheck, SecondOrderEveryOtherRule) {
  // Every remaining rule, recorded with create_graph and differentiated again. Each f is made
  // non-linear enough that its gradient still depends on x.
  Generator gen(3070);
  const Tensor w = randn(Shape{3, 4}, gen);
  const Tensor t = rand(Shape{3, 4}, gen);
  const std::vector<std::pair<const char*, UnaryFn>> fns = {
      {"neg", [](const Tensor& x) { return sum(exp(neg(x))); }},
      {"sqrt", [](const Tensor& x) { return sum(sqrt(x)); }},
      {"abs", [](const Tensor& x) { return sum(square(abs(x - 3.0))); }},
      {"square", [](const Tensor& x) { return sum(square(x) * x); }},
      {"pow", [](const Tensor& x) { return sum(pow(x, 2.5)); }},
      {"pow negative", [](const Tensor& x) { return sum(pow(x, -1.5)); }},
      {"relu", [](const Tensor& x) { return sum(square(relu(x - 1.0))); }},
      {"clamp", [](const Tensor& x) { return sum(square(clamp(x, 0.6, 1.6))); }},
      {"sub", [w](const Tensor& x) { return sum(exp(w - x)); }},
      {"mul broadcast", [](const Tensor& x) { return sum(exp(x * sum(x, 0))); }},
      {"sum axis", [w](const Tensor& x) { return sum(square(sum(x * w, 1))); }},
      {"mean axis", [](const Tensor& x) { return sum(exp(mean(x, 0, true) * x)); }},
      {"mean", [](const Tensor& x) { return square(mean(x * x)); }},
      {"max axis", [](const Tensor& x) { return sum(square(max(x * x, 1))); }},
      {"max", [](const Tensor& x) { return exp(max(x)); }},
      {"reshape",
       [w](const Tensor& x) {
         return sum(square(reshape(x, {2, -1})) * reshape(w, {2, 6}));
       }},
      {"transpose", [w](const Tensor& x) { return sum(exp(transpose(x) * transpose(w))); }},
      {"transpose axes",
       [](const Tensor& x) {
         return sum(tanh(transpose(reshape(x, {3, 2, 2}), 0, 2)) * tensor({1.0, 2.0, 3.0}));
       }},
      {"sum_to", [](const Tensor& x) { return sum(exp(sum_to(x, Shape{4}))); }},
      {"broadcast_to",
       [](const Tensor& x) {
         return sum(tanh(broadcast_to(x, Shape{2, 3, 4}) * 0.5));
       }},
      {"log_softmax", [w](const Tensor& x) { return sum(log_softmax(x, 1) * w); }},
      {"logsumexp", [](const Tensor& x) { return sum(square(logsumexp(x, 0))); }},
      {"matmul transposed",
       [w](const Tensor& x) {
         return sum(tanh(matmul(x, w, MatmulOptions{.transpose_a = false, .transpose_b = true})));
       }},
      {"bce_with_logits", [t](const Tensor& x) { return nn::bce_with_logits(x, t); }},
      {"cross_entropy_with_logits",
       [t](const Tensor& x) { return nn::cross_entropy_with_logits(x, softmax(t)); }},
      {"binary_cross_entropy",
       [t](const Tensor& x) { return nn::binary_cross_entropy(sigmoid(x), t); }},
      {"cross_entropy", [t](const Tensor& x) { return nn::cross_entropy(softmax(x), softmax(t)); }},
      {"mse", [w](const Tensor& x) { return nn::mse(exp(x), w); }},
  };
  // Positive and away from the kinks used above (relu at 1, clamp at 0.6 and 1.6, no max ties).
  const Tensor x = away_from(Shape{3, 4}, 3071, {1.0, 0.6, 1.6}, 0.3, 1.9, 0.08);
  for (const auto& [label, fn] : fns) {
    SCOPED_TRACE(label);
    EXPECT_TRUE(GradcheckPasses([&fn](const Inputs& v) { return first_grad(fn(v[0]), v[0]); }, {x},
                                GradcheckOptions{.eps = 1e-6, .atol = 1e-6, .rtol = 1e-5}));
  }
}

// ---------------------------------------------------------------------------------------------
// gradcheck itself

TEST(OpsGradCheck, GradcheckCatchesWrongRuleAndNamesIt) {
  // y = x0 * bad(x1), bad's rule doubles the gradient: dy_i/dx1_i is x0_i, the tape says 2 x0_i.
  const Tensor x0 = tensor({0.5, -1.25, 3.75}).requires_grad_();
  const Tensor x1 = tensor({0.1, 0.2, 0.3}).requires_grad_();
  const GradcheckResult r =
      gradcheck([](const Inputs& v) { return v[0] * twice_g_identity(v[1]); }, {x0, x1});
  EXPECT_FALSE(r.passed);
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_EQ(r.input, 1u);
  EXPECT_EQ(r.index, (std::vector<std::int64_t>{2}));
  EXPECT_EQ(r.output_element, 2u);
  EXPECT_NEAR(r.analytic, 7.5, 1e-9);
  EXPECT_NEAR(r.numeric, 3.75, 1e-6);
  EXPECT_NEAR(r.max_abs_error, 3.75, 1e-6);
  EXPECT_EQ(r.elements_checked, 18u);
  // The report names the input, the element and both values.
  EXPECT_NE(r.report.find("input 1"), std::string::npos) << r.report;
  EXPECT_NE(r.report.find("[2]"), std::string::npos) << r.report;
  EXPECT_NE(r.report.find("7.5"), std::string::npos) << r.report;
  EXPECT_NE(r.report.find("3.7"), std::string::npos) << r.report;
}

TEST(OpsGradCheck, GradcheckReportsMultiIndexOfWorstElement) {
  // Only x[1, 0] is wrong: the rule adds 5 there.
  const Tensor x = tensor({{1.0, 2.0}, {3.0, 4.0}}).requires_grad_();
  const GradcheckResult r = gradcheck(
      [](const Inputs& v) {
        return identity_with_rule(
            v[0],
            [](const Tensor& g, const Tensor&, std::span<const Tensor>) -> std::vector<Tensor> {
              return {g + tensor({{0.0, 0.0}, {5.0, 0.0}}) * g};
            });
      },
      {x});
  EXPECT_FALSE(r.passed) << r.report;
  EXPECT_EQ(r.input, 0u);
  EXPECT_EQ(r.index, (std::vector<std::int64_t>{1, 0}));
  EXPECT_EQ(r.output_element, 2u);
  EXPECT_NEAR(r.analytic, 6.0, 1e-9);
  EXPECT_NEAR(r.numeric, 1.0, 1e-6);
}

TEST(OpsGradCheck, GradcheckCatchesMissingGradient) {
  // The rule gives nothing to its input: analytic 0, numeric 1.
  const Tensor x = tensor({1.0, 2.0}).requires_grad_();
  const GradcheckResult r = gradcheck(
      [](const Inputs& v) {
        return identity_with_rule(
            v[0], [](const Tensor&, const Tensor&, std::span<const Tensor>) -> std::vector<Tensor> {
              return {Tensor()};
            });
      },
      {x});
  EXPECT_FALSE(r.passed) << r.report;
  EXPECT_NEAR(r.analytic, 0.0, 1e-12);
  EXPECT_NEAR(r.numeric, 1.0, 1e-6);
}

TEST(OpsGradCheck, GradcheckToleranceIsRelative) {
  const Tensor x = tensor({1.0, -2.0, 3.0}).requires_grad_();
  auto scaled = [](double factor) {
    return [factor](const Inputs& v) {
      return identity_with_rule(
          v[0],
          [factor](const Tensor& g, const Tensor&, std::span<const Tensor>) -> std::vector<Tensor> {
            return {g * factor};
          });
    };
  };
  // 1e-9 relative error is inside rtol = 1e-6; 1e-3 is not.
  EXPECT_TRUE(gradcheck(scaled(1.0 + 1e-9), {x}).passed);
  EXPECT_FALSE(gradcheck(scaled(1.0 + 1e-3), {x}).passed);
  // A correct custom op passes.
  const Tensor y = tensor({0.5, 1.5}).requires_grad_();
  const auto cube = [](const Inputs& v) {
    const Tensor& in = v[0];
    std::vector<double> out;
    for (double e : in.values()) out.push_back(e * e * e);
    return record(
        "test_cube", in.shape(), std::move(out), {in},
        [](const Tensor& g, const Tensor&, std::span<const Tensor> ins) -> std::vector<Tensor> {
          return {g * 3.0 * ins[0] * ins[0]};
        });
  };
  EXPECT_TRUE(GradcheckPasses(cube, {y}));
}

TEST(OpsGradCheck, GradcheckLeavesInputsAlone) {
  const Tensor x = tensor({0.25, -0.5, 2.0}).requires_grad_();
  const Tensor c = tensor({1.0, 2.0, 3.0});  // does not require grad: not checked
  const GradcheckResult r = gradcheck([](const Inputs& v) { return exp(v[0]) * v[1]; }, {x, c});
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_EQ(r.elements_checked, 9u);
  EXPECT_EQ(std::vector<double>(x.values().begin(), x.values().end()),
            (std::vector<double>{0.25, -0.5, 2.0}));
  EXPECT_FALSE(x.grad().defined());
  EXPECT_TRUE(x.requires_grad());
  EXPECT_FALSE(c.requires_grad());
  EXPECT_EQ(Tape::current(), nullptr);
}

TEST(OpsGradCheck, GradcheckNeedsAnInputThatRequiresGrad) {
  EXPECT_THROW(gradcheck([](const Inputs& v) { return exp(v[0]); }, {tensor({1.0, 2.0})}),
               tapegrad::Error);
}

}  // namespace
