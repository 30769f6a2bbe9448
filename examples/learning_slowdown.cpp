// learning_slowdown: why sigmoid outputs are paired with cross-entropy, not squared error.
//
// Nielsen's experiment (Neural Networks and Deep Learning, ch. 3): one sigmoid neuron, input
// x = 1, target y = 0, eta = 0.15, 300 epochs of gradient descent, from a mildly wrong start
// (w, b) = (0.6, 0.9) and a confidently wrong one (2, 2), each with the quadratic cost and with
// cross-entropy. The experiment itself is in learning_slowdown.hpp; this program prints the
// outputs, writes them to learning_slowdown.csv and plots learning_slowdown.png with gnuplot,
// all in the current directory.
#include "learning_slowdown.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace {

constexpr double kX = 1.0, kY = 0.0, kEta = 0.15;
constexpr int kEpochs = 300, kPrintEvery = 50;
const char* const kCsv = "learning_slowdown.csv";
const char* const kScript = "learning_slowdown.gp";
const char* const kPng = "learning_slowdown.png";

struct Run {
  double w0, b0;
  slowdown::Cost cost;
  const char* colour;  // one colour per start, so the two costs from one start pair up
  std::vector<slowdown::EpochRecord> records;

  // No commas or spaces: it is a CSV field that the gnuplot script matches on.
  std::string id() const { return fmt::format("{}_w{}_b{}", slowdown::cost_name(cost), w0, b0); }
  std::string title() const {
    return fmt::format("{}, start (w, b) = ({}, {})", slowdown::cost_name(cost), w0, b0);
  }
};

bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  std::string dirs = path;
  for (std::size_t start = 0; start <= dirs.size();) {
    const std::size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::filesystem::path candidate =
        std::filesystem::path(dirs.substr(start, end - start)) / program;
    std::error_code ec;
    if (std::filesystem::is_regular_file(candidate, ec)) return true;
    start = end + 1;
  }
  return false;
}

// Long format, one row per (run, epoch), grouped by run so each curve is one block of lines.
bool write_csv(const std::vector<Run>& runs) {
  std::ofstream out(kCsv);
  out << "epoch,run,a,cost,dC_dw\n";
  for (const Run& run : runs) {
    for (const auto& r : run.records) {
      out << fmt::format("{},{},{:.17g},{:.17g},{:.17g}\n", r.epoch, run.id(), r.a, r.cost,
                         r.dC_dw);
    }
  }
  return static_cast<bool>(out.flush());
}

bool write_gnuplot_script(const std::vector<Run>& runs) {
  std::ofstream out(kScript);
  // pngcairo draws smoother lines; plain png (libgd) is the fallback some builds have instead.
  out << "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
         "  set terminal pngcairo size 960,640 noenhanced font ',12'\n"
         "} else {\n"
         "  set terminal png size 960,640 noenhanced\n"
         "}\n";
  out << fmt::format("set output '{}'\n", kPng);
  out << fmt::format(
      "set title 'Learning slowdown: one sigmoid neuron a = sigma(w x + b), x = {}, y = {}, "
      "eta = {}'\n",
      kX, kY, kEta);
  out << "set xlabel 'epoch'\nset ylabel 'output a'\n"
         "set xrange [0:*]\nset yrange [0:1]\nset grid\n"
         "set datafile separator ','\n";
  // The middle of the plot stays empty in this experiment (the curves hug the top, the left and
  // the bottom), so the key goes there.
  out << "set key at graph 0.7, graph 0.7 right top box opaque\n";
  // Each curve keeps the CSV rows of its own run; the others become NaN and are skipped.
  // Solid is quadratic, dashed is cross-entropy.
  out << "plot \\\n";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const Run& run = runs[i];
    out << fmt::format(
        "  '{}' using 1:(strcol(2) eq '{}' ? $3 : NaN) with lines lw 2 lc rgb '{}' dt {} "
        "title '{}'{}\n",
        kCsv, run.id(), run.colour, run.cost == slowdown::Cost::quadratic ? 1 : 2, run.title(),
        i + 1 < runs.size() ? ", \\" : "");
  }
  return static_cast<bool>(out.flush());
}

}  // namespace

int main() {
  std::vector<Run> runs = {
      {0.6, 0.9, slowdown::Cost::quadratic, "#1f77b4", {}},
      {0.6, 0.9, slowdown::Cost::cross_entropy, "#1f77b4", {}},
      {2.0, 2.0, slowdown::Cost::quadratic, "#d62728", {}},
      {2.0, 2.0, slowdown::Cost::cross_entropy, "#d62728", {}},
  };
  for (Run& run : runs) {
    run.records = slowdown::run_neuron(run.w0, run.b0, run.cost, kEpochs, kEta, kX, kY);
  }

  fmt::print("One sigmoid neuron a = sigma(w x + b), x = {}, target y = {}, eta = {}\n\n", kX, kY,
             kEta);
  fmt::print("output a           start (0.6, 0.9)               start (2, 2)\n");
  fmt::print("epoch      quadratic  cross-entropy      quadratic  cross-entropy\n");
  for (int epoch = 0; epoch <= kEpochs; epoch += kPrintEvery) {
    fmt::print("{:5}", epoch);
    for (const Run& run : runs) fmt::print("  {:13.6f}", run.records[epoch].a);
    fmt::print("\n");
  }
  fmt::print("\nFinal outputs after {} epochs:\n", kEpochs);
  for (const Run& run : runs) {
    fmt::print("  {:<45} a = {:.6f}\n", run.title(), run.records.back().a);
  }
  fmt::print(
      "\nFrom (2, 2) the quadratic cost's gradient carries sigma'(z), about 0.018 at z = 4, so it "
      "hardly moves for the first ~150 epochs;\ncross-entropy's gradient is (a - y) x and moves "
      "fastest when the neuron is most wrong.\n\n");

  const auto here = std::filesystem::current_path();
  if (!write_csv(runs)) {
    fmt::print(stderr, "error: could not write {}\n", (here / kCsv).string());
    return 1;
  }
  fmt::print("wrote {}\n", (here / kCsv).string());
  if (!write_gnuplot_script(runs)) {
    fmt::print(stderr, "error: could not write {}\n", (here / kScript).string());
    return 1;
  }
  fmt::print("wrote {}\n", (here / kScript).string());

  if (!on_path("gnuplot")) {
    fmt::print(
        "gnuplot is not on PATH, so no picture was drawn. Install it (Debian/Ubuntu: apt-get "
        "install gnuplot-nox) and run, in this directory:\n  gnuplot {}\n",
        kScript);
    return 0;
  }
  const int status = std::system(fmt::format("gnuplot {}", kScript).c_str());
  if (status != 0) {
    fmt::print(stderr, "error: 'gnuplot {}' failed (status {})\n", kScript, status);
    return 1;
  }
  fmt::print("wrote {}\n", (here / kPng).string());
  return 0;
}
