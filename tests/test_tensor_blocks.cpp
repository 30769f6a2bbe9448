// Issue 17's storage: a tensor is one block (header, then a recorded result's node, then its
// values), counted by its handles and held by its tape; Values keeps four doubles inline; a Shape
// is one pointer to a shared record. These tests check what users rely on: values, gradients and
// errors are what they were, whatever holds a block and whichever thread lets it go.
#include <atomic>
#include <cstddef>
#include <memory>
#include <numeric>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tapegrad/tapegrad.hpp"

namespace {

using tapegrad::Shape;
using tapegrad::Tape;
using tapegrad::Tensor;
using tapegrad::TensorList;
using tapegrad::Values;

// --- Values: std::vector<double>'s meaning with inline storage for four doubles -----------------

TEST(ValuesVector, SmallAndLargeValuesCopyMoveAndCompareAsVectorsDo) {
  for (std::size_t n : {0u, 1u, 3u, 4u, 5u, 9u, 1000u}) {
    SCOPED_TRACE(n);
    Values a(n, 0.0);
    std::iota(a.begin(), a.end(), 1.0);
    const Values copy = a;
    EXPECT_EQ(copy, a);
    EXPECT_EQ(copy.size(), n);
    Values moved = std::move(a);
    EXPECT_EQ(moved, copy);
    EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): a moved-from Values is empty
    Values other{7.0, 8.0};
    other.swap(moved);
    EXPECT_EQ(other, copy);
    EXPECT_EQ(moved, (Values{7.0, 8.0}));
    if (n > 0) {
      EXPECT_EQ(copy.back(), static_cast<double>(n));
    }
  }
}

