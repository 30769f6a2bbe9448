#pragma once
// Convolutional layers built from the ops of tapegrad/ops/conv.hpp and pool.hpp, with PyTorch's
// layouts, parameter names (weight, bias) and initialisation:
//
//   tapegrad::Generator gen(0);
//   auto cnn = std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
//       std::make_shared<Conv2d>(1, 16, 5, Conv2dOptions{.padding = 2}, gen),  // 0.weight, 0.bias
//       std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2),
//       std::make_shared<Flatten>(), std::make_shared<Linear>(16 * 14 * 14, 10, gen)});
//
// Errors from the ops are rethrown with the layer's name in front, e.g.
// "Conv2d(1, 16, kernel_size=(5, 5), padding=(2, 2)): conv2d: input has 3 channels, ...".
#include <cstdint>
#include <optional>
#include <string>

#include "tapegrad/core/random.hpp"
#include "tapegrad/nn/module.hpp"
#include "tapegrad/ops/conv.hpp"

namespace tapegrad::nn {

// y = conv2d(x, weight, bias, options), as torch.nn.Conv2d.
//   shapes: x [N, in, H, W] (or [in, H, W]) -> y [N, out, Ho, Wo]; weight [out, in/groups, kh, kw],
//   bias [out]
//   init: weight ~ kaiming_uniform(a = sqrt 5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
//         fan_in = in/groups kh kw; bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's
//         reset_parameters).
class Conv2d : public Module {
 public:
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, IntPair kernel_size,
         Generator& generator);
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, IntPair kernel_size,
         Conv2dOptions options, Generator& generator, bool bias = true);

  Tensor forward(const Tensor& x) override;
  std::string name() const override;  // "Conv2d(1, 16, kernel_size=(5, 5), padding=(2, 2))"

  Tensor weight() const { return parameter("weight"); }
  Tensor bias() const { return has_bias_ ? parameter("bias") : Tensor(); }  // undefined: no bias
  const Conv2dOptions& options() const { return options_; }

 private:
  std::int64_t in_, out_;
  IntPair kernel_;
  Conv2dOptions options_;
  bool has_bias_;
};

// y = conv1d(x, weight, bias, options), as torch.nn.Conv1d; init as Conv2d with fan_in =
// in/groups k.
//   shapes: x [N, in, L] (or [in, L]) -> y [N, out, Lo]; weight [out, in/groups, k], bias [out]
class Conv1d : public Module {
 public:
  Conv1d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size,
         Generator& generator);
  Conv1d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size,
         Conv1dOptions options, Generator& generator, bool bias = true);

  Tensor forward(const Tensor& x) override;
  std::string name() const override;  // "Conv1d(4, 8, kernel_size=(3,), stride=(2,))"

  Tensor weight() const { return parameter("weight"); }
  Tensor bias() const { return has_bias_ ? parameter("bias") : Tensor(); }

 private:
  std::int64_t in_, out_, kernel_;
  Conv1dOptions options_;
  bool has_bias_;
};

// y = max_pool2d(x, kernel_size, stride (default kernel_size), padding, dilation, ceil_mode), as
// torch.nn.MaxPool2d; no parameters.
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(IntPair kernel_size, std::optional<IntPair> stride = {}, IntPair padding = 0,
                     IntPair dilation = 1, bool ceil_mode = false);
  Tensor forward(const Tensor& x) override;
  std::string name() const override;  // "MaxPool2d(kernel_size=(2, 2), stride=(2, 2))"

 private:
  IntPair kernel_, stride_, padding_, dilation_;
  bool ceil_mode_;
};

// y = avg_pool2d(x, kernel_size, stride (default kernel_size), padding, ceil_mode,
// count_include_pad), as torch.nn.AvgPool2d; no parameters.
class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(IntPair kernel_size, std::optional<IntPair> stride = {}, IntPair padding = 0,
                     bool ceil_mode = false, bool count_include_pad = true);
  Tensor forward(const Tensor& x) override;
  std::string name() const override;  // "AvgPool2d(kernel_size=(2, 2), stride=(2, 2))"

 private:
  IntPair kernel_, stride_, padding_;
  bool ceil_mode_, count_include_pad_;
};

// Joins dimensions start_dim..end_dim (negative counts from the end) into one, as
// torch.nn.Flatten (default: everything but the batch dimension); a reshape, no parameters.
//   shapes: [N, C, H, W] -> [N, C H W]
// An axis outside the input's rank, or start after end, is an AxisError naming the layer.
class Flatten : public Module {
 public:
  explicit Flatten(std::int64_t start_dim = 1, std::int64_t end_dim = -1)
      : start_(start_dim), end_(end_dim) {}
  Tensor forward(const Tensor& x) override;
  std::string name() const override;  // "Flatten(start_dim=1, end_dim=-1)"

 private:
  std::int64_t start_, end_;
};

}  // namespace tapegrad::nn
