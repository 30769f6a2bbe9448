// A pool of get_num_threads() - 1 workers, started at the first split, that run one
// parallel_for at a time beside the calling thread (parallel.hpp).
#include "tapegrad/core/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <pthread.h>

#include "tapegrad/core/error.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace tapegrad {

namespace {

int from_environment(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return 0;
  char* end = nullptr;
  const long n = std::strtol(value, &end, 10);
  return (end != value && *end == '\0' && n >= 1 && n <= 1024) ? static_cast<int>(n) : 0;
}

int default_threads() {
  if (const int n = from_environment("TAPEGRAD_NUM_THREADS"); n > 0) return n;
  if (const int n = from_environment("OPENBLAS_NUM_THREADS"); n > 0) return n;
  const unsigned hardware = std::thread::hardware_concurrency();
  return static_cast<int>(std::clamp(hardware, 1U, 8U));
}

void relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// Set on the workers and inside a split, so that a nested parallel_for runs inline.
thread_local bool inside_split = false;

// Set in a child process after fork (pthread_atfork).
std::atomic<bool> forked_child{false};

class Pool {
 public:
  ~Pool() { stop_workers(); }

  int threads() const { return threads_.load(std::memory_order_relaxed); }

  void set_threads(int n) {
    const std::lock_guard lock(busy_);
    stop_workers();
    threads_.store(n, std::memory_order_relaxed);
  }

  void run(std::size_t n, std::size_t min_per_thread, detail::RangeBody body, void* context) {
    const std::size_t most = inside_split ? 1 : static_cast<std::size_t>(threads());
    const std::size_t parts = std::min(most, n / std::max<std::size_t>(min_per_thread, 1));
    // Inline: small, nested (the caller may hold busy_ already), or the pool busy elsewhere.
    std::unique_lock<std::mutex> lock;
    if (parts > 1) lock = std::unique_lock(busy_, std::try_to_lock);
    if (!lock.owns_lock()) {
      if (n > 0) body(context, 0, n);
      return;
    }
    if (forked_child.load()) forget_workers();
    if (workers_.empty()) start_workers();
    body_ = body;
    context_ = context;
    n_ = n;
    parts_ = parts;
    error_ = nullptr;
    next_part_.store(1, std::memory_order_relaxed);  // part 0 is the caller's
    unfinished_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();

    inside_split = true;
    run_part(0);
    take_parts();
    inside_split = false;
    // The workers may still be on their parts: wait, spinning first (they finish within
    // microseconds of the caller when the split is even).
    for (int spin = 0; unfinished_.load(std::memory_order_acquire) != 0; ++spin) {
      if (spin < 4096) {
        relax();
      } else {
        const int left = unfinished_.load(std::memory_order_acquire);
        if (left != 0) unfinished_.wait(left, std::memory_order_acquire);
      }
    }
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }

 private:
  void run_part(std::size_t part) {
    const std::size_t begin = n_ * part / parts_, end = n_ * (part + 1) / parts_;
    try {
      body_(context_, begin, end);
    } catch (...) {
      const std::lock_guard lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }

  void take_parts() {
    for (std::size_t part = next_part_.fetch_add(1, std::memory_order_relaxed); part < parts_;
         part = next_part_.fetch_add(1, std::memory_order_relaxed)) {
      run_part(part);
    }
  }

  void work(std::uint64_t seen) {
    inside_split = true;
    for (;;) {
      // Spin a little before sleeping: a step's kernels come one after another. (Yielding here
      // instead, to leave the core to BLAS's threads, measured slower: W6 36 vs 33 ms.)
      std::uint64_t now = generation_.load(std::memory_order_acquire);
      for (int spin = 0; now == seen && spin < 2048; ++spin) {
        relax();
        now = generation_.load(std::memory_order_acquire);
      }
      while (now == seen) {
        generation_.wait(seen, std::memory_order_acquire);
        now = generation_.load(std::memory_order_acquire);
      }
      seen = now;
      if (stopping_.load(std::memory_order_acquire)) return;
      take_parts();
      if (unfinished_.fetch_sub(1, std::memory_order_acq_rel) == 1) unfinished_.notify_one();
    }
  }

  void start_workers() {
    static const bool registered = [] {
      // A forked child has this pool's memory but none of its threads.
      pthread_atfork(nullptr, nullptr, [] { forked_child.store(true); });
      return true;
    }();
    (void)registered;
    stopping_.store(false, std::memory_order_relaxed);
    const std::uint64_t seen = generation_.load(std::memory_order_relaxed);
    for (int k = 1; k < threads(); ++k) workers_.emplace_back([this, seen] { work(seen); });
  }

  // In a forked child: the std::thread objects name the parent's threads, which the child does
  // not have (joining them would wait forever, destroying them would terminate): leaked, once.
  void forget_workers() {
    forked_child.store(false);
    new (&workers_) std::vector<std::thread>();  // the old vector's storage is leaked
  }

  void stop_workers() {
    if (forked_child.load()) forget_workers();
    if (workers_.empty()) return;
    stopping_.store(true, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    for (std::thread& w : workers_) w.join();
    workers_.clear();
  }

  std::mutex busy_;  // held by the thread whose split runs, and by set_threads
  std::atomic<int> threads_{default_threads()};
  std::vector<std::thread> workers_;
  std::atomic<std::uint64_t> generation_{0};  // bumped once per split (and to stop)
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> next_part_{0};
  std::atomic<int> unfinished_{0};  // workers not yet done with this split
  detail::RangeBody body_ = nullptr;
  void* context_ = nullptr;
  std::size_t n_ = 0;
  std::size_t parts_ = 0;
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool instance;
  return instance;
}

}  // namespace

int get_num_threads() {
  return pool().threads();
}

void set_num_threads(int n) {
  if (n < 1) {
    throw ValueError(fmt::format("set_num_threads: the thread count must be >= 1 (got {})", n));
  }
  if (inside_split) {
    throw ValueError(fmt::format(
        "set_num_threads: called from inside a parallel_for body (asked for {} threads); change "
        "the thread count between kernels",
        n));
  }
  pool().set_threads(n);
}

namespace detail {
void parallel_for(std::size_t n, std::size_t min_per_thread, RangeBody body, void* context) {
  pool().run(n, min_per_thread, body, context);
}
}  // namespace detail

}  // namespace tapegrad
