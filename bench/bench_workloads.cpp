// tapegrad's side of the performance issue's workloads (see workloads.hpp), as Google Benchmarks.
// Every benchmark measures wall-clock time (UseRealTime: OpenBLAS runs on several threads).
// User counters:
//   us_per_op  W1: microseconds per op (forward + backward), the target's unit
//   ms_per_run W2: milliseconds per 300-epoch run
//   GFLOPS     W4 and its dgemm reference: useful GFLOP/s (workloads.hpp, mlp_step_flops)
//   rss_MB     resident memory (VmRSS) when the benchmark finished
//
//   build-release/bench/bench_workloads --benchmark_repetitions=5
//   (add --benchmark_report_aggregates_only=true for medians only)
#include <cblas.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <tapegrad/io/dataset.hpp>
#include <tapegrad/tapegrad.hpp>

#include "tapegrad_models.hpp"
#include "workloads.hpp"

namespace {

using tapegrad::Tensor;
namespace nn = tapegrad::nn;

// Random inputs [n, features] ~ N(0, 1) and labels [n] in 0..classes-1 (as doubles).
struct SyntheticBatch {
  Tensor images;
  Tensor labels;
};

SyntheticBatch synthetic_batch(std::int64_t n, std::int64_t features, std::uint64_t seed) {
  tapegrad::Generator generator(seed);
  Tensor images = tapegrad::randn({n, features}, generator);
  std::vector<double> labels(static_cast<std::size_t>(n));
  for (double& label : labels) {
    label = static_cast<double>(generator.below(static_cast<std::uint64_t>(bench::kClasses)));
  }
  return {images, tapegrad::from_values(std::move(labels), {n})};
}

using bench::train_step;

// W1: 100 scalar ops forward, then backward through all of them.
void BM_W1_scalar_chain(benchmark::State& state) {
  Tensor x = tapegrad::scalar(bench::kW1Start).requires_grad_();
  const Tensor c = tapegrad::scalar(bench::kW1Mul);
  const Tensor d = tapegrad::scalar(bench::kW1Add);
  for (auto _ : state) {
    tapegrad::Tape tape;
    x.zero_grad();
    Tensor y = x;
    for (int i = 0; i < bench::kW1Ops / 4; ++i) {
      y = y * c;
      y = y + d;
      y = tapegrad::tanh(y);
      y = tapegrad::sigmoid(y);
    }
    y.backward();
    benchmark::DoNotOptimize(x.grad().item());
  }
  state.counters["us_per_op"] =
      benchmark::Counter(bench::kW1Ops * 1e-6, benchmark::Counter::kIsIterationInvariantRate |
                                                   benchmark::Counter::kInvert);
  state.counters["rss_MB"] = bench::rss_mb();
}
BENCHMARK(BM_W1_scalar_chain)->UseRealTime()->Unit(benchmark::kMicrosecond);

// W2: the learning-slowdown neuron, 300 epochs of plain gradient descent, one whole run.
void BM_W2_slowdown_neuron(benchmark::State& state) {
  const Tensor target = tapegrad::scalar(0.0);
  for (auto _ : state) {
    Tensor w = tapegrad::scalar(bench::kW2W0).requires_grad_();
    Tensor b = tapegrad::scalar(bench::kW2B0).requires_grad_();
    for (int epoch = 0; epoch < bench::kW2Epochs; ++epoch) {
      tapegrad::Tape tape;
      const Tensor a = tapegrad::sigmoid(w * 1.0 + b);
      const Tensor cost = nn::half_squared_error(a, target);
      w.zero_grad();
      b.zero_grad();
      cost.backward();
      w.mutable_values()[0] -= bench::kW2Eta * w.grad().item();
      b.mutable_values()[0] -= bench::kW2Eta * b.grad().item();
    }
    benchmark::DoNotOptimize(w.item());
  }
  state.counters["ms_per_run"] = benchmark::Counter(
      1e-3, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_W2_slowdown_neuron)->UseRealTime()->Unit(benchmark::kMillisecond);

// W3 and W4: one SGD step of an MLP on a fixed synthetic batch.
void mlp_step_benchmark(benchmark::State& state, const std::vector<std::int64_t>& sizes,
                        std::int64_t batch) {
  tapegrad::Generator generator(42);
  auto model = nn::MLP(sizes, nn::Activation::relu, generator);
  nn::SGD optimizer(model->parameters(), {.lr = bench::kSgdLr});
  const SyntheticBatch data = synthetic_batch(batch, sizes.front(), 7);
  for (auto _ : state) {
    train_step(*model, optimizer, data.images, data.labels);
  }
  state.counters["GFLOPS"] = benchmark::Counter(bench::mlp_step_flops(sizes, batch) * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
  state.counters["rss_MB"] = bench::rss_mb();
}

void BM_W3_mlp_small_step(benchmark::State& state) {
  mlp_step_benchmark(state, bench::kW3Sizes, bench::kW3Batch);
}
BENCHMARK(BM_W3_mlp_small_step)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_W4_mlp_large_step(benchmark::State& state) {
  mlp_step_benchmark(state, bench::kW4Sizes, bench::kW4Batch);
}
BENCHMARK(BM_W4_mlp_large_step)->UseRealTime()->Unit(benchmark::kMillisecond);

// W4's yardstick: the same dgemm calls one W4 step makes (Linear is y = x W^T), on buffers
// allocated once, so this is what the machine's BLAS does at these sizes.
void BM_W4_dgemm_reference(benchmark::State& state) {
  bench::blas_threads_for_yardstick();
  const auto& sizes = bench::kW4Sizes;
  const int n = static_cast<int>(bench::kW4Batch);
  std::vector<std::vector<double>> acts, weights, grads_w;  // acts[l] [n, sizes[l]]
  for (const auto size : sizes) acts.emplace_back(static_cast<std::size_t>(n * size), 0.01);
  std::vector<std::vector<double>> grads_a = acts;
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
    weights.emplace_back(static_cast<std::size_t>(sizes[l] * sizes[l + 1]), 0.01);
    grads_w.emplace_back(static_cast<std::size_t>(sizes[l] * sizes[l + 1]), 0.0);
  }
  for (auto _ : state) {
    for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
      const int in = static_cast<int>(sizes[l]);
      const int out = static_cast<int>(sizes[l + 1]);
      // forward: y [n, out] = x [n, in] W^T, W [out, in]
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0, acts[l].data(), in,
                  weights[l].data(), in, 0.0, acts[l + 1].data(), out);
    }
    for (std::size_t l = sizes.size() - 1; l-- > 0;) {
      const int in = static_cast<int>(sizes[l]);
      const int out = static_cast<int>(sizes[l + 1]);
      // dW [out, in] = g^T [out, n] x [n, in]
      cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0, grads_a[l + 1].data(),
                  out, acts[l].data(), in, 0.0, grads_w[l].data(), in);
      if (l > 0) {
        // dx [n, in] = g [n, out] W [out, in]
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0,
                    grads_a[l + 1].data(), out, weights[l].data(), in, 0.0, grads_a[l].data(), in);
      }
    }
    benchmark::ClobberMemory();
  }
  state.counters["GFLOPS"] =
      benchmark::Counter(bench::mlp_step_flops(sizes, bench::kW4Batch) * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_W4_dgemm_reference)->UseRealTime()->Unit(benchmark::kMillisecond);

