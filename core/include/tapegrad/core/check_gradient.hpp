#pragma once
// check_gradient: puts a gradient derived by hand next to the engine's and next to finite
// differences, element by element, in one table. For checking a derivation (the seed document's
// p - t), not an op: gradcheck checks ops against finite differences; this checks a person.
//
// The seed document's neuron, a = sigmoid(w x + b) with x = 1, y = 0, w = 0.6, b = 0.9, under
// cross-entropy, whose gradient is (a - y) x for w and a - y for b:
// ```cpp
// using Tensors = std::vector<tapegrad::Tensor>;
// const tapegrad::Tensor x = tapegrad::scalar(1.0), y = tapegrad::scalar(0.0);
// const tapegrad::Tensor w = tapegrad::scalar(0.6).requires_grad_();
// const tapegrad::Tensor b = tapegrad::scalar(0.9).requires_grad_();
// auto result = tapegrad::check_gradient(
//     [&](const Tensors& in) {
//       return tapegrad::nn::binary_cross_entropy(tapegrad::sigmoid(in[0] * x + in[1]), y);
//     },
//     [&](const Tensors& in) {  // derived by hand
//       const tapegrad::Tensor a = tapegrad::sigmoid(in[0] * x + in[1]);
//       return Tensors{(a - y) * x, a - y};
//     },
//     {w, b}, {.names = {"w", "b"}});
// if (!result.passed) fmt::print("the derivation is wrong\n");  // a test: EXPECT_TRUE(result)
// ```
//
// prints (to standard output, or to options.sink, one call per line; examples/traced_neuron.cpp):
// clang-format off
// ```text
// check_gradient: 2 inputs checked, eps 1e-06
//   element        closed form          autodiff       finite diff  |closed-auto|    |closed-fd|
//   w             0.8175744762      0.8175744762      0.8175744759              0       2.96e-10  ok
//   b             0.8175744762      0.8175744762      0.8175744759              0       2.96e-10  ok
// largest |closed - autodiff| 0 at w, largest |closed - fd| 2.96e-10 at w: passed (2 elements)
// ```
// clang-format on
// A wrong row ends in WRONG and the last line says FAILED, naming the worst element.
//
// For every element e of every input that requires grad:
//   autodiff[e] = d f / d x[e] from one backward on a fresh tape,
//   fd[e]       = (f(x + eps e) - f(x - eps e)) / (2 eps),
// and the element passes when
//   |closed - autodiff| <= autodiff_tolerance * max(1, |closed|)   and
//   |closed - fd|       <= finite_difference_tolerance * max(1, |closed|).
// (The first is exact up to rounding, so it is strict; the second carries the O(eps^2)
// truncation and O(1e-16 / eps) rounding of the difference quotient, so it is loose.)
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tapegrad/core/gradcheck.hpp"
#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

// The hand-derived gradient: one tensor per input, in the input's shape. Entries for inputs that
// do not require grad are ignored (they may be undefined).
using GradientFunction = std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs)>;

struct CheckGradientOptions {
  double eps = 1e-6;
  double autodiff_tolerance = 1e-10;
  double finite_difference_tolerance = 1e-6;
  // Names of the inputs in the table ("w", "b"); missing ones are shown as "input k".
  std::vector<std::string> names = {};
  bool print = true;  // print the table (the result holds it either way)
  // Where the printed lines go, one call per line; standard output when empty.
  TraceSink sink = {};
  // At most this many element rows are printed (failing rows first would hide the order, so
  // rows keep their order and the rest are counted in one line); the summary always prints.
  std::size_t max_rows = 64;
};

struct CheckGradientResult {
  bool passed = true;
  double max_autodiff_difference = 0.0;           // max over elements of |closed - autodiff|
  double max_finite_difference_difference = 0.0;  // max over elements of |closed - fd|
  // The worst element: the one furthest past (or closest to) its tolerance, in either check.
  std::size_t input = 0;
  std::vector<std::int64_t> index;
  double closed_form = 0.0;
  double autodiff = 0.0;
  double finite_difference = 0.0;
  std::size_t elements_checked = 0;
  std::size_t elements_failed = 0;
  std::string table;    // every line that was (or would have been) printed, '\n'-separated
  std::string summary;  // the last line of the table
  explicit operator bool() const { return passed; }
};

// Runs the same inside a NoGradGuard (it re-enables grad mode for itself).
// `f` must return a scalar (ValueError otherwise); `closed_form` must return inputs.size()
// tensors with the inputs' shapes (ShapeError otherwise). At least one input must require grad.
// The inputs are not modified: f and closed_form see copies.
CheckGradientResult check_gradient(const Function& f, const GradientFunction& closed_form,
                                   const std::vector<Tensor>& inputs,
                                   CheckGradientOptions options = {});

}  // namespace tapegrad
