// Issue 12, core/: each test guards one way the engine used to give a silent wrong answer, corrupt
// its state or crash, and is named after what it guards.
//   1. jacobian, hessian, hvp, gradcheck, gradgradcheck, check_gradient inside a no-grad scope
//   3. a backward that fails part-way writes no leaf gradient (all or nothing)
//   6. under create_graph every leaf gets its own gradient tensor, never the caller's seed
//   7. Shape's element count and byte size are checked; allocation failure is a tapegrad::Error
//   8. tapes destroyed out of scope order, or on another thread
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace {

using namespace tapegrad;  // NOLINT: the ops read best unqualified
using Inputs = std::vector<Tensor>;

// Passes when `f` throws an `E` (or a subclass) whose what() contains every fragment.
template <class E>
::testing::AssertionResult ThrowsWith(const std::function<void()>& f,
                                      const std::vector<std::string>& fragments) {
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
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure()
           << "threw another exception (" << typeid(e).name() << "): " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

std::vector<double> values_of(const Tensor& t) {
  return {t.values().begin(), t.values().end()};
}

// ---------------------------------------------------------------------------------------------
// 1. The derivative tools re-enable grad mode, as torch.autograd.functional does (enable_grad).

// x = [0.5, -1.2, 2.0]; f(x) = x * x * x, so J = diag(3 x^2), H of sum(f) = diag(6 x).
Tensor x_values() {
  return tensor({0.5, -1.2, 2.0});
}

TEST(NoGradScopeClosedForm, JacobianInsideNoGradGuardIsTheJacobian) {
  const auto cube = [](const Tensor& x) { return x * x * x; };
  NoGradGuard no_grad;
  const Tensor J = jacobian(cube, x_values());
  ASSERT_EQ(J.shape(), (Shape{3, 3}));
  const std::vector<double> x = values_of(x_values());
  for (std::size_t i = 0; i < 3; ++i) {
    for (std::size_t j = 0; j < 3; ++j) {
      const double expected = i == j ? 3.0 * x[i] * x[i] : 0.0;
      EXPECT_NEAR(J.values()[i * 3 + j], expected, 1e-14) << "J[" << i << ", " << j << "]";
    }
  }
  EXPECT_FALSE(is_grad_enabled()) << "jacobian did not restore the caller's no-grad mode";
}

TEST(NoGradScopeClosedForm, HessianAndHvpInsideNoGradGuardAreTheSecondDerivative) {
  const auto f = [](const Tensor& x) { return sum(x * x * x); };
  const Tensor v = tensor({1.0, 2.0, -1.0});
  NoGradGuard no_grad;
  const Tensor H = hessian(f, x_values());
  const Tensor Hv = hvp(f, x_values(), v);
  const std::vector<double> x = values_of(x_values());
  for (std::size_t i = 0; i < 3; ++i) {
    for (std::size_t j = 0; j < 3; ++j) {
      EXPECT_NEAR(H.values()[i * 3 + j], i == j ? 6.0 * x[i] : 0.0, 1e-14);
    }
    EXPECT_NEAR(Hv.values()[i], 6.0 * x[i] * v.values()[i], 1e-14);
  }
  EXPECT_FALSE(is_grad_enabled());
}

TEST(NoGradScopeGradCheck, GradcheckAndGradgradcheckInsideNoGradGuardPass) {
  const Function f = [](const Inputs& in) { return sum(sigmoid(in[0]) * in[1]); };
  const Inputs inputs = {tensor({0.3, -0.7}).requires_grad_(), tensor({1.5, 0.2}).requires_grad_()};
  // A disabled scope made with EnableGradGuard(false) is a no-grad scope too.
  for (int scope = 0; scope < 2; ++scope) {
    std::unique_ptr<NoGradGuard> no_grad;
    std::unique_ptr<EnableGradGuard> disabled;
    if (scope == 0) {
      no_grad = std::make_unique<NoGradGuard>();
    } else {
      disabled = std::make_unique<EnableGradGuard>(false);
    }
    const GradcheckResult first = gradcheck(f, inputs);
    EXPECT_TRUE(first.passed) << first.report;
    EXPECT_EQ(first.elements_checked, 4u);
    const GradcheckResult second = gradgradcheck(f, inputs);
    EXPECT_TRUE(second.passed) << second.report;
    EXPECT_FALSE(is_grad_enabled());
  }
}

TEST(NoGradScopeGradCheck, CheckGradientInsideNoGradGuardAcceptsACorrectDerivation) {
  // f(w) = sum(w^2 / 2): the derivation df/dw = w is right, and must be reported as right.
  const Function f = [](const Inputs& in) { return sum(in[0] * in[0]) * 0.5; };
  const GradientFunction by_hand = [](const Inputs& in) { return Inputs{in[0]}; };
  NoGradGuard no_grad;
  const CheckGradientResult r =
      check_gradient(f, by_hand, {tensor({0.4, -2.0}).requires_grad_()}, {.print = false});
  EXPECT_TRUE(r.passed) << r.table;
  EXPECT_NEAR(r.autodiff, r.closed_form, 1e-15) << r.table;
}

// ---------------------------------------------------------------------------------------------
// 3. A backward that fails part-way writes no leaf gradient at all.

TEST(BackwardAllOrNothingMisuse, AStaleLeafGradientFailsTheBackwardBeforeAnyLeafIsWritten) {
  Tensor a = tensor({1.0, 2.0}).requires_grad_();
  Tensor b = tensor({3.0, 4.0}).requires_grad_();
  Tape tape;
  {
    // b.grad() becomes a recorded result (a * 1 under create_graph) on this tape ...
    const Tensor y = sum(a * b);
    y.backward({.create_graph = true});
  }
  ASSERT_FALSE(b.grad().is_leaf());
  tape.clear();  // ... which is then cleared: b's gradient can no longer be added to.
  const Tensor a_before = tensor({10.0, 20.0});
  a.set_grad(a_before);
  const Tensor b_before = b.grad();

  const Tensor y = sum(a * b);
  // a is reached first, so it used to be written before b's accumulation failed.
  EXPECT_TRUE(ThrowsWith<AutogradError>([&] { y.backward({.create_graph = true}); },
                                        {"backward", "cleared"}));
  EXPECT_TRUE(a.grad().same(a_before)) << "a's gradient was written by a failed backward";
  EXPECT_EQ(values_of(a.grad()), (std::vector<double>{10.0, 20.0}));
  EXPECT_TRUE(b.grad().same(b_before)) << "b's gradient was replaced by a failed backward";
}

// ---------------------------------------------------------------------------------------------
// 6. Each leaf's gradient is its own tensor, in every mode.

struct Mode {
  const char* name;
  bool create_graph;
  bool keep_gradients;
  bool trace;
};
const Mode kModes[] = {{"plain", false, false, false},
                       {"create_graph", true, false, false},
                       {"create_graph + keep_gradients", true, true, false},
                       {"create_graph + trace", true, false, true},
                       {"keep_gradients", false, true, false}};

BackwardOptions options_for(const Mode& mode) {
  BackwardOptions options{.create_graph = mode.create_graph};
  if (mode.trace) options.trace = [](std::string_view) {};
  return options;
}

TEST(LeafGradientOwnershipClosedForm, TwoLeavesOfAnAddNeverShareOneGradient) {
  for (const Mode& mode : kModes) {
    SCOPED_TRACE(mode.name);
    Tensor a = tensor({1.0, 2.0}).requires_grad_();
    Tensor b = tensor({3.0, 4.0}).requires_grad_();
    Tape tape;
    tape.keep_gradients(mode.keep_gradients);
    sum(a + b).backward(options_for(mode));
    ASSERT_FALSE(a.grad().same(b.grad())) << "a and b received the same gradient tensor";
    EXPECT_EQ(values_of(a.grad()), (std::vector<double>{1.0, 1.0}));
    a.grad().mutable_values()[0] = 7.0;  // an in-place edit of one gradient ...
    EXPECT_EQ(values_of(b.grad()), (std::vector<double>{1.0, 1.0}))  // ... leaves the other
        << "editing a.grad() changed b.grad()";
  }
}

TEST(LeafGradientOwnershipClosedForm, ALeafNeverReceivesTheCallersSeedObject) {
  for (const Mode& mode : kModes) {
    SCOPED_TRACE(mode.name);
    Tensor a = tensor({1.0, 2.0}).requires_grad_();
    Tensor b = tensor({3.0, 4.0}).requires_grad_();
    Tensor seed = tensor({0.5, -0.5});
    Tape tape;
    tape.keep_gradients(mode.keep_gradients);
    (a + b).backward(seed, options_for(mode));
    EXPECT_FALSE(a.grad().same(seed)) << "a.grad() is the caller's seed object";
    EXPECT_FALSE(b.grad().same(seed)) << "b.grad() is the caller's seed object";
    seed.mutable_values()[0] = 100.0;  // the caller reuses its seed buffer
    EXPECT_EQ(values_of(a.grad()), (std::vector<double>{0.5, -0.5}));
    EXPECT_EQ(values_of(b.grad()), (std::vector<double>{0.5, -0.5}));

    // A leaf output seeded directly: its gradient is the seed's value, not the seed.
    Tensor c = tensor({1.0, 2.0}).requires_grad_();
    const Tensor c_seed = tensor({2.0, 3.0});
    c.backward(c_seed, options_for(mode));
    EXPECT_FALSE(c.grad().same(c_seed));
    EXPECT_EQ(values_of(c.grad()), (std::vector<double>{2.0, 3.0}));
  }
}

TEST(LeafGradientOwnershipClosedForm, SharedRecordedGradientsStayDifferentiable) {
  // L = sum((a + b)^2): dL/da = dL/db = 2 (a + b), one recorded tensor that add's rule hands to
  // both leaves. Each must get its own copy, and each copy must still be differentiable:
  // d sum(a.grad()) / da = d sum(b.grad()) / db = 2 per element.
  Tensor a = tensor({1.0, -2.0}).requires_grad_();
  Tensor b = tensor({0.5, 3.0}).requires_grad_();
  Tape tape;
  const Tensor s = a + b;
  sum(s * s).backward({.create_graph = true});
  ASSERT_FALSE(a.grad().same(b.grad()));
  EXPECT_EQ(values_of(a.grad()), (std::vector<double>{3.0, 2.0}));
  EXPECT_EQ(values_of(b.grad()), (std::vector<double>{3.0, 2.0}));
  ASSERT_TRUE(a.grad().requires_grad());
  const std::vector<Tensor> ga = grad(sum(a.grad()), {a, b});
  const std::vector<Tensor> gb = grad(sum(b.grad()), {a, b});
  for (const Tensor& g : {ga[0], ga[1], gb[0], gb[1]}) {
    EXPECT_EQ(values_of(g), (std::vector<double>{2.0, 2.0}));
  }
}

// ---------------------------------------------------------------------------------------------
// 7. Element counts and byte sizes are checked; allocation failure names the op.

TEST(ShapeSizeMisuse, ShapesWithinTheLimitsKeepTheirElementCount) {
  EXPECT_EQ(Shape({}).numel(), 1u);
  EXPECT_EQ((Shape{2, 3, 4}).numel(), 24u);
  EXPECT_EQ((Shape{2, 3, 4}).bytes(), 192u);
  // An empty shape has no elements whatever its other dimensions (as PyTorch's [0, 2^62, 2^62]).
  const std::int64_t huge = std::int64_t{1} << 62;
  EXPECT_EQ((Shape{0, huge, huge}).numel(), 0u);
  EXPECT_EQ(zeros({huge, 0}).numel(), 0u);
  // The largest count a float64 buffer can hold is accepted; one more is not.
  const auto limit = static_cast<std::int64_t>(Shape::max_numel);
  EXPECT_EQ(Shape{limit}.numel(), Shape::max_numel);
  EXPECT_TRUE(
      ThrowsWith<ShapeError>([&] { Shape{limit + 1}; }, {"[1152921504606846976]", "bytes"}));
}

TEST(ShapeSizeMisuse, AnElementCountThatOverflowsIsAShapeErrorNamingTheShape) {
  const std::int64_t big = std::int64_t{1} << 40;
  EXPECT_TRUE(ThrowsWith<ShapeError>(
      [&] {
        zeros({big, big});
      },
      {"[1099511627776, 1099511627776]", "elements"}));
  const auto three_billion = static_cast<std::int64_t>(3e9);
  EXPECT_TRUE(ThrowsWith<ShapeError>(
      [&] {
        zeros({three_billion, three_billion, three_billion});
      },
      {"[3000000000, 3000000000, 3000000000]"}));
  // Broadcasting two shapes that each fit can make one that does not.
  const std::int64_t half = std::int64_t{1} << 32;
  EXPECT_TRUE(ThrowsWith<ShapeError>(
      [&] {
        broadcast_shapes(Shape{half, 1}, Shape{1, half}, "add");
      },
      {"[4294967296, 4294967296]"}));
}

// Allocation failure: std::bad_alloc becomes a tapegrad::Error naming the op, the shape and the
// bytes. AddressSanitizer's allocator aborts on a failed allocation instead of throwing, so these
// run in the normal build only.
#if defined(__SANITIZE_ADDRESS__)
#define TAPEGRAD_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TAPEGRAD_TEST_ASAN 1
#endif
#endif

TEST(ShapeSizeMisuse, AnImpossibleAllocationIsATapegradErrorNamingOpShapeAndBytes) {
#ifdef TAPEGRAD_TEST_ASAN
  GTEST_SKIP() << "AddressSanitizer aborts on a failed allocation instead of throwing bad_alloc";
#endif
  // 2^59 doubles = 4 EiB: a valid Shape, but no machine maps it.
  const std::int64_t n = std::int64_t{1} << 59;
  EXPECT_TRUE(ThrowsWith<AllocationError>(
      [&] { zeros({n}); }, {"zeros", "[576460752303423488]", "4611686018427387904 bytes"}));
  EXPECT_TRUE(ThrowsWith<AllocationError>([&] { ones({n}); }, {"ones", "[576460752303423488]"}));
  EXPECT_TRUE(ThrowsWith<AllocationError>([&] { full({n}, 2.0); }, {"full"}));
  Generator generator(1);
  EXPECT_TRUE(ThrowsWith<AllocationError>([&] { randn({n}, generator); }, {"randn"}));
  EXPECT_TRUE(ThrowsWith<AllocationError>([&] { rand({n}, generator); }, {"rand"}));
  EXPECT_TRUE(ThrowsWith<AllocationError>(
      [&] {
        allocate_values("my_op", Shape{n, 1});
      },
      {"my_op", "[576460752303423488, 1]"}));
  // broadcast_to, the one core op whose result can be far larger than its input.
  EXPECT_TRUE(ThrowsWith<AllocationError>([&] { broadcast_to(scalar(1.0), Shape{n}); },
                                          {"broadcast_to", "[576460752303423488]"}));
}

// The case, zeros({1 << 33}): 64 GiB. Whether a machine can map that depends on its memory,
// so the process's address space is capped first (4 GiB above what it maps now): the allocation
// then fails everywhere, and never fills a large machine's memory.
TEST(ShapeSizeMisuse, SixtyFourGibibytesBeyondTheAddressSpaceIsATapegradError) {
#ifdef TAPEGRAD_TEST_ASAN
  GTEST_SKIP() << "AddressSanitizer aborts on a failed allocation instead of throwing bad_alloc";
#endif
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_AS, &old), 0);
  std::uint64_t mapped_kb = 0;
  {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("VmSize:", 0) == 0) mapped_kb = std::stoull(line.substr(7));
    }
  }
  ASSERT_GT(mapped_kb, 0u);
  rlimit capped = old;
  capped.rlim_cur = std::min<rlim_t>(old.rlim_max, (mapped_kb << 10) + (rlim_t{4} << 30));
  ASSERT_EQ(setrlimit(RLIMIT_AS, &capped), 0);
  const ::testing::AssertionResult r = ThrowsWith<AllocationError>(
      [] { zeros({std::int64_t{1} << 33}); }, {"zeros", "[8589934592]", "68719476736 bytes"});
  ASSERT_EQ(setrlimit(RLIMIT_AS, &old), 0);
  EXPECT_TRUE(r);
}

