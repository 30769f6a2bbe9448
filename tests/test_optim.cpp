// Optimizers: every optimizer takes two steps on one tiny problem and lands on the numbers
// worked out by hand below from PyTorch's update formulas (torch.optim docs), to 1e-12.
//
// The problem: w = [1, -2], loss L = sum(w^2), so g = dL/dw = 2 w.
// Each step records on a fresh Tape, as a training loop does.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/nn/optim.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/unary.hpp"

namespace {

using tapegrad::Tape;
using tapegrad::Tensor;
namespace nn = tapegrad::nn;

constexpr double kTol = 1e-12;

Tensor StartingPoint() {
  return tapegrad::tensor({1.0, -2.0}).requires_grad_();
}

// One training step on L = sum(w^2); returns w's values afterwards.
std::vector<double> Step(nn::Optimizer& optimizer, const Tensor& w) {
  Tape tape;
  optimizer.zero_grad();
  tapegrad::sum(tapegrad::square(w)).backward();
  optimizer.step();
  return {w.values().begin(), w.values().end()};
}

void ExpectValues(const std::vector<double>& actual, const std::vector<double>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], kTol) << "element " << i;
  }
}

// ---------------------------------------------------------------------------------------------
// SGD

TEST(Optimizers, SgdPlainTwoSteps) {
  Tensor w = StartingPoint();
  nn::SGD sgd({w}, {.lr = 0.1});
  // step 1: g = [2, -4];        w = [1, -2] - 0.1 [2, -4]        = [0.8, -1.6]
  ExpectValues(Step(sgd, w), {0.8, -1.6});
  // step 2: g = [1.6, -3.2];    w = [0.8, -1.6] - 0.1 [1.6, -3.2] = [0.64, -1.28]
  ExpectValues(Step(sgd, w), {0.64, -1.28});
}

TEST(Optimizers, SgdMomentumTwoSteps) {
  Tensor w = StartingPoint();
  nn::SGD sgd({w}, {.lr = 0.1, .momentum = 0.9});
  // step 1: g = [2, -4]; the buffer starts as g: b = [2, -4];  w = [1, -2] - 0.1 b = [0.8, -1.6]
  ExpectValues(Step(sgd, w), {0.8, -1.6});
  // step 2: g = [1.6, -3.2]; b = 0.9 [2, -4] + [1.6, -3.2] = [3.4, -6.8]
  //         w = [0.8, -1.6] - 0.1 [3.4, -6.8] = [0.46, -0.92]
  ExpectValues(Step(sgd, w), {0.46, -0.92});
}

TEST(Optimizers, SgdMomentumWithDampening) {
  Tensor w = StartingPoint();
  nn::SGD sgd({w}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.5});
  // step 1: no dampening on the first step (b = g = [2, -4]);  w = [0.8, -1.6]
  ExpectValues(Step(sgd, w), {0.8, -1.6});
  // step 2: g = [1.6, -3.2]; b = 0.9 [2, -4] + (1 - 0.5) [1.6, -3.2] = [2.6, -5.2]
  //         w = [0.8, -1.6] - 0.1 [2.6, -5.2] = [0.54, -1.08]
  ExpectValues(Step(sgd, w), {0.54, -1.08});
}

TEST(Optimizers, SgdNesterovTwoSteps) {
  Tensor w = StartingPoint();
  nn::SGD sgd({w}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  // step 1: g = [2, -4]; b = g = [2, -4]; d = g + 0.9 b = [3.8, -7.6]
  //         w = [1, -2] - 0.1 [3.8, -7.6] = [0.62, -1.24]
  ExpectValues(Step(sgd, w), {0.62, -1.24});
  // step 2: g = [1.24, -2.48]; b = 0.9 [2, -4] + [1.24, -2.48] = [3.04, -6.08]
  //         d = [1.24, -2.48] + 0.9 [3.04, -6.08] = [3.976, -7.952]
  //         w = [0.62, -1.24] - 0.1 [3.976, -7.952] = [0.2224, -0.4448]
  ExpectValues(Step(sgd, w), {0.2224, -0.4448});
}

TEST(Optimizers, SgdWeightDecay) {
  Tensor w = StartingPoint();
  nn::SGD sgd({w}, {.lr = 0.1, .weight_decay = 0.1});
  // step 1: d = g + 0.1 w = 2.1 w = [2.1, -4.2];  w = [1, -2] - 0.1 [2.1, -4.2] = [0.79, -1.58]
  ExpectValues(Step(sgd, w), {0.79, -1.58});
  // step 2: d = 2.1 [0.79, -1.58] = [1.659, -3.318];  w = 0.79 [0.79, -1.58] = [0.6241, -1.2482]
  ExpectValues(Step(sgd, w), {0.6241, -1.2482});
}

TEST(Optimizers, SgdMomentumWithWeightDecay) {
  Tensor w = StartingPoint();
  nn::SGD sgd({w}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1});
  // step 1: d = 2.1 w = [2.1, -4.2]; b = d;  w = [1, -2] - 0.1 [2.1, -4.2] = [0.79, -1.58]
  ExpectValues(Step(sgd, w), {0.79, -1.58});
  // step 2: d = 2.1 [0.79, -1.58] = [1.659, -3.318]
  //         b = 0.9 [2.1, -4.2] + [1.659, -3.318] = [3.549, -7.098]
  //         w = [0.79, -1.58] - 0.1 [3.549, -7.098] = [0.4351, -0.8702]
  ExpectValues(Step(sgd, w), {0.4351, -0.8702});
}

