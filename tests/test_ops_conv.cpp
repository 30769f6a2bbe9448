// Convolution and pooling ops (issue 14): finite differences of first and second order
// (OpsGradCheck, SecondOrderGradCheck), closed forms, PyTorch float64 parity on random shapes
// (TorchParity) and every error (Misuse).
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

#include "gradcheck_asserts.hpp"
#include "test_inputs.hpp"
#include "torch_oracle.hpp"

namespace {

using namespace tapegrad;               // NOLINT: the ops read best unqualified
using namespace tapegrad::test_inputs;  // NOLINT
using tapegrad::test::Outputs;
using tapegrad::test::TorchOracle;
using Inputs = std::vector<Tensor>;
using Span = std::span<const Tensor>;

using tapegrad::test::GradcheckPasses;
using tapegrad::test::GradgradPasses;

struct ConvCase {
  const char* name;
  Shape x, w;
  bool bias;
  Conv2dOptions options;
};

// Stride, padding, dilation, groups, bias or not, non-square kernels and inputs, the 1x1 path.
std::vector<ConvCase> conv_cases() {
  return {
      {"plain 3x3, no bias", {1, 3, 5, 5}, {2, 3, 3, 3}, false, {}},
      {"stride {2,1} padding {1,2} dilation {1,2} groups 2, bias",
       {2, 4, 7, 6},
       {6, 2, 3, 2},
       true,
       {.stride = {2, 1}, .padding = {1, 2}, .dilation = {1, 2}, .groups = 2}},
      {"depthwise stride 2, non-square input",
       {1, 3, 6, 4},
       {3, 1, 2, 2},
       true,
       {.stride = 2, .groups = 3}},
      {"1x1 (direct path), bias", {2, 3, 4, 3}, {4, 3, 1, 1}, true, {}},
      {"stride 1, padding {2, 1}, dilation {1, 2}, groups 2",
       {1, 4, 5, 6},
       {4, 2, 3, 2},
       true,
       {.padding = {2, 1}, .dilation = {1, 2}, .groups = 2}},
      {"stride 1, padding beyond d (k - 1), 1-wide kernel",
       {1, 2, 4, 3},
       {3, 2, 2, 1},
       false,
       {.padding = {2, 1}}},
      {"stride 3 dropping rows, padding 1",
       {1, 2, 7, 5},
       {2, 2, 2, 3},
       false,
       {.stride = 3, .padding = 1}},
  };
}

Tensor conv_of(const ConvCase& c, const Inputs& x) {
  return conv2d(x[0], x[1], c.bias ? x[2] : Tensor(), c.options);
}

Inputs conv_inputs(const ConvCase& c, std::uint64_t seed) {
  Inputs in{normal(c.x, seed), normal(c.w, seed + 1)};
  if (c.bias) in.push_back(normal({c.w[0]}, seed + 2));
  return in;
}

TEST(OpsGradCheck, Conv2d) {
  std::uint64_t seed = 100;
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(GradcheckPasses([&](const Inputs& x) { return conv_of(c, x); },
                                conv_inputs(c, seed += 10)));
  }
}

TEST(OpsGradCheck, Conv2dUnbatched) {
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& x) {
        return conv2d(x[0], x[1], x[2], {.padding = {0, 1}});
      },
      {normal({2, 4, 3}, 1), normal({3, 2, 2, 2}, 2), normal({3}, 3)}));
}

// The gradient ops on their own, against both of their inputs; the input shape has a row and a
// column the strided convolution never reads (their gradient is 0).
TEST(OpsGradCheck, Conv2dInputAndWeight) {
  const Conv2dOptions o{.stride = 2, .padding = {1, 0}, .dilation = {1, 2}, .groups = 2};
  const Shape xs{2, 4, 6, 7}, ws{4, 2, 3, 2};
  // Ho = (6 + 2 - 3) / 2 + 1 = 3, Wo = (7 - 3) / 2 + 1 = 3
  const Shape gs{2, 4, 3, 3};
  EXPECT_TRUE(GradcheckPasses([&](const Inputs& x) { return conv2d_input(xs, x[0], x[1], o); },
                              {normal(ws, 11), normal(gs, 12)}));
  EXPECT_TRUE(GradcheckPasses([&](const Inputs& x) { return conv2d_weight(x[0], ws, x[1], o); },
                              {normal(xs, 13), normal(gs, 14)}));
}

