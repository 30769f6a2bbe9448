#include "tapegrad/nn/optim.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"
#include "tapegrad/core/parallel.hpp"
#include "tapegrad/core/tape.hpp"

namespace tapegrad::nn {

OptimizerParameters::OptimizerParameters(std::vector<Tensor> tensors)
    : tensors(std::move(tensors)) {}

OptimizerParameters::OptimizerParameters(std::vector<std::pair<std::string, Tensor>> named) {
  tensors.reserve(named.size());
  names.reserve(named.size());
  for (auto& [name, tensor] : named) {
    names.push_back(std::move(name));
    tensors.push_back(std::move(tensor));
  }
}

OptimizerParameters::OptimizerParameters(std::initializer_list<Tensor> tensors)
    : tensors(tensors) {}

namespace {

// The first element of `values` that is NaN or infinite, or values.size(). The common case (all
// finite) is one pass that the compiler vectorises: x * 0 is 0 for a finite x and NaN for an
// infinite or NaN one (IEEE; not under -ffast-math), and sums of zeros stay 0, so the sum is NaN
// exactly when some element is not finite. Four independent sums keep the adds pipelined.
std::size_t first_non_finite(std::span<const double> values) {
  const std::size_t n = values.size();
  const double* x = values.data();
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
  std::size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    s0 += x[j] * 0.0;
    s1 += x[j + 1] * 0.0;
    s2 += x[j + 2] * 0.0;
    s3 += x[j + 3] * 0.0;
  }
  for (; j < n; ++j) s0 += x[j] * 0.0;
  if (!std::isnan((s0 + s1) + (s2 + s3))) return n;
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return i;
  }
  return n;
}

}  // namespace

Optimizer::Optimizer(OptimizerParameters parameters, double lr, std::string name)
    : parameters_(std::move(parameters.tensors)),
      names_(std::move(parameters.names)),
      lr_(lr),
      name_(std::move(name)),
      new_values_(parameters_.size()) {
  if (parameters_.empty()) {
    throw ValueError(fmt::format(
        "{}: got an empty parameter list; pass model->parameters() of a model that has some",
        name_));
  }
  if (!names_.empty() && names_.size() != parameters_.size()) {
    throw ValueError(fmt::format("{}: {} parameter names for {} parameters", name_, names_.size(),
                                 parameters_.size()));
  }
  std::unordered_map<const detail::TensorImpl*, std::size_t> seen;
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
    const auto [it, inserted] = seen.emplace(p.impl_ptr(), i);
    if (!inserted) {
      // PyTorch only warns here; updating one tensor twice per step is never what was meant.
      throw ValueError(fmt::format(
          "{}: {} is the same tensor as {}; each tensor may appear once, or it would be updated "
          "twice per step (model->parameters() lists a module used twice once)",
          name_, describe_parameter(i), describe_parameter(it->second)));
    }
  }
  set_learning_rate(lr);
}

void Optimizer::require(bool ok, std::string_view what, std::string_view rule, double value) const {
  if (!ok) throw ValueError(fmt::format("{}: {} must be {} (got {})", name_, what, rule, value));
}

void Optimizer::require_finite(std::string_view what, double value) const {
  require(std::isfinite(value), what, "finite", value);
}

void Optimizer::set_learning_rate(double lr) {
  require_finite("the learning rate", lr);
  require(lr >= 0.0, "the learning rate", ">= 0", lr);
  lr_ = lr;
}

void Optimizer::zero_grad() {
  for (Tensor& p : parameters_) p.zero_grad();
}

std::string Optimizer::describe_parameter(std::size_t index) const {
  const Shape& shape = parameters_[index].shape();
  return names_.empty() ? fmt::format("parameter {} (shape {})", index, shape)
                        : fmt::format("'{}' (parameter {}, shape {})", names_[index], index, shape);
}

void Optimizer::throw_non_finite(std::size_t index, std::size_t flat) const {
  const Tensor& p = parameters_[index];
  throw ValueError(fmt::format(
      "{}: step() would write {} into {} at element [{}] (flat index {}); its value there is {} "
      "and its gradient {}. Every parameter and the optimizer's state are unchanged. A "
      "non-finite gradient comes from the loss: run the forward and backward under "
      "tapegrad::AnomalyGuard to find the op that made it; with a finite gradient, the learning "
      "rate (or another option) is too large for it",
      name_, new_values_[index][flat], describe_parameter(index),
      fmt::join(p.shape().index_of(flat), ", "), flat, p.values()[flat], p.grad().values()[flat]));
}

