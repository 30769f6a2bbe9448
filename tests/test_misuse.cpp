// Misuse: every user mistake is a specific tapegrad::Error whose message names the op and the
// shapes involved (formatted "[2, 3]"), never a crash or a silent NaN. Each test is one mistake a
// user really makes; docs/errors.md lists every message and points back here.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include "tapegrad/core/autograd.hpp"
#include "tapegrad/core/broadcast.hpp"
#include "tapegrad/core/check_gradient.hpp"
#include "tapegrad/core/dot.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/functional.hpp"
#include "tapegrad/core/gradcheck.hpp"
#include "tapegrad/core/random.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/io/dataset.hpp"
#include "tapegrad/io/error.hpp"
#include "tapegrad/io/idx.hpp"
#include "tapegrad/io/safetensors.hpp"
#include "tapegrad/nn/init.hpp"
#include "tapegrad/nn/layers.hpp"
#include "tapegrad/nn/losses.hpp"
#include "tapegrad/nn/module.hpp"
#include "tapegrad/nn/optim.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/constants.hpp"
#include "tapegrad/ops/matmul.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape_ops.hpp"
#include "tapegrad/ops/softmax.hpp"
#include "tapegrad/ops/unary.hpp"

namespace {

using namespace tapegrad;  // NOLINT

static_assert(std::is_base_of_v<Error, ShapeError>);
static_assert(std::is_base_of_v<Error, AxisError>);
static_assert(std::is_base_of_v<Error, ValueError>);
static_assert(std::is_base_of_v<Error, AutogradError>);
static_assert(std::is_base_of_v<Error, AnomalyError>);
static_assert(std::is_base_of_v<Error, io::FormatError>);
static_assert(std::is_base_of_v<std::runtime_error, Error>);

// Passes when `f` throws exactly an `E` (or a subclass) whose what() contains every fragment.
// Any other exception, or none, fails with what was seen.
template <class E>
::testing::AssertionResult ThrowsWith(const std::function<void()>& f,
                                      std::vector<std::string> fragments) {
  try {
    f();
  } catch (const E& e) {
    const std::string what = e.what();
    for (const std::string& fragment : fragments) {
      if (what.find(fragment) == std::string::npos) {
        return ::testing::AssertionFailure()
               << "message \"" << what << "\" does not contain \"" << fragment << "\"";
      }
    }
    // TAPEGRAD_SHOW_MESSAGES=1 prints every message, to review their wording (docs/errors.md).
    if (std::getenv("TAPEGRAD_SHOW_MESSAGES") != nullptr)
      fmt::print("  [{}] {}\n", typeid(e).name(), what);
    return ::testing::AssertionSuccess() << what;
  } catch (const Error& e) {
    return ::testing::AssertionFailure() << "threw a tapegrad::Error of the wrong type ("
                                         << typeid(e).name() << "): " << e.what();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure()
           << "threw a non-tapegrad exception (" << typeid(e).name() << "): " << e.what();
  } catch (...) {
    return ::testing::AssertionFailure() << "threw something that is not a std::exception";
  }
  return ::testing::AssertionFailure() << "did not throw";
}

#define EXPECT_TG_THROW(statement, ErrorType, ...)                              \
  EXPECT_TRUE(ThrowsWith<ErrorType>([&] { (void)(statement); }, {__VA_ARGS__})) \
      << "statement: " #statement

// ---------------------------------------------------------------------------------------------
// Shapes

TEST(Misuse, ElementwiseShapeMismatchNamesOpAndShapes) {
  const Tensor a = zeros(Shape{2, 3});
  const Tensor b = zeros(Shape{4});
  EXPECT_TG_THROW(add(a, b), ShapeError, "add", "[2, 3]", "[4]");
  EXPECT_TG_THROW(sub(a, b), ShapeError, "sub", "[2, 3]", "[4]");
  EXPECT_TG_THROW(mul(a, b), ShapeError, "mul", "[2, 3]", "[4]");
  EXPECT_TG_THROW(div(a, b), ShapeError, "div", "[2, 3]", "[4]");
  EXPECT_TG_THROW(a + b, ShapeError, "add", "[2, 3]", "[4]");
  EXPECT_TG_THROW(a - b, ShapeError, "sub", "[2, 3]", "[4]");
  EXPECT_TG_THROW(a * b, ShapeError, "mul", "[2, 3]", "[4]");
  EXPECT_TG_THROW(a / b, ShapeError, "div", "[2, 3]", "[4]");
  // Order is kept: lhs first.
  EXPECT_TG_THROW(add(b, a), ShapeError, "add", "[4] vs [2, 3]");
  EXPECT_TG_THROW(add(a, b), ShapeError, "[2, 3] vs [4]");
  // Inner dimensions that are neither equal nor 1.
  EXPECT_TG_THROW(mul(zeros(Shape{2, 3, 4}), zeros(Shape{2, 1, 3})), ShapeError, "mul", "[2, 3, 4]",
                  "[2, 1, 3]");
  // Also with a tape recording and inputs that require grad.
  Tape tape;
  const Tensor p = zeros(Shape{3, 2}).requires_grad_();
  EXPECT_TG_THROW(p * a, ShapeError, "mul", "[3, 2]", "[2, 3]");
  EXPECT_EQ(tape.size(), 0u);
}

TEST(Misuse, MatmulShapeMismatchNamesBothShapes) {
  const Tensor a = zeros(Shape{2, 3});
  const Tensor b = zeros(Shape{4, 5});
  EXPECT_TG_THROW(matmul(a, b), ShapeError, "matmul", "[2, 3]", "[4, 5]");
  // With transposes the inner dimensions must still agree: a^T is [3, 2], needs [2, m].
  EXPECT_TG_THROW(matmul(a, zeros(Shape{3, 4}), MatmulOptions{.transpose_a = true}), ShapeError,
                  "matmul", "[2, 3]", "[3, 4]");
  EXPECT_TG_THROW(matmul(a, zeros(Shape{4, 2}), MatmulOptions{.transpose_b = true}), ShapeError,
                  "matmul", "[2, 3]", "[4, 2]");
  // A vector or a batch whose inner dimension does not match (1-D and batched operands are
  // accepted as in torch.matmul).
  EXPECT_TG_THROW(matmul(zeros(Shape{3}), zeros(Shape{4, 2})), ShapeError, "matmul", "[3]");
  EXPECT_TG_THROW(matmul(zeros(Shape{2, 3}), zeros(Shape{2, 4, 5})), ShapeError, "matmul",
                  "[2, 4, 5]");
}

TEST(Misuse, ReshapeToWrongElementCount) {
  const Tensor x = zeros(Shape{2, 3});
  EXPECT_TG_THROW(reshape(x, {4, 2}), ShapeError, "reshape", "[2, 3]", "[4, 2]");
  EXPECT_TG_THROW(reshape(x, {}), ShapeError, "reshape", "[2, 3]", "[]");
  // -1 that cannot be inferred: 6 is not a multiple of 4; two unknowns; a negative size.
  EXPECT_TG_THROW(reshape(x, {4, -1}), ShapeError, "reshape", "[2, 3]");
  EXPECT_TG_THROW(reshape(x, {-1, -1}), ShapeError, "reshape", "[2, 3]");
  EXPECT_TG_THROW(reshape(x, {-2, -3}), ShapeError, "reshape", "[2, 3]");
}

TEST(Misuse, TransposeOfNonMatrixAndBadAxes) {
  EXPECT_TG_THROW(transpose(zeros(Shape{2, 3, 4})), ShapeError, "transpose", "[2, 3, 4]");
  EXPECT_TG_THROW(transpose(zeros(Shape{3})), ShapeError, "transpose", "[3]");
  EXPECT_TG_THROW(transpose(zeros(Shape{2, 3}), 0, 2), AxisError, "transpose", "[2, 3]");
  EXPECT_TG_THROW(transpose(zeros(Shape{2, 3}), -3, 0), AxisError, "transpose", "[2, 3]");
}

TEST(Misuse, SumToAndBroadcastToIncompatibleShapes) {
  EXPECT_TG_THROW(sum_to(zeros(Shape{2, 3}), Shape{2}), ShapeError, "sum_to", "[2, 3]", "[2]");
  EXPECT_TG_THROW(broadcast_to(zeros(Shape{2, 3}), Shape{3, 3}), ShapeError, "broadcast_to",
                  "[2, 3]", "[3, 3]");
  EXPECT_TG_THROW(broadcast_to(zeros(Shape{2, 3}), Shape{3}), ShapeError, "broadcast_to", "[2, 3]",
                  "[3]");
}

TEST(Misuse, LossShapeMismatch) {
  const Tensor p = full(Shape{2, 3}, 0.5);
  EXPECT_TG_THROW(nn::mse(p, zeros(Shape{3, 2})), ShapeError, "mse", "[2, 3]", "[3, 2]");
  EXPECT_TG_THROW(nn::half_squared_error(p, zeros(Shape{3})), ShapeError, "half_squared_error",
                  "[2, 3]", "[3]");
}

TEST(Misuse, FromValuesCountMismatch) {
  EXPECT_TG_THROW(from_values({1.0, 2.0, 3.0}, Shape{2, 2}), ShapeError, "[2, 2]", "3");
  EXPECT_TG_THROW(Tensor::from_values({1.0}, Shape{0}), ShapeError, "[0]");
}

TEST(Misuse, RaggedRows) {
  EXPECT_TG_THROW(tensor({{1.0, 2.0}, {3.0}}), ShapeError, "tensor", "2", "1");
  EXPECT_TG_THROW(tensor({{1.0}, {2.0, 3.0, 4.0}}), ShapeError, "tensor", "1", "3");
}

// ---------------------------------------------------------------------------------------------
// Axes

TEST(Misuse, BadAxisInReductionsAndSoftmax) {
  const Tensor x = zeros(Shape{2, 3});
  EXPECT_TG_THROW(sum(x, 2), AxisError, "sum", "[2, 3]", "2");
  EXPECT_TG_THROW(sum(x, -3), AxisError, "sum", "[2, 3]", "-3");
  EXPECT_TG_THROW(mean(x, 5), AxisError, "mean", "[2, 3]", "5");
  EXPECT_TG_THROW(max(x, 2, true), AxisError, "max", "[2, 3]", "2");
  EXPECT_TG_THROW(softmax(x, 2), AxisError, "softmax", "[2, 3]", "2");
  EXPECT_TG_THROW(softmax(x, -3), AxisError, "softmax", "[2, 3]", "-3");
  EXPECT_TG_THROW(log_softmax(x, 7), AxisError, "log_softmax", "[2, 3]", "7");
  EXPECT_TG_THROW(logsumexp(x, -4), AxisError, "logsumexp", "[2, 3]", "-4");
  // A scalar has no axes at all.
  EXPECT_TG_THROW(sum(scalar(1.0), 0), AxisError, "sum", "[]");
  EXPECT_TG_THROW(softmax(scalar(1.0)), AxisError, "softmax", "[]");
  EXPECT_TG_THROW(zeros(Shape{2}).shape().normalize_axis(1, "my_op"), AxisError, "my_op", "[2]");
}

TEST(Misuse, EmptyAxis) {
  const Tensor x = zeros(Shape{2, 0});
  EXPECT_TG_THROW(softmax(x, 1), ShapeError, "softmax", "[2, 0]");
  EXPECT_TG_THROW(log_softmax(x, 1), ShapeError, "log_softmax", "[2, 0]");
  EXPECT_TG_THROW(logsumexp(x, -1), ShapeError, "logsumexp", "[2, 0]");
  EXPECT_TG_THROW(max(x, 1), ShapeError, "max", "[2, 0]");
  EXPECT_TG_THROW(mean(x, 1), ShapeError, "mean", "[2, 0]");
  EXPECT_TG_THROW(max(zeros(Shape{0})), ShapeError, "max", "[0]");
  EXPECT_TG_THROW(mean(zeros(Shape{0})), ShapeError, "mean", "[0]");
  // Summing nothing is fine: 0.
  const Tensor s = sum(x, 1);
  ASSERT_EQ(s.numel(), 2u);
  EXPECT_EQ(s.values()[0], 0.0);
  EXPECT_EQ(s.values()[1], 0.0);
  EXPECT_EQ(sum(zeros(Shape{0})).item(), 0.0);
}

// ---------------------------------------------------------------------------------------------
// Values

TEST(Misuse, ClassIndexOutOfRange) {
  EXPECT_TG_THROW(one_hot(tensor({0.0, 3.0}), 3), ValueError, "one_hot", "3");
  EXPECT_TG_THROW(one_hot(tensor({-1.0, 0.0}), 3), ValueError, "one_hot", "-1");
  EXPECT_TG_THROW(one_hot(tensor({0.5}), 3), ValueError, "one_hot", "0.5");
  const Tensor prob = full(Shape{2, 3}, 1.0 / 3);
  EXPECT_TG_THROW(nn::cross_entropy(prob, tensor({0.0, 5.0})), ValueError, "cross_entropy", "5");
  EXPECT_TG_THROW(nn::cross_entropy(prob, tensor({-2.0, 0.0})), ValueError, "cross_entropy", "-2");
  EXPECT_TG_THROW(nn::cross_entropy_with_logits(zeros(Shape{2, 3}), tensor({3.0, 0.0})), ValueError,
                  "cross_entropy_with_logits", "3");
}

TEST(Misuse, CrossEntropyTargetsOfWrongShape) {
  const Tensor prob = full(Shape{2, 3}, 1.0 / 3);
  EXPECT_TG_THROW(nn::cross_entropy(prob, tensor({0.0, 1.0, 2.0})), ShapeError, "cross_entropy",
                  "[2, 3]", "[3]");
  EXPECT_TG_THROW(nn::cross_entropy_with_logits(zeros(Shape{2, 3}), zeros(Shape{2, 4})), ShapeError,
                  "cross_entropy_with_logits", "[2, 3]", "[2, 4]");
}

TEST(Misuse, ProbabilityLossesGivenLogits) {
  const Tensor logits = tensor({{2.0, -1.0, 0.5}, {0.1, 3.0, -2.0}});
  const Tensor onehot = one_hot(tensor({0.0, 1.0}), 3);
  EXPECT_TG_THROW(nn::cross_entropy(logits, onehot), ValueError, "cross_entropy",
                  "cross_entropy_with_logits");
  EXPECT_TG_THROW(nn::cross_entropy(logits, tensor({0.0, 1.0})), ValueError, "cross_entropy",
                  "cross_entropy_with_logits");
  EXPECT_TG_THROW(nn::binary_cross_entropy(tensor({0.5, 1.5}), tensor({0.0, 1.0})), ValueError,
                  "binary_cross_entropy", "bce_with_logits");
  EXPECT_TG_THROW(nn::binary_cross_entropy(tensor({-0.25}), tensor({1.0})), ValueError,
                  "binary_cross_entropy", "bce_with_logits");
  // The edges 0 and 1 are valid probabilities: a large finite loss, not an error.
  const Tensor edge = nn::binary_cross_entropy(tensor({0.0, 1.0}), tensor({1.0, 0.0}));
  EXPECT_NEAR(edge.item(), 100.0, 1e-9);
}

TEST(Misuse, OutsideTheDomain) {
  EXPECT_TG_THROW(log(tensor({1.0, -1.0})), ValueError, "log", "-1", "[2]");
  EXPECT_TG_THROW(sqrt(tensor({-0.5})), ValueError, "sqrt", "-0.5", "[1]");
  EXPECT_TG_THROW(pow(tensor({4.0, -2.0}), 0.5), ValueError, "pow", "-2", "[2]");
  // Integer exponents of negatives are real; ln 0 is -inf, as the header says.
  EXPECT_EQ(pow(tensor({-2.0}), 3.0).item(), -8.0);
  EXPECT_EQ(log(tensor({0.0})).item(), -std::numeric_limits<double>::infinity());
}

TEST(Misuse, ClampLowAboveHigh) {
  EXPECT_TG_THROW(clamp(zeros(Shape{2}), 1.0, 0.0), ValueError, "clamp", "1", "0");
  // low == high is allowed.
  EXPECT_EQ(clamp(tensor({5.0, -5.0}), 2.0, 2.0).values()[1], 2.0);
}

TEST(Misuse, ItemAndAt) {
  EXPECT_TG_THROW(zeros(Shape{2, 3}).item(), ValueError, "item", "[2, 3]");
  EXPECT_TG_THROW(zeros(Shape{0}).item(), ValueError, "item", "[0]");
  EXPECT_EQ(zeros(Shape{1, 1}).item(), 0.0);
  EXPECT_TG_THROW(zeros(Shape{2, 3}).at({2, 0}), ValueError, "at", "[2, 3]");
  EXPECT_TG_THROW(zeros(Shape{2, 3}).at({0}), ValueError, "at", "[2, 3]");
  EXPECT_TG_THROW(zeros(Shape{2, 3}).at({0, -1}), ValueError, "at", "[2, 3]");
}

// ---------------------------------------------------------------------------------------------
// The tape and the backward sweep

TEST(Misuse, NonScalarBackwardWithoutSeed) {
  Tape tape;
  const Tensor x = zeros(Shape{2, 3}).requires_grad_();
  const Tensor y = x * 2.0;
  EXPECT_TG_THROW(y.backward(), AutogradError, "backward", "[2, 3]", "seed");
  EXPECT_TG_THROW(backward(y), AutogradError, "backward", "[2, 3]", "seed");
  EXPECT_TG_THROW(grad(y, {x}), AutogradError, "grad", "[2, 3]", "seed");
  EXPECT_FALSE(x.grad().defined());
}

TEST(Misuse, SeedOfWrongShape) {
  Tape tape;
  const Tensor x = zeros(Shape{2, 3}).requires_grad_();
  const Tensor y = x * 2.0;
  EXPECT_TG_THROW(y.backward(zeros(Shape{3, 2})), ShapeError, "backward", "[2, 3]", "[3, 2]");
  EXPECT_TG_THROW(y.backward(zeros(Shape{3})), ShapeError, "backward", "[2, 3]", "[3]");
  const Tensor s = sum(y);
  EXPECT_TG_THROW(s.backward(zeros(Shape{2})), ShapeError, "backward", "[]", "[2]");
  const std::vector<Tensor> outs = {y};
  const std::vector<Tensor> ins = {x};
  const std::vector<Tensor> seeds = {zeros(Shape{6})};
  EXPECT_TG_THROW(grad(outs, ins, seeds), ShapeError, "grad", "[2, 3]", "[6]");
  EXPECT_FALSE(x.grad().defined());
}

TEST(Misuse, BackwardThroughClearedTape) {
  Tape tape;
  const Tensor x = tensor({1.0, 2.0}).requires_grad_();
  const Tensor y = sum(x * x);
  tape.clear();
  EXPECT_TG_THROW(y.backward(), AutogradError, "backward", "cleared");
  EXPECT_TG_THROW(grad(y, {x}), AutogradError, "grad", "cleared");
  // Recording a new op on it is refused too, naming that op.
  EXPECT_TG_THROW(y * 2.0, AutogradError, "mul", "cleared");
  EXPECT_FALSE(x.grad().defined());
  // The value is still there.
  EXPECT_EQ(y.item(), 5.0);
}

TEST(Misuse, BackwardThroughDestroyedTape) {
  const Tensor x = tensor({1.0, 2.0}).requires_grad_();
  Tensor y;
  {
    Tape tape;
    y = sum(exp(x));
  }
  EXPECT_TG_THROW(y.backward(), AutogradError, "backward", "destroyed");
  EXPECT_TG_THROW(grad(y, {x}), AutogradError, "grad", "destroyed");
  {
    Tape another;
    EXPECT_TG_THROW(y + 1.0, AutogradError, "add", "destroyed");
  }
  EXPECT_FALSE(x.grad().defined());
}

TEST(Misuse, TensorFromAnotherTape) {
  Tape outer;
  const Tensor x = scalar(2.0).requires_grad_();
  const Tensor y = x * x;  // on `outer`
  Tape inner;
  EXPECT_TG_THROW(y * 3.0, AutogradError, "mul", "tape");
}

TEST(Misuse, GradOfNonLeaf) {
  Tape tape;
  const Tensor x = tensor({1.0}).requires_grad_();
  Tensor y = exp(x);
  EXPECT_TG_THROW(y.grad(), AutogradError, "grad", "leaf", "tapegrad::grad");
  EXPECT_TG_THROW(y.requires_grad_(false), AutogradError, "requires_grad_", "leaf");
  EXPECT_TG_THROW(y.mutable_values(), AutogradError, "mutable_values", "exp");
}

TEST(Misuse, BackwardOnTensorThatDoesNotRequireGrad) {
  Tape tape;
  const Tensor c = scalar(3.0);
  EXPECT_TG_THROW(c.backward(), AutogradError, "backward", "requires_grad");
  EXPECT_TG_THROW(sum(c * c).backward(), AutogradError, "backward", "requires_grad");
  // No tape at all: nothing was recorded, so there is nothing to differentiate.
  Tensor y;
  {
    NoGradGuard no_grad;
    y = sum(tensor({1.0}).requires_grad_() * 2.0);
  }
  EXPECT_TG_THROW(y.backward(), AutogradError, "backward", "requires_grad");
}

TEST(Misuse, GradWithRespectToUnusedOrConstantInput) {
  Tape tape;
  const Tensor x = tensor({1.0}).requires_grad_();
  const Tensor w = tensor({1.0}).requires_grad_();
  const Tensor loss = sum(x * 2.0);
  EXPECT_TG_THROW(grad(loss, {w}), AutogradError, "grad", "allow_unused");
}

TEST(Misuse, BackwardOnAnUnreducedLoss) {
  // Reduction::none keeps one loss per sample; forgetting to reduce it is the classic mistake.
  Tape tape;
  const Tensor logits = zeros(Shape{2, 3}).requires_grad_();
  const Tensor per_sample =
      nn::cross_entropy_with_logits(logits, tensor({0.0, 2.0}), nn::Reduction::none);
  EXPECT_TG_THROW(per_sample.backward(), AutogradError, "backward", "[2]", "seed", "mean");
  EXPECT_TG_THROW(per_sample.item(), ValueError, "item", "[2]", "2 elements");
  mean(per_sample).backward();  // the fix
  EXPECT_TRUE(logits.grad().defined());
}

TEST(Misuse, BackwardAgainAfterTheTapeWasCleared) {
  Tape tape;
  const Tensor x = tensor({1.0, 2.0}).requires_grad_();
  const Tensor loss = sum(x * x);
  loss.backward();
  loss.backward();  // allowed: the tape keeps its nodes, gradients accumulate (4, 8)
  EXPECT_EQ(x.grad().values()[1], 8.0);
  tape.clear();  // end of the training step
  EXPECT_TG_THROW(loss.backward(), AutogradError, "backward", "[]", "'sum'", "cleared",
                  "Tape scope");
  // The failed call changed nothing.
  EXPECT_EQ(x.grad().values()[0], 4.0);
  EXPECT_EQ(x.grad().values()[1], 8.0);
}

TEST(Misuse, KeepingALossFromAPreviousStep) {
  // A running loss kept across steps, each step with its own Tape: adding the old (recorded)
  // loss to the new one tries to join two tapes, one of them gone.
  const Tensor w = tensor({0.5, -1.0}).requires_grad_();
  Tensor running;
  for (int step = 0; step < 2; ++step) {
    Tape tape;
    const Tensor loss = sum(w * w);
    if (step == 0) {
      running = loss;
    } else {
      EXPECT_TG_THROW(running + loss, AutogradError, "add", "input 0", "'sum'", "destroyed",
                      ".detach()");
      const Tensor fixed = running.detach() + loss;  // the hint works
      EXPECT_EQ(fixed.item(), 2.5);
    }
  }
}

TEST(Misuse, ReadingAGradientBeforeAnyBackward) {
  const Tensor w = zeros(Shape{2, 2}).requires_grad_();
  const Tensor g = w.grad();
  EXPECT_FALSE(g.defined());
  EXPECT_TG_THROW(g.values(), AutogradError, "undefined", "grad()", "backward");
  EXPECT_TG_THROW(g + 1.0, AutogradError, "undefined");
  EXPECT_TG_THROW(Tensor().shape(), AutogradError, "undefined", "default-constructed");
}

TEST(Misuse, SetGradOfTheWrongShape) {
  Tensor w = zeros(Shape{3, 2}).requires_grad_();
  EXPECT_TG_THROW(w.set_grad(zeros(Shape{2, 3})), ShapeError, "set_grad", "[2, 3]", "[3, 2]");
  EXPECT_TG_THROW(w.set_grad(zeros(Shape{6})), ShapeError, "set_grad", "[6]", "[3, 2]");
  EXPECT_FALSE(w.grad().defined());
  w.set_grad(ones(Shape{3, 2}));  // the right shape works; undefined clears it
  EXPECT_TRUE(w.grad().defined());
  w.set_grad(Tensor());
  EXPECT_FALSE(w.grad().defined());
}

TEST(Misuse, MarkingAComputedTensorAsAParameter) {
  // w = base * 0.01 computed from a parameter is a tape result, not a new parameter.
  Tape tape;
  const Tensor base = ones(Shape{2, 2}).requires_grad_();
  Tensor w = base * 0.01;
  EXPECT_TG_THROW(w.requires_grad_(), AutogradError, "requires_grad_", "'mul'", "[2, 2]", "leaf",
                  "detach().requires_grad_()");
  EXPECT_TRUE(w.detach().requires_grad_().is_leaf());
  // With no input requiring grad nothing is recorded, so the same line makes a plain leaf.
  EXPECT_TRUE((ones(Shape{2}) * 0.01).requires_grad_().requires_grad());
}

TEST(Misuse, WritingIntoARecordedResult) {
  Tape tape;
  const Tensor x = tensor({1.0, 2.0}).requires_grad_();
  Tensor loss = sum(x * x);
  EXPECT_TG_THROW(loss.mutable_values()[0] = 0.0, AutogradError, "mutable_values", "'sum'", "[]",
                  "saved for backward", "detach()");
  EXPECT_EQ(loss.item(), 5.0);
}

TEST(Misuse, CreateGraphOutsideTheOutputsTapeScope) {
  Tape outer;
  const Tensor x = tensor({1.0, 2.0}).requires_grad_();
  const Tensor y = sum(x * x * x);
  {
    Tape inner;  // e.g. a helper that opened its own tape
    EXPECT_TG_THROW(y.backward({.create_graph = true}), AutogradError, "backward", "create_graph",
                    "same Tape scope");
    EXPECT_TG_THROW(grad(y, {x}, {.create_graph = true}), AutogradError, "grad", "create_graph");
  }
  EXPECT_FALSE(x.grad().defined());
  // Back in the outputs' scope it works.
  const Tensor g = grad(y, {x}, {.create_graph = true})[0];
  EXPECT_FALSE(g.is_leaf());
}

TEST(Misuse, SeedCountDiffersFromOutputCount) {
  Tape tape;
  const Tensor x = tensor({1.0, 2.0}).requires_grad_();
  const std::vector<Tensor> outs = {x * 2.0, x * 3.0};
  const std::vector<Tensor> ins = {x};
  const std::vector<Tensor> seeds = {ones(Shape{2})};
  EXPECT_TG_THROW(grad(outs, ins, seeds), AutogradError, "grad", "1 seed gradients", "2 outputs");
}

TEST(Misuse, GradientAcrossTwoTapes) {
  Tape outer;
  const Tensor x = tensor({1.0, 2.0}).requires_grad_();
  const Tensor y_outer = sum(x * x);
  Tape inner;
  const Tensor y_inner = sum(x * 3.0);
  const std::vector<Tensor> outs = {y_outer, y_inner};
  const std::vector<Tensor> ins = {x};
  EXPECT_TG_THROW(grad(outs, ins), AutogradError, "grad", "different tape", "one Tape scope");
  // The gradient with respect to a result recorded on the other tape.
  EXPECT_TG_THROW(grad(y_inner, {y_outer}), AutogradError, "grad", "input 0", "[]",
                  "different tape");
}

TEST(Misuse, AnomalyModeFindsAnInfinityAndNamesTheLine) {
  AnomalyGuard anomaly;
  Tape tape;
  // A probability that underflowed to 0, then log: -inf in the forward pass.
  const Tensor p = tensor({0.0, 0.5}).requires_grad_();
  EXPECT_TG_THROW(log(p), AnomalyError, "log", "-inf", "flat index 0", "[2]", "test_misuse.cpp");
  // sqrt at 0 is fine forwards, but its gradient 1 / (2 sqrt(0)) is infinite.
  const Tensor x = tensor({0.0, 4.0}).requires_grad_();
  const Tensor loss = sum(sqrt(x));
  EXPECT_TG_THROW(loss.backward(), AnomalyError, "sqrt", "anomaly in backward", "inf", "[2]",
                  "test_misuse.cpp");
}

TEST(Misuse, DrawingTheGraphAfterTheTapeWasCleared) {
  Tape tape;
  const Tensor x = tensor({1.0}).requires_grad_();
  const Tensor loss = sum(exp(x));
  EXPECT_NE(to_dot(loss).find("exp"), std::string::npos);
  EXPECT_TG_THROW(write_dot(loss, "/nonexistent-dir/graph.dot"), ValueError, "write_dot",
                  "/nonexistent-dir/graph.dot");
  tape.clear();
  EXPECT_TG_THROW(to_dot(loss), AutogradError, "to_dot", "'sum'", "cleared", "before the tape");
}

// ---------------------------------------------------------------------------------------------
// Checking derivatives

TEST(Misuse, GradcheckWithNoInputRequiringGrad) {
  const Tensor x = tensor({0.5, -0.5});  // forgot .requires_grad_()
  const Function f = [](const std::vector<Tensor>& in) { return sum(sigmoid(in[0])); };
  EXPECT_TG_THROW(gradcheck(f, {x}), ValueError, "gradcheck", "no input requires grad",
                  ".requires_grad_()");
  EXPECT_TG_THROW(gradgradcheck(f, {x}), ValueError, "gradgradcheck", "no input requires grad",
                  ".requires_grad_()");
  const GradientFunction closed = [](const std::vector<Tensor>& in) {
    const Tensor s = sigmoid(in[0]);
    return std::vector<Tensor>{s * (1.0 - s)};
  };
  EXPECT_TG_THROW(check_gradient(f, closed, {x}, {.print = false}), ValueError, "check_gradient",
                  "no input requires grad", ".requires_grad_()");
}

TEST(Misuse, CheckGradientWithAWrongClosedForm) {
  const Tensor w = tensor({0.5, -0.5}).requires_grad_();
  const Tensor b = scalar(0.1).requires_grad_();
  const Function f = [](const std::vector<Tensor>& in) { return sum(sigmoid(in[0] + in[1])); };
  const GradientFunction too_few = [](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{in[0]};
  };
  EXPECT_TG_THROW(check_gradient(f, too_few, {w, b}, {.print = false}), ShapeError,
                  "check_gradient", "1 gradients for 2 inputs");
  const GradientFunction summed_b = [](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{in[0], zeros(Shape{2})};  // b's gradient not summed to []
  };
  EXPECT_TG_THROW(check_gradient(f, summed_b, {w, b}, {.names = {"w", "b"}, .print = false}),
                  ShapeError, "check_gradient", "of b", "[2] vs []");
  const Function vector_f = [](const std::vector<Tensor>& in) { return sigmoid(in[0]); };
  const GradientFunction shaped = [](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{zeros_like(in[0]), zeros_like(in[1])};
  };
  EXPECT_TG_THROW(check_gradient(vector_f, shaped, {w, b}, {.print = false}), ValueError,
                  "check_gradient", "scalar", "[2]");
}

TEST(Misuse, HessianOfANonScalar) {
  const Tensor x = tensor({0.1, 0.2, 0.3});
  const TensorFunction vector_f = [](const Tensor& z) { return softmax(z); };
  EXPECT_TG_THROW(hessian(vector_f, x), ValueError, "hessian", "scalar", "[3]", "jacobian()");
  EXPECT_TG_THROW(hvp(vector_f, x, ones(Shape{3})), ValueError, "hvp", "scalar", "[3]");
  const TensorFunction scalar_f = [](const Tensor& z) { return sum(z * z * z); };
  EXPECT_TG_THROW(hvp(scalar_f, x, ones(Shape{2})), ShapeError, "hvp", "[2] vs [3]");
  EXPECT_EQ(hessian(scalar_f, x).shape(), (Shape{3, 3}));
}

// ---------------------------------------------------------------------------------------------
// Losses and labels

TEST(Misuse, RegressionTargetOfTheWrongShape) {
  // A [N, 1] prediction against a [N] target: broadcasting would give an [N, N] loss.
  const Tensor pred = zeros(Shape{4, 1});
  const Tensor target = zeros(Shape{4});
  EXPECT_TG_THROW(nn::mse(pred, target), ShapeError, "mse", "[4, 1] vs [4]", "reshape", "[4, 1]");
  EXPECT_TG_THROW(nn::bce_with_logits(pred, target), ShapeError, "bce_with_logits", "[4, 1]", "[4]",
                  "reshape");
  EXPECT_TG_THROW(nn::binary_cross_entropy(full(Shape{4, 1}, 0.5), target), ShapeError,
                  "binary_cross_entropy", "[4, 1]", "[4]");
  EXPECT_TG_THROW(nn::mse(pred, zeros(Shape{3})), ShapeError, "mse", "[4, 1] vs [3]",
                  "one value per prediction element");
}

TEST(Misuse, ClassLabelsOfTheWrongLayout) {
  const Tensor logits = zeros(Shape{2, 3});
  // Labels read as a column [N, 1] instead of [N].
  EXPECT_TG_THROW(nn::cross_entropy_with_logits(logits, tensor({{0.0}, {2.0}})), ShapeError,
                  "cross_entropy_with_logits", "[2, 3] vs [2, 1]", "class indices",
                  "reshape them to [2]");
  // Non-integer labels (e.g. normalised along with the images).
  EXPECT_TG_THROW(nn::cross_entropy_with_logits(logits, tensor({0.0, 1.5})), ValueError,
                  "cross_entropy_with_logits", "1.5", "[0, 3)", "[2, 3]", "[2]");
  EXPECT_TG_THROW(nn::cross_entropy(full(Shape{2, 3}, 1.0 / 3), tensor({0.0, 0.25})), ValueError,
                  "cross_entropy", "0.25");
}

TEST(Misuse, OneHotOfBadLabels) {
  EXPECT_TG_THROW(one_hot(tensor({{0.0}, {1.0}}), 3), ShapeError, "one_hot", "[2, 1]", "[n]");
  EXPECT_TG_THROW(one_hot(tensor({0.0, 1.0}), 0), ValueError, "one_hot", "classes", "0");
  EXPECT_TG_THROW(one_hot(tensor({0.0, 2.5}), 3), ValueError, "one_hot", "2.5", "position 1",
                  "[0, 3)");
  EXPECT_TG_THROW(one_hot(tensor({std::numeric_limits<double>::quiet_NaN()}), 3), ValueError,
                  "one_hot", "nan");
}

TEST(Misuse, ClassifierWithNoClasses) {
  const Tensor logits = zeros(Shape{2, 0});
  EXPECT_TG_THROW(nn::cross_entropy_with_logits(logits, tensor({0.0, 0.0})), ShapeError,
                  "cross_entropy_with_logits", "[2, 0]", "empty", "at least one class");
  EXPECT_TG_THROW(nn::cross_entropy_with_logits(logits, zeros(Shape{2, 0})), ShapeError,
                  "cross_entropy_with_logits", "[2, 0]");
  EXPECT_TG_THROW(nn::cross_entropy(zeros(Shape{2, 0}), tensor({0.0, 0.0})), ShapeError,
                  "cross_entropy", "[2, 0]");
  EXPECT_TG_THROW(nn::cross_entropy(scalar(0.5), scalar(0.0)), ShapeError, "cross_entropy",
                  "class axis", "[]");
}

// ---------------------------------------------------------------------------------------------
// Layers and modules

TEST(Misuse, LinearGivenTheWrongWidth) {
  Generator gen(0);
  nn::Linear layer(4, 3, gen);
  EXPECT_TG_THROW(layer(zeros(Shape{2, 5})), ShapeError, "Linear(4 -> 3)", "5 features",
                  "expected 4", "[2, 5] vs [3, 4]", "previous layer");
  EXPECT_TG_THROW(layer(zeros(Shape{5})), ShapeError, "Linear(4 -> 3)", "[5]");
  // Images not flattened: [N, 28, 28] into a Linear(784 -> 10).
  nn::Linear first(784, 10, gen);
  EXPECT_TG_THROW(first(zeros(Shape{2, 28, 28})), ShapeError, "Linear(784 -> 10)", "[2, 28, 28]",
                  "reshape(x, {batch, -1})");
  EXPECT_TG_THROW(nn::Linear(0, 3, gen), ValueError, "Linear(0 -> 3)", "at least one");
  EXPECT_TG_THROW(nn::Linear(4, -1, false, gen), ValueError, "Linear(4 -> -1");
}

TEST(Misuse, SequentialOfMismatchedLayers) {
  Generator gen(0);
  // The second Linear expects 6 features but the first produces 8.
  nn::Sequential model({std::make_shared<nn::Linear>(4, 8, gen), std::make_shared<nn::ReLU>(),
                        std::make_shared<nn::Linear>(6, 3, gen)});
  EXPECT_TG_THROW(model(zeros(Shape{2, 4})), ShapeError, "Linear(6 -> 3)", "8 features",
                  "expected 6");
  EXPECT_TG_THROW(model.at(3), ValueError, "Sequential(3 modules)", "index 3", "0..2");
  EXPECT_TG_THROW(nn::Sequential().at(0), ValueError, "Sequential(0 modules)", "empty");
  EXPECT_TG_THROW(model.add(nullptr), ValueError, "Sequential(3 modules)", "'3'", "null");
  // A Softmax module with an axis the input does not have.
  nn::Softmax softmax_module(2);
  EXPECT_TG_THROW(softmax_module(zeros(Shape{2, 3})), AxisError, "softmax", "axis 2", "[2, 3]",
                  "-2..1");
}

TEST(Misuse, MLPSizes) {
  Generator gen(0);
  EXPECT_TG_THROW(nn::MLP({784}, nn::Activation::relu, gen), ValueError, "MLP", "[784]",
                  "MLP({2, 4, 1}");
  EXPECT_TG_THROW(nn::MLP({}, nn::Activation::relu, gen), ValueError, "MLP", "[]");
  EXPECT_TG_THROW(nn::MLP({784, 0, 10}, nn::Activation::tanh, gen), ValueError, "MLP",
                  "[784, 0, 10]", "at least 1");
  // The input width is the first size: feeding 28x28 = 784 features to MLP({748, ...}).
  const auto model = nn::MLP({748, 16, 10}, nn::Activation::relu, gen);
  EXPECT_TG_THROW((*model)(zeros(Shape{1, 784})), ShapeError, "Linear(748 -> 16)", "784 features",
                  "expected 748");
}

TEST(Misuse, ParameterByAMisspelledName) {
  Generator gen(0);
  const auto model = nn::MLP({4, 8, 3}, nn::Activation::relu, gen);
  EXPECT_TG_THROW(model->parameter("0.wieght"), ValueError, "Sequential(3 modules)", "'0.wieght'",
                  "0.weight, 0.bias, 2.weight, 2.bias");
  EXPECT_TG_THROW(model->set_parameter("1.weight", zeros(Shape{8, 4})), ValueError, "set_parameter",
                  "'1.weight'", "2.weight");
  EXPECT_TG_THROW(model->set_parameter("0.weight", zeros(Shape{8, 5})), ShapeError, "set_parameter",
                  "'0.weight'", "[8, 5] vs [8, 4]");
  EXPECT_TG_THROW(model->set_parameter("0.bias", Tensor()), ShapeError, "set_parameter",
                  "undefined vs [8]");
}

// A user's own module, exposing registration so the test can misuse it.
class Custom : public nn::Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
  std::string name() const override { return "Custom"; }
  Tensor add_parameter(std::string name, Tensor value) {
    return register_parameter(std::move(name), std::move(value));
  }
  void add_module(std::string name, std::shared_ptr<nn::Module> module) {
    register_module(std::move(name), std::move(module));
  }
};

