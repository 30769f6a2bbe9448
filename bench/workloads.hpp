#pragma once
// The workloads of the performance issue, shared by bench_workloads.cpp (tapegrad),
// torch_compare.cpp (libtorch) and whole_run.cpp (memory), so both sides run the same sizes.
//
//   W1  a chain of 100 elementwise ops on scalars, forward + backward; reported per op
//   W2  the learning-slowdown neuron: a = sigma(w * 1 + b), target 0, eta 0.15, quadratic cost,
//       300 epochs, one whole run
//   W3  one training step of MLP 784-128-10, batch 32, ReLU, cross_entropy_with_logits, SGD
//   W4  one training step of MLP 784-1024-1024-10, batch 256 (SGD), in GFLOP/s, next to plain
//       cblas_dgemm calls of exactly the products the step makes
//   W5  one Fashion-MNIST epoch, MLP 784-256-128-10, batch 64, Adam
//   W6  one training step of issue 14's CNN (conv5x5(16)-pool-conv5x5(32)-pool-128-10, no batch
//       norm, no dropout), batch 64, Adam; and the five convolution products of that step beside
//       the same dgemm calls (bench_conv.cpp)
//   W7  one training step of issue 15's tiny GPT (2 layers, 4 heads, 64 features, block 64,
//       vocabulary 113 as the fortunes), batch 32, AdamW
//   M1  resident memory after 1e5 W3 steps minus after 1e3 (whole_run.cpp)
//   M2  resident memory after 300 W6 steps minus after 30 (whole_run.cpp cnn)
#include <cblas.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace bench {

// W1: the chain repeats these four ops (y * c, y + d, tanh, sigmoid) 25 times; the values stay
// in (0, 1) so nothing saturates.
inline constexpr int kW1Ops = 100;
inline constexpr double kW1Start = 0.5;
inline constexpr double kW1Mul = 0.999;
inline constexpr double kW1Add = 0.01;

// W2: Nielsen's slow start (w = b = 2, a = 0.98), ch. 3.
inline constexpr int kW2Epochs = 300;
inline constexpr double kW2Eta = 0.15;
inline constexpr double kW2W0 = 2.0;
inline constexpr double kW2B0 = 2.0;

inline const std::vector<std::int64_t> kW3Sizes = {784, 128, 10};
inline constexpr std::int64_t kW3Batch = 32;
inline const std::vector<std::int64_t> kW4Sizes = {784, 1024, 1024, 10};
inline constexpr std::int64_t kW4Batch = 256;
inline const std::vector<std::int64_t> kW5Sizes = {784, 256, 128, 10};
inline constexpr std::int64_t kW5Batch = 64;
inline constexpr double kSgdLr = 0.01;
inline constexpr double kAdamLr = 1e-3;
inline constexpr std::int64_t kClasses = 10;
inline constexpr std::int64_t kW6Batch = 64;
inline constexpr std::int64_t kW7Batch = 32;
inline constexpr std::int64_t kW7Vocab = 113;  // the fortunes' characters (docs/sequence-models.md)
inline constexpr std::int64_t kW7Block = 64;
inline constexpr std::int64_t kW7Layers = 2;
inline constexpr std::int64_t kW7Heads = 4;
inline constexpr std::int64_t kW7Embd = 64;
inline constexpr double kW7Lr = 3e-3;  // tiny_gpt's peak rate, betas 0.9/0.99, decay 0.1
inline constexpr double kW7Beta2 = 0.99;
inline constexpr double kW7WeightDecay = 0.1;
inline constexpr std::int64_t kSyntheticSamples = 60000;  // W5 when the real data is absent

// The useful floating-point work of one MLP training step (batch n): per Linear(in -> out)
// the forward product (2 n in out), the weight gradient (2 n in out) and, except for the first
// layer whose input needs no gradient, the input gradient (2 n in out). Bias and activation
// work is O(n out) and not counted.
inline double mlp_step_flops(const std::vector<std::int64_t>& sizes, std::int64_t n) {
  double flops = 0.0;
  for (std::size_t layer = 0; layer + 1 < sizes.size(); ++layer) {
    const double product = 2.0 * static_cast<double>(n) * static_cast<double>(sizes[layer]) *
                           static_cast<double>(sizes[layer + 1]);
    flops += layer == 0 ? 2.0 * product : 3.0 * product;
  }
  return flops;
}

// The thread count both sides use: OPENBLAS_NUM_THREADS if set, else every hardware thread
// (OpenBLAS's own default), so libtorch's set_num_threads matches tapegrad's dgemm.
inline int bench_threads() {
  if (const char* env = std::getenv("OPENBLAS_NUM_THREADS"); env != nullptr && *env != '\0') {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

// The dgemm yardsticks call OpenBLAS directly, on its own threads (bench_threads() of them):
// tapegrad's products set OpenBLAS to one thread and split on tapegrad's pool instead
// (ops/src/gemm.hpp), so each yardstick sets OpenBLAS's count back first.
inline void blas_threads_for_yardstick() {
  openblas_set_num_threads(bench_threads());
}

// VmRSS of this process in MB (0 if /proc is unavailable): M1 and the rss_MB counters.
inline double rss_mb() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      double kb = 0.0;
      status >> kb;
      return kb / 1024.0;
    }
    status.ignore(1 << 12, '\n');
  }
  return 0.0;
}

}  // namespace bench
