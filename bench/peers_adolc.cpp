// W1 (workloads.hpp) for ADOL-C (Debian libadolc-dev), a peer for the performance issue: the
// chain is re-taped each iteration (trace_on ... trace_off, keeping the forward values) and swept
// once backwards (first-order reverse), like tapegrad's W1. ADOL-C has no sigmoid; it is written
// 1 / (1 + exp(-y)) as an ADOL-C user would, so ADOL-C's tape holds more than 100 operations.
// Times are still reported per W1 op (chain time / 100) to compare the same chain.
//
//   build-release/bench/peers_adolc --benchmark_repetitions=5
#include <adolc/adolc.h>
#include <benchmark/benchmark.h>

#include "peers.hpp"
#include "workloads.hpp"

namespace {

constexpr short kTag = 1;

// One W1 chain taped from scratch and swept backwards; returns dy/dx.
double adolc_w1() {
  trace_on(kTag, 1);  // keep = 1: the taping run's values serve the reverse sweep
  adouble x;
  x <<= bench::kW1Start;
  adouble y = x;
  for (int i = 0; i < bench::kW1Ops / 4; ++i) {
    y = y * bench::kW1Mul;
    y = y + bench::kW1Add;
    y = tanh(y);
    y = 1.0 / (1.0 + exp(-y));
  }
  double out = 0.0;
  y >>= out;
  trace_off();
  double gradient = 0.0;
  reverse(kTag, 1, 1, 0, 1.0, &gradient);
  return gradient;
}

}  // namespace

int main(int argc, char** argv) {
  return bench::run_peer_w1(argc, argv, "ADOL-C", adolc_w1);
}
