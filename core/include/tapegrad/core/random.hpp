#pragma once
// Seeded random numbers. Every random draw in tapegrad takes an explicit Generator, so a run is
// reproducible bit for bit: same seed, same numbers (on the same platform and libm).
#include <cstdint>
#include <random>

#include "tapegrad/core/tensor.hpp"

namespace tapegrad {

class Generator {
 public:
  explicit Generator(std::uint64_t seed) : engine_(seed) {}

  std::uint64_t next_u64() { return engine_(); }
  // Uniform in [0, 1), 53 random bits.
  double uniform();
  // Standard normal, Box-Muller (written out here rather than std::normal_distribution, whose
  // algorithm differs between standard libraries).
  double normal();
  // Uniform integer in [0, n); n must be > 0.
  std::uint64_t below(std::uint64_t n);

 private:
  std::mt19937_64 engine_;
  bool has_spare_normal_ = false;
  double spare_normal_ = 0.0;
};

// Leaves filled with draws: N(0, 1), U[0, 1), U[low, high).
Tensor randn(const Shape& shape, Generator& generator);
Tensor rand(const Shape& shape, Generator& generator);
Tensor uniform(const Shape& shape, double low, double high, Generator& generator);

}  // namespace tapegrad