// ---------------------------------------------------------------------------------------------
// 8. The thread's tape stack stays correct whatever order tapes are destroyed in.

TEST(TapeLifetimeMisuse, DestroyingTheOuterTapeFirstLeavesTheInnerOneRecording) {
  const Tensor w = scalar(2.0).requires_grad_();
  auto outer = std::make_unique<Tape>();
  auto inner = std::make_unique<Tape>();
  ASSERT_EQ(Tape::current(), inner.get());
  outer.reset();
  ASSERT_EQ(Tape::current(), inner.get()) << "the inner tape is alive and must still record";
  const Tensor y = w * w;
  EXPECT_EQ(inner->size(), 1u);
  y.backward();
  EXPECT_EQ(w.grad().item(), 4.0);
  inner.reset();
  ASSERT_EQ(Tape::current(), nullptr) << "the current tape points at a destroyed tape";
  const Tensor z = w * w;  // used to write into the destroyed outer tape
  EXPECT_FALSE(z.requires_grad());
}

TEST(TapeLifetimeMisuse, DestroyingAMiddleTapeKeepsTheStackInOrder) {
  const Tensor w = scalar(3.0).requires_grad_();
  auto first = std::make_unique<Tape>();
  auto second = std::make_unique<Tape>();
  auto third = std::make_unique<Tape>();
  second.reset();
  ASSERT_EQ(Tape::current(), third.get());
  third.reset();
  ASSERT_EQ(Tape::current(), first.get()) << "destroying the top must fall back past the hole";
  const Tensor y = w * w;
  EXPECT_EQ(first->size(), 1u);
  {
    Tape scoped;  // a scoped tape on top of the heap ones still nests
    ASSERT_EQ(Tape::current(), &scoped);
  }
  ASSERT_EQ(Tape::current(), first.get());
  first.reset();
  ASSERT_EQ(Tape::current(), nullptr);
}

