// The shape, select and join ops of issue 13 (ops/shape_ops.hpp, ops/join.hpp):
//   OpsGradCheck          finite differences over several shapes and every axis (negative too);
//   SecondOrderGradCheck  gradgradcheck of every op (their rules are ops again);
//   TorchParity           values and gradients against PyTorch float64 at 1e-12, split and
//                         chunk as multi-output cases, plus seeded random compositions;
//   OpsShapeClosedForm    values on arange inputs, and how multi-output ops enter the tape;
//   Misuse                every error, typed, naming the op and the shapes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <numeric>
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
using Dims = std::vector<std::int64_t>;

// ---------------------------------------------------------------------------------------------
// Helpers

// gradcheck of f, which must compare every Jacobian entry (numel(out) x numel(inputs that
// require grad)), so a case that silently checked nothing fails.
::testing::AssertionResult GradcheckPasses(const Function& f, const Inputs& inputs) {
  const GradcheckResult r = gradcheck(f, inputs);
  if (!r.passed) return ::testing::AssertionFailure() << r.report;
  std::size_t in = 0;
  for (const Tensor& t : inputs) in += t.requires_grad() ? t.numel() : 0;
  Tape tape;
  const std::size_t want = in * f(inputs).numel();
  if (want == 0 || r.elements_checked != want) {
    return ::testing::AssertionFailure()
           << "gradcheck compared " << r.elements_checked << " entries, expected " << want;
  }
  return ::testing::AssertionSuccess();
}

// gradgradcheck of f and of square(f): these ops are linear, so only with something curved after
// them must their rules carry a gradient that depends on the inputs.
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

// 0, 1, 2, .. in `shape`: values that show where each element went.
Tensor arange(const Shape& shape) {
  std::vector<double> v(shape.numel());
  std::iota(v.begin(), v.end(), 0.0);
  return from_values(std::move(v), shape);
}

std::vector<double> values_of(const Tensor& t) {
  return {t.values().begin(), t.values().end()};
}

std::int64_t rank_of(const Shape& s) {
  return static_cast<std::int64_t>(s.rank());
}

// Every axis of a rank-r tensor, negative ones too: -r..r-1.
Dims every_axis(std::int64_t r) {
  Dims axes;
  for (std::int64_t a = -r; a < r; ++a) axes.push_back(a);
  return axes;
}

// "(2, 3)" for torch.
std::string py_tuple(const Dims& d) {
  return d.size() == 1 ? fmt::format("({},)", d[0]) : fmt::format("({})", fmt::join(d, ", "));
}

// Python's x0[:, :, start:stop:step] for axis a (>= 0); slice_end prints as an empty stop.
std::string py_slice(std::int64_t a, std::int64_t start, std::int64_t stop, std::int64_t step) {
  std::string index;
  for (std::int64_t k = 0; k < a; ++k) index += ":, ";
  const std::string stop_text = stop == slice_end ? "" : std::to_string(stop);
  return fmt::format("x0[{}{}:{}:{}]", index, start, stop_text, step);
}

// ---------------------------------------------------------------------------------------------
// OpsGradCheck

TEST(OpsGradCheck, SqueezeAndUnsqueezeEveryAxis) {
  std::uint64_t seed = 100;
  for (const Shape& shape : {Shape{1}, Shape{2, 1, 3}, Shape{1, 3, 1, 2}}) {
    SCOPED_TRACE(fmt::format("shape {}", shape));
    const Tensor x = normal(shape, seed++);
    EXPECT_TRUE(GradcheckPasses([](const Inputs& in) { return squeeze(in[0]); }, {x}));
    for (std::int64_t a : every_axis(rank_of(shape))) {
      SCOPED_TRACE(fmt::format("axis {}", a));
      EXPECT_TRUE(GradcheckPasses([a](const Inputs& in) { return squeeze(in[0], a); }, {x}));
    }
    for (std::int64_t a = -rank_of(shape) - 1; a <= rank_of(shape); ++a) {
      SCOPED_TRACE(fmt::format("unsqueeze axis {}", a));
      EXPECT_TRUE(GradcheckPasses([a](const Inputs& in) { return unsqueeze(in[0], a); }, {x}));
    }
  }
}

TEST(OpsGradCheck, FlattenEveryAxisPair) {
  const Tensor x = normal({2, 3, 1, 2}, 110);
  for (std::int64_t start : every_axis(4)) {
    for (std::int64_t end : every_axis(4)) {
      if ((start + 4) % 4 > (end + 4) % 4) continue;
      SCOPED_TRACE(fmt::format("flatten({}, {})", start, end));
      EXPECT_TRUE(
          GradcheckPasses([=](const Inputs& in) { return flatten(in[0], start, end); }, {x}));
    }
  }
  EXPECT_TRUE(GradcheckPasses([](const Inputs& in) { return flatten(in[0]); }, {normal({}, 111)}));
}

TEST(OpsGradCheck, PermuteEveryOrder) {
  const Tensor x = normal({2, 3, 4}, 120);
  Dims dims = {0, 1, 2};
  do {
    SCOPED_TRACE(fmt::format("dims [{}]", fmt::join(dims, ", ")));
    EXPECT_TRUE(GradcheckPasses([dims](const Inputs& in) { return permute(in[0], dims); }, {x}));
  } while (std::next_permutation(dims.begin(), dims.end()));
  EXPECT_TRUE(GradcheckPasses([](const Inputs& in) { return permute(in[0], {-1, 0, -2}); }, {x}));
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& in) {
        return permute(in[0], {1, 0});
      },
      {normal({3, 2}, 121)}));
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& in) {
        return permute(in[0], {3, 1, 0, 2});
      },
      {normal({2, 1, 3, 2}, 122)}));
}

