// Engine: the tape, the backward sweep and the functional grad, checked against closed forms;
// plus factories, random numbers and formatting.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tapegrad/core/autograd.hpp"
#include "tapegrad/core/broadcast.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/random.hpp"
#include "tapegrad/core/shape.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/unary.hpp"

namespace {

using namespace tapegrad;  // NOLINT

std::vector<double> values_of(const Tensor& t) {
  return {t.values().begin(), t.values().end()};
}

std::string shape_of(const Tensor& t) {
  return fmt::format("{}", t.shape());
}

void expect_values(const Tensor& t, const std::vector<double>& want, double tol = 1e-12) {
  ASSERT_TRUE(t.defined());
  ASSERT_EQ(t.numel(), want.size()) << fmt::format("{}", t);
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(t.values()[i], want[i], tol) << "element " << i << " of " << fmt::format("{}", t);
  }
}

TEST(Engine, MillionOpChainBackwardIsIterative) {
  constexpr int kOps = 1'000'000;
  const double factor = 1.0000001;
  Tape tape;
  const Tensor x = scalar(1.0).requires_grad_();
  const Tensor c = scalar(factor);
  Tensor y = x;
  for (int i = 0; i < kOps; ++i) y = y * c;
  EXPECT_EQ(tape.size(), static_cast<std::size_t>(kOps));
  y.backward();
  // dy/dx = factor^n; the sweep multiplies by `factor` n times, as the forward did.
  const double want = std::pow(factor, kOps);
  EXPECT_NEAR(y.item(), want, 1e-9 * want);
  ASSERT_TRUE(x.grad().defined());
  EXPECT_NEAR(x.grad().item(), want, 1e-9 * want);
  EXPECT_NEAR(want, std::exp(kOps * std::log(factor)), 1e-9);
  tape.clear();
  EXPECT_EQ(tape.size(), 0u);
}

TEST(Engine, MillionOpChainOfAddsThroughGrad) {
  constexpr int kOps = 1'000'000;
  Tape tape;
  const Tensor x = tensor({1.0, -2.0, 3.0}).requires_grad_();
  const Tensor zero = scalar(0.0);
  Tensor y = x;
  for (int i = 0; i < kOps; ++i) y = y + zero;
  const auto g = grad(sum(y * x), {x});  // d/dx sum(x * x) = 2x
  expect_values(g[0], {2.0, -4.0, 6.0});
  EXPECT_FALSE(x.grad().defined());
}

TEST(Engine, SharedSubexpressionGetsSumOfGradients) {
  Tape tape;
  const Tensor x = scalar(1.5).requires_grad_();
  const Tensor y = x * x;
  const Tensor z = y + y * y;  // x^2 + x^4
  z.backward();
  EXPECT_DOUBLE_EQ(z.item(), 1.5 * 1.5 + std::pow(1.5, 4));
  EXPECT_NEAR(x.grad().item(), 2 * 1.5 + 4 * std::pow(1.5, 3), 1e-12);  // 16.5

  // Elementwise, and a second use of y further down.
  const Tensor v = tensor({-1.0, 0.5, 2.0}).requires_grad_();
  const Tensor w = v * v;
  const Tensor u = sum(w + w * w + exp(w));  // d/dv = 2v (1 + 2v^2 + e^(v^2))
  u.backward();
  std::vector<double> want;
  for (double e : {-1.0, 0.5, 2.0}) want.push_back(2 * e * (1 + 2 * e * e + std::exp(e * e)));
  expect_values(v.grad(), want, 1e-10);
}

TEST(Engine, DiamondChainIsNotExponential) {
  // a <- a + a, 60 times: 2^60 paths from the output to x. A sweep that revisits shared nodes
  // would never finish; the tape visits each node once.
  Tape tape;
  const Tensor x = scalar(3.0).requires_grad_();
  Tensor a = x;
  for (int i = 0; i < 60; ++i) a = a + a;
  a.backward();
  EXPECT_EQ(x.grad().item(), std::ldexp(1.0, 60));
  EXPECT_EQ(a.item(), 3.0 * std::ldexp(1.0, 60));
  EXPECT_EQ(tape.size(), 60u);
}

