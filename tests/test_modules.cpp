// NnModules: Module naming and bookkeeping (PyTorch's names, parameters(), zero_grad,
// train/eval), Linear's gradients against the closed form, a gradcheck of a whole MLP, and the
// error a wrong input width gives.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tapegrad/core/autograd.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/gradcheck.hpp"
#include "tapegrad/core/random.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/nn/layers.hpp"
#include "tapegrad/nn/module.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape_ops.hpp"
#include "tapegrad/ops/softmax.hpp"
#include "tapegrad/ops/unary.hpp"

namespace {

using tapegrad::Generator;
using tapegrad::Shape;
using tapegrad::Tape;
using tapegrad::Tensor;
namespace nn = tapegrad::nn;

// A module with a parameter of its own and a Sequential inside, like a user's model.
class ScaledNet : public nn::Module {
 public:
  explicit ScaledNet(Generator& gen)
      : scale_(register_parameter("scale", tapegrad::ones({1}))),
        layers_(register_module(
            "layers", std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
                          std::make_shared<nn::Linear>(2, 3, gen),
                          std::make_shared<nn::Linear>(3, 1, gen)}))) {}
  Tensor forward(const Tensor& x) override { return (*layers_)(x)*scale_; }

 private:
  Tensor scale_;
  std::shared_ptr<nn::Sequential> layers_;
};

std::vector<std::string> Names(const nn::Module& module) {
  std::vector<std::string> names;
  for (const auto& [name, parameter] : module.named_parameters()) names.push_back(name);
  return names;
}

// ---------------------------------------------------------------------------------------------
// Names, parameters, zero_grad, train/eval

TEST(NnModules, MlpParameterNamesFollowPyTorch) {
  Generator gen(1);
  auto mlp = nn::MLP({4, 8, 8, 3}, nn::Activation::relu, gen);
  // Modules 0 Linear, 1 ReLU, 2 Linear, 3 ReLU, 4 Linear: the ReLUs own no parameters.
  EXPECT_EQ(mlp->size(), 5u);
  EXPECT_EQ(Names(*mlp), (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias",
                                                   "4.weight", "4.bias"}));
  const auto named = mlp->named_parameters();
  EXPECT_EQ(named[0].second.shape(), (Shape{8, 4}));  // [out, in], as PyTorch
  EXPECT_EQ(named[1].second.shape(), (Shape{8}));
  EXPECT_EQ(named[4].second.shape(), (Shape{3, 8}));
  EXPECT_EQ(mlp->at(1)->name(), "ReLU");
  EXPECT_EQ(mlp->at(4)->name(), "Linear(8 -> 3)");
}

TEST(NnModules, NestedNamesJoinWithDots) {
  Generator gen(2);
  ScaledNet net(gen);
  // Own parameters first, then each sub-module's, depth first in registration order.
  EXPECT_EQ(Names(net), (std::vector<std::string>{"scale", "layers.0.weight", "layers.0.bias",
                                                  "layers.1.weight", "layers.1.bias"}));
  EXPECT_EQ(net.parameter("layers.1.weight").shape(), (Shape{1, 3}));
  EXPECT_THROW(net.parameter("layers.2.weight"), tapegrad::ValueError);
}

TEST(NnModules, ParametersAreTheNamedLeaves) {
  Generator gen(3);
  ScaledNet net(gen);
  const auto named = net.named_parameters();
  const auto plain = net.parameters();
  ASSERT_EQ(named.size(), plain.size());
  for (std::size_t i = 0; i < plain.size(); ++i) {
    EXPECT_TRUE(plain[i].same(named[i].second)) << named[i].first;  // handles, not copies
    EXPECT_TRUE(plain[i].is_leaf()) << named[i].first;
    EXPECT_TRUE(plain[i].requires_grad()) << named[i].first;
  }
}

TEST(NnModules, ZeroGradForgetsEveryGradient) {
  Generator gen(4);
  ScaledNet net(gen);
  {
    Tape tape;
    tapegrad::sum(net(tapegrad::randn({5, 2}, gen))).backward();
  }
  for (const auto& [name, p] : net.named_parameters()) EXPECT_TRUE(p.grad().defined()) << name;
  net.zero_grad();
  for (const auto& [name, p] : net.named_parameters()) EXPECT_FALSE(p.grad().defined()) << name;
}

