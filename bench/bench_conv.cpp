// Issue 14's CNN: Conv2d(1, 16, 5, p2) -> ReLU -> MaxPool2d(2) -> Conv2d(16, 32, 5, p2) -> ReLU ->
// MaxPool2d(2) -> Flatten -> Linear(1568, 128) -> ReLU -> Linear(128, 10), batch 64, float64.
//
//   BM_conv_op/<layer>/<product>     one convolution product as the tapegrad op (im2col + dgemm)
//   BM_conv_dgemm/<layer>/<product>  the bare dgemm calls that op makes, on ready buffers
//     layer 1 = conv1 [64, 1, 28, 28] * [16, 1, 5, 5], 2 = conv2 [64, 16, 14, 14] * [32, 16, 5, 5]
//     product 0 = forward (conv2d), 1 = input gradient (conv2d_input), 2 = weight gradient
//     (conv2d_weight). The target: op time <= dgemm time / 0.8 (GFLOPS counters).
//   BM_conv_step_op / BM_conv_step_dgemm   the five products one training step needs, together
//   BM_cnn_conv_layers_fwd_bwd       conv1 -> relu -> pool -> conv2 -> relu -> pool, forward and
//                                    backward (seeded), on a fresh tape
//   BM_cnn_fwd_bwd                   the whole network with cross-entropy, forward + backward
//
//   build/bench/bench_conv --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <cblas.h>

#include <cstdint>
#include <vector>

#include <benchmark/benchmark.h>

#include <tapegrad/tapegrad.hpp>

#include "workloads.hpp"