TEST(OpsGradCheck, Conv1d) {
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& x) {
        return conv1d(x[0], x[1], x[2], {.stride = 2, .padding = 1, .dilation = 2, .groups = 2});
      },
      {normal({2, 4, 9}, 21), normal({6, 2, 3}, 22), normal({6}, 23)}));
  EXPECT_TRUE(GradcheckPasses([](const Inputs& x) { return conv1d(x[0], x[1]); },
                              {normal({3, 5}, 24), normal({2, 3, 4}, 25)}));
}

TEST(OpsGradCheck, MaxPool2d) {
  // distinct(): no ties even after a +-eps nudge, so the argmax never moves.
  const Tensor x = distinct({2, 2, 5, 6}, 31);
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& in) {
        return max_pool2d(in[0], {2, 3}, IntPair{2, 2}, {1, 1});
      },
      {x}));
  // Overlapping windows (stride 1 < kernel) share argmaxes: their gradients add.
  EXPECT_TRUE(GradcheckPasses([](const Inputs& in) { return max_pool2d(in[0], 3, 1); }, {x}));
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& in) {
        return max_pool2d(in[0], 2, IntPair{2, 2}, 1, {2, 1}, true);
      },
      {x}));
}

TEST(OpsGradCheck, AvgPool2d) {
  const Tensor x = normal({2, 2, 5, 6}, 41);
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& in) {
        return avg_pool2d(in[0], {3, 2}, IntPair{2, 1}, {1, 1});
      },
      {x}));
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& in) { return avg_pool2d(in[0], 3, 2, 1, true, false); }, {x}));
  EXPECT_TRUE(GradcheckPasses([](const Inputs& in) { return avg_pool2d(in[0], 2); },
                              {normal({3, 4, 4}, 42)}));
}

TEST(OpsGradCheck, AdaptiveAvgPool2d) {
  const Tensor x = normal({2, 3, 5, 7}, 51);
  EXPECT_TRUE(GradcheckPasses([](const Inputs& in) { return adaptive_avg_pool2d(in[0], 1); }, {x}));
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& in) {
        return adaptive_avg_pool2d(in[0], {3, 2});
      },
      {x}));
}

// ---------------------------------------------------------------------------------------------
// Second order: the rules are ops with rules

TEST(SecondOrderGradCheck, Conv2d) {
  std::uint64_t seed = 200;
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(c.name);
    seed += 10;
    EXPECT_TRUE(
        GradgradPasses([&](const Inputs& x) { return conv_of(c, x); }, conv_inputs(c, seed), seed));
  }
}

TEST(SecondOrderGradCheck, Conv2dInputAndWeight) {
  const Conv2dOptions o{.stride = {2, 1}, .padding = 1, .groups = 1};
  const Shape xs{1, 2, 5, 4}, ws{3, 2, 3, 2};
  const Shape gs{1, 3, 3, 5};  // Ho = (5 + 2 - 3) / 2 + 1 = 3, Wo = 4 + 2 - 2 + 1 = 5
  EXPECT_TRUE(GradgradPasses([&](const Inputs& x) { return conv2d_input(xs, x[0], x[1], o); },
                             {normal(ws, 61), normal(gs, 62)}, 63));
  EXPECT_TRUE(GradgradPasses([&](const Inputs& x) { return conv2d_weight(x[0], ws, x[1], o); },
                             {normal(xs, 64), normal(gs, 65)}, 66));
}

TEST(SecondOrderGradCheck, Conv1d) {
  EXPECT_TRUE(GradgradPasses(
      [](const Inputs& x) { return conv1d(x[0], x[1], x[2], {.stride = 2, .padding = 1}); },
      {normal({2, 2, 7}, 71), normal({3, 2, 3}, 72), normal({3}, 73)}, 74));
}

TEST(SecondOrderGradCheck, Pools) {
  const Tensor x = distinct({1, 2, 5, 4}, 81);
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return max_pool2d(in[0], 2, 1, 1); }, {x}, 82));
  EXPECT_TRUE(GradgradPasses(
      [](const Inputs& in) {
        return avg_pool2d(in[0], {3, 2}, IntPair{2, 1}, 1);
      },
      {x}, 83));
  EXPECT_TRUE(GradgradPasses(
      [](const Inputs& in) {
        return adaptive_avg_pool2d(in[0], {2, 3});
      },
      {x}, 84));
}

