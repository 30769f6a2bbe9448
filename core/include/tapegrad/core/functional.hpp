#pragma once
// Derivatives as functions: Jacobians, Hessians, Hessian-vector products, and gradgradcheck.
//
// ```cpp
// using tapegrad::Tensor;
// const Tensor z = tapegrad::tensor({0.5, -1.0, 2.0});
// const auto loss = [](const Tensor& x) { return tapegrad::sum(x * x * x); };
// auto J = tapegrad::jacobian([](const Tensor& x) { return tapegrad::softmax(x); }, z);  // [3, 3]
// auto H = tapegrad::hessian(loss, z);                                                  // [3, 3]
// auto Hv = tapegrad::hvp(loss, z, tapegrad::ones({3}));                                // [3]
// ```
//
// Each call opens its own Tape, re-enables grad mode for itself (so it works the same inside a
// NoGradGuard, as torch.autograd.functional does with enable_grad), works on a detached copy of
// `x` (so `x` may come from any tape, or none) and returns constants: leaves that do not require
// grad. They are for looking at and checking derivatives, not for differentiating again.
//
// Everything is built from tapegrad::grad with seeds, so no particular op is needed here:
//   row o of the Jacobian   = grad(y, x, seed = e_o)                 (one sweep per output)
//   H v                     = grad(g, x, seed = v), g = grad(f, x, create_graph)
// The seed of the second sweep IS the vector: d(g . v)/dx = H v, since H is symmetric.
#include <cstdint>
#include <functional>
#include <vector>

#include "tapegrad/core/gradcheck.hpp"
#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

// A function of one tensor, for jacobian, hessian and hvp.
using TensorFunction = std::function<Tensor(const Tensor& x)>;

// J[o..., i...] = d f(x)[o...] / d x[i...].
//   shapes: x [i...], f(x) [o...] -> J [o..., i...]  (output dimensions first, as PyTorch's
//   torch.autograd.functional.jacobian). A scalar f gives J of x's shape (the gradient); a
//   scalar x gives J of f(x)'s shape.
//   cost: one forward and numel(f(x)) backward sweeps.
// An f that does not depend on x gives zeros.
Tensor jacobian(const TensorFunction& f, const Tensor& x);

// H[i..., j...] = d^2 f(x) / d x[i...] d x[j...] for a scalar f (ValueError otherwise).
//   shapes: x [i...] -> H [i..., i...]; for x [n] that is the n x n matrix.
//   cost: one forward, one backward with create_graph, then numel(x) sweeps over the recorded
//   backward (each gives one row: the Jacobian of the gradient).
Tensor hessian(const TensorFunction& f, const Tensor& x);

// H v without forming H, for a scalar f:
//   (H v)[i...] = sum_j d^2 f / d x[i...] d x[j...] v[j...]
//   shapes: x [i...], v [i...] (a ShapeError otherwise) -> [i...]
//   cost: one forward and two backward sweeps, whatever the size of x (Pearlmutter's trick).
Tensor hvp(const TensorFunction& f, const Tensor& x, const Tensor& v);

struct GradgradcheckOptions {
  double eps = 1e-6;   // finite-difference step on the inputs
  double atol = 1e-7;  // as gradcheck: passes when |analytic - numeric| <= atol + rtol |numeric|
  double rtol = 1e-6;
  std::uint64_t seed = 0;  // for the fixed random grad_outputs u drawn N(0, 1)
  // As GradcheckOptions::allow_unused: an input f does not depend on fails the check, naming it,
  // unless this is set. (A first derivative that does not depend on some input, as for f linear
  // in it, is fine either way.)
  bool allow_unused = false;
};

// Second-order check, as PyTorch's gradgradcheck: with a fixed random u of f(inputs)'s shape,
// h_k(inputs) = d(u . f(inputs)) / d inputs[k] is computed by a backward with create_graph, and
// gradcheck compares the tape's derivative of every h_k (the backward of the backward) with
// central finite differences of h_k, for every input k that requires grad. A rule written with
// raw doubles, or a wrong second derivative, fails here while gradcheck passes.
// The result is the worst of those gradchecks; its `report` says which h_k it was
// ("d(grad of input k)/d(input i)"). `inputs` are not modified.
GradcheckResult gradgradcheck(const Function& f, const std::vector<Tensor>& inputs,
                              GradgradcheckOptions options = {});

}  // namespace tapegrad