void Optimizer::step() {
  // The update is arithmetic on raw values; the guard makes sure that nothing is recorded even
  // if an update is someday written with ops.
  NoGradGuard no_grad;
  // First every new value, put aside and checked: a refused step must change nothing, so no
  // parameter or state is written until all of them are known to be finite.
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    const Tensor& p = parameters_[i];
    const Tensor g = p.grad();
    if (!g.defined()) continue;  // no backward reached this parameter: leave it (and its state)
    Values& out = new_values_[i];
    out.resize(p.numel());  // unset elements: update() writes every one
    update(i, p.values(), g.values(), out);
    const std::size_t bad = first_non_finite(out);
    if (bad != out.size()) throw_non_finite(i, bad);
  }
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    Tensor& p = parameters_[i];
    if (!p.grad().defined()) continue;
    commit(i);
    detail::swap_values(p, new_values_[i]);  // a leaf: the constructor checked
  }
}

// ---------------------------------------------------------------------------------------------

SGD::SGD(OptimizerParameters parameters, SGDOptions options)
    : Optimizer(std::move(parameters), options.lr, "SGD"),
      options_(options),
      momentum_buffer_(this->parameters().size()),
      new_buffer_(this->parameters().size()) {
  require_finite("momentum", options.momentum);
  require(options.momentum >= 0.0, "momentum", ">= 0", options.momentum);
  require_finite("dampening", options.dampening);
  require(options.dampening >= 0.0 && options.dampening <= 1.0, "dampening", "in [0, 1]",
          options.dampening);
  require_finite("weight_decay", options.weight_decay);
  require(options.weight_decay >= 0.0, "weight_decay", ">= 0", options.weight_decay);
  if (options.nesterov && (options.momentum <= 0.0 || options.dampening != 0.0)) {
    throw ValueError(fmt::format(
        "SGD: nesterov needs momentum > 0 and dampening = 0 (got momentum {}, dampening {})",
        options.momentum, options.dampening));
  }
}

void SGD::update(std::size_t index, std::span<const double> p, std::span<const double> g,
                 std::span<double> out) {
  const double lr = learning_rate();
  const double mu = options_.momentum;
  const double tau = options_.dampening;
  const double wd = options_.weight_decay;
  const std::vector<double>& b = momentum_buffer_[index];
  const std::size_t n = p.size();
  std::vector<double>& nb = new_buffer_[index];
  if (mu != 0.0) nb.resize(n);
  const bool nesterov = options_.nesterov;
  // Each case is its own plain loop (no per-element branches), so the compiler vectorises it; a
  // large parameter's elements are shared by the threads (parallel.hpp).
  // d = g + wd p (L2 term), computed into the momentum buffer or applied directly.
  parallel_for(n, parallel_grain_cheap, [&](std::size_t begin, std::size_t end) {
    if (mu == 0.0) {
      if (wd == 0.0) {
        for (std::size_t j = begin; j < end; ++j) out[j] = p[j] - lr * g[j];
      } else {
        for (std::size_t j = begin; j < end; ++j) out[j] = p[j] - lr * (g[j] + wd * p[j]);
      }
      return;
    }
    if (b.empty()) {
      // PyTorch starts the buffer at the first gradient itself (no dampening on step 1).
      for (std::size_t j = begin; j < end; ++j) nb[j] = g[j] + wd * p[j];
    } else {
      for (std::size_t j = begin; j < end; ++j) {
        nb[j] = mu * b[j] + (1.0 - tau) * (g[j] + wd * p[j]);
      }
    }
    if (nesterov) {
      for (std::size_t j = begin; j < end; ++j)
        out[j] = p[j] - lr * ((g[j] + wd * p[j]) + mu * nb[j]);
    } else {
      for (std::size_t j = begin; j < end; ++j) out[j] = p[j] - lr * nb[j];
    }
  });
}

void SGD::commit(std::size_t index) {
  if (options_.momentum != 0.0) std::swap(momentum_buffer_[index], new_buffer_[index]);
}

// ---------------------------------------------------------------------------------------------

Adam::Adam(OptimizerParameters parameters, AdamOptions options)
    : Adam(std::move(parameters), options, "Adam") {}

Adam::Adam(OptimizerParameters parameters, AdamOptions options, std::string name)
    : Optimizer(std::move(parameters), options.lr, std::move(name)),
      options_(options),
      state_(this->parameters().size()),
      new_state_(this->parameters().size()) {
  require_finite("beta1", options.beta1);
  require(options.beta1 >= 0.0 && options.beta1 < 1.0, "beta1", "in [0, 1)", options.beta1);
  require_finite("beta2", options.beta2);
  require(options.beta2 >= 0.0 && options.beta2 < 1.0, "beta2", "in [0, 1)", options.beta2);
  require_finite("eps", options.eps);
  require(options.eps >= 0.0, "eps", ">= 0", options.eps);
  require_finite("weight_decay", options.weight_decay);
  require(options.weight_decay >= 0.0, "weight_decay", ">= 0", options.weight_decay);
}

