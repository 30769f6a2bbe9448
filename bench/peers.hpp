#pragma once
// What the peer benchmarks (peers_sacado.cpp, peers_adolc.cpp) share: tapegrad's own W1 gradient,
// so each peer proves once, before it is timed, that it differentiates the same chain.
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include <benchmark/benchmark.h>

#include <tapegrad/tapegrad.hpp>

#include "workloads.hpp"

namespace bench {

// dy/dx of W1 (workloads.hpp: 25 times y * c, y + d, tanh, sigmoid from x = kW1Start), as
// tapegrad computes it with the same code as BM_W1_scalar_chain.
inline double tapegrad_w1_gradient() {
  tapegrad::Tensor x = tapegrad::scalar(kW1Start).requires_grad_();
  const tapegrad::Tensor c = tapegrad::scalar(kW1Mul);
  const tapegrad::Tensor d = tapegrad::scalar(kW1Add);
  tapegrad::Tape tape;
  tapegrad::Tensor y = x;
  for (int i = 0; i < kW1Ops / 4; ++i) {
    y = tapegrad::sigmoid(tapegrad::tanh(y * c + d));
  }
  y.backward();
  return x.grad().item();
}

// Exits with a message naming the peer unless its W1 gradient equals tapegrad's to 1e-12
// relative: a peer that differentiates something else must not be timed.
inline void check_peer_w1_gradient(const char* peer, double peer_gradient) {
  const double expected = tapegrad_w1_gradient();
  const double error = std::abs(peer_gradient - expected) / std::abs(expected);
  if (!(error <= 1e-12)) {
    std::fprintf(stderr, "%s: W1 gradient %.17g differs from tapegrad's %.17g (relative %.3g)\n",
                 peer, peer_gradient, expected, error);
    std::exit(1);
  }
  std::fprintf(stderr, "%s: W1 gradient %.17g equals tapegrad's (relative difference %.2g)\n", peer,
               peer_gradient, error);
}

// A peer's main(): checks its W1 gradient, then times `w1` (one taped forward + reverse sweep of
// the chain, returning dy/dx) as BM_W1_scalar_chain with tapegrad's us_per_op counter, so
// scripts/bench pairs it with tapegrad's row.
template <class W1>
int run_peer_w1(int argc, char** argv, const char* peer, W1 w1) {
  check_peer_w1_gradient(peer, w1());
  benchmark::RegisterBenchmark("BM_W1_scalar_chain",
                               [w1](benchmark::State& state) {
                                 for (auto _ : state) benchmark::DoNotOptimize(w1());
                                 state.counters["us_per_op"] = benchmark::Counter(
                                     kW1Ops * 1e-6, benchmark::Counter::kIsIterationInvariantRate |
                                                        benchmark::Counter::kInvert);
                               })
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("peer", peer);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace bench