TEST(Engine, GradientsAccumulateUntilZeroGrad) {
  Tape tape;
  Tensor x = tensor({1.0, -2.0, 0.5}).requires_grad_();
  EXPECT_FALSE(x.grad().defined());
  sum(x * x).backward();
  expect_values(x.grad(), {2.0, -4.0, 1.0});
  sum(x * x * x).backward();  // + 3x^2
  expect_values(x.grad(), {2.0 + 3.0, -4.0 + 12.0, 1.0 + 0.75});
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
  sum(x * 5.0).backward();
  expect_values(x.grad(), {5.0, 5.0, 5.0});
  // The same output swept twice: the tape still holds its nodes, so it adds again.
  const Tensor y = sum(x * x);
  x.zero_grad();
  y.backward();
  y.backward();
  expect_values(x.grad(), {4.0, -8.0, 2.0});
}

TEST(Engine, BackwardWithExplicitSeed) {
  Tape tape;
  const Tensor x = tensor({1.0, 2.0, 3.0}).requires_grad_();
  const Tensor y = x * x;
  y.backward(tensor({1.0, 0.5, -2.0}));
  expect_values(x.grad(), {2.0, 2.0, -12.0});  // 2x * seed

  const Tensor m = tensor({{1.0, 2.0}, {3.0, 4.0}}).requires_grad_();
  backward(exp(m), tensor({{1.0, 0.0}, {0.0, 2.0}}));
  expect_values(m.grad(), {std::exp(1.0), 0.0, 0.0, 2.0 * std::exp(4.0)});

  // A scalar seed for a scalar output scales the gradient.
  const Tensor s = scalar(2.0).requires_grad_();
  (s * s * s).backward(scalar(0.5));
  EXPECT_NEAR(s.grad().item(), 0.5 * 3 * 4.0, 1e-12);
}

TEST(Engine, BroadcastGradientsAreSummedToInputShapes) {
  Tape tape;
  const Tensor a = from_values({1.0, 2.0, 3.0}, Shape{3, 1}).requires_grad_();
  const Tensor b = tensor({10.0, 20.0, 30.0, 40.0}).requires_grad_();  // [4]
  const Tensor c = scalar(2.0).requires_grad_();
  sum((a + b) * c).backward();
  EXPECT_EQ(shape_of(a.grad()), "[3, 1]");
  EXPECT_EQ(shape_of(b.grad()), "[4]");
  EXPECT_EQ(shape_of(c.grad()), "[]");
  expect_values(a.grad(), {8.0, 8.0, 8.0});
  expect_values(b.grad(), {6.0, 6.0, 6.0, 6.0});
  // dc = sum(a + b) = 4 * (1 + 2 + 3) + 3 * (10 + 20 + 30 + 40)
  EXPECT_NEAR(c.grad().item(), 24.0 + 300.0, 1e-12);
}

TEST(Engine, NoGradScopeRecordsNothing) {
  Tape tape;
  const Tensor x = tensor({1.0, 2.0}).requires_grad_();
  EXPECT_TRUE(is_grad_enabled());
  Tensor y;
  {
    NoGradGuard no_grad;
    EXPECT_FALSE(is_grad_enabled());
    y = exp(x * x) + 1.0;
    {
      NoGradGuard nested;
      EXPECT_FALSE(is_grad_enabled());
    }
    EXPECT_FALSE(is_grad_enabled());
    {
      EnableGradGuard enable;
      EXPECT_TRUE(is_grad_enabled());
      const Tensor r = x * 2.0;
      EXPECT_TRUE(r.requires_grad());
      EXPECT_EQ(tape.size(), 1u);
    }
    EXPECT_FALSE(is_grad_enabled());
  }
  EXPECT_TRUE(is_grad_enabled());
  EXPECT_EQ(tape.size(), 1u);  // only the op under EnableGradGuard
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(y.is_leaf());
  EXPECT_EQ(y.op(), "");
  expect_values(y, {std::exp(1.0) + 1.0, std::exp(4.0) + 1.0});
}

