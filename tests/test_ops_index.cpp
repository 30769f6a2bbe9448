// Issue 13's gathers, masks and batched matmul: index_select, index_add, gather, scatter_add,
// where, masked_fill, tril, triu, matmul (batched, broadcast, 1-D) and bmm.
//   OpsGradCheck          finite differences over several shapes, every axis (negative too),
//                         broadcasting, repeated indices
//   SecondOrderGradCheck  gradgradcheck of every one of them (their rules are ops again)
//   ClosedForm            values and gradients written out by hand; index tensors get no gradient
//   TorchParity           PyTorch float64 on every op and a seeded replay of random compositions
//   Misuse                wrong axis, index dtype and range, shapes that do not fit
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <span>
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

constexpr double kInf = std::numeric_limits<double>::infinity();

// ---------------------------------------------------------------------------------------------
// Helpers

using tapegrad::test::GradcheckPasses;
using tapegrad::test::GradgradPasses;

// A constant tensor of indices in [0, bound), drawn with repeats.
Tensor random_indices(const Shape& shape, std::int64_t bound, std::uint64_t seed) {
  Generator gen(seed);
  std::vector<double> v(shape.numel());
  for (double& x : v) x = static_cast<double>(gen.below(static_cast<std::uint64_t>(bound)));
  return from_values(std::move(v), shape);
}

// A constant 0/1 mask of `shape`.
Tensor random_mask(const Shape& shape, std::uint64_t seed) {
  Generator gen(seed);
  std::vector<double> v(shape.numel());
  for (double& x : v) x = gen.below(2) == 1 ? 1.0 : 0.0;
  return from_values(std::move(v), shape);
}

// gather's indices for x along `axis`: x's shape shrunk by one in the other dimensions (where
// possible, to exercise indices smaller than x) and `along` long on the axis.
Shape gather_shape(const Shape& x, std::size_t axis, std::int64_t along) {
  std::vector<std::int64_t> dims = x.dims();
  for (std::size_t d = 0; d < dims.size(); ++d) {
    dims[d] = d == axis ? along : std::max<std::int64_t>(1, dims[d] - 1);
  }
  return Shape(std::move(dims));
}

std::vector<Shape> shapes_for_axes() {
  return {Shape{5}, Shape{3, 4}, Shape{2, 3, 4}};
}

