// Issue 17's length and memory rows for tapegrad, on the W1 chain (workloads.hpp):
//   BM_chain/100, BM_chain/1000000  the chain taped and swept afresh, nodes of one tape;
//                                   counters ns_per_node and allocs_per_node (heap allocations
//                                   per node, forward + backward)
//   context (measured once in main, before any benchmark, on a fresh heap):
//     rss_bytes_per_node    VmRSS growth while a 1e6-node chain is recorded, / nodes
//     heap_bytes_per_node   the same growth of malloc's bytes in use (mallinfo2)
//     allocs_per_node_forward, allocs_per_node_backward, new_bytes_per_node_forward
//                           from this executable's counting global operator new
//
//   build-release/bench/chain_length --benchmark_repetitions=5
#include <malloc.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

#include "workloads.hpp"

namespace {

// Per-thread counts of operator new calls and bytes: thread-local, so counting costs no atomic
// operation on the timed path and OpenBLAS's threads cannot race with it.
thread_local std::uint64_t t_allocations = 0;
thread_local std::uint64_t t_allocated_bytes = 0;

void* counted_malloc(std::size_t size) {
  ++t_allocations;
  t_allocated_bytes += size;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}

}  // namespace

// The replaceable allocation functions that every other form (nothrow, array) reaches in
// libstdc++; the aligned forms keep their own matching pair.
void* operator new(std::size_t size) {
  return counted_malloc(size);
}
void* operator new[](std::size_t size) {
  return counted_malloc(size);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}

namespace {

using tapegrad::Tensor;

constexpr std::int64_t kLongChain = 1000000;

// The W1 pattern (y * c, y + d, tanh, sigmoid) repeated until `nodes` ops are recorded.
Tensor chain(const Tensor& x, const Tensor& c, const Tensor& d, std::int64_t nodes) {
  Tensor y = x;
  for (std::int64_t i = 0; i < nodes / 4; ++i) {
    y = y * c;
    y = y + d;
    y = tapegrad::tanh(y);
    y = tapegrad::sigmoid(y);
  }
  return y;
}

double heap_in_use() {
  const struct mallinfo2 info = mallinfo2();
  return static_cast<double>(info.uordblks + info.hblkhd);
}

// Memory and allocations per recorded node of one kLongChain-node tape; added to the context.
void measure_memory() {
  Tensor x = tapegrad::scalar(bench::kW1Start).requires_grad_();
  const Tensor c = tapegrad::scalar(bench::kW1Mul);
  const Tensor d = tapegrad::scalar(bench::kW1Add);
  tapegrad::Tape tape;
  const double rss_before = bench::rss_mb();
  const double heap_before = heap_in_use();
  const std::uint64_t allocs_before = t_allocations;
  const std::uint64_t bytes_before = t_allocated_bytes;
  Tensor y = chain(x, c, d, kLongChain);
  const std::uint64_t allocs_forward = t_allocations - allocs_before;
  const std::uint64_t bytes_forward = t_allocated_bytes - bytes_before;
  const double rss_after = bench::rss_mb();
  const double heap_after = heap_in_use();
  const auto nodes = static_cast<double>(tape.size());
  y.backward();
  const std::uint64_t allocs_backward = t_allocations - allocs_before - allocs_forward;
  benchmark::DoNotOptimize(x.grad().item());

  const auto put = [](const char* key, double value) {
    benchmark::AddCustomContext(key, fmt::format("{:.4g}", value));
    std::fprintf(stderr, "chain_length: %s = %.4g\n", key, value);
  };
  put("nodes", nodes);
  put("rss_before_MB", rss_before);
  put("rss_after_MB", rss_after);
  put("rss_bytes_per_node", (rss_after - rss_before) * 1024.0 * 1024.0 / nodes);
  put("heap_bytes_per_node", (heap_after - heap_before) / nodes);
  put("allocs_per_node_forward", static_cast<double>(allocs_forward) / nodes);
  put("allocs_per_node_backward", static_cast<double>(allocs_backward) / nodes);
  put("new_bytes_per_node_forward", static_cast<double>(bytes_forward) / nodes);
}

void BM_chain(benchmark::State& state) {
  const std::int64_t nodes = state.range(0);
  Tensor x = tapegrad::scalar(bench::kW1Start).requires_grad_();
  const Tensor c = tapegrad::scalar(bench::kW1Mul);
  const Tensor d = tapegrad::scalar(bench::kW1Add);
  const std::uint64_t allocs_before = t_allocations;
  for (auto _ : state) {
    tapegrad::Tape tape;
    x.zero_grad();
    chain(x, c, d, nodes).backward();
    benchmark::DoNotOptimize(x.grad().item());
  }
  const double per_node =
      1.0 / (static_cast<double>(nodes) * static_cast<double>(state.iterations()));
  state.counters["allocs_per_node"] = static_cast<double>(t_allocations - allocs_before) * per_node;
  state.counters["ns_per_node"] = benchmark::Counter(
      static_cast<double>(nodes) * 1e-9,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_chain)
    ->Arg(bench::kW1Ops)
    ->Arg(kLongChain)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  measure_memory();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
