// M1 of the performance issue: resident memory after 1e5 W3 training steps minus after 1e3.
// Prints one JSON object on standard output:
//   {"workload": "M1", "steps_early": 1000, "steps_late": 100000, "rss_early_MB": ...,
//    "rss_late_MB": ..., "growth_MB": ..., "ms_per_step": ...}
//
//   whole_run [steps_late]   (default 100000; steps_early is always 1000)
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

#include "workloads.hpp"

namespace {

using tapegrad::Tensor;
namespace nn = tapegrad::nn;

}  // namespace

int main(int argc, char** argv) {
  constexpr long steps_early = 1000;
  const long steps_late = argc > 1 ? std::atol(argv[1]) : 100000;
  if (steps_late <= steps_early) {
    fmt::print(stderr, "whole_run: steps_late must exceed {}\n", steps_early);
    return 2;
  }

  tapegrad::Generator generator(42);
  auto model = nn::MLP(bench::kW3Sizes, nn::Activation::relu, generator);
  nn::SGD optimizer(model->parameters(), {.lr = bench::kSgdLr});
  const Tensor images = tapegrad::randn({bench::kW3Batch, bench::kW3Sizes.front()}, generator);
  std::vector<double> label_values(static_cast<std::size_t>(bench::kW3Batch));
  for (double& label : label_values) {
    label = static_cast<double>(generator.below(static_cast<std::uint64_t>(bench::kClasses)));
  }
  const Tensor labels = tapegrad::from_values(std::move(label_values), {bench::kW3Batch});

  double rss_early = 0.0;
  double loss_value = 0.0;
  auto late_start = std::chrono::steady_clock::now();
  for (long step = 1; step <= steps_late; ++step) {
    {
      tapegrad::Tape tape;
      optimizer.zero_grad();
      const Tensor loss = nn::cross_entropy_with_logits((*model)(images), labels);
      loss.backward();
      optimizer.step();
      loss_value = loss.item();
    }
    if (step == steps_early) {
      rss_early = bench::rss_mb();
      late_start = std::chrono::steady_clock::now();
    }
  }
  const double rss_late = bench::rss_mb();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - late_start).count();

  fmt::print(
      "{{\"workload\": \"M1\", \"steps_early\": {}, \"steps_late\": {}, \"rss_early_MB\": {:.3f}, "
      "\"rss_late_MB\": {:.3f}, \"growth_MB\": {:.3f}, \"ms_per_step\": {:.4f}, "
      "\"final_loss\": {:.6g}}}\n",
      steps_early, steps_late, rss_early, rss_late, rss_late - rss_early,
      1e3 * seconds / static_cast<double>(steps_late - steps_early), loss_value);
  return 0;
}