void Adam::update(std::size_t index, std::span<const double> p, std::span<const double> g,
                  std::span<double> out) {
  if (options_.weight_decay == 0.0) {
    adam_step(index, p, g, out);
    return;
  }
  // L2 regularisation: the gradient of wd/2 |p|^2 joins g (a copy: grads are never modified).
  regularised_.assign(g.begin(), g.end());
  for (std::size_t j = 0; j < p.size(); ++j) regularised_[j] += options_.weight_decay * p[j];
  adam_step(index, p, regularised_, out);
}

void Adam::adam_step(std::size_t index, std::span<const double> p, std::span<const double> g,
                     std::span<double> out) {
  const double beta1 = options_.beta1;
  const double beta2 = options_.beta2;
  State& s = state_[index];
  State& next = new_state_[index];
  const std::size_t n = p.size();
  // m and v start at 0 (allocating them is no change of state: the step count stays 0).
  if (s.step == 0) {
    s.m.assign(n, 0.0);
    s.v.assign(n, 0.0);
  }
  next.step = s.step + 1;
  next.m.resize(n);
  next.v.resize(n);
  // m and v start at 0, so early averages are too small by exactly these factors.
  const double bias_correction1 = 1.0 - std::pow(beta1, static_cast<double>(next.step));
  const double bias_correction2 = 1.0 - std::pow(beta2, static_cast<double>(next.step));
  const double step_size = learning_rate() / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);
  const double eps = options_.eps;
  const double* m = s.m.data();
  const double* v = s.v.data();
  double* m_next = next.m.data();
  double* v_next = next.v.data();
  // Each element alone: a large parameter's update is shared by the threads (parallel.hpp).
  parallel_for(n, parallel_grain_costly, [&](std::size_t begin, std::size_t end) {
    for (std::size_t j = begin; j < end; ++j) {
      m_next[j] = beta1 * m[j] + (1.0 - beta1) * g[j];
      v_next[j] = beta2 * v[j] + (1.0 - beta2) * g[j] * g[j];
      const double denom = std::sqrt(v_next[j]) / bias_correction2_sqrt + eps;
      out[j] = p[j] - step_size * (m_next[j] / denom);  // PyTorch: addcdiv(m, denom, -step_size)
    }
  });
}

void Adam::commit(std::size_t index) {
  State& s = state_[index];
  State& next = new_state_[index];
  s.step = next.step;
  std::swap(s.m, next.m);
  std::swap(s.v, next.v);
}

AdamW::AdamW(OptimizerParameters parameters, AdamWOptions options)
    : Adam(std::move(parameters),
           {.lr = options.lr,
            .beta1 = options.beta1,
            .beta2 = options.beta2,
            .eps = options.eps,
            .weight_decay = 0.0},  // AdamW decays the weights itself, never through g
           "AdamW"),
      weight_decay_(options.weight_decay) {
  require_finite("weight_decay", options.weight_decay);
  require(options.weight_decay >= 0.0, "weight_decay", ">= 0", options.weight_decay);
}

void AdamW::update(std::size_t index, std::span<const double> p, std::span<const double> g,
                   std::span<double> out) {
  // Decoupled decay: shrink p directly, so the decay is not rescaled by Adam's 1/sqrt(v).
  const double shrink = 1.0 - learning_rate() * weight_decay_;
  for (std::size_t j = 0; j < p.size(); ++j) out[j] = p[j] * shrink;
  adam_step(index, out, g, out);
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
  check_schedule(std::isfinite(gamma), "StepLR", "gamma must be finite", gamma);
  check_schedule(gamma >= 0.0, "StepLR", "gamma must be >= 0", gamma);
}

double StepLR::learning_rate_at(std::int64_t epoch) const {
  const std::int64_t decays = epoch / step_size_;  // whole step_size periods completed (floor)
  return base_lr() * std::pow(gamma_, static_cast<double>(decays));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, std::int64_t T_max, double eta_min)
    : LRScheduler(optimizer), T_max_(T_max), eta_min_(eta_min) {
  check_schedule(T_max >= 1, "CosineAnnealingLR", "T_max must be >= 1", static_cast<double>(T_max));
  check_schedule(std::isfinite(eta_min), "CosineAnnealingLR", "eta_min must be finite", eta_min);
  check_schedule(eta_min >= 0.0, "CosineAnnealingLR", "eta_min must be >= 0", eta_min);
}

double CosineAnnealingLR::learning_rate_at(std::int64_t epoch) const {
  const double phase = std::numbers::pi * static_cast<double>(epoch) / static_cast<double>(T_max_);
  return eta_min_ + (base_lr() - eta_min_) * (1.0 + std::cos(phase)) / 2.0;
}

}  // namespace tapegrad::nn
