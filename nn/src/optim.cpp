#include "tapegrad/nn/optim.hpp"

#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"

namespace tapegrad::nn {

Optimizer::Optimizer(std::vector<Tensor> parameters, double lr, std::string name)
    : parameters_(std::move(parameters)), lr_(lr), name_(std::move(name)) {
  if (parameters_.empty()) {
    throw ValueError(fmt::format(
        "{}: got an empty parameter list; pass model->parameters() of a model that has some",
        name_));
  }
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    const Tensor& p = parameters_[i];
    if (!p.defined() || !p.is_leaf()) {
      throw ValueError(fmt::format(
          "{}: parameter {} is {}; an optimizer updates leaf tensors (model parameters): pass "
          "model->parameters(), or make a new leaf with detach().requires_grad_()",
          name_, i,
          p.defined() ? fmt::format("the result of '{}' ({})", p.op(), p.shape())
                      : std::string("undefined")));
    }
  }
  set_learning_rate(lr);
}

void Optimizer::require(bool ok, std::string_view what, std::string_view rule, double value) const {
  if (!ok) throw ValueError(fmt::format("{}: {} must be {} (got {})", name_, what, rule, value));
}

void Optimizer::set_learning_rate(double lr) {
  require(lr >= 0.0, "the learning rate", ">= 0", lr);  // also false for NaN
  lr_ = lr;
}

void Optimizer::zero_grad() {
  for (Tensor& p : parameters_) p.zero_grad();
}

void Optimizer::step() {
  // The update is arithmetic on raw values; the guard makes sure that nothing is recorded even
  // if an update is someday written with ops.
  NoGradGuard no_grad;
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    Tensor& p = parameters_[i];
    const Tensor g = p.grad();
    if (!g.defined()) continue;  // no backward reached this parameter: leave it (and its state)
    update(i, p.mutable_values(), g.values());
  }
}

// ---------------------------------------------------------------------------------------------

SGD::SGD(std::vector<Tensor> parameters, SGDOptions options)
    : Optimizer(std::move(parameters), options.lr, "SGD"),
      options_(options),
      momentum_buffer_(this->parameters().size()) {
  require(options.momentum >= 0.0, "momentum", ">= 0", options.momentum);
  require(options.dampening >= 0.0, "dampening", ">= 0", options.dampening);
  require(options.weight_decay >= 0.0, "weight_decay", ">= 0", options.weight_decay);
  if (options.nesterov && (options.momentum <= 0.0 || options.dampening != 0.0)) {
    throw ValueError(fmt::format(
        "SGD: nesterov needs momentum > 0 and dampening = 0 (got momentum {}, dampening {})",
        options.momentum, options.dampening));
  }
}

void SGD::update(std::size_t index, std::span<double> p, std::span<const double> g) {
  const double lr = learning_rate();
  const double mu = options_.momentum;
  const double tau = options_.dampening;
  const double wd = options_.weight_decay;
  std::vector<double>& b = momentum_buffer_[index];
  const std::size_t n = p.size();
  // Each case is its own plain loop (no per-element branches), so the compiler vectorises it.
  // d = g + wd p (L2 term), computed into the momentum buffer or applied directly.
  if (mu == 0.0) {
    if (wd == 0.0) {
      for (std::size_t j = 0; j < n; ++j) p[j] -= lr * g[j];
    } else {
      for (std::size_t j = 0; j < n; ++j) p[j] -= lr * (g[j] + wd * p[j]);
    }
    return;
  }
  if (b.empty()) {
    // PyTorch starts the buffer at the first gradient itself (no dampening on step 1).
    b.resize(n);
    for (std::size_t j = 0; j < n; ++j) b[j] = g[j] + wd * p[j];
  } else {
    for (std::size_t j = 0; j < n; ++j) b[j] = mu * b[j] + (1.0 - tau) * (g[j] + wd * p[j]);
  }
  if (options_.nesterov) {
    for (std::size_t j = 0; j < n; ++j) p[j] -= lr * ((g[j] + wd * p[j]) + mu * b[j]);
  } else {
    for (std::size_t j = 0; j < n; ++j) p[j] -= lr * b[j];
  }
}

// ---------------------------------------------------------------------------------------------

Adam::Adam(std::vector<Tensor> parameters, AdamOptions options)
    : Adam(std::move(parameters), options, "Adam") {}