std::vector<double> values_of(const Tensor& t) {
  return {t.values().begin(), t.values().end()};
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
    if (std::getenv("TAPEGRAD_SHOW_MESSAGES") != nullptr) fmt::print("  {}\n", what);
    return ::testing::AssertionSuccess() << what;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw another exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

#define EXPECT_TG_THROW(statement, ErrorType, ...)                              \
  EXPECT_TRUE(ThrowsWith<ErrorType>([&] { (void)(statement); }, {__VA_ARGS__})) \
      << "statement: " #statement

// ---------------------------------------------------------------------------------------------
// OpsGradCheck

TEST(OpsGradCheck, IndexSelectEveryAxisWithRepeats) {
  std::uint64_t seed = 13000;
  for (const Shape& shape : shapes_for_axes()) {
    const auto rank = static_cast<std::int64_t>(shape.rank());
    for (std::int64_t axis = -rank; axis < rank; ++axis) {
      const std::int64_t n = shape[shape.normalize_axis(axis, "test")];
      for (const Shape& index_shape : {Shape{4}, Shape{}, Shape{1}}) {
        SCOPED_TRACE(fmt::format("x {} axis {} indices {}", shape, axis, index_shape));
        const Tensor idx = random_indices(index_shape, n, seed++);
        EXPECT_TRUE(
            GradcheckPasses([axis, idx](const Inputs& x) { return index_select(x[0], axis, idx); },
                            {normal(shape, seed++)}));
      }
    }
  }
}

TEST(OpsGradCheck, IndexAddEveryAxisBothInputs) {
  std::uint64_t seed = 13100;
  for (const Shape& shape : shapes_for_axes()) {
    const auto rank = static_cast<std::int64_t>(shape.rank());
    for (std::int64_t axis = -rank; axis < rank; ++axis) {
      const std::size_t a = shape.normalize_axis(axis, "test");
      std::vector<std::int64_t> dims = shape.dims();
      dims[a] = 5;  // more indices than rows: some rows get several additions
      SCOPED_TRACE(fmt::format("x {} axis {}", shape, axis));
      const Tensor idx = random_indices(Shape{5}, shape[a], seed++);
      EXPECT_TRUE(
          GradcheckPasses([axis, idx](const Inputs& x) { return index_add(x[0], axis, idx, x[1]); },
                          {normal(shape, seed), normal(Shape(dims), seed + 1)}));
      seed += 2;
    }
  }
}

TEST(OpsGradCheck, GatherEveryAxisSmallerAndLongerIndices) {
  std::uint64_t seed = 13200;
  for (const Shape& shape : shapes_for_axes()) {
    const auto rank = static_cast<std::int64_t>(shape.rank());
    for (std::int64_t axis = -rank; axis < rank; ++axis) {
      const std::size_t a = shape.normalize_axis(axis, "test");
      for (std::int64_t along : {1, 2, 6}) {
        SCOPED_TRACE(fmt::format("x {} axis {} along {}", shape, axis, along));
        const Tensor idx = random_indices(gather_shape(shape, a, along), shape[a], seed++);
        EXPECT_TRUE(
            GradcheckPasses([axis, idx](const Inputs& x) { return gather(x[0], axis, idx); },
                            {normal(shape, seed++)}));
      }
    }
  }
}

TEST(OpsGradCheck, ScatterAddEveryAxisBothInputs) {
  std::uint64_t seed = 13300;
  for (const Shape& shape : shapes_for_axes()) {
    const auto rank = static_cast<std::int64_t>(shape.rank());
    for (std::int64_t axis = -rank; axis < rank; ++axis) {
      const std::size_t a = shape.normalize_axis(axis, "test");
      SCOPED_TRACE(fmt::format("x {} axis {}", shape, axis));
      const Shape is = gather_shape(shape, a, 5);
      const Tensor idx = random_indices(is, shape[a], seed++);
      EXPECT_TRUE(GradcheckPasses(
          [axis, idx](const Inputs& x) { return scatter_add(x[0], axis, idx, x[1]); },
          {normal(shape, seed), normal(is, seed + 1)}));
      seed += 2;
    }
  }
}

TEST(OpsGradCheck, WhereBroadcastingAllThree) {
  struct Case {
    Shape c, a, b;
  };
  const std::vector<Case> cases = {{Shape{3, 4}, Shape{3, 4}, Shape{3, 4}},
                                   {Shape{3, 1}, Shape{1, 4}, Shape{}},
                                   {Shape{4}, Shape{2, 3, 4}, Shape{3, 1}},
                                   {Shape{2, 1, 1}, Shape{3, 4}, Shape{2, 3, 4}},
                                   {Shape{}, Shape{5}, Shape{5}}};
  std::uint64_t seed = 13400;
  for (const Case& c : cases) {
    SCOPED_TRACE(fmt::format("condition {} a {} b {}", c.c, c.a, c.b));
    const Tensor cond = random_mask(c.c, seed++);
    EXPECT_TRUE(GradcheckPasses([cond](const Inputs& x) { return where(cond, x[0], x[1]); },
                                {normal(c.a, seed), normal(c.b, seed + 1)}));
    seed += 2;
  }
}

TEST(OpsGradCheck, MaskedFillBroadcastMaskAndMinusInfinityBeforeSoftmax) {
  std::uint64_t seed = 13500;
  for (const auto& [x_shape, mask_shape] :
       std::vector<std::pair<Shape, Shape>>{{Shape{3, 4}, Shape{3, 4}},
                                            {Shape{3, 4}, Shape{4}},
                                            {Shape{2, 3, 4}, Shape{3, 1}},
                                            {Shape{5}, Shape{}}}) {
    SCOPED_TRACE(fmt::format("x {} mask {}", x_shape, mask_shape));
    const Tensor mask = random_mask(mask_shape, seed++);
    EXPECT_TRUE(GradcheckPasses([mask](const Inputs& x) { return masked_fill(x[0], mask, 2.5); },
                                {normal(x_shape, seed++)}));
  }
  // Masked attention logits: a causal mask (above the diagonal) filled with -inf, then softmax.
  const Tensor causal = triu(ones(Shape{4, 4}), 1);
  EXPECT_TRUE(GradcheckPasses(
      [causal](const Inputs& x) { return softmax(masked_fill(x[0], causal, -kInf), -1); },
      {normal(Shape{2, 4, 4}, seed++)}));
}

TEST(OpsGradCheck, TrilTriuEveryDiagonalBatched) {
  std::uint64_t seed = 13600;
  for (const Shape& shape : {Shape{3, 4}, Shape{4, 3}, Shape{2, 3, 3}, Shape{2, 1, 2, 3}}) {
    for (std::int64_t k : {-3, -1, 0, 1, 2}) {
      SCOPED_TRACE(fmt::format("x {} k {}", shape, k));
      EXPECT_TRUE(
          GradcheckPasses([k](const Inputs& x) { return tril(x[0], k); }, {normal(shape, seed++)}));
      EXPECT_TRUE(
          GradcheckPasses([k](const Inputs& x) { return triu(x[0], k); }, {normal(shape, seed++)}));
    }
  }
}

// Shape pairs for the batched matmul (before any transpose): broadcast batch dims, one side 2-D,
// ranks that differ, and the folded [B, n, k] x [k, m] case.
std::vector<std::pair<Shape, Shape>> batched_pairs() {
  return {{Shape{2, 3, 4}, Shape{2, 4, 5}}, {Shape{2, 3, 4}, Shape{4, 5}},
          {Shape{3, 4}, Shape{2, 4, 5}},    {Shape{2, 1, 3, 4}, Shape{3, 4, 2}},
          {Shape{1, 3, 4}, Shape{2, 4, 5}}, {Shape{2, 3, 4}, Shape{1, 4, 5}}};
}

// The stored shape of an operand whose last two dimensions are transposed.
Shape swap_last(const Shape& s) {
  std::vector<std::int64_t> d = s.dims();
  std::swap(d[d.size() - 1], d[d.size() - 2]);
  return Shape(std::move(d));
}

TEST(OpsGradCheck, BatchedMatmulBroadcastEveryTransposeFlag) {
  std::uint64_t seed = 13700;
  for (const auto& [sa, sb] : batched_pairs()) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        SCOPED_TRACE(fmt::format("{} x {} transpose_a {} transpose_b {}", sa, sb, ta, tb));
        const MatmulOptions options{.transpose_a = ta, .transpose_b = tb};
        EXPECT_TRUE(GradcheckPasses(
            [options](const Inputs& x) { return matmul(x[0], x[1], options); },
            {normal(ta ? swap_last(sa) : sa, seed), normal(tb ? swap_last(sb) : sb, seed + 1)}));
        seed += 2;
      }
    }
  }
}

