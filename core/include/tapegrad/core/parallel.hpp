#pragma once
// The threads tapegrad's own kernels use (elementwise maps, im2col and col2im, pooling, softmax
// rows, optimizer updates) beside BLAS's: large kernels split their elements across the cores,
// small ones run on the calling thread. As torch.set_num_threads: one number, per process.
//
//   tapegrad::set_num_threads(1);  // every kernel on the calling thread
//   const int n = tapegrad::get_num_threads();
//
// The default is TAPEGRAD_NUM_THREADS if set, else OPENBLAS_NUM_THREADS if set (so one variable
// sets both halves of a step), else the hardware threads (at most 8). Results do not depend on the
// thread count: a kernel is split only where each element is computed alone, never a reduction
// whose order of additions would change.
#include <cstddef>
#include <type_traits>
#include <utility>

namespace tapegrad {

int get_num_threads();
// n >= 1 (ValueError otherwise). Waits for a kernel running on the pool to finish.
void set_num_threads(int n);

namespace detail {
using RangeBody = void (*)(void* context, std::size_t begin, std::size_t end);
void parallel_for(std::size_t n, std::size_t min_per_thread, RangeBody body, void* context);
}  // namespace detail

// Calls body(begin, end) on disjoint ranges covering [0, n), at most one range per thread and
// each at least `min_per_thread` long (so a small n runs inline, with no thread woken). Returns
// when every range is done; the first exception a range throws is rethrown here. A call made
// while the pool is busy (from inside a body, or from a second user thread) runs inline: tapes on
// different threads stay independent, they only share the extra cores.
template <class Body>
void parallel_for(std::size_t n, std::size_t min_per_thread, Body&& body) {
  // Fewer than two ranges' worth: inline here, without a call into the pool (a scalar op's
  // kernel must not pay for the threads it does not use).
  if (n / 2 < (min_per_thread > 0 ? min_per_thread : 1)) {  // n < 2 m, with no division
    if (n > 0) body(std::size_t{0}, n);
    return;
  }
  using B = std::remove_reference_t<Body>;
  detail::parallel_for(
      n, min_per_thread,
      [](void* context, std::size_t begin, std::size_t end) {
        (*static_cast<B*>(context))(begin, end);
      },
      const_cast<void*>(static_cast<const void*>(&body)));
}

// The element counts above which elementwise kernels split: below them waking a thread costs
// more than it saves (a wake-up is a few microseconds; a cheap map does ~1 element per ns).
inline constexpr std::size_t parallel_grain_cheap = std::size_t{1} << 15;   // add, mul, relu, copy
inline constexpr std::size_t parallel_grain_costly = std::size_t{1} << 12;  // exp, log, erf, tanh

}  // namespace tapegrad
