#pragma once
// Losses, built FROM the ops (no hand-written gradient) except the two fused ones, which are ops
// of their own with their own rules and are tested equal to their compositions.
//
// Conventions: the class axis is the last one; a batch is [N, C] (or one sample [C]); targets
// are either the same shape as the prediction (one-hot or soft) or class indices [N] (or []).
// `reduction` mean (default, as PyTorch) averages over samples, sum adds them, none keeps one
// loss per sample.
#include "tapegrad/core/tensor.hpp"

namespace tapegrad::nn {

enum class Reduction { mean, sum, none };

// mean((pred - target)^2) over ALL elements (PyTorch's mse_loss). Shapes must be equal.
//   d/dpred = 2 (pred - target) / numel
Tensor mse(const Tensor& pred, const Tensor& target);

// The seed document's form: 1/2 sum((pred - target)^2). Shapes must be equal.
//   d/dpred = pred - target
Tensor half_squared_error(const Tensor& pred, const Tensor& target);

// -[t ln p + (1 - t) ln(1 - p)] per element, then reduced (mean over all elements by default).
// p must lie in [0, 1] (a ValueError otherwise, hinting at bce_with_logits); like PyTorch, each
// log is clamped at -100 so p = 0 or 1 gives a large finite loss, not inf.
//   with p = sigmoid(z): d/dz = p - t   (the seed's section 4)
Tensor binary_cross_entropy(const Tensor& prob, const Tensor& target,
                            Reduction reduction = Reduction::mean);

// -sum_c t_c ln p_c per sample, then reduced (mean over samples by default). `target` one-hot /
// soft [N, C], or class indices [N]. p must lie in [0, 1] (ValueError otherwise, hinting at
// cross_entropy_with_logits); logs are clamped at -100 as in binary_cross_entropy.
//   with p = softmax(z): d/dz = p - t   (the seed's section 5)
Tensor cross_entropy(const Tensor& prob, const Tensor& target,
                     Reduction reduction = Reduction::mean);

// Fused, stable binary_cross_entropy(sigmoid(z), t):
//   loss = max(z, 0) - z t + ln(1 + e^-|z|)
//   d/dz = g * (sigmoid(z) - t),  d/dt = -g * z
Tensor bce_with_logits(const Tensor& logits, const Tensor& target,
                       Reduction reduction = Reduction::mean);

// Fused, stable cross_entropy(softmax(z), t), PyTorch's F.cross_entropy:
//   loss_n = -sum_c t_nc log_softmax(z_n)_c = (sum_c t_nc) logsumexp(z_n) - sum_c t_nc z_nc
//   d/dz = g * (softmax(z) sum_c t_c - t)   (= p - t when t is a distribution)
//   d/dt = -g * log_softmax(z)
// Masked logits (-inf) are allowed: a class with target 0 adds nothing (0 * -inf is taken as 0,
// for class indices, one-hot and soft targets alike) and gets gradient 0; a masked class with
// target mass gives +inf with a finite gradient. As PyTorch, a row that is all -inf, or holds +inf
// or NaN, is NaN. (PyTorch 1.13 returns NaN for one-hot/soft targets with a masked logit, while
// its gradient is the finite one; we return the finite value, the one its index form gives.)
Tensor cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                 Reduction reduction = Reduction::mean);

}  // namespace tapegrad::nn
