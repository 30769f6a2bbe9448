// LearningSlowdown: the experiment of examples/learning_slowdown (Nielsen, ch. 3), run through the
// example's own header, checked against the closed forms of the seed document's sections 3 and 4
// at every epoch, and against the qualitative claim: from a confidently wrong start the quadratic
// cost learns far more slowly than cross-entropy.
#include <cmath>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "../examples/learning_slowdown.hpp"

namespace {

using slowdown::Cost;
using slowdown::EpochRecord;
using slowdown::run_neuron;

constexpr double kX = 1.0, kY = 0.0, kEta = 0.15;
constexpr int kEpochs = 300;
constexpr double kRelTol = 1e-12;

double sigma(double z) {
  return 1.0 / (1.0 + std::exp(-z));
}

std::vector<EpochRecord> RunNeuron(double w0, double b0, Cost cost) {
  return run_neuron(w0, b0, cost, kEpochs, kEta, kX, kY);
}

::testing::AssertionResult RelClose(double tape, double closed_form, double tol = kRelTol) {
  if (std::abs(tape - closed_form) <= tol * std::abs(closed_form)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << fmt::format(
             "tape {:.17g} vs closed form {:.17g} (relative difference {:.3g}, tol {:.1g})", tape,
             closed_form, std::abs(tape - closed_form) / std::abs(closed_form), tol);
}

struct Start {
  double w0, b0;
};
constexpr Start kStarts[] = {{0.6, 0.9}, {2.0, 2.0}};

TEST(LearningSlowdown, QuadraticCostBarelyMovesFromConfidentlyWrongStart) {
  const auto quadratic = RunNeuron(2.0, 2.0, Cost::quadratic);
  const auto cross_entropy = RunNeuron(2.0, 2.0, Cost::cross_entropy);
  const double quadratic_move = quadratic[0].a - quadratic[100].a;
  const double cross_entropy_move = cross_entropy[0].a - cross_entropy[100].a;
  // Observed: about 0.018 against 0.94. A factor 10 leaves a wide margin either way.
  EXPECT_GT(quadratic_move, 0.0);
  EXPECT_LT(quadratic_move, 0.05);
  EXPECT_GT(cross_entropy_move, 0.5);
  EXPECT_GT(cross_entropy_move, 10.0 * quadratic_move) << fmt::format(
      "quadratic moved {:.6f}, cross-entropy {:.6f}", quadratic_move, cross_entropy_move);
}

TEST(LearningSlowdown, QuadraticCostLearnsSlowerTheMoreWrongItStarts) {
  // The slowdown proper: with the quadratic cost the worse start (a = 0.98) improves less in 100
  // epochs than the milder one (a = 0.82), because sigma'(z) is smaller there.
  const auto mild = RunNeuron(0.6, 0.9, Cost::quadratic);
  const auto wrong = RunNeuron(2.0, 2.0, Cost::quadratic);
  EXPECT_GT(mild[0].a - mild[100].a, 10.0 * (wrong[0].a - wrong[100].a));
}

TEST(LearningSlowdown, CrossEntropyGradientClosedFormEveryEpoch) {
  for (const Start& start : kStarts) {
    const auto records = RunNeuron(start.w0, start.b0, Cost::cross_entropy);
    ASSERT_EQ(records.size(), static_cast<std::size_t>(kEpochs) + 1);
    for (const EpochRecord& r : records) {
      // Section 4: sigma'(z) cancels, dC/dw = (a - y) x, dC/db = a - y.
      EXPECT_TRUE(RelClose(r.dC_dw, (r.a - kY) * kX))
          << "start (" << start.w0 << ", " << start.b0 << ") epoch " << r.epoch;
      EXPECT_TRUE(RelClose(r.dC_db, r.a - kY))
          << "start (" << start.w0 << ", " << start.b0 << ") epoch " << r.epoch;
    }
  }
}

TEST(LearningSlowdown, QuadraticGradientClosedFormEveryEpoch) {
  for (const Start& start : kStarts) {
    const auto records = RunNeuron(start.w0, start.b0, Cost::quadratic);
    ASSERT_EQ(records.size(), static_cast<std::size_t>(kEpochs) + 1);
    for (const EpochRecord& r : records) {
      // Section 3: dC/dw = (a - y) sigma'(z) x, dC/db = (a - y) sigma'(z), sigma' = a (1 - a).
      const double sigma_prime = r.a * (1.0 - r.a);
      EXPECT_TRUE(RelClose(r.dC_dw, (r.a - kY) * sigma_prime * kX))
          << "start (" << start.w0 << ", " << start.b0 << ") epoch " << r.epoch;
      EXPECT_TRUE(RelClose(r.dC_db, (r.a - kY) * sigma_prime))
          << "start (" << start.w0 << ", " << start.b0 << ") epoch " << r.epoch;
    }
  }
}

TEST(LearningSlowdown, FirstEpochMatchesFormulas) {
  for (const Start& start : kStarts) {
    for (const Cost cost : {Cost::quadratic, Cost::cross_entropy}) {
      const EpochRecord first = RunNeuron(start.w0, start.b0, cost).front();
      const double a0 = sigma(start.w0 * kX + start.b0);
      const double cost0 = cost == Cost::quadratic
                               ? 0.5 * (kY - a0) * (kY - a0)
                               : -(kY * std::log(a0) + (1.0 - kY) * std::log(1.0 - a0));
      SCOPED_TRACE(fmt::format("{} from ({}, {})", slowdown::cost_name(cost), start.w0, start.b0));
      EXPECT_EQ(first.epoch, 0);
      EXPECT_EQ(first.w, start.w0);
      EXPECT_EQ(first.b, start.b0);
      EXPECT_TRUE(RelClose(first.a, a0));
      EXPECT_TRUE(RelClose(first.cost, cost0));
    }
  }
}

TEST(LearningSlowdown, EachStepIsGradientDescentWithTheTapeGradient) {
  for (const Cost cost : {Cost::quadratic, Cost::cross_entropy}) {
    const auto records = RunNeuron(2.0, 2.0, cost);
    for (std::size_t e = 0; e + 1 < records.size(); ++e) {
      EXPECT_DOUBLE_EQ(records[e + 1].w, records[e].w - kEta * records[e].dC_dw) << "epoch " << e;
      EXPECT_DOUBLE_EQ(records[e + 1].b, records[e].b - kEta * records[e].dC_db) << "epoch " << e;
    }
  }
}

TEST(LearningSlowdown, ReproducesNielsensStartingOutputs) {
  // Nielsen quotes the starting outputs to two digits: 0.82 and 0.98.
  for (const Cost cost : {Cost::quadratic, Cost::cross_entropy}) {
    const double mild = RunNeuron(0.6, 0.9, cost).front().a;
    const double wrong = RunNeuron(2.0, 2.0, cost).front().a;
    EXPECT_NEAR(mild, 0.82, 0.005);
    EXPECT_NEAR(mild, 0.817574, 1e-6);  // sigma(1.5)
    EXPECT_NEAR(wrong, 0.98, 0.005);
    EXPECT_NEAR(wrong, 0.982014, 1e-6);  // sigma(4)
  }
}

}  // namespace
