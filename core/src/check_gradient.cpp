#include "tapegrad/core/check_gradient.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "tapegrad/core/autograd.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"

namespace tapegrad {

namespace {

std::string element_label(const std::string& name, const std::vector<std::int64_t>& index) {
  if (index.empty()) return name;
  return fmt::format("{}[{}]", name, fmt::join(index, ", "));
}

// f on its own tape (f may differentiate inside), as one number.
double evaluate_scalar(const Function& f, const std::vector<Tensor>& inputs) {
  Tape tape;
  const Tensor y = f(inputs);
  if (y.numel() != 1) {
    throw ValueError(fmt::format(
        "check_gradient: f must return a scalar (one element), got shape {}; a gradient is the "
        "derivative of one number",
        y.shape()));
  }
  return y.item();
}

}  // namespace

CheckGradientResult check_gradient(const Function& f, const GradientFunction& closed_form,
                                   const std::vector<Tensor>& inputs,
                                   CheckGradientOptions options) {
  // Inside a caller's no-grad scope too: the autodiff column needs f recorded.
  EnableGradGuard enable_grad;
  std::vector<Tensor> work;
  std::vector<std::size_t> checked;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    work.push_back(inputs[i].detach());
    if (inputs[i].requires_grad()) checked.push_back(i);
  }
  if (checked.empty()) {
    throw ValueError(
        "check_gradient: no input requires grad; mark the inputs whose gradient you derived "
        "with .requires_grad_()");
  }
  std::vector<std::string> names(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    names[i] = i < options.names.size() ? options.names[i] : fmt::format("input {}", i);
  }

  // The hand-derived gradient, on constant copies (nothing to record).
  std::vector<Tensor> closed;
  {
    NoGradGuard no_grad;
    std::vector<Tensor> copies;
    copies.reserve(work.size());
    for (const Tensor& t : work) copies.push_back(t.detach());
    closed = closed_form(copies);
  }
  if (closed.size() != inputs.size()) {
    throw ShapeError(fmt::format(
        "check_gradient: the closed form returned {} gradients for {} inputs; return one per "
        "input (an undefined Tensor for an input that is not checked)",
        closed.size(), inputs.size()));
  }
  for (std::size_t i : checked) {
    if (!closed[i].defined() || closed[i].shape() != inputs[i].shape()) {
      throw ShapeError(fmt::format(
          "check_gradient: the closed-form gradient of {} must have its shape ({} vs {})", names[i],
          closed[i].defined() ? fmt::format("{}", closed[i].shape()) : "undefined",
          inputs[i].shape()));
    }
  }

  // The engine's gradient, from one backward on a fresh tape.
  std::vector<Tensor> autodiff;
  {
    Tape tape;
    std::vector<Tensor> copies, wrt;
    for (std::size_t i = 0; i < work.size(); ++i) {
      copies.push_back(work[i].detach());
      if (inputs[i].requires_grad()) {
        copies.back().requires_grad_();
        wrt.push_back(copies.back());
      }
    }
    const Tensor y = f(copies);
    if (y.numel() != 1) {
      throw ValueError(fmt::format(
          "check_gradient: f must return a scalar (one element), got shape {}; a gradient is the "
          "derivative of one number",
          y.shape()));
    }
    if (y.requires_grad()) {
      autodiff = grad(y, wrt, {.allow_unused = true});
    } else {
      for (const Tensor& t : wrt) autodiff.push_back(zeros(t.shape()));
    }
  }