TEST(TapeLifetimeMisuseDeathTest, ATapeDestroyedOnAnotherThreadIsDiagnosed) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto tape = std::make_unique<Tape>();
        std::thread other([&] { tape.reset(); });
        other.join();
      },
      "Tape destroyed on another thread");
}

// ---------------------------------------------------------------------------------------------
// gradcheck and gradgradcheck fail, naming the input, when f does not depend on it.

TEST(UnusedInputGradCheck, GradcheckOfAnFThatIgnoresAnInputFailsNamingIt) {
  const Tensor a = tensor({0.3, -0.7}).requires_grad_();
  const Tensor b = tensor({1.5, 0.2}).requires_grad_();
  // The captured-variable mistake: f uses the outer `a` instead of its argument in[0].
  const Function captured = [&](const Inputs& in) { return sum(a * in[1]); };
  const GradcheckResult r = gradcheck(captured, {a, b});
  EXPECT_FALSE(r.passed) << r.report;
  EXPECT_EQ(r.input, 0u);
  EXPECT_NE(r.report.find("does not depend on input 0 ([2])"), std::string::npos) << r.report;
  EXPECT_NE(r.report.find("allow_unused"), std::string::npos) << r.report;
  // An f that returns a constant depends on nothing.
  const Function constant = [](const Inputs&) { return scalar(1.0); };
  EXPECT_FALSE(gradcheck(constant, {a}).passed);

  // Allowed on request: then the unused input's zero derivatives are compared as usual.
  const GradcheckResult allowed = gradcheck(captured, {a, b}, {.allow_unused = true});
  EXPECT_TRUE(allowed.passed) << allowed.report;
  EXPECT_EQ(allowed.elements_checked, 4u);
  // A correct f still passes, and an input that does not require grad is never "unused".
  const Function right = [](const Inputs& in) { return sum(in[0] * in[1]); };
  EXPECT_TRUE(gradcheck(right, {a, b}).passed);
  EXPECT_TRUE(gradcheck(right, {a, b.detach()}).passed);
}