TEST(OpsGradCheck, MatmulOneDimensionalOperandsAndBmm) {
  std::uint64_t seed = 13800;
  for (const auto& [sa, sb] : std::vector<std::pair<Shape, Shape>>{{Shape{4}, Shape{4}},
                                                                   {Shape{4}, Shape{4, 3}},
                                                                   {Shape{3, 4}, Shape{4}},
                                                                   {Shape{4}, Shape{2, 4, 3}},
                                                                   {Shape{2, 3, 4}, Shape{4}}}) {
    SCOPED_TRACE(fmt::format("{} x {}", sa, sb));
    EXPECT_TRUE(GradcheckPasses([](const Inputs& x) { return matmul(x[0], x[1]); },
                                {normal(sa, seed), normal(sb, seed + 1)}));
    seed += 2;
  }
  EXPECT_TRUE(GradcheckPasses([](const Inputs& x) { return bmm(x[0], x[1]); },
                              {normal(Shape{3, 2, 4}, seed), normal(Shape{3, 4, 5}, seed + 1)}));
}

// ---------------------------------------------------------------------------------------------
// SecondOrderGradCheck

TEST(SecondOrderGradCheck, IndexSelectAndIndexAdd) {
  const Tensor idx = tensor({2, 0, 2, 1});
  for (std::int64_t axis : {0, -1}) {
    SCOPED_TRACE(fmt::format("axis {}", axis));
    EXPECT_TRUE(GradgradPasses([=](const Inputs& x) { return index_select(x[0], axis, idx); },
                               {normal(Shape{3, 3}, 13900)}));
    EXPECT_TRUE(GradgradPasses(
        [=](const Inputs& x) { return index_add(x[0], axis, idx, x[1]); },
        {normal(Shape{3, 3}, 13901), normal(axis == 0 ? Shape{4, 3} : Shape{3, 4}, 13902)}));
  }
}

TEST(SecondOrderGradCheck, GatherAndScatterAdd) {
  const Tensor idx = tensor({{2, 0, 2, 1}, {0, 0, 1, 2}});
  EXPECT_TRUE(GradgradPasses([=](const Inputs& x) { return gather(x[0], 1, idx); },
                             {normal(Shape{2, 3}, 13910)}));
  EXPECT_TRUE(GradgradPasses([=](const Inputs& x) { return scatter_add(x[0], -1, idx, x[1]); },
                             {normal(Shape{3, 3}, 13911), normal(Shape{2, 4}, 13912)}));
}

TEST(SecondOrderGradCheck, WhereMaskedFillTrilTriu) {
  const Tensor cond = random_mask(Shape{3, 1}, 13920);
  EXPECT_TRUE(GradgradPasses([=](const Inputs& x) { return where(cond, x[0], x[1]); },
                             {normal(Shape{3, 4}, 13921), normal(Shape{4}, 13922)}));
  const Tensor mask = random_mask(Shape{4}, 13923);
  EXPECT_TRUE(GradgradPasses([=](const Inputs& x) { return masked_fill(x[0], mask, -kInf); },
                             {normal(Shape{3, 4}, 13924)}));
  const Tensor causal = triu(ones(Shape{3, 3}), 1);
  EXPECT_TRUE(
      GradgradPasses([=](const Inputs& x) { return softmax(masked_fill(x[0], causal, -kInf), -1); },
                     {normal(Shape{2, 3, 3}, 13925)}));
  EXPECT_TRUE(GradgradPasses([](const Inputs& x) { return tril(x[0], -1); },
                             {normal(Shape{2, 3, 4}, 13926)}));
  EXPECT_TRUE(GradgradPasses([](const Inputs& x) { return triu(x[0], 1); },
                             {normal(Shape{2, 3, 4}, 13927)}));
}

