#include "tapegrad/nn/conv_layers.hpp"

#include <cmath>
#include <string_view>

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"
#include "tapegrad/nn/init.hpp"
#include "tapegrad/ops/pool.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad::nn {

namespace {
// Runs an op and rethrows its error with the layer's name in front, keeping the error's type.
template <class F>
Tensor naming_layer(const std::string& layer, F f) {
  try {
    return f();
  } catch (const ShapeError& e) {
    throw ShapeError(fmt::format("{}: {}", layer, e.what()));
  } catch (const ValueError& e) {
    throw ValueError(fmt::format("{}: {}", layer, e.what()));
  } catch (const AxisError& e) {
    throw AxisError(fmt::format("{}: {}", layer, e.what()));
  }
}

std::string pair(IntPair p) {
  return fmt::format("({}, {})", p.h, p.w);
}

// PyTorch's reset_parameters for convolutions: kaiming_uniform(a = sqrt 5) on the weight (bound
// 1/sqrt(fan_in)) and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) on the bias.
void check_channels(std::string_view layer, std::int64_t in, std::int64_t out,
                    std::int64_t groups) {
  if (in < 1 || out < 1 || groups < 1 || in % groups != 0 || out % groups != 0) {
    throw ValueError(
        fmt::format("{}: in_channels ({}) and out_channels ({}) must be positive "
                    "and divisible by groups ({})",
                    layer, in, out, groups));
  }
}
}  // namespace

Conv2d::Conv2d(std::int64_t in_channels, std::int64_t out_channels, IntPair kernel_size,
               Generator& generator)
    : Conv2d(in_channels, out_channels, kernel_size, {}, generator) {}

Conv2d::Conv2d(std::int64_t in_channels, std::int64_t out_channels, IntPair kernel_size,
               Conv2dOptions options, Generator& generator, bool bias)
    : in_(in_channels),
      out_(out_channels),
      kernel_(kernel_size),
      options_(options),
      has_bias_(bias) {
  check_channels(name(), in_, out_, options_.groups);
  if (kernel_.h < 1 || kernel_.w < 1) {
    throw ValueError(fmt::format("{}: kernel_size must be positive", name()));
  }
  Tensor weight = zeros({out_, in_ / options_.groups, kernel_.h, kernel_.w});
  init::kaiming_uniform(weight, generator, {.a = std::sqrt(5.0)});
  register_parameter("weight", weight);
  if (bias) {
    const double fan_in = static_cast<double>(in_ / options_.groups * kernel_.h * kernel_.w);
    const double bound = 1.0 / std::sqrt(fan_in);
    register_parameter("bias", uniform({out_}, -bound, bound, generator));
  }
}

std::string Conv2d::name() const {
  std::string s = fmt::format("Conv2d({}, {}, kernel_size={}", in_, out_, pair(kernel_));
  const Conv2dOptions& o = options_;
  if (o.stride.h != 1 || o.stride.w != 1) s += fmt::format(", stride={}", pair(o.stride));
  if (o.padding.h != 0 || o.padding.w != 0) s += fmt::format(", padding={}", pair(o.padding));
  if (o.dilation.h != 1 || o.dilation.w != 1) s += fmt::format(", dilation={}", pair(o.dilation));
  if (o.groups != 1) s += fmt::format(", groups={}", o.groups);
  if (!has_bias_) s += ", bias=False";
  return s + ")";
}

Tensor Conv2d::forward(const Tensor& x) {
  return naming_layer(name(), [&] { return conv2d(x, weight(), bias(), options_); });
}

Conv1d::Conv1d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size,
               Generator& generator)
    : Conv1d(in_channels, out_channels, kernel_size, {}, generator) {}

Conv1d::Conv1d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size,
               Conv1dOptions options, Generator& generator, bool bias)
    : in_(in_channels),
      out_(out_channels),
      kernel_(kernel_size),
      options_(options),
      has_bias_(bias) {
  check_channels(name(), in_, out_, options_.groups);
  if (kernel_ < 1) throw ValueError(fmt::format("{}: kernel_size must be positive", name()));
  Tensor weight = zeros({out_, in_ / options_.groups, kernel_});
  init::kaiming_uniform(weight, generator, {.a = std::sqrt(5.0)});
  register_parameter("weight", weight);
  if (bias) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_ / options_.groups * kernel_));
    register_parameter("bias", uniform({out_}, -bound, bound, generator));
  }
}

