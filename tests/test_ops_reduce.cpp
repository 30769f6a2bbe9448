// The reductions of issue 13: min / amin, argmax / argmin, var, std_dev (and max / amax beside
// them), checked by finite differences (OpsGradCheck, SecondOrderGradCheck) over several shapes
// and every axis, negative too; by closed forms (ties, NaN, constant lines); against PyTorch
// float64 including NaN and infinite inputs (TorchParity); and for misuse (Misuse).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
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
using Inputs = std::vector<Tensor>;
using Span = std::span<const Tensor>;

constexpr double nan = std::numeric_limits<double>::quiet_NaN();
constexpr double inf = std::numeric_limits<double>::infinity();

std::vector<Shape> shapes() {
  return {Shape{5}, Shape{3, 4}, Shape{2, 3, 4}};
}

// Every axis of `shape`, from -rank to rank - 1.
std::vector<std::int64_t> every_axis(const Shape& shape) {
  std::vector<std::int64_t> axes;
  const auto rank = static_cast<std::int64_t>(shape.rank());
  for (std::int64_t a = -rank; a < rank; ++a) axes.push_back(a);
  return axes;
}

std::int64_t axis_size(const Shape& shape, std::int64_t axis) {
  const auto rank = static_cast<std::int64_t>(shape.rank());
  return shape[static_cast<std::size_t>(axis < 0 ? axis + rank : axis)];
}

// The Jacobian entries gradcheck must have compared: numel(f) times the elements of the inputs.
std::size_t entries(const Function& f, const Inputs& inputs) {
  Tape tape;
  std::size_t in = 0;
  for (const Tensor& t : inputs) in += t.requires_grad() ? t.numel() : 0;
  return in * f(inputs).numel();
}

::testing::AssertionResult GradcheckPasses(const Function& f, const Inputs& inputs) {
  const GradcheckResult r = gradcheck(f, inputs);
  if (!r.passed) return ::testing::AssertionFailure() << r.report;
  if (r.elements_checked != entries(f, inputs)) {
    return ::testing::AssertionFailure() << "gradcheck compared " << r.elements_checked
                                         << " entries, expected " << entries(f, inputs);
  }
  return ::testing::AssertionSuccess();
}

// gradgradcheck of f and of square(f): the second makes the rule carry a gradient that depends
// on the inputs even where f's own second derivative is zero.
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

Tensor leaf(std::vector<double> v, const Shape& shape) {
  return from_values(std::move(v), shape).requires_grad_();
}

std::vector<double> values(const Tensor& t) {
  return {t.values().begin(), t.values().end()};
}

// d sum(f(x) * seed) / dx on a fresh tape, seed 1 by default.
std::vector<double> grad_of(const Tensor& x, const std::function<Tensor(const Tensor&)>& f) {
  Tensor copy = x.detach().requires_grad_();
  Tape tape;
  sum(f(copy)).backward();
  return values(copy.grad());
}

