#pragma once
// Optimizers and learning-rate schedules, with PyTorch's update formulas (torch.optim), so a
// result can be checked against PyTorch number for number.
//
//   nn::Adam optimizer(model->parameters(), {.lr = 1e-3});
//   for (int step = 0; step < steps; ++step) {
//     tapegrad::Tape tape;                  // a fresh tape each step: memory stays flat
//     optimizer.zero_grad();
//     nn::mse((*model)(x), y).backward();   // fills each parameter's grad()
//     optimizer.step();                     // p <- p - update(grad)
//   }
//
// step() writes the parameters' raw values (mutable_values) inside a NoGradGuard, so it records
// nothing on any tape. It reads grad() and never modifies it. A parameter whose grad() is
// undefined (no backward reached it) is skipped and its state is left as it was, as in PyTorch.
// All parameters share one learning rate (PyTorch's single parameter group).
//
// step() never writes a non-finite value into a parameter. It first computes every parameter's
// new values (and the optimizer's new state) aside, checks them in one pass, and only then writes
// them; if one is NaN or infinite (a NaN or inf gradient, an update that overflows, Adam's 0/0
// with eps = 0), it throws ValueError naming the parameter (its name when the optimizer was given
// model->named_parameters(), else its index), its shape and the first bad element, and leaves
// every parameter and all optimizer state (moments, momentum buffers, step counts) unchanged.
// The new values are then swapped in, buffer for buffer, rather than copied: every handle to a
// parameter sees them, but a span taken from values() before step() still shows the old ones
// (take spans after step(), as after any op).
//
// Every option must be finite and in its range (below), or the constructor throws ValueError
// naming it. Each tensor may appear once in the parameter list (ValueError otherwise: it would be
// updated twice per step); model->parameters() lists a module used twice once.
//
// Notation: p parameter, g = p.grad(), lr learning rate, t the step count of this parameter
// (1 on the first step), wd weight decay; operations on vectors are elementwise.
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad::nn {

// The tensors an optimizer updates: model->parameters(), model->named_parameters() (then error
// messages name the parameters; recent PyTorch optimizers accept named_parameters() too), or a
// braced list of tensors {w, b}.
class OptimizerParameters {
 public:
  OptimizerParameters(std::vector<Tensor> tensors);                        // NOLINT: implicit
  OptimizerParameters(std::vector<std::pair<std::string, Tensor>> named);  // NOLINT: implicit
  OptimizerParameters(std::initializer_list<Tensor> tensors);              // NOLINT: implicit

  std::vector<Tensor> tensors;
  std::vector<std::string> names;  // one per tensor, or empty when the names are unknown
};

// What every optimizer shares: the parameters, the learning rate, zero_grad and step.
class Optimizer {
 public:
  // An empty parameter list, a parameter that is not a leaf, a tensor listed twice, or an lr that
  // is negative or not finite is a ValueError.
  Optimizer(OptimizerParameters parameters, double lr, std::string name);
  virtual ~Optimizer() = default;

  // One update of every parameter that has a gradient; all or nothing (see the top of this file).
  void step();
  // Forgets every parameter's gradient (set to none).
  void zero_grad();

  double learning_rate() const { return lr_; }
  // lr < 0 or not finite is a ValueError. Schedules call this.
  void set_learning_rate(double lr);

  const std::vector<Tensor>& parameters() const { return parameters_; }
  // The parameters' names ("0.weight"), or empty when the optimizer was given bare tensors.
  const std::vector<std::string>& parameter_names() const { return names_; }
  const std::string& name() const { return name_; }

 protected:
  // The update of parameter number `index` (its position in parameters()): from its values `p`
  // and its gradient `g`, writes the new values into `out` (all three of the parameter's size).
  // It must not change the optimizer's state: new state goes aside (members of the subclass)
  // and is installed by commit(index). step() calls update() for each parameter with a defined
  // gradient, inside a NoGradGuard, checks every `out`, and only if all are finite calls commit()
  // for each and copies `out` into the parameters.
  virtual void update(std::size_t index, std::span<const double> p, std::span<const double> g,
                      std::span<double> out) = 0;
  // Installs the state the last update(index, ...) put aside. Stateless optimizers need nothing.
  virtual void commit(std::size_t /*index*/) {}

  // Throws ValueError "<optimizer>: <what> must be <rule> (got <value>)" unless `ok`.
  void require(bool ok, std::string_view what, std::string_view rule, double value) const;
  // Throws ValueError "<optimizer>: <what> must be finite (got <value>)" unless it is.
  void require_finite(std::string_view what, double value) const;

 private:
  // "parameter 1 (shape [3])", or "'0.bias' (parameter 1, shape [3])" when names are known.
  std::string describe_parameter(std::size_t index) const;
  [[noreturn]] void throw_non_finite(std::size_t index, std::size_t flat) const;

  std::vector<Tensor> parameters_;
  std::vector<std::string> names_;
  double lr_;
  std::string name_;
  // update()'s `out` per parameter; after step() it holds the previous values' buffer, which the
  // next step() overwrites (no allocation, no copy back).
  std::vector<Values> new_values_;
};

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;      // mu
  double dampening = 0.0;     // tau
  double weight_decay = 0.0;  // wd, as an L2 term added to the gradient
  bool nesterov = false;
};