TEST(Engine, WithoutATapeNothingIsRecorded) {
  ASSERT_EQ(Tape::current(), nullptr);
  const Tensor x = tensor({1.0, 2.0}).requires_grad_();
  const Tensor y = sigmoid(x * 3.0);
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(y.is_leaf());
  EXPECT_NEAR(y.values()[0], 1.0 / (1.0 + std::exp(-3.0)), 1e-15);
}

TEST(Engine, RecordedResultsKnowTheirOp) {
  Tape tape;
  const Tensor x = tensor({1.0, 2.0}).requires_grad_();
  const Tensor y = sigmoid(x);
  EXPECT_TRUE(y.requires_grad());
  EXPECT_FALSE(y.is_leaf());
  EXPECT_EQ(y.op(), "sigmoid");
  EXPECT_TRUE(x.is_leaf());
  ASSERT_EQ(tape.size(), 1u);
  EXPECT_EQ(tape.node(0).op, "sigmoid");
  EXPECT_TRUE(tape.node(0).result.same(y));
  ASSERT_EQ(tape.node(0).inputs.size(), 1u);
  EXPECT_TRUE(tape.node(0).inputs[0].same(x));
  // An op on constants only records nothing even with a tape.
  const Tensor k = tensor({1.0}) * 2.0;
  EXPECT_FALSE(k.requires_grad());
  EXPECT_EQ(tape.size(), 1u);
}

TEST(Engine, NestedTapesInnermostRecords) {
  Tape outer;
  EXPECT_EQ(Tape::current(), &outer);
  Tensor x = scalar(2.0).requires_grad_();
  const Tensor a = x * x;
  EXPECT_EQ(outer.size(), 1u);
  {
    Tape inner;
    EXPECT_EQ(Tape::current(), &inner);
    const Tensor y = x * 3.0;
    const Tensor z = y * y;
    EXPECT_EQ(inner.size(), 2u);
    EXPECT_EQ(outer.size(), 1u);
    z.backward();
    EXPECT_NEAR(x.grad().item(), 18.0 * 2.0, 1e-12);  // d/dx 9x^2
  }
  EXPECT_EQ(Tape::current(), &outer);
  x.zero_grad();
  a.backward();
  EXPECT_NEAR(x.grad().item(), 4.0, 1e-12);
}

TEST(Engine, ClearEmptiesTapeButKeepsValues) {
  Tape tape;
  Tensor x = tensor({0.0, 1.0}).requires_grad_();
  const Tensor y = exp(x) * 2.0;
  EXPECT_EQ(tape.size(), 2u);
  tape.clear();
  EXPECT_EQ(tape.size(), 0u);
  expect_values(y, {2.0, 2.0 * std::exp(1.0)});
  // The tape keeps recording after a clear, like a training loop's next step.
  for (int step = 0; step < 100; ++step) {
    x.zero_grad();
    sum(x * x * 3.0).backward();
    expect_values(x.grad(), {0.0, 6.0});
    EXPECT_EQ(tape.size(), 3u);
    tape.clear();
  }
  EXPECT_EQ(tape.size(), 0u);
}

TEST(Engine, ValuesOutliveTheirTape) {
  Tensor y;
  const Tensor x = tensor({1.0, 4.0}).requires_grad_();
  {
    Tape tape;
    y = sqrt(x) + 1.0;
  }
  expect_values(y, {2.0, 3.0});
  EXPECT_EQ(Tape::current(), nullptr);
}

TEST(Engine, CreateGraphGivesSecondDerivative) {
  Tape tape;
  const Tensor x = scalar(1.5).requires_grad_();
  const Tensor y = x * x * x;
  const auto g = grad(y, {x}, GradOptions{.create_graph = true});
  EXPECT_NEAR(g[0].item(), 3 * 1.5 * 1.5, 1e-12);  // 3x^2
  EXPECT_TRUE(g[0].requires_grad());
  const auto h = grad(g[0], {x});
  EXPECT_NEAR(h[0].item(), 6 * 1.5, 1e-12);  // 6x
  // Third derivative: 6.
  const auto g2 = grad(g[0], {x}, GradOptions{.create_graph = true});
  const auto g3 = grad(g2[0], {x});
  EXPECT_NEAR(g3[0].item(), 6.0, 1e-12);

  // Through pow and through backward(create_graph): grad() is then a recorded result.
  const Tensor v = tensor({-1.0, 2.0}).requires_grad_();
  sum(pow(v, 3.0)).backward(BackwardOptions{.create_graph = true});
  const Tensor dv = v.grad();
  expect_values(dv, {3.0, 12.0});
  EXPECT_TRUE(dv.requires_grad());
  const auto hv = grad(sum(dv), {v});
  expect_values(hv[0], {-6.0, 12.0});
}