TEST(SecondOrderGradCheck, BatchedMatmulBmmAndVectors) {
  std::uint64_t seed = 13930;
  for (const auto& [sa, sb] : batched_pairs()) {
    for (bool ta : {false, true}) {
      SCOPED_TRACE(fmt::format("{} x {} transpose_a {}", sa, sb, ta));
      const MatmulOptions options{.transpose_a = ta, .transpose_b = !ta};
      EXPECT_TRUE(GradgradPasses(
          [options](const Inputs& x) { return matmul(x[0], x[1], options); },
          {normal(ta ? swap_last(sa) : sa, seed), normal(!ta ? swap_last(sb) : sb, seed + 1)},
          seed));
      seed += 2;
    }
  }
  EXPECT_TRUE(GradgradPasses([](const Inputs& x) { return bmm(x[0], x[1]); },
                             {normal(Shape{2, 2, 3}, seed), normal(Shape{2, 3, 2}, seed + 1)}));
  EXPECT_TRUE(GradgradPasses([](const Inputs& x) { return matmul(x[0], x[1]); },
                             {normal(Shape{3}, seed + 2), normal(Shape{2, 3, 2}, seed + 3)}));
  EXPECT_TRUE(GradgradPasses([](const Inputs& x) { return matmul(x[0], x[0]); },
                             {normal(Shape{4}, seed + 4)}));
}

// ---------------------------------------------------------------------------------------------
// ClosedForm

TEST(ClosedForm, IndexSelectGradientCountsRepeats) {
  Tape tape;
  const Tensor x = tensor({{1, 2}, {3, 4}, {5, 6}}).requires_grad_();
  const Tensor y = index_select(x, 0, tensor({2, 0, 2}));
  EXPECT_EQ(y.shape(), (Shape{3, 2}));
  EXPECT_EQ(values_of(y), (std::vector<double>{5, 6, 1, 2, 5, 6}));
  sum(y).backward();
  // Row 2 was picked twice, row 1 never.
  EXPECT_EQ(values_of(x.grad()), (std::vector<double>{1, 1, 0, 0, 2, 2}));
}

TEST(ClosedForm, GatherPicksOnePerRowAndScattersBack) {
  Tape tape;
  const Tensor x = tensor({{1, 2, 3}, {4, 5, 6}}).requires_grad_();
  const Tensor y = gather(x, 1, tensor({{2, 2}, {0, 1}}));
  EXPECT_EQ(values_of(y), (std::vector<double>{3, 3, 4, 5}));
  sum(y * tensor({{1, 10}, {100, 1000}})).backward();
  EXPECT_EQ(values_of(x.grad()), (std::vector<double>{0, 0, 11, 100, 1000, 0}));
  const Tensor s =
      scatter_add(zeros(Shape{2, 3}), 1, tensor({{2, 2}, {0, 1}}), tensor({{1, 2}, {3, 4}}));
  EXPECT_EQ(values_of(s), (std::vector<double>{0, 0, 3, 3, 4, 0}));
}

TEST(ClosedForm, IndexTensorsGetNoGradientAndAreCopied) {
  Tape tape;
  const Tensor x = tensor({1, 2, 3}).requires_grad_();
  Tensor idx = tensor({0, 0}).requires_grad_();  // even if asked, indices are constants
  const Tensor y = index_select(x, 0, idx);
  idx.mutable_values()[0] = 2;  // written after the forward: the rule kept its own copy
  sum(y).backward();
  EXPECT_FALSE(idx.grad().defined());
  EXPECT_EQ(values_of(x.grad()), (std::vector<double>{2, 0, 0}));
}

TEST(ClosedForm, WhereAndMaskedFillMinusInfinityGiveExactZeros) {
  Tape tape;
  const Tensor a = tensor({1, 2, 3}).requires_grad_();
  const Tensor b = scalar(7).requires_grad_();
  const Tensor y = where(tensor({1, 0, std::nan("")}), a, b);  // NaN is true, as bool(nan)
  EXPECT_EQ(values_of(y), (std::vector<double>{1, 7, 3}));
  sum(y).backward();
  EXPECT_EQ(values_of(a.grad()), (std::vector<double>{1, 0, 1}));
  EXPECT_EQ(b.grad().item(), 1.0);

  const Tensor s = tensor({{0.5, -1, 2}, {3, 0, 1}}).requires_grad_();
  const Tensor causal = triu(ones(Shape{2, 3}), 1);
  const Tensor p = softmax(masked_fill(s, causal, -kInf), -1);
  EXPECT_EQ(values_of(p)[1], 0.0);
  EXPECT_EQ(values_of(p)[0], 1.0);
  sum(p * tensor({{1, 2, 3}, {4, 5, 6}})).backward();
  const std::vector<double> g = values_of(s.grad());
  for (double v : g) EXPECT_TRUE(std::isfinite(v)) << fmt::format("{}", fmt::join(g, ", "));
  EXPECT_EQ(g[1], 0.0);
  EXPECT_EQ(g[2], 0.0);
  EXPECT_EQ(g[5], 0.0);
  EXPECT_EQ(g[0], 0.0);  // a softmax over one element is constant
}