TEST(Misuse, RegisteringParametersBadly) {
  Custom module;
  module.add_parameter("w", zeros(Shape{2}));
  EXPECT_TG_THROW(module.add_parameter("w", zeros(Shape{2})), ValueError, "Custom", "'w'",
                  "already a parameter");
  EXPECT_TG_THROW(module.add_parameter("layer.w", zeros(Shape{2})), ValueError, "Custom",
                  "'layer.w'", "no '.'");
  EXPECT_TG_THROW(module.add_parameter("", zeros(Shape{2})), ValueError, "Custom", "non-empty");
  Tape tape;
  const Tensor scaled = module.parameter("w") * 2.0;
  EXPECT_TG_THROW(module.add_parameter("v", scaled), ValueError, "Custom", "'v'", "leaf",
                  "the result of 'mul'", "detach()");
  EXPECT_TG_THROW(module.add_module("w", std::make_shared<nn::ReLU>()), ValueError, "Custom", "'w'",
                  "already a parameter");
  EXPECT_TG_THROW(module.add_module("relu", nullptr), ValueError, "Custom", "'relu'", "null");
}

TEST(Misuse, InitialisingABiasWithAFanBasedInitialiser) {
  Generator gen(0);
  EXPECT_TG_THROW(nn::init::xavier_uniform(zeros(Shape{3}), gen), ShapeError, "xavier_uniform",
                  "[3]", "at least 2 dimensions", "tapegrad::uniform");
  EXPECT_TG_THROW(nn::init::kaiming_normal(scalar(0.0), gen), ShapeError, "kaiming_normal", "[]");
  EXPECT_TG_THROW(uniform(Shape{2}, 1.0, -1.0, gen), ValueError, "uniform", "low 1", "high -1");
  EXPECT_TG_THROW(gen.below(0), ValueError, "Generator::below", "0");
}