TEST(Engine, WithoutCreateGraphGradientsAreConstants) {
  Tape tape;
  const Tensor x = scalar(2.0).requires_grad_();
  const auto g = grad(x * x * x, {x});
  EXPECT_NEAR(g[0].item(), 12.0, 1e-12);
  EXPECT_FALSE(g[0].requires_grad());
  const std::size_t before = tape.size();
  (void)grad(x * x * x, {x});
  EXPECT_EQ(tape.size(), before + 2);  // only the forward's two muls
}

TEST(Engine, GradDoesNotTouchLeafGrads) {
  Tape tape;
  const Tensor x = tensor({1.0, 2.0}).requires_grad_();
  const Tensor w = tensor({3.0, -1.0}).requires_grad_();
  const Tensor loss = sum(x * w);
  const auto g = grad(loss, {x, w});
  ASSERT_EQ(g.size(), 2u);
  expect_values(g[0], {3.0, -1.0});
  expect_values(g[1], {1.0, 2.0});
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
  // Existing grads are left as they were.
  loss.backward();
  (void)grad(loss, {x});
  expect_values(x.grad(), {3.0, -1.0});
}

TEST(Engine, GradOfIntermediateAndWithSeeds) {
  Tape tape;
  const Tensor x = tensor({1.0, 2.0}).requires_grad_();
  const Tensor h = x * 3.0;
  const Tensor y = sum(h * h);
  const auto gh = grad(y, {h});  // 2h
  expect_values(gh[0], {6.0, 12.0});
  // Two outputs with seeds: d(s1 . y1 + s2 . y2)/dx.
  const Tensor y1 = x * x;
  const Tensor y2 = exp(x);
  const std::vector<Tensor> outs = {y1, y2};
  const std::vector<Tensor> ins = {x};
  const std::vector<Tensor> seeds = {tensor({1.0, -1.0}), tensor({0.5, 2.0})};
  const auto g = grad(outs, ins, seeds);
  expect_values(g[0], {2.0 + 0.5 * std::exp(1.0), -4.0 + 2.0 * std::exp(2.0)});
}

TEST(Engine, AllowUnusedGivesZeros) {
  Tape tape;
  const Tensor x = tensor({1.0, 2.0}).requires_grad_();
  const Tensor unused = tensor({{1.0, 2.0, 3.0}}).requires_grad_();
  const Tensor loss = sum(x * x);
  const auto g = grad(loss, {x, unused}, GradOptions{.allow_unused = true});
  ASSERT_EQ(g.size(), 2u);
  expect_values(g[0], {2.0, 4.0});
  ASSERT_TRUE(g[1].defined());
  EXPECT_EQ(shape_of(g[1]), "[1, 3]");
  expect_values(g[1], {0.0, 0.0, 0.0});
  EXPECT_THROW((void)grad(loss, {x, unused}), AutogradError);
}

TEST(Engine, DetachCutsTheGraph) {
  Tape tape;
  const Tensor x = tensor({2.0, -3.0}).requires_grad_();
  const Tensor d = x.detach();
  EXPECT_TRUE(d.is_leaf());
  EXPECT_FALSE(d.requires_grad());
  EXPECT_FALSE(d.same(x));
  sum(d * x).backward();  // d is a constant: gradient x, not 2x
  expect_values(x.grad(), {2.0, -3.0});
}

TEST(Engine, BackwardFromALeaf) {
  Tape tape;
  const Tensor x = scalar(4.0).requires_grad_();
  x.backward();
  EXPECT_EQ(x.grad().item(), 1.0);
  const Tensor v = tensor({1.0, 2.0}).requires_grad_();
  v.backward(tensor({3.0, -1.0}));
  expect_values(v.grad(), {3.0, -1.0});
  EXPECT_EQ(tape.size(), 0u);
}

