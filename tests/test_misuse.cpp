// Misuse: every user mistake is a specific tapegrad::Error whose message names the op and the
// shapes involved (formatted "[2, 3]"), never a crash or a silent NaN.
#include <gtest/gtest.h>

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
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/nn/losses.hpp"
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
  // Not matrices.
  EXPECT_TG_THROW(matmul(zeros(Shape{3}), zeros(Shape{3, 2})), ShapeError, "matmul", "[3]");
  EXPECT_TG_THROW(matmul(zeros(Shape{2, 3}), zeros(Shape{2, 3, 4})), ShapeError, "matmul",
                  "[2, 3, 4]");
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

}  // namespace
