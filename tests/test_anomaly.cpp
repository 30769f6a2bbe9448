// Anomaly: AnomalyGuard turns the first NaN or infinity, forward or backward, into an
// AnomalyError naming the op, its shapes and the user's line (this file, the exact line);
// with the guard off nothing is thrown and every value is the same.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tapegrad/core/autograd.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/softmax.hpp"
#include "tapegrad/ops/unary.hpp"

namespace {

using namespace tapegrad;  // NOLINT: the ops read best unqualified

bool contains(const std::string& text, const std::string& fragment) {
  return text.find(fragment) != std::string::npos;
}

// "test_anomaly.cpp:<line>", however the build spelled the path.
std::string here(int line) {
  return fmt::format("test_anomaly.cpp:{}", line);
}

TEST(Anomaly, ForwardLogOfZeroNamesLogShapesFileAndLine) {
  Tape tape;
  const Tensor p = tensor({{0.5, 0.0, 0.5}, {0.2, 0.3, 0.5}}).requires_grad_();
  AnomalyGuard guard;
  int line = 0;
  try {
    const Tensor y = (line = __LINE__, log(p));
    FAIL() << "no AnomalyError; log gave " << fmt::format("{}", y);
  } catch (const AnomalyError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(what.starts_with("log: ")) << what;
    EXPECT_TRUE(contains(what, "-inf at flat index 1")) << what;
    EXPECT_TRUE(contains(what, "(inputs [2, 3] -> result [2, 3])")) << what;
    EXPECT_TRUE(contains(what, here(line))) << what << "\nexpected " << here(line);
    EXPECT_TRUE(contains(what, __FILE__)) << what;
  }
  EXPECT_EQ(tape.size(), 0u);  // the failing op recorded nothing
}

// The hand-written cross-entropy of the teaching notes: softmax underflows to an exact 0 for a
// class 800 below the best one, and -sum(t ln p) takes its log.
TEST(Anomaly, HandWrittenCrossEntropyOfAZeroProbability) {
  Tape tape;
  const Tensor z = tensor({0.0, 800.0, 1.0}).requires_grad_();
  const Tensor t = tensor({1.0, 0.0, 0.0});
  AnomalyGuard guard;
  const Tensor p = softmax(z);  // p[0] = e^-800 / ... = 0 exactly: finite, no anomaly yet
  EXPECT_EQ(p.values()[0], 0.0);
  int line = 0;
  try {
    const Tensor loss = (line = __LINE__, -sum(t * log(p)));
    FAIL() << "no AnomalyError; loss " << fmt::format("{}", loss);
  } catch (const AnomalyError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(what.starts_with("log: ")) << what;
    EXPECT_TRUE(contains(what, "(inputs [3] -> result [3])")) << what;
    EXPECT_TRUE(contains(what, here(line))) << what;
  }
}

TEST(Anomaly, BackwardInfinityFromSqrtAtZeroNamesSqrtAndLine) {
  Tape tape;
  const Tensor x = tensor({0.0, 4.0}).requires_grad_();
  AnomalyGuard guard;
  const Tensor r = sqrt(x);  // forward is fine: sqrt(0) = 0
  const int line = __LINE__ - 1;
  const Tensor y = sum(r);
  try {
    y.backward();
    FAIL() << "no AnomalyError; grad " << fmt::format("{}", x.grad());
  } catch (const AnomalyError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(what.starts_with("sqrt: anomaly in backward")) << what;
    EXPECT_TRUE(contains(what, "input 0 ([2]) holds inf at flat index 0")) << what;
    EXPECT_TRUE(contains(what, "(result [2])")) << what;
    EXPECT_TRUE(contains(what, here(line))) << what;
  }
  // grad() reports it the same way as backward().
  EXPECT_THROW(grad(y, {x}), AnomalyError);
}

TEST(Anomaly, BackwardNaNIsCaughtToo) {
  // d/dx sqrt(x) * 0 at x = 0: the rule computes g / (2 y) = 0 / 0 = NaN.
  Tape tape;
  const Tensor x = tensor({0.0}).requires_grad_();
  AnomalyGuard guard;
  const Tensor y = sum(sqrt(x) * 0.0);
  try {
    y.backward();
    FAIL() << "no AnomalyError";
  } catch (const AnomalyError& e) {
    EXPECT_TRUE(contains(e.what(), "sqrt: anomaly in backward")) << e.what();
    EXPECT_TRUE(contains(e.what(), "nan at flat index 0")) << e.what();
  }
}

// Without the guard the same programs run to the end: -inf, inf and NaN flow on silently.
TEST(Anomaly, GuardOffThrowsNothing) {
  ASSERT_FALSE(is_anomaly_enabled());
  Tape tape;
  const Tensor p = tensor({0.5, 0.0}).requires_grad_();
  Tensor y;
  EXPECT_NO_THROW(y = log(p));
  EXPECT_EQ(y.values()[1], -INFINITY);
  const Tensor x = tensor({0.0, 4.0}).requires_grad_();
  EXPECT_NO_THROW(sum(sqrt(x)).backward());
  EXPECT_EQ(x.grad().values()[0], INFINITY);
  EXPECT_EQ(x.grad().values()[1], 0.25);
}

// Anomaly mode only watches: on a healthy graph, values and gradients are bit for bit the same.
TEST(Anomaly, ResultsIdenticalWithGuardOnAndOff) {
  const auto run = [](bool anomaly) {
    AnomalyGuard guard(anomaly);
    Tape tape;
    const Tensor w = tensor({{0.3, -1.2, 0.7}, {2.0, 0.1, -0.4}}).requires_grad_();
    const Tensor x = tensor({1.5, -0.5, 0.25});
    const Tensor t = tensor({0.0, 1.0});
    const Tensor p = softmax(sum(w * x, 1));
    const Tensor loss = -sum(t * log(p)) + sum(sqrt(square(w) + 1.0));
    loss.backward();
    std::vector<double> out(w.grad().values().begin(), w.grad().values().end());
    out.push_back(loss.item());
    return out;
  };
  const std::vector<double> off = run(false);
  const std::vector<double> on = run(true);
  EXPECT_EQ(on, off);
  for (double v : on) EXPECT_TRUE(std::isfinite(v));
}

TEST(Anomaly, GuardNestsAndRestores) {
  EXPECT_FALSE(is_anomaly_enabled());
  {
    AnomalyGuard outer;
    EXPECT_TRUE(is_anomaly_enabled());
    {
      AnomalyGuard paused(false);
      EXPECT_FALSE(is_anomaly_enabled());
      Tape tape;
      EXPECT_NO_THROW(log(tensor({0.0}).requires_grad_()));  // paused: no check
      {
        AnomalyGuard inner;
        EXPECT_TRUE(is_anomaly_enabled());
      }
      EXPECT_FALSE(is_anomaly_enabled());
    }
    EXPECT_TRUE(is_anomaly_enabled());
    // An error thrown inside a nested guard still unwinds it.
    try {
      AnomalyGuard inner;
      log(scalar(0.0));
      FAIL() << "no AnomalyError for log(0) of a constant";
    } catch (const AnomalyError&) {
    }
    EXPECT_TRUE(is_anomaly_enabled());
  }
  EXPECT_FALSE(is_anomaly_enabled());
}

}  // namespace
