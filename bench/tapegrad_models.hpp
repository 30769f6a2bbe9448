#pragma once
// tapegrad's side of W3-W7 (workloads.hpp) shared by bench_workloads.cpp and whole_run.cpp: the
// training step and the W6/W7 models.
#include <cstdint>
#include <memory>
#include <vector>

#include <tapegrad/tapegrad.hpp>

#include "workloads.hpp"

namespace bench {

// One training step, as the Fashion-MNIST example writes it: a tape for the step, zero_grad,
// cross_entropy_with_logits, backward, step. Returns the loss.
inline double train_step(tapegrad::nn::Module& model, tapegrad::nn::Optimizer& optimizer,
                         const tapegrad::Tensor& images, const tapegrad::Tensor& labels) {
  tapegrad::Tape tape;
  optimizer.zero_grad();
  const tapegrad::Tensor loss = tapegrad::nn::cross_entropy_with_logits(model(images), labels);
  loss.backward();
  optimizer.step();
  return loss.item();
}

// Issue 14's CNN as examples/fashion_mnist builds it with --dropout 0 (PyTorch's layer order):
//   Conv2d(1, 16, 5, padding 2) ReLU MaxPool2d(2) Conv2d(16, 32, 5, padding 2) ReLU MaxPool2d(2)
//   Flatten Linear(1568, 128) ReLU Linear(128, 10)
inline std::shared_ptr<tapegrad::nn::Sequential> make_cnn(tapegrad::Generator& generator) {
  namespace nn = tapegrad::nn;
  auto model = std::make_shared<nn::Sequential>();
  for (const auto& [in, out] : {std::pair<std::int64_t, std::int64_t>{1, 16}, {16, 32}}) {
    model->add(
        std::make_shared<nn::Conv2d>(in, out, 5, tapegrad::Conv2dOptions{.padding = 2}, generator));
    model->add(std::make_shared<nn::ReLU>());
    model->add(std::make_shared<nn::MaxPool2d>(2));
  }
  model->add(std::make_shared<nn::Flatten>());
  model->add(std::make_shared<nn::Linear>(1568, 128, generator));
  model->add(std::make_shared<nn::ReLU>());
  model->add(std::make_shared<nn::Linear>(128, 10, generator));
  return model;
}

// Images [n, 1, 28, 28] ~ N(0, 1) and labels [n] in 0..9 (as doubles).
struct CnnBatch {
  tapegrad::Tensor images, labels;
};

inline CnnBatch cnn_batch(std::int64_t n, std::uint64_t seed) {
  tapegrad::Generator generator(seed);
  tapegrad::Tensor images = tapegrad::randn({n, 1, 28, 28}, generator);
  std::vector<double> labels(static_cast<std::size_t>(n));
  for (double& label : labels) {
    label = static_cast<double>(generator.below(static_cast<std::uint64_t>(kClasses)));
  }
  return {images, tapegrad::from_values(std::move(labels), {n})};
}

inline tapegrad::nn::GPTConfig gpt_config() {
  return {.vocab_size = kW7Vocab,
          .block_size = kW7Block,
          .n_layer = kW7Layers,
          .n_head = kW7Heads,
          .n_embd = kW7Embd};
}

// Token windows: idx [n, T] and the next tokens, targets [n, T], uniform over the vocabulary.
struct GptBatch {
  tapegrad::Tensor idx, targets;
};

inline GptBatch gpt_batch(std::int64_t n, std::uint64_t seed) {
  tapegrad::Generator generator(seed);
  std::vector<double> tokens(static_cast<std::size_t>(n * (kW7Block + 1)));
  for (double& t : tokens)
    t = static_cast<double>(generator.below(static_cast<std::uint64_t>(kW7Vocab)));
  std::vector<double> idx, targets;
  for (std::int64_t b = 0; b < n; ++b) {
    const double* row = tokens.data() + b * (kW7Block + 1);
    idx.insert(idx.end(), row, row + kW7Block);
    targets.insert(targets.end(), row + 1, row + kW7Block + 1);
  }
  return {tapegrad::from_values(std::move(idx), {n, kW7Block}),
          tapegrad::from_values(std::move(targets), {n, kW7Block})};
}

}  // namespace bench
