// Losses composed from ops, and the two fused ones (kernel + rule). Formulas in losses.hpp.
#include "tapegrad/nn/losses.hpp"

#include <cmath>
#include <string>

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/constants.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape_ops.hpp"
#include "tapegrad/ops/softmax.hpp"
#include "tapegrad/ops/unary.hpp"

namespace tapegrad::nn {

namespace {
using Inputs = std::span<const Tensor>;
using Grads = TensorList;

// PyTorch clamps each log at -100 so that p = 0 gives a large finite loss. Clamping p at e^-100
// before the log is the same value, and its rule sends 0 (not 0/0) back through the clamp.
const double smallest_probability = std::exp(-100.0);
Tensor clamped_log(const Tensor& p) {
  return log(clamp(p, smallest_probability, 1.0));
}

Tensor reduce(const Tensor& per_sample, Reduction reduction) {
  switch (reduction) {
    case Reduction::mean:
      return mean(per_sample);
    case Reduction::sum:
      return sum(per_sample);
    case Reduction::none:
      break;
  }
  return per_sample;
}

void require_same_shape(std::string_view op, const Tensor& pred, const Tensor& target) {
  if (pred.shape() != target.shape()) {
    // The usual cause: a [N, 1] prediction against a [N] target (or the reverse). Broadcasting
    // them would silently give an [N, N] loss, so the shapes must match exactly.
    const std::string hint =
        pred.numel() == target.numel()
            ? fmt::format("; both hold {} values, so reshape the target to {} first", pred.numel(),
                          pred.shape())
            : std::string("; the target needs one value per prediction element");
    throw ShapeError(fmt::format("{}: prediction and target shapes differ ({} vs {}){}", op,
                                 pred.shape(), target.shape(), hint));
  }
}

void require_probabilities(std::string_view op, const Tensor& prob, std::string_view fused) {
  const auto values = prob.values();
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!(values[i] >= 0.0 && values[i] <= 1.0)) {
      throw ValueError(fmt::format(
          "{}: expects probabilities in [0, 1], got {} at flat index {} (shape {}); if these are "
          "raw scores (logits), use {} instead",
          op, values[i], i, prob.shape(), fused));
    }
  }
}

// The class axis is the last. A target of the prediction's shape is a distribution (one-hot or
// soft); a target without the class axis holds class indices and becomes one-hot here.
Tensor class_distribution(std::string_view op, const Tensor& pred, const Tensor& target) {
  if (pred.rank() == 0) {
    throw ShapeError(fmt::format("{}: the prediction needs a class axis (last), got shape {}", op,
                                 pred.shape()));
  }
  const std::vector<std::int64_t>& dims = pred.shape().dims();
  if (dims.back() == 0) {
    throw ShapeError(fmt::format(
        "{}: the class axis (the last) of the prediction is empty (shape {}); a classifier "
        "needs at least one class",
        op, pred.shape()));
  }
  if (target.shape() == pred.shape()) return target;
  const Shape without_classes(std::vector<std::int64_t>(dims.begin(), dims.end() - 1));
  if (target.shape() != without_classes) {
    const std::string hint =
        target.numel() == without_classes.numel()
            ? fmt::format("; these look like class indices: reshape them to {} first",
                          without_classes)
            : std::string();
    throw ShapeError(fmt::format(
        "{}: the target must be a distribution of the prediction's shape or class indices of "
        "shape {} ({} vs {}){}",
        op, without_classes, pred.shape(), target.shape(), hint));
  }
  try {
    return reshape(one_hot(reshape(target, {-1}), dims.back()), dims);
  } catch (const ValueError& e) {
    throw ValueError(fmt::format("{}: {} (prediction shape {} vs target shape {})", op, e.what(),
                                 pred.shape(), target.shape()));
  }
}
}  // namespace

Tensor mse(const Tensor& pred, const Tensor& target) {
  require_same_shape("mse", pred, target);
  return mean(square(pred - target));
}

Tensor half_squared_error(const Tensor& pred, const Tensor& target) {
  require_same_shape("half_squared_error", pred, target);
  return 0.5 * sum(square(pred - target));
}

Tensor binary_cross_entropy(const Tensor& prob, const Tensor& target, Reduction reduction) {
  require_same_shape("binary_cross_entropy", prob, target);
  require_probabilities("binary_cross_entropy", prob, "bce_with_logits");
  const Tensor per_element =
      -(target * clamped_log(prob) + (1.0 - target) * clamped_log(1.0 - prob));
  return reduce(per_element, reduction);
}

