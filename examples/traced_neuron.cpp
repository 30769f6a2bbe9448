// One sigmoid neuron, the seed document's sections 3 and 4, looked at closely: the tape it
// records, the backward sweep step by step (traced backward), and its gradient under both losses
// checked three ways (closed form, autodiff, finite differences) with check_gradient, including
// the seed's sign slip, which check_gradient must reject. Start of Nielsen's first run: x = 1,
// y = 0, w = 0.6, b = 0.9.
//
//   z = w x + b,  a = sigmoid(z)
//   quadratic  L = 1/2 (a - y)^2                         dL/dw = (a - y) a (1 - a) x
//   cross-entropy  L = -y ln a - (1 - y) ln(1 - a)       dL/dw = (a - y) x
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

int main() {
  using namespace tapegrad;  // NOLINT: the ops read best unqualified
  using Inputs = std::vector<Tensor>;

  const Tensor x = scalar(1.0);
  const Tensor y = scalar(0.0);

  fmt::print("== the neuron a = sigmoid(w x + b), traced backward ==\n");
  {
    Tape tape;
    tape.keep_gradients();
    const Tensor w = scalar(0.6).requires_grad_();
    const Tensor b = scalar(0.9).requires_grad_();
    const Tensor a = sigmoid(add(mul(w, x), b));
    a.backward({.trace = print_trace});
    fmt::print("\n{}", tape);
    fmt::print("da/dw = {}, da/db = {}\n\n", w.grad().item(), b.grad().item());
  }

  const Inputs params = {scalar(0.6).requires_grad_(), scalar(0.9).requires_grad_()};
  const auto neuron = [&](const Inputs& in) { return sigmoid(add(mul(in[0], x), in[1])); };
  // a, computed in plain doubles for the closed forms.
  const auto activation = [&](const Inputs& in) {
    return 1.0 / (1.0 + std::exp(-(in[0].item() * x.item() + in[1].item())));
  };

  fmt::print("== quadratic loss: dL/dw = (a - y) a (1 - a) x ==\n");
  check_gradient([&](const Inputs& in) { return nn::half_squared_error(neuron(in), y); },
                 [&](const Inputs& in) {
                   const double a = activation(in);
                   const double dz = (a - y.item()) * a * (1.0 - a);
                   return Inputs{scalar(dz * x.item()), scalar(dz)};
                 },
                 params, {.names = {"w", "b"}});

  fmt::print("\n== cross-entropy: dL/dw = (a - y) x ==\n");
  check_gradient([&](const Inputs& in) { return nn::binary_cross_entropy(neuron(in), y); },
                 [&](const Inputs& in) {
                   const double a = activation(in);
                   return Inputs{scalar((a - y.item()) * x.item()), scalar(a - y.item())};
                 },
                 params, {.names = {"w", "b"}});

  fmt::print("\n== cross-entropy with the seed's slip, dL/dw = (y - a) x ==\n");
  const CheckGradientResult slip =
      check_gradient([&](const Inputs& in) { return nn::binary_cross_entropy(neuron(in), y); },
                     [&](const Inputs& in) {
                       const double a = activation(in);
                       return Inputs{scalar((y.item() - a) * x.item()), scalar(y.item() - a)};
                     },
                     params, {.names = {"w", "b"}});
  // Exit status 0 only when the slip was caught, so scripts can run this as a check.
  return slip.passed ? 1 : 0;
}
