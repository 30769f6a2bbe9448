// libtorch's side of W1, W3, W4, W5, W6 and W7 (see workloads.hpp), written as a libtorch user
// would, in float64, with torch::set_num_threads equal to OpenBLAS's thread count on tapegrad's
// side. The benchmark names and counters match bench_workloads.cpp so scripts/bench can pair them.
// Built only when find_package(Torch) succeeds (Debian libtorch-dev).
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <tapegrad/io/dataset.hpp>

#include "workloads.hpp"

namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

torch::nn::Sequential make_mlp(const std::vector<std::int64_t>& sizes) {
  torch::nn::Sequential model;
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
    model->push_back(torch::nn::Linear(sizes[l], sizes[l + 1]));
    if (l + 2 < sizes.size()) model->push_back(torch::nn::ReLU());
  }
  model->to(torch::kFloat64);
  return model;
}

void train_step(torch::nn::Sequential& model, torch::optim::Optimizer& optimizer,
                const torch::Tensor& images, const torch::Tensor& labels) {
  optimizer.zero_grad();
  const torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(images), labels);
  loss.backward();
  optimizer.step();
}

void BM_W1_scalar_chain(benchmark::State& state) {
  torch::Tensor x = torch::scalar_tensor(bench::kW1Start, kF64).requires_grad_();
  const torch::Tensor c = torch::scalar_tensor(bench::kW1Mul, kF64);
  const torch::Tensor d = torch::scalar_tensor(bench::kW1Add, kF64);
  for (auto _ : state) {
    x.mutable_grad() = torch::Tensor();
    torch::Tensor y = x;
    for (int i = 0; i < bench::kW1Ops / 4; ++i) {
      y = y * c;
      y = y + d;
      y = torch::tanh(y);
      y = torch::sigmoid(y);
    }
    y.backward();
    benchmark::DoNotOptimize(x.grad().item<double>());
  }
  state.counters["us_per_op"] =
      benchmark::Counter(bench::kW1Ops * 1e-6, benchmark::Counter::kIsIterationInvariantRate |
                                                   benchmark::Counter::kInvert);
}
BENCHMARK(BM_W1_scalar_chain)->UseRealTime()->Unit(benchmark::kMicrosecond);

void mlp_step_benchmark(benchmark::State& state, const std::vector<std::int64_t>& sizes,
                        std::int64_t batch) {
  torch::manual_seed(42);
  auto model = make_mlp(sizes);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(bench::kSgdLr));
  const torch::Tensor images = torch::randn({batch, sizes.front()}, kF64);
  const torch::Tensor labels = torch::randint(bench::kClasses, {batch}, torch::kLong);
  for (auto _ : state) {
    train_step(model, optimizer, images, labels);
  }
  state.counters["GFLOPS"] = benchmark::Counter(bench::mlp_step_flops(sizes, batch) * 1e-9,
                                                benchmark::Counter::kIsIterationInvariantRate);
}

void BM_W3_mlp_small_step(benchmark::State& state) {
  mlp_step_benchmark(state, bench::kW3Sizes, bench::kW3Batch);
}
BENCHMARK(BM_W3_mlp_small_step)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_W4_mlp_large_step(benchmark::State& state) {
  mlp_step_benchmark(state, bench::kW4Sizes, bench::kW4Batch);
}
BENCHMARK(BM_W4_mlp_large_step)->UseRealTime()->Unit(benchmark::kMillisecond);

// The same data as tapegrad's W5 (loaded through tapegrad::io, untimed), as torch tensors.
struct W5Data {
  torch::Tensor images;  // [N, 784] float64
  torch::Tensor labels;  // [N] int64
  bool real = false;
};

const W5Data& w5_data() {
  static const W5Data data = [] {
    W5Data out;
    try {
      const auto train = tapegrad::io::load_fashion_mnist(
          tapegrad::io::kFashionMnistDir, tapegrad::io::Split::Train,
          tapegrad::io::kFashionMnistMean, tapegrad::io::kFashionMnistStd);
      const auto n = static_cast<std::int64_t>(train.size());
      const auto f = static_cast<std::int64_t>(train.features());
      out.images =
          torch::from_blob(const_cast<double*>(train.images().values().data()), {n, f}, kF64)
              .clone();
      out.labels = torch::from_blob(const_cast<double*>(train.labels().values().data()), {n}, kF64)
                       .to(torch::kLong);
      out.real = true;
    } catch (const tapegrad::Error&) {
      torch::manual_seed(11);
      out.images = torch::randn({bench::kSyntheticSamples, 784}, kF64);
      out.labels = torch::randint(bench::kClasses, {bench::kSyntheticSamples}, torch::kLong);
    }
    return out;
  }();
  return data;
}

// W5: one shuffled epoch of Adam, mini-batches gathered with index_select.
void BM_W5_fashion_epoch(benchmark::State& state) {
  const W5Data& data = w5_data();
  torch::manual_seed(42);
  auto model = make_mlp(bench::kW5Sizes);
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(bench::kAdamLr));
  const std::int64_t n = data.images.size(0);
  for (auto _ : state) {
    const torch::Tensor order = torch::randperm(n, torch::kLong);
    for (std::int64_t start = 0; start < n; start += bench::kW5Batch) {
      const torch::Tensor index = order.slice(0, start, std::min(start + bench::kW5Batch, n));
      train_step(model, optimizer, data.images.index_select(0, index),
                 data.labels.index_select(0, index));
    }
  }
  state.SetLabel(data.real ? "fashion-mnist" : "synthetic");
  state.counters["real_data"] = data.real ? 1.0 : 0.0;
}
BENCHMARK(BM_W5_fashion_epoch)->UseRealTime()->Unit(benchmark::kSecond)->Iterations(1);

