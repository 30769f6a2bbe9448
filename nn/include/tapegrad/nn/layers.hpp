#pragma once
// Layers built from ops: Linear, the activations as modules, Sequential, and the MLP helper.
//
//   tapegrad::Generator gen(42);
//   auto model = tapegrad::nn::MLP({784, 256, 128, 10}, tapegrad::nn::Activation::relu, gen);
//   model->named_parameters();  // 0.weight [256, 784], 0.bias [256], 2.weight [128, 256], ...
//   Tensor logits = (*model)(images);  // [N, 784] -> [N, 10]
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tapegrad/core/random.hpp"
#include "tapegrad/nn/module.hpp"

namespace tapegrad::nn {

// y = x W^T + b, PyTorch's layout and initialisation.
//   shapes: x [N, in] -> y [N, out], and any leading dimensions as a batch, as PyTorch:
//           x [..., in] -> y [..., out] (x [in] -> y [out], x [B, T, in] -> y [B, T, out]);
//           W [out, in], b [out]
//   derivative (from the ops): dx = g W, dW = g^T x, db = sum over the batch of g
//   init: W, b ~ U(-1/sqrt(in), 1/sqrt(in)), which is what PyTorch's
//         kaiming_uniform(W, a = sqrt(5)) works out to (see init.hpp), and the same bound for b.
// An input whose last dimension is not `in` is a ShapeError naming the layer and both shapes.
class Linear : public Module {
 public:
  Linear(std::int64_t in_features, std::int64_t out_features, Generator& generator);
  Linear(std::int64_t in_features, std::int64_t out_features, bool bias, Generator& generator);

  Tensor forward(const Tensor& x) override;
  std::string name() const override;  // "Linear(4 -> 3)", "Linear(4 -> 3, no bias)"

  std::int64_t in_features() const { return in_features_; }
  std::int64_t out_features() const { return out_features_; }
  Tensor weight() const { return parameter("weight"); }
  // Undefined when the layer was made without a bias.
  Tensor bias() const { return has_bias_ ? parameter("bias") : Tensor(); }

 private:
  std::int64_t in_features_;
  std::int64_t out_features_;
  bool has_bias_;
};

// y = sigmoid(x) elementwise; no parameters.
class Sigmoid : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "Sigmoid"; }
};

// y = tanh(x) elementwise; no parameters.
class Tanh : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "Tanh"; }
};

// y = max(x, 0) elementwise; no parameters.
class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string name() const override { return "ReLU"; }
};

// y = softmax(x) along `axis` (default the last); no parameters. For training a classifier,
// feed the logits to cross_entropy_with_logits instead: it is the stable fused form.
class Softmax : public Module {
 public:
  explicit Softmax(std::int64_t axis = -1) : axis_(axis) {}
  Tensor forward(const Tensor& x) override;
  std::string name() const override;  // "Softmax(axis=-1)"

 private:
  std::int64_t axis_;
};

// Runs its modules one after another: y = m_k(...m_1(m_0(x))). The modules are named "0", "1",
// "2", ... so their parameters are "0.weight", "0.bias", ... An empty Sequential returns x.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Module>> modules);

  // Appends a module (named by its position); returns *this so calls chain.
  Sequential& add(std::shared_ptr<Module> module);

  Tensor forward(const Tensor& x) override;
  std::string name() const override;  // "Sequential(3 modules)"

  std::size_t size() const { return modules_.size(); }
  // The module at `index`; ValueError when out of range.
  std::shared_ptr<Module> at(std::size_t index) const;

 private:
  std::vector<std::shared_ptr<Module>> modules_;
};

enum class Activation { relu, tanh, sigmoid };

// A new module computing `activation`.
std::shared_ptr<Module> make_activation(Activation activation);

// A multi-layer perceptron: Linear(sizes[0] -> sizes[1]), activation, Linear(sizes[1] ->
// sizes[2]), activation, ..., Linear(sizes[k-1] -> sizes[k]) with no activation after the last
// Linear (it outputs logits or a regression value; the loss adds what it needs).
//   MLP({784, 256, 128, 10}, Activation::relu, gen) has modules 0 Linear, 1 ReLU, 2 Linear,
//   3 ReLU, 4 Linear. Fewer than two sizes, or a size below 1, is a ValueError.
std::shared_ptr<Sequential> MLP(const std::vector<std::int64_t>& sizes, Activation activation,
                                Generator& generator);

}  // namespace tapegrad::nn
