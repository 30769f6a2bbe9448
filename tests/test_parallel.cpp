// tapegrad's own threads (parallel.hpp): parallel_for covers its range once, nests, propagates
// exceptions and shares the pool between user threads; and every kernel that splits gives the
// same bits on 1, 2 or 3 threads (each element is computed alone, never a reordered sum).
// Meant to run under ThreadSanitizer too: ./scripts/test --sanitize=thread.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <thread>
#include <vector>

#include "tapegrad/core/error.hpp"
#include "tapegrad/core/parallel.hpp"
#include "tapegrad/core/random.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/nn/optim.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/conv.hpp"
#include "tapegrad/ops/mask.hpp"
#include "tapegrad/ops/pool.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/softmax.hpp"
#include "tapegrad/ops/unary.hpp"

namespace {

using namespace tapegrad;  // NOLINT

// Restores the thread count a test changed.
class ThreadCount {
 public:
  explicit ThreadCount(int n) : before_(get_num_threads()) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(before_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int before_;
};

// How often each index of [0, n) was visited.
std::vector<int> visits(std::size_t n, std::size_t grain) {
  std::vector<std::atomic<int>> count(n);
  parallel_for(n, grain, [&](std::size_t begin, std::size_t end) {
    EXPECT_LE(begin, end);
    for (std::size_t i = begin; i < end; ++i) count[i].fetch_add(1);
  });
  std::vector<int> out;
  for (const auto& c : count) out.push_back(c.load());
  return out;
}

TEST(Parallel, EveryIndexIsVisitedOnceForAnyThreadCountAndGrain) {
  for (const int threads : {1, 2, 3}) {
    const ThreadCount scope(threads);
    for (const std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{1000},
                                std::size_t{1} << 18}) {
      for (const std::size_t grain : {std::size_t{0}, std::size_t{1}, std::size_t{100}}) {
        EXPECT_EQ(visits(n, grain), std::vector<int>(n, 1))
            << "threads " << threads << ", n " << n << ", grain " << grain;
      }
    }
  }
}

TEST(Parallel, RangesAreNoShorterThanTheGrainAndAtMostOnePerThread) {
  const ThreadCount scope(3);
  std::atomic<int> ranges{0};
  std::atomic<std::size_t> shortest{~std::size_t{0}};
  parallel_for(1000, 300, [&](std::size_t begin, std::size_t end) {
    ranges.fetch_add(1);
    std::size_t seen = shortest.load();
    while (end - begin < seen && !shortest.compare_exchange_weak(seen, end - begin)) {
    }
  });
  EXPECT_EQ(ranges.load(), 3);  // 1000 / 300 = 3 ranges, one per thread
  EXPECT_GE(shortest.load(), 300U);
  ranges = 0;
  parallel_for(599, 300, [&](std::size_t, std::size_t) { ranges.fetch_add(1); });
  EXPECT_EQ(ranges.load(), 1);  // less than two grains: inline, one range
}

TEST(Parallel, NestedCallsRunInlineAndCoverTheirRange) {
  const ThreadCount scope(2);
  std::vector<std::atomic<int>> count(64 * 64);
  parallel_for(64, 1, [&](std::size_t begin, std::size_t end) {
    for (std::size_t row = begin; row < end; ++row) {
      parallel_for(64, 1, [&](std::size_t b, std::size_t e) {
        for (std::size_t j = b; j < e; ++j) count[row * 64 + j].fetch_add(1);
      });
    }
  });
  for (const auto& c : count) ASSERT_EQ(c.load(), 1);
}

TEST(Parallel, AnExceptionInARangeReachesTheCallerAndThePoolStaysUsable) {
  const ThreadCount scope(2);
  EXPECT_THROW(parallel_for(1000, 1,
                            [](std::size_t begin, std::size_t) {
                              if (begin > 0) throw std::runtime_error("second range");
                            }),
               std::runtime_error);
  EXPECT_EQ(visits(1000, 1), std::vector<int>(1000, 1));
}

TEST(Parallel, SetNumThreadsChecksItsArgumentAndIsReadBack) {
  EXPECT_THROW(set_num_threads(0), ValueError);
  EXPECT_THROW(set_num_threads(-2), ValueError);
  const ThreadCount scope(3);
  EXPECT_EQ(get_num_threads(), 3);
  set_num_threads(1);
  EXPECT_EQ(get_num_threads(), 1);
  // From inside a body the pool is busy: a clear error, not a deadlock.
  set_num_threads(2);
  EXPECT_THROW(parallel_for(10, 1, [](std::size_t, std::size_t) { set_num_threads(1); }),
               ValueError);
  EXPECT_EQ(get_num_threads(), 2);
}

TEST(Parallel, UserThreadsShareThePoolAndEachGetsItsWholeRange) {
  const ThreadCount scope(2);
  std::vector<std::thread> users;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    users.emplace_back([&wrong, t] {
      for (int round = 0; round < 50; ++round) {
        const std::size_t n = 5000 + static_cast<std::size_t>(t * 100 + round);
        if (visits(n, 64) != std::vector<int>(n, 1)) wrong.fetch_add(1);
      }
    });
  }
  for (std::thread& u : users) u.join();
  EXPECT_EQ(wrong.load(), 0);
}