// ---------------------------------------------------------------------------------------------
// Adam and AdamW. eps = 0.1 (not 1e-8) so that where eps enters the denominator shows in the
// result: PyTorch adds it AFTER the bias correction, denom = sqrt(v) / sqrt(1 - beta2^t) + eps.

TEST(Optimizers, AdamBiasCorrectionTwoSteps) {
  Tensor w = StartingPoint();
  nn::Adam adam({w}, {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 0.1});
  // step 1 (t = 1): g = [2, -4]
  //   m = 0.1 g = [0.2, -0.4];  v = 0.001 g^2 = [0.004, 0.016]
  //   step_size = 0.1 / (1 - 0.9) = 1;  denom = sqrt(v) / sqrt(1 - 0.999) + 0.1 = |g| + 0.1
  //             = [2.1, 4.1]
  //   w = [1 - 0.2 / 2.1, -2 + 0.4 / 4.1] = [0.904761904761905, -1.902439024390244]
  ExpectValues(Step(adam, w), {0.9047619047619048, -1.9024390243902438});
  // step 2 (t = 2): g = 2 w = [1.809523809523810, -3.804878048780488]
  //   m = 0.9 [0.2, -0.4] + 0.1 g = [0.360952380952381, -0.740487804878049]
  //   v = 0.999 [0.004, 0.016] + 0.001 g^2 = [0.007270376417234, 0.030461096966092]
  //   step_size = 0.1 / (1 - 0.81) = 0.526315789473684;  sqrt(1 - 0.998001) = sqrt(0.001999)
  //   denom = sqrt(v) / sqrt(0.001999) + 0.1 = [2.007093786884331, 4.003609556145369]
  //   w = [0.904761904761905 - 0.526315789473684 * 0.360952380952381 / 2.007093786884331,
  //        -1.902439024390244 + 0.526315789473684 * 0.740487804878049 / 4.003609556145369]
  //     = [0.810110155758057, -1.805094261332166]
  ExpectValues(Step(adam, w), {0.8101101557580568, -1.8050942613321663});
}

TEST(Optimizers, AdamL2WeightDecay) {
  Tensor w = StartingPoint();
  nn::Adam adam({w}, {.lr = 0.1, .eps = 0.1, .weight_decay = 0.5});
  // step 1: g = 2 w + 0.5 w = [2.5, -5];  m = [0.25, -0.5];  v = 0.001 g^2 = [0.00625, 0.025]
  //   step_size = 1;  denom = |g| + 0.1 = [2.6, 5.1]
  //   w = [1 - 0.25 / 2.6, -2 + 0.5 / 5.1] = [0.903846153846154, -1.901960784313725]
  ExpectValues(Step(adam, w), {0.9038461538461539, -1.9019607843137254});
  // step 2: g = 2.5 w = [2.259615384615385, -4.754901960784314]
  //   m = 0.9 [0.25, -0.5] + 0.1 g = [0.450961538461538, -0.925490196078431]
  //   v = 0.999 [0.00625, 0.025] + 0.001 g^2 = [0.011349611686391, 0.047584092656671]
  //   denom = sqrt(v) / sqrt(0.001999) + 0.1 = [2.482780868130368, 4.978929011831063]
  //   w = w - (0.1 / 0.19) m / denom = [0.808248438725856, -1.804128479004348]
  ExpectValues(Step(adam, w), {0.8082484387258564, -1.8041284790043477});
}

