// Fit sin(x) on [-pi, pi] with a small tanh MLP (1-32-32-1) and Adam, full batch. Writes
// fit_sine.csv (x, target, fit, error), the gnuplot script fit_sine.gp and, when gnuplot is
// installed, fit_sine.png: the fit over the target above, the error fit - sin(x) below.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numbers>
#include <string>
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
  const double lr_end = 1e-4;
  nn::CosineAnnealingLR schedule(optimizer, steps, lr_end);  // slow down towards the end

  // Say what is trained: the network (from the model itself), the data, the loss, the optimizer.
  std::vector<std::string> layers;
  for (std::size_t i = 0; i < model->size(); ++i) layers.push_back(model->at(i)->name());
  std::int64_t count = 0;
  for (const auto& parameter : model->parameters()) count += parameter.numel();
  fmt::print(
      "training {} ({} parameters) on {} points x in [-pi, pi] with target sin(x), full batch; "
      "loss mse; Adam lr {} with cosine decay to {}; {} steps\n",
      fmt::join(layers, " -> "), count, n, optimizer.options().lr, lr_end, steps);

  for (int step = 1; step <= steps; ++step) {
    tapegrad::Tape tape;  // a fresh tape per step: memory stays flat
    optimizer.zero_grad();
    const auto loss = nn::mse((*model)(x), target);
    loss.backward();
    optimizer.step();
    schedule.step();
    if (step % 250 == 0) fmt::print("step {:4d}  mse {:.3e}\n", step, loss.item());
  }

  // Evaluate with no tape and write x, target, fit, error.
  const auto fit = (*model)(x);
  double worst = 0.0;
  std::FILE* csv = std::fopen("fit_sine.csv", "w");
  if (csv == nullptr) {
    fmt::print(stderr, "cannot write fit_sine.csv in the current directory\n");
    return 1;
  }
  fmt::print(csv, "x,target,fit,error\n");
  for (std::int64_t i = 0; i < n; ++i) {
    const double error = fit.values()[i] - ys[i];
    fmt::print(csv, "{},{},{},{}\n", xs[i], ys[i], fit.values()[i], error);
    worst = std::max(worst, std::abs(error));
  }
  std::fclose(csv);
  const double final_mse = nn::mse(fit, target).item();
  fmt::print("final mse {:.3e}, largest |fit - sin(x)| {:.3e}; wrote fit_sine.csv\n", final_mse,
             worst);

  // Two panels sharing x: the fit over the target (they overlap when training worked), and the
  // error on its own scale, where it is visible.
  std::ofstream gp("fit_sine.gp");
  gp << "set terminal pngcairo size 900,700\nset output 'fit_sine.png'\n"
     << "set datafile separator ','\nset grid\nset multiplot layout 2,1 title '"
     << fmt::format("Fitting sin(x) with an MLP 1-32-32-1 (tanh), Adam, {} steps: final mse {:.2e}",
                    steps, final_mse)
     << "'\nset xrange [-pi:pi]\nset key top left\nset xlabel 'x'\nset ylabel 'y'\n"
     << "plot 'fit_sine.csv' using 1:2 with lines lw 4 lc rgb '#999999' title 'target sin(x)', \\\n"
     << "     '' using 1:3 with lines lw 2 lc rgb '#0060c0' title 'MLP fit'\n"
     << "set xlabel 'x'\nset ylabel 'fit - sin(x)'\nset key top right\n"
     << "plot 'fit_sine.csv' using 1:4 with lines lw 2 lc rgb '#c03000' title "
     << fmt::format("'error (largest |error| {:.2e})'", worst) << ", \\\n"
     << "     0 with lines lc rgb 'black' notitle\nunset multiplot\n";
  gp.close();
  if (std::system("command -v gnuplot > /dev/null 2>&1") == 0 &&
      std::system("gnuplot fit_sine.gp") == 0) {
    fmt::print("wrote fit_sine.png (fit over target, and the error)\n");
  } else {
    fmt::print(
        "to plot it, install gnuplot (apt-get install gnuplot-nox) and run: gnuplot fit_sine.gp\n");
  }
}