// ---------------------------------------------------------------------------------------------
// Optimizers and schedules

TEST(Misuse, OptimizerWithNoParameters) {
  // A model made only of activations has nothing to train.
  nn::Sequential activations({std::make_shared<nn::ReLU>(), std::make_shared<nn::Tanh>()});
  EXPECT_TG_THROW(nn::SGD(activations.parameters()), ValueError, "SGD", "empty parameter list",
                  "model->parameters()");
  EXPECT_TG_THROW(nn::Adam({}), ValueError, "Adam", "empty parameter list");
  EXPECT_TG_THROW(nn::AdamW({}), ValueError, "AdamW", "empty parameter list");
}

TEST(Misuse, OptimizerWithANegativeLearningRate) {
  const std::vector<Tensor> params = {zeros(Shape{2}).requires_grad_()};
  EXPECT_TG_THROW(nn::SGD(params, {.lr = -0.1}), ValueError, "SGD", "learning rate", ">= 0",
                  "-0.1");
  EXPECT_TG_THROW(nn::Adam(params, {.lr = std::numeric_limits<double>::quiet_NaN()}), ValueError,
                  "Adam", "learning rate", "nan");
  nn::SGD sgd(params, {.lr = 0.1});
  EXPECT_TG_THROW(sgd.set_learning_rate(-1e-3), ValueError, "SGD", "learning rate", "-0.001");
  EXPECT_EQ(sgd.learning_rate(), 0.1);  // unchanged
}