TEST(UnusedInputGradCheck, ReturningAnInputItselfUsesIt) {
  const Function identity = [](const Inputs& in) { return in[0]; };
  const GradcheckResult r = gradcheck(identity, {tensor({1.0, 2.0}).requires_grad_()});
  EXPECT_TRUE(r.passed) << r.report;
}

TEST(UnusedInputGradCheck, GradgradcheckOfAnFThatIgnoresAnInputFailsNamingIt) {
  const Tensor a = tensor({0.3, -0.7}).requires_grad_();
  const Tensor b = tensor({1.5, 0.2}).requires_grad_();
  const Function captured = [&](const Inputs& in) { return sum(sigmoid(in[0]) * b); };
  const GradcheckResult r = gradgradcheck(captured, {a, b});
  EXPECT_FALSE(r.passed) << r.report;
  EXPECT_EQ(r.input, 1u);
  EXPECT_NE(r.report.find("gradgradcheck FAILED"), std::string::npos) << r.report;
  EXPECT_NE(r.report.find("input 1 ([2])"), std::string::npos) << r.report;
  EXPECT_TRUE(gradgradcheck(captured, {a, b}, {.allow_unused = true}).passed);
  // f linear in b: d f / d b = sigmoid(a) does not depend on b, and that is fine.
  const Function linear = [](const Inputs& in) { return sum(sigmoid(in[0]) * in[1]); };
  const GradcheckResult ok = gradgradcheck(linear, {a, b});
  EXPECT_TRUE(ok.passed) << ok.report;
}