TEST(OpsGradCheck, ExpandAndBroadcastTo) {
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& in) {
        return expand(in[0], {2, -1, 4});
      },
      {normal({3, 1}, 130)}));
  EXPECT_TRUE(
      GradcheckPasses([](const Inputs& in) { return expand(in[0], {5}); }, {normal({1}, 131)}));
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& in) {
        return expand(in[0], {2, 3});
      },
      {normal({}, 132)}));
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& in) {
        return expand(in[0], {-1, 4, -1});
      },
      {normal({2, 1, 3}, 133)}));
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& in) {
        return broadcast_to(in[0], Shape{3, 2, 4});
      },
      {normal({2, 1}, 134)}));
}

TEST(OpsGradCheck, NarrowSliceSelectEveryAxis) {
  const Tensor x = normal({3, 4, 5}, 140);
  for (std::int64_t a : every_axis(3)) {
    SCOPED_TRACE(fmt::format("axis {}", a));
    EXPECT_TRUE(GradcheckPasses([a](const Inputs& in) { return narrow(in[0], a, 1, 2); }, {x}));
    EXPECT_TRUE(GradcheckPasses([a](const Inputs& in) { return narrow(in[0], a, -2, 2); }, {x}));
    EXPECT_TRUE(
        GradcheckPasses([a](const Inputs& in) { return slice(in[0], a, 0, slice_end, 2); }, {x}));
    EXPECT_TRUE(GradcheckPasses([a](const Inputs& in) { return slice(in[0], a, -3, -1); }, {x}));
    EXPECT_TRUE(GradcheckPasses([a](const Inputs& in) { return slice(in[0], a, 1, 100, 3); }, {x}));
    EXPECT_TRUE(GradcheckPasses([a](const Inputs& in) { return select(in[0], a, 1); }, {x}));
    EXPECT_TRUE(GradcheckPasses([a](const Inputs& in) { return select(in[0], a, -1); }, {x}));
  }
  // Rank 1: select gives a scalar.
  EXPECT_TRUE(
      GradcheckPasses([](const Inputs& in) { return select(in[0], 0, 2); }, {normal({4}, 141)}));
}

TEST(OpsGradCheck, SliceBackwardInItsGradient) {
  for (std::int64_t a : every_axis(2)) {
    SCOPED_TRACE(fmt::format("axis {}", a));
    const Shape input = a == 0 || a == -2 ? Shape{7, 3} : Shape{3, 7};  // 1:7:2 keeps 3 of 7
    EXPECT_TRUE(
        GradcheckPasses([&](const Inputs& in) { return slice_backward(in[0], input, a, 1, 7, 2); },
                        {normal({3, 3}, 150)}));
  }
}

TEST(OpsGradCheck, CatEveryAxis) {
  std::uint64_t seed = 160;
  for (std::int64_t a : every_axis(3)) {
    SCOPED_TRACE(fmt::format("axis {}", a));
    const auto axis = static_cast<std::size_t>((a + 3) % 3);
    Dims d0 = {2, 3, 2}, d1 = {2, 3, 2}, d2 = {2, 3, 2};
    d1[axis] = 1;
    d2[axis] = 3;
    const Inputs in = {normal(Shape(d0), seed), normal(Shape(d1), seed + 1),
                       normal(Shape(d2), seed + 2)};
    seed += 3;
    EXPECT_TRUE(GradcheckPasses([a](const Inputs& x) { return cat(x, a); }, in));
    // A constant among the inputs, and one tensor joined twice (its gradients add).
    EXPECT_TRUE(GradcheckPasses(
        [a](const Inputs& x) {
          return cat({x[0], x[1], x[0]}, a);
        },
        {in[0], in[1].detach()}));
  }
}

TEST(OpsGradCheck, StackEveryAxis) {
  const Inputs in = {normal({2, 3}, 170), normal({2, 3}, 171), normal({2, 3}, 172)};
  for (std::int64_t a = -3; a <= 2; ++a) {
    SCOPED_TRACE(fmt::format("axis {}", a));
    EXPECT_TRUE(GradcheckPasses([a](const Inputs& x) { return stack(x, a); }, in));
  }
  EXPECT_TRUE(GradcheckPasses([](const Inputs& x) { return stack(x); },
                              {normal({}, 173), normal({}, 174)}));
}

// Every piece is differentiable on its own: each is checked alone, and a loss of all of them.
TEST(OpsGradCheck, SplitAndChunkPieces) {
  const Tensor x = normal({3, 5, 2}, 180);
  for (std::int64_t a : every_axis(3)) {
    SCOPED_TRACE(fmt::format("axis {}", a));
    const std::size_t pieces = split(x.detach(), 2, a).size();
    for (std::size_t k = 0; k < pieces; ++k) {
      EXPECT_TRUE(GradcheckPasses([=](const Inputs& in) { return split(in[0], 2, a)[k]; }, {x}));
    }
    const std::size_t chunks = chunk(x.detach(), 2, a).size();
    for (std::size_t k = 0; k < chunks; ++k) {
      EXPECT_TRUE(GradcheckPasses([=](const Inputs& in) { return chunk(in[0], 2, a)[k]; }, {x}));
    }
  }
  EXPECT_TRUE(GradcheckPasses(
      [](const Inputs& in) {
        const std::vector<Tensor> p = split(in[0], Dims{1, 3, 1}, 1);
        return sum(square(p[0])) + sum(tanh(p[1])) * sum(exp(p[2]));
      },
      {x}));
}