TEST(Optimizers, AdamWDecoupledDecayTwoSteps) {
  Tensor w = StartingPoint();
  nn::AdamW adamw({w}, {.lr = 0.1, .eps = 0.1, .weight_decay = 0.5});
  // step 1: g = 2 w = [2, -4] (taken before the decay); w *= 1 - 0.1 * 0.5 -> [0.95, -1.9]
  //   then Adam exactly as in AdamBiasCorrectionTwoSteps: m / denom = [0.2 / 2.1, -0.4 / 4.1]
  //   w = [0.95 - 0.095238095238095, -1.9 + 0.097560975609756]
  //     = [0.854761904761905, -1.802439024390244]
  ExpectValues(Step(adamw, w), {0.8547619047619047, -1.8024390243902437});
  // step 2: g = 2 w = [1.709523809523810, -3.604878048780488]; w *= 0.95
  //   m = 0.9 [0.2, -0.4] + 0.1 g = [0.350952380952381, -0.720487804878049]
  //   v = 0.999 [0.004, 0.016] + 0.001 g^2 = [0.006918471655329, 0.028979145746579]
  //   denom = sqrt(v) / sqrt(0.001999) + 0.1 = [1.960367251598420, 3.907469144186448]
  //   w = 0.95 [0.854761904761905, -1.802439024390244] - (0.1 / 0.19) m / denom
  //     = [0.717800760603760, -1.615271109699789]
  ExpectValues(Step(adamw, w), {0.7178007606037596, -1.6152711096997894});
}

TEST(Optimizers, AdamDefaultsAreTorchDefaults) {
  Tensor w = StartingPoint();
  const nn::Adam adam({w});
  EXPECT_EQ(adam.learning_rate(), 1e-3);
  EXPECT_EQ(adam.options().beta1, 0.9);
  EXPECT_EQ(adam.options().beta2, 0.999);
  EXPECT_EQ(adam.options().eps, 1e-8);
  EXPECT_EQ(adam.options().weight_decay, 0.0);
  const nn::AdamW adamw({w});
  EXPECT_EQ(adamw.weight_decay(), 1e-2);
}

// ---------------------------------------------------------------------------------------------
// What every optimizer promises besides the formula.

TEST(Optimizers, StepSkipsParametersWithoutGradient) {
  Tensor used = StartingPoint();
  Tensor unused = tapegrad::tensor({5.0, 6.0}).requires_grad_();
  nn::Adam adam({used, unused}, {.lr = 0.1});
  Step(adam, used);  // the loss does not involve `unused`: its grad() stays undefined
  EXPECT_FALSE(unused.grad().defined());
  ExpectValues({unused.values().begin(), unused.values().end()}, {5.0, 6.0});
}

TEST(Optimizers, StepNeverMutatesGradsAndRecordsNothing) {
  Tensor w = StartingPoint();
  nn::SGD sgd({w}, {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.5});
  Tape tape;
  tapegrad::sum(tapegrad::square(w)).backward();
  const std::size_t nodes = tape.size();
  sgd.step();
  EXPECT_EQ(tape.size(), nodes);
  ExpectValues({w.grad().values().begin(), w.grad().values().end()}, {2.0, -4.0});
  sgd.zero_grad();
  EXPECT_FALSE(w.grad().defined());
}

TEST(Optimizers, NoParametersIsValueError) {
  EXPECT_THROW(nn::SGD({}, {.lr = 0.1}), tapegrad::ValueError);
  EXPECT_THROW(nn::Adam({}), tapegrad::ValueError);
  EXPECT_THROW(nn::AdamW({}), tapegrad::ValueError);
}

TEST(Optimizers, NegativeLearningRateIsValueError) {
  Tensor w = StartingPoint();
  EXPECT_THROW(nn::SGD({w}, {.lr = -0.1}), tapegrad::ValueError);
  EXPECT_THROW(nn::Adam({w}, {.lr = -1e-3}), tapegrad::ValueError);
  EXPECT_THROW(nn::AdamW({w}, {.lr = -1e-3}), tapegrad::ValueError);
  nn::SGD sgd({w}, {.lr = 0.1});
  EXPECT_THROW(sgd.set_learning_rate(-1.0), tapegrad::ValueError);
  EXPECT_THROW(sgd.set_learning_rate(NAN), tapegrad::ValueError);
  try {
    const nn::SGD rejected({w}, {.lr = -0.5});
    ADD_FAILURE() << "no ValueError";
  } catch (const tapegrad::ValueError& e) {
    EXPECT_STREQ(e.what(), "SGD: the learning rate must be >= 0 (got -0.5)");
  }
}

