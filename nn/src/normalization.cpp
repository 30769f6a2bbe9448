#include "tapegrad/nn/normalization.hpp"

#include <cmath>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape_ops.hpp"
#include "tapegrad/ops/unary.hpp"

namespace tapegrad::nn {

namespace {
// Mean over every axis but 1, kept as size 1: [N, C, ...] -> [1, C, 1, ...].
Tensor mean_per_channel(const Tensor& x) {
  Tensor m = x;
  for (std::int64_t axis = static_cast<std::int64_t>(x.rank()) - 1; axis >= 0; --axis) {
    if (axis != 1) m = mean(m, axis, true);
  }
  return m;
}

// [C] seen as [1, C, 1, ...] to broadcast against an input of `rank` dimensions.
Tensor channel_view(const Tensor& t, std::size_t rank) {
  std::vector<std::int64_t> dims(rank, 1);
  dims[1] = t.shape()[0];
  return reshape(t, dims);
}

void check_option(bool ok, std::string_view layer, std::string_view rule, double value) {
  if (!ok) throw ValueError(fmt::format("{}: {}, got {}", layer, rule, value));
}
}  // namespace

BatchNorm::BatchNorm(std::string kind, std::int64_t num_features, BatchNormOptions options,
                     std::int64_t rank_low, std::int64_t rank_high)
    : kind_(std::move(kind)),
      num_features_(num_features),
      options_(options),
      rank_low_(rank_low),
      rank_high_(rank_high) {
  if (num_features < 1) {
    throw ValueError(
        fmt::format("{}: num_features must be at least 1, got {}", kind_, num_features));
  }
  check_option(std::isfinite(options.eps) && options.eps > 0, kind_,
               "eps must be positive and finite", options.eps);
  check_option(std::isfinite(options.momentum) && options.momentum >= 0 && options.momentum <= 1,
               kind_, "momentum must be in [0, 1]", options.momentum);
  if (options.affine) {
    register_parameter("weight", ones({num_features}));
    register_parameter("bias", zeros({num_features}));
  }
  running_mean_ = register_buffer("running_mean", zeros({num_features}));
  running_var_ = register_buffer("running_var", ones({num_features}));
  num_batches_tracked_ = register_buffer("num_batches_tracked", scalar(0.0));
}

std::string BatchNorm::name() const {
  return fmt::format("{}({})", kind_, num_features_);
}

Tensor BatchNorm::forward(const Tensor& x) {
  const auto rank = static_cast<std::int64_t>(x.rank());
  if (rank < rank_low_ || rank > rank_high_ || x.shape()[1] != num_features_) {
    const std::string expected =
        rank_low_ == 4 ? fmt::format("[N, {}, H, W]", num_features_)
                       : fmt::format("[N, {}] or [N, {}, L]", num_features_, num_features_);
    throw ShapeError(fmt::format("{}: input must be {} ({} vs [{}])", name(), expected, x.shape(),
                                 num_features_));
  }
  const std::size_t per_channel = x.numel() / static_cast<std::size_t>(num_features_);
  Tensor mean_c, var_c;  // [1, C, 1, ...]
  if (is_training()) {
    if (per_channel <= 1) {
      throw ValueError(fmt::format(
          "{}: training needs more than one value per channel, got input {}; use a batch of at "
          "least 2, or eval() for single samples",
          name(), x.shape()));
    }
    mean_c = mean_per_channel(x);
    var_c = mean_per_channel(square(x - mean_c));
    // The running statistics are state, not part of the graph: update them from the values.
    const double m = options_.momentum;
    const double unbias = static_cast<double>(per_channel) / static_cast<double>(per_channel - 1);
    const auto batch_mean = mean_c.values();
    const auto batch_var = var_c.values();
    auto rm = running_mean_.mutable_values();
    auto rv = running_var_.mutable_values();
    for (std::size_t c = 0; c < rm.size(); ++c) {
      rm[c] = (1.0 - m) * rm[c] + m * batch_mean[c];
      rv[c] = (1.0 - m) * rv[c] + m * batch_var[c] * unbias;
    }
    num_batches_tracked_.mutable_values()[0] += 1.0;
  } else {
    mean_c = channel_view(running_mean_.detach(), x.rank());
    var_c = channel_view(running_var_.detach(), x.rank());
  }
  Tensor y = (x - mean_c) / sqrt(var_c + options_.eps);
  if (options_.affine) {
    y = y * channel_view(parameter("weight"), x.rank()) + channel_view(parameter("bias"), x.rank());
  }
  return y;
}

LayerNorm::LayerNorm(std::vector<std::int64_t> normalized_shape, double eps,
                     bool elementwise_affine)
    : normalized_shape_(std::move(normalized_shape)), eps_(eps), affine_(elementwise_affine) {
  if (normalized_shape_.empty()) {
    throw ValueError("LayerNorm: normalized_shape must name at least one dimension");
  }
  for (std::int64_t d : normalized_shape_) {
    if (d < 1) throw ValueError(fmt::format("{}: every dimension must be at least 1", name()));
  }
  check_option(std::isfinite(eps) && eps > 0, name(), "eps must be positive and finite", eps);
  if (affine_) {
    register_parameter("weight", ones(Shape(normalized_shape_)));
    register_parameter("bias", zeros(Shape(normalized_shape_)));
  }
}

std::string LayerNorm::name() const {
  return fmt::format("LayerNorm([{}])", fmt::join(normalized_shape_, ", "));
}

Tensor LayerNorm::forward(const Tensor& x) {
  const std::size_t k = normalized_shape_.size();
  bool matches = x.rank() >= k;
  for (std::size_t i = 0; matches && i < k; ++i) {
    matches = x.shape()[x.rank() - k + i] == normalized_shape_[i];
  }
  if (!matches) {
    throw ShapeError(fmt::format("{}: the input's last {} dimension(s) must be [{}] ({} vs [{}])",
                                 name(), k, fmt::join(normalized_shape_, ", "), x.shape(),
                                 fmt::join(normalized_shape_, ", ")));
  }
  const auto last_axes_mean = [k](Tensor t) {
    for (std::size_t i = 0; i < k; ++i) t = mean(t, -1 - static_cast<std::int64_t>(i), true);
    return t;
  };
  const Tensor m = last_axes_mean(x);
  const Tensor centred = x - m;
  Tensor y = centred / sqrt(last_axes_mean(square(centred)) + eps_);
  if (affine_) y = y * parameter("weight") + parameter("bias");
  return y;
}

}  // namespace tapegrad::nn