// ---------------------------------------------------------------------------------------------
// One Tape around a whole training loop: said once, clearly, with what to do.

// Restores the process-wide threshold whatever the test does.
struct GrowthWarningThreshold {
  std::size_t saved = tape_growth_warning();
  explicit GrowthWarningThreshold(std::size_t nodes) { set_tape_growth_warning(nodes); }
  ~GrowthWarningThreshold() { set_tape_growth_warning(saved); }
};

std::size_t count_of(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

// `steps` steps of gradient descent on sum((w - 1)^2), 4 nodes a step; `tape_per_step` makes a
// Tape inside the loop, `clear_each_step` clears the outer one, otherwise one Tape holds them all.
void train(int steps, bool tape_per_step, bool clear_each_step) {
  Tensor w = tensor({0.5, -0.5}).requires_grad_();
  std::unique_ptr<Tape> outer = tape_per_step ? nullptr : std::make_unique<Tape>();
  for (int step = 0; step < steps; ++step) {
    std::unique_ptr<Tape> inner = tape_per_step ? std::make_unique<Tape>() : nullptr;
    const Tensor loss = sum(square(w - 1.0));
    loss.backward();
    {
      NoGradGuard no_grad;
      auto values = w.mutable_values();
      for (std::size_t i = 0; i < values.size(); ++i) values[i] -= 0.1 * w.grad().values()[i];
    }
    w.zero_grad();
    if (clear_each_step) outer->clear();
  }
}

TEST(TapeGrowthMisuse, OneTapeAroundATrainingLoopWarnsOnceWithTheFix) {
  const GrowthWarningThreshold threshold(1000);
  ::testing::internal::CaptureStderr();
  train(1000, false, false);  // ~4000 nodes on one tape
  train(1000, false, false);  // a second such loop: still said only once
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(count_of(err, "tapegrad: warning: one Tape holds"), 1u) << err;
  EXPECT_NE(err.find("Make one Tape per step"), std::string::npos) << err;
  EXPECT_NE(err.find("tape.clear()"), std::string::npos) << err;
  EXPECT_NE(err.find("set_tape_growth_warning(0)"), std::string::npos) << err;
}

TEST(TapeGrowthMisuse, PerStepTapesClearedTapesAndOneBigGraphDoNotWarn) {
  const GrowthWarningThreshold threshold(1000);
  ::testing::internal::CaptureStderr();
  train(1000, true, false);  // one Tape per step
  train(1000, false, true);  // one Tape, cleared every step
  {
    // One large graph swept once (a long unrolled computation) is not a loop on one tape.
    Tape tape;
    Tensor x = scalar(0.5).requires_grad_();
    Tensor y = x;
    for (int i = 0; i < 3000; ++i) y = sigmoid(y);
    y.backward();
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, "");
}

TEST(TapeGrowthMisuse, TheReadmeLoopInsideOneTapeWarnsWithTheDefaultThreshold) {
  // The README's example as a loop with its Tape outside: 10 nodes a step, so the default
  // threshold is passed after 1 000 steps.
  const GrowthWarningThreshold threshold(default_tape_growth_warning);
  ::testing::internal::CaptureStderr();
  Generator generator(42);
  const Tensor x = randn({8, 4}, generator);
  const Tensor labels = tensor({0, 2, 1, 1, 0, 2, 1, 0});
  Tensor W = randn({3, 4}, generator).requires_grad_();
  Tensor b = zeros({3}).requires_grad_();
  nn::SGD optimizer({W, b}, {.lr = 0.1});
  Tape tape;
  for (int step = 0; step < 1100; ++step) {
    const Tensor p = softmax(matmul(x, W, {.transpose_b = true}) + b);
    const Tensor loss = nn::cross_entropy(p, labels);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_GT(tape.size(), default_tape_growth_warning);
  EXPECT_EQ(count_of(err, "tapegrad: warning: one Tape holds"), 1u) << err;
}

TEST(TapeGrowthMisuse, ZeroTurnsTheWarningOff) {
  const GrowthWarningThreshold threshold(0);
  ::testing::internal::CaptureStderr();
  train(1000, false, false);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(tape_growth_warning(), 0u);
}

// ---------------------------------------------------------------------------------------------
// The header examples compile and do what they say (check_gradient.hpp, functional.hpp, tape.hpp).

TEST(HeaderExampleClosedForm, CheckGradientExampleAcceptsTheCrossEntropyDerivation) {
  using Tensors = std::vector<tapegrad::Tensor>;
  const tapegrad::Tensor x = tapegrad::scalar(1.0), y = tapegrad::scalar(0.0);
  const tapegrad::Tensor w = tapegrad::scalar(0.6).requires_grad_();
  const tapegrad::Tensor b = tapegrad::scalar(0.9).requires_grad_();
  std::vector<std::string> lines;
  auto result = tapegrad::check_gradient(
      [&](const Tensors& in) {
        return tapegrad::nn::binary_cross_entropy(tapegrad::sigmoid(in[0] * x + in[1]), y);
      },
      [&](const Tensors& in) {  // derived by hand
        const tapegrad::Tensor a = tapegrad::sigmoid(in[0] * x + in[1]);
        return Tensors{(a - y) * x, a - y};
      },
      {w, b}, {.names = {"w", "b"}, .sink = [&](std::string_view l) { lines.emplace_back(l); }});
  EXPECT_TRUE(result.passed) << result.table;
  // The header shows this table.
  ASSERT_EQ(lines.size(), 5u) << result.table;
  EXPECT_EQ(lines[0], "check_gradient: 2 inputs checked, eps 1e-06");
  EXPECT_EQ(lines[2],
            "  w             0.8175744762      0.8175744762      0.8175744759              0       "
            "2.96e-10  ok");
  EXPECT_EQ(lines[4],
            "largest |closed - autodiff| 0 at w, largest |closed - fd| 2.96e-10 at w: passed (2 "
            "elements)");
}

TEST(HeaderExampleClosedForm, RecordExampleMakesAnOpWithItsRule) {
  auto triple = [](const tapegrad::Tensor& x) {
    tapegrad::Values values = tapegrad::allocate_values("triple", x.shape());
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = 3.0 * x.values()[i];
    return tapegrad::record({"triple", "dx = 3 g"}, x.shape(), std::move(values), {x},
                            [](const tapegrad::Tensor& g, const tapegrad::Tensor&, auto) {
                              return tapegrad::TensorList{g * 3.0};
                            });
  };
  const Tensor x = tensor({1.0, 2.0}).requires_grad_();
  const GradcheckResult r = gradcheck([&](const Inputs& in) { return triple(in[0]); }, {x});
  EXPECT_TRUE(r.passed) << r.report;
  const GradcheckResult second =
      gradgradcheck([&](const Inputs& in) { return sum(triple(in[0]) * in[0]); }, {x});
  EXPECT_TRUE(second.passed) << second.report;
}

// one_hot with a huge class count: n * classes used to wrap to a small buffer that the loop then
// wrote past; the checked Shape refuses it first.
TEST(ShapeSizeMisuse, OneHotWithAnOverflowingClassCountIsAShapeError) {
  EXPECT_THROW(one_hot(tensor({0.0, 1.0, 2.0, 3.0}), std::int64_t{1} << 62), ShapeError);
}

}  // namespace
