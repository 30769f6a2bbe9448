// Checking a derivation of a function of a vector's components (docs/teaching.md, section
// "Components of a vector: select"). The components are taken with select, the op the tape
// records, so autodiff sees f exactly as written on paper:
//
//   f(x) = x0 e^(x1) + x2^2 tanh(x0)
//   df/dx0 = e^(x1) + x2^2 (1 - tanh^2 x0)
//   df/dx1 = x0 e^(x1)
//   df/dx2 = 2 x2 tanh(x0)
//
// check_gradient puts the hand-derived gradient next to the engine's and finite differences;
// then the same with a common slip (the chain-rule factor of tanh forgotten in df/dx0), which
// must be rejected on that one component. Exit status 0 only when the right derivation passes and
// the slip is caught.
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

int main() {
  using namespace tapegrad;  // NOLINT: the ops read best unqualified
  using Inputs = std::vector<Tensor>;

  const Inputs x = {tensor({0.5, -0.3, 1.2}).requires_grad_()};
  const auto f = [](const Inputs& in) {
    const Tensor x0 = select(in[0], 0, 0);
    const Tensor x1 = select(in[0], 0, 1);
    const Tensor x2 = select(in[0], 0, 2);
    return x0 * exp(x1) + square(x2) * tanh(x0);
  };
  // The derivation, in plain doubles: one tensor of x's shape [3].
  const auto by_hand = [](const Inputs& in, bool slip) {
    const double x0 = in[0].at({0}), x1 = in[0].at({1}), x2 = in[0].at({2});
    const double t = std::tanh(x0);
    const double chain = slip ? 1.0 : 1.0 - t * t;  // d tanh(u)/du, the factor a slip drops
    return Inputs{tensor({std::exp(x1) + x2 * x2 * chain, x0 * std::exp(x1), 2.0 * x2 * t})};
  };

  fmt::print("== f(x) = x0 e^(x1) + x2^2 tanh(x0) at x = (0.5, -0.3, 1.2) ==\n");
  const CheckGradientResult right =
      check_gradient(f, [&](const Inputs& in) { return by_hand(in, false); }, x, {.names = {"x"}});

  fmt::print("\n== the same, with the tanh factor (1 - tanh^2 x0) forgotten in df/dx0 ==\n");
  const CheckGradientResult slip =
      check_gradient(f, [&](const Inputs& in) { return by_hand(in, true); }, x, {.names = {"x"}});

  return right.passed && !slip.passed && slip.elements_failed == 1 ? 0 : 1;
}
