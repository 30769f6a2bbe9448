// seed_gradients: the seed document's three derivations, each checked three ways.
//
//   closed form        the formula the note derives, evaluated in plain doubles
//   autodiff (tape)    record the forward pass on a Tape, then tapegrad::grad
//   finite difference  (L(p + eps) - L(p - eps)) / (2 eps), eps = 1e-6, one parameter at a time
//
// Tape and closed form are the same mathematics rounded differently, so they agree to ~1e-16;
// the program fails if they differ by more than 1e-10. Central differences carry truncation
// error ~eps^2 and rounding error ~1e-16/eps, so ~1e-10 is all they can show: printed, not gated.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <tapegrad/tapegrad.hpp>

namespace {

using tapegrad::Tensor;
namespace nn = tapegrad::nn;

constexpr double kEps = 1e-6;    // finite-difference step
constexpr double kGate = 1e-10;  // largest |autodiff - closed form| allowed

struct Row {
  std::string parameter;
  double closed_form;
  double autodiff;
  double finite_difference;
};

struct Summary {
  std::string derivation;
  double max_vs_closed_form = 0.0;
  double max_vs_finite_difference = 0.0;
};

double sigma(double z) {
  return 1.0 / (1.0 + std::exp(-z));
}

// dL/dparam[i] by central differences. `loss` reruns the forward pass on the current values of
// `param`, which is nudged one element at a time and restored. Nothing needs recording here.
std::vector<double> central_difference(const std::function<double()>& loss, Tensor param) {
  tapegrad::NoGradGuard no_grad;
  const std::span<double> values = param.mutable_values();
  std::vector<double> slopes(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double saved = values[i];
    values[i] = saved + kEps;
    const double up = loss();
    values[i] = saved - kEps;
    const double down = loss();
    values[i] = saved;
    slopes[i] = (up - down) / (2 * kEps);
  }
  return slopes;
}

Summary print_table(const std::string& derivation, const std::string& setup,
                    const std::string& closed_form, const std::vector<Row>& rows) {
  Summary summary{derivation};
  fmt::print("{}\n  {}\n  closed form: {}\n\n", derivation, setup, closed_form);
  fmt::print("  {:<14} {:>16} {:>16} {:>18} {:>16} {:>16}\n", "parameter", "closed form",
             "autodiff (tape)", "finite difference", "|tape - closed|", "|tape - finite|");
  for (const Row& row : rows) {
    const double vs_closed = std::abs(row.autodiff - row.closed_form);
    const double vs_finite = std::abs(row.autodiff - row.finite_difference);
    summary.max_vs_closed_form = std::max(summary.max_vs_closed_form, vs_closed);
    summary.max_vs_finite_difference = std::max(summary.max_vs_finite_difference, vs_finite);
    fmt::print("  {:<14} {:>+16.12f} {:>+16.12f} {:>+18.12f} {:>16.1e} {:>16.1e}\n", row.parameter,
               row.closed_form, row.autodiff, row.finite_difference, vs_closed, vs_finite);
  }
  fmt::print(
      "  largest |difference|: tape vs closed form {:.1e}, tape vs finite difference {:.1e}\n\n",
      summary.max_vs_closed_form, summary.max_vs_finite_difference);
  return summary;
}

// ---------------------------------------------------------------------------------------------
// Derivations 1 and 2: one sigmoid neuron yhat = sigma(z), z = w . x + b, 4 features. Both use
// the same neuron, so the only difference between their tables is the loss.

struct Neuron {
  Tensor x;  // [4] input
  Tensor w;  // [4] weights (parameter)
  Tensor b;  // []  bias (parameter)
  Tensor y;  // []  target, 0 or 1

  Tensor output() const { return tapegrad::sigmoid(tapegrad::sum(w * x) + b); }

