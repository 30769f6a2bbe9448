#include "tapegrad/nn/layers.hpp"

#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"
#include "tapegrad/nn/init.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/matmul.hpp"
#include "tapegrad/ops/shape_ops.hpp"
#include "tapegrad/ops/softmax.hpp"
#include "tapegrad/ops/unary.hpp"

namespace tapegrad::nn {

Linear::Linear(std::int64_t in_features, std::int64_t out_features, Generator& generator)
    : Linear(in_features, out_features, true, generator) {}

Linear::Linear(std::int64_t in_features, std::int64_t out_features, bool bias, Generator& generator)
    : in_features_(in_features), out_features_(out_features), has_bias_(bias) {
  if (in_features < 1 || out_features < 1) {
    throw ValueError(fmt::format("{}: needs at least one input and one output feature", name()));
  }
  // PyTorch's reset_parameters: kaiming_uniform with a = sqrt(5) gives bound 1/sqrt(in) for the
  // weight, and the bias gets the same bound.
  Tensor weight = zeros({out_features, in_features});
  init::kaiming_uniform(weight, generator, {.a = std::sqrt(5.0)});
  register_parameter("weight", weight);
  if (bias) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
    register_parameter("bias", uniform({out_features}, -bound, bound, generator));
  }
}

std::string Linear::name() const {
  return fmt::format("Linear({} -> {}{})", in_features_, out_features_,
                     has_bias_ ? "" : ", no bias");
}

Tensor Linear::forward(const Tensor& x) {
  const Tensor w = weight();
  if (x.rank() == 0) {
    throw ShapeError(fmt::format("{}: input must be [..., {}], got a scalar ({} vs {})", name(),
                                 in_features_, x.shape(), w.shape()));
  }
  const std::int64_t features = x.shape()[x.rank() - 1];
  if (features != in_features_) {
    // Images fed unflattened ([N, 28, 28] into Linear(784 -> ..)) are the usual cause.
    std::int64_t trailing = 1;
    for (std::size_t d = 1; d < x.rank(); ++d) trailing *= x.shape()[d];
    const bool unflattened = x.rank() >= 3 && trailing == in_features_;
    throw ShapeError(
        fmt::format("{}: input has {} features, expected {} ({} vs {}); {}", name(), features,
                    in_features_, x.shape(), w.shape(),
                    unflattened ? "flatten it first with reshape(x, {batch, -1})"
                                : "check the data's columns or the previous layer's output size"));
  }
  // Any leading dimensions are a batch: [..., in] runs as [N, in] and comes back as [..., out].
  std::vector<std::int64_t> out_dims(x.shape().dims().begin(), x.shape().dims().end());
  out_dims.back() = out_features_;
  const Tensor batch = x.rank() == 2 ? x : reshape(x, {-1, in_features_});
  Tensor y = matmul(batch, w, {.transpose_b = true});  // [N, in] [out, in]^T -> [N, out]
  if (has_bias_) y = y + bias();                       // [out] broadcasts over the N rows
  return x.rank() == 2 ? y : reshape(y, out_dims);
}

Tensor Sigmoid::forward(const Tensor& x) {
  return sigmoid(x);
}

Tensor Tanh::forward(const Tensor& x) {
  return tanh(x);
}

Tensor ReLU::forward(const Tensor& x) {
  return relu(x);
}

Tensor Softmax::forward(const Tensor& x) {
  return softmax(x, axis_);
}

std::string Softmax::name() const {
  return fmt::format("Softmax(axis={})", axis_);
}

Sequential::Sequential(std::vector<std::shared_ptr<Module>> modules) {
  for (auto& module : modules) add(std::move(module));
}

Sequential& Sequential::add(std::shared_ptr<Module> module) {
  register_module(std::to_string(modules_.size()), module);
  modules_.push_back(std::move(module));
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& module : modules_) y = (*module)(y);
  return y;
}

std::string Sequential::name() const {
  return fmt::format("Sequential({} modules)", modules_.size());
}

std::shared_ptr<Module> Sequential::at(std::size_t index) const {
  if (index >= modules_.size()) {
    throw ValueError(
        modules_.empty()
            ? fmt::format("{}: no module at index {}; it is empty, add() modules first", name(),
                          index)
            : fmt::format("{}: no module at index {}; valid indices are 0..{}", name(), index,
                          modules_.size() - 1));
  }
  return modules_[index];
}

std::shared_ptr<Module> make_activation(Activation activation) {
  switch (activation) {
    case Activation::relu:
      return std::make_shared<ReLU>();
    case Activation::tanh:
      return std::make_shared<Tanh>();
    case Activation::sigmoid:
      return std::make_shared<Sigmoid>();
  }
  throw ValueError("make_activation: unknown activation");
}

std::shared_ptr<Sequential> MLP(const std::vector<std::int64_t>& sizes, Activation activation,
                                Generator& generator) {
  if (sizes.size() < 2) {
    throw ValueError(fmt::format(
        "MLP: needs at least an input and an output size, got [{}]; e.g. MLP({{2, 4, 1}}, ...)",
        fmt::join(sizes, ", ")));
  }
  for (std::int64_t size : sizes) {
    if (size < 1) {
      throw ValueError(
          fmt::format("MLP: every size must be at least 1, got [{}]", fmt::join(sizes, ", ")));
    }
  }
  auto model = std::make_shared<Sequential>();
  for (std::size_t i = 0; i + 1 < sizes.size(); ++i) {
    model->add(std::make_shared<Linear>(sizes[i], sizes[i + 1], generator));
    // No activation after the last Linear: it outputs logits or a regression value.
    if (i + 2 < sizes.size()) model->add(make_activation(activation));
  }
  return model;
}

}  // namespace tapegrad::nn