// A small CNN end to end, conv -> relu-free curve -> pool -> conv: the Hessian-vector products
// pass through every gradient op of this file.
TEST(SecondOrderGradCheck, ConvPoolConv) {
  EXPECT_TRUE(GradgradPasses(
      [](const Inputs& x) {
        const Tensor h = tanh(conv2d(x[0], x[1], Tensor(), {.padding = 1}));
        return conv2d(avg_pool2d(h, 2), x[2], Tensor(), {.groups = 1});
      },
      {normal({1, 1, 4, 4}, 91), normal({2, 1, 3, 3}, 92), normal({1, 2, 2, 2}, 93)}, 94));
}

// ---------------------------------------------------------------------------------------------
// Closed forms

TEST(ClosedForm, Conv2dDifferenceKernel) {
  // w = [[1, 0], [0, -1]]: y[i, j] = x[i, j] - x[i + 1, j + 1] = -4 on x = 1..9 row-major.
  const Tensor x = from_values({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3});
  const Tensor w = from_values({1, 0, 0, -1}, {1, 1, 2, 2});
  const Tensor y = conv2d(x, w, tensor({0.5}));
  ASSERT_EQ(y.shape(), (Shape{1, 1, 2, 2}));
  for (double v : y.values()) EXPECT_EQ(v, -3.5);
}

TEST(ClosedForm, ConvGradientsAreOps) {
  Tape tape;
  const Tensor x = normal({1, 2, 4, 4}, 1);
  const Tensor w = normal({3, 2, 3, 3}, 2);
  const auto g = grad(sum(square(conv2d(x, w))), {x, w}, {.create_graph = true});
  // The gradient is sum_to'd only when shapes differ, so the ops' own names reach the leaves.
  EXPECT_EQ(g[0].op(), "conv2d_input");
  EXPECT_EQ(g[1].op(), "conv2d_weight");
}

TEST(ClosedForm, MaxPoolTiesGoToTheFirstMax) {
  // Every window is all ones: PyTorch's index-based backward sends each window's gradient to its
  // first (top-left) element; overlapping windows (stride 1) add there.
  const Tensor x = ones({1, 1, 3, 3}).requires_grad_();
  {
    Tape tape;
    max_pool2d(x, 2, 1).backward(ones({1, 1, 2, 2}));
  }
  const std::vector<double> want{1, 1, 0, 1, 1, 0, 0, 0, 0};
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(std::vector<double>(x.grad().values().begin(), x.grad().values().end()), want);
}

TEST(ClosedForm, MaxPoolPaddingIsMinusInfinity) {
  // All inputs negative: a zero-padded max would give 0 at the borders; -inf padding keeps them.
  const Tensor x = full({1, 1, 2, 2}, -3.0);
  const Tensor y = max_pool2d(x, 2, 1, 1);  // [1, 1, 3, 3]
  ASSERT_EQ(y.shape(), (Shape{1, 1, 3, 3}));
  for (double v : y.values()) EXPECT_EQ(v, -3.0);
}

TEST(ClosedForm, AvgPoolCountIncludePad) {
  const Tensor x = ones({1, 1, 2, 2});
  // padding 1, kernel 2, stride 2: each of the 4 windows holds one input element and 3 pads.
  const Tensor with_pad = avg_pool2d(x, 2, 2, 1);
  const Tensor without_pad = avg_pool2d(x, 2, 2, 1, false, false);
  ASSERT_EQ(with_pad.shape(), (Shape{1, 1, 2, 2}));
  for (double v : with_pad.values()) EXPECT_EQ(v, 0.25);
  for (double v : without_pad.values()) EXPECT_EQ(v, 1.0);
}

// ---------------------------------------------------------------------------------------------
// PyTorch parity on random shapes

std::string pair_str(IntPair p) {
  return fmt::format("({}, {})", p.h, p.w);
}