TEST(Engine, LeafGradsAreIndependentTensors) {
  // add hands the same g to both inputs; each leaf's grad() must still be its own tensor.
  Tape tape;
  const Tensor a = tensor({1.0, 2.0}).requires_grad_();
  const Tensor b = tensor({3.0, 4.0}).requires_grad_();
  sum(a + b).backward();
  Tensor ga = a.grad();
  ga.mutable_values()[0] = 100.0;
  expect_values(b.grad(), {1.0, 1.0});
}

TEST(Engine, OnlyLeavesThatRequireGradGetGradients) {
  Tape tape;
  const Tensor a = tensor({1.0, 2.0}).requires_grad_();
  const Tensor b = tensor({3.0, 4.0});
  sum(a * b).backward();
  expect_values(a.grad(), {3.0, 4.0});
  EXPECT_FALSE(b.grad().defined());
}

TEST(Engine, MaxTiesShareTheGradient) {
  Tape tape;
  const Tensor x = tensor({1.0, 3.0, 3.0, -2.0}).requires_grad_();
  max(x).backward();
  expect_values(x.grad(), {0.0, 0.5, 0.5, 0.0});
  const Tensor m = tensor({{5.0, 5.0, 5.0}, {1.0, 2.0, 0.0}}).requires_grad_();
  sum(max(m, 1)).backward();
  expect_values(m.grad(), {1.0 / 3, 1.0 / 3, 1.0 / 3, 0.0, 1.0, 0.0});
}

TEST(Engine, SumToAndBroadcastToValues) {
  const Tensor x = tensor({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}});
  const Tensor a = sum_to(x, Shape{3});
  EXPECT_EQ(shape_of(a), "[3]");
  expect_values(a, {5.0, 7.0, 9.0});
  const Tensor b = sum_to(x, Shape{2, 1});
  EXPECT_EQ(shape_of(b), "[2, 1]");
  expect_values(b, {6.0, 15.0});
  const Tensor c = sum_to(x, Shape{});
  EXPECT_EQ(shape_of(c), "[]");
  expect_values(c, {21.0});
  const Tensor d = sum_to(x, Shape{1, 3});
  EXPECT_EQ(shape_of(d), "[1, 3]");
  expect_values(d, {5.0, 7.0, 9.0});
  const Tensor e = sum_to(x, Shape{2, 3});
  expect_values(e, {1.0, 2.0, 3.0, 4.0, 5.0, 6.0});

  const Tensor f = broadcast_to(tensor({1.0, 2.0, 3.0}), Shape{2, 3});
  EXPECT_EQ(shape_of(f), "[2, 3]");
  expect_values(f, {1.0, 2.0, 3.0, 1.0, 2.0, 3.0});
  const Tensor g = broadcast_to(from_values({1.0, 2.0}, Shape{2, 1}), Shape{2, 3});
  expect_values(g, {1.0, 1.0, 1.0, 2.0, 2.0, 2.0});
  const Tensor h = broadcast_to(scalar(7.0), Shape{2, 2});
  EXPECT_EQ(shape_of(h), "[2, 2]");
  expect_values(h, {7.0, 7.0, 7.0, 7.0});
  const Tensor k = broadcast_to(from_values({1.0, 2.0}, Shape{2, 1}), Shape{2, 2, 3});
  EXPECT_EQ(shape_of(k), "[2, 2, 3]");
  expect_values(k, {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2});
  // Round trip: sum_to(broadcast_to(v, s), v.shape()) = v * (numel(s) / numel(v)).
  expect_values(sum_to(k, Shape{2, 1}), {6.0, 12.0});
}

