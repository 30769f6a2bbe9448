#include "tapegrad/core/gradcheck.hpp"

#include <cmath>

#include <fmt/format.h>

#include "tapegrad/core/autograd.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"

namespace tapegrad {

namespace {

// f evaluated on its own tape, so an f that differentiates inside (gradgradcheck) still works.
std::vector<double> evaluate(const Function& f, const std::vector<Tensor>& inputs) {
  Tape tape;
  const Tensor out = f(inputs);
  return {out.values().begin(), out.values().end()};
}

}  // namespace

namespace detail {

std::vector<bool> depends_on(const Tensor& output, std::span<const Tensor> inputs) {
  std::vector<bool> used(inputs.size(), false);
  const auto mark = [&](const Tensor& leaf) {
    for (std::size_t i = 0; i < inputs.size(); ++i) used[i] = used[i] || leaf.same(inputs[i]);
  };
  if (!output.defined() || !output.requires_grad()) return used;
  if (output.is_leaf()) {
    mark(output);
    return used;
  }
  const TensorImpl& impl = output.impl();
  const TapeState* tape = live_tape(impl);
  if (tape == nullptr) return used;
  std::vector<bool> reached(impl.node + 1, false);
  reached[impl.node] = true;
  for (std::size_t i = impl.node + 1; i-- > 0;) {
    if (!reached[i]) continue;
    for (const Tensor& input : tape->inputs_of(i)) {
      if (!input.defined() || !input.requires_grad()) continue;
      if (input.is_leaf()) {
        mark(input);
      } else if (input.impl().node < i) {
        reached[input.impl().node] = true;
      }
    }
  }
  return used;
}

GradcheckResult unused_input_result(std::string_view check, std::size_t input, const Tensor& x,
                                    std::string_view option) {
  GradcheckResult result;
  result.passed = false;
  result.input = input;
  result.report = fmt::format(
      "{} FAILED: f's output does not depend on input {} ({}), which requires grad: nothing on "
      "the tape leads from it to the output, so its derivatives would be 0 vs 0. Usually f uses a "
      "tensor captured from outside instead of its argument (write inputs[{}] inside f); pass "
      "{}{{.allow_unused = true}} if f really does not depend on it",
      check, input, x.shape(), input, option);
  return result;
}

}  // namespace detail

GradcheckResult gradcheck(const Function& f, const std::vector<Tensor>& inputs,
                          GradcheckOptions options) {
  // Inside a caller's no-grad scope too: f must record for the analytic side.
  EnableGradGuard enable_grad;
  // Work on copies: the caller's tensors are never nudged.
  std::vector<Tensor> work;
  std::vector<std::size_t> checked;  // positions of the inputs that require grad
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    Tensor copy = inputs[i].detach();
    if (inputs[i].requires_grad()) {
      copy.requires_grad_();
      checked.push_back(i);
    }
    work.push_back(std::move(copy));
  }
  if (checked.empty()) {
    throw ValueError(
        "gradcheck: no input requires grad; mark the inputs to check with "
        ".requires_grad_()");
  }
  std::vector<Tensor> checked_inputs;
  checked_inputs.reserve(checked.size());
  for (std::size_t i : checked) checked_inputs.push_back(work[i]);

  // Analytic Jacobian, one backward per output element: analytic[c][e][o].
  std::vector<std::vector<std::vector<double>>> analytic(checked.size());
  std::size_t output_count = 0;
  {
    Tape tape;
    const Tensor out = f(work);
    if (!options.allow_unused) {
      const std::vector<bool> used = detail::depends_on(out, checked_inputs);
      for (std::size_t c = 0; c < checked.size(); ++c) {
        if (!used[c]) {
          return detail::unused_input_result("gradcheck", checked[c], inputs[checked[c]],
                                             "GradcheckOptions");
        }
      }
    }
    output_count = out.numel();
    for (std::size_t c = 0; c < checked.size(); ++c) {
      analytic[c].assign(checked_inputs[c].numel(), std::vector<double>(output_count, 0.0));
    }
    if (out.requires_grad()) {
      const Tensor outputs[] = {out};
      for (std::size_t o = 0; o < output_count; ++o) {
        Tensor seed = zeros(out.shape());
        seed.mutable_values()[o] = 1.0;
        const Tensor seeds[] = {seed};
        const std::vector<Tensor> grads =
            grad(outputs, checked_inputs, seeds, {.create_graph = false, .allow_unused = true});
        for (std::size_t c = 0; c < checked.size(); ++c) {
          const auto g = grads[c].values();
          for (std::size_t e = 0; e < g.size(); ++e) analytic[c][e][o] = g[e];
        }
      }
    }
  }

  GradcheckResult result;
  double worst_ratio = -1.0;
  for (std::size_t c = 0; c < checked.size(); ++c) {
    Tensor& x = work[checked[c]];
    for (std::size_t e = 0; e < x.numel(); ++e) {
      const double original = x.values()[e];
      x.mutable_values()[e] = original + options.eps;
      const std::vector<double> plus = evaluate(f, work);
      x.mutable_values()[e] = original - options.eps;
      const std::vector<double> minus = evaluate(f, work);
      x.mutable_values()[e] = original;
      for (std::size_t o = 0; o < output_count; ++o) {
        const double numeric = (plus[o] - minus[o]) / (2.0 * options.eps);
        const double a = analytic[c][e][o];
        const double error = std::abs(a - numeric);
        const double tolerance = options.atol + options.rtol * std::abs(numeric);
        // NaN compares false, so a NaN anywhere fails explicitly rather than slipping through.
        const double ratio = std::isfinite(error) ? error / tolerance : INFINITY;
        ++result.elements_checked;
        if (ratio > worst_ratio) {
          worst_ratio = ratio;
          result.max_abs_error = error;
          result.input = checked[c];
          result.index = x.shape().index_of(e);
          result.output_element = o;
          result.analytic = a;
          result.numeric = numeric;
        }
      }
    }
  }
  result.passed = worst_ratio <= 1.0;
  result.report = fmt::format(
      "gradcheck {}: worst entry at input {} index [{}] (output element {}): analytic {:.12g} vs "
      "numeric {:.12g}, |difference| {:.3g} (allowed {:.3g}); {} Jacobian entries checked",
      result.passed ? "passed" : "FAILED", result.input, fmt::join(result.index, ", "),
      result.output_element, result.analytic, result.numeric, result.max_abs_error,
      options.atol + options.rtol * std::abs(result.numeric), result.elements_checked);
  return result;
}

}  // namespace tapegrad