TEST(TorchParity, Conv2dRandomShapes) {
  TorchOracle oracle;
  Generator gen(14);
  for (int k = 0; k < 24; ++k) {
    const std::int64_t groups = 1 + static_cast<std::int64_t>(gen.below(3));
    const std::int64_t cin = groups * (1 + static_cast<std::int64_t>(gen.below(3)));
    const std::int64_t cout = groups * (1 + static_cast<std::int64_t>(gen.below(3)));
    const IntPair kernel{1 + static_cast<std::int64_t>(gen.below(4)),
                         1 + static_cast<std::int64_t>(gen.below(4))};
    const IntPair stride{1 + static_cast<std::int64_t>(gen.below(3)),
                         1 + static_cast<std::int64_t>(gen.below(3))};
    const IntPair padding{static_cast<std::int64_t>(gen.below(3)),
                          static_cast<std::int64_t>(gen.below(3))};
    const IntPair dilation{1 + static_cast<std::int64_t>(gen.below(2)),
                           1 + static_cast<std::int64_t>(gen.below(2))};
    const std::int64_t n = 1 + static_cast<std::int64_t>(gen.below(3));
    // Large enough for the dilated kernel, sometimes with rows a stride skips.
    const std::int64_t h =
        dilation.h * (kernel.h - 1) + 1 + static_cast<std::int64_t>(gen.below(6));
    const std::int64_t w =
        dilation.w * (kernel.w - 1) + 1 + static_cast<std::int64_t>(gen.below(6));
    const bool bias = gen.below(2) == 1;
    const Conv2dOptions o{stride, padding, dilation, groups};
    const std::string args =
        fmt::format("stride={}, padding={}, dilation={}, groups={}", pair_str(stride),
                    pair_str(padding), pair_str(dilation), groups);
    Inputs in{normal({n, cin, h, w}, 1000 + k),
              normal({cout, cin / groups, kernel.h, kernel.w}, 2000 + k)};
    if (bias) in.push_back(normal({cout}, 3000 + k));
    oracle.add(
        fmt::format("conv2d #{}", k),
        fmt::format("F.conv2d(x0, x1, {}, {})", bias ? "x2" : "None", args), in,
        [o, bias](Span x) { return Outputs{conv2d(x[0], x[1], bias ? x[2] : Tensor(), o)}; });
  }
  // Unit stride (the common case, rare in the draws above), padding up to 3 on kernels up to 4.
  for (int k = 0; k < 12; ++k) {
    const std::int64_t groups = 1 + static_cast<std::int64_t>(gen.below(2));
    const std::int64_t cin = groups * (1 + static_cast<std::int64_t>(gen.below(3)));
    const std::int64_t cout = groups * (1 + static_cast<std::int64_t>(gen.below(3)));
    const IntPair kernel{1 + static_cast<std::int64_t>(gen.below(4)),
                         1 + static_cast<std::int64_t>(gen.below(4))};
    const IntPair padding{static_cast<std::int64_t>(gen.below(4)),
                          static_cast<std::int64_t>(gen.below(4))};
    const IntPair dilation{1 + static_cast<std::int64_t>(gen.below(2)),
                           1 + static_cast<std::int64_t>(gen.below(2))};
    const std::int64_t h =
        dilation.h * (kernel.h - 1) + 1 + static_cast<std::int64_t>(gen.below(5));
    const std::int64_t w =
        dilation.w * (kernel.w - 1) + 1 + static_cast<std::int64_t>(gen.below(5));
    const Conv2dOptions o{1, padding, dilation, groups};
    oracle.add(
        fmt::format("conv2d stride 1 #{}", k),
        fmt::format("F.conv2d(x0, x1, x2, padding={}, dilation={}, groups={})", pair_str(padding),
                    pair_str(dilation), groups),
        {normal({2, cin, h, w}, 7000 + k),
         normal({cout, cin / groups, kernel.h, kernel.w}, 8000 + k), normal({cout}, 9000 + k)},
        [o](Span x) { return Outputs{conv2d(x[0], x[1], x[2], o)}; });
  }
  // Batches whose column matrices do not fit one product (conv.cpp puts about 8 MB of them side
  // by side per dgemm): 2 samples per product here, so 3 samples make a full chunk and a partial
  // one, with groups and with a stride.
  oracle.add("conv2d, 2 + 1 samples per product, groups 2",
             "F.conv2d(x0, x1, x2, padding=(2, 2), groups=2)",
             {normal({3, 32, 32, 32}, 9500), normal({8, 16, 5, 5}, 9501), normal({8}, 9502)},
             [](Span x) { return Outputs{conv2d(x[0], x[1], x[2], {.padding = 2, .groups = 2})}; });
  oracle.add("conv2d, 2 + 1 samples per product, stride 2",
             "F.conv2d(x0, x1, None, stride=(1, 2), padding=(2, 1))",
             {normal({3, 20, 40, 56}, 9600), normal({6, 20, 4, 5}, 9601)}, [](Span x) {
               return Outputs{conv2d(x[0], x[1], Tensor(), {.stride = {1, 2}, .padding = {2, 1}})};
             });
  const auto r = oracle.run(1e-12);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_EQ(r.cases, 38u);
  std::printf("conv2d parity: %s", r.report.c_str());
}