TEST(NnModules, TrainAndEvalReachEverySubModule) {
  Generator gen(5);
  ScaledNet net(gen);
  auto mlp = nn::MLP({2, 3, 1}, nn::Activation::tanh, gen);
  EXPECT_TRUE(net.is_training());  // new modules train, as in PyTorch
  net.eval();
  EXPECT_FALSE(net.is_training());
  for (const auto& [name, child] : net.named_children()) {
    EXPECT_FALSE(child->is_training()) << name;
    for (const auto& [inner, grandchild] : child->named_children()) {
      EXPECT_FALSE(grandchild->is_training()) << name << "." << inner;
    }
  }
  net.train();
  EXPECT_TRUE(net.parameter("scale").defined());
  for (const auto& [name, child] : net.named_children()) EXPECT_TRUE(child->is_training());
  mlp->eval();
  for (std::size_t i = 0; i < mlp->size(); ++i) EXPECT_FALSE(mlp->at(i)->is_training());
}

TEST(NnModules, RegistrationRejectsBadNames) {
  class Bad : public nn::Module {
   public:
    Tensor forward(const Tensor& x) override { return x; }
    void add(const std::string& name) { register_parameter(name, tapegrad::zeros({1})); }
  };
  Bad bad;
  bad.add("w");
  EXPECT_THROW(bad.add("w"), tapegrad::ValueError);    // twice
  EXPECT_THROW(bad.add("a.b"), tapegrad::ValueError);  // '.' separates nested names
  EXPECT_THROW(bad.add(""), tapegrad::ValueError);
}

TEST(NnModules, SetParameterSwapsAHandleOfTheSameShape) {
  Generator gen(6);
  auto layer = std::make_shared<nn::Linear>(2, 2, gen);
  const Tensor identity = tapegrad::tensor({{1.0, 0.0}, {0.0, 1.0}});
  layer->set_parameter("weight", identity);
  layer->set_parameter("bias", tapegrad::zeros({2}));
  const Tensor y = (*layer)(tapegrad::tensor({{3.0, 4.0}}));
  EXPECT_EQ(y.at({0, 0}), 3.0);
  EXPECT_EQ(y.at({0, 1}), 4.0);
  EXPECT_THROW(layer->set_parameter("weight", tapegrad::zeros({3, 2})), tapegrad::ShapeError);
  EXPECT_THROW(layer->set_parameter("gain", tapegrad::zeros({2})), tapegrad::ValueError);
}

TEST(NnModules, SequentialRunsInOrder) {
  nn::Sequential seq;
  seq.add(std::make_shared<nn::ReLU>()).add(std::make_shared<nn::Tanh>());
  const Tensor x = tapegrad::tensor({-1.0, 0.5, 2.0});
  const Tensor y = seq(x);
  EXPECT_EQ(y.values()[0], 0.0);
  EXPECT_DOUBLE_EQ(y.values()[1], std::tanh(0.5));
  EXPECT_DOUBLE_EQ(y.values()[2], std::tanh(2.0));
  EXPECT_TRUE(nn::Sequential()(x).same(x));  // nothing to run: x itself
  EXPECT_THROW(seq.at(2), tapegrad::ValueError);
}

TEST(NnModules, ActivationModulesAreTheOps) {
  Generator gen(7);
  const Tensor x = tapegrad::randn({3, 4}, gen);
  const std::pair<std::shared_ptr<nn::Module>, Tensor> cases[] = {
      {std::make_shared<nn::Sigmoid>(), tapegrad::sigmoid(x)},
      {std::make_shared<nn::Tanh>(), tapegrad::tanh(x)},
      {std::make_shared<nn::ReLU>(), tapegrad::relu(x)},
      {std::make_shared<nn::Softmax>(0), tapegrad::softmax(x, 0)},
      {nn::make_activation(nn::Activation::sigmoid), tapegrad::sigmoid(x)},
  };
  for (const auto& [module, expected] : cases) {
    const Tensor y = (*module)(x);
    ASSERT_EQ(y.shape(), expected.shape()) << module->name();
    for (std::size_t i = 0; i < y.numel(); ++i) {
      EXPECT_EQ(y.values()[i], expected.values()[i]) << module->name();
    }
    EXPECT_TRUE(module->parameters().empty());
  }
}

