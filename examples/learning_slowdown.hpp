#pragma once
// The learning-slowdown experiment of M. Nielsen, "Neural Networks and Deep Learning", ch. 3:
// one sigmoid neuron a = sigma(w x + b) learns to output y = 0 for the input x = 1 by plain
// gradient descent. With the quadratic cost a confidently wrong start (a near 1) barely moves,
// because dC/dw = (a - y) sigma'(z) x and sigma'(z) is tiny there. With cross-entropy the
// sigma'(z) cancels, dC/dw = (a - y) x, and the worst start learns fastest.
//
// Header-only so that examples/learning_slowdown.cpp prints and plots it and
// tests/test_learning_slowdown.cpp checks it with the same code. Gradients come from the tape;
// nothing here differentiates by hand.
#include <string_view>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace slowdown {

enum class Cost {
  quadratic,      // C = (y - a)^2 / 2                     nn::half_squared_error
  cross_entropy,  // C = -[y ln a + (1 - y) ln(1 - a)]     nn::binary_cross_entropy
};

inline std::string_view cost_name(Cost cost) {
  return cost == Cost::quadratic ? "quadratic" : "cross-entropy";
}

// The state at the start of one epoch: the parameters, the neuron's output and cost, and the
// gradient the tape found for them (the step taken next is w -= eta dC/dw, b -= eta dC/db).
struct EpochRecord {
  int epoch = 0;
  double w = 0.0, b = 0.0;
  double a = 0.0;     // sigma(w x + b)
  double cost = 0.0;  // C(a, y)
  double dC_dw = 0.0;
  double dC_db = 0.0;
};

// One forward pass: the output a = sigma(w x + b) and the cost C(a, y). Records onto the
// current tape when w or b require grad.
struct Forward {
  tapegrad::Tensor a;
  tapegrad::Tensor cost;
};

inline Forward neuron_forward(const tapegrad::Tensor& w, const tapegrad::Tensor& b, double x,
                              double y, Cost cost) {
  const tapegrad::Tensor a = tapegrad::sigmoid(w * x + b);
  const tapegrad::Tensor target = tapegrad::scalar(y);
  return {a, cost == Cost::quadratic ? tapegrad::nn::half_squared_error(a, target)
                                     : tapegrad::nn::binary_cross_entropy(a, target)};
}

// Runs `epochs` steps of gradient descent from (w0, b0) and returns epochs + 1 records: epoch 0
// is the start, epoch e the state after e steps.
inline std::vector<EpochRecord> run_neuron(double w0, double b0, Cost cost, int epochs, double eta,
                                           double x = 1.0, double y = 0.0) {
  tapegrad::Tensor w = tapegrad::scalar(w0).requires_grad_();
  tapegrad::Tensor b = tapegrad::scalar(b0).requires_grad_();

  std::vector<EpochRecord> records;
  records.reserve(static_cast<std::size_t>(epochs) + 1);
  for (int epoch = 0; epoch <= epochs; ++epoch) {
    // One tape per step: it owns this step's intermediates and frees them at the closing brace,
    // so memory stays flat however many epochs run.
    tapegrad::Tape tape;
    const Forward f = neuron_forward(w, b, x, y, cost);
    w.zero_grad();  // backward() accumulates into grad(); start each step from nothing
    b.zero_grad();
    f.cost.backward();

    const EpochRecord record{epoch,         w.item(),        b.item(),       f.a.item(),
                             f.cost.item(), w.grad().item(), b.grad().item()};
    records.push_back(record);

    // Plain gradient descent on the leaves' values (no op, so nothing is recorded).
    if (epoch < epochs) {
      w.mutable_values()[0] -= eta * record.dC_dw;
      b.mutable_values()[0] -= eta * record.dC_db;
    }
  }
  return records;
}

}  // namespace slowdown