namespace {

using namespace tapegrad;  // NOLINT: the ops read best unqualified

constexpr std::int64_t kBatch = 64;

struct Layer {
  std::int64_t c, h, w, o, k;  // input [N, c, h, w], weight [o, c, k, k], padding k / 2
  std::int64_t cols() const { return c * k * k; }   // K of the lowering
  std::int64_t positions() const { return h * w; }  // L (stride 1, same padding)
};

Layer layer(std::int64_t index) {
  return index == 1 ? Layer{1, 28, 28, 16, 5} : Layer{16, 14, 14, 32, 5};
}

double product_flops(const Layer& l) {
  return 2.0 * static_cast<double>(kBatch * l.o * l.cols() * l.positions());
}

void set_counters(benchmark::State& state, double flops) {
  state.counters["GFLOPS"] = benchmark::Counter(
      flops * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

void BM_conv_op(benchmark::State& state) {
  const Layer l = layer(state.range(0));
  const std::int64_t product = state.range(1);
  Generator gen(1);
  const Tensor x = randn({kBatch, l.c, l.h, l.w}, gen);
  const Tensor w = randn({l.o, l.c, l.k, l.k}, gen);
  const Tensor g = randn({kBatch, l.o, l.h, l.w}, gen);
  const Conv2dOptions o{.padding = l.k / 2};
  for (auto _ : state) {
    Tensor y;
    if (product == 0) y = conv2d(x, w, Tensor(), o);
    if (product == 1) y = conv2d_input(x.shape(), w, g, o);
    if (product == 2) y = conv2d_weight(x, w.shape(), g, o);
    benchmark::DoNotOptimize(y.values().data());
  }
  set_counters(state, product_flops(l));
}
BENCHMARK(BM_conv_op)
    ->ArgsProduct({{1, 2}, {0, 1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The same per-sample dgemm calls the op makes (conv.cpp), nothing else.
void BM_conv_dgemm(benchmark::State& state) {
  bench::blas_threads_for_yardstick();
  const Layer l = layer(state.range(0));
  const std::int64_t product = state.range(1);
  const int o = static_cast<int>(l.o), k = static_cast<int>(l.cols());
  const int p = static_cast<int>(l.positions());
  std::vector<double> weight(static_cast<std::size_t>(o * k), 0.5);
  std::vector<double> col(static_cast<std::size_t>(k * p), 0.25);
  std::vector<double> out(static_cast<std::size_t>(kBatch * o * p), 0.125);
  for (auto _ : state) {
    for (std::int64_t n = 0; n < kBatch; ++n) {
      double* out_n = out.data() + n * o * p;
      if (product == 0) {  // y_n [o, p] = w [o, k] col [k, p]
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, o, p, k, 1.0, weight.data(), k,
                    col.data(), p, 0.0, out_n, p);
      } else if (product == 1) {  // col [k, p] = w^T [k, o] g_n [o, p]
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, p, o, 1.0, weight.data(), k, out_n,
                    p, 0.0, col.data(), p);
      } else {  // dw [o, k] += g_n [o, p] col^T [p, k]
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, o, k, p, 1.0, out_n, p, col.data(), p,
                    1.0, weight.data(), k);
      }
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::DoNotOptimize(col.data());
    benchmark::DoNotOptimize(weight.data());
  }
  set_counters(state, product_flops(l));
}
BENCHMARK(BM_conv_dgemm)
    ->ArgsProduct({{1, 2}, {0, 1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// All five products of one training step (conv1 forward and weight gradient: the images need no
// gradient; conv2 forward, input and weight gradients), as ops and as their bare dgemm calls: the
// ratio of these two is the "convolution products at >= 80% of dgemm".
void BM_conv_step_op(benchmark::State& state) {
  Generator gen(4);
  const Layer l1 = layer(1), l2 = layer(2);
  const Tensor x1 = randn({kBatch, 1, 28, 28}, gen), w1 = randn({16, 1, 5, 5}, gen);
  const Tensor g1 = randn({kBatch, 16, 28, 28}, gen);
  const Tensor x2 = randn({kBatch, 16, 14, 14}, gen), w2 = randn({32, 16, 5, 5}, gen);
  const Tensor g2 = randn({kBatch, 32, 14, 14}, gen);
  const Conv2dOptions o{.padding = 2};
  for (auto _ : state) {
    benchmark::DoNotOptimize(conv2d(x1, w1, Tensor(), o).values().data());
    benchmark::DoNotOptimize(conv2d_weight(x1, w1.shape(), g1, o).values().data());
    benchmark::DoNotOptimize(conv2d(x2, w2, Tensor(), o).values().data());
    benchmark::DoNotOptimize(conv2d_input(x2.shape(), w2, g2, o).values().data());
    benchmark::DoNotOptimize(conv2d_weight(x2, w2.shape(), g2, o).values().data());
  }
  set_counters(state, 2 * product_flops(l1) + 3 * product_flops(l2));
}
BENCHMARK(BM_conv_step_op)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_conv_step_dgemm(benchmark::State& state) {
  bench::blas_threads_for_yardstick();
  const Layer l1 = layer(1), l2 = layer(2);
  const auto buffers = [](const Layer& l) {
    return std::vector<std::vector<double>>{
        std::vector<double>(static_cast<std::size_t>(l.o * l.cols()), 0.5),
        std::vector<double>(static_cast<std::size_t>(l.cols() * l.positions()), 0.25),
        std::vector<double>(static_cast<std::size_t>(kBatch * l.o * l.positions()), 0.125)};
  };
  auto b1 = buffers(l1), b2 = buffers(l2);
  const auto run = [](const Layer& l, std::vector<std::vector<double>>& b, int product) {
    const int o = static_cast<int>(l.o), k = static_cast<int>(l.cols());
    const int p = static_cast<int>(l.positions());
    for (std::int64_t n = 0; n < kBatch; ++n) {
      double* out_n = b[2].data() + n * o * p;
      if (product == 0) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, o, p, k, 1.0, b[0].data(), k,
                    b[1].data(), p, 0.0, out_n, p);
      } else if (product == 1) {
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, p, o, 1.0, b[0].data(), k, out_n, p,
                    0.0, b[1].data(), p);
      } else {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, o, k, p, 1.0, out_n, p, b[1].data(), p,
                    1.0, b[0].data(), k);
      }
    }
  };
  for (auto _ : state) {
    run(l1, b1, 0);
    run(l1, b1, 2);
    run(l2, b2, 0);
    run(l2, b2, 1);
    run(l2, b2, 2);
    benchmark::DoNotOptimize(b1[0].data());
    benchmark::DoNotOptimize(b2[0].data());
  }
  set_counters(state, 2 * product_flops(l1) + 3 * product_flops(l2));
}
BENCHMARK(BM_conv_step_dgemm)->UseRealTime()->Unit(benchmark::kMillisecond);

struct Cnn {
  Tensor w1, b1, w2, b2, w3, b3, w4, b4;
};

Cnn make_cnn(Generator& gen) {
  const auto param = [&gen](const Shape& s, double scale) {
    Tensor t = randn(s, gen) * scale;
    return t.detach().requires_grad_();
  };
  return {param({16, 1, 5, 5}, 0.2), param({16}, 0.1),          param({32, 16, 5, 5}, 0.05),
          param({32}, 0.1),          param({128, 1568}, 0.025), param({128}, 0.1),
          param({10, 128}, 0.09),    param({10}, 0.1)};
}

void zero_grads(const Cnn& m) {
  for (Tensor t : {m.w1, m.b1, m.w2, m.b2, m.w3, m.b3, m.w4, m.b4}) t.zero_grad();
}

Tensor conv_layers(const Cnn& m, const Tensor& images) {
  const Tensor h1 = max_pool2d(relu(conv2d(images, m.w1, m.b1, {.padding = 2})), 2);
  return max_pool2d(relu(conv2d(h1, m.w2, m.b2, {.padding = 2})), 2);  // [64, 32, 7, 7]
}

void BM_cnn_conv_layers_fwd_bwd(benchmark::State& state) {
  Generator gen(2);
  const Cnn m = make_cnn(gen);
  const Tensor images = randn({kBatch, 1, 28, 28}, gen);
  const Tensor seed = randn({kBatch, 32, 7, 7}, gen);
  for (auto _ : state) {
    zero_grads(m);
    Tape tape;
    conv_layers(m, images).backward(seed);
    benchmark::DoNotOptimize(m.w1.grad().values().data());
  }
}
BENCHMARK(BM_cnn_conv_layers_fwd_bwd)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_cnn_fwd_bwd(benchmark::State& state) {
  Generator gen(3);
  const Cnn m = make_cnn(gen);
  const Tensor images = randn({kBatch, 1, 28, 28}, gen);
  std::vector<double> labels(kBatch);
  for (double& label : labels) label = static_cast<double>(gen.below(10));
  const Tensor targets = from_values(std::move(labels), {kBatch});
  for (auto _ : state) {
    zero_grads(m);
    Tape tape;
    const Tensor flat = reshape(conv_layers(m, images), {kBatch, 1568});
    const Tensor h = relu(matmul(flat, m.w3, {.transpose_b = true}) + m.b3);
    const Tensor logits = matmul(h, m.w4, {.transpose_b = true}) + m.b4;
    nn::cross_entropy_with_logits(logits, targets).backward();
    benchmark::DoNotOptimize(m.w1.grad().values().data());
  }
}
BENCHMARK(BM_cnn_fwd_bwd)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