TEST(ClosedForm, TrilTriuValues) {
  const Tensor x = tensor({{1, 2, 3}, {4, 5, 6}});
  EXPECT_EQ(values_of(tril(x)), (std::vector<double>{1, 0, 0, 4, 5, 0}));
  EXPECT_EQ(values_of(triu(x)), (std::vector<double>{1, 2, 3, 0, 5, 6}));
  EXPECT_EQ(values_of(tril(x, -1)), (std::vector<double>{0, 0, 0, 4, 0, 0}));
  EXPECT_EQ(values_of(triu(x, 2)), (std::vector<double>{0, 0, 3, 0, 0, 0}));
}

TEST(ClosedForm, BatchedMatmulEqualsEachProduct) {
  const Tensor a = normal(Shape{3, 2, 4}, 14000).detach();
  const Tensor b = normal(Shape{4, 5}, 14001).detach();
  const Tensor y = matmul(a, b);
  ASSERT_EQ(y.shape(), (Shape{3, 2, 5}));
  for (std::int64_t i = 0; i < 3; ++i) {
    const Tensor ai = reshape(index_select(a, 0, tensor({static_cast<double>(i)})), {2, 4});
    const Tensor yi = matmul(ai, b);
    for (std::int64_t r = 0; r < 2; ++r) {
      for (std::int64_t c = 0; c < 5; ++c) EXPECT_DOUBLE_EQ(y.at({i, r, c}), yi.at({r, c}));
    }
  }
  // [k] x [k] is the dot product, a scalar.
  const Tensor d = matmul(tensor({1, 2, 3}), tensor({4, 5, 6}));
  EXPECT_EQ(d.shape(), Shape{});
  EXPECT_EQ(d.item(), 32.0);
}

// ---------------------------------------------------------------------------------------------
// TorchParity

TEST(TorchParity, GathersMasksAndBatchedMatmul) {
  TorchOracle oracle;
  const Tensor idx = tensor({3, 0, 3, 1});
  oracle.add("index_select -1", "torch.index_select(x0, -1, x1.long())",
             {normal({2, 3, 4}, 14100), idx},
             [](Span x) { return Outputs{index_select(x[0], -1, x[1])}; });
  oracle.add("index_select 0 scalar index", "torch.index_select(x0, 0, x1.long())",
             {normal({4, 3}, 14101), scalar(2)},
             [](Span x) { return Outputs{index_select(x[0], 0, x[1])}; });
  oracle.add("index_add 1", "torch.index_add(x0, 1, x1.long(), x2)",
             {normal({3, 4}, 14102), idx, normal({3, 4}, 14103)},
             [](Span x) { return Outputs{index_add(x[0], 1, x[1], x[2])}; });
  const Tensor gidx = tensor({{2, 0, 2, 1, 1}, {0, 0, 1, 2, 2}});
  oracle.add("gather 1", "torch.gather(x0, 1, x1.long())", {normal({3, 3}, 14104), gidx},
             [](Span x) { return Outputs{gather(x[0], 1, x[1])}; });
  oracle.add("gather -2", "torch.gather(x0, -2, x1.long())", {normal({3, 5}, 14105), gidx},
             [](Span x) { return Outputs{gather(x[0], -2, x[1])}; });
  oracle.add("scatter_add 1", "torch.scatter_add(x0, 1, x1.long(), x2)",
             {normal({2, 3}, 14106), gidx, normal({2, 5}, 14107)},
             [](Span x) { return Outputs{scatter_add(x[0], 1, x[1], x[2])}; });
  oracle.add("where broadcast", "torch.where(x0 != 0, x1, x2)",
             {random_mask({3, 1}, 14108), normal({1, 4}, 14109), normal({4}, 14110)},
             [](Span x) { return Outputs{where(x[0], x[1], x[2])}; });
  oracle.add("masked_fill", "x0.masked_fill(x1 != 0, 2.5)",
             {normal({2, 3, 4}, 14111), random_mask({3, 1}, 14112)},
             [](Span x) { return Outputs{masked_fill(x[0], x[1], 2.5)}; });
  oracle.add("masked_fill -inf then softmax",
             "torch.softmax(x0.masked_fill(torch.triu(torch.ones(5, 5, dtype=torch.float64), 1) "
             "!= 0, float('-inf')), -1)",
             {normal({2, 5, 5}, 14113)}, [](Span x) {
               return Outputs{softmax(masked_fill(x[0], triu(ones({5, 5}), 1), -kInf), -1)};
             });
  oracle.add("masked_fill -inf", "x0.masked_fill(x1 != 0, float('-inf'))",
             {normal({3, 4}, 14114), random_mask({3, 4}, 14115)},
             [](Span x) { return Outputs{masked_fill(x[0], x[1], -kInf)}; });
  oracle.add("tril triu", "(torch.tril(x0, -1), torch.triu(x0, 1), torch.tril(x0))",
             {normal({2, 3, 4}, 14116)}, [](Span x) {
               return Outputs{tril(x[0], -1), triu(x[0], 1), tril(x[0])};
             });
  oracle.add("matmul batched", "torch.matmul(x0, x1)",
             {normal({2, 3, 4}, 14117), normal({2, 4, 5}, 14118)},
             [](Span x) { return Outputs{matmul(x[0], x[1])}; });
  oracle.add("matmul batch x matrix", "torch.matmul(x0, x1)",
             {normal({2, 3, 4}, 14119), normal({4, 5}, 14120)},
             [](Span x) { return Outputs{matmul(x[0], x[1])}; });
  oracle.add("matmul broadcast batches", "torch.matmul(x0, x1)",
             {normal({2, 1, 3, 4}, 14121), normal({3, 4, 2}, 14122)},
             [](Span x) { return Outputs{matmul(x[0], x[1])}; });
  oracle.add("matmul transposed flags", "torch.matmul(x0.transpose(-1, -2), x1.transpose(-1, -2))",
             {normal({2, 4, 3}, 14123), normal({5, 4}, 14124)}, [](Span x) {
               return Outputs{matmul(x[0], x[1], {.transpose_a = true, .transpose_b = true})};
             });
  oracle.add("matmul vectors", "(torch.matmul(x0, x1), torch.matmul(x0, x2), torch.matmul(x2, x1))",
             {normal({4}, 14125), normal({4}, 14126), normal({2, 4, 4}, 14127)}, [](Span x) {
               return Outputs{matmul(x[0], x[1]), matmul(x[0], x[2]), matmul(x[2], x[1])};
             });
  oracle.add("bmm", "torch.bmm(x0, x1)", {normal({3, 2, 4}, 14128), normal({3, 4, 2}, 14129)},
             [](Span x) { return Outputs{bmm(x[0], x[1])}; });
  const auto r = oracle.run(1e-12);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_EQ(r.cases, 17u);
  std::printf("[ TorchParity ] %zu cases, worst error %.3g\n", r.cases, r.worst_error);
}