// Passes when `f` throws exactly an `E` whose message contains every fragment.
template <class E>
::testing::AssertionResult ThrowsWith(const std::function<void()>& f,
                                      const std::vector<std::string>& fragments) {
  try {
    f();
  } catch (const E& e) {
    const std::string what = e.what();
    for (const std::string& fragment : fragments) {
      if (what.find(fragment) == std::string::npos) {
        return ::testing::AssertionFailure() << "\"" << what << "\" lacks \"" << fragment << "\"";
      }
    }
    return ::testing::AssertionSuccess() << what;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw another type: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

#define EXPECT_TG_THROW(statement, ErrorType, ...)                              \
  EXPECT_TRUE(ThrowsWith<ErrorType>([&] { (void)(statement); }, {__VA_ARGS__})) \
      << "statement: " #statement

// ---------------------------------------------------------------------------------------------
// OpsGradCheck: first order, every shape and axis.

TEST(OpsGradCheck, MinAndMaxEveryAxisAndAllElements) {
  std::uint64_t seed = 100;
  for (const Shape& shape : shapes()) {
    for (std::int64_t axis : every_axis(shape)) {
      for (bool keepdim : {false, true}) {
        SCOPED_TRACE(fmt::format("shape {} axis {} keepdim {}", shape, axis, keepdim));
        const Tensor x = distinct(shape, seed++);
        EXPECT_TRUE(
            GradcheckPasses([&](const Inputs& in) { return min(in[0], axis, keepdim); }, {x}));
        EXPECT_TRUE(
            GradcheckPasses([&](const Inputs& in) { return amin(in[0], axis, keepdim); }, {x}));
        EXPECT_TRUE(
            GradcheckPasses([&](const Inputs& in) { return amax(in[0], axis, keepdim); }, {x}));
      }
    }
  }
  for (const Shape& shape : {Shape{}, Shape{5}, Shape{3, 4}, Shape{2, 3, 4}}) {
    SCOPED_TRACE(fmt::format("all elements of {}", shape));
    const Tensor x = distinct(shape, seed++);
    EXPECT_TRUE(GradcheckPasses([](const Inputs& in) { return min(in[0]); }, {x}));
    EXPECT_TRUE(GradcheckPasses([](const Inputs& in) { return amin(in[0]); }, {x}));
    EXPECT_TRUE(GradcheckPasses([](const Inputs& in) { return amax(in[0]); }, {x}));
  }
}

TEST(OpsGradCheck, VarAndStdDevEveryAxisAndCorrection) {
  std::uint64_t seed = 200;
  for (const Shape& shape : shapes()) {
    for (std::int64_t axis : every_axis(shape)) {
      for (double correction : {0.0, 1.0, 2.0, -1.0}) {
        if (static_cast<double>(axis_size(shape, axis)) - correction <= 0.0) continue;
        for (bool keepdim : {false, true}) {
          SCOPED_TRACE(fmt::format("shape {} axis {} correction {} keepdim {}", shape, axis,
                                   correction, keepdim));
          const Tensor x = normal(shape, seed++);
          EXPECT_TRUE(GradcheckPasses(
              [&](const Inputs& in) { return var(in[0], axis, correction, keepdim); }, {x}));
          EXPECT_TRUE(GradcheckPasses(
              [&](const Inputs& in) { return std_dev(in[0], axis, correction, keepdim); }, {x}));
        }
      }
    }
  }
  for (const Shape& shape : {Shape{5}, Shape{3, 4}, Shape{2, 3, 4}}) {
    for (double correction : {0.0, 1.0, 2.5}) {
      SCOPED_TRACE(fmt::format("all elements of {}, correction {}", shape, correction));
      const Tensor x = normal(shape, seed++);
      EXPECT_TRUE(GradcheckPasses(
          [&](const Inputs& in) { return var(in[0], {.correction = correction}); }, {x}));
      EXPECT_TRUE(GradcheckPasses(
          [&](const Inputs& in) { return std_dev(in[0], {.correction = correction}); }, {x}));
    }
  }
}

// The reductions inside a composition, with their output used twice (gradient accumulation).
TEST(OpsGradCheck, ReductionsComposed) {
  const Tensor x = normal({3, 4}, 300);
  const Tensor w = normal({4}, 301);
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& in) {
        const Tensor z = in[0] * in[1];
        const Tensor s = std_dev(z, -1, 1.0, true);
        return sum((z - mean(z, -1, true)) / s) + sum(var(z, 0)) * sum(min(z, 1));
      },
      {x, w}));
}

// ---------------------------------------------------------------------------------------------
// SecondOrderGradCheck: the rules are differentiable again.