// W5's data: the real Fashion-MNIST training set when installed, else synthetic N(0, 1) data of
// the same size. Loaded once, outside any timing.
const tapegrad::io::Dataset& w5_data(bool& real) {
  static bool is_real = false;
  static const tapegrad::io::Dataset data = [] {
    try {
      auto train = tapegrad::io::load_fashion_mnist(
          tapegrad::io::kFashionMnistDir, tapegrad::io::Split::Train,
          tapegrad::io::kFashionMnistMean, tapegrad::io::kFashionMnistStd);
      is_real = true;
      return train;
    } catch (const tapegrad::Error&) {
      const SyntheticBatch synthetic = synthetic_batch(bench::kSyntheticSamples, 784, 11);
      return tapegrad::io::Dataset(synthetic.images, synthetic.labels);
    }
  }();
  real = is_real;
  return data;
}

// W5: one epoch (938 steps) of Adam over the shuffled training set. One iteration is a whole
// epoch, so this runs once per repetition.
void BM_W5_fashion_epoch(benchmark::State& state) {
  bool real = false;
  const tapegrad::io::Dataset& data = w5_data(real);
  tapegrad::Generator generator(42);
  auto model = nn::MLP(bench::kW5Sizes, nn::Activation::relu, generator);
  nn::Adam optimizer(model->parameters(), {.lr = bench::kAdamLr});
  tapegrad::io::BatchLoader loader(data, static_cast<std::size_t>(bench::kW5Batch), 1);
  for (auto _ : state) {
    while (auto batch = loader.next()) {
      train_step(*model, optimizer, batch->images, batch->labels);
    }
  }
  state.SetLabel(real ? "fashion-mnist" : "synthetic");
  state.counters["real_data"] = real ? 1.0 : 0.0;
  state.counters["rss_MB"] = bench::rss_mb();
}
BENCHMARK(BM_W5_fashion_epoch)->UseRealTime()->Unit(benchmark::kSecond)->Iterations(1);