TEST(Engine, ShapeBasics) {
  const Shape s{2, 3, 4};
  EXPECT_EQ(s.rank(), 3u);
  EXPECT_EQ(s.numel(), 24u);
  EXPECT_EQ(s.strides(), (std::vector<std::size_t>{12, 4, 1}));
  EXPECT_EQ(s.normalize_axis(-1, "test"), 2u);
  EXPECT_EQ(s.normalize_axis(-3, "test"), 0u);
  EXPECT_EQ(s.normalize_axis(1, "test"), 1u);
  EXPECT_EQ(Shape{}.numel(), 1u);
  EXPECT_EQ(Shape{}.rank(), 0u);
  EXPECT_EQ((Shape{2, 0}).numel(), 0u);
  EXPECT_TRUE(broadcast_shapes(Shape{3, 1}, Shape{1, 4}, "test") == (Shape{3, 4}));
  EXPECT_TRUE(broadcast_shapes(Shape{}, Shape{2, 3}, "test") == (Shape{2, 3}));
  EXPECT_TRUE(broadcast_shapes(Shape{2, 1, 4}, Shape{3, 1}, "test") == (Shape{2, 3, 4}));
  EXPECT_TRUE(broadcasts_to(Shape{3}, Shape{2, 3}));
  EXPECT_TRUE(broadcasts_to(Shape{}, Shape{2, 3}));
  EXPECT_FALSE(broadcasts_to(Shape{2, 3}, Shape{3}));
  EXPECT_FALSE(broadcasts_to(Shape{2}, Shape{2, 3}));
}

TEST(Engine, FormatShapeAndTensor) {
  EXPECT_EQ(fmt::format("{}", Shape{2, 3}), "[2, 3]");
  EXPECT_EQ(fmt::format("{}", Shape{}), "[]");
  EXPECT_EQ(fmt::format("{}", Shape{7}), "[7]");
  EXPECT_EQ(fmt::format("{}", Shape{1, 2, 3}), "[1, 2, 3]");

  const std::string t = fmt::format("{}", tensor({{1.5, -2.25}, {3.5, 4.75}}));
  EXPECT_NE(t.find("1.5"), std::string::npos) << t;
  EXPECT_NE(t.find("-2.25"), std::string::npos) << t;
  EXPECT_NE(t.find("3.5"), std::string::npos) << t;
  EXPECT_NE(t.find("4.75"), std::string::npos) << t;
  EXPECT_NE(t.find("[2, 2]"), std::string::npos) << t;
  EXPECT_LT(t.find("1.5"), t.find("4.75")) << t;

  Tape tape;
  const Tensor x = tensor({0.0}).requires_grad_();
  const std::string s = fmt::format("{}", sigmoid(x));
  EXPECT_NE(s.find("0.5"), std::string::npos) << s;
  EXPECT_NE(s.find("sigmoid"), std::string::npos) << s;

  // A large tensor is abbreviated, not printed in full.
  const std::string big = fmt::format("{}", zeros(Shape{1000, 1000}));
  EXPECT_LT(big.size(), 100'000u);
  EXPECT_NE(big.find("[1000, 1000]"), std::string::npos);
}

TEST(Engine, Factories) {
  const Tensor z = zeros(Shape{2, 3});
  EXPECT_EQ(shape_of(z), "[2, 3]");
  expect_values(z, std::vector<double>(6, 0.0));
  EXPECT_TRUE(z.is_leaf());
  EXPECT_FALSE(z.requires_grad());
  expect_values(ones(Shape{4}), {1.0, 1.0, 1.0, 1.0});
  const Tensor f = full(Shape{2, 2}, -3.5);
  EXPECT_EQ(shape_of(f), "[2, 2]");
  expect_values(f, {-3.5, -3.5, -3.5, -3.5});

  const Tensor s = scalar(4.25);
  EXPECT_EQ(s.rank(), 0u);
  EXPECT_EQ(s.numel(), 1u);
  EXPECT_EQ(s.item(), 4.25);

  const Tensor v = tensor({1.0, 2.0, 3.0});
  EXPECT_EQ(shape_of(v), "[3]");
  expect_values(v, {1.0, 2.0, 3.0});
  EXPECT_EQ(v.at({2}), 3.0);

  const Tensor m = tensor({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}});
  EXPECT_EQ(shape_of(m), "[2, 3]");
  expect_values(m, {1.0, 2.0, 3.0, 4.0, 5.0, 6.0});
  EXPECT_EQ(m.at({1, 0}), 4.0);
  EXPECT_EQ(m.at({0, 2}), 3.0);

  const Tensor fv = from_values({1.0, 2.0, 3.0, 4.0, 5.0, 6.0}, Shape{3, 2});
  EXPECT_EQ(fv.at({2, 1}), 6.0);
  EXPECT_EQ(shape_of(Tensor::from_values({7.0}, Shape{})), "[]");

  EXPECT_EQ(shape_of(zeros_like(m)), "[2, 3]");
  expect_values(zeros_like(m), std::vector<double>(6, 0.0));
  expect_values(ones_like(v), {1.0, 1.0, 1.0});
  EXPECT_EQ(zeros(Shape{}).item(), 0.0);
  EXPECT_EQ(zeros(Shape{0, 3}).numel(), 0u);

  // Factories make independent tensors; requires_grad_ marks parameters.
  Tensor p = zeros(Shape{2}).requires_grad_();
  EXPECT_TRUE(p.requires_grad());
  p.mutable_values()[1] = 9.0;
  expect_values(p, {0.0, 9.0});
  expect_values(zeros(Shape{2}), {0.0, 0.0});
  const Tensor alias = p;
  EXPECT_TRUE(alias.same(p));
  EXPECT_FALSE(Tensor().defined());
}