TEST(SecondOrderGradCheck, VarAndStdDevEveryAxis) {
  std::uint64_t seed = 400;
  for (const Shape& shape : {Shape{4}, Shape{3, 4}, Shape{2, 3, 2}}) {
    for (std::int64_t axis : every_axis(shape)) {
      for (double correction : {0.0, 1.0}) {
        SCOPED_TRACE(fmt::format("shape {} axis {} correction {}", shape, axis, correction));
        const Tensor x = normal(shape, seed);
        EXPECT_TRUE(GradgradPasses([&](const Inputs& in) { return var(in[0], axis, correction); },
                                   {x}, seed));
        EXPECT_TRUE(GradgradPasses(
            [&](const Inputs& in) { return std_dev(in[0], axis, correction, true); }, {x}, seed));
        ++seed;
      }
    }
    SCOPED_TRACE(fmt::format("all elements of {}", shape));
    const Tensor x = normal(shape, seed++);
    EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return var(in[0]); }, {x}, seed));
    EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return std_dev(in[0], {.correction = 0}); },
                               {x}, seed));
  }
}

TEST(SecondOrderGradCheck, MinEveryAxis) {
  std::uint64_t seed = 500;
  for (const Shape& shape : {Shape{4}, Shape{3, 4}, Shape{2, 3, 2}}) {
    for (std::int64_t axis : every_axis(shape)) {
      SCOPED_TRACE(fmt::format("shape {} axis {}", shape, axis));
      const Tensor x = distinct(shape, seed);
      EXPECT_TRUE(GradgradPasses([&](const Inputs& in) { return min(in[0], axis); }, {x}, seed));
      ++seed;
    }
    const Tensor x = distinct(shape, seed++);
    EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return amin(in[0]); }, {x}, seed));
  }
}

// ---------------------------------------------------------------------------------------------
// ClosedForm: ties, NaN, infinities, constant lines, and the constants argmax / argmin.

TEST(ReduceClosedForm, ArgmaxAndArgminTakeTheFirstIndexOnTiesAndNaNAsTheExtreme) {
  const Tensor x = from_values({1.0, 3.0, 3.0, 0.0,      //
                                2.0, nan, 5.0, nan,      //
                                -inf, -inf, 1.0, -inf},  //
                               Shape{3, 4});
  EXPECT_EQ(values(argmax(x, 1)), (std::vector<double>{1, 1, 2}));
  EXPECT_EQ(values(argmin(x, 1)), (std::vector<double>{3, 1, 0}));
  EXPECT_EQ(values(argmax(x, -2)), (std::vector<double>{1, 1, 1, 1}));
  EXPECT_EQ(values(argmin(x, 0)), (std::vector<double>{2, 1, 2, 1}));
  EXPECT_EQ(argmax(x, 1).shape(), Shape{3});
  EXPECT_EQ(argmax(x, 1, true).shape(), (Shape{3, 1}));
  EXPECT_EQ(argmin(x, 0, true).shape(), (Shape{1, 4}));
  // Without an axis: the flat index, shape [] (the first NaN is at flat index 5).
  EXPECT_EQ(argmax(x).shape(), Shape{});
  EXPECT_EQ(argmax(x).item(), 5.0);
  EXPECT_EQ(argmin(x).item(), 5.0);
  const Tensor y = tensor({{4.0, -1.0, 7.0}, {7.0, -1.0, 0.5}});
  EXPECT_EQ(argmax(y).item(), 2.0);
  EXPECT_EQ(argmin(y).item(), 1.0);
  EXPECT_EQ(argmax(scalar(3.0)).item(), 0.0);
}

TEST(ReduceClosedForm, ArgmaxIsAConstantThatNeverEntersTheTape) {
  const Tensor x = normal({3, 4}, 600);
  Tape tape;
  const Tensor a = argmax(x, 1);
  const Tensor b = argmin(x);
  EXPECT_EQ(tape.size(), 0u);
  EXPECT_FALSE(a.requires_grad());
  EXPECT_FALSE(b.requires_grad());
  EXPECT_TRUE(a.is_leaf());
  // Its indices feed the index ops: one_hot(argmax) picks each row's max.
  const Tensor picked = sum(x * one_hot(a, 4), 1);
  EXPECT_EQ(values(picked), values(max(x, 1)));
}

