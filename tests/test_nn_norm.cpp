// Batch norm, dropout and module buffers (issue 14), layer norm (issue 15): finite differences
// first and second order, PyTorch float64 parity (values, gradients and running statistics),
// dropout's mask statistics and seeding, buffer naming as PyTorch's state_dict, and misuse.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>

#include "test_inputs.hpp"
#include "torch_oracle.hpp"

namespace {

using namespace tapegrad;               // NOLINT: the ops read best unqualified
using namespace tapegrad::test_inputs;  // NOLINT
using tapegrad::test::Outputs;
using tapegrad::test::TorchOracle;
using Span = std::span<const Tensor>;

// Batch norm as a function of (x, weight, bias), for gradcheck: the full Jacobian of y.
Function batch_norm_of(const std::shared_ptr<nn::BatchNorm>& bn) {
  return [bn](const std::vector<Tensor>& in) {
    bn->set_parameter("weight", in[1]);
    bn->set_parameter("bias", in[2]);
    return (*bn)(in[0]);
  };
}

std::vector<Tensor> bn_inputs(const Shape& x_shape, std::int64_t channels, std::uint64_t seed) {
  return {normal(x_shape, seed), in_range({channels}, seed + 1, 0.5, 1.5),
          normal({channels}, seed + 2)};
}

TEST(NnGradCheck, BatchNorm2dTrainingAndEvaluation) {
  auto bn = std::make_shared<nn::BatchNorm2d>(3);
  const auto inputs = bn_inputs({2, 3, 2, 3}, 3, 11);
  const GradcheckResult train = gradcheck(batch_norm_of(bn), inputs);
  EXPECT_TRUE(train.passed) << train.report;
  bn->eval();
  const GradcheckResult eval = gradcheck(batch_norm_of(bn), inputs);
  EXPECT_TRUE(eval.passed) << eval.report;
}

TEST(NnGradCheck, BatchNorm1dBothRanks) {
  auto bn = std::make_shared<nn::BatchNorm1d>(4);
  const GradcheckResult flat = gradcheck(batch_norm_of(bn), bn_inputs({5, 4}, 4, 21));
  EXPECT_TRUE(flat.passed) << flat.report;
  const GradcheckResult seq = gradcheck(batch_norm_of(bn), bn_inputs({2, 4, 3}, 4, 31));
  EXPECT_TRUE(seq.passed) << seq.report;
}

TEST(SecondOrderGradCheck, BatchNorm2dTraining) {
  auto bn = std::make_shared<nn::BatchNorm2d>(2);
  const GradcheckResult r = gradgradcheck(batch_norm_of(bn), bn_inputs({2, 2, 2, 2}, 2, 41));
  EXPECT_TRUE(r.passed) << r.report;
}

// Values, gradients (x, weight, bias) and the running statistics after one training step, and
// evaluation from those statistics, against torch.nn.functional.batch_norm.
TEST(TorchParity, BatchNormTrainingEvaluationAndRunningStatistics) {
  TorchOracle oracle;
  struct Case {
    Shape shape;
    std::int64_t channels;
    bool two_d;
  };
  const std::vector<Case> cases = {
      {{4, 3, 5, 2}, 3, true}, {{6, 5}, 5, false}, {{3, 2, 7}, 2, false}};
  std::uint64_t seed = 100;
  for (const Case& c : cases) {
    const auto in = bn_inputs(c.shape, c.channels, seed += 10);
    const auto make = [c]() -> std::shared_ptr<nn::BatchNorm> {
      if (c.two_d) return std::make_shared<nn::BatchNorm2d>(c.channels);
      return std::make_shared<nn::BatchNorm1d>(c.channels);
    };
    const std::string stats = fmt::format(
        "(lambda rm, rv: (F.batch_norm(x0, rm, rv, x1, x2, True, 0.1, 1e-5), rm, rv))"
        "(torch.zeros({0}, dtype=torch.float64), torch.ones({0}, dtype=torch.float64))",
        c.channels);
    oracle.add(fmt::format("batch norm train {}", c.shape), stats, in, [make](Span x) {
      auto bn = make();
      bn->set_parameter("weight", x[1]);
      bn->set_parameter("bias", x[2]);
      const Tensor y = (*bn)(x[0]);
      return Outputs{y, bn->running_mean().detach(), bn->running_var().detach()};
    });
    // Evaluation after two training steps on x and 2x + 1, so the statistics are not trivial.
    const std::string eval = fmt::format(
        "(lambda rm, rv: (F.batch_norm(x0.detach(), rm, rv, None, None, True, 0.1, 1e-5), "
        "F.batch_norm(2 * x0.detach() + 1, rm, rv, None, None, True, 0.1, 1e-5), "
        "F.batch_norm(x0, rm, rv, x1, x2, False, 0.1, 1e-5))[2])"
        "(torch.zeros({0}, dtype=torch.float64), torch.ones({0}, dtype=torch.float64))",
        c.channels);
    oracle.add(fmt::format("batch norm eval {}", c.shape), eval, in, [make](Span x) {
      auto bn = make();
      {
        NoGradGuard no_grad;
        (*bn)(x[0].detach());
        (*bn)(x[0].detach() * 2.0 + 1.0);
      }
      bn->eval();
      bn->set_parameter("weight", x[1]);
      bn->set_parameter("bias", x[2]);
      return Outputs{(*bn)(x[0])};
    });
  }
  const auto r = oracle.run(1e-12);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_EQ(r.cases, 6u);
}

TEST(NnClosedForm, BatchNormRunningStatisticsAfterOneStep) {
  // One channel, values 1, 2, 3, 6: mean 3, biased variance 3.5, unbiased 14/3.
  nn::BatchNorm1d bn(1);
  const Tensor x = from_values({1, 2, 3, 6}, {4, 1});
  const Tensor y = bn(x);
  EXPECT_NEAR(bn.running_mean().item(), 0.1 * 3.0, 1e-15);
  EXPECT_NEAR(bn.running_var().item(), 0.9 + 0.1 * 14.0 / 3.0, 1e-15);
  EXPECT_EQ(bn.num_batches_tracked().item(), 1.0);
  EXPECT_NEAR(y.at({3, 0}), 3.0 / std::sqrt(3.5 + 1e-5), 1e-14);
  bn.eval();
  const Tensor z = bn(x);  // evaluation changes nothing
  EXPECT_EQ(bn.num_batches_tracked().item(), 1.0);
  EXPECT_NEAR(z.at({0, 0}), (1.0 - 0.3) / std::sqrt(bn.running_var().item() + 1e-5), 1e-14);
}

TEST(NnModules, BuffersAreNamedAsPyTorchsStateDictAndNeverParameters) {
  Generator gen(1);
  auto model = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(3, 4, gen), std::make_shared<nn::BatchNorm1d>(4)});
  std::vector<std::string> state, buffers, parameters;
  for (auto& [name, t] : model->named_state()) state.push_back(name);
  for (auto& [name, t] : model->named_buffers()) buffers.push_back(name);
  for (auto& [name, t] : model->named_parameters()) parameters.push_back(name);
  // torch.nn.Sequential(Linear(3, 4), BatchNorm1d(4)).state_dict().keys(), in order.
  EXPECT_EQ(state,
            (std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                                      "1.running_var", "1.num_batches_tracked"}));
  EXPECT_EQ(buffers,
            (std::vector<std::string>{"1.running_mean", "1.running_var", "1.num_batches_tracked"}));
  EXPECT_EQ(parameters, (std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias"}));
  for (const Tensor& b : model->buffers()) EXPECT_FALSE(b.requires_grad());
}

TEST(NnModules, DropoutKeepsOneMinusPAndScalesByItsInverse) {
  Generator gen(5);
  nn::Dropout drop(0.3, gen);
  const Tensor x = ones({200000});
  const Tensor y = drop(x);
  std::size_t zeros_seen = 0;
  for (double v : y.values()) {
    if (v == 0.0) {
      ++zeros_seen;
    } else {
      EXPECT_DOUBLE_EQ(v, 1.0 / 0.7);
    }
  }
  // Binomial(200000, 0.3): standard deviation ~205; 5 sigma.
  EXPECT_NEAR(static_cast<double>(zeros_seen), 60000.0, 1025.0);
  double total = 0.0;
  for (double v : y.values()) total += v;
  EXPECT_NEAR(total / 200000.0, 1.0, 0.01);  // inverted dropout keeps the mean
}

TEST(NnClosedForm, DropoutGradientIsTheMask) {
  Generator gen(9);
  nn::Dropout drop(0.5, gen);
  const Tensor x = normal({64}, 3);
  Tape tape;
  const Tensor y = drop(x);
  sum(y).backward();
  for (std::size_t i = 0; i < 64; ++i) {
    const double mask = y.values()[i] / x.values()[i];
    EXPECT_TRUE(mask == 0.0 || std::abs(mask - 2.0) < 1e-15) << mask;
    EXPECT_DOUBLE_EQ(x.grad().values()[i], mask);
  }
}

TEST(NnModules, DropoutIsSeededAndIdentityInEvaluation) {
  Generator a(77), b(77), c(78);
  nn::Dropout da(0.5, a), db(0.5, b), dc(0.5, c);
  const Tensor x = ones({256});
  const Tensor ya = da(x), yb = db(x), yc = dc(x);
  EXPECT_TRUE(std::equal(ya.values().begin(), ya.values().end(), yb.values().begin()));
  EXPECT_FALSE(std::equal(ya.values().begin(), ya.values().end(), yc.values().begin()));
  const Tensor second = da(x);  // a new mask each step
  EXPECT_FALSE(std::equal(ya.values().begin(), ya.values().end(), second.values().begin()));
  da.eval();
  EXPECT_TRUE(da(x).same(x));
  nn::Dropout all(1.0, a);
  const Tensor dropped = all(x);  // named: a temporary's values would be freed before the loop
  for (double v : dropped.values()) EXPECT_EQ(v, 0.0);
}

Function layer_norm_of(const std::shared_ptr<nn::LayerNorm>& ln) {
  return [ln](const std::vector<Tensor>& in) {
    ln->set_parameter("weight", in[1]);
    ln->set_parameter("bias", in[2]);
    return (*ln)(in[0]);
  };
}

TEST(NnGradCheck, LayerNormOneAndTwoTrailingDimensions) {
  auto one = std::make_shared<nn::LayerNorm>(4);
  const GradcheckResult r1 =
      gradcheck(layer_norm_of(one), {normal({3, 4}, 51), normal({4}, 52), normal({4}, 53)});
  EXPECT_TRUE(r1.passed) << r1.report;
  auto two = std::make_shared<nn::LayerNorm>(std::vector<std::int64_t>{2, 3});
  const GradcheckResult r2 = gradcheck(
      layer_norm_of(two), {normal({2, 2, 3}, 54), normal({2, 3}, 55), normal({2, 3}, 56)});
  EXPECT_TRUE(r2.passed) << r2.report;
}

TEST(SecondOrderGradCheck, LayerNorm) {
  auto ln = std::make_shared<nn::LayerNorm>(3);
  const GradcheckResult r =
      gradgradcheck(layer_norm_of(ln), {normal({2, 3}, 61), normal({3}, 62), normal({3}, 63)});
  EXPECT_TRUE(r.passed) << r.report;
}

TEST(TorchParity, LayerNormValuesAndGradients) {
  TorchOracle oracle;
  oracle.add("layer norm [6]", "F.layer_norm(x0, [6], x1, x2, 1e-5)",
             {normal({4, 6}, 71), normal({6}, 72), normal({6}, 73)}, [](Span x) {
               nn::LayerNorm ln(6);
               ln.set_parameter("weight", x[1]);
               ln.set_parameter("bias", x[2]);
               return Outputs{ln(x[0])};
             });
  oracle.add("layer norm [3, 4]", "F.layer_norm(x0, [3, 4], x1, x2, 1e-5)",
             {normal({2, 3, 4}, 74), normal({3, 4}, 75), normal({3, 4}, 76)}, [](Span x) {
               nn::LayerNorm ln(std::vector<std::int64_t>{3, 4});
               ln.set_parameter("weight", x[1]);
               ln.set_parameter("bias", x[2]);
               return Outputs{ln(x[0])};
             });
  oracle.add("layer norm no affine, eps 1e-3", "F.layer_norm(x0, [5], None, None, 1e-3)",
             {normal({2, 3, 5}, 77, 10.0)},
             [](Span x) { return Outputs{nn::LayerNorm(5, 1e-3, false)(x[0])}; });
  const auto r = oracle.run(1e-12);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_TRUE(r.passed) << r.report;
}

TEST(NnMisuse, BatchNormAndDropoutRejectBadShapesAndOptions) {
  nn::BatchNorm2d bn2(3);
  EXPECT_THROW(bn2(zeros({2, 3, 4})), ShapeError);
  EXPECT_THROW(bn2(zeros({2, 4, 2, 2})), ShapeError);
  nn::BatchNorm1d bn1(3);
  try {
    bn1(zeros({1, 3}));
    FAIL() << "a batch of one trained";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("BatchNorm1d(3)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[1, 3]"), std::string::npos) << e.what();
  }
  bn1.eval();
  EXPECT_NO_THROW(bn1(zeros({1, 3})));  // evaluation of one sample is fine
  EXPECT_THROW(nn::BatchNorm1d(0), ValueError);
  EXPECT_THROW(nn::BatchNorm1d(3, {.eps = 0.0}), ValueError);
  EXPECT_THROW(nn::BatchNorm1d(3, {.momentum = NAN}), ValueError);
  Generator gen(1);
  EXPECT_THROW(nn::Dropout(1.5, gen), ValueError);
  EXPECT_THROW(nn::Dropout(NAN, gen), ValueError);
  nn::LayerNorm ln(std::vector<std::int64_t>{3, 4});
  EXPECT_THROW(ln(zeros({2, 4, 3})), ShapeError);
  EXPECT_THROW(ln(zeros({4})), ShapeError);
  EXPECT_THROW(nn::LayerNorm(std::vector<std::int64_t>{}), ValueError);
  EXPECT_THROW(nn::LayerNorm(4, -1.0), ValueError);
}

}  // namespace