// ---------------------------------------------------------------------------------------------
// SecondOrderGradCheck

TEST(SecondOrderGradCheck, ShapeOps) {
  const Tensor x = normal({2, 1, 3}, 200);
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return squeeze(in[0]); }, {x}));
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return squeeze(in[0], -2); }, {x}));
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return unsqueeze(in[0], -1); }, {x}));
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return flatten(in[0], 1); }, {x}));
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return permute(in[0], {2, 0, 1}); }, {x}));
  EXPECT_TRUE(GradgradPasses([](const Inputs& in) { return expand(in[0], {2, 2, 4, 3}); }, {x}));
}

TEST(SecondOrderGradCheck, SelectOps) {
  const Tensor x = normal({3, 4}, 210);
  for (std::int64_t a : every_axis(2)) {
    SCOPED_TRACE(fmt::format("axis {}", a));
    EXPECT_TRUE(GradgradPasses([a](const Inputs& in) { return narrow(in[0], a, -2, 2); }, {x}));
    EXPECT_TRUE(GradgradPasses([a](const Inputs& in) { return slice(in[0], a, 0, -1, 2); }, {x}));
    EXPECT_TRUE(GradgradPasses([a](const Inputs& in) { return select(in[0], a, -1); }, {x}));
  }
  EXPECT_TRUE(GradgradPasses(
      [](const Inputs& in) {
        return slice_backward(in[0], Shape{3, 5}, 1, 0, 5, 2);
      },
      {normal({3, 3}, 211)}));
}

TEST(SecondOrderGradCheck, JoinOps) {
  const Inputs in = {normal({2, 3}, 220), normal({2, 1}, 221)};
  EXPECT_TRUE(GradgradPasses([](const Inputs& x) { return cat(x, -1); }, in));
  const Inputs first = {in[0]};  // the cases below use x[0] only
  EXPECT_TRUE(GradgradPasses([](const Inputs& x) { return stack({x[0], x[0] * 2.0}, 1); }, first));
  EXPECT_TRUE(GradgradPasses(
      [](const Inputs& x) {
        const std::vector<Tensor> p = split(x[0], 2, 1);
        return cat({p[1], p[0] * p[0]}, 1);
      },
      first));
  EXPECT_TRUE(GradgradPasses(
      [](const Inputs& x) {
        const std::vector<Tensor> p = chunk(x[0], 2, 0);
        return p[0] * p[1];
      },
      first));
}

// ---------------------------------------------------------------------------------------------
// TorchParity

void add_shape_cases(TorchOracle& oracle) {
  const Tensor x4 = normal({2, 1, 3, 1}, 300);
  oracle.add("squeeze all", "x0.squeeze()", {x4}, [](Span x) { return Outputs{squeeze(x[0])}; });
  for (std::int64_t a : every_axis(4)) {
    oracle.add(fmt::format("squeeze {}", a), fmt::format("x0.squeeze({})", a), {x4},
               [a](Span x) { return Outputs{squeeze(x[0], a)}; });
  }
  const Tensor x2 = normal({2, 3}, 301);
  for (std::int64_t a = -3; a <= 2; ++a) {
    oracle.add(fmt::format("unsqueeze {}", a), fmt::format("x0.unsqueeze({})", a), {x2},
               [a](Span x) { return Outputs{unsqueeze(x[0], a)}; });
  }
  const Tensor x5 = normal({2, 3, 4, 2}, 302);
  for (std::int64_t start : every_axis(4)) {
    for (std::int64_t end : every_axis(4)) {
      if ((start + 4) % 4 > (end + 4) % 4) continue;
      oracle.add(fmt::format("flatten {} {}", start, end),
                 fmt::format("torch.flatten(x0, {}, {})", start, end), {x5},
                 [=](Span x) { return Outputs{flatten(x[0], start, end)}; });
    }
  }
  const Tensor x3 = normal({2, 3, 4}, 303);
  Dims dims = {0, 1, 2};
  do {
    oracle.add(fmt::format("permute {}", py_tuple(dims)),
               fmt::format("x0.permute{}", py_tuple(dims)), {x3},
               [dims](Span x) { return Outputs{permute(x[0], dims)}; });
  } while (std::next_permutation(dims.begin(), dims.end()));
  oracle.add("permute negative", "x0.permute(-1, 0, -2)", {x3}, [](Span x) {
    return Outputs{permute(x[0], {-1, 0, -2})};
  });
  oracle.add("expand -1", "x0.expand(2, -1, 4)", {normal({3, 1}, 304)}, [](Span x) {
    return Outputs{expand(x[0], {2, -1, 4})};
  });
  oracle.add("expand same", "x0.expand(3, 1)", {normal({3, 1}, 305)}, [](Span x) {
    return Outputs{expand(x[0], {3, 1})};
  });
  oracle.add("expand middle", "x0.expand(-1, 4, -1)", {normal({2, 1, 3}, 306)}, [](Span x) {
    return Outputs{expand(x[0], {-1, 4, -1})};
  });
  oracle.add("broadcast_to", "torch.broadcast_to(x0, (3, 2, 4))", {normal({2, 1}, 307)},
             [](Span x) {
               return Outputs{broadcast_to(x[0], Shape{3, 2, 4})};
             });
  // Scalars take axis 0 or -1 where PyTorch allows it.
  const Tensor s = normal({}, 308);
  oracle.add("squeeze scalar", "x0.squeeze(0)", {s},
             [](Span x) { return Outputs{squeeze(x[0], 0)}; });
  oracle.add("unsqueeze scalar", "x0.unsqueeze(-1)", {s},
             [](Span x) { return Outputs{unsqueeze(x[0], -1)}; });
  oracle.add("flatten scalar", "x0.flatten()", {s}, [](Span x) { return Outputs{flatten(x[0])}; });
  oracle.add("expand scalar", "x0.expand(2, 3)", {s}, [](Span x) {
    return Outputs{expand(x[0], {2, 3})};
  });
}

