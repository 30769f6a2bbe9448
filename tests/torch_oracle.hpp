#pragma once
// PyTorch as the oracle: a test states a computation twice, once in tapegrad (a C++ function) and
// once in PyTorch (a Python expression over the inputs x0, x1, ...), and TorchOracle checks that
// both give the same values and the same gradients in float64.
//
//   TorchOracle oracle;
//   oracle.add("sin", "torch.sin(x0)", {normal({3, 4}, 1)},
//              [](std::span<const Tensor> x) { return Outputs{sin(x[0])}; });
//   const OracleResult r = oracle.run(1e-12);
//   if (r.skipped) GTEST_SKIP() << r.report;
//   EXPECT_TRUE(r.passed) << r.report;
//
// How: every case is evaluated here on a fresh tape, and the scalar L = sum_k sum(y_k * s_k) (s_k
// a seeded random seed per output) is differentiated with respect to each input that requires
// grad. Inputs, seeds, outputs and gradients of all cases go into ONE safetensors file (one Python
// start for the whole batch); tests/torch_oracle.py evaluates each expression with torch float64
// on the same inputs, backpropagates the same L and compares. The error of a tensor is
// max_i |ours_i - torch_i| / max(1, |torch_i|); NaN matches NaN and inf matches the same inf.
//
// Index arguments travel as doubles holding integers, as tapegrad keeps them: write `x1.long()`
// in the expression. An expression may return a tensor, a number, or a tuple/list of tensors (for
// several outputs, e.g. torch.split); integer results (argmax) are compared as float64.
// Skipped, never failed, when /usr/bin/python3 cannot import torch.
#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace tapegrad::test {

using Outputs = std::vector<Tensor>;
using OracleFn = std::function<Outputs(std::span<const Tensor> inputs)>;

struct OracleResult {
  bool skipped = false;  // PyTorch is not installed
  bool passed = false;
  std::size_t cases = 0;
  double worst_error = 0.0;  // over every value and gradient compared
  std::string report;        // one line per case that failed, or the reason for a skip
};

class TorchOracle {
 public:
  // `inputs` that require grad get their gradients compared; the others are constants.
  void add(std::string name, std::string expression, std::vector<Tensor> inputs, OracleFn f);
  std::size_t size() const { return cases_.size(); }
  // Runs every case added so far; `tolerance` bounds the error defined above.
  OracleResult run(double tolerance) const;

  // True when /usr/bin/python3 can import torch (checked once per process).
  static bool available();

 private:
  struct Case {
    std::string name;
    std::string expression;
    std::vector<Tensor> inputs;
    OracleFn f;
  };
  std::vector<Case> cases_;
};

}  // namespace tapegrad::test