TEST(ReduceClosedForm, MinSharesTiesAndIsNaNOnLinesWithANaN) {
  EXPECT_EQ(grad_of(leaf({2.0, 1.0, 1.0, 3.0}, Shape{4}), [](const Tensor& t) { return min(t); }),
            (std::vector<double>{0.0, 0.5, 0.5, 0.0}));
  const Tensor x = leaf({2.0, nan, 1.0, -inf, 4.0, -inf}, Shape{2, 3});
  const Tensor y = min(x, 1);
  EXPECT_TRUE(std::isnan(y.values()[0]));
  EXPECT_EQ(y.values()[1], -inf);
  const std::vector<double> g = grad_of(x, [](const Tensor& t) { return amin(t, -1); });
  for (std::size_t i = 0; i < 3; ++i) EXPECT_TRUE(std::isnan(g[i])) << i;
  EXPECT_EQ((std::vector<double>(g.begin() + 3, g.end())), (std::vector<double>{0.5, 0.0, 0.5}));
  // The NaN is found at every position, as max's is (issue 12 item 4).
  for (std::size_t at = 0; at < 3; ++at) {
    std::vector<double> v = {1.0, 2.0, 3.0};
    v[at] = nan;
    EXPECT_TRUE(std::isnan(min(from_values(v, Shape{3})).item())) << at;
  }
}

TEST(ReduceClosedForm, VarAndStdDevOfKnownNumbers) {
  // [1, 2, 4]: mean 7/3, squared deviations 16/9 + 1/9 + 25/9 = 42/9.
  const Tensor x = leaf({1.0, 2.0, 4.0}, Shape{3});
  EXPECT_DOUBLE_EQ(var(x).item(), 7.0 / 3.0);
  EXPECT_DOUBLE_EQ(var(x, {.correction = 0}).item(), 14.0 / 9.0);
  EXPECT_DOUBLE_EQ(var(x, 0, 2.0).item(), 14.0 / 3.0);
  EXPECT_DOUBLE_EQ(var(x, 0, -1.0).item(), 7.0 / 6.0);
  EXPECT_DOUBLE_EQ(std_dev(x).item(), std::sqrt(7.0 / 3.0));
  // PyTorch's positional `unbiased` reads the same: false is correction 0.
  EXPECT_DOUBLE_EQ(var(x, 0, false).item(), 14.0 / 9.0);
  // d var / dx = 2 (x - mean) / (n - 1) = x - mean here.
  const std::vector<double> g = grad_of(x, [](const Tensor& t) { return var(t); });
  EXPECT_DOUBLE_EQ(g[0], -4.0 / 3.0);
  EXPECT_DOUBLE_EQ(g[1], -1.0 / 3.0);
  EXPECT_DOUBLE_EQ(g[2], 5.0 / 3.0);
  // d std / dx = (x - mean) / ((n - 1) std).
  const std::vector<double> gs = grad_of(x, [](const Tensor& t) { return std_dev(t); });
  const double s = std::sqrt(7.0 / 3.0);
  EXPECT_DOUBLE_EQ(gs[0], -4.0 / 3.0 / (2.0 * s));
  EXPECT_DOUBLE_EQ(gs[2], 5.0 / 3.0 / (2.0 * s));
  // Per axis: rows [1, 2, 4] and [3, 3, 3]; keepdim keeps [2, 1].
  const Tensor m = leaf({1.0, 2.0, 4.0, 3.0, 3.0, 3.0}, Shape{2, 3});
  const Tensor v = var(m, 1, 1.0, true);
  EXPECT_EQ(v.shape(), (Shape{2, 1}));
  EXPECT_DOUBLE_EQ(v.values()[0], 7.0 / 3.0);
  EXPECT_EQ(v.values()[1], 0.0);
}

