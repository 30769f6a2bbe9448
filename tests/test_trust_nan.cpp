// Issue 12, items 4 and 5: NaN and infinities through max, softmax, log_softmax, logsumexp and
// cross_entropy_with_logits, as PyTorch gives them. Each NaNClosedForm test is a regression test
// that failed before its fix (named after what it guards); the TorchParity cases compare values
// and gradients with PyTorch float64 itself (the oracle matches NaN with NaN and inf with inf).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

#include "test_inputs.hpp"
#include "torch_oracle.hpp"

namespace {

using namespace tapegrad;               // NOLINT: the ops read best unqualified
using namespace tapegrad::test_inputs;  // NOLINT
using tapegrad::test::Outputs;
using tapegrad::test::TorchOracle;
using Span = std::span<const Tensor>;

constexpr double nan = std::numeric_limits<double>::quiet_NaN();
constexpr double inf = std::numeric_limits<double>::infinity();

Tensor leaf(std::vector<double> v, const Shape& shape) {
  return from_values(std::move(v), shape).requires_grad_();
}
Tensor constant(std::vector<double> v, const Shape& shape) {
  return from_values(std::move(v), shape);
}

// d sum(f(x)) / dx, on a fresh tape.
std::vector<double> grad_of_sum(const Tensor& x, const std::function<Tensor(const Tensor&)>& f) {
  Tensor copy = x.detach().requires_grad_();
  Tape tape;
  sum(f(copy)).backward();
  return {copy.grad().values().begin(), copy.grad().values().end()};
}

bool all_nan(std::span<const double> v) {
  for (double d : v) {
    if (!std::isnan(d)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Item 4: max propagates NaN wherever it is (std::max(m, v) drops a NaN v unless it comes first).

TEST(NaNClosedForm, MaxOfAllElementsIsNaNWhereverTheNaNIs) {
  for (std::size_t at = 0; at < 4; ++at) {
    SCOPED_TRACE(fmt::format("NaN at {}", at));
    std::vector<double> v = {1.0, 5.0, -2.0, 3.0};
    v[at] = nan;
    const Tensor x = leaf(v, Shape{4});
    EXPECT_TRUE(std::isnan(max(x).item()));
    // torch.amax: no element equals NaN, so the gradient (g / count) * mask is 0/0 everywhere.
    EXPECT_TRUE(all_nan(grad_of_sum(x, [](const Tensor& t) { return max(t); })));
  }
}

TEST(NaNClosedForm, MaxAlongAnAxisIsNaNOnlyInTheLinesHoldingANaN) {
  // [[1, NaN, 3], [4, 2, 4]]: axis 1 -> [NaN, 4]; axis 0 -> [4, NaN, 4].
  const Tensor x = leaf({1.0, nan, 3.0, 4.0, 2.0, 4.0}, Shape{2, 3});
  const Tensor rows = max(x, 1);
  EXPECT_TRUE(std::isnan(rows.values()[0]));
  EXPECT_EQ(rows.values()[1], 4.0);
  const std::vector<double> g1 = grad_of_sum(x, [](const Tensor& t) { return max(t, -1); });
  EXPECT_TRUE(all_nan(std::span(g1).first(3)));
  EXPECT_EQ(g1[3], 0.5);  // the tie 4, 4 still shares the gradient
  EXPECT_EQ(g1[4], 0.0);
  EXPECT_EQ(g1[5], 0.5);
  const Tensor cols = max(x, 0, true);
  EXPECT_EQ(cols.shape(), (Shape{1, 3}));
  EXPECT_EQ(cols.values()[0], 4.0);
  EXPECT_TRUE(std::isnan(cols.values()[1]));
  EXPECT_EQ(cols.values()[2], 4.0);
  const std::vector<double> g0 = grad_of_sum(x, [](const Tensor& t) { return max(t, 0); });
  EXPECT_EQ(g0[0], 0.0);
  EXPECT_TRUE(std::isnan(g0[1]) && std::isnan(g0[4]));
  EXPECT_EQ(g0[3], 1.0);
  EXPECT_EQ(g0[2], 0.0);
  EXPECT_EQ(g0[5], 1.0);
}

// ---------------------------------------------------------------------------------------------
// Item 5: masked (-inf) logits and infinite ones.

TEST(NaNClosedForm, LogsumexpOfAnAllMinusInfRowIsMinusInf) {
  const Tensor x = constant({-inf, -inf, -inf, 0.0, 0.0, 0.0}, Shape{2, 3});
  const Tensor y = logsumexp(x, 1);
  EXPECT_EQ(y.values()[0], -inf);
  EXPECT_DOUBLE_EQ(y.values()[1], std::log(3.0));
}

TEST(NaNClosedForm, LogsumexpWithAPlusInfElementIsPlusInf) {
  const Tensor x = constant({1.0, inf, 2.0, -inf, inf, 0.0, inf, inf, inf}, Shape{3, 3});
  const Tensor y = logsumexp(x, -1);
  EXPECT_EQ(y.values()[0], inf);
  EXPECT_EQ(y.values()[1], inf);
  EXPECT_EQ(y.values()[2], inf);
}

TEST(NaNClosedForm, CrossEntropyWithAMaskedLogitAndClassIndexTargetsIsFinite) {
  // Row 0: class 1 masked, target 0. Row 1: only class 1 left, target 1 (loss 0).
  const Tensor z = leaf({1.0, -inf, 2.0, -inf, 0.0, -inf}, Shape{2, 3});
  const Tensor target = constant({0.0, 1.0}, Shape{2});
  Tape tape;
  const Tensor loss = nn::cross_entropy_with_logits(z, target, nn::Reduction::none);
  const double lse = std::log(std::exp(1.0) + std::exp(2.0));
  EXPECT_DOUBLE_EQ(loss.values()[0], lse - 1.0);
  EXPECT_EQ(loss.values()[1], 0.0);
  sum(loss).backward();
  const std::span<const double> g = z.grad().values();
  const double p0 = std::exp(1.0 - lse), p2 = std::exp(2.0 - lse);
  EXPECT_DOUBLE_EQ(g[0], p0 - 1.0);
  EXPECT_EQ(g[1], 0.0);
  EXPECT_DOUBLE_EQ(g[2], p2);
  EXPECT_EQ(g[3], 0.0);
  EXPECT_EQ(g[4], 0.0);
  EXPECT_EQ(g[5], 0.0);
}

TEST(NaNClosedForm, CrossEntropyWithAMaskedLogitAndOneHotTargetsEqualsTheIndexForm) {
  // PyTorch 1.13 gives NaN here (its probability-target path computes 0 * -inf) while its own
  // gradient is the index form's; we give the index form's value too (docs/decisions.md).
  const Tensor z = leaf({1.0, -inf, 2.0, 0.5, 0.25, -inf}, Shape{2, 3});
  const Tensor one_hot_t = constant({1.0, 0.0, 0.0, 0.0, 1.0, 0.0}, Shape{2, 3});
  const Tensor index_t = constant({0.0, 1.0}, Shape{2});
  const Tensor a = nn::cross_entropy_with_logits(z, one_hot_t, nn::Reduction::none);
  const Tensor b = nn::cross_entropy_with_logits(z, index_t, nn::Reduction::none);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(std::isfinite(a.values()[i]));
    EXPECT_EQ(a.values()[i], b.values()[i]);
  }
}

// ---------------------------------------------------------------------------------------------
// PyTorch itself, on NaN, -inf (masked), fully masked rows and +inf.

// Rows of 4 that exercise every case: finite, one masked, all but one masked, fully masked,
// +inf, +inf and -inf, NaN.
Tensor masked_rows() {
  return leaf({0.5,  -1.0, 2.0,  0.25,  // finite
               1.0,  -inf, 2.0,  -0.5,  // one masked
               -inf, 0.3,  -inf, -inf,  // all but one masked
               -inf, -inf, -inf, -inf,  // fully masked
               1.0,  inf,  2.0,  0.0,   // +inf
               -inf, inf,  0.0,  1.0,   // +inf and -inf
               nan,  1.0,  2.0,  3.0},  // NaN
              Shape{7, 4});
}

TEST(TorchParity, MaxAndAmaxWithNaNAndInfinities) {
  TorchOracle oracle;
  const auto x = [] {
    return leaf({1.0, nan, 3.0, 3.0, -inf, -inf, -inf, 2.0, 2.0, inf, inf, 0.0, nan, nan, 1.0},
                Shape{3, 5});
  };
  oracle.add("max all with NaN", "torch.amax(x0)", {x()},
             [](Span t) { return Outputs{max(t[0])}; });
  for (std::int64_t axis : {0, 1, -1, -2}) {
    oracle.add(fmt::format("max axis {} with NaN", axis), fmt::format("torch.amax(x0, {})", axis),
               {x()}, [axis](Span t) { return Outputs{max(t[0], axis)}; });
    oracle.add(fmt::format("max axis {} keepdim", axis),
               fmt::format("torch.amax(x0, {}, keepdim=True)", axis), {x()},
               [axis](Span t) { return Outputs{max(t[0], axis, true)}; });
  }
  oracle.add("max first element NaN", "torch.amax(x0)", {leaf({nan, 1.0, 2.0}, Shape{3})},
             [](Span t) { return Outputs{max(t[0])}; });
  oracle.add("max last element NaN", "torch.amax(x0)", {leaf({1.0, 2.0, nan}, Shape{3})},
             [](Span t) { return Outputs{max(t[0])}; });
  const auto r = oracle.run(1e-12);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_EQ(r.cases, 11u);
  fmt::print("TorchParity.MaxAndAmaxWithNaNAndInfinities: {} cases, worst error {:.3g}\n", r.cases,
             r.worst_error);
}

TEST(TorchParity, SoftmaxLogSoftmaxLogsumexpWithMaskedAndInfiniteLogits) {
  TorchOracle oracle;
  oracle.add("softmax", "torch.softmax(x0, -1)", {masked_rows()},
             [](Span t) { return Outputs{softmax(t[0], -1)}; });
  oracle.add("log_softmax", "torch.log_softmax(x0, -1)", {masked_rows()},
             [](Span t) { return Outputs{log_softmax(t[0], -1)}; });
  oracle.add("logsumexp", "torch.logsumexp(x0, -1)", {masked_rows()},
             [](Span t) { return Outputs{logsumexp(t[0], -1)}; });
  oracle.add("logsumexp keepdim", "torch.logsumexp(x0, 1, keepdim=True)", {masked_rows()},
             [](Span t) { return Outputs{logsumexp(t[0], 1, true)}; });
  // Along axis 0 the masked entries are spread over the columns instead.
  oracle.add("softmax axis 0", "torch.softmax(x0, 0)", {masked_rows()},
             [](Span t) { return Outputs{softmax(t[0], 0)}; });
  oracle.add("log_softmax axis 0", "torch.log_softmax(x0, 0)", {masked_rows()},
             [](Span t) { return Outputs{log_softmax(t[0], 0)}; });
  oracle.add("logsumexp axis 0", "torch.logsumexp(x0, 0)", {masked_rows()},
             [](Span t) { return Outputs{logsumexp(t[0], 0)}; });
  // The attention shape: scores with a causal mask, softmax, times values.
  const Tensor scores = leaf({0.1, -inf, -inf, 0.4, -0.2, -inf, 1.0, 0.3, -0.7}, Shape{3, 3});
  oracle.add("masked attention", "torch.softmax(x0, -1) @ x1", {scores, normal({3, 2}, 5)},
             [](Span t) { return Outputs{matmul(softmax(t[0], -1), t[1])}; });
  const auto r = oracle.run(1e-12);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_EQ(r.cases, 8u);
  fmt::print(
      "TorchParity.SoftmaxLogSoftmaxLogsumexpWithMaskedAndInfiniteLogits: {} cases, worst "
      "error {:.3g}\n",
      r.cases, r.worst_error);
}

TEST(TorchParity, CrossEntropyWithLogitsWithMaskedAndInfiniteLogits) {
  TorchOracle oracle;
  // Targets per row of masked_rows(): the target class is never masked except in row 3 (fully
  // masked) and row 2 picks the one class left.
  const Tensor index = constant({2.0, 0.0, 1.0, 0.0, 3.0, 1.0, 2.0}, Shape{7});
  for (const char* reduction : {"none", "mean", "sum"}) {
    const nn::Reduction red = std::string(reduction) == "none"   ? nn::Reduction::none
                              : std::string(reduction) == "mean" ? nn::Reduction::mean
                                                                 : nn::Reduction::sum;
    oracle.add(fmt::format("index targets, {}", reduction),
               fmt::format("F.cross_entropy(x0, x1.long(), reduction='{}')", reduction),
               {masked_rows(), index},
               [red](Span t) { return Outputs{nn::cross_entropy_with_logits(t[0], t[1], red)}; });
  }
  // A masked target class: the loss is +inf and the gradient stays finite (softmax - one_hot).
  oracle.add("masked target class", "F.cross_entropy(x0, x1.long(), reduction='none')",
             {leaf({1.0, -inf, 2.0, -inf, 0.5, 0.0}, Shape{2, 3}), constant({1.0, 0.0}, Shape{2})},
             [](Span t) {
               return Outputs{nn::cross_entropy_with_logits(t[0], t[1], nn::Reduction::none)};
             });
  // One-hot targets: PyTorch's value is NaN there (0 * -inf in its probability path), its
  // gradient is the index form's; we match the index form in both (docs/decisions.md), so the
  // torch side is the index form.
  oracle.add("one-hot targets", "F.cross_entropy(x0, x1.argmax(-1), reduction='none')",
             {masked_rows(), one_hot(index, 4)}, [](Span t) {
               return Outputs{nn::cross_entropy_with_logits(t[0], t[1], nn::Reduction::none)};
             });
  // ... and PyTorch's own gradient with one-hot targets (its value is the NaN) is ours.
  oracle.add("PyTorch's one-hot gradient",
             "torch.autograd.grad(F.cross_entropy(x0, x1, reduction='sum'), x0)[0]",
             {masked_rows(), one_hot(index, 4)}, [](Span t) {
               return Outputs{
                   grad(nn::cross_entropy_with_logits(t[0], t[1], nn::Reduction::sum), {t[0]})[0]};
             });
  // Soft targets, zero on the masked classes: -sum_c t_c log_softmax_c with 0 * -inf taken as 0.
  const Tensor soft = constant({0.1, 0.2, 0.3,  0.4,  // finite
                                0.5, 0.0, 0.25, 0.25, 0.0, 1.0, 0.0,  0.0,  0.25, 0.25, 0.25, 0.25,
                                0.1, 0.2, 0.3,  0.4,  0.0, 0.5, 0.25, 0.25, 0.4,  0.3,  0.2,  0.1},
                               Shape{7, 4});
  oracle.add("soft targets", "-(torch.log_softmax(x0, -1).masked_fill(x1 == 0, 0) * x1).sum(-1)",
             {masked_rows(), soft}, [](Span t) {
               return Outputs{nn::cross_entropy_with_logits(t[0], t[1], nn::Reduction::none)};
             });
  // Soft targets with mass on a masked class: +inf, gradient finite; and d/dtarget.
  oracle.add("soft target on a masked class", "F.cross_entropy(x0, x1, reduction='none')",
             {leaf({1.0, -inf, 2.0}, Shape{1, 3}), leaf({0.2, 0.3, 0.5}, Shape{1, 3})}, [](Span t) {
               return Outputs{nn::cross_entropy_with_logits(t[0], t[1], nn::Reduction::none)};
             });
  const auto r = oracle.run(1e-12);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_EQ(r.cases, 8u);
  fmt::print(
      "TorchParity.CrossEntropyWithLogitsWithMaskedAndInfiniteLogits: {} cases, worst "
      "error {:.3g}\n",
      r.cases, r.worst_error);
}

}  // namespace
