#pragma once
// gradcheck: compares the tape's gradient of f with central finite differences, in float64.
//
//   auto result = tapegrad::gradcheck([](auto& x) { return sum(sigmoid(x[0])); }, {x});
//   EXPECT_TRUE(result.passed) << result.report;
//
// For every input that requires grad, every element j is nudged by +-eps and
// numeric = (f(x + eps e_j) - f(x - eps e_j)) / (2 eps), for every output element; the analytic
// Jacobian comes from one backward per output element. An element passes when
// |analytic - numeric| <= atol + rtol * |numeric|. The worst element (largest error relative to
// that tolerance) is reported with its position and both values.
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

using Function = std::function<Tensor(const std::vector<Tensor>& inputs)>;

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-7;
  double rtol = 1e-6;
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
GradcheckResult gradcheck(const Function& f, const std::vector<Tensor>& inputs,
                          GradcheckOptions options = {});

}  // namespace tapegrad