  CheckGradientResult result;
  std::vector<std::string> lines;
  lines.push_back(fmt::format("check_gradient: {} input{} checked, eps {:g}", checked.size(),
                              checked.size() == 1 ? "" : "s", options.eps));
  std::size_t label_width = 8;
  for (std::size_t i : checked) {
    if (inputs[i].numel() == 0) continue;
    // The last element has the largest indices, so the longest label.
    const std::string widest =
        element_label(names[i], inputs[i].shape().index_of(inputs[i].numel() - 1));
    label_width = std::max(label_width, widest.size());
  }
  lines.push_back(fmt::format("  {:<{}} {:>17} {:>17} {:>17}  {:>13}  {:>13}", "element",
                              label_width, "closed form", "autodiff", "finite diff",
                              "|closed-auto|", "|closed-fd|"));
  double worst_ratio = -1.0;
  std::string worst_autodiff_at, worst_fd_at;
  std::size_t rows = 0, hidden = 0;
  for (std::size_t c = 0; c < checked.size(); ++c) {
    const std::size_t i = checked[c];
    Tensor& x = work[i];
    for (std::size_t e = 0; e < x.numel(); ++e) {
      const double original = x.values()[e];
      x.mutable_values()[e] = original + options.eps;
      const double plus = evaluate_scalar(f, work);
      x.mutable_values()[e] = original - options.eps;
      const double minus = evaluate_scalar(f, work);
      x.mutable_values()[e] = original;
      const double fd = (plus - minus) / (2.0 * options.eps);
      const double cf = closed[i].values()[e];
      const double ad = autodiff[c].values()[e];
      const double d_ad = std::abs(cf - ad), d_fd = std::abs(cf - fd);
      const double scale = std::max(1.0, std::abs(cf));
      // NaN compares false everywhere, so a NaN is made infinitely bad rather than passing.
      const double r_ad =
          std::isfinite(d_ad) ? d_ad / (options.autodiff_tolerance * scale) : INFINITY;
      const double r_fd =
          std::isfinite(d_fd) ? d_fd / (options.finite_difference_tolerance * scale) : INFINITY;
      const bool ok = r_ad <= 1.0 && r_fd <= 1.0;
      const std::vector<std::int64_t> index = x.shape().index_of(e);
      const std::string label = element_label(names[i], index);
      ++result.elements_checked;
      if (!ok) ++result.elements_failed;
      if (!(d_ad <= result.max_autodiff_difference)) {
        result.max_autodiff_difference = d_ad;
        worst_autodiff_at = label;
      }
      if (!(d_fd <= result.max_finite_difference_difference)) {
        result.max_finite_difference_difference = d_fd;
        worst_fd_at = label;
      }
      if (worst_autodiff_at.empty()) worst_autodiff_at = label;
      if (worst_fd_at.empty()) worst_fd_at = label;
      const double ratio = std::max(r_ad, r_fd);
      if (ratio > worst_ratio) {
        worst_ratio = ratio;
        result.input = i;
        result.index = index;
        result.closed_form = cf;
        result.autodiff = ad;
        result.finite_difference = fd;
      }
      if (rows < options.max_rows) {
        lines.push_back(
            fmt::format("  {:<{}} {:>17.10g} {:>17.10g} {:>17.10g}  {:>13.3g}  {:>13.3g}  {}",
                        label, label_width, cf, ad, fd, d_ad, d_fd, ok ? "ok" : "WRONG"));
        ++rows;
      } else {
        ++hidden;
      }
    }
  }
  if (hidden > 0) lines.push_back(fmt::format("  ... {} more elements not shown", hidden));
  result.passed = result.elements_failed == 0;
  result.summary = fmt::format(
      "largest |closed - autodiff| {:.3g} at {}, largest |closed - fd| {:.3g} at {}: {}",
      result.max_autodiff_difference, worst_autodiff_at, result.max_finite_difference_difference,
      worst_fd_at,
      result.passed ? fmt::format("passed ({} elements)", result.elements_checked)
                    : fmt::format("FAILED ({} of {} elements wrong; worst {}: closed form {:.10g}, "
                                  "autodiff {:.10g}, finite diff {:.10g})",
                                  result.elements_failed, result.elements_checked,
                                  element_label(names[result.input], result.index),
                                  result.closed_form, result.autodiff, result.finite_difference));
  lines.push_back(result.summary);

  for (const std::string& line : lines) {
    result.table += line;
    result.table += '\n';
  }
  if (options.print) {
    for (const std::string& line : lines) {
      if (options.sink) {
        options.sink(line);
      } else {
        print_trace(line);
      }
    }
  }
  return result;
}

}  // namespace tapegrad