// A random composition, built one op at a time: the tapegrad function and the PyTorch expression
// of the same computation, the inputs so far and the current result's shape.
struct Composition {
  std::string expr = "x0";
  std::vector<Tensor> inputs;
  std::function<Tensor(Span)> f = [](Span x) { return x[0]; };
  Shape shape;
};

// Appends one random op of this suite to `c` (indices drawn in range, shapes that fit).
void extend(Composition& c, Generator& gen, std::uint64_t& seed) {
  const Shape s = c.shape;
  const auto rank = static_cast<std::int64_t>(s.rank());
  const std::int64_t axis = static_cast<std::int64_t>(gen.below(2 * s.rank())) - rank;
  const std::size_t a = s.normalize_axis(axis, "test");
  const std::size_t k = c.inputs.size();
  auto prev = c.f;
  auto draw = [&](std::int64_t n) { return static_cast<std::int64_t>(gen.below(n)) + 1; };
  // A shape that broadcasts to s: some dimensions set to 1, maybe the leading one dropped.
  auto broadcastable = [&] {
    std::vector<std::int64_t> d = s.dims();
    for (auto& v : d) v = gen.below(3) == 0 ? 1 : v;
    if (!d.empty() && gen.below(3) == 0) d.erase(d.begin());
    return Shape(std::move(d));
  };
  switch (gen.below(8)) {
    case 0: {
      const Shape is{draw(4)};
      c.inputs.push_back(random_indices(is, s[a], seed++));
      c.expr = fmt::format("torch.index_select({}, {}, x{}.long())", c.expr, axis, k);
      c.f = [=](Span x) { return index_select(prev(x), axis, x[k]); };
      std::vector<std::int64_t> d = s.dims();
      d[a] = is[0];
      c.shape = Shape(std::move(d));
      break;
    }
    case 1: {
      std::vector<std::int64_t> d = s.dims();
      for (std::size_t i = 0; i < d.size(); ++i) d[i] = i == a ? draw(4) : draw(d[i]);
      const Shape is(std::move(d));
      c.inputs.push_back(random_indices(is, s[a], seed++));
      c.expr = fmt::format("torch.gather({}, {}, x{}.long())", c.expr, axis, k);
      c.f = [=](Span x) { return gather(prev(x), axis, x[k]); };
      c.shape = is;
      break;
    }
    case 2: {
      std::vector<std::int64_t> d = s.dims();
      d[a] = draw(4);
      c.inputs.push_back(random_indices(Shape{d[a]}, s[a], seed++));
      c.inputs.push_back(normal(Shape(d), seed++));
      c.expr = fmt::format("torch.index_add({}, {}, x{}.long(), x{})", c.expr, axis, k, k + 1);
      c.f = [=](Span x) { return index_add(prev(x), axis, x[k], x[k + 1]); };
      break;
    }
    case 3: {
      std::vector<std::int64_t> d = s.dims();
      for (std::size_t i = 0; i < d.size(); ++i) d[i] = i == a ? draw(4) : draw(d[i]);
      const Shape is(std::move(d));
      c.inputs.push_back(random_indices(is, s[a], seed++));
      c.inputs.push_back(normal(is, seed++));
      c.expr = fmt::format("torch.scatter_add({}, {}, x{}.long(), x{})", c.expr, axis, k, k + 1);
      c.f = [=](Span x) { return scatter_add(prev(x), axis, x[k], x[k + 1]); };
      break;
    }
    case 4: {
      c.inputs.push_back(random_mask(broadcastable(), seed++));
      c.inputs.push_back(normal(broadcastable(), seed++));
      const bool flip = gen.below(2) == 1;
      c.expr = flip ? fmt::format("torch.where(x{} != 0, x{}, {})", k, k + 1, c.expr)
                    : fmt::format("torch.where(x{} != 0, {}, x{})", k, c.expr, k + 1);
      c.f = [=](Span x) {
        return flip ? where(x[k], x[k + 1], prev(x)) : where(x[k], prev(x), x[k + 1]);
      };
      break;
    }
    case 5: {
      const double value = static_cast<double>(gen.below(7)) - 3.0;
      c.inputs.push_back(random_mask(broadcastable(), seed++));
      c.expr = fmt::format("{}.masked_fill(x{} != 0, {})", c.expr, k, value);
      c.f = [=](Span x) { return masked_fill(prev(x), x[k], value); };
      break;
    }
    case 6: {
      if (rank < 2) return extend(c, gen, seed);
      const std::int64_t diag = static_cast<std::int64_t>(gen.below(5)) - 2;
      const bool lower = gen.below(2) == 1;
      c.expr = fmt::format("torch.{}({}, {})", lower ? "tril" : "triu", c.expr, diag);
      c.f = [=](Span x) { return lower ? tril(prev(x), diag) : triu(prev(x), diag); };
      break;
    }
    default: {
      // matmul on the right by [k, m], a broadcast batch of them, or a vector.
      const std::int64_t inner = s[s.rank() - 1];
      std::vector<std::int64_t> d;
      const std::uint64_t kind = gen.below(3);
      if (kind == 1 && rank >= 2) {
        d.assign(s.dims().begin(), s.dims().end() - 2);
        for (auto& v : d) v = gen.below(2) == 0 ? 1 : v;
      }
      d.push_back(inner);
      if (kind != 2 || rank == 1) d.push_back(draw(4));
      const Shape w(d);
      c.inputs.push_back(normal(w, seed++));
      c.expr = fmt::format("torch.matmul({}, x{})", c.expr, k);
      c.f = [=](Span x) { return matmul(prev(x), x[k]); };
      NoGradGuard no_grad;
      c.shape = matmul(zeros(s), zeros(w)).shape();
      break;
    }
  }
}