TEST(Misuse, OptimizerWithBadHyperparameters) {
  const std::vector<Tensor> params = {zeros(Shape{2}).requires_grad_()};
  EXPECT_TG_THROW(nn::Adam(params, {.beta1 = 1.0}), ValueError, "Adam", "beta1", "[0, 1)", "1");
  EXPECT_TG_THROW(nn::Adam(params, {.beta2 = -0.5}), ValueError, "Adam", "beta2", "-0.5");
  EXPECT_TG_THROW(nn::Adam(params, {.eps = -1e-8}), ValueError, "Adam", "eps", "-1e-08");
  EXPECT_TG_THROW(nn::AdamW(params, {.weight_decay = -0.01}), ValueError, "AdamW", "weight_decay",
                  "-0.01");
  EXPECT_TG_THROW(nn::SGD(params, {.momentum = -0.9}), ValueError, "SGD", "momentum", "-0.9");
  EXPECT_TG_THROW(nn::SGD(params, {.nesterov = true}), ValueError, "SGD", "nesterov",
                  "momentum > 0", "momentum 0");
}

TEST(Misuse, OptimizerGivenANonLeaf) {
  Tape tape;
  const Tensor w = ones(Shape{2, 2}).requires_grad_();
  const Tensor scaled = w * 0.5;
  EXPECT_TG_THROW(nn::SGD({w, scaled}), ValueError, "SGD", "parameter 1", "'mul'", "[2, 2]", "leaf",
                  "model->parameters()");
  EXPECT_TG_THROW(nn::Adam({w, Tensor()}), ValueError, "Adam", "parameter 1", "undefined");
}