// W6: issue 14's CNN as a libtorch user writes it (torch::nn::Sequential), Adam, batch 64.
void BM_W6_cnn_step(benchmark::State& state) {
  torch::manual_seed(42);
  namespace tnn = torch::nn;
  tnn::Sequential model(tnn::Conv2d(tnn::Conv2dOptions(1, 16, 5).padding(2)), tnn::ReLU(),
                        tnn::MaxPool2d(tnn::MaxPool2dOptions(2)),
                        tnn::Conv2d(tnn::Conv2dOptions(16, 32, 5).padding(2)), tnn::ReLU(),
                        tnn::MaxPool2d(tnn::MaxPool2dOptions(2)), tnn::Flatten(),
                        tnn::Linear(1568, 128), tnn::ReLU(), tnn::Linear(128, 10));
  model->to(torch::kFloat64);
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(bench::kAdamLr));
  const torch::Tensor images = torch::randn({bench::kW6Batch, 1, 28, 28}, kF64);
  const torch::Tensor labels = torch::randint(bench::kClasses, {bench::kW6Batch}, torch::kLong);
  for (auto _ : state) {
    train_step(model, optimizer, images, labels);
  }
}
BENCHMARK(BM_W6_cnn_step)->UseRealTime()->Unit(benchmark::kMillisecond);

// W7: nanoGPT's model (as tests/interop/gpt_torch.py, without dropout) in libtorch C++, the
// tied head as F::linear with wte's weight; AdamW over all parameters, batch 32.
struct GptBlockImpl : torch::nn::Module {
  GptBlockImpl(std::int64_t c, std::int64_t heads) : n_head(heads) {
    ln_1 = register_module("ln_1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c})));
    c_attn = register_module("c_attn", torch::nn::Linear(c, 3 * c));
    attn_proj = register_module("attn_proj", torch::nn::Linear(c, c));
    ln_2 = register_module("ln_2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c})));
    c_fc = register_module("c_fc", torch::nn::Linear(c, 4 * c));
    mlp_proj = register_module("mlp_proj", torch::nn::Linear(4 * c, c));
  }
  torch::Tensor attention(const torch::Tensor& x) {
    const std::int64_t b = x.size(0), t = x.size(1), c = x.size(2), d = c / n_head;
    const auto qkv = c_attn(x).split(c, 2);
    const auto heads = [&](const torch::Tensor& z) {
      return z.view({b, t, n_head, d}).transpose(1, 2);
    };
    const torch::Tensor q = heads(qkv[0]), k = heads(qkv[1]), v = heads(qkv[2]);
    torch::Tensor att = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(double(d)));
    const torch::Tensor mask = torch::ones({t, t}, torch::kBool).tril();
    att = torch::softmax(att.masked_fill(mask.logical_not(), -INFINITY), -1);
    return attn_proj(torch::matmul(att, v).transpose(1, 2).contiguous().view({b, t, c}));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = x + attention(ln_1(x));
    return x + mlp_proj(torch::gelu(c_fc(ln_2(x))));
  }
  std::int64_t n_head;
  torch::nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  torch::nn::Linear c_attn{nullptr}, attn_proj{nullptr}, c_fc{nullptr}, mlp_proj{nullptr};
};
TORCH_MODULE(GptBlock);

struct GptImpl : torch::nn::Module {
  GptImpl() {
    wte = register_module("wte", torch::nn::Embedding(bench::kW7Vocab, bench::kW7Embd));
    wpe = register_module("wpe", torch::nn::Embedding(bench::kW7Block, bench::kW7Embd));
    for (std::int64_t l = 0; l < bench::kW7Layers; ++l) {
      blocks->push_back(GptBlock(bench::kW7Embd, bench::kW7Heads));
    }
    register_module("h", blocks);
    ln_f = register_module("ln_f",
                           torch::nn::LayerNorm(torch::nn::LayerNormOptions({bench::kW7Embd})));
  }
  torch::Tensor loss(const torch::Tensor& idx, const torch::Tensor& targets) {
    const torch::Tensor pos = torch::arange(idx.size(1), torch::kLong);
    torch::Tensor x = wte(idx) + wpe(pos);
    for (const auto& block : *blocks) x = block->as<GptBlockImpl>()->forward(x);
    const torch::Tensor logits = torch::nn::functional::linear(ln_f(x), wte->weight);
    return torch::nn::functional::cross_entropy(logits.view({-1, bench::kW7Vocab}),
                                                targets.view({-1}));
  }
  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::ModuleList blocks;
  torch::nn::LayerNorm ln_f{nullptr};
};
TORCH_MODULE(Gpt);

void BM_W7_gpt_step(benchmark::State& state) {
  torch::manual_seed(42);
  Gpt model;
  model->to(torch::kFloat64);
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(bench::kW7Lr)
                                                         .betas({0.9, bench::kW7Beta2})
                                                         .weight_decay(bench::kW7WeightDecay));
  const torch::Tensor tokens =
      torch::randint(bench::kW7Vocab, {bench::kW7Batch, bench::kW7Block + 1}, torch::kLong);
  const torch::Tensor idx = tokens.slice(1, 0, bench::kW7Block).contiguous();
  const torch::Tensor targets = tokens.slice(1, 1).contiguous();
  for (auto _ : state) {
    optimizer.zero_grad();
    const torch::Tensor loss = model->loss(idx, targets);
    loss.backward();
    optimizer.step();
  }
}
BENCHMARK(BM_W7_gpt_step)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  torch::set_num_threads(bench::bench_threads());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("torch_version", TORCH_VERSION);
  benchmark::AddCustomContext("torch_threads", std::to_string(torch::get_num_threads()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