TEST(ValuesVector, GrowsByPushBackAndInsertKeepingEveryElementInOrder) {
  Values v;
  for (int i = 0; i < 50; ++i) v.push_back(i);  // through the inline storage and two regrowths
  ASSERT_EQ(v.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(v[static_cast<std::size_t>(i)], i);
  const std::vector<double> middle = {-1.0, -2.0, -3.0};
  v.insert(v.begin() + 10, middle.begin(), middle.end());
  ASSERT_EQ(v.size(), 53u);
  EXPECT_EQ(v[9], 9.0);
  EXPECT_EQ(v[10], -1.0);
  EXPECT_EQ(v[12], -3.0);
  EXPECT_EQ(v[13], 10.0);
  v.resize(2, 0.0);
  EXPECT_EQ(v, (Values{0.0, 1.0}));
  v.resize(6, 5.5);  // new elements get the value when one is given
  EXPECT_EQ(v, (Values{0.0, 1.0, 5.5, 5.5, 5.5, 5.5}));
  v.assign(3, 2.0);
  EXPECT_EQ(v, (Values{2.0, 2.0, 2.0}));
}

TEST(ValuesVector, ATensorTakesOverALargeBufferAndCopiesASmallOne) {
  Values large(100, 0.0);
  std::iota(large.begin(), large.end(), 0.0);
  const double* buffer = large.data();
  const Tensor t = Tensor::from_values(std::move(large), Shape{100});
  EXPECT_EQ(t.values().data(), buffer);  // no copy: the tensor owns the Values' buffer now
  EXPECT_EQ(t.values()[99], 99.0);
  const Tensor s = Tensor::from_values(Values{3.0, 4.0}, Shape{2});
  EXPECT_EQ(s.values()[0], 3.0);
  EXPECT_EQ(s.values()[1], 4.0);
}

// --- Shape: one pointer to a shared record --------------------------------------------------

TEST(ShapeRecord, CopiesShareOneRecordAndEqualShapesCompareEqualAcrossRecords) {
  const Shape a{2, 3, 4};
  const Shape b = a;       // the same record
  const Shape c{2, 3, 4};  // another record, the same dimensions
  EXPECT_EQ(&a.dims(), &b.dims());
  EXPECT_NE(&a.dims(), &c.dims());
  EXPECT_EQ(a, c);
  EXPECT_EQ(c.numel(), 24u);
  EXPECT_NE(a, (Shape{2, 3}));
  EXPECT_EQ(Shape(), Shape(std::vector<std::int64_t>{}));  // both scalars: no record at all
  EXPECT_EQ(Shape().numel(), 1u);
  EXPECT_TRUE(Shape().dims().empty());
  EXPECT_EQ((Shape{0, 5}).numel(), 0u);
}

TEST(ShapeRecord, ShapesCopiedAndDroppedOnManyThreadsStayIntact) {
  const Shape shared{7, 11};
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        const Shape copy = shared;
        if (copy.numel() != 77u || copy[1] != 11) ++wrong;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(shared.numel(), 77u);
}

// --- Blocks on the tape ---------------------------------------------------------------------

// A recorded scalar op is one block: the header, where, its inputs and the value (issue 17's
// memory target is 120 bytes per node including the tape's own entry).
TEST(TensorBlocks, ARecordedScalarOpIsOneBlockOfAtMost96Bytes) {
  const Tensor x = tapegrad::scalar(0.5).requires_grad_();
  const Tensor c = tapegrad::scalar(2.0);
  Tape tape;
  const Tensor y = x * c;
  const Tensor z = tapegrad::tanh(y);
  EXPECT_LE(y.impl().block_bytes, 96u);
  EXPECT_LE(z.impl().block_bytes, 96u);
  EXPECT_EQ(y.values()[0], 1.0);
  EXPECT_NEAR(z.item(), std::tanh(1.0), 1e-15);
}

TEST(TensorBlocks, AResultOutlivesItsTapeWithItsValueAndOpButNotItsNode) {
  const Tensor x = tapegrad::tensor({1.0, 2.0}).requires_grad_();
  Tensor kept;
  {
    Tape tape;
    const Tensor hidden = x * 3.0;  // held only by the tape once this scope's handle is gone
    kept = tapegrad::sum(hidden);
  }
  EXPECT_EQ(kept.item(), 9.0);
  EXPECT_EQ(kept.op(), "sum");
  EXPECT_FALSE(kept.is_leaf());
  Tape again;
  EXPECT_THROW(kept.backward(), tapegrad::AutogradError);
  EXPECT_THROW((void)(kept * 2.0), tapegrad::AutogradError);
  EXPECT_EQ(tapegrad::sum(kept.detach() * 2.0).item(), 18.0);
}

TEST(TensorBlocks, ATapeKeepsEveryResultItsNodesReadAfterTheUserDropsThem) {
  const Tensor x = tapegrad::scalar(0.3).requires_grad_();
  Tape tape;
  Tensor y = x;
  for (int i = 0; i < 10; ++i)
    y = tapegrad::sigmoid(y * 1.5 + 0.1);  // each old y: held by the tape
  y.backward();
  // The closed form, step by step: dy/dx = prod 1.5 sigma'(z_i).
  double v = 0.3, d = 1.0;
  for (int i = 0; i < 10; ++i) {
    const double s = 1.0 / (1.0 + std::exp(-(1.5 * v + 0.1)));
    d *= 1.5 * s * (1.0 - s);
    v = s;
  }
  EXPECT_NEAR(y.item(), v, 1e-15);
  EXPECT_NEAR(x.grad().item(), d, 1e-15 * std::abs(d));
}

TEST(TensorBlocks, LongTapesCrossResultChunksAndNodeViewsReadEveryNode) {
  const Tensor x = tapegrad::scalar(1.0).requires_grad_();
  Tape tape;
  Tensor y = x;
  constexpr int n = 2500;  // over two chunks of 1024 results
  for (int i = 0; i < n; ++i) y = y * 1.0001;
  ASSERT_EQ(tape.size(), static_cast<std::size_t>(n));
  EXPECT_EQ(tape.node(2000).op, "mul");
  EXPECT_TRUE(tape.node(n - 1).result.same(y));
  ASSERT_EQ(tape.node(1500).inputs.size(), 2u);
  EXPECT_TRUE(tape.node(1500).inputs[0].same(tape.node(1499).result));
  y.backward();
  EXPECT_NEAR(x.grad().item(), std::pow(1.0001, n), 1e-12);
  tape.clear();
  EXPECT_EQ(tape.size(), 0u);
  Tensor z = x * 2.0;  // the kept chunk is reused
  EXPECT_EQ(tape.size(), 1u);
  EXPECT_EQ(tape.node(0).op, "mul");
}

TEST(TensorBlocks, ARecordedResultHasNoGradToSetAndNothingToZero) {
  const Tensor x = tapegrad::tensor({1.0, 2.0}).requires_grad_();
  Tape tape;
  Tensor y = x * 2.0;
  EXPECT_THROW(y.set_grad(tapegrad::ones({2})), tapegrad::AutogradError);
  EXPECT_NO_THROW(y.zero_grad());
  EXPECT_EQ(y.values()[1], 4.0);
  tapegrad::sum(y).backward();  // the failed set_grad left the node whole
  EXPECT_EQ(x.grad().values()[0], 2.0);
}

// --- Rules with state --------------------------------------------------------------------------

// Counts live copies of itself: a rule capturing one must destroy every copy it made.
struct Tracked {
  std::shared_ptr<std::atomic<int>> live;
  explicit Tracked(std::shared_ptr<std::atomic<int>> counter) : live(std::move(counter)) {
    ++*live;
  }
  Tracked(const Tracked& other) : live(other.live) { ++*live; }
  Tracked(Tracked&& other) noexcept : live(other.live) { ++*live; }
  ~Tracked() { --*live; }
};

Tensor scaled_by_captured_vector(const Tensor& x, std::vector<double> factors, Tracked tracked) {
  Values out(x.numel());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = factors[i] * x.values()[i];
  return tapegrad::record({"scaled", "dx = g * factors"}, x.shape(), std::move(out), {x},
                          [factors = std::move(factors), tracked = std::move(tracked)](
                              const Tensor& g, const Tensor&, std::span<const Tensor>) {
                            return TensorList{g * tapegrad::tensor({factors[0], factors[1]})};
                          });
}

TEST(TensorBlocks, AStatefulRuleIsUsedByBackwardAndDestroyedWithItsNode) {
  const auto live = std::make_shared<std::atomic<int>>(0);
  const Tensor x = tapegrad::tensor({1.0, 2.0}).requires_grad_();
  {
    Tape tape;
    const Tensor y = scaled_by_captured_vector(x, {3.0, -4.0}, Tracked(live));
    EXPECT_EQ(live->load(), 1);  // the node's copy, and only it
    tapegrad::sum(y).backward();
    EXPECT_EQ(x.grad().values()[0], 3.0);
    EXPECT_EQ(x.grad().values()[1], -4.0);
    tape.clear();
    EXPECT_EQ(live->load(), 0);  // clear destroyed it, though y still lives
    EXPECT_EQ(y.values()[1], -8.0);
  }
  EXPECT_EQ(live->load(), 0);
}

// A rule whose state needs more alignment than a block gives is kept in a box of its own.
struct alignas(64) WideFactor {
  double value;
};

TEST(TensorBlocks, AnOverAlignedRuleStateGivesTheClosedFormGradient) {
  const Tensor x = tapegrad::scalar(1.5).requires_grad_();
  const WideFactor factor{2.5};
  Tape tape;
  const Tensor y =
      tapegrad::record("wide", Shape{}, Values{factor.value * x.item()}, {x},
                       [factor](const Tensor& g, const Tensor&, std::span<const Tensor>) {
                         return TensorList{g * factor.value};
                       });
  EXPECT_EQ(y.item(), 3.75);
  y.backward();
  EXPECT_EQ(x.grad().item(), 2.5);
}

TEST(TensorBlocks, OneRuleTypeRecordedUnderTwoNamesShowsEachName) {
  const Tensor x = tapegrad::scalar(2.0).requires_grad_();
  Tape tape;
  for (int i = 0; i < 4; ++i) {
    const tapegrad::OpInfo info =
        i % 2 == 0 ? tapegrad::OpInfo{"alpha", "dx = g"} : tapegrad::OpInfo{"beta", "dx = g (too)"};
    (void)tapegrad::record(
        info, Shape{}, Values{x.item()}, {x},
        [](const Tensor& g, const Tensor&, std::span<const Tensor>) { return TensorList{g}; });
  }
  EXPECT_EQ(tape.node(0).op, "alpha");
  EXPECT_EQ(tape.node(1).op, "beta");
  EXPECT_EQ(tape.node(2).op, "alpha");
  EXPECT_EQ(tape.node(3).rule_text, "dx = g (too)");
}

// --- Gradients leaving the sweep, and handles crossing threads -----------------------------------

// add hands one gradient to both inputs, counted without atomics inside the sweep: the leaves'
// gradients must still be their own and safe to share between threads afterwards.
TEST(TensorBlocks, LeafGradientsFromOneRuleOutputAreTheirOwnAndShareableAcrossThreads) {
  const Tensor a = tapegrad::scalar(1.0).requires_grad_();
  const Tensor b = tapegrad::scalar(2.0).requires_grad_();
  {
    Tape tape;
    (tapegrad::tanh(a + b) * 3.0).backward();
  }
  const double expected = 3.0 * (1.0 - std::tanh(3.0) * std::tanh(3.0));
  EXPECT_NEAR(a.grad().item(), expected, 1e-15);
  EXPECT_NEAR(b.grad().item(), expected, 1e-15);
  EXPECT_FALSE(a.grad().same(b.grad()));
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        const Tensor ga = a.grad(), gb = b.grad();  // copies and releases on four threads
        if (ga.item() != gb.item()) ++wrong;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_NEAR(a.grad().item(), expected, 1e-15);
}

// A result held by a tape on one thread and by handles on others: the last one to let go frees
// it, whether that is the tape's clear or another thread's release (ASan and TSan check this).
TEST(TensorBlocks, ResultsReleasedOnOtherThreadsWhileTheirTapeClears) {
  const Tensor x = tapegrad::tensor({1.0, 2.0, 3.0}).requires_grad_();
  for (int round = 0; round < 50; ++round) {
    std::vector<Tensor> handed;
    Tape tape;
    for (int i = 0; i < 20; ++i) handed.push_back(tapegrad::exp(x * (0.1 * i)));
    std::vector<Tensor> first(handed.begin(), handed.begin() + 10);
    std::vector<Tensor> second(handed.begin() + 10, handed.end());
    handed.clear();
    std::thread a([list = std::move(first)]() mutable { list.clear(); });
    std::thread b([list = std::move(second)]() mutable {
      double total = 0.0;
      for (const Tensor& t : list) total += t.values()[2];
      EXPECT_GT(total, 0.0);
    });
    tape.clear();  // concurrently with the two threads letting their handles go
    a.join();
    b.join();
  }
  Tape tape;
  const Tensor y = tapegrad::sum(tapegrad::exp(x * 0.5));
  y.backward();
  EXPECT_NEAR(x.grad().values()[2], 0.5 * std::exp(1.5), 1e-14);
}

}  // namespace