TEST(TorchParity, RandomCompositionsOfGathersMasksAndMatmul) {
  TorchOracle oracle;
  Generator gen(20261313);
  std::uint64_t seed = 14200;
  const int cases = 240;
  for (int i = 0; i < cases; ++i) {
    Composition c;
    std::vector<std::int64_t> dims(1 + gen.below(3));
    for (auto& d : dims) d = static_cast<std::int64_t>(gen.below(4)) + 1;
    c.shape = Shape(dims);
    c.inputs.push_back(normal(c.shape, seed++));
    const std::uint64_t steps = 2 + gen.below(2);
    for (std::uint64_t j = 0; j < steps && c.shape.rank() > 0; ++j) extend(c, gen, seed);
    oracle.add(fmt::format("random {}", i), c.expr, c.inputs,
               [f = c.f](Span x) { return Outputs{f(x)}; });
  }
  const auto r = oracle.run(1e-12);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_EQ(r.cases, static_cast<std::size_t>(cases));
  std::printf("[ TorchParity ] %zu random compositions, worst error %.3g\n", r.cases,
              r.worst_error);
}

// ---------------------------------------------------------------------------------------------
// Misuse

TEST(Misuse, IndexOpsWrongAxis) {
  const Tensor x = zeros(Shape{2, 3});
  EXPECT_TG_THROW(index_select(x, 2, tensor({0})), AxisError, "index_select", "axis 2", "[2, 3]");
  EXPECT_TG_THROW(index_select(x, -3, tensor({0})), AxisError, "index_select", "axis -3");
  EXPECT_TG_THROW(gather(x, 2, zeros(Shape{2, 3})), AxisError, "gather", "axis 2", "[2, 3]");
  EXPECT_TG_THROW(index_add(x, -3, tensor({0}), zeros(Shape{1, 3})), AxisError, "index_add");
  EXPECT_TG_THROW(scatter_add(x, 5, zeros(Shape{2, 3}), zeros(Shape{2, 3})), AxisError,
                  "scatter_add");
  EXPECT_TG_THROW(index_select(scalar(1), 0, tensor({0})), AxisError, "index_select", "scalar");
}

