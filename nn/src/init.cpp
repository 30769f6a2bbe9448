#include "tapegrad/nn/init.hpp"

#include <cmath>
#include <string_view>

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"

namespace tapegrad::nn::init {

namespace {

struct Fans {
  double in;
  double out;
};

// [out, in, k...]: every kernel position k adds one more input (and output) connection.
Fans fans(std::string_view op, const Tensor& tensor) {
  const Shape& shape = tensor.shape();
  if (shape.rank() < 2) {
    throw ShapeError(fmt::format(
        "{}: needs a weight of at least 2 dimensions [out, in, ...] to know its fans, got shape "
        "{}; initialise a bias with tapegrad::uniform or init::zeros instead",
        op, shape));
  }
  double receptive_field = 1.0;
  for (std::size_t axis = 2; axis < shape.rank(); ++axis) {
    receptive_field *= static_cast<double>(shape[axis]);
  }
  return {static_cast<double>(shape[1]) * receptive_field,
          static_cast<double>(shape[0]) * receptive_field};
}

void fill_uniform(Tensor& tensor, double bound, Generator& generator) {
  for (double& v : tensor.mutable_values()) v = -bound + 2.0 * bound * generator.uniform();
}

void fill_normal(Tensor& tensor, double std_dev, Generator& generator) {
  for (double& v : tensor.mutable_values()) v = std_dev * generator.normal();
}

double kaiming_gain_over_sqrt_fan(std::string_view op, const Tensor& tensor,
                                  const KaimingOptions& options) {
  const Fans f = fans(op, tensor);
  const double fan = options.mode == FanMode::fan_in ? f.in : f.out;
  return calculate_gain(options.nonlinearity, options.a) / std::sqrt(fan);
}

}  // namespace

double calculate_gain(Nonlinearity nonlinearity, double negative_slope) {
  switch (nonlinearity) {
    case Nonlinearity::linear:
    case Nonlinearity::sigmoid:
      return 1.0;
    case Nonlinearity::tanh:
      return 5.0 / 3.0;
    case Nonlinearity::relu:
      return std::sqrt(2.0);
    case Nonlinearity::leaky_relu:
      return std::sqrt(2.0 / (1.0 + negative_slope * negative_slope));
  }
  throw ValueError("calculate_gain: unknown nonlinearity");
}

Tensor xavier_uniform(Tensor tensor, Generator& generator, double gain) {
  const Fans f = fans("xavier_uniform", tensor);
  fill_uniform(tensor, gain * std::sqrt(6.0 / (f.in + f.out)), generator);
  return tensor;
}

Tensor xavier_normal(Tensor tensor, Generator& generator, double gain) {
  const Fans f = fans("xavier_normal", tensor);
  fill_normal(tensor, gain * std::sqrt(2.0 / (f.in + f.out)), generator);
  return tensor;
}

Tensor kaiming_uniform(Tensor tensor, Generator& generator, KaimingOptions options) {
  // A uniform on [-bound, bound] has variance bound^2 / 3, hence the sqrt(3).
  const double std_dev = kaiming_gain_over_sqrt_fan("kaiming_uniform", tensor, options);
  fill_uniform(tensor, std::sqrt(3.0) * std_dev, generator);
  return tensor;
}

Tensor kaiming_normal(Tensor tensor, Generator& generator, KaimingOptions options) {
  fill_normal(tensor, kaiming_gain_over_sqrt_fan("kaiming_normal", tensor, options), generator);
  return tensor;
}

Tensor zeros(Tensor tensor) {
  return constant(std::move(tensor), 0.0);
}

Tensor constant(Tensor tensor, double value) {
  for (double& v : tensor.mutable_values()) v = value;
  return tensor;
}

}  // namespace tapegrad::nn::init