TEST(ReduceClosedForm, StdDevOfAConstantLineHasGradientZeroNotNaN) {
  // sqrt's derivative is infinite at 0, but every deviation is 0: PyTorch sends 0, and so do we.
  const Tensor x = leaf({3.0, 3.0, 3.0, 1.0, 2.0, 4.0}, Shape{2, 3});
  EXPECT_EQ(std_dev(x, 1).values()[0], 0.0);
  const std::vector<double> g = grad_of(x, [](const Tensor& t) { return std_dev(t, 1); });
  EXPECT_EQ((std::vector<double>(g.begin(), g.begin() + 3)), (std::vector<double>{0, 0, 0}));
  for (double d : g) EXPECT_TRUE(std::isfinite(d));
}

TEST(ReduceClosedForm, VarWithANaNOrAnInfinityIsNaN) {
  const Tensor x = from_values({1.0, nan, 2.0, 1.0, inf, 2.0, -inf, -inf, -inf}, Shape{3, 3});
  const Tensor v = var(x, 1);
  const Tensor s = std_dev(x, -1, 0.0);
  EXPECT_EQ(v.numel(), 3u);
  for (double d : v.values()) EXPECT_TRUE(std::isnan(d));
  for (double d : s.values()) EXPECT_TRUE(std::isnan(d));
}

// ---------------------------------------------------------------------------------------------
// TorchParity: values and gradients against PyTorch float64.

TEST(TorchParity, MinArgmaxArgminVarStdDevEveryAxis) {
  TorchOracle oracle;
  std::uint64_t seed = 700;
  for (const Shape& shape : {Shape{3, 4}, Shape{2, 3, 4}}) {
    for (std::int64_t axis : every_axis(shape)) {
      for (bool keepdim : {false, true}) {
        const std::string kd = keepdim ? "True" : "False";
        const std::string at = fmt::format("{} axis {} keepdim {}", shape, axis, keepdim);
        oracle.add("min " + at, fmt::format("torch.amin(x0, {}, keepdim={})", axis, kd),
                   {distinct(shape, seed++)},
                   [=](Span x) { return Outputs{min(x[0], axis, keepdim)}; });
        oracle.add(
            "min values " + at, fmt::format("torch.min(x0, {}, keepdim={}).values", axis, kd),
            {distinct(shape, seed++)}, [=](Span x) { return Outputs{min(x[0], axis, keepdim)}; });
        oracle.add("argmax, argmin " + at,
                   fmt::format("(torch.argmax(x0, {0}, keepdim={1}), torch.argmin(x0, {0}, "
                               "keepdim={1}))",
                               axis, kd),
                   {normal(shape, seed++)}, [=](Span x) {
                     return Outputs{argmax(x[0], axis, keepdim), argmin(x[0], axis, keepdim)};
                   });
        for (int correction : {0, 1, 2}) {
          if (axis_size(shape, axis) - correction <= 0) continue;
          oracle.add(
              fmt::format("var, std correction {} {}", correction, at),
              fmt::format("(torch.var(x0, {0}, correction={1}, keepdim={2}), torch.std(x0, {0}, "
                          "correction={1}, keepdim={2}))",
                          axis, correction, kd),
              {normal(shape, seed++)}, [=](Span x) {
                return Outputs{var(x[0], axis, correction, keepdim),
                               std_dev(x[0], axis, correction, keepdim)};
              });
        }
      }
    }
  }
  for (int correction : {0, 1}) {
    oracle.add(fmt::format("var, std all elements, correction {}", correction),
               fmt::format("(torch.var(x0, dim=None, correction={0}), torch.std(x0, dim=None, "
                           "correction={0}))",
                           correction),
               {normal({3, 4}, seed++)}, [=](Span x) {
                 return Outputs{var(x[0], {.correction = static_cast<double>(correction)}),
                                std_dev(x[0], {.correction = static_cast<double>(correction)})};
               });
  }
  oracle.add("min, argmax, argmin all elements",
             "(torch.amin(x0), torch.argmax(x0), "
             "torch.argmin(x0))",
             {distinct({2, 3, 4}, seed++)}, [](Span x) {
               return Outputs{min(x[0]), argmax(x[0]), argmin(x[0])};
             });
  // Ties: amin shares the gradient; argmax / argmin take the first index.
  oracle.add("ties", "(torch.amin(x0, 1), torch.argmax(x0, 1), torch.argmin(x0, 1))",
             {leaf({1.0, 1.0, 2.0, 2.0, 5.0, 5.0, 5.0, 0.0, 3.0, 3.0, 3.0, 3.0}, Shape{3, 4})},
             [](Span x) {
               return Outputs{min(x[0], 1), argmax(x[0], 1), argmin(x[0], 1)};
             });
  // The std of a constant line: value 0, gradient 0.
  oracle.add("std of a constant line", "torch.std(x0, 1)",
             {leaf({3.0, 3.0, 3.0, 1.0, 2.0, 4.0}, Shape{2, 3})},
             [](Span x) { return Outputs{std_dev(x[0], 1)}; });
  const auto r = oracle.run(1e-12);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_GE(r.cases, 100u);
  fmt::print("TorchParity.MinArgmaxArgminVarStdDevEveryAxis: {} cases, worst error {:.3g}\n",
             r.cases, r.worst_error);
}

