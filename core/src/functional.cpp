#include "tapegrad/core/functional.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include <fmt/format.h>

#include "tapegrad/core/autograd.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/random.hpp"
#include "tapegrad/core/tape.hpp"

namespace tapegrad {

namespace {

Shape concat_shapes(const Shape& a, const Shape& b) {
  std::vector<std::int64_t> dims = a.dims();
  dims.insert(dims.end(), b.dims().begin(), b.dims().end());
  return Shape(std::move(dims));
}

// A fresh leaf holding x's values, so f records on our tape whatever tape x came from.
Tensor fresh_input(const Tensor& x) {
  return x.detach().requires_grad_();
}

Tensor one_hot_seed(const Shape& shape, std::size_t position) {
  Tensor seed = zeros(shape);
  seed.mutable_values()[position] = 1.0;
  return seed;
}

// d(seed . output)/d input, as plain values; zeros when the output does not depend on input.
std::vector<Tensor> seeded_grad(const Tensor& output, const Tensor& input, const Tensor& seed) {
  if (!output.requires_grad()) return {zeros(input.shape())};
  const Tensor outputs[] = {output};
  const Tensor inputs[] = {input};
  const Tensor seeds[] = {seed};
  return grad(outputs, inputs, seeds, {.create_graph = false, .allow_unused = true});
}

// The gradient of a scalar f at x, recorded (create_graph) so it can be differentiated again.
Tensor recorded_gradient(const Tensor& y, const Tensor& x, std::string_view caller) {
  if (y.numel() != 1) {
    throw ValueError(fmt::format(
        "{}: f must return a scalar (one element), got shape {}; use jacobian() for a vector "
        "function",
        caller, y.shape()));
  }
  if (!y.requires_grad()) return zeros(x.shape());
  return grad(y, {x}, {.create_graph = true, .allow_unused = true})[0];
}

// How far past its tolerance a gradcheck's worst entry is (> 1 fails), to pick the worst of many.
double badness(const GradcheckResult& r, const GradgradcheckOptions& options) {
  const double allowed = options.atol + options.rtol * std::abs(r.numeric);
  return std::isfinite(r.max_abs_error) ? r.max_abs_error / allowed : INFINITY;
}

}  // namespace

Tensor jacobian(const TensorFunction& f, const Tensor& x) {
  // Inside a caller's no-grad scope too, as torch.autograd.functional (enable_grad).
  EnableGradGuard enable_grad;
  Tape tape;
  const Tensor input = fresh_input(x);
  const Tensor y = f(input);
  const std::size_t n_out = y.numel(), n_in = input.numel();
  Values values(n_out * n_in, 0.0);
  for (std::size_t o = 0; o < n_out; ++o) {
    const Tensor row = seeded_grad(y, input, one_hot_seed(y.shape(), o))[0];
    std::copy(row.values().begin(), row.values().end(),
              values.begin() + static_cast<std::ptrdiff_t>(o * n_in));
  }
  return from_values(std::move(values), concat_shapes(y.shape(), input.shape()));
}

Tensor hessian(const TensorFunction& f, const Tensor& x) {
  // Inside a caller's no-grad scope too, as torch.autograd.functional (enable_grad).
  EnableGradGuard enable_grad;
  Tape tape;
  const Tensor input = fresh_input(x);
  const Tensor g = recorded_gradient(f(input), input, "hessian");
  const std::size_t n = input.numel();
  Values values(n * n, 0.0);
  // Row i = d g_i / dx: the gradient of g seeded with e_i, swept over the recorded backward.
  for (std::size_t i = 0; i < n; ++i) {
    const Tensor row = seeded_grad(g, input, one_hot_seed(input.shape(), i))[0];
    std::copy(row.values().begin(), row.values().end(),
              values.begin() + static_cast<std::ptrdiff_t>(i * n));
  }
  return from_values(std::move(values), concat_shapes(input.shape(), input.shape()));
}

Tensor hvp(const TensorFunction& f, const Tensor& x, const Tensor& v) {
  if (v.shape() != x.shape()) {
    throw ShapeError(
        fmt::format("hvp: the vector must have x's shape ({} vs {})", v.shape(), x.shape()));
  }
  EnableGradGuard enable_grad;
  Tape tape;
  const Tensor input = fresh_input(x);
  const Tensor g = recorded_gradient(f(input), input, "hvp");
  return seeded_grad(g, input, v.detach())[0].detach();
}

GradcheckResult gradgradcheck(const Function& f, const std::vector<Tensor>& inputs,
                              GradgradcheckOptions options) {
  EnableGradGuard enable_grad;
  std::vector<std::size_t> checked;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].requires_grad()) checked.push_back(i);
  }
  if (checked.empty()) {
    throw ValueError(
        "gradgradcheck: no input requires grad; mark the inputs to check with "
        ".requires_grad_()");
  }

  // The fixed grad_outputs u: one evaluation on a scratch tape tells f's output shape.
  // The same evaluation tells which inputs f depends on.
  Tensor u;
  {
    Tape tape;
    std::vector<Tensor> copies, wrt;
    copies.reserve(inputs.size());
    for (const Tensor& t : inputs) {
      copies.push_back(t.detach());
      if (t.requires_grad()) wrt.push_back(copies.back().requires_grad_());
    }
    const Tensor y = f(copies);
    if (!options.allow_unused) {
      const std::vector<bool> used = detail::depends_on(y, wrt);
      for (std::size_t c = 0; c < checked.size(); ++c) {
        if (!used[c]) {
          return detail::unused_input_result("gradgradcheck", checked[c], inputs[checked[c]],
                                             "GradgradcheckOptions");
        }
      }
    }
    Generator generator(options.seed);
    u = randn(y.shape(), generator);
  }

  GradcheckResult worst;
  std::size_t total_checked = 0;
  double worst_badness = -1.0;
  std::size_t worst_k = 0;
  for (std::size_t k : checked) {
    // h_k(x) = d(u . f(x)) / d x[k], recorded so gradcheck can sweep through the backward.
    const Function h = [&f, &u, &checked, k](const std::vector<Tensor>& x) {
      const Tensor y = f(x);
      std::vector<Tensor> wrt;
      wrt.reserve(checked.size());
      for (std::size_t i : checked) wrt.push_back(x[i]);
      if (!y.requires_grad()) return zeros(x[k].shape());
      const Tensor outputs[] = {y};
      const Tensor seeds[] = {u};
      const std::vector<Tensor> grads =
          grad(outputs, wrt, seeds, {.create_graph = true, .allow_unused = true});
      for (std::size_t c = 0; c < checked.size(); ++c) {
        if (checked[c] == k) return grads[c];
      }
      return Tensor();  // unreachable: k is one of `checked`
    };
    // h_k may rightly not depend on some input (f linear in it): f's own use was checked above.
    GradcheckResult r = gradcheck(
        h, inputs,
        {.eps = options.eps, .atol = options.atol, .rtol = options.rtol, .allow_unused = true});
    total_checked += r.elements_checked;
    const double b = badness(r, options);
    if (b > worst_badness) {
      worst_badness = b;
      worst = std::move(r);
      worst_k = k;
    }
  }
  worst.passed = worst_badness <= 1.0;
  worst.elements_checked = total_checked;
  worst.report = fmt::format(
      "gradgradcheck {}: worst entry is d(grad of input {})[element {}] / d(input {})[{}]: "
      "analytic {:.12g} vs numeric {:.12g}, |difference| {:.3g} (allowed {:.3g}); {} second "
      "derivatives checked (grad_outputs drawn with seed {})",
      worst.passed ? "passed" : "FAILED", worst_k, worst.output_element, worst.input,
      fmt::join(worst.index, ", "), worst.analytic, worst.numeric, worst.max_abs_error,
      options.atol + options.rtol * std::abs(worst.numeric), total_checked, options.seed);
  return worst;
}

}  // namespace tapegrad