// Issue 13's gathers and batched matmul (forward + backward each).

// index_select as an embedding lookup: 1024 rows of a [4096, 64] table, then the scatter-add back.
void BM_index_select_rows(benchmark::State& state) {
  tapegrad::Generator generator(13);
  Tensor table = tapegrad::randn({4096, 64}, generator).requires_grad_();
  std::vector<double> rows(1024);
  for (double& r : rows) r = static_cast<double>(generator.below(4096));
  const Tensor indices = tapegrad::from_values(std::move(rows), {1024});
  const Tensor seed = tapegrad::ones({1024, 64});
  for (auto _ : state) {
    tapegrad::Tape tape;
    table.zero_grad();
    tapegrad::index_select(table, 0, indices).backward(seed);
    benchmark::DoNotOptimize(table.grad().values().data());
  }
  state.SetItemsProcessed(state.iterations() * 1024 * 64);
}
BENCHMARK(BM_index_select_rows)->UseRealTime()->Unit(benchmark::kMicrosecond);

// gather as the pick of cross-entropy's target logits: [512, 256] -> [512, 32] along axis 1.
void BM_gather_axis1(benchmark::State& state) {
  tapegrad::Generator generator(14);
  Tensor x = tapegrad::randn({512, 256}, generator).requires_grad_();
  std::vector<double> picks(512 * 32);
  for (double& p : picks) p = static_cast<double>(generator.below(256));
  const Tensor indices = tapegrad::from_values(std::move(picks), {512, 32});
  const Tensor seed = tapegrad::ones({512, 32});
  for (auto _ : state) {
    tapegrad::Tape tape;
    x.zero_grad();
    tapegrad::gather(x, 1, indices).backward(seed);
    benchmark::DoNotOptimize(x.grad().values().data());
  }
  state.SetItemsProcessed(state.iterations() * 512 * 32);
}
BENCHMARK(BM_gather_axis1)->UseRealTime()->Unit(benchmark::kMicrosecond);

constexpr int kBatch = 64, kSide = 32;  // [64, 32, 32] x [64, 32, 32]

// Batched matmul, forward + backward: 64 dgemm calls forward, 2 x 64 backward (da = g b^T,
// db = a^T g), plus what the tape costs around them (allocating y and the gradients, recording).
void BM_batched_matmul_fwd_bwd(benchmark::State& state) {
  tapegrad::Generator generator(15);
  Tensor a = tapegrad::randn({kBatch, kSide, kSide}, generator).requires_grad_();
  Tensor b = tapegrad::randn({kBatch, kSide, kSide}, generator).requires_grad_();
  const Tensor seed = tapegrad::randn({kBatch, kSide, kSide}, generator);
  for (auto _ : state) {
    tapegrad::Tape tape;
    a.zero_grad();
    b.zero_grad();
    tapegrad::matmul(a, b).backward(seed);
    benchmark::DoNotOptimize(b.grad().values().data());
  }
  state.counters["dgemm_calls"] = 3 * kBatch;
}
BENCHMARK(BM_batched_matmul_fwd_bwd)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Its yardstick: the same 3 x 64 dgemm calls (same shapes and transpose flags) on buffers
// allocated once. Target: BM_batched_matmul_fwd_bwd within 1.5x of this.
void BM_batched_matmul_dgemm_alone(benchmark::State& state) {
  bench::blas_threads_for_yardstick();
  const std::size_t mat = static_cast<std::size_t>(kSide) * kSide;
  const std::size_t all = mat * kBatch;
  std::vector<double> a(all, 0.01), b(all, 0.02), g(all, 0.03), y(all), da(all), db(all);
  const int s = kSide;
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatch; ++i) {  // y = a b
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s, s, s, 1.0, a.data() + i * mat, s,
                  b.data() + i * mat, s, 0.0, y.data() + i * mat, s);
    }
    for (std::size_t i = 0; i < kBatch; ++i) {  // da = g b^T
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s, s, s, 1.0, g.data() + i * mat, s,
                  b.data() + i * mat, s, 0.0, da.data() + i * mat, s);
    }
    for (std::size_t i = 0; i < kBatch; ++i) {  // db = a^T g
      cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s, s, s, 1.0, a.data() + i * mat, s,
                  g.data() + i * mat, s, 0.0, db.data() + i * mat, s);
    }
    benchmark::ClobberMemory();
  }
  state.counters["dgemm_calls"] = 3 * kBatch;
}
BENCHMARK(BM_batched_matmul_dgemm_alone)->UseRealTime()->Unit(benchmark::kMicrosecond);