TEST(Misuse, ScheduleWithBadSettings) {
  nn::SGD sgd({zeros(Shape{1}).requires_grad_()}, {.lr = 0.1});
  EXPECT_TG_THROW(nn::StepLR(sgd, 0), ValueError, "StepLR", "step_size", ">= 1", "0");
  EXPECT_TG_THROW(nn::StepLR(sgd, 10, -0.1), ValueError, "StepLR", "gamma", "-0.1");
  EXPECT_TG_THROW(nn::CosineAnnealingLR(sgd, 0), ValueError, "CosineAnnealingLR", "T_max", "0");
  EXPECT_TG_THROW(nn::CosineAnnealingLR(sgd, 10, -1.0), ValueError, "CosineAnnealingLR", "eta_min",
                  "-1");
}

// ---------------------------------------------------------------------------------------------
// Files: checkpoints and datasets

using Bytes = std::vector<unsigned char>;

// A scratch directory per test, removed afterwards.
class ScratchDir {
 public:
  ScratchDir()
      : path_(std::filesystem::temp_directory_path() /
              fmt::format("tapegrad_misuse_{}_{}", ::getpid(),
                          ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  std::filesystem::path file(const std::string& name) const { return path_ / name; }
  std::filesystem::path write(const std::string& name, const Bytes& bytes) const {
    std::ofstream out(path_ / name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    return path_ / name;
  }

 private:
  std::filesystem::path path_;
};

// An IDX header: 00 00 type ndims, then each dimension big-endian.
Bytes idx_header(unsigned char type, const std::vector<std::uint32_t>& dims) {
  Bytes out = {0, 0, type, static_cast<unsigned char>(dims.size())};
  for (std::uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8)
      out.push_back(static_cast<unsigned char>(d >> shift));
  }
  return out;
}

Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// The values of every parameter, to show a failed load changed nothing.
std::vector<std::vector<double>> snapshot(const io::NamedTensors& named) {
  std::vector<std::vector<double>> out;
  for (const auto& entry : named) {
    out.emplace_back(entry.second.values().begin(), entry.second.values().end());
  }
  return out;
}

TEST(Misuse, LoadingACheckpointWithAMissingTensor) {
  ScratchDir dir;
  Generator gen(1);
  const auto model = nn::MLP({4, 3}, nn::Activation::relu, gen);
  const auto path = dir.file("weights_only.safetensors");
  io::save_safetensors(path, {{"0.weight", model->parameter("0.weight")}});
  io::NamedTensors named = model->named_parameters();
  const auto before = snapshot(named);
  EXPECT_TG_THROW(io::load_into(path, named), io::FormatError, "load_into", path.string(),
                  "missing tensor '0.bias' (shape [3])", "architecture");
  EXPECT_EQ(snapshot(named), before);
}

TEST(Misuse, LoadingACheckpointWithAnExtraTensor) {
  ScratchDir dir;
  Generator gen(1);
  const auto model = nn::MLP({4, 3}, nn::Activation::relu, gen);
  const auto path = dir.file("extra.safetensors");
  io::NamedTensors saved = model->named_parameters();
  saved.emplace_back("optimizer.step", scalar(100.0));
  io::save_safetensors(path, saved);
  io::NamedTensors named = model->named_parameters();
  EXPECT_TG_THROW(io::load_into(path, named), io::FormatError, "load_into", path.string(),
                  "unexpected tensor 'optimizer.step' (shape [])");
}

TEST(Misuse, LoadingACheckpointWithAWronglyShapedTensor) {
  ScratchDir dir;
  Generator gen(1);
  const auto model = nn::MLP({4, 3}, nn::Activation::relu, gen);
  const auto path = dir.file("transposed.safetensors");
  // The weight saved transposed, as [in, out].
  io::save_safetensors(path, {{"0.weight", transpose(model->parameter("0.weight"))},
                              {"0.bias", model->parameter("0.bias")}});
  io::NamedTensors named = model->named_parameters();
  const auto before = snapshot(named);
  EXPECT_TG_THROW(io::load_into(path, named), io::FormatError, "load_into",
                  "tensor '0.weight' has shape [4, 3] in the file but [3, 4] in the model");
  EXPECT_EQ(snapshot(named), before);
}

TEST(Misuse, LoadingACheckpointIntoAnotherArchitecture) {
  ScratchDir dir;
  Generator gen(1);
  const auto small = nn::MLP({4, 8, 3}, nn::Activation::relu, gen);
  const auto path = dir.file("small.safetensors");
  io::save_safetensors(path, small->named_parameters());
  // Wider hidden layer: every mis-shaped tensor is listed, not only the first.
  const auto wide = nn::MLP({4, 16, 3}, nn::Activation::relu, gen);
  io::NamedTensors wide_named = wide->named_parameters();
  EXPECT_TG_THROW(io::load_into(path, wide_named), io::FormatError, "load_into",
                  "'0.weight' has shape [8, 4] in the file but [16, 4]",
                  "'0.bias' has shape [8] in the file but [16]",
                  "'2.weight' has shape [3, 8] in the file but [3, 16]", "architecture");
  // One more layer: its tensors are missing, and 2.* is mis-shaped.
  const auto deep = nn::MLP({4, 8, 8, 3}, nn::Activation::relu, gen);
  io::NamedTensors deep_named = deep->named_parameters();
  const auto before = snapshot(deep_named);
  EXPECT_TG_THROW(io::load_into(path, deep_named), io::FormatError, "load_into",
                  "missing tensor '4.weight' (shape [3, 8])", "missing tensor '4.bias'",
                  "'2.weight' has shape [3, 8] in the file but [8, 8]");
  EXPECT_EQ(snapshot(deep_named), before);
}

TEST(Misuse, LoadingACheckpointThatIsNotThere) {
  ScratchDir dir;
  Generator gen(1);
  const auto model = nn::MLP({4, 3}, nn::Activation::relu, gen);
  io::NamedTensors named = model->named_parameters();
  const auto path = dir.file("typo.safetensor");
  EXPECT_TG_THROW(io::load_into(path, named), io::FormatError, "load_into", path.string(),
                  "cannot open", "No such file");
  EXPECT_TG_THROW(io::read_safetensors(dir.file("")), io::FormatError, "read_safetensors",
                  "not a regular file");
}

TEST(Misuse, SafetensorsHeaderLengthLargerThanTheFile) {
  ScratchDir dir;
  // 8-byte length field says 1000, but only 24 bytes follow (a truncated download).
  Bytes bytes = {0xE8, 0x03, 0, 0, 0, 0, 0, 0};
  bytes.resize(8 + 24, ' ');
  const auto path = dir.write("truncated.safetensors", bytes);
  EXPECT_TG_THROW(io::read_safetensors(path), io::FormatError, "read_safetensors", path.string(),
                  "header length 1000", "24 bytes", "truncated");
  io::NamedTensors none;
  EXPECT_TG_THROW(io::load_into(path, none), io::FormatError, "load_into", "header length 1000");
  // Not a safetensors file at all (a PyTorch .pt zip): the length field is huge.
  const auto zip = dir.write("model.pt", Bytes{'P', 'K', 3, 4, 20, 0, 0, 0, 8, 0});
  EXPECT_TG_THROW(io::read_safetensors(zip), io::FormatError, "read_safetensors", "header length",
                  "not a safetensors file");
}

TEST(Misuse, SavingACheckpointBadly) {
  ScratchDir dir;
  const auto path = dir.file("bad.safetensors");
  const Tensor w = zeros(Shape{2});
  EXPECT_TG_THROW(io::save_safetensors(path, {{"w", w}, {"w", w}}), ValueError, "save_safetensors",
                  path.string(), "'w' appears twice");
  EXPECT_TG_THROW(io::save_safetensors(path, {{"w", Tensor()}}), ValueError, "save_safetensors",
                  "'w' is undefined");
  EXPECT_TG_THROW(io::save_safetensors(path, {{"__metadata__", w}}), ValueError, "save_safetensors",
                  "reserved");
  EXPECT_TG_THROW(io::save_safetensors(path, {{"", w}}), ValueError, "save_safetensors",
                  "empty name");
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TG_THROW(io::save_safetensors(dir.file("no/such/dir/w.safetensors"), {{"w", w}}),
                  io::FormatError, "save_safetensors", "no/such/dir", "temporary");
  // Reading a tensor the file does not hold.
  io::save_safetensors(path, {{"weight", w}});
  EXPECT_TG_THROW(io::read_safetensors(path).at("bias"), ValueError, "SafetensorsFile::at",
                  "'bias'", "'weight'");
}

TEST(Misuse, IdxFileWithALyingDimension) {
  ScratchDir dir;
  // The header claims 3 images of 28x28, the file holds 2.
  const auto short_file =
      dir.write("short.idx", concat(idx_header(0x08, {3, 28, 28}), Bytes(std::size_t{2} * 784, 0)));
  EXPECT_TG_THROW(io::read_idx(short_file), io::FormatError, "read_idx", short_file.string(),
                  "payload is truncated", "[3, 28, 28]", "2352 bytes", "1568");
  // The header claims 1 image, the file holds 2.
  const auto long_file =
      dir.write("long.idx", concat(idx_header(0x08, {1, 28, 28}), Bytes(std::size_t{2} * 784, 0)));
  EXPECT_TG_THROW(io::read_idx(long_file), io::FormatError, "read_idx", long_file.string(),
                  "784 trailing bytes", "[1, 28, 28]");
  // A dimension so large the element count passes the limit.
  const auto huge = dir.write("huge.idx", concat(idx_header(0x08, {60000, 28, 28}), Bytes(16, 0)));
  EXPECT_TG_THROW(io::read_idx(huge, 1000), io::FormatError, "read_idx", "[60000, 28, 28]",
                  "47040000 elements", "limit of 1000");
  // Not an IDX file.
  const auto png = dir.write("image.png", Bytes{0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a});
  EXPECT_TG_THROW(io::read_idx(png), io::FormatError, "read_idx", "bad magic", "89 50 4e 47",
                  "not an IDX file");
}

TEST(Misuse, DatasetFromMismatchedFiles) {
  ScratchDir dir;
  const auto images = dir.write("images.idx", concat(idx_header(0x08, {2, 2, 2}), Bytes(8, 0)));
  const auto labels = dir.write("labels.idx", concat(idx_header(0x08, {3}), Bytes{0, 1, 2}));
  EXPECT_TG_THROW(io::Dataset::from_idx(images, labels), io::FormatError, "Dataset::from_idx",
                  "holds 2 images", "holds 3 labels");
  // Images and labels swapped.
  EXPECT_TG_THROW(io::Dataset::from_idx(labels, images), io::FormatError, "Dataset::from_idx",
                  "rank >= 2", "[3]");
  EXPECT_TG_THROW(io::Dataset::from_idx(images, labels, 0.5, 0.0), ValueError, "Dataset::from_idx",
                  "std 0");
  EXPECT_TG_THROW(io::load_fashion_mnist(dir.file("fashion-mnist"), io::Split::Train),
                  io::FormatError, "load_fashion_mnist", "fashion-mnist", "not a directory",
                  "dataset-fashion-mnist");
  EXPECT_TG_THROW(io::load_fashion_mnist(dir.file(""), io::Split::Test), io::FormatError,
                  "read_idx", "t10k-images-idx3-ubyte.gz", "cannot open");
}

TEST(Misuse, DatasetAndBatchLoaderMisuse) {
  const Tensor images = zeros(Shape{4, 2});
  EXPECT_TG_THROW(io::Dataset(images, zeros(Shape{3})), ShapeError, "Dataset", "[4, 2] vs [3]",
                  "one class index per sample");
  EXPECT_TG_THROW(io::Dataset(zeros(Shape{4, 2, 2}), zeros(Shape{4})), ShapeError, "Dataset",
                  "[4, 2, 2]", "reshape(images, {N, -1})");
  EXPECT_TG_THROW(io::Dataset(images, zeros(Shape{4, 1})), ShapeError, "Dataset", "[4, 1]");
  EXPECT_TG_THROW(io::Dataset(images, Tensor()), ValueError, "Dataset", "defined");
  const io::Dataset data(images, zeros(Shape{4}));
  EXPECT_TG_THROW(data.subset(10), ValueError, "Dataset::subset", "first 10", "of 4");
  const std::vector<std::size_t> picks = {1, 7};
  EXPECT_TG_THROW(data.gather(picks), ValueError, "Dataset::gather", "index 7", "4 samples",
                  "0..3");
  EXPECT_TG_THROW(io::BatchLoader(data, 0, 42), ValueError, "BatchLoader", "batch_size", "0");
}

}  // namespace