void add_select_cases(TorchOracle& oracle) {
  const Tensor x = normal({3, 4, 5}, 310);
  struct Range {
    std::int64_t start, stop, step;
  };
  // Python's rules: negative bounds, bounds past either end (clamped), empty results, steps.
  const std::vector<Range> ranges = {
      {0, slice_end, 1}, {1, 3, 1},   {-2, slice_end, 1}, {0, -1, 2}, {-100, 100, 1}, {1, 100, 3},
      {3, 1, 1},         {-1, -3, 1}, {0, slice_end, 2},  {2, 2, 1},  {-4, -1, 2},    {5, 9, 1}};
  for (std::int64_t a : every_axis(3)) {
    const std::int64_t pa = (a + 3) % 3;
    const std::int64_t n = x.shape()[static_cast<std::size_t>(pa)];
    for (const Range& q : ranges) {
      oracle.add(fmt::format("slice axis {} {}:{}:{}", a, q.start, q.stop, q.step),
                 py_slice(pa, q.start, q.stop, q.step), {x},
                 [a, q](Span in) { return Outputs{slice(in[0], a, q.start, q.stop, q.step)}; });
    }
    for (std::int64_t start : {std::int64_t{0}, std::int64_t{1}, -n, std::int64_t{-2}}) {
      for (std::int64_t length : {std::int64_t{0}, std::int64_t{2}}) {
        oracle.add(fmt::format("narrow axis {} {} {}", a, start, length),
                   fmt::format("torch.narrow(x0, {}, {}, {})", a, start, length), {x},
                   [=](Span in) { return Outputs{narrow(in[0], a, start, length)}; });
      }
    }
    for (std::int64_t index : {std::int64_t{0}, n - 1, -n, std::int64_t{-1}}) {
      oracle.add(fmt::format("select axis {} {}", a, index),
                 fmt::format("torch.select(x0, {}, {})", a, index), {x},
                 [=](Span in) { return Outputs{select(in[0], a, index)}; });
    }
  }
  oracle.add("select to scalar", "x0[-2]", {normal({4}, 311)},
             [](Span in) { return Outputs{select(in[0], 0, -2)}; });
  oracle.add("slice_backward", "torch.ops.aten.slice_backward(x0, [3, 7], 1, 1, 7, 2)",
             {normal({3, 3}, 312)}, [](Span in) {
               return Outputs{slice_backward(in[0], Shape{3, 7}, 1, 1, 7, 2)};
             });
}

void add_join_cases(TorchOracle& oracle) {
  std::uint64_t seed = 320;
  for (std::int64_t a : every_axis(3)) {
    const auto axis = static_cast<std::size_t>((a + 3) % 3);
    Dims d1 = {2, 3, 4}, d2 = {2, 3, 4};
    d1[axis] = 1;
    d2[axis] = 2;
    const std::vector<Tensor> in = {normal({2, 3, 4}, seed), normal(Shape(d1), seed + 1),
                                    normal(Shape(d2), seed + 2)};
    seed += 3;
    oracle.add(fmt::format("cat axis {}", a), fmt::format("torch.cat((x0, x1, x2), {})", a), in,
               [a](Span x) { return Outputs{cat(std::vector<Tensor>(x.begin(), x.end()), a)}; });
    oracle.add(fmt::format("cat twice axis {}", a), fmt::format("torch.cat((x0, x1, x0), {})", a),
               {in[0], in[1]}, [a](Span x) {
                 return Outputs{cat({x[0], x[1], x[0]}, a)};
               });
    oracle.add(fmt::format("cat with a constant axis {}", a),
               fmt::format("torch.cat((x0, x1), {})", a), {in[0], in[2].detach()}, [a](Span x) {
                 return Outputs{cat({x[0], x[1]}, a)};
               });
  }
  oracle.add("cat of one", "torch.cat((x0,), 1)", {normal({2, 3}, 330)},
             [](Span x) { return Outputs{cat({x[0]}, 1)}; });
  for (std::int64_t a = -4; a <= 3; ++a) {
    oracle.add(fmt::format("stack axis {}", a), fmt::format("torch.stack((x0, x1, x2), {})", a),
               {normal({2, 3, 4}, 331), normal({2, 3, 4}, 332), normal({2, 3, 4}, 333)},
               [a](Span x) { return Outputs{stack(std::vector<Tensor>(x.begin(), x.end()), a)}; });
  }
  oracle.add("stack scalars", "torch.stack((x0, x1))", {normal({}, 334), normal({}, 335)},
             [](Span x) {
               return Outputs{stack({x[0], x[1]})};
             });
  // Multi-output: every piece is an output, each with its own seed in the loss.
  const Tensor x = normal({4, 6, 5}, 340);
  for (std::int64_t a : every_axis(3)) {
    for (std::int64_t size : {1, 2, 4, 7}) {
      oracle.add(fmt::format("split {} axis {}", size, a),
                 fmt::format("torch.split(x0, {}, {})", size, a), {x},
                 [=](Span in) { return split(in[0], size, a); });
    }
    for (std::int64_t chunks : {1, 2, 3, 4, 5}) {
      oracle.add(fmt::format("chunk {} axis {}", chunks, a),
                 fmt::format("torch.chunk(x0, {}, {})", chunks, a), {x},
                 [=](Span in) { return chunk(in[0], chunks, a); });
    }
  }
  oracle.add("split sizes", "torch.split(x0, [1, 0, 3, 2], 1)", {x}, [](Span in) {
    return split(in[0], Dims{1, 0, 3, 2}, 1);
  });
  oracle.add("split sizes negative axis", "torch.split(x0, [3, 1], -3)", {x}, [](Span in) {
    return split(in[0], Dims{3, 1}, -3);
  });
  oracle.add("chunk of 6 into 4", "torch.chunk(x0, 4, 1)", {x},
             [](Span in) { return chunk(in[0], 4, 1); });
  oracle.add("some pieces unused", "torch.split(x0, 2, 1)[1] * 3", {x},
             [](Span in) { return Outputs{split(in[0], 2, 1)[1] * 3.0}; });
  oracle.add("chunks rejoined", "torch.cat(torch.chunk(x0, 3, 1)[::-1], 1) * x1",
             {x, normal({5}, 341)}, [](Span in) {
               const std::vector<Tensor> p = chunk(in[0], 3, 1);
               return Outputs{cat({p[2], p[1], p[0]}, 1) * in[1]};
             });
}