TEST(TorchParity, ConvGradientOpsAndConv1d) {
  TorchOracle oracle;
  const Conv2dOptions o{.stride = {2, 3}, .padding = {1, 2}, .dilation = {2, 1}, .groups = 2};
  const std::string args = "stride=(2, 3), padding=(1, 2), dilation=(2, 1), groups=2";
  const Shape xs{2, 4, 9, 8}, ws{6, 2, 3, 3};
  const Shape gs{2, 6, 4, 4};  // Ho = (9 + 2 - 5) / 2 + 1 = 4, Wo = (8 + 4 - 3) / 3 + 1 = 4
  oracle.add("conv2d_input",
             fmt::format("torch.nn.grad.conv2d_input([2, 4, 9, 8], x0, x1, {})", args),
             {normal(ws, 1), normal(gs, 2)},
             [&](Span x) { return Outputs{conv2d_input(xs, x[0], x[1], o)}; });
  oracle.add("conv2d_weight",
             fmt::format("torch.nn.grad.conv2d_weight(x0, [6, 2, 3, 3], x1, {})", args),
             {normal(xs, 3), normal(gs, 4)},
             [&](Span x) { return Outputs{conv2d_weight(x[0], ws, x[1], o)}; });
  oracle.add("conv1d", "F.conv1d(x0, x1, x2, stride=2, padding=3, dilation=2, groups=3)",
             {normal({2, 6, 11}, 5), normal({9, 2, 4}, 6), normal({9}, 7)}, [](Span x) {
               return Outputs{conv1d(x[0], x[1], x[2],
                                     {.stride = 2, .padding = 3, .dilation = 2, .groups = 3})};
             });
  oracle.add("conv1d unbatched", "F.conv1d(x0, x1)", {normal({3, 6}, 8), normal({2, 3, 2}, 9)},
             [](Span x) { return Outputs{conv1d(x[0], x[1])}; });
  oracle.add("conv2d unbatched", "F.conv2d(x0, x1, x2, padding=1)",
             {normal({2, 4, 5}, 10), normal({3, 2, 3, 3}, 11), normal({3}, 12)},
             [](Span x) { return Outputs{conv2d(x[0], x[1], x[2], {.padding = 1})}; });
  const auto r = oracle.run(1e-12);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_EQ(r.cases, 5u);
}

