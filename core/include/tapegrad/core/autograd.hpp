#pragma once
// The backward sweep, and the functional form of it.
//
//   backward(y)            accumulates dy/dleaf into every leaf's grad() (y scalar)
//   grad({y}, {x})         returns dy/dx without touching any grad() (x may be any tensor)
//
// Both walk the tape once from the newest output's node down to the first, applying each node's
// rule to its incoming gradient and summing gradients that meet at a tensor used more than once.
#include <span>
#include <vector>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

// Sweeps from `output`. `seed` is dLoss/doutput; it may be undefined only for a scalar output
// (then it is 1). Gradients are added to the leaves' grad().
void backward(const Tensor& output, const Tensor& seed = Tensor(), BackwardOptions options = {});

struct GradOptions {
  // Record the sweep on the tape so the returned gradients can be differentiated again.
  bool create_graph = false;
  // An input the outputs do not depend on gets zeros instead of an AutogradError.
  bool allow_unused = false;
  // Traced backward, as BackwardOptions::trace.
  TraceSink trace = {};
  // Structured traced backward, as BackwardOptions::observe.
  BackwardObserver observe = {};
};

// d(sum_k seeds[k] . outputs[k]) / d inputs[i] for each i, in the inputs' shapes. `seeds` may be
// empty when every output is a scalar. Leaves' grad() are left untouched.
std::vector<Tensor> grad(std::span<const Tensor> outputs, std::span<const Tensor> inputs,
                         std::span<const Tensor> seeds = {}, GradOptions options = {});
std::vector<Tensor> grad(const Tensor& output, std::span<const Tensor> inputs,
                         GradOptions options = {});
inline std::vector<Tensor> grad(const Tensor& output, std::initializer_list<Tensor> inputs,
                                GradOptions options = {}) {
  return grad(output, std::span<const Tensor>(inputs.begin(), inputs.size()), options);
}

}  // namespace tapegrad
