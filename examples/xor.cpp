// XOR: the smallest problem a straight line cannot solve. A 2-4-1 network (tanh hidden layer)
// learns it with Adam in a few hundred steps.
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

namespace nn = tapegrad::nn;

int main() {
  // The four inputs [4, 2] and their labels [4, 1]: 1 when exactly one input is 1.
  const auto x = tapegrad::tensor({{0, 0}, {0, 1}, {1, 0}, {1, 1}});
  const auto y = tapegrad::from_values({0, 1, 1, 0}, {4, 1});

  tapegrad::Generator gen(0);
  auto model = nn::MLP({2, 4, 1}, nn::Activation::tanh, gen);  // outputs a logit per row
  nn::Adam optimizer(model->parameters(), {.lr = 0.05});
  const int steps = 1000;

  // Say what is trained: the network (from the model itself), the data, the loss, the optimizer.
  std::vector<std::string> layers;
  for (std::size_t i = 0; i < model->size(); ++i) layers.push_back(model->at(i)->name());
  std::int64_t count = 0;
  for (const auto& parameter : model->parameters()) count += parameter.numel();
  fmt::print(
      "training {} ({} parameters) on the 4 XOR points (a, b) -> a xor b, full batch; loss "
      "bce_with_logits; Adam lr {}; {} steps\n",
      fmt::join(layers, " -> "), count, optimizer.options().lr, steps);

  for (int step = 1; step <= steps; ++step) {
    tapegrad::Tape tape;  // records this step only; freed (with every intermediate) at the '}'
    optimizer.zero_grad();
    // bce_with_logits = binary cross-entropy of sigmoid(logit), computed stably.
    const auto loss = nn::bce_with_logits((*model)(x), y);
    loss.backward();
    optimizer.step();
    if (step == 1 || step % 100 == 0) fmt::print("step {:4d}  loss {:.6f}\n", step, loss.item());
  }

  // No tape here: evaluation records nothing.
  const auto p = tapegrad::sigmoid((*model)(x));
  for (std::int64_t i = 0; i < 4; ++i) {
    fmt::print("{:g} xor {:g} = {:g}   predicted {:.4f}\n", x.at({i, 0}), x.at({i, 1}),
               y.at({i, 0}), p.at({i, 0}));
  }
}
