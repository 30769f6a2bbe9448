#pragma once
// Inverted dropout: in training each element is kept with probability 1 - p and scaled by
// 1 / (1 - p), so the expected output equals the input and evaluation needs no rescaling.
//   y = x * mask,  mask_i = [u_i >= p] / (1 - p),  u_i ~ U[0, 1)   (training)
//   y = x                                                         (evaluation, or p = 0)
//   derivative: dx = g * mask (the mask is a constant of the step)
// p = 1 drops everything (y = 0), as PyTorch. p outside [0, 1] is a ValueError.
//
// The draws come from a Generator the layer owns, seeded once from the one given to the
// constructor: a run is reproducible bit for bit, and the layer does not depend on the
// caller's generator outliving it.
//   tapegrad::Generator gen(7);
//   auto drop = std::make_shared<tapegrad::nn::Dropout>(0.25, gen);
#include <string>

#include "tapegrad/core/random.hpp"
#include "tapegrad/nn/module.hpp"

namespace tapegrad::nn {

class Dropout : public Module {
 public:
  Dropout(double p, Generator& generator);

  Tensor forward(const Tensor& x) override;
  std::string name() const override;  // "Dropout(p=0.25)"
  double p() const { return p_; }

 private:
  double p_;
  Generator generator_;
};

}  // namespace tapegrad::nn