// One PyTorch run for every named case (a Python start with torch costs ~10-20 s on a loaded
// machine): shape, select and join ops, split and chunk as multi-output cases.
TEST(TorchParity, ShapeSelectJoinOps) {
  TorchOracle oracle;
  add_shape_cases(oracle);
  const std::size_t shape_cases = oracle.size();
  add_select_cases(oracle);
  const std::size_t select_cases = oracle.size() - shape_cases;
  add_join_cases(oracle);
  const std::size_t join_cases = oracle.size() - shape_cases - select_cases;
  const auto r = oracle.run(1e-12);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_EQ(r.cases, oracle.size());
  fmt::print(
      "TorchParity.ShapeSelectJoinOps: {} cases ({} shape, {} select, {} join), worst "
      "error {:.3g}\n",
      r.cases, shape_cases, select_cases, join_cases, r.worst_error);
}

// Seeded random chains of three ops of this file, each stated in tapegrad and in torch, with a
// curved op (tanh, exp or square) between them so the gradients depend on the values.
TEST(TorchParity, RandomShapeCompositions) {
  TorchOracle oracle;
  Generator gen(350);
  // 0..n-1 (0 when n is 0: an axis emptied by an earlier slice).
  const auto pick = [&gen](std::int64_t n) {
    return n <= 0 ? std::int64_t{0}
                  : static_cast<std::int64_t>(gen.below(static_cast<std::size_t>(n)));
  };
  struct Step {
    std::string py;
    std::function<Tensor(const Tensor&)> op;
  };
  // One random op applicable to shape s; returns its torch text (over "{}") and the op.
  const auto random_step = [&](const Shape& s) -> Step {
    const std::int64_t r = rank_of(s);
    const std::int64_t a = r == 0 ? 0 : pick(2 * r) - r;  // -r..r-1
    const std::int64_t pa = r == 0 ? 0 : (a + r) % r;
    const std::int64_t n = r == 0 ? 1 : s[static_cast<std::size_t>(pa)];
    std::int64_t kind = r == 0 ? 2 + pick(2) * 7 : pick(10);
    if (n == 0 && (kind == 1 || kind == 7)) kind = 2;  // nothing to select on an empty axis
    switch (kind) {
      case 0: {
        const std::int64_t start = pick(n) - (pick(2) == 0 ? n : 0);
        const std::int64_t stop = pick(n + 3) - 1;
        const std::int64_t step = 1 + pick(2);
        std::string index;
        for (std::int64_t k = 0; k < pa; ++k) index += ":, ";
        return {fmt::format("({{}})[{}{}:{}:{}]", index, start, stop, step),
                [=](const Tensor& t) { return slice(t, a, start, stop, step); }};
      }
      case 1: {
        const std::int64_t i = pick(2 * n) - n;
        return {fmt::format("torch.select({{}}, {}, {})", a, i),
                [=](const Tensor& t) { return select(t, a, i); }};
      }
      case 2: {
        const std::int64_t b = pick(r + 1);  // 0..r (non-negative keeps torch's text simple)
        return {fmt::format("({{}}).unsqueeze({})", b),
                [=](const Tensor& t) { return unsqueeze(t, b); }};
      }
      case 3: {
        Dims dims(static_cast<std::size_t>(r));
        std::iota(dims.begin(), dims.end(), 0);
        for (std::size_t i = dims.size(); i > 1; --i) std::swap(dims[i - 1], dims[gen.below(i)]);
        return {fmt::format("({{}}).permute({})", py_tuple(dims)),
                [=](const Tensor& t) { return permute(t, dims); }};
      }
      case 4:
        return {fmt::format("torch.flatten({{}}, {})", a),
                [=](const Tensor& t) { return flatten(t, a); }};
      case 5: {
        const std::int64_t k = 1 + pick(3);
        return {fmt::format("torch.cat(torch.chunk({{}}, {}, {})[::-1], {})", k, a, a),
                [=](const Tensor& t) {
                  std::vector<Tensor> p = chunk(t, k, a);
                  std::reverse(p.begin(), p.end());
                  return cat(p, a);
                }};
      }
      case 6:
        return {fmt::format("torch.stack(({{0}}, torch.tanh({{0}})), {})", a),
                [=](const Tensor& t) {
                  return stack({t, tanh(t)}, a);
                }};
      case 7: {
        const std::int64_t length = 1 + pick(n);
        const std::int64_t start = pick(n - length + 1);
        return {fmt::format("torch.narrow({{}}, {}, {}, {})", a, start, length),
                [=](const Tensor& t) { return narrow(t, a, start, length); }};
      }
      case 8:
        return {fmt::format("torch.split({{}}, 2, {})[0]", a),
                [=](const Tensor& t) { return split(t, 2, a)[0]; }};
      default: {
        Dims target = {2};
        for (std::int64_t d : s.dims()) target.push_back(d == 1 ? 3 : -1);
        return {fmt::format("({{}}).expand({})", py_tuple(target)),
                [=](const Tensor& t) { return expand(t, target); }};
      }
    }
  };
  const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&)>>> curves = {
      {"torch.tanh({})", [](const Tensor& t) { return tanh(t); }},
      {"torch.exp({})", [](const Tensor& t) { return exp(t); }},
      {"torch.square({})", [](const Tensor& t) { return square(t); }}};
  const std::vector<Shape> shapes = {Shape{4}, Shape{3, 4}, Shape{2, 1, 3}, Shape{2, 3, 2, 2}};
  for (int c = 0; c < 120; ++c) {
    const Shape shape = shapes[gen.below(shapes.size())];
    std::string py = "x0";
    std::vector<std::function<Tensor(const Tensor&)>> chain;
    Tensor probe = zeros(shape);  // tracks the shape as the chain grows
    for (int k = 0; k < 3; ++k) {
      if (probe.rank() > 5) break;
      Step step = random_step(probe.shape());
      py = fmt::format(fmt::runtime(step.py), py);
      probe = step.op(probe);
      chain.push_back(step.op);
      if (k < 2) {
        const auto& curve = curves[gen.below(curves.size())];
        py = fmt::format(fmt::runtime(curve.first), py);
        chain.push_back(curve.second);
      }
    }
    oracle.add(fmt::format("composition {}", c), py, {normal(shape, 400 + c)}, [chain](Span in) {
      Tensor t = in[0];
      for (const auto& op : chain) t = op(t);
      return Outputs{t};
    });
  }
  const auto r = oracle.run(1e-12);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_EQ(r.cases, 120u);
  fmt::print("TorchParity.RandomShapeCompositions: {} cases, worst error {:.3g}\n", r.cases,
             r.worst_error);
}