TEST(TorchParity, PoolsRandomShapes) {
  TorchOracle oracle;
  Generator gen(1414);
  for (int k = 0; k < 12; ++k) {
    const IntPair kernel{1 + static_cast<std::int64_t>(gen.below(4)),
                         1 + static_cast<std::int64_t>(gen.below(4))};
    const IntPair stride{1 + static_cast<std::int64_t>(gen.below(3)),
                         1 + static_cast<std::int64_t>(gen.below(3))};
    const IntPair padding{
        static_cast<std::int64_t>(gen.below(static_cast<std::uint64_t>(kernel.h / 2 + 1))),
        static_cast<std::int64_t>(gen.below(static_cast<std::uint64_t>(kernel.w / 2 + 1)))};
    const IntPair dilation{1 + static_cast<std::int64_t>(gen.below(2)),
                           1 + static_cast<std::int64_t>(gen.below(2))};
    const bool ceil = gen.below(2) == 1;
    const bool include_pad = gen.below(2) == 1;
    const Shape s{1 + static_cast<std::int64_t>(gen.below(2)),
                  1 + static_cast<std::int64_t>(gen.below(3)),
                  dilation.h * (kernel.h - 1) + 1 + static_cast<std::int64_t>(gen.below(5)),
                  dilation.w * (kernel.w - 1) + 1 + static_cast<std::int64_t>(gen.below(5))};
    oracle.add(fmt::format("max_pool2d #{}", k),
               fmt::format("F.max_pool2d(x0, {}, {}, {}, {}, ceil_mode={})", pair_str(kernel),
                           pair_str(stride), pair_str(padding), pair_str(dilation),
                           ceil ? "True" : "False"),
               {distinct(s, 4000 + k)}, [=](Span x) {
                 return Outputs{max_pool2d(x[0], kernel, stride, padding, dilation, ceil)};
               });
    oracle.add(fmt::format("avg_pool2d #{}", k),
               fmt::format("F.avg_pool2d(x0, {}, {}, {}, ceil_mode={}, count_include_pad={})",
                           pair_str(kernel), pair_str(stride), pair_str(padding),
                           ceil ? "True" : "False", include_pad ? "True" : "False"),
               {normal(s, 5000 + k)}, [=](Span x) {
                 return Outputs{avg_pool2d(x[0], kernel, stride, padding, ceil, include_pad)};
               });
    const IntPair out{1 + static_cast<std::int64_t>(gen.below(static_cast<std::uint64_t>(s[2]))),
                      1 + static_cast<std::int64_t>(gen.below(static_cast<std::uint64_t>(s[3])))};
    oracle.add(fmt::format("adaptive_avg_pool2d #{}", k),
               fmt::format("F.adaptive_avg_pool2d(x0, {})", pair_str(out)), {normal(s, 6000 + k)},
               [=](Span x) { return Outputs{adaptive_avg_pool2d(x[0], out)}; });
  }
  // Ties: PyTorch's index-based backward sends each window's gradient to its first maximum.
  oracle.add(
      "max_pool2d ties", "F.max_pool2d(x0, 3, 1, 1)",
      {from_values({1, 1, 1, 2, 2, 1, 1, 2, 2, 2, 1, 1, 1, 1, 2, 2, 1, 2, 1, 2}, {1, 1, 4, 5})
           .requires_grad_()},
      [](Span x) { return Outputs{max_pool2d(x[0], 3, 1, 1)}; });
  oracle.add("max_pool2d ties unbatched", "F.max_pool2d(x0, 2)", {ones({2, 4, 4}).requires_grad_()},
             [](Span x) { return Outputs{max_pool2d(x[0], 2)}; });
  const auto r = oracle.run(1e-12);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_EQ(r.cases, 38u);
  std::printf("pool parity: %s", r.report.c_str());
}

// ---------------------------------------------------------------------------------------------
// Misuse

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

#define EXPECT_TG_THROW(statement, ErrorType, ...)                              \
  EXPECT_TRUE(ThrowsWith<ErrorType>([&] { (void)(statement); }, {__VA_ARGS__})) \
      << "statement: " #statement

TEST(Misuse, Conv2dWrongRank) {
  EXPECT_TG_THROW(conv2d(zeros({5, 5}), zeros({1, 1, 3, 3})), ShapeError, "conv2d", "4-D", "[5, 5]",
                  "[1, 1, 3, 3]");
  EXPECT_TG_THROW(conv2d(zeros({1, 1, 5, 5}), zeros({1, 3, 3})), ShapeError, "conv2d", "weight",
                  "[1, 1, 5, 5]", "[1, 3, 3]");
  EXPECT_TG_THROW(conv2d(zeros({1, 1, 5, 5}), zeros({0, 1, 3, 3})), ShapeError, "conv2d",
                  "empty dimension", "[0, 1, 3, 3]");
  EXPECT_TG_THROW(conv1d(zeros({1, 1, 5, 5}), zeros({1, 1, 3})), ShapeError, "conv1d",
                  "[1, 1, 5, 5]", "[1, 1, 3]");
}

TEST(Misuse, Conv2dChannelsNotMatchingWeight) {
  EXPECT_TG_THROW(conv2d(zeros({2, 3, 5, 5}), zeros({4, 2, 3, 3})), ShapeError, "conv2d",
                  "3 channels", "[2, 3, 5, 5]", "[4, 2, 3, 3]");
  EXPECT_TG_THROW(conv1d(zeros({2, 3, 5}), zeros({4, 2, 3})), ShapeError, "conv1d", "3 channels",
                  "[2, 3, 5]", "[4, 2, 3]");
  EXPECT_TG_THROW(conv2d(zeros({1, 2, 5, 5}), zeros({4, 2, 3, 3}), zeros({3})), ShapeError,
                  "conv2d", "bias", "[3]", "[4, 2, 3, 3]");
}