TEST(NnModules, MlpRejectsBadSizes) {
  Generator gen(8);
  EXPECT_THROW(nn::MLP({4}, nn::Activation::relu, gen), tapegrad::ValueError);
  EXPECT_THROW(nn::MLP({4, 0, 2}, nn::Activation::relu, gen), tapegrad::ValueError);
  EXPECT_THROW(nn::Linear(0, 3, gen), tapegrad::ValueError);
}

// ---------------------------------------------------------------------------------------------
// Linear

TEST(NnModules, LinearInitIsPyTorchUniform) {
  Generator gen(9);
  const nn::Linear layer(16, 64, gen);
  const double bound = 1.0 / std::sqrt(16.0);  // kaiming_uniform(a = sqrt(5)) = 1/sqrt(in)
  double largest = 0.0;
  for (const Tensor& p : layer.parameters()) {
    for (double v : p.values()) largest = std::max(largest, std::abs(v));
  }
  EXPECT_LE(largest, bound);
  EXPECT_GT(largest, 0.9 * bound);  // 1088 draws reach near the edge of the interval
  // Same seed, same layer, bit for bit.
  Generator again(9);
  const nn::Linear twin(16, 64, again);
  for (std::size_t i = 0; i < layer.weight().numel(); ++i) {
    ASSERT_EQ(layer.weight().values()[i], twin.weight().values()[i]);
  }
}

// L = sum(g * y) with a constant g, so dL/dy = g and, with y = x W^T + b,
//   dL/dW[o][i] = sum_n g[n][o] x[n][i]   (g^T x)
//   dL/db[o]    = sum_n g[n][o]
//   dL/dx[n][i] = sum_o g[n][o] W[o][i]   (g W)
void CheckLinearClosedForm(bool with_bias) {
  Generator gen(10);
  const std::int64_t n = 5, in = 4, out = 3;
  nn::Linear layer(in, out, with_bias, gen);
  const Tensor x = tapegrad::randn({n, in}, gen).requires_grad_();
  const Tensor g = tapegrad::randn({n, out}, gen);
  const auto W = layer.weight().values();
  const auto X = x.values();
  const auto G = g.values();

  Tape tape;
  const Tensor y = layer(x);
  ASSERT_EQ(y.shape(), (Shape{n, out}));
  for (std::int64_t r = 0; r < n; ++r) {
    for (std::int64_t o = 0; o < out; ++o) {
      double expected = with_bias ? layer.bias().values()[o] : 0.0;
      for (std::int64_t i = 0; i < in; ++i) expected += X[r * in + i] * W[o * in + i];
      EXPECT_NEAR(y.at({r, o}), expected, 1e-12) << "y[" << r << "][" << o << "]";
    }
  }
  tapegrad::sum(g * y).backward();

  const auto dW = layer.weight().grad().values();
  const auto dx = x.grad().values();
  for (std::int64_t o = 0; o < out; ++o) {
    for (std::int64_t i = 0; i < in; ++i) {
      double expected = 0.0;
      for (std::int64_t r = 0; r < n; ++r) expected += G[r * out + o] * X[r * in + i];
      EXPECT_NEAR(dW[o * in + i], expected, 1e-12) << "dW[" << o << "][" << i << "]";
    }
  }
  for (std::int64_t r = 0; r < n; ++r) {
    for (std::int64_t i = 0; i < in; ++i) {
      double expected = 0.0;
      for (std::int64_t o = 0; o < out; ++o) expected += G[r * out + o] * W[o * in + i];
      EXPECT_NEAR(dx[r * in + i], expected, 1e-12) << "dx[" << r << "][" << i << "]";
    }
  }
  if (with_bias) {
    const auto db = layer.bias().grad().values();
    for (std::int64_t o = 0; o < out; ++o) {
      double expected = 0.0;
      for (std::int64_t r = 0; r < n; ++r) expected += G[r * out + o];
      EXPECT_NEAR(db[o], expected, 1e-12) << "db[" << o << "]";
    }
  } else {
    EXPECT_FALSE(layer.bias().defined());
    EXPECT_EQ(layer.parameters().size(), 1u);
  }
}