// ---------------------------------------------------------------------------------------------
// OpsShapeClosedForm

TEST(OpsShapeClosedForm, ValuesOnArange) {
  const Tensor x = arange({2, 3, 4});
  EXPECT_EQ(values_of(slice(x, 2, 1, slice_end, 2)),
            (std::vector<double>{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23}));
  EXPECT_EQ(slice(x, 1, -1, -3).shape(), (Shape{2, 0, 4}));
  EXPECT_EQ(values_of(select(x, 1, -1)), (std::vector<double>{8, 9, 10, 11, 20, 21, 22, 23}));
  EXPECT_EQ(values_of(narrow(x, 0, -1, 1)), values_of(select(x, 0, 1)));
  EXPECT_EQ(values_of(permute(arange({2, 3}), {1, 0})), (std::vector<double>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(values_of(cat({arange({2, 1}), arange({2, 2})}, 1)),
            (std::vector<double>{0, 0, 1, 1, 2, 3}));
  EXPECT_EQ(values_of(stack({arange({2}), arange({2})}, 1)), (std::vector<double>{0, 0, 1, 1}));
  EXPECT_EQ(values_of(expand(arange({2, 1}), {2, 3})), (std::vector<double>{0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(values_of(slice_backward(arange({2, 2}), Shape{2, 5}, 1, 1, 4, 2)),
            (std::vector<double>{0, 0, 0, 1, 0, 0, 2, 0, 3, 0}));
  EXPECT_EQ(flatten(x, 0, 1).shape(), (Shape{6, 4}));
  EXPECT_EQ(squeeze(arange({1, 3, 1})).shape(), (Shape{3}));
  EXPECT_EQ(squeeze(arange({2, 3}), 0).shape(), (Shape{2, 3}));  // size 2: unchanged
  EXPECT_EQ(split(x, 3, 2).size(), 2u);
  EXPECT_EQ(chunk(arange({6}), 4).size(), 3u);  // ceil(6 / 4) = 2 per chunk: 3 pieces
  EXPECT_EQ(chunk(arange({0}), 3).size(), 3u);  // an empty axis: `chunks` empty pieces
  EXPECT_EQ(split(arange({0}), 2).size(), 1u);  // one empty piece
}

// split and chunk record one narrow node per piece; a piece no loss uses gets no gradient work,
// and the gradient of x is the sum of the pieces' slice_backwards.
TEST(OpsShapeClosedForm, MultiOutputOpsRecordOneNarrowPerPiece) {
  Tape tape;
  const Tensor x = arange({5}).requires_grad_();
  const std::vector<Tensor> p = split(x, 2);
  ASSERT_EQ(p.size(), 3u);
  ASSERT_EQ(tape.size(), 3u);
  for (std::size_t k = 0; k < 3; ++k) EXPECT_EQ(tape.node(k).op, "narrow");
  const Tensor loss = sum(p[0] * 2.0) + sum(square(p[2]));
  loss.backward();
  EXPECT_EQ(values_of(x.grad()), (std::vector<double>{2, 2, 0, 0, 8}));
  // cat is one node with three inputs.
  const Tensor joined = cat({p[2], p[0], p[1]});
  EXPECT_EQ(tape.node(tape.size() - 1).op, "cat");
  EXPECT_EQ(tape.node(tape.size() - 1).inputs.size(), 3u);
  EXPECT_EQ(values_of(joined), (std::vector<double>{4, 0, 1, 2, 3}));
}

// docs/derivations.md, "cat: its gradient splits": for L = sum(W * cat(a, b, axis 1)) the
// gradient of each input is the block of W over that input's columns, and nothing else.
TEST(OpsShapeClosedForm, CatGradientSplits) {
  for (std::uint64_t seed = 0; seed < 100; ++seed) {
    Tape tape;
    Generator gen(500 + seed);
    const auto na = static_cast<std::int64_t>(1 + gen.below(3));
    const auto nb = static_cast<std::int64_t>(1 + gen.below(3));
    const Tensor a = normal({2, na}, 600 + seed);
    const Tensor b = normal({2, nb}, 700 + seed);
    const Tensor w = normal({2, na + nb}, 800 + seed).detach();
    sum(w * cat({a, b}, 1)).backward();
    for (std::int64_t i = 0; i < 2; ++i) {
      for (std::int64_t j = 0; j < na + nb; ++j) {
        const double got = j < na ? a.grad().at({i, j}) : b.grad().at({i, j - na});
        ASSERT_EQ(got, w.at({i, j})) << "seed " << seed << " at (" << i << ", " << j << ")";
      }
    }
  }
}

// docs/teaching.md, "Components of a vector: select" (examples/vector_derivation.cpp): the
// hand-derived gradient of f(x) = x0 e^(x1) + x2^2 tanh(x0) passes check_gradient, and the slip
// that forgets tanh's factor fails on exactly that component.
TEST(OpsShapeClosedForm, VectorDerivationThroughSelect) {
  const auto f = [](const Inputs& in) {
    return select(in[0], 0, 0) * exp(select(in[0], 0, 1)) +
           square(select(in[0], 0, 2)) * tanh(select(in[0], 0, 0));
  };
  const auto by_hand = [](bool slip) {
    return [slip](const Inputs& in) {
      const double x0 = in[0].at({0}), x1 = in[0].at({1}), x2 = in[0].at({2});
      const double t = std::tanh(x0);
      const double chain = slip ? 1.0 : 1.0 - t * t;
      return Inputs{tensor({std::exp(x1) + x2 * x2 * chain, x0 * std::exp(x1), 2.0 * x2 * t})};
    };
  };
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    const Inputs x = {normal({3}, 900 + seed)};
    const CheckGradientResult right = check_gradient(f, by_hand(false), x, {.print = false});
    EXPECT_TRUE(right.passed) << right.table;
    EXPECT_EQ(right.elements_checked, 3u);
    const CheckGradientResult slip = check_gradient(f, by_hand(true), x, {.print = false});
    EXPECT_FALSE(slip.passed) << slip.table;
    EXPECT_EQ(slip.elements_failed, 1u) << slip.table;
    EXPECT_EQ(slip.index, (std::vector<std::int64_t>{0})) << slip.table;
    // Second order through select: the Hessian of f against its closed form.
    const Tensor h = hessian([&f](const Tensor& v) { return f({v}); }, x[0]);
    const double x0 = x[0].at({0}), x1 = x[0].at({1}), x2 = x[0].at({2});
    const double t = std::tanh(x0), dt = 1.0 - t * t;
    const double want[3][3] = {{-2.0 * x2 * x2 * t * dt, std::exp(x1), 2.0 * x2 * dt},
                               {std::exp(x1), x0 * std::exp(x1), 0.0},
                               {2.0 * x2 * dt, 0.0, 2.0 * t}};
    for (std::int64_t i = 0; i < 3; ++i) {
      for (std::int64_t j = 0; j < 3; ++j) {
        EXPECT_NEAR(h.at({i, j}), want[i][j], 1e-12 * std::max(1.0, std::abs(want[i][j])))
            << "H(" << i << ", " << j << ")";
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Misuse

template <class E>
::testing::AssertionResult ThrowsWith(const std::function<void()>& f,
                                      std::vector<std::string> fragments) {
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
    if (std::getenv("TAPEGRAD_SHOW_MESSAGES") != nullptr) fmt::print("  {}\n", what);
    return ::testing::AssertionSuccess() << what;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw the wrong type: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

#define EXPECT_TG_THROW(statement, ErrorType, ...)                              \
  EXPECT_TRUE(ThrowsWith<ErrorType>([&] { (void)(statement); }, {__VA_ARGS__})) \
      << "statement: " #statement

TEST(Misuse, ShapeOpsWithABadAxis) {
  const Tensor x = zeros({2, 3});
  EXPECT_TG_THROW(squeeze(x, 2), AxisError, "squeeze", "axis 2", "[2, 3]", "-2..1");
  EXPECT_TG_THROW(squeeze(scalar(1.0), 1), AxisError, "squeeze", "scalar");
  EXPECT_TG_THROW(unsqueeze(x, 3), AxisError, "unsqueeze", "axis 3", "[2, 3]", "-3..2");
  EXPECT_TG_THROW(unsqueeze(x, -4), AxisError, "unsqueeze", "axis -4", "-3..2");
  EXPECT_TG_THROW(flatten(x, 0, 2), AxisError, "flatten", "axis 2", "[2, 3]");
  EXPECT_TG_THROW(flatten(zeros({2, 3, 4}), -1, 0), AxisError, "flatten", "start axis -1",
                  "end axis 0", "[2, 3, 4]");
  EXPECT_TG_THROW(permute(x, {0, 2}), AxisError, "permute", "axis 2", "[2, 3]");
  EXPECT_TG_THROW(select(scalar(1.0), 0, 0), AxisError, "select", "scalar");
  EXPECT_TG_THROW(narrow(x, -3, 0, 1), AxisError, "narrow", "axis -3");
  EXPECT_TG_THROW(slice(x, 2, 0, 1), AxisError, "slice", "axis 2");
}

TEST(Misuse, PermuteThatIsNotAPermutation) {
  const Tensor x = zeros({2, 3, 4});
  EXPECT_TG_THROW(permute(x, {0, 1}), ShapeError, "permute", "2 axes [0, 1]", "rank 3",
                  "[2, 3, 4]");
  EXPECT_TG_THROW(permute(x, {0, 1, -3}), ValueError, "permute", "axis 0 appears twice",
                  "[0, 1, -3]", "[2, 3, 4]");
}

TEST(Misuse, ExpandToAShapeItDoesNotBroadcastTo) {
  const Tensor x = zeros({2, 3});
  EXPECT_TG_THROW(expand(x, {2, 4}), ShapeError, "expand", "[2, 3] vs [2, 4]");
  EXPECT_TG_THROW(expand(x, {3}), ShapeError, "expand", "fewer dimensions", "[2, 3] vs [3]");
  EXPECT_TG_THROW(expand(x, {-1, 2, 3}), ShapeError, "expand", "-1", "leading",
                  "[2, 3] vs [-1, 2, 3]");
  EXPECT_TG_THROW(expand(x, {2, -2}), ShapeError, "expand", "size -2", "sizes are >= 0");
}

TEST(Misuse, NarrowSliceSelectOutOfRange) {
  Tape tape;
  const Tensor x = zeros({3, 4}).requires_grad_();
  EXPECT_TG_THROW(narrow(x, 1, 5, 0), ValueError, "narrow", "start 5", "size 4", "[3, 4]", "-4..4");
  EXPECT_TG_THROW(narrow(x, 1, -5, 1), ValueError, "narrow", "start -5");
  EXPECT_TG_THROW(narrow(x, 1, 2, 3), ValueError, "narrow", "length 3", "start 2", "0..2");
  EXPECT_TG_THROW(narrow(x, 0, 0, -1), ValueError, "narrow", "length -1");
  EXPECT_TG_THROW(slice(x, 0, 0, 2, 0), ValueError, "slice", "step", "got 0", "[3, 4]",
                  "negative steps are not supported");
  EXPECT_TG_THROW(slice(x, 0, 2, 0, -1), ValueError, "slice", "got -1");
  EXPECT_TG_THROW(select(x, 0, 3), ValueError, "select", "index 3", "size 3", "[3, 4]", "-3..2");
  EXPECT_TG_THROW(select(x, -1, -5), ValueError, "select", "index -5", "axis 1", "-4..3");
  EXPECT_TG_THROW(slice_backward(zeros({3, 2}), Shape{3, 4}, 1, 0, 4, 1), ShapeError,
                  "slice_backward", "[3, 2] vs [3, 4]");
  EXPECT_TG_THROW(slice_backward(zeros({3, 2}), Shape{3, 4}, 1, 3, 2, 1), ValueError,
                  "slice_backward", "start 3, stop 2");
  EXPECT_EQ(tape.size(), 0u);  // nothing half-recorded
}

TEST(Misuse, CatOfMismatchedShapes) {
  const Tensor a = zeros({2, 3});
  EXPECT_TG_THROW(cat({}, 0), ValueError, "cat", "at least one tensor", "empty list");
  EXPECT_TG_THROW(cat({a, zeros({2, 1}), zeros({4, 3})}, 1), ShapeError, "cat", "tensor 2",
                  "axis 0", "joined axis 1", "[4, 3] vs [2, 3]");
  EXPECT_TG_THROW(cat({a, zeros({2, 3, 1})}, 0), ShapeError, "cat", "tensor 1 has 3 dimensions",
                  "tensor 0 has 2", "[2, 3, 1] vs [2, 3]");
  // With -1 the message names the normalized axis.
  EXPECT_TG_THROW(cat({a, zeros({1, 3}), zeros({2, 2})}, -1), ShapeError, "cat", "tensor 1",
                  "joined axis 1", "[1, 3] vs [2, 3]");
  EXPECT_TG_THROW(cat({a, scalar(1.0)}), ShapeError, "cat", "tensor 1 is a scalar", "stack");
  EXPECT_TG_THROW(cat({a, a}, 2), AxisError, "cat", "axis 2", "[2, 3]");
}

TEST(Misuse, StackOfMismatchedShapes) {
  const Tensor a = zeros({2, 3});
  EXPECT_TG_THROW(stack({}), ValueError, "stack", "at least one tensor");
  EXPECT_TG_THROW(stack({a, a, zeros({3, 2})}), ShapeError, "stack", "tensor 2",
                  "[3, 2] vs [2, 3]");
  EXPECT_TG_THROW(stack({a, a}, 3), AxisError, "stack", "axis 3", "[2, 3]", "-3..2");
}

TEST(Misuse, SplitAndChunkOfBadSizes) {
  const Tensor x = zeros({4, 5});
  EXPECT_TG_THROW(split(x, 0, 1), ValueError, "split", "split_size", "got 0", "[4, 5]");
  EXPECT_TG_THROW(split(x, Dims{2, 2}, 1), ValueError, "split", "[2, 2]", "sum to 5", "[4, 5]");
  EXPECT_TG_THROW(split(x, Dims{6, -1}, 1), ValueError, "split", "[6, -1]");
  EXPECT_TG_THROW(split(x, 2, -3), AxisError, "split", "axis -3");
  EXPECT_TG_THROW(chunk(x, 0), ValueError, "chunk", "chunks", "got 0", "[4, 5]");
  EXPECT_TG_THROW(chunk(x, 2, 2), AxisError, "chunk", "axis 2");
}

}  // namespace
