// TorchOracle (see torch_oracle.hpp): evaluates each case here, writes one safetensors file with
// every case's inputs, seeds, outputs and gradients, and lets tests/torch_oracle.py redo them in
// PyTorch float64.
#include "torch_oracle.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace tapegrad::test {

namespace {
// The captured standard output and exit code of a shell command.
std::pair<std::string, int> run_command(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  if (!pipe) throw std::runtime_error("TorchOracle: cannot start " + command);
  std::string out;
  std::array<char, 4096> buffer{};
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe.get())) > 0)
    out.append(buffer.data(), n);
  const int status = pclose(pipe.release());
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}
}  // namespace

void TorchOracle::add(std::string name, std::string expression, std::vector<Tensor> inputs,
                      OracleFn f) {
  cases_.push_back({std::move(name), std::move(expression), std::move(inputs), std::move(f)});
}

bool TorchOracle::available() {
  static const bool ok = std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
  return ok;
}

OracleResult TorchOracle::run(double tolerance) const {
  OracleResult result;
  result.cases = cases_.size();
  if (!available()) {
    result.skipped = true;
    result.report = "skipped: PyTorch is not installed (apt-get install python3-torch)";
    return result;
  }
  io::NamedTensors named;
  nlohmann::json meta = nlohmann::json::array();
  Generator generator(20261202);
  for (std::size_t k = 0; k < cases_.size(); ++k) {
    const Case& c = cases_[k];
    std::vector<bool> wants_grad;
    std::vector<Tensor> wanted;
    for (std::size_t i = 0; i < c.inputs.size(); ++i) {
      named.emplace_back(fmt::format("c{}.x{}", k, i), c.inputs[i].detach());
      wants_grad.push_back(c.inputs[i].requires_grad());
      if (c.inputs[i].requires_grad()) wanted.push_back(c.inputs[i]);
    }
    Outputs outputs;
    std::vector<Tensor> grads;
    try {
      Tape tape;
      outputs = c.f(c.inputs);
      Tensor loss;
      for (std::size_t j = 0; j < outputs.size(); ++j) {
        const Tensor seed = randn(outputs[j].shape(), generator);
        named.emplace_back(fmt::format("c{}.s{}", k, j), seed);
        named.emplace_back(fmt::format("c{}.y{}", k, j), outputs[j].detach());
        if (!outputs[j].requires_grad()) continue;
        const Tensor term = sum(outputs[j] * seed);
        loss = loss.defined() ? loss + term : term;
      }
      if (loss.defined() && !wanted.empty()) {
        grads = grad(loss, wanted, {.allow_unused = true});
      } else {
        for (const Tensor& w : wanted) grads.push_back(zeros(w.shape()));
      }
    } catch (const std::exception& e) {
      result.report += fmt::format("case {} {}: tapegrad threw: {}\n", k, c.name, e.what());
      return result;
    }
    for (std::size_t i = 0, w = 0; i < c.inputs.size(); ++i) {
      if (wants_grad[i]) named.emplace_back(fmt::format("c{}.g{}", k, i), grads[w++].detach());
    }
    meta.push_back({{"name", c.name},
                    {"expr", c.expression},
                    {"inputs", c.inputs.size()},
                    {"grad", wants_grad},
                    {"outputs", outputs.size()}});
  }
  const auto path =
      std::filesystem::temp_directory_path() /
      fmt::format("tapegrad-oracle-{}-{}.safetensors", ::getpid(), static_cast<const void*>(this));
  io::save_safetensors(path, named, {{"cases", meta.dump()}});
  const auto [out, code] = run_command(fmt::format("/usr/bin/python3 {}/torch_oracle.py {} {} 2>&1",
                                                   TAPEGRAD_TESTS_DIR, path.string(), tolerance));
  std::filesystem::remove(path);
  result.report += out;
  if (code == 77) {
    result.skipped = true;
    return result;
  }
  const auto at = out.rfind("worst error ");
  if (at != std::string::npos) result.worst_error = std::strtod(out.c_str() + at + 12, nullptr);
  result.passed = code == 0;
  return result;
}

}  // namespace tapegrad::test