// The forward product alone (no tape: constants), against its 64 bare dgemm calls.
void BM_batched_matmul_forward(benchmark::State& state) {
  tapegrad::Generator generator(16);
  const Tensor a = tapegrad::randn({kBatch, kSide, kSide}, generator);
  const Tensor b = tapegrad::randn({kBatch, kSide, kSide}, generator);
  for (auto _ : state) {
    const Tensor y = tapegrad::matmul(a, b);
    benchmark::DoNotOptimize(y.values().data());
  }
  state.counters["dgemm_calls"] = kBatch;
}
BENCHMARK(BM_batched_matmul_forward)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_batched_matmul_forward_dgemm_alone(benchmark::State& state) {
  bench::blas_threads_for_yardstick();
  const std::size_t mat = static_cast<std::size_t>(kSide) * kSide;
  std::vector<double> a(mat * kBatch, 0.01), b(mat * kBatch, 0.02), y(mat * kBatch);
  const int s = kSide;
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatch; ++i) {
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s, s, s, 1.0, a.data() + i * mat, s,
                  b.data() + i * mat, s, 0.0, y.data() + i * mat, s);
    }
    benchmark::ClobberMemory();
  }
  state.counters["dgemm_calls"] = kBatch;
}
BENCHMARK(BM_batched_matmul_forward_dgemm_alone)->UseRealTime()->Unit(benchmark::kMicrosecond);

// W6: one Adam step of issue 14's CNN on a fixed synthetic batch of 64 images.
void BM_W6_cnn_step(benchmark::State& state) {
  tapegrad::Generator generator(42);
  auto model = bench::make_cnn(generator);
  nn::Adam optimizer(model->parameters(), {.lr = bench::kAdamLr});
  const bench::CnnBatch data = bench::cnn_batch(bench::kW6Batch, 7);
  for (auto _ : state) {
    train_step(*model, optimizer, data.images, data.labels);
  }
  state.counters["rss_MB"] = bench::rss_mb();
}
BENCHMARK(BM_W6_cnn_step)->UseRealTime()->Unit(benchmark::kMillisecond);

// W7: one AdamW step of issue 15's tiny GPT (tiny_gpt's defaults) on a fixed batch of 32 windows.
void BM_W7_gpt_step(benchmark::State& state) {
  tapegrad::Generator generator(42);
  nn::GPT model(bench::gpt_config(), generator);
  nn::AdamW optimizer(
      model.parameters(),
      {.lr = bench::kW7Lr, .beta2 = bench::kW7Beta2, .weight_decay = bench::kW7WeightDecay});
  const bench::GptBatch data = bench::gpt_batch(bench::kW7Batch, 7);
  for (auto _ : state) {
    tapegrad::Tape tape;
    optimizer.zero_grad();
    const Tensor loss = model.loss(data.idx, data.targets);
    loss.backward();
    optimizer.step();
  }
  state.counters["rss_MB"] = bench::rss_mb();
}
BENCHMARK(BM_W7_gpt_step)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("openblas_config", openblas_get_config());
  // Read before any tapegrad product sets OpenBLAS to one thread (ops/src/gemm.hpp): the
  // yardsticks' count.
  benchmark::AddCustomContext("openblas_threads", std::to_string(openblas_get_num_threads()));
  benchmark::AddCustomContext("tapegrad_threads", std::to_string(tapegrad::get_num_threads()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