TEST(NnModules, LinearClosedFormGradients) {
  CheckLinearClosedForm(true);
}

TEST(NnModules, LinearClosedFormGradientsWithoutBias) {
  CheckLinearClosedForm(false);
}

TEST(NnModules, LinearTakesOneSample) {
  Generator gen(11);
  nn::Linear layer(4, 3, gen);
  const Tensor x = tapegrad::randn({4}, gen);
  const Tensor one = layer(x);
  const Tensor batch = layer(tapegrad::reshape(x, {1, 4}));
  ASSERT_EQ(one.shape(), (Shape{3}));
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(one.values()[i], batch.values()[i]);
}

// gradcheck nudges its own copies of the inputs, so f puts those copies into the network before
// each forward (what PyTorch's torch.func.functional_call does). Every weight, every bias and the
// input are checked against central differences.
void CheckMlpGradients(nn::Activation activation) {
  Generator gen(12);
  auto mlp = nn::MLP({3, 4, 4, 2}, activation, gen);
  const auto named = mlp->named_parameters();
  std::vector<Tensor> inputs = {tapegrad::randn({5, 3}, gen).requires_grad_()};
  for (const auto& [name, p] : named) inputs.push_back(p);

  const auto f = [&](const std::vector<Tensor>& in) {
    for (std::size_t k = 0; k < named.size(); ++k) mlp->set_parameter(named[k].first, in[k + 1]);
    return tapegrad::sum(tapegrad::square((*mlp)(in[0])));
  };
  const tapegrad::GradcheckResult result = tapegrad::gradcheck(f, inputs);
  EXPECT_TRUE(result.passed) << result.report;
  // 15 input elements + 12 + 4 + 16 + 4 + 8 + 2 parameters, one scalar output.
  EXPECT_EQ(result.elements_checked, 15u + 46u);
  for (const auto& [name, p] : named) mlp->set_parameter(name, p);  // put the originals back
}

TEST(NnModules, MlpGradCheckTanh) {
  CheckMlpGradients(nn::Activation::tanh);
}

TEST(NnModules, MlpGradCheckSigmoid) {
  CheckMlpGradients(nn::Activation::sigmoid);
}

TEST(NnModules, MlpGradCheckRelu) {
  CheckMlpGradients(nn::Activation::relu);
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(NnModules, WrongInputWidthNamesLayerAndShapes) {
  Generator gen(13);
  nn::Linear layer(4, 3, gen);
  try {
    layer(tapegrad::zeros({2, 5}));
    ADD_FAILURE() << "no ShapeError";
  } catch (const tapegrad::ShapeError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("Linear(4 -> 3): input has 5 features, expected 4 ([2, 5] vs [3, 4])"),
              std::string::npos)
        << message;
  }
  // Inside a network the message still names the layer that refused the input.
  auto mlp = nn::MLP({4, 8, 2}, nn::Activation::relu, gen);
  try {
    (*mlp)(tapegrad::zeros({7, 3}));
    ADD_FAILURE() << "no ShapeError";
  } catch (const tapegrad::ShapeError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("Linear(4 -> 8)"), std::string::npos) << message;
    EXPECT_NE(message.find("([7, 3] vs [8, 4])"), std::string::npos) << message;
  }
  // Leading dimensions are a batch, as PyTorch's Linear: [2, 2, 4] -> [2, 2, 8].
  EXPECT_EQ(layer(tapegrad::zeros({2, 2, 4})).shape(), (tapegrad::Shape{2, 2, 3}));
  EXPECT_THROW(layer(tapegrad::zeros({2, 2, 5})), tapegrad::ShapeError);
  EXPECT_THROW(layer(tapegrad::scalar(1.0)), tapegrad::ShapeError);
}

}  // namespace