TEST(Misuse, IndexOpsNonIntegerOrOutOfRangeIndex) {
  const Tensor x = zeros(Shape{2, 3});
  EXPECT_TG_THROW(index_select(x, 1, tensor({0, 1.5})), ValueError, "index_select", "index 1.5",
                  "position 1", "not an integer", "[2, 3]");
  EXPECT_TG_THROW(index_select(x, 1, tensor({0, 3})), ValueError, "index_select", "index 3",
                  "position 1", "size 3", "0..2");
  // Negative indices are rejected, as torch 1.13's index_select and gather do.
  EXPECT_TG_THROW(index_select(x, 0, tensor({-1})), ValueError, "index_select", "index -1",
                  "position 0", "size 2");
  EXPECT_TG_THROW(index_select(x, 0, tensor({std::nan("")})), ValueError, "index_select",
                  "not an integer");
  EXPECT_TG_THROW(gather(x, 0, tensor({{0, 2, 1}})), ValueError, "gather", "index 2",
                  "position [0, 1]", "size 2");
  EXPECT_TG_THROW(gather(x, 1, tensor({{0, -1}})), ValueError, "gather", "index -1",
                  "position [0, 1]", "size 3");
  EXPECT_TG_THROW(index_add(x, 0, tensor({2}), zeros(Shape{1, 3})), ValueError, "index_add",
                  "index 2", "size 2");
  EXPECT_TG_THROW(scatter_add(x, 1, tensor({{0.5}}), zeros(Shape{1, 1})), ValueError, "scatter_add",
                  "index 0.5", "not an integer");
}

TEST(Misuse, IndexOpsShapesThatDoNotFit) {
  const Tensor x = zeros(Shape{2, 3});
  EXPECT_TG_THROW(index_select(x, 0, zeros(Shape{1, 1})), ShapeError, "index_select", "1-D",
                  "[2, 3]", "[1, 1]");
  EXPECT_TG_THROW(gather(x, 0, zeros(Shape{2})), ShapeError, "gather", "rank",
                  "[2, 3] vs "
                  "indices [2]");
  EXPECT_TG_THROW(gather(x, 0, zeros(Shape{1, 4})), ShapeError, "gather", "[2, 3]", "[1, 4]");
  EXPECT_TG_THROW(index_add(x, 1, tensor({0, 1}), zeros(Shape{2, 3})), ShapeError, "index_add",
                  "[2, 3] vs source [2, 3]");
  EXPECT_TG_THROW(scatter_add(x, 1, zeros(Shape{2, 2}), zeros(Shape{2, 3})), ShapeError,
                  "scatter_add", "[2, 3] vs indices [2, 2]");
}

TEST(Misuse, MaskOpsShapes) {
  EXPECT_TG_THROW(where(zeros(Shape{2}), zeros(Shape{3}), zeros(Shape{3})), ShapeError, "where",
                  "[2] vs [3] vs [3]");
  EXPECT_TG_THROW(where(zeros(Shape{3}), zeros(Shape{2, 3}), zeros(Shape{4, 1})), ShapeError,
                  "where", "[3] vs [2, 3] vs [4, 1]");
  EXPECT_TG_THROW(masked_fill(zeros(Shape{3}), zeros(Shape{2, 3}), 0.0), ShapeError, "masked_fill",
                  "[3] vs mask [2, 3]");
  EXPECT_TG_THROW(tril(zeros(Shape{3})), ShapeError, "tril", "rank >= 2", "[3]");
  EXPECT_TG_THROW(triu(scalar(1)), ShapeError, "triu", "[]");
}

TEST(Misuse, BatchedMatmulShapeMismatch) {
  EXPECT_TG_THROW(matmul(zeros(Shape{2, 3, 4}), zeros(Shape{2, 5, 6})), ShapeError, "matmul",
                  "inner dimensions", "[2, 3, 4]", "[2, 5, 6]");
  EXPECT_TG_THROW(matmul(zeros(Shape{2, 3, 4}), zeros(Shape{3, 4, 6})), ShapeError, "matmul",
                  "batch dimensions [2] and [3]", "[2, 3, 4] vs [3, 4, 6]");
  EXPECT_TG_THROW(matmul(zeros(Shape{3}), zeros(Shape{4})), ShapeError, "matmul", "[3] vs [4]");
  EXPECT_TG_THROW(matmul(zeros(Shape{3}), zeros(Shape{3, 2}), {.transpose_a = true}), ShapeError,
                  "matmul", "1-D", "[3]");
  EXPECT_TG_THROW(matmul(scalar(1), zeros(Shape{3})), ShapeError, "matmul", "[] vs [3]");
  EXPECT_TG_THROW(bmm(zeros(Shape{2, 3, 4}), zeros(Shape{4, 5})), ShapeError, "bmm",
                  "[2, 3, 4] vs [4, 5]");
  EXPECT_TG_THROW(bmm(zeros(Shape{2, 3, 4}), zeros(Shape{1, 4, 5})), ShapeError, "bmm",
                  "[2, 3, 4] vs [1, 4, 5]");
  // Also with a tape recording and inputs that require grad: nothing is recorded.
  Tape tape;
  const Tensor p = zeros(Shape{2, 3, 4}).requires_grad_();
  EXPECT_TG_THROW(matmul(p, p), ShapeError, "matmul", "[2, 3, 4] vs [2, 3, 4]");
  EXPECT_EQ(tape.size(), 0u);
}

}  // namespace
