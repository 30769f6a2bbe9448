#pragma once
// Seeded test inputs shared by the finite-difference suites (first and second order): values in a
// range, kept away from kinks, or pairwise distinct so a max has no ties. Every tensor is a leaf
// that requires grad.
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace tapegrad::test_inputs {

inline Tensor normal(const Shape& shape, std::uint64_t seed, double scale = 1.0) {
  Generator gen(seed);
  Tensor t = randn(shape, gen);
  std::vector<double> v(t.values().begin(), t.values().end());
  for (double& x : v) x *= scale;
  return from_values(std::move(v), shape).requires_grad_();
}

inline Tensor in_range(const Shape& shape, std::uint64_t seed, double low, double high) {
  Generator gen(seed);
  return uniform(shape, low, high, gen).requires_grad_();
}

// Uniform in [low, high) but at least `gap` away from every kink (relu/abs at 0, clamp bounds).
inline Tensor away_from(const Shape& shape, std::uint64_t seed, std::vector<double> kinks,
                        double low, double high, double gap = 0.05) {
  Generator gen(seed);
  std::vector<double> v(shape.numel());
  for (double& x : v) {
    bool near = true;
    while (near) {
      x = low + (high - low) * gen.uniform();
      near = false;
      for (double k : kinks) near = near || std::abs(x - k) < gap;
    }
  }
  return from_values(std::move(v), shape).requires_grad_();
}

// Pairwise >= 0.2 apart, shuffled: a max never has a tie, even after a +-eps nudge.
inline Tensor distinct(const Shape& shape, std::uint64_t seed) {
  Generator gen(seed);
  const std::size_t n = shape.numel();
  std::vector<double> v(n);
  for (std::size_t k = 0; k < n; ++k) {
    v[k] = 0.25 * (static_cast<double>(k) - static_cast<double>(n) / 2.0) + 0.05 * gen.uniform();
  }
  for (std::size_t i = n; i > 1; --i) std::swap(v[i - 1], v[gen.below(i)]);
  return from_values(std::move(v), shape).requires_grad_();
}

}  // namespace tapegrad::test_inputs