TEST(TorchParity, ReductionsWithNaNAndInfinities) {
  TorchOracle oracle;
  // Lines: NaN first, NaN in the middle, NaN last, -inf, +inf, both infinities, two NaNs, finite.
  const auto x = [] {
    return leaf({nan, 1.0, 2.0, -1.0, 0.5, nan, 3.0, nan, -inf, 1.0, -inf, 2.0,
                 inf, 1.0, inf, -inf, inf, 0.0, 1.0, nan, nan,  0.5, 0.25, 1.5},
                Shape{6, 4});
  };
  for (std::int64_t axis : {0, 1, -1}) {
    oracle.add(fmt::format("min, max axis {}", axis),
               fmt::format("(torch.amin(x0, {0}), torch.amax(x0, {0}))", axis), {x()}, [=](Span t) {
                 return Outputs{min(t[0], axis), max(t[0], axis)};
               });
    oracle.add(fmt::format("argmax, argmin axis {}", axis),
               fmt::format("(torch.argmax(x0, {0}), torch.argmin(x0, {0}))", axis), {x()},
               [=](Span t) {
                 return Outputs{argmax(t[0], axis), argmin(t[0], axis)};
               });
    oracle.add(fmt::format("var, std axis {}", axis),
               fmt::format("(torch.var(x0, {0}), torch.std(x0, {0}, correction=0))", axis), {x()},
               [=](Span t) {
                 return Outputs{var(t[0], axis), std_dev(t[0], axis, 0.0)};
               });
  }
  oracle.add("all elements", "(torch.amin(x0), torch.argmax(x0), torch.argmin(x0), torch.var(x0))",
             {x()}, [](Span t) {
               return Outputs{min(t[0]), argmax(t[0]), argmin(t[0]), var(t[0])};
             });
  // Infinities without NaN: the extremes are the infinities, ties of infinities share.
  oracle.add("infinities only", "(torch.amin(x0, 1), torch.amax(x0, 1), torch.argmin(x0, 1))",
             {leaf({-inf, 1.0, -inf, inf, 2.0, inf, -inf, inf, 0.0}, Shape{3, 3})}, [](Span t) {
               return Outputs{min(t[0], 1), max(t[0], 1), argmin(t[0], 1)};
             });
  const auto r = oracle.run(1e-12);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_EQ(r.cases, 11u);
  fmt::print("TorchParity.ReductionsWithNaNAndInfinities: {} cases, worst error {:.3g}\n", r.cases,
             r.worst_error);
}

