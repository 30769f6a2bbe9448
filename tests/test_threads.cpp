// Threads: the tape, grad mode and anomaly mode are per thread. Two threads training two models
// at once give exactly (bit for bit) the results of training them one after the other, and what
// one thread sets up (a Tape, a NoGradGuard, an AnomalyGuard) is invisible on another.
// Meant to run under ThreadSanitizer too: ./scripts/test --sanitize=thread.
#include <gtest/gtest.h>

#include <barrier>
#include <bit>
#include <cstdint>
#include <exception>
#include <functional>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tapegrad/core/autograd.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/random.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/core/tensor.hpp"
#include "tapegrad/nn/layers.hpp"
#include "tapegrad/nn/losses.hpp"
#include "tapegrad/nn/optim.hpp"
#include "tapegrad/ops/binary.hpp"
#include "tapegrad/ops/matmul.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/unary.hpp"

namespace {

using namespace tapegrad;  // NOLINT

// Everything a training run produces, as raw bits: the loss of every step and the final values
// of every parameter. Equal bits mean the two runs did exactly the same arithmetic.
struct TrainingRun {
  std::vector<std::uint64_t> losses;
  std::vector<std::uint64_t> parameters;
  bool operator==(const TrainingRun&) const = default;
};

std::vector<std::uint64_t> bits(std::span<const double> values) {
  std::vector<std::uint64_t> out;
  out.reserve(values.size());
  for (double v : values) out.push_back(std::bit_cast<std::uint64_t>(v));
  return out;
}

enum class Task { classify_with_sgd, regress_with_adam };

// A small MLP trained on synthetic data, everything drawn from `seed`, each step on a fresh Tape.
TrainingRun train(Task task, std::uint64_t seed, int steps) {
  Generator gen(seed);
  const bool classify = task == Task::classify_with_sgd;
  const std::int64_t n = 32, features = 5, outputs = classify ? 3 : 1;
  const auto model =
      nn::MLP({features, 16, outputs}, classify ? nn::Activation::tanh : nn::Activation::relu, gen);
  const Tensor x = randn(Shape{n, features}, gen);
  // Targets from a fixed random linear map: class = argmax of x M (3 classes), or y = tanh(x m).
  const Tensor map = randn(Shape{features, outputs}, gen);
  const Tensor scores = matmul(x, map);
  Tensor target;
  if (classify) {
    std::vector<double> labels(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      std::int64_t best = 0;
      for (std::int64_t c = 1; c < outputs; ++c) {
        if (scores.at({i, c}) > scores.at({i, best})) best = c;
      }
      labels[static_cast<std::size_t>(i)] = static_cast<double>(best);
    }
    target = from_values(std::move(labels), Shape{n});
  } else {
    target = tanh(scores);
  }

  std::unique_ptr<nn::Optimizer> optimizer;
  if (classify) {
    optimizer =
        std::make_unique<nn::SGD>(model->parameters(), nn::SGDOptions{.lr = 0.1, .momentum = 0.9});
  } else {
    optimizer = std::make_unique<nn::Adam>(model->parameters(), nn::AdamOptions{.lr = 1e-2});
  }

  TrainingRun run;
  for (int step = 0; step < steps; ++step) {
    Tape tape;
    optimizer->zero_grad();
    const Tensor prediction = (*model)(x);
    const Tensor loss =
        classify ? nn::cross_entropy_with_logits(prediction, target) : nn::mse(prediction, target);
    loss.backward();
    optimizer->step();
    run.losses.push_back(std::bit_cast<std::uint64_t>(loss.item()));
  }
  for (const Tensor& p : model->parameters()) {
    const auto b = bits(p.values());
    run.parameters.insert(run.parameters.end(), b.begin(), b.end());
  }
  return run;
}

double loss_of(const TrainingRun& run, std::size_t step) {
  return std::bit_cast<double>(run.losses.at(step));
}

// Runs `bodies` on one thread each, released together, and rethrows the first exception.
void run_concurrently(const std::vector<std::function<void()>>& bodies) {
  std::latch start(static_cast<std::ptrdiff_t>(bodies.size()));
  std::vector<std::exception_ptr> errors(bodies.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      try {
        bodies[i]();
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

constexpr int kSteps = 300;

TEST(Threads, TwoModelsTrainedAtOnceMatchTrainingThemOneAfterTheOther) {
  // One after the other, on this thread.
  const TrainingRun sequential_a = train(Task::classify_with_sgd, 1, kSteps);
  const TrainingRun sequential_b = train(Task::regress_with_adam, 2, kSteps);
  // The runs learn something (so the comparison is of real training, not of a stuck loop).
  EXPECT_LT(loss_of(sequential_a, kSteps - 1), 0.5 * loss_of(sequential_a, 0));
  EXPECT_LT(loss_of(sequential_b, kSteps - 1), 0.5 * loss_of(sequential_b, 0));

  // At once, each on its own thread with its own tapes.
  TrainingRun concurrent_a, concurrent_b;
  run_concurrently({[&] { concurrent_a = train(Task::classify_with_sgd, 1, kSteps); },
                    [&] { concurrent_b = train(Task::regress_with_adam, 2, kSteps); }});
  EXPECT_TRUE(concurrent_a == sequential_a) << "the classifier trained differently on a thread";
  EXPECT_TRUE(concurrent_b == sequential_b) << "the regression trained differently on a thread";
}

TEST(Threads, FourThreadsWithTheSameSeedAgreeBitForBit) {
  const TrainingRun reference = train(Task::regress_with_adam, 7, 100);
  std::vector<TrainingRun> runs(4);
  std::vector<std::function<void()>> bodies;
  bodies.reserve(runs.size());
  for (TrainingRun& run : runs)
    bodies.emplace_back([&run] { run = train(Task::regress_with_adam, 7, 100); });
  run_concurrently(bodies);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    EXPECT_TRUE(runs[i] == reference) << "thread " << i;
  }
}

TEST(Threads, ATapeIsNotVisibleOnAnotherThread) {
  Tape main_tape;
  const Tensor w = tensor({1.0, 2.0}).requires_grad_();
  const Tensor on_main = w * 3.0;
  ASSERT_EQ(main_tape.size(), 1u);
  ASSERT_EQ(Tape::current(), &main_tape);

  bool saw_no_tape = false, recorded_nothing = false, own_tape_worked = false;
  std::size_t own_size = 0;
  std::thread worker([&] {
    saw_no_tape = Tape::current() == nullptr;
    // With no tape on this thread nothing is recorded, even though w requires grad.
    const Tensor constant = exp(w * 2.0);
    recorded_nothing = constant.is_leaf() && !constant.requires_grad();
    // A tape of its own records there, and only there.
    Tape own;
    const Tensor loss = sum(w * w);
    own_size = own.size();
    const std::vector<Tensor> g = grad(loss, {w});  // leaves w.grad() alone
    own_tape_worked = Tape::current() == &own && g[0].values()[1] == 4.0;
  });
  worker.join();
  EXPECT_TRUE(saw_no_tape);
  EXPECT_TRUE(recorded_nothing);
  EXPECT_TRUE(own_tape_worked);
  EXPECT_EQ(own_size, 2u);
  EXPECT_EQ(main_tape.size(), 1u) << "the worker recorded onto the main thread's tape";
  EXPECT_EQ(Tape::current(), &main_tape);
  EXPECT_FALSE(w.grad().defined());
}

TEST(Threads, AResultFromAnotherThreadsTapeCannotJoinThisThreadsGraph) {
  // Thread A records y on its tape and waits; thread B, with its own tape, tries to use y.
  std::barrier sync(2);
  Tensor y;
  std::string message_on_b;
  bool b_threw_autograd_error = false;
  std::thread a([&] {
    Tape tape_a;
    const Tensor x = tensor({1.0, 2.0}).requires_grad_();
    y = x * x;
    sync.arrive_and_wait();  // y is ready
    sync.arrive_and_wait();  // B is done with it; only now may tape_a go away
  });
  std::thread b([&] {
    sync.arrive_and_wait();
    Tape tape_b;
    try {
      (void)(y * 2.0);
    } catch (const AutogradError& e) {
      b_threw_autograd_error = true;
      message_on_b = e.what();
    }
    sync.arrive_and_wait();
  });
  a.join();
  b.join();
  EXPECT_TRUE(b_threw_autograd_error);
  EXPECT_NE(message_on_b.find("mul"), std::string::npos) << message_on_b;
  EXPECT_NE(message_on_b.find("different tape"), std::string::npos) << message_on_b;
  EXPECT_NE(message_on_b.find(".detach()"), std::string::npos) << message_on_b;
}

TEST(Threads, NoGradGuardIsPerThread) {
  const Tensor w = tensor({1.0}).requires_grad_();
  bool worker_grad_enabled = false, worker_recorded = false;
  {
    NoGradGuard no_grad;
    ASSERT_FALSE(is_grad_enabled());
    std::thread worker([&] {
      worker_grad_enabled = is_grad_enabled();
      Tape tape;
      worker_recorded = !(w * 2.0).is_leaf();
    });
    worker.join();
    EXPECT_FALSE(is_grad_enabled()) << "the worker's state leaked into this thread";
  }
  EXPECT_TRUE(worker_grad_enabled);
  EXPECT_TRUE(worker_recorded);

  // And the other way round: a guard on the worker leaves this thread recording.
  std::latch guard_set(1), checked(1);
  std::thread worker([&] {
    NoGradGuard no_grad;
    guard_set.count_down();
    checked.wait();
  });
  guard_set.wait();
  EXPECT_TRUE(is_grad_enabled());
  {
    Tape tape;
    EXPECT_FALSE((w * 2.0).is_leaf());
  }
  checked.count_down();
  worker.join();
}

TEST(Threads, AnomalyGuardIsPerThread) {
  bool worker_anomaly_enabled = true, worker_threw = false;
  {
    AnomalyGuard anomaly;
    ASSERT_TRUE(is_anomaly_enabled());
    EXPECT_THROW((void)log(tensor({0.0})), AnomalyError);
    std::thread worker([&] {
      worker_anomaly_enabled = is_anomaly_enabled();
      try {
        (void)log(tensor({0.0}));  // -inf, allowed when anomaly mode is off
      } catch (const AnomalyError&) {
        worker_threw = true;
      }
    });
    worker.join();
  }
  EXPECT_FALSE(worker_anomaly_enabled);
  EXPECT_FALSE(worker_threw);

  // Anomaly mode on the worker only: it throws there, this thread is unaffected.
  bool worker_caught = false;
  std::string message;
  std::thread worker([&] {
    AnomalyGuard anomaly;
    try {
      (void)log(tensor({0.0}));
    } catch (const AnomalyError& e) {
      worker_caught = true;
      message = e.what();
    }
  });
  worker.join();
  EXPECT_TRUE(worker_caught);
  EXPECT_NE(message.find("log"), std::string::npos) << message;
  EXPECT_FALSE(is_anomaly_enabled());
  EXPECT_NO_THROW((void)log(tensor({0.0})));
}

TEST(Threads, ConcurrentInferenceOnASharedModel) {
  // Several threads reading one model at once (serving): forward in no-grad mode, and input
  // gradients (saliency) through each thread's own tape. Only values are read from the shared
  // parameters; their grad() is never touched.
  Generator gen(3);
  const auto model = nn::MLP({6, 12, 2}, nn::Activation::sigmoid, gen);
  std::vector<Tensor> inputs;
  inputs.reserve(4);
  for (int i = 0; i < 4; ++i) inputs.push_back(randn(Shape{8, 6}, gen));

  auto evaluate = [&](const Tensor& x) {
    std::vector<std::uint64_t> out;
    {
      NoGradGuard no_grad;
      const auto y = bits((*model)(x).values());
      out.insert(out.end(), y.begin(), y.end());
    }
    Tape tape;
    const Tensor input = x.detach().requires_grad_();
    const Tensor saliency = grad(sum((*model)(input)), {input})[0];
    const auto s = bits(saliency.values());
    out.insert(out.end(), s.begin(), s.end());
    return out;
  };

  std::vector<std::vector<std::uint64_t>> sequential;
  sequential.reserve(inputs.size());
  for (const Tensor& x : inputs) sequential.push_back(evaluate(x));
  std::vector<std::vector<std::uint64_t>> concurrent(inputs.size());
  std::vector<std::function<void()>> bodies;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    bodies.emplace_back([&, i] {
      for (int repeat = 0; repeat < 20; ++repeat) concurrent[i] = evaluate(inputs[i]);
    });
  }
  run_concurrently(bodies);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_TRUE(concurrent[i] == sequential[i]) << "input " << i;
  }
  for (const Tensor& p : model->parameters()) EXPECT_FALSE(p.grad().defined());
}

}  // namespace
