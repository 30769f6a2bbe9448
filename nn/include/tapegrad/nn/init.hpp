#pragma once
// Initialisers, as torch.nn.init: each overwrites a leaf tensor's values in place (through
// mutable_values, so nothing is recorded) with draws from an explicit Generator, and returns the
// same tensor so calls chain:
//
//   tapegrad::Generator gen(0);
//   nn::init::xavier_uniform(layer->weight(), gen);
//   auto w = nn::init::kaiming_normal(tapegrad::zeros({256, 784}), gen).requires_grad_();
//
// They live in their own namespace, nn::init, so that nn::init::zeros(tensor) never hides the
// factory tapegrad::zeros(shape).
//
// Fans, for a weight of shape [out, in, k...] (k the kernel dimensions of a convolution, if any):
//   fan_in = in * prod(k),  fan_out = out * prod(k).
// A tensor of fewer than two dimensions has no fans: the fan-based initialisers throw ShapeError.
// A bias is usually drawn with plain tapegrad::uniform bounds, as Linear does.
#include <cstdint>

#include "tapegrad/core/random.hpp"
#include "tapegrad/core/tensor.hpp"

namespace tapegrad::nn::init {

enum class Nonlinearity { linear, sigmoid, tanh, relu, leaky_relu };

// The factor that keeps the variance of activations steady through a layer followed by
// `nonlinearity` (torch.nn.init.calculate_gain):
//   linear, sigmoid: 1    tanh: 5/3    relu: sqrt(2)    leaky_relu: sqrt(2 / (1 + slope^2))
double calculate_gain(Nonlinearity nonlinearity, double negative_slope = 0.01);

// Which fan keeps its variance: fan_in preserves the forward pass, fan_out the backward pass.
enum class FanMode { fan_in, fan_out };

struct KaimingOptions {
  double a = 0.0;  // negative slope of the leaky_relu that follows (0: a plain relu)
  FanMode mode = FanMode::fan_in;
  Nonlinearity nonlinearity = Nonlinearity::leaky_relu;  // with a = 0, gain = sqrt(2) (relu)
};

// Glorot & Bengio (2010):  U(-bound, bound),  bound = gain * sqrt(6 / (fan_in + fan_out)),
// so the variance is gain^2 * 2 / (fan_in + fan_out).
Tensor xavier_uniform(Tensor tensor, Generator& generator, double gain = 1.0);
// N(0, std^2),  std = gain * sqrt(2 / (fan_in + fan_out)).
Tensor xavier_normal(Tensor tensor, Generator& generator, double gain = 1.0);

// He et al. (2015), with gain = calculate_gain(nonlinearity, a) and fan by mode:
//   U(-bound, bound),  bound = gain * sqrt(3 / fan),  so the variance is gain^2 / fan.
//   PyTorch's Linear uses a = sqrt(5): gain^2 = 2 / 6, bound = 1 / sqrt(fan_in).
Tensor kaiming_uniform(Tensor tensor, Generator& generator, KaimingOptions options = {});
//   N(0, std^2),  std = gain / sqrt(fan).
Tensor kaiming_normal(Tensor tensor, Generator& generator, KaimingOptions options = {});

// Every value 0, or every value `value`. No generator: nothing is drawn.
Tensor zeros(Tensor tensor);
Tensor constant(Tensor tensor, double value);

}  // namespace tapegrad::nn::init