// ---------------------------------------------------------------------------------------------
// Misuse: typed errors naming the op and the shape.

TEST(Misuse, ReductionsWithABadAxis) {
  const Tensor x = zeros(Shape{2, 3});
  EXPECT_TG_THROW(min(x, 2), AxisError, "min", "[2, 3]", "2");
  EXPECT_TG_THROW(amin(x, -3, true), AxisError, "min", "[2, 3]", "-3");
  EXPECT_TG_THROW(argmax(x, 2), AxisError, "argmax", "[2, 3]");
  EXPECT_TG_THROW(argmin(x, -3), AxisError, "argmin", "[2, 3]");
  EXPECT_TG_THROW(var(x, 5), AxisError, "var", "[2, 3]", "5");
  EXPECT_TG_THROW(std_dev(x, -4), AxisError, "std_dev", "[2, 3]", "-4");
  EXPECT_TG_THROW(argmax(scalar(1.0), 0), AxisError, "argmax", "[]");
}

TEST(Misuse, ReductionsOverAnEmptyAxisOrTensor) {
  const Tensor x = zeros(Shape{2, 0});
  EXPECT_TG_THROW(min(x, 1), ShapeError, "min", "[2, 0]");
  EXPECT_TG_THROW(argmax(x, 1), ShapeError, "argmax", "[2, 0]");
  EXPECT_TG_THROW(argmin(x, -1), ShapeError, "argmin", "[2, 0]");
  EXPECT_TG_THROW(var(x, 1), ShapeError, "var", "[2, 0]");
  EXPECT_TG_THROW(std_dev(x, 1, 0.0), ShapeError, "std_dev", "[2, 0]");
  EXPECT_TG_THROW(min(x), ShapeError, "min", "[2, 0]");
  EXPECT_TG_THROW(argmax(x), ShapeError, "argmax", "[2, 0]");
  EXPECT_TG_THROW(argmin(x), ShapeError, "argmin", "[2, 0]");
  EXPECT_TG_THROW(var(x), ShapeError, "var", "[2, 0]");
  EXPECT_TG_THROW(std_dev(x), ShapeError, "std_dev", "[2, 0]");
  // Along the non-empty axis there is nothing to reduce per line, but no line is empty either:
  // the result is empty too, as PyTorch.
  EXPECT_EQ(min(zeros(Shape{0, 3}), 1).shape(), Shape{0});
}

TEST(Misuse, VarWithNoDegreesOfFreedom) {
  const Tensor x = normal({2, 3}, 800);
  EXPECT_TG_THROW(var(x, 1, 3.0), ValueError, "var", "correction 3", "[2, 3]", "axis 1");
  EXPECT_TG_THROW(var(x, 0, 5.0), ValueError, "var", "correction 5", "[2, 3]");
  EXPECT_TG_THROW(std_dev(x, -1, 3.0), ValueError, "std_dev", "[2, 3]");
  // A single sample with the default (unbiased) correction: PyTorch gives NaN and a warning.
  EXPECT_TG_THROW(var(zeros(Shape{4, 1}), 1), ValueError, "var", "[4, 1]", "correction = 0");
  EXPECT_TG_THROW(var(scalar(2.0)), ValueError, "var", "the tensor holds 1", "[]");
  EXPECT_TG_THROW(std_dev(x, {.correction = 6}), ValueError, "std_dev", "[2, 3]");
  EXPECT_TG_THROW(var(x, 1, nan), ValueError, "var", "finite", "[2, 3]");
  EXPECT_TG_THROW(var(x, 1, inf), ValueError, "var", "finite", "[2, 3]");
  // Nothing was recorded by the failed calls.
  Tape tape;
  EXPECT_TG_THROW(var(x, 1, 3.0), ValueError, "var");
  EXPECT_EQ(tape.size(), 0u);
}

}  // namespace