  // The same z, in plain doubles, for the closed forms.
  double z() const {
    double z = b.item();
    for (std::size_t i = 0; i < 4; ++i) z += w.values()[i] * x.values()[i];
    return z;
  }
};

Neuron make_neuron(tapegrad::Generator& generator) {
  return {tapegrad::randn({4}, generator),
          tapegrad::uniform({4}, -1.0, 1.0, generator).requires_grad_(),
          tapegrad::scalar(generator.uniform() * 2.0 - 1.0).requires_grad_(),
          tapegrad::scalar(static_cast<double>(generator.below(2)))};
}

// Rows w[0..3], b: closed form from dL/dz (dL/dw_i = dL/dz x_i, dL/db = dL/dz), the tape's
// gradient of `loss`, and central differences of it.
std::vector<Row> neuron_rows(const Neuron& n, const std::function<Tensor()>& loss, double dL_dz) {
  tapegrad::Tape tape;
  const std::vector<Tensor> tape_grads = tapegrad::grad(loss(), {n.w, n.b});
  const auto loss_value = [&] { return loss().item(); };
  const std::vector<double> finite_w = central_difference(loss_value, n.w);
  const std::vector<double> finite_b = central_difference(loss_value, n.b);

  std::vector<Row> rows;
  for (std::size_t i = 0; i < 4; ++i) {
    rows.push_back(
        {fmt::format("w[{}]", i), dL_dz * n.x.values()[i], tape_grads[0].values()[i], finite_w[i]});
  }
  rows.push_back({"b", dL_dz, tape_grads[1].item(), finite_b[0]});
  return rows;
}

std::string neuron_setup(const Neuron& n) {
  const double z = n.z();
  return fmt::format("x = [{:.4f}], y = {}, z = w.x + b = {:.6f}, yhat = sigma(z) = {:.6f}",
                     fmt::join(n.x.values(), ", "), n.y.item(), z, sigma(z));
}

// Section 4: L = -[y ln yhat + (1 - y) ln(1 - yhat)]. The log's derivative cancels sigma'(z).
Summary sigmoid_cross_entropy(const Neuron& n) {
  const double yhat = sigma(n.z()), y = n.y.item();
  const auto loss = [&] { return nn::binary_cross_entropy(n.output(), n.y); };
  return print_table("1. sigmoid + binary cross-entropy", neuron_setup(n),
                     "dL/dw_i = (yhat - y) x_i,  dL/db = yhat - y", neuron_rows(n, loss, yhat - y));
}

// Section 3: L = 1/2 (yhat - y)^2. Nothing cancels sigma'(z) = sigma(z)(1 - sigma(z)), which is
// what makes a saturated neuron learn slowly (see learning_slowdown).
Summary sigmoid_half_squared_error(const Neuron& n) {
  const double yhat = sigma(n.z()), y = n.y.item();
  const double sigma_prime = yhat * (1.0 - yhat);
  const auto loss = [&] { return nn::half_squared_error(n.output(), n.y); };
  return print_table("2. sigmoid + 1/2 squared error",
                     fmt::format("{}\n  sigma'(z) = sigma(z) (1 - sigma(z)) = {:.6f}",
                                 neuron_setup(n), sigma_prime),
                     "dL/dw_i = (yhat - y) sigma'(z) x_i,  dL/db = (yhat - y) sigma'(z)",
                     neuron_rows(n, loss, (yhat - y) * sigma_prime));
}

// ---------------------------------------------------------------------------------------------
// Derivation 3 (section 5): 3 classes, 4 features. z = W x + b, p = softmax(z),
// L = -sum_j t_j ln p_j with t one-hot at class k:  dL/dz_j = p_j - t_j (p_k - 1 at k), and by
// the chain rule through z = W x + b:  dL/dW_jc = (p_j - t_j) x_c.

Summary softmax_cross_entropy(tapegrad::Generator& generator) {
  constexpr std::int64_t kClasses = 3, kFeatures = 4;
  const Tensor x = tapegrad::randn({1, kFeatures}, generator);  // one sample, as a row
  const Tensor W = tapegrad::randn({kClasses, kFeatures}, generator).requires_grad_();
  const Tensor b = tapegrad::randn({kClasses}, generator).requires_grad_();
  const auto k = static_cast<std::int64_t>(generator.below(kClasses));  // the true class
  const Tensor t = tapegrad::one_hot(tapegrad::tensor({static_cast<double>(k)}), kClasses);

  // x W^T + b is the row form of W x + b: [1, 4] x [4, 3] + [3] -> [1, 3].
  const auto logits = [&] { return tapegrad::matmul(x, W, {.transpose_b = true}) + b; };
  // The composed loss the note writes: softmax, then cross-entropy of the probabilities.
  // (nn::cross_entropy_with_logits is the fused, stable form; its gradient is the same.)
  const auto loss_of = [&](const Tensor& z) { return nn::cross_entropy(tapegrad::softmax(z), t); };

  // Closed form, in plain doubles from W, x, b.
  std::vector<double> z(kClasses), p(kClasses);
  for (std::int64_t j = 0; j < kClasses; ++j) {
    z[j] = b.at({j});
    for (std::int64_t c = 0; c < kFeatures; ++c) z[j] += W.at({j, c}) * x.at({0, c});
  }
  double normaliser = 0.0;
  for (double z_j : z) normaliser += std::exp(z_j);
  for (std::int64_t j = 0; j < kClasses; ++j) p[j] = std::exp(z[j]) / normaliser;
  const auto dL_dz = [&](std::int64_t j) { return p[j] - (j == k ? 1.0 : 0.0); };

  // Tape: tapegrad::grad differentiates with respect to any recorded tensor, so the logits z
  // (an intermediate, not a leaf) can be asked for alongside the parameter W.
  tapegrad::Tape tape;
  const Tensor z_tape = logits();
  const std::vector<Tensor> tape_grads = tapegrad::grad(loss_of(z_tape), {z_tape, W});

  // Finite differences: with respect to z, nudge a copy of the logits; with respect to W, rerun
  // the whole forward pass.
  const Tensor z_copy = z_tape.detach();
  const std::vector<double> finite_z =
      central_difference([&] { return loss_of(z_copy).item(); }, z_copy);
  const std::vector<double> finite_W =
      central_difference([&] { return loss_of(logits()).item(); }, W);

  std::vector<Row> rows;
  for (std::int64_t j = 0; j < kClasses; ++j) {
    rows.push_back({fmt::format("z[{}]{}", j, j == k ? " (true)" : ""), dL_dz(j),
                    tape_grads[0].at({0, j}), finite_z[j]});
  }
  for (std::int64_t j = 0; j < kClasses; ++j) {
    for (std::int64_t c = 0; c < kFeatures; ++c) {
      rows.push_back({fmt::format("W[{},{}]", j, c), dL_dz(j) * x.at({0, c}),
                      tape_grads[1].at({j, c}), finite_W[j * kFeatures + c]});
    }
  }
  const std::string setup = fmt::format(
      "x = [{:.4f}], true class k = {}\n  z = W x + b = [{:.4f}], p = softmax(z) = [{:.6f}]",
      fmt::join(x.values(), ", "), k, fmt::join(z, ", "), fmt::join(p, ", "));
  return print_table("3. softmax + cross-entropy", setup,
                     "dL/dz_j = p_j - t_j (p_k - 1 at the true class),  dL/dW_jc = (p_j - t_j) x_c",
                     rows);
}

}  // namespace

int main() {
  tapegrad::Generator generator(2024);  // fixed seed: the same tables on every run
  const Neuron neuron = make_neuron(generator);

  const std::vector<Summary> summaries = {
      sigmoid_cross_entropy(neuron),
      sigmoid_half_squared_error(neuron),
      softmax_cross_entropy(generator),
  };

  bool ok = true;
  for (const Summary& s : summaries) {
    fmt::print(
        "{:<36} max |autodiff - closed form| = {:.1e}, max |autodiff - finite difference| = "
        "{:.1e}\n",
        s.derivation + ":", s.max_vs_closed_form, s.max_vs_finite_difference);
    ok = ok && s.max_vs_closed_form <= kGate;
  }
  if (!ok) {
    fmt::print(stderr, "FAILED: autodiff differs from a closed form by more than {:.0e}\n", kGate);
    return 1;
  }
  fmt::print("All three derivations hold: autodiff equals the closed forms to within {:.0e}.\n",
             kGate);
  return 0;
}