TEST(Misuse, Conv2dGroupsNotDividingChannels) {
  EXPECT_TG_THROW(conv2d(zeros({1, 4, 5, 5}), zeros({3, 2, 3, 3}), Tensor(), {.groups = 2}),
                  ValueError, "conv2d", "groups = 2", "[1, 4, 5, 5]", "[3, 2, 3, 3]");
  EXPECT_TG_THROW(conv2d(zeros({1, 3, 5, 5}), zeros({4, 1, 3, 3}), Tensor(), {.groups = 2}),
                  ValueError, "conv2d", "groups = 2");
  EXPECT_TG_THROW(conv2d(zeros({1, 3, 5, 5}), zeros({3, 3, 3, 3}), Tensor(), {.groups = 0}),
                  ValueError, "conv2d", "groups");
}

TEST(Misuse, Conv2dKernelLargerThanPaddedInput) {
  EXPECT_TG_THROW(conv2d(zeros({1, 1, 2, 6}), zeros({1, 1, 5, 3}), Tensor(), {.padding = 1}),
                  ShapeError, "conv2d", "larger than the padded input", "4x8", "[1, 1, 2, 6]",
                  "[1, 1, 5, 3]");
  // Dilation counts: a 3x3 kernel dilated by 3 spans 7.
  EXPECT_TG_THROW(conv2d(zeros({1, 1, 6, 6}), zeros({1, 1, 3, 3}), Tensor(), {.dilation = 3}),
                  ShapeError, "conv2d", "7x7");
  EXPECT_TG_THROW(conv1d(zeros({1, 1, 2}), zeros({1, 1, 3})), ShapeError, "conv1d",
                  "larger than the padded input", "[1, 1, 2]");
}

TEST(Misuse, Conv2dNonPositiveStrideAndNegativePadding) {
  const Tensor x = zeros({1, 1, 5, 5}), w = zeros({1, 1, 3, 3});
  EXPECT_TG_THROW(conv2d(x, w, Tensor(), {.stride = {1, 0}}), ValueError, "conv2d",
                  "stride must be positive", "[1, 1, 5, 5]");
  EXPECT_TG_THROW(conv2d(x, w, Tensor(), {.padding = -1}), ValueError, "conv2d", "padding");
  EXPECT_TG_THROW(conv2d(x, w, Tensor(), {.dilation = 0}), ValueError, "conv2d", "dilation");
  EXPECT_TG_THROW(conv1d(zeros({1, 1, 5}), zeros({1, 1, 3}), Tensor(), {.stride = -2}), ValueError,
                  "conv1d", "stride");
}

TEST(Misuse, ConvGradientOpsCheckGradOutput) {
  EXPECT_TG_THROW(conv2d_input({1, 1, 5, 5}, zeros({2, 1, 3, 3}), zeros({1, 2, 2, 3})), ShapeError,
                  "conv2d_input", "[1, 2, 2, 3]", "[1, 2, 3, 3]");
  EXPECT_TG_THROW(conv2d_weight(zeros({1, 1, 5, 5}), {2, 1, 3, 3}, zeros({1, 2, 3})), ShapeError,
                  "conv2d_weight", "[1, 2, 3]");
}

TEST(Misuse, PoolErrors) {
  const Tensor x = zeros({1, 2, 4, 4});
  EXPECT_TG_THROW(max_pool2d(zeros({4, 4}), 2), ShapeError, "max_pool2d", "4-D", "[4, 4]");
  EXPECT_TG_THROW(avg_pool2d(zeros({1, 1, 1, 4, 4}), 2), ShapeError, "avg_pool2d",
                  "[1, 1, 1, 4, 4]");
  EXPECT_TG_THROW(adaptive_avg_pool2d(zeros({4}), 1), ShapeError, "adaptive_avg_pool2d", "[4]");
  EXPECT_TG_THROW(max_pool2d(x, 2, IntPair{0, 1}), ValueError, "max_pool2d",
                  "stride must be positive", "[1, 2, 4, 4]");
  EXPECT_TG_THROW(avg_pool2d(x, {2, 0}), ValueError, "avg_pool2d", "kernel_size");
  EXPECT_TG_THROW(max_pool2d(x, 2, 2, 2), ValueError, "max_pool2d", "at most half the kernel");
  EXPECT_TG_THROW(max_pool2d(x, 5), ShapeError, "max_pool2d", "larger than the padded input",
                  "[1, 2, 4, 4]");
  EXPECT_TG_THROW(avg_pool2d(x, {2, 7}, {}, {1, 1}), ShapeError, "avg_pool2d", "2x7", "6x6");
  EXPECT_TG_THROW(adaptive_avg_pool2d(x, {0, 1}), ValueError, "adaptive_avg_pool2d",
                  "[1, 2, 4, 4]");
}

}  // namespace