#if defined(__SANITIZE_THREAD__)
constexpr bool thread_sanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool thread_sanitizer = true;
#else
constexpr bool thread_sanitizer = false;
#endif
#else
constexpr bool thread_sanitizer = false;
#endif

TEST(Parallel, AForkedChildRunsSplitKernels) {
  if (thread_sanitizer) GTEST_SKIP() << "ThreadSanitizer cannot start threads after a fork";
  const ThreadCount scope(2);
  ASSERT_EQ(visits(1 << 16, 1), std::vector<int>(1 << 16, 1));  // the parent's pool is started
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The parent's workers do not exist here: the child starts its own.
    const bool ok = visits(1 << 16, 1) == std::vector<int>(1 << 16, 1);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

std::vector<std::uint64_t> bits(const Tensor& t) {
  std::vector<std::uint64_t> out;
  for (const double v : t.values()) out.push_back(std::bit_cast<std::uint64_t>(v));
  return out;
}

// Every kernel that splits, on inputs large enough to split, forward and backward; the outputs,
// gradients and an Adam step, as bits.
std::vector<std::vector<std::uint64_t>> split_kernels() {
  Generator gen(17);
  std::vector<std::vector<std::uint64_t>> out;
  const Tensor x = randn({64, 16, 14, 14}, gen).requires_grad_();  // 200704 elements
  const Tensor w = randn({32, 16, 5, 5}, gen).requires_grad_();
  const Tensor b = randn({32}, gen).requires_grad_();
  const Tensor a = randn({512, 512}, gen).requires_grad_();
  const Tensor row = randn({512}, gen).requires_grad_();
  const Tensor mask = Tensor::from_values(
      [&] {
        std::vector<double> m(512 * 512);
        for (std::size_t i = 0; i < m.size(); ++i) m[i] = (i % 512) > (i / 512) ? 1.0 : 0.0;
        return m;
      }(),
      {512, 512});
  {
    Tape tape;
    const Tensor conv = conv2d(x, w, b, {.padding = 2});
    const Tensor pooled = max_pool2d(relu(conv), 2);
    const Tensor logits = masked_fill(a + row, mask, -INFINITY);
    const Tensor p = softmax(logits, 1);
    const Tensor g = gelu(a * row);
    const Tensor loss = sum(pooled * pooled) + sum(sum(p * a, 0) * row) + sum(sum(g, 1) * row) +
                        sum(sigmoid(a) * tanh(a) + exp(a * 0.01));
    loss.backward();
    for (const Tensor& t :
         {conv, pooled, logits, p, g, loss, x.grad(), w.grad(), b.grad(), a.grad(), row.grad()}) {
      out.push_back(bits(t));
    }
  }
  nn::Adam adam({a, w}, {.lr = 0.01});
  adam.step();
  out.push_back(bits(a));
  out.push_back(bits(w));
  return out;
}

TEST(Parallel, SplitKernelsGiveTheSameBitsOnOneTwoAndThreeThreads) {
  std::vector<std::vector<std::uint64_t>> one, two, three;
  {
    const ThreadCount scope(1);
    one = split_kernels();
  }
  {
    const ThreadCount scope(2);
    two = split_kernels();
  }
  {
    const ThreadCount scope(3);
    three = split_kernels();
  }
  ASSERT_EQ(one.size(), two.size());
  for (std::size_t k = 0; k < one.size(); ++k) {
    EXPECT_EQ(one[k], two[k]) << "result " << k << " differs between 1 and 2 threads";
    EXPECT_EQ(one[k], three[k]) << "result " << k << " differs between 1 and 3 threads";
  }
}

}  // namespace
