// W1 (workloads.hpp) for Sacado's reverse mode (Sacado::Rad, Debian libtrilinos-sacado-dev), a
// peer for the performance issue: taped and swept afresh each iteration, like tapegrad's W1.
// Sacado has no sigmoid; ADf1 records it as one node from its value and derivative, as a Sacado
// user writing the chain for speed would, so both tools record 100 nodes.
//
//   build-release/bench/peers_sacado --benchmark_repetitions=5
#include <cmath>

#include <benchmark/benchmark.h>
#include <Sacado_trad.hpp>

#include "peers.hpp"
#include "workloads.hpp"

namespace {

using ADvar = Sacado::Rad::ADvar<double>;

// One W1 chain from a new independent variable; returns dy/dx.
double sacado_w1() {
  ADvar x = bench::kW1Start;
  ADvar y = x;
  for (int i = 0; i < bench::kW1Ops / 4; ++i) {
    y = y * bench::kW1Mul;
    y = y + bench::kW1Add;
    y = tanh(y);
    const double s = 1.0 / (1.0 + std::exp(-y.val()));
    y = Sacado::Rad::ADf1(s, s * (1.0 - s), y);
  }
  ADvar::Gradcomp();  // the reverse sweep; the next operation recycles the tape's memory
  return x.adj();
}

}  // namespace

int main(int argc, char** argv) {
  return bench::run_peer_w1(argc, argv, "Sacado::Rad (Trilinos Sacado)", sacado_w1);
}
