// M1 and M2 of the performance issues: resident memory after many training steps minus after a few.
//   M1: 1e5 W3 steps (MLP 784-128-10, SGD) against 1e3; M2: 300 W6 steps (issue 14's CNN, Adam)
//   against 30. Prints one JSON object on standard output:
//   {"workload": "M1", "steps_early": 1000, "steps_late": 100000, "rss_early_MB": ...,
//    "rss_late_MB": ..., "growth_MB": ..., "ms_per_step": ...}
//
//   whole_run [steps_late]        M1 (default 100000; steps_early is always 1000)
//   whole_run cnn [steps_late]    M2 (default 300; steps_early is always 30)
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

#include "tapegrad_models.hpp"
#include "workloads.hpp"

namespace {

using tapegrad::Tensor;
namespace nn = tapegrad::nn;

// Runs `step` steps_late times; the JSON line of the memory workload `name`.
template <class Step>
int measure(const char* name, long steps_early, long steps_late, Step step) {
  if (steps_late <= steps_early) {
    fmt::print(stderr, "whole_run: steps_late must exceed {}\n", steps_early);
    return 2;
  }
  double rss_early = 0.0;
  double loss_value = 0.0;
  auto late_start = std::chrono::steady_clock::now();
  for (long i = 1; i <= steps_late; ++i) {
    loss_value = step();
    if (i == steps_early) {
      rss_early = bench::rss_mb();
      late_start = std::chrono::steady_clock::now();
    }
  }
  const double rss_late = bench::rss_mb();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - late_start).count();
  fmt::print(
      "{{\"workload\": \"{}\", \"steps_early\": {}, \"steps_late\": {}, \"rss_early_MB\": "
      "{:.3f}, \"rss_late_MB\": {:.3f}, \"growth_MB\": {:.3f}, \"ms_per_step\": {:.4f}, "
      "\"final_loss\": {:.6g}}}\n",
      name, steps_early, steps_late, rss_early, rss_late, rss_late - rss_early,
      1e3 * seconds / static_cast<double>(steps_late - steps_early), loss_value);
  return 0;
}

using bench::train_step;

}  // namespace

int main(int argc, char** argv) {
  const bool cnn = argc > 1 && std::string(argv[1]) == "cnn";
  const char* late_arg = cnn ? (argc > 2 ? argv[2] : nullptr) : (argc > 1 ? argv[1] : nullptr);
  tapegrad::Generator generator(42);
  if (cnn) {
    auto model = bench::make_cnn(generator);
    nn::Adam optimizer(model->parameters(), {.lr = bench::kAdamLr});
    const bench::CnnBatch data = bench::cnn_batch(bench::kW6Batch, 7);
    return measure("M2", 30, late_arg != nullptr ? std::atol(late_arg) : 300,
                   [&] { return train_step(*model, optimizer, data.images, data.labels); });
  }
  auto model = nn::MLP(bench::kW3Sizes, nn::Activation::relu, generator);
  nn::SGD optimizer(model->parameters(), {.lr = bench::kSgdLr});
  const Tensor images = tapegrad::randn({bench::kW3Batch, bench::kW3Sizes.front()}, generator);
  std::vector<double> label_values(static_cast<std::size_t>(bench::kW3Batch));
  for (double& label : label_values) {
    label = static_cast<double>(generator.below(static_cast<std::uint64_t>(bench::kClasses)));
  }
  const Tensor labels = tapegrad::from_values(std::move(label_values), {bench::kW3Batch});
  return measure("M1", 1000, late_arg != nullptr ? std::atol(late_arg) : 100000,
                 [&] { return train_step(*model, optimizer, images, labels); });
}
