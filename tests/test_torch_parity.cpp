// TorchParity: tapegrad against PyTorch float64 (tests/torch_oracle.hpp), on the ops of the first
// round. Skipped, never failed, when python3-torch is not installed.
#include <gtest/gtest.h>

#include <tapegrad/tapegrad.hpp>

#include "test_inputs.hpp"
#include "torch_oracle.hpp"

namespace {

using namespace tapegrad;               // NOLINT: the ops read best unqualified
using namespace tapegrad::test_inputs;  // NOLINT
using tapegrad::test::Outputs;
using tapegrad::test::TorchOracle;
using Span = std::span<const Tensor>;

TEST(TorchParity, FirstRoundOps) {
  TorchOracle oracle;
  oracle.add("sigmoid*tanh", "torch.sigmoid(x0) * torch.tanh(x1)",
             {normal({3, 4}, 1), normal({4}, 2)},
             [](Span x) { return Outputs{sigmoid(x[0]) * tanh(x[1])}; });
  oracle.add("softmax", "torch.softmax(x0, -1)", {normal({2, 5}, 3)},
             [](Span x) { return Outputs{softmax(x[0], -1)}; });
  oracle.add("log_softmax axis 0", "torch.log_softmax(x0, 0)", {normal({4, 3}, 4)},
             [](Span x) { return Outputs{log_softmax(x[0], 0)}; });
  oracle.add("matmul^T + b", "x0 @ x1.T + x2",
             {normal({5, 3}, 5), normal({4, 3}, 6), normal({4}, 7)},
             [](Span x) { return Outputs{matmul(x[0], x[1], {.transpose_b = true}) + x[2]}; });
  oracle.add("logsumexp keepdim", "torch.logsumexp(x0, 1, keepdim=True)", {normal({3, 6}, 8)},
             [](Span x) { return Outputs{logsumexp(x[0], 1, true)}; });
  oracle.add("two outputs", "(torch.exp(x0), x0.sum(0))", {normal({2, 3}, 9)}, [](Span x) {
    return Outputs{exp(x[0]), sum(x[0], 0)};
  });
  const auto r = oracle.run(1e-12);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_TRUE(r.passed) << r.report;
  EXPECT_EQ(r.cases, 6u);
}

// The oracle must be able to fail: a deliberately wrong pairing is reported, not passed.
TEST(TorchParity, OracleCatchesAWrongExpression) {
  TorchOracle oracle;
  oracle.add("exp vs sin", "torch.sin(x0)", {normal({4}, 10)},
             [](Span x) { return Outputs{exp(x[0])}; });
  const auto r = oracle.run(1e-12);
  if (r.skipped) GTEST_SKIP() << r.report;
  EXPECT_FALSE(r.passed) << r.report;
  EXPECT_NE(r.report.find("exp vs sin"), std::string::npos) << r.report;
}

}  // namespace