Adam::Adam(std::vector<Tensor> parameters, AdamOptions options, std::string name)
    : Optimizer(std::move(parameters), options.lr, std::move(name)),
      options_(options),
      state_(this->parameters().size()) {
  require(options.beta1 >= 0.0 && options.beta1 < 1.0, "beta1", "in [0, 1)", options.beta1);
  require(options.beta2 >= 0.0 && options.beta2 < 1.0, "beta2", "in [0, 1)", options.beta2);
  require(options.eps >= 0.0, "eps", ">= 0", options.eps);
  require(options.weight_decay >= 0.0, "weight_decay", ">= 0", options.weight_decay);
}

void Adam::update(std::size_t index, std::span<double> p, std::span<const double> g) {
  if (options_.weight_decay == 0.0) {
    adam_step(index, p, g);
    return;
  }
  // L2 regularisation: the gradient of wd/2 |p|^2 joins g (a copy: grads are never modified).
  std::vector<double> regularised(g.begin(), g.end());
  for (std::size_t j = 0; j < p.size(); ++j) regularised[j] += options_.weight_decay * p[j];
  adam_step(index, p, regularised);
}

void Adam::adam_step(std::size_t index, std::span<double> p, std::span<const double> g) {
  const double beta1 = options_.beta1;
  const double beta2 = options_.beta2;
  State& s = state_[index];
  if (s.step == 0) {
    s.m.assign(p.size(), 0.0);
    s.v.assign(p.size(), 0.0);
  }
  ++s.step;
  // m and v start at 0, so early averages are too small by exactly these factors.
  const double bias_correction1 = 1.0 - std::pow(beta1, static_cast<double>(s.step));
  const double bias_correction2 = 1.0 - std::pow(beta2, static_cast<double>(s.step));
  const double step_size = learning_rate() / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);
  for (std::size_t j = 0; j < p.size(); ++j) {
    s.m[j] = beta1 * s.m[j] + (1.0 - beta1) * g[j];
    s.v[j] = beta2 * s.v[j] + (1.0 - beta2) * g[j] * g[j];
    const double denom = std::sqrt(s.v[j]) / bias_correction2_sqrt + options_.eps;
    p[j] -= step_size * (s.m[j] / denom);  // PyTorch: addcdiv(m, denom, -step_size)
  }
}

AdamW::AdamW(std::vector<Tensor> parameters, AdamWOptions options)
    : Adam(std::move(parameters),
           {.lr = options.lr,
            .beta1 = options.beta1,
            .beta2 = options.beta2,
            .eps = options.eps,
            .weight_decay = 0.0},  // AdamW decays the weights itself, never through g
           "AdamW"),
      weight_decay_(options.weight_decay) {
  require(options.weight_decay >= 0.0, "weight_decay", ">= 0", options.weight_decay);
}

void AdamW::update(std::size_t index, std::span<double> p, std::span<const double> g) {
  // Decoupled decay: shrink p directly, so the decay is not rescaled by Adam's 1/sqrt(v).
  const double shrink = 1.0 - learning_rate() * weight_decay_;
  for (double& value : p) value *= shrink;
  adam_step(index, p, g);
}

// ---------------------------------------------------------------------------------------------

LRScheduler::LRScheduler(Optimizer& optimizer)
    : optimizer_(optimizer), base_lr_(optimizer.learning_rate()) {}

void LRScheduler::step() {
  ++epoch_;
  optimizer_.set_learning_rate(learning_rate_at(epoch_));
}

namespace {
void check_schedule(bool ok, std::string_view schedule, std::string_view what, double value) {
  if (!ok) throw ValueError(fmt::format("{}: {} (got {})", schedule, what, value));
}
}  // namespace

StepLR::StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  check_schedule(step_size >= 1, "StepLR", "step_size must be >= 1",
                 static_cast<double>(step_size));
  check_schedule(gamma >= 0.0, "StepLR", "gamma must be >= 0", gamma);
}

double StepLR::learning_rate_at(std::int64_t epoch) const {
  const std::int64_t decays = epoch / step_size_;  // whole step_size periods completed (floor)
  return base_lr() * std::pow(gamma_, static_cast<double>(decays));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, std::int64_t T_max, double eta_min)
    : LRScheduler(optimizer), T_max_(T_max), eta_min_(eta_min) {
  check_schedule(T_max >= 1, "CosineAnnealingLR", "T_max must be >= 1", static_cast<double>(T_max));
  check_schedule(eta_min >= 0.0, "CosineAnnealingLR", "eta_min must be >= 0", eta_min);
}

double CosineAnnealingLR::learning_rate_at(std::int64_t epoch) const {
  const double phase = std::numbers::pi * static_cast<double>(epoch) / static_cast<double>(T_max_);
  return eta_min_ + (base_lr() - eta_min_) * (1.0 + std::cos(phase)) / 2.0;
}

}  // namespace tapegrad::nn
