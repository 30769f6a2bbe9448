#include "tapegrad/core/random.hpp"

#include <cmath>
#include <numbers>

#include "tapegrad/core/error.hpp"

namespace tapegrad {

double Generator::uniform() {
  // The top 53 bits of one draw, scaled to [0, 1): every double in the grid is equally likely.
  return static_cast<double>(engine_() >> 11) * 0x1.0p-53;
}

double Generator::normal() {
  if (has_spare_normal_) {
    has_spare_normal_ = false;
    return spare_normal_;
  }
  // Box-Muller on (0, 1] x [0, 1): 1 - uniform() is never 0, so the log is finite.
  const double u1 = 1.0 - uniform();
  const double u2 = uniform();
  const double radius = std::sqrt(-2.0 * std::log(u1));
  const double angle = 2.0 * std::numbers::pi * u2;
  spare_normal_ = radius * std::sin(angle);
  has_spare_normal_ = true;
  return radius * std::cos(angle);
}

std::uint64_t Generator::below(std::uint64_t n) {
  if (n == 0) throw ValueError("Generator::below: n must be positive (got 0)");
  // Rejection sampling avoids the modulo bias of engine_() % n.
  const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  std::uint64_t draw = engine_();
  while (draw >= limit) draw = engine_();
  return draw % n;
}

Tensor randn(const Shape& shape, Generator& generator) {
  Values values = allocate_values("randn", shape);
  for (double& v : values) v = generator.normal();
  return Tensor::from_values(std::move(values), shape);
}

namespace {
Tensor uniform_tensor(std::string_view op, const Shape& shape, double low, double high,
                      Generator& generator) {
  if (!(low <= high)) {
    throw ValueError(
        fmt::format("{}: low must not exceed high (low {} vs high {})", op, low, high));
  }
  Values values = allocate_values(op, shape);
  for (double& v : values) v = low + (high - low) * generator.uniform();
  return Tensor::from_values(std::move(values), shape);
}
}  // namespace

Tensor rand(const Shape& shape, Generator& generator) {
  return uniform_tensor("rand", shape, 0.0, 1.0, generator);
}

Tensor uniform(const Shape& shape, double low, double high, Generator& generator) {
  return uniform_tensor("uniform", shape, low, high, generator);
}

}  // namespace tapegrad