// Stochastic gradient descent, torch.optim.SGD:
//   g <- g + wd p                                  (if wd != 0)
//   b <- g on the first step, else mu b + (1 - tau) g      (if mu != 0)
//   g <- g + mu b if nesterov, else b                       (if mu != 0)
//   p <- p - lr g
// Every option must be finite; momentum < 0, dampening outside [0, 1], weight_decay < 0, or
// nesterov without momentum or with dampening, is a ValueError.
class SGD : public Optimizer {
 public:
  SGD(OptimizerParameters parameters, SGDOptions options = {});
  const SGDOptions& options() const { return options_; }

 protected:
  void update(std::size_t index, std::span<const double> p, std::span<const double> g,
              std::span<double> out) override;
  void commit(std::size_t index) override;

 private:
  SGDOptions options_;
  std::vector<std::vector<double>> momentum_buffer_;  // b per parameter; empty before step 1
  std::vector<std::vector<double>> new_buffer_;       // b after the pending step
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // wd, as an L2 term added to the gradient
};

// Adam (Kingma & Ba 2015), torch.optim.Adam:
//   g <- g + wd p                                  (if wd != 0)
//   m <- beta1 m + (1 - beta1) g                   (m, v start at 0)
//   v <- beta2 v + (1 - beta2) g^2
//   step_size = lr / (1 - beta1^t)
//   denom = sqrt(v) / sqrt(1 - beta2^t) + eps      (eps after the bias correction, as PyTorch)
//   p <- p - step_size * m / denom
// Every option must be finite; betas outside [0, 1), eps < 0 or weight_decay < 0 is a ValueError.
class Adam : public Optimizer {
 public:
  Adam(OptimizerParameters parameters, AdamOptions options = {});
  const AdamOptions& options() const { return options_; }

 protected:
  // AdamW shares the constructor's checks and the state under another name.
  Adam(OptimizerParameters parameters, AdamOptions options, std::string name);
  void update(std::size_t index, std::span<const double> p, std::span<const double> g,
              std::span<double> out) override;
  void commit(std::size_t index) override;
  // The moment update and the step above, without weight decay: out <- p - step; `p` and `out`
  // may be the same span.
  void adam_step(std::size_t index, std::span<const double> p, std::span<const double> g,
                 std::span<double> out);

 private:
  struct State {
    std::int64_t step = 0;  // t
    std::vector<double> m;  // first moment, beta1-average of g
    std::vector<double> v;  // second moment, beta2-average of g^2
  };
  AdamOptions options_;
  std::vector<State> state_;
  std::vector<State> new_state_;     // the state after the pending step
  std::vector<double> regularised_;  // g + wd p, reused
};

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;  // PyTorch's AdamW default
};

// AdamW (Loshchilov & Hutter 2019), torch.optim.AdamW: decoupled weight decay,
//   p <- p (1 - lr wd)
// then Adam's update above with the raw gradient (no L2 term).
// Every option must be finite, in the ranges of Adam's; weight_decay < 0 is a ValueError.
class AdamW : public Adam {
 public:
  AdamW(OptimizerParameters parameters, AdamWOptions options = {});
  double weight_decay() const { return weight_decay_; }

 protected:
  void update(std::size_t index, std::span<const double> p, std::span<const double> g,
              std::span<double> out) override;

 private:
  double weight_decay_;
};

// A learning-rate schedule: remembers the optimizer's learning rate when made (base_lr) and,
// on each step(), sets the optimizer's learning rate for the next epoch. Call it once per epoch,
// after optimizer.step(), as in PyTorch:
//   nn::StepLR schedule(optimizer, /*step_size=*/30, /*gamma=*/0.1);
//   for (epoch ...) { train(...); schedule.step(); }
class LRScheduler {
 public:
  explicit LRScheduler(Optimizer& optimizer);
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  // epoch <- epoch + 1; optimizer lr <- learning_rate_at(epoch).
  void step();
  std::int64_t epoch() const { return epoch_; }  // PyTorch's last_epoch; 0 when made
  double base_lr() const { return base_lr_; }
  // The learning rate this schedule gives at `epoch` (epoch 0 gives base_lr).
  virtual double learning_rate_at(std::int64_t epoch) const = 0;

 private:
  Optimizer& optimizer_;
  double base_lr_;
  std::int64_t epoch_ = 0;
};

// lr = base_lr * gamma^floor(epoch / step_size): multiply by gamma every step_size epochs.
// step_size < 1, or gamma negative or not finite, is a ValueError. A learning rate that becomes
// infinite (gamma > 1 for long enough) makes step() throw, leaving the previous one.
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma = 0.1);
  double learning_rate_at(std::int64_t epoch) const override;

 private:
  std::int64_t step_size_;
  double gamma_;
};

// lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2: half a cosine from base_lr
// down to eta_min over T_max epochs, then back up (the cosine continues, as in PyTorch).
// This is PyTorch's closed form; its recursive form gives the same values (up to rounding) as
// long as nothing else changes the learning rate. T_max < 1 is a ValueError.
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, std::int64_t T_max, double eta_min = 0.0);
  double learning_rate_at(std::int64_t epoch) const override;

 private:
  std::int64_t T_max_;
  double eta_min_;
};

}  // namespace tapegrad::nn
