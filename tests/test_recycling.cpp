// Recycled storage (issue 17): impls, value buffers and node chunks come from per-thread free
// lists and caches. These tests check what recycling must never change: a live tensor's values
// are its own, whichever thread made or frees it, and Values keeps std::vector's meaning except
// that Values(n) leaves the elements unset.
#include <cstddef>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tapegrad/tapegrad.hpp"

namespace {

using tapegrad::Shape;
using tapegrad::Tensor;
using tapegrad::Values;

// A tensor of n elements whose element i is base + i, so any overwrite by a recycled buffer shows.
Tensor numbered(std::size_t n, double base) {
  Values values(n);
  for (std::size_t i = 0; i < n; ++i) values[i] = base + static_cast<double>(i);
  return Tensor::from_values(std::move(values), Shape{static_cast<std::int64_t>(n)});
}

::testing::AssertionResult holds_numbers(const Tensor& t, double base) {
  const auto v = t.values();
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != base + static_cast<double>(i)) {
      return ::testing::AssertionFailure()
             << "element " << i << " is " << v[i] << ", expected " << base + static_cast<double>(i);
    }
  }
  return ::testing::AssertionSuccess();
}

// Small (1-32 elements: the size classes), medium (glibc) and large (the 64 KiB cache) sizes.
const std::vector<std::size_t> sizes = {1, 2, 3, 5, 16, 31, 32, 33, 100, 8191, 8192, 20000};

TEST(Recycling, LiveTensorsKeepTheirValuesWhileOthersAreFreedAndReallocated) {
  std::vector<Tensor> live;
  for (int round = 0; round < 20; ++round) {
    std::vector<Tensor> scratch;
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      live.push_back(numbered(sizes[k], 1000.0 * round + static_cast<double>(k)));
      scratch.push_back(numbered(sizes[k], -1.0));
      scratch.push_back(tapegrad::zeros({static_cast<std::int64_t>(sizes[k])}));
    }
    // Freed now: the next round's allocations reuse these buffers and impls.
  }
  for (int round = 0; round < 20; ++round) {
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      const Tensor& t = live[static_cast<std::size_t>(round) * sizes.size() + k];
      ASSERT_EQ(t.numel(), sizes[k]);
      EXPECT_TRUE(holds_numbers(t, 1000.0 * round + static_cast<double>(k))) << "size " << sizes[k];
    }
  }
}

TEST(Recycling, TwoLiveTensorsOfOneLargeSizeNeverShareABuffer) {
  const std::size_t n = 16384;  // 128 KiB: from the large-buffer cache
  {
    const Tensor freed = numbered(n, 0.0);  // its buffer goes to the cache
  }
  const Tensor a = numbered(n, 1.0);
  const Tensor b = numbered(n, 2.0);
  EXPECT_NE(a.values().data(), b.values().data());
  EXPECT_TRUE(holds_numbers(a, 1.0));
  EXPECT_TRUE(holds_numbers(b, 2.0));
}

TEST(Recycling, ZerosAndFactoriesFillRecycledBuffers) {
  for (std::size_t n : sizes) {
    { const Tensor dirty = numbered(n, 7.0); }  // leaves non-zero memory behind for reuse
    const Tensor z = tapegrad::zeros({static_cast<std::int64_t>(n)});
    for (double v : z.values()) ASSERT_EQ(v, 0.0) << "size " << n;
    { const Tensor dirty = numbered(n, 7.0); }
    const Tensor f = tapegrad::full({static_cast<std::int64_t>(n)}, 0.25);
    for (double v : f.values()) ASSERT_EQ(v, 0.25) << "size " << n;
    EXPECT_EQ(Values(n, 0.0), Values(n, 0.0));
  }
}

// Blocks freed on another thread join that thread's lists; a thread that exits frees its lists.
// Neither may corrupt a tensor still alive elsewhere. (ThreadSanitizer runs this too.)
TEST(Recycling, TensorsMadeOnOneThreadAndFreedOnAnotherStayIntact) {
  std::vector<Tensor> made_there;
  std::thread maker([&] {
    for (std::size_t k = 0; k < sizes.size(); ++k)
      made_there.push_back(numbered(sizes[k], 10.0 * k));
    std::vector<Tensor> scratch;
    for (std::size_t n : sizes) scratch.push_back(numbered(n, -5.0));
  });  // exits: its free lists and cache are released
  maker.join();
  std::vector<Tensor> made_here;
  for (std::size_t k = 0; k < sizes.size(); ++k) made_here.push_back(numbered(sizes[k], 3.0));
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    EXPECT_TRUE(holds_numbers(made_there[k], 10.0 * k)) << "size " << sizes[k];
  }
  // Freed here, on a thread that did not make them; what is allocated next must not alias them.
  std::thread freer([moved = std::move(made_there)]() mutable { moved.clear(); });
  freer.join();
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    EXPECT_TRUE(holds_numbers(made_here[k], 3.0)) << "size " << sizes[k];
  }
}

// A fresh tape per step reuses the last step's node chunks and impls: the gradients must be the
// same every step (here the closed form of d/dx sum(x * x) = 2 x, 600 nodes a step).
TEST(RecyclingClosedForm, AFreshTapePerStepGivesTheSameGradientEveryStep) {
  Tensor x = tapegrad::tensor({0.5, -1.5, 2.0}).requires_grad_();
  for (int step = 0; step < 5; ++step) {
    tapegrad::Tape tape;
    x.zero_grad();
    Tensor total = tapegrad::scalar(0.0);
    for (int i = 0; i < 300; ++i) total = total + tapegrad::sum(x * x) * (1.0 / 300.0);
    total.backward();
    ASSERT_GT(tape.size(), 512u);  // more than the two chunks a thread keeps
    const auto g = x.grad().values();
    EXPECT_NEAR(g[0], 1.0, 1e-12);
    EXPECT_NEAR(g[1], -3.0, 1e-12);
    EXPECT_NEAR(g[2], 4.0, 1e-12);
  }
}

}  // namespace