std::string Conv1d::name() const {
  std::string s = fmt::format("Conv1d({}, {}, kernel_size=({},)", in_, out_, kernel_);
  const Conv1dOptions& o = options_;
  if (o.stride != 1) s += fmt::format(", stride=({},)", o.stride);
  if (o.padding != 0) s += fmt::format(", padding=({},)", o.padding);
  if (o.dilation != 1) s += fmt::format(", dilation=({},)", o.dilation);
  if (o.groups != 1) s += fmt::format(", groups={}", o.groups);
  if (!has_bias_) s += ", bias=False";
  return s + ")";
}

Tensor Conv1d::forward(const Tensor& x) {
  return naming_layer(name(), [&] { return conv1d(x, weight(), bias(), options_); });
}

MaxPool2d::MaxPool2d(IntPair kernel_size, std::optional<IntPair> stride, IntPair padding,
                     IntPair dilation, bool ceil_mode)
    : kernel_(kernel_size),
      stride_(stride.value_or(kernel_size)),
      padding_(padding),
      dilation_(dilation),
      ceil_mode_(ceil_mode) {}

std::string MaxPool2d::name() const {
  std::string s = fmt::format("MaxPool2d(kernel_size={}, stride={}", pair(kernel_), pair(stride_));
  if (padding_.h != 0 || padding_.w != 0) s += fmt::format(", padding={}", pair(padding_));
  if (dilation_.h != 1 || dilation_.w != 1) s += fmt::format(", dilation={}", pair(dilation_));
  if (ceil_mode_) s += ", ceil_mode=True";
  return s + ")";
}

Tensor MaxPool2d::forward(const Tensor& x) {
  return naming_layer(
      name(), [&] { return max_pool2d(x, kernel_, stride_, padding_, dilation_, ceil_mode_); });
}

AvgPool2d::AvgPool2d(IntPair kernel_size, std::optional<IntPair> stride, IntPair padding,
                     bool ceil_mode, bool count_include_pad)
    : kernel_(kernel_size),
      stride_(stride.value_or(kernel_size)),
      padding_(padding),
      ceil_mode_(ceil_mode),
      count_include_pad_(count_include_pad) {}

std::string AvgPool2d::name() const {
  std::string s = fmt::format("AvgPool2d(kernel_size={}, stride={}", pair(kernel_), pair(stride_));
  if (padding_.h != 0 || padding_.w != 0) s += fmt::format(", padding={}", pair(padding_));
  if (ceil_mode_) s += ", ceil_mode=True";
  if (!count_include_pad_) s += ", count_include_pad=False";
  return s + ")";
}

Tensor AvgPool2d::forward(const Tensor& x) {
  return naming_layer(name(), [&] {
    return avg_pool2d(x, kernel_, stride_, padding_, ceil_mode_, count_include_pad_);
  });
}

std::string Flatten::name() const {
  return fmt::format("Flatten(start_dim={}, end_dim={})", start_, end_);
}

Tensor Flatten::forward(const Tensor& x) {
  return naming_layer(name(), [&] {
    const std::size_t start = x.shape().normalize_axis(start_, "flatten");
    const std::size_t end = x.shape().normalize_axis(end_, "flatten");
    if (start > end) {
      throw AxisError(fmt::format("flatten: start_dim {} comes after end_dim {} (input {})", start_,
                                  end_, x.shape()));
    }
    std::vector<std::int64_t> dims;
    const auto& d = x.shape().dims();
    for (std::size_t i = 0; i < start; ++i) dims.push_back(d[i]);
    std::int64_t joined = 1;
    for (std::size_t i = start; i <= end; ++i) joined *= d[i];
    dims.push_back(joined);
    for (std::size_t i = end + 1; i < d.size(); ++i) dims.push_back(d[i]);
    return reshape(x, dims);
  });
}

}  // namespace tapegrad::nn
