// Issue 14's convolutional layers (nn/conv_layers.hpp): names and initialisation as PyTorch's,
// errors naming the layer, and the issue's CNN forward + backward against PyTorch float64 from
// the same weights (TorchParity).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

#include "test_inputs.hpp"
#include "torch_oracle.hpp"

namespace {

using namespace tapegrad;      // NOLINT: the ops read best unqualified
using namespace tapegrad::nn;  // NOLINT
using tapegrad::test::Outputs;
using tapegrad::test::TorchOracle;
using Span = std::span<const Tensor>;

// The issue's network: Conv2d(1, 16, 5, p2) -> ReLU -> MaxPool2d(2) -> Conv2d(16, 32, 5, p2) ->
// ReLU -> MaxPool2d(2) -> Flatten -> Linear(1568, 128) -> ReLU -> Linear(128, 10).
std::shared_ptr<Sequential> issue_cnn(Generator& gen) {
  return std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
      std::make_shared<Conv2d>(1, 16, 5, Conv2dOptions{.padding = 2}, gen),
      std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2),
      std::make_shared<Conv2d>(16, 32, 5, Conv2dOptions{.padding = 2}, gen),
      std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2), std::make_shared<Flatten>(),
      std::make_shared<Linear>(1568, 128, gen), std::make_shared<ReLU>(),
      std::make_shared<Linear>(128, 10, gen)});
}

TEST(Modules, ConvLayersNamesShapesAndInit) {
  Generator gen(7);
  const auto cnn = issue_cnn(gen);
  const auto params = cnn->named_parameters();
  const std::vector<std::pair<std::string, Shape>> want{
      {"0.weight", {16, 1, 5, 5}},  {"0.bias", {16}},
      {"3.weight", {32, 16, 5, 5}}, {"3.bias", {32}},
      {"7.weight", {128, 1568}},    {"7.bias", {128}},
      {"9.weight", {10, 128}},      {"9.bias", {10}}};
  ASSERT_EQ(params.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(params[i].first, want[i].first);
    EXPECT_EQ(params[i].second.shape(), want[i].second) << want[i].first;
  }
  // kaiming_uniform(a = sqrt 5) and the bias: U(-b, b), b = 1/sqrt(fan_in), fan_in = 16 * 25. The
  // largest of 12800 draws comes within 2% of the bound, none beyond it.
  for (const char* name : {"3.weight", "3.bias"}) {
    const double bound = 1.0 / std::sqrt(400.0);
    double largest = 0.0;
    for (double v : cnn->parameter(name).values()) largest = std::max(largest, std::abs(v));
    EXPECT_LE(largest, bound) << name;
    if (std::string(name) == "3.weight") {
      EXPECT_GT(largest, 0.98 * bound);
    }
  }
  EXPECT_EQ(cnn->at(0)->name(), "Conv2d(1, 16, kernel_size=(5, 5), padding=(2, 2))");
  EXPECT_EQ(cnn->at(2)->name(), "MaxPool2d(kernel_size=(2, 2), stride=(2, 2))");
  EXPECT_EQ((*cnn)(zeros({3, 1, 28, 28})).shape(), (Shape{3, 10}));
  // Grouped, bias-free, 1-D, average pooling and partial flattening, by shape.
  Conv2d grouped(4, 6, {3, 1}, {.stride = 2, .groups = 2}, gen, false);
  EXPECT_EQ(grouped.parameters().size(), 1u);
  EXPECT_EQ(grouped(zeros({2, 4, 7, 5})).shape(), (Shape{2, 6, 3, 3}));
  Conv1d conv1(3, 4, 3, {.padding = 1}, gen);
  EXPECT_EQ(conv1(zeros({2, 3, 8})).shape(), (Shape{2, 4, 8}));
  EXPECT_EQ(AvgPool2d(2)(zeros({1, 2, 5, 4})).shape(), (Shape{1, 2, 2, 2}));
  EXPECT_EQ(Flatten(0, 1)(zeros({2, 3, 4})).shape(), (Shape{6, 4}));
}

TEST(Misuse, ConvLayersNameTheLayer) {
  Generator gen(8);
  Conv2d conv(3, 8, 3, gen);
  try {
    (void)conv(zeros({2, 1, 8, 8}));
    ADD_FAILURE() << "did not throw";
  } catch (const ShapeError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("Conv2d(3, 8, kernel_size=(3, 3))"), std::string::npos) << what;
    EXPECT_NE(what.find("[2, 1, 8, 8]"), std::string::npos) << what;
  }
  EXPECT_THROW((void)MaxPool2d(4)(zeros({1, 1, 3, 3})), ShapeError);
  EXPECT_THROW((void)Flatten(2, 1)(zeros({1, 2, 3})), AxisError);
  EXPECT_THROW(Conv2d(3, 8, 3, {.groups = 2}, gen), ValueError);
}

// One full forward + backward of the issue's CNN from the same weights: loss and every
// parameter gradient within 1e-10 of PyTorch float64's.
TEST(TorchParity, IssueCnnForwardBackward) {
  Generator gen(14);
  const auto cnn = issue_cnn(gen);
  const auto named = cnn->named_parameters();
  constexpr std::int64_t batch = 8;
  std::vector<Tensor> inputs{tapegrad::test_inputs::normal({batch, 1, 28, 28}, 5)};
  inputs[0].requires_grad_(false);
  for (const auto& [name, p] : named) inputs.push_back(p.detach().requires_grad_());
  std::vector<double> labels(batch);
  for (double& l : labels) l = static_cast<double>(gen.below(10));
  inputs.push_back(from_values(labels, {batch}));
  TorchOracle oracle;
  oracle.add(
      "issue 14 CNN",
      "F.cross_entropy(F.linear(F.relu(F.linear(torch.flatten(F.max_pool2d(F.relu(F.conv2d("
      "F.max_pool2d(F.relu(F.conv2d(x0, x1, x2, padding=2)), 2), x3, x4, padding=2)), 2), 1), x5, "
      "x6)), x7, x8), x9.long())",
      inputs, [&](Span x) {
        for (std::size_t i = 0; i < named.size(); ++i) cnn->set_parameter(named[i].first, x[i + 1]);
        return Outputs{cross_entropy_with_logits((*cnn)(x[0]), x[9])};
      });
  const auto r = oracle.run(1e-10);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_TRUE(r.passed) << r.report;
  std::printf("CNN parity: %s", r.report.c_str());
}

}  // namespace