TEST(Optimizers, BadHyperparametersAreValueErrors) {
  Tensor w = StartingPoint();
  EXPECT_THROW(nn::SGD({w}, {.momentum = -0.9}), tapegrad::ValueError);
  EXPECT_THROW(nn::SGD({w}, {.weight_decay = -1.0}), tapegrad::ValueError);
  EXPECT_THROW(nn::SGD({w}, {.nesterov = true}), tapegrad::ValueError);  // needs momentum
  EXPECT_THROW(nn::SGD({w}, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}),
               tapegrad::ValueError);
  EXPECT_THROW(nn::Adam({w}, {.beta1 = 1.0}), tapegrad::ValueError);
  EXPECT_THROW(nn::Adam({w}, {.beta2 = -0.1}), tapegrad::ValueError);
  EXPECT_THROW(nn::Adam({w}, {.eps = -1.0}), tapegrad::ValueError);
  EXPECT_THROW(nn::AdamW({w}, {.weight_decay = -1.0}), tapegrad::ValueError);
  Tensor not_a_leaf;
  {
    Tape tape;
    not_a_leaf = w * 2.0;
    EXPECT_THROW(nn::SGD({not_a_leaf}), tapegrad::ValueError);
  }
}

// ---------------------------------------------------------------------------------------------
// Learning-rate schedules, stepped once per epoch as in PyTorch.

TEST(Optimizers, StepLrHalvesEveryTwoEpochs) {
  Tensor w = StartingPoint();
  nn::SGD sgd({w}, {.lr = 0.1});
  nn::StepLR schedule(sgd, /*step_size=*/2, /*gamma=*/0.5);
  // lr = 0.1 * 0.5^floor(epoch / 2):  epochs 1..5 -> 0.1, 0.05, 0.05, 0.025, 0.025
  const std::vector<double> expected = {0.1, 0.05, 0.05, 0.025, 0.025};
  EXPECT_EQ(sgd.learning_rate(), 0.1);
  for (double lr : expected) {
    schedule.step();
    EXPECT_NEAR(sgd.learning_rate(), lr, kTol) << "epoch " << schedule.epoch();
  }
  EXPECT_THROW(nn::StepLR(sgd, 0), tapegrad::ValueError);
}

TEST(Optimizers, CosineAnnealingFollowsHalfCosine) {
  Tensor w = StartingPoint();
  nn::Adam adam({w}, {.lr = 0.1});
  nn::CosineAnnealingLR schedule(adam, /*T_max=*/4, /*eta_min=*/0.01);
  // lr = 0.01 + (0.1 - 0.01) (1 + cos(pi epoch / 4)) / 2
  //   epoch 1: 0.01 + 0.045 (1 + 0.707106781186548) = 0.086819805153395
  //   epoch 2: 0.01 + 0.045 (1 + 0)                 = 0.055
  //   epoch 3: 0.01 + 0.045 (1 - 0.707106781186548) = 0.023180194846605
  //   epoch 4: 0.01 + 0.045 (1 - 1)                 = 0.01 (the minimum, at T_max)
  //   epoch 5: the cosine continues back up         = 0.023180194846605
  const std::vector<double> expected = {0.08681980515339463, 0.055, 0.023180194846605363, 0.01,
                                        0.023180194846605356};
  for (double lr : expected) {
    schedule.step();
    EXPECT_NEAR(adam.learning_rate(), lr, kTol) << "epoch " << schedule.epoch();
  }
  EXPECT_THROW(nn::CosineAnnealingLR(adam, 0), tapegrad::ValueError);
}

TEST(Optimizers, ScheduledLearningRateDrivesTheUpdate) {
  Tensor w = StartingPoint();
  nn::SGD sgd({w}, {.lr = 0.1});
  nn::StepLR schedule(sgd, 1, 0.5);
  // epoch 1 at lr 0.1: w = 0.8 [1, -2];  then lr 0.05: w = 0.8 * (1 - 0.05 * 2) [1, -2]
  ExpectValues(Step(sgd, w), {0.8, -1.6});
  schedule.step();
  ExpectValues(Step(sgd, w), {0.72, -1.44});
}

}  // namespace
