// Fit sin(x) on [-pi, pi] with a small tanh MLP (1-32-32-1) and Adam, full batch. Writes
// fit_sine.csv (x, target, fit) and, when gnuplot is installed, fit_sine.png.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numbers>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

namespace nn = tapegrad::nn;

int main() {
  // 200 evenly spaced points: x [200, 1], target sin(x) [200, 1].
  const std::int64_t n = 200;
  std::vector<double> xs(n), ys(n);
  for (std::int64_t i = 0; i < n; ++i) {
    xs[i] = -std::numbers::pi + 2.0 * std::numbers::pi * static_cast<double>(i) / (n - 1);
    ys[i] = std::sin(xs[i]);
  }
  const auto x = tapegrad::from_values(xs, {n, 1});
  const auto target = tapegrad::from_values(ys, {n, 1});

  tapegrad::Generator gen(0);
  auto model = nn::MLP({1, 32, 32, 1}, nn::Activation::tanh, gen);
  nn::Adam optimizer(model->parameters(), {.lr = 0.01});
  const int steps = 2000;
  nn::CosineAnnealingLR schedule(optimizer, steps, 1e-4);  // slow down towards the end

  for (int step = 1; step <= steps; ++step) {
    tapegrad::Tape tape;  // a fresh tape per step: memory stays flat
    optimizer.zero_grad();
    const auto loss = nn::mse((*model)(x), target);
    loss.backward();
    optimizer.step();
    schedule.step();
    if (step % 250 == 0) fmt::print("step {:4d}  mse {:.3e}\n", step, loss.item());
  }

  // Evaluate with no tape and write x, target, fit.
  const auto fit = (*model)(x);
  double worst = 0.0;
  std::FILE* csv = std::fopen("fit_sine.csv", "w");
  if (csv == nullptr) {
    fmt::print(stderr, "cannot write fit_sine.csv in the current directory\n");
    return 1;
  }
  fmt::print(csv, "x,target,fit\n");
  for (std::int64_t i = 0; i < n; ++i) {
    fmt::print(csv, "{},{},{}\n", xs[i], ys[i], fit.values()[i]);
    worst = std::max(worst, std::abs(fit.values()[i] - ys[i]));
  }
  std::fclose(csv);
  fmt::print("final mse {:.3e}, largest |fit - sin(x)| {:.3e}; wrote fit_sine.csv\n",
             nn::mse(fit, target).item(), worst);

  const char* plot =
      "set datafile separator ','; set key autotitle columnhead; set terminal png size 800,500; "
      "set output 'fit_sine.png'; plot 'fit_sine.csv' using 1:2 with lines lw 3, "
      "'' using 1:3 with lines lw 2 dt 2";
  if (std::system("command -v gnuplot > /dev/null 2>&1") == 0 &&
      std::system(fmt::format("gnuplot -e \"{}\"", plot).c_str()) == 0) {
    fmt::print("wrote fit_sine.png\n");
  } else {
    fmt::print("to plot it, install gnuplot and run:\n  gnuplot -e \"{}\"\n", plot);
  }
}
