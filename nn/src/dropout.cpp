#include "tapegrad/nn/dropout.hpp"

#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"
#include "tapegrad/ops/binary.hpp"

namespace tapegrad::nn {

Dropout::Dropout(double p, Generator& generator) : p_(p), generator_(generator.next_u64()) {
  if (!(p >= 0.0 && p <= 1.0)) {
    throw ValueError(
        fmt::format("Dropout: p is the probability of dropping an element and must "
                    "be in [0, 1], got {}",
                    p));
  }
}

std::string Dropout::name() const {
  return fmt::format("Dropout(p={})", p_);
}

Tensor Dropout::forward(const Tensor& x) {
  if (!is_training() || p_ == 0.0) return x;
  // The mask is a constant of this step: the gradient is g * mask, from mul's rule.
  Values mask(x.numel());
  const double keep_scale = p_ < 1.0 ? 1.0 / (1.0 - p_) : 0.0;
  for (double& m : mask) m = generator_.uniform() >= p_ ? keep_scale : 0.0;
  return x * from_values(std::move(mask), x.shape());
}

}  // namespace tapegrad::nn