TEST(Engine, RandnIsDeterministicPerSeed) {
  Generator a(42);
  Generator b(42);
  Generator c(43);
  const Tensor ra = randn(Shape{3, 5}, a);
  const Tensor rb = randn(Shape{3, 5}, b);
  const Tensor rc = randn(Shape{3, 5}, c);
  EXPECT_EQ(shape_of(ra), "[3, 5]");
  EXPECT_EQ(values_of(ra), values_of(rb));
  EXPECT_NE(values_of(ra), values_of(rc));
  EXPECT_FALSE(ra.requires_grad());
  // The stream continues: a second draw differs from the first, identically on both.
  const Tensor ra2 = randn(Shape{3, 5}, a);
  EXPECT_NE(values_of(ra), values_of(ra2));
  EXPECT_EQ(values_of(ra2), values_of(randn(Shape{3, 5}, b)));
  Generator d(42);
  Generator e(42);
  EXPECT_EQ(values_of(rand(Shape{8}, d)), values_of(rand(Shape{8}, e)));
  EXPECT_EQ(d.next_u64(), e.next_u64());
}

TEST(Engine, RandnMomentsOver100kDraws) {
  Generator gen(2024);
  const Tensor r = randn(Shape{100'000}, gen);
  double m = 0.0;
  for (double v : r.values()) m += v;
  m /= 1e5;
  double var = 0.0;
  double within_one = 0.0;
  for (double v : r.values()) {
    var += (v - m) * (v - m);
    within_one += std::abs(v) < 1.0 ? 1.0 : 0.0;
  }
  var /= 1e5 - 1;
  // Standard errors: mean 0.0032, variance 0.0045, P(|z| < 1) 0.0015; bounds are ~6 of them.
  EXPECT_NEAR(m, 0.0, 0.02);
  EXPECT_NEAR(var, 1.0, 0.03);
  EXPECT_NEAR(within_one / 1e5, 0.682689, 0.01);
}

TEST(Engine, UniformDrawsStayInRange) {
  Generator gen(7);
  const Tensor u = rand(Shape{50'000}, gen);
  double m = 0.0;
  for (double v : u.values()) {
    EXPECT_GE(v, 0.0);
    EXPECT_LT(v, 1.0);
    m += v;
  }
  EXPECT_NEAR(m / 5e4, 0.5, 0.01);
  const Tensor w = uniform(Shape{10'000}, -3.0, 5.0, gen);
  double wm = 0.0;
  for (double v : w.values()) {
    EXPECT_GE(v, -3.0);
    EXPECT_LT(v, 5.0);
    wm += v;
  }
  EXPECT_NEAR(wm / 1e4, 1.0, 0.15);
  std::vector<int> counts(5, 0);
  for (int i = 0; i < 5000; ++i) {
    const std::uint64_t k = gen.below(5);
    ASSERT_LT(k, 5u);
    ++counts[k];
  }
  for (int c : counts) EXPECT_NEAR(c, 1000, 150);
}

}  // namespace
