#pragma once
// gradcheck: compares the tape's gradient of f with central finite differences, in float64.
//
// ```cpp
// const tapegrad::Tensor x = tapegrad::tensor({0.3, -0.7}).requires_grad_();
// auto result = tapegrad::gradcheck(
//     [](const std::vector<tapegrad::Tensor>& in) {
//       return tapegrad::sum(tapegrad::sigmoid(in[0]));
//     },
//     {x});
// if (!result.passed) fmt::print("{}\n", result.report);  // in a test: EXPECT_TRUE(result.passed)
// ```
//
// For every input that requires grad, every element j is nudged by +-eps and
// numeric = (f(x + eps e_j) - f(x - eps e_j)) / (2 eps), for every output element; the analytic
// Jacobian comes from one backward per output element. An element passes when
// |analytic - numeric| <= atol + rtol * |numeric|. The worst element (largest error relative to
// that tolerance) is reported with its position and both values.
#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

using Function = std::function<Tensor(const std::vector<Tensor>& inputs)>;

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-7;
  double rtol = 1e-6;
  // An input that requires grad but that f's output does not depend on (nothing on the tape
  // leads from it to the output) FAILS the check, naming the input: that is almost always f using
  // a captured tensor instead of its argument, which would otherwise "pass" with analytic 0 vs
  // numeric 0. Set allow_unused when f really does not depend on some input. (PyTorch's gradcheck
  // has no such check.)
  bool allow_unused = false;
};

struct GradcheckResult {
  bool passed = true;
  double max_abs_error = 0.0;       // the worst element's |analytic - numeric|
  std::size_t input = 0;            // which input holds the worst element
  std::vector<std::int64_t> index;  // its multi-index in that input
  std::size_t output_element = 0;   // which output element (flat) it was for
  double analytic = 0.0;
  double numeric = 0.0;
  std::size_t elements_checked = 0;  // Jacobian entries compared
  std::string report;                // one fmt-formatted line saying all of the above
  explicit operator bool() const { return passed; }
};

// `inputs` are not modified: gradcheck works on copies. At least one must require grad.
// Runs the same inside a NoGradGuard (it re-enables grad mode for itself, as PyTorch's).
GradcheckResult gradcheck(const Function& f, const std::vector<Tensor>& inputs,
                          GradcheckOptions options = {});

namespace detail {
// For each of `inputs`: does `output` depend on it on the tape, i.e. is it `output` itself or an
// input of a node `output` is reached from? One downward pass over the tape, no recursion.
std::vector<bool> depends_on(const Tensor& output, std::span<const Tensor> inputs);
// The failing result (and its report) for an input f does not depend on; `check` names the caller.
GradcheckResult unused_input_result(std::string_view check, std::size_t input, const Tensor& x,
                                    std::string_view option);
}  // namespace detail

}  // namespace tapegrad