Tensor cross_entropy(const Tensor& prob, const Tensor& target, Reduction reduction) {
  const Tensor t = class_distribution("cross_entropy", prob, target);
  require_probabilities("cross_entropy", prob, "cross_entropy_with_logits");
  return reduce(-sum(t * clamped_log(prob), -1), reduction);
}

Tensor bce_with_logits(const Tensor& logits, const Tensor& target, Reduction reduction) {
  require_same_shape("bce_with_logits", logits, target);
  // loss = max(z, 0) - z t + ln(1 + e^-|z|): never exponentiates a large positive number.
  const auto z = logits.values();
  const auto t = target.values();
  Values loss(z.size());
  for (std::size_t i = 0; i < z.size(); ++i) {
    loss[i] = std::max(z[i], 0.0) - z[i] * t[i] + std::log1p(std::exp(-std::abs(z[i])));
  }
  const Tensor per_element =
      record({"bce_with_logits", "dz = g * (sigmoid(z) - t), dt = -g * z"}, logits.shape(),
             std::move(loss), {logits, target}, [](const Tensor& g, const Tensor&, Inputs in) {
               return Grads{in[0].requires_grad() ? g * (sigmoid(in[0]) - in[1]) : Tensor(),
                            in[1].requires_grad() ? -(g * in[0]) : Tensor()};
             });
  return reduce(per_element, reduction);
}

Tensor cross_entropy_with_logits(const Tensor& logits, const Tensor& target, Reduction reduction) {
  const Tensor t = class_distribution("cross_entropy_with_logits", logits, target);
  // Each row along the last axis: loss = -sum_c t_c log_softmax(z)_c
  //   = (sum_c t_c) lse - sum_c t_c z_c,  lse = m + ln sum_c e^(z_c - m), m = max_c z_c.
  // z [rows, classes] -> loss [rows]
  // class_distribution refused an empty class axis, so classes >= 1.
  const auto classes = static_cast<std::size_t>(logits.shape().dims().back());
  const std::size_t rows = logits.numel() / classes;
  const auto z = logits.values();
  const auto tv = t.values();
  Values loss(rows);
  for (std::size_t r = 0; r < rows; ++r) {
    const double* zr = z.data() + r * classes;
    const double* tr = tv.data() + r * classes;
    // m is NaN if the row holds one. A row that is all -inf or holds +inf gives inf - inf = NaN
    // below, as PyTorch's log_softmax does.
    double m = zr[0];
    for (std::size_t c = 1; c < classes; ++c) {
      if (!std::isnan(m) && (zr[c] > m || std::isnan(zr[c]))) m = zr[c];
    }
    double sum_exp = 0.0, target_dot = 0.0, target_mass = 0.0;
    for (std::size_t c = 0; c < classes; ++c) {
      sum_exp += std::exp(zr[c] - m);
      // A class with no target mass adds nothing, even when masked: 0 * -inf would be NaN.
      if (tr[c] != 0.0) target_dot += tr[c] * zr[c];
      target_mass += tr[c];
    }
    loss[r] = target_mass * (m + std::log(sum_exp)) - target_dot;
  }
  const std::vector<std::int64_t>& dims = logits.shape().dims();
  const Tensor per_sample = record(
      {"cross_entropy_with_logits", "dz = g * (softmax(z) * sum(t) - t), dt = -g * log_softmax(z)"},
      Shape(std::vector<std::int64_t>(dims.begin(), dims.end() - 1)), std::move(loss), {logits, t},
      [](const Tensor& g, const Tensor&, Inputs in) {
        std::vector<std::int64_t> kept = in[0].shape().dims();
        kept.back() = 1;
        const Tensor g_kept = reshape(g, kept);
        // d/dz = g (softmax(z) sum_c t_c - t): p - t for a distribution.
        return Grads{in[0].requires_grad()
                         ? g_kept * (softmax(in[0], -1) * sum(in[1], -1, true) - in[1])
                         : Tensor(),
                     in[1].requires_grad() ? -(g_kept * log_softmax(in[0], -1)) : Tensor()};
      });
  return reduce(per_sample, reduction);
}

}  // namespace tapegrad::nn
