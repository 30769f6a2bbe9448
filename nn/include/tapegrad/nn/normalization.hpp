#pragma once
// Batch and layer normalisation, built from ops (mean, sub, square, sqrt, div, mul, add, reshape),
// so its gradient, and its gradient's gradient, come from the tape like any composition's.
//
//   auto bn = std::make_shared<tapegrad::nn::BatchNorm2d>(16);
//   Tensor y = (*bn)(x);   // x [N, 16, H, W]; training: batch statistics, running ones updated
//   bn->eval();
//   Tensor z = (*bn)(x);   // evaluation: running statistics, nothing updated
//
// Training (PyTorch's convention):
//   m = mean of x over every axis but the channel axis 1          (per channel, shape [C])
//   v = mean of (x - m)^2 over the same axes                       (biased: divides by n)
//   y = (x - m) / sqrt(v + eps) * weight + bias                    (weight, bias [C] if affine)
//   running_mean <- (1 - momentum) running_mean + momentum m
//   running_var  <- (1 - momentum) running_var  + momentum v n / (n - 1)   (unbiased)
//   num_batches_tracked <- num_batches_tracked + 1
// with n the number of values per channel (N, N L or N H W); n = 1 is a ValueError in training,
// as in PyTorch (a batch of one has no variance). Evaluation: y = (x - running_mean) /
// sqrt(running_var + eps) * weight + bias, the statistics constants.
//   derivative: from the composition: dx, dweight, dbias flow through mean and v (training) or
//   only through the affine map (evaluation).
// Parameters "weight" (ones) and "bias" (zeros); buffers "running_mean" (zeros), "running_var"
// (ones) and "num_batches_tracked" (a scalar count), under PyTorch's names, so a Sequential's
// "1.running_mean" loads into torch.nn.Sequential unchanged. momentum = None (PyTorch's
// cumulative average) and track_running_stats = False are not offered.
#include <cstdint>
#include <string>
#include <vector>

#include "tapegrad/nn/module.hpp"

namespace tapegrad::nn {

struct BatchNormOptions {
  double eps = 1e-5;
  double momentum = 0.1;
  bool affine = true;  // learn weight and bias
};

// The shared machinery of BatchNorm1d and BatchNorm2d: `ranks` lists the input ranks accepted.
class BatchNorm : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string name() const override;

  std::int64_t num_features() const { return num_features_; }
  // The buffers (handles: they see every update).
  Tensor running_mean() const { return running_mean_; }
  Tensor running_var() const { return running_var_; }
  Tensor num_batches_tracked() const { return num_batches_tracked_; }

 protected:
  BatchNorm(std::string kind, std::int64_t num_features, BatchNormOptions options,
            std::int64_t rank_low, std::int64_t rank_high);

 private:
  std::string kind_;
  std::int64_t num_features_;
  BatchNormOptions options_;
  std::int64_t rank_low_, rank_high_;
  Tensor running_mean_, running_var_, num_batches_tracked_;
};

// x [N, C] or [N, C, L], statistics per channel C.
class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(std::int64_t num_features, BatchNormOptions options = {})
      : BatchNorm("BatchNorm1d", num_features, options, 2, 3) {}
};

// x [N, C, H, W], statistics per channel C.
class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(std::int64_t num_features, BatchNormOptions options = {})
      : BatchNorm("BatchNorm2d", num_features, options, 4, 4) {}
};

// Layer normalisation over the last dimensions, PyTorch's nn.LayerNorm:
//   m = mean of x over the last k = normalized_shape.size() axes,  v = mean of (x - m)^2 (biased)
//   y = (x - m) / sqrt(v + eps) * weight + bias        (weight ones, bias zeros, normalized_shape)
//   shapes: x [..., *normalized_shape] -> y [same]; a mismatched trailing shape is a ShapeError.
//   derivative: from the composition (mean, square, sqrt, div, mul, add).
// Statistics are per sample, so training and evaluation compute the same; no buffers.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(std::vector<std::int64_t> normalized_shape, double eps = 1e-5,
                     bool elementwise_affine = true);
  explicit LayerNorm(std::int64_t features, double eps = 1e-5, bool elementwise_affine = true)
      : LayerNorm(std::vector<std::int64_t>{features}, eps, elementwise_affine) {}

  Tensor forward(const Tensor& x) override;
  std::string name() const override;  // "LayerNorm([64])"

 private:
  std::vector<std::int64_t> normalized_shape_;
  double eps_;
  bool affine_;
};

}  // namespace tapegrad::nn
