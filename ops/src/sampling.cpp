#include "tapegrad/ops/sampling.hpp"

#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "tapegrad/core/error.hpp"

namespace tapegrad {

Tensor multinomial(const Tensor& weights, std::int64_t num_samples, Generator& generator,
                   bool replacement) {
  if (weights.rank() != 1 && weights.rank() != 2) {
    throw ShapeError(
        fmt::format("multinomial: weights must be [k] or [n, k], got {} dimensions ({})",
                    weights.rank(), weights.shape()));
  }
  if (num_samples < 1) {
    throw ValueError(fmt::format("multinomial: num_samples must be at least 1, got {} ({})",
                                 num_samples, weights.shape()));
  }
  const std::size_t k = weights.shape()[weights.rank() - 1];
  const std::size_t rows = weights.rank() == 2 ? weights.shape()[0] : 1;
  const auto draws = static_cast<std::size_t>(num_samples);
  const auto w = weights.values();
  Values out(rows * draws);
  Values row(k);
  for (std::size_t r = 0; r < rows; ++r) {
    std::size_t nonzero = 0;
    for (std::size_t j = 0; j < k; ++j) {
      const double v = w[r * k + j];
      if (!(v >= 0.0) || !std::isfinite(v)) {
        throw ValueError(fmt::format(
            "multinomial: weight {} at row {}, column {} is not a finite non-negative number "
            "({})",
            v, r, j, weights.shape()));
      }
      row[j] = v;
      nonzero += v > 0.0;
    }
    if (nonzero == 0) {
      throw ValueError(
          fmt::format("multinomial: row {} sums to 0, nothing to draw ({})", r, weights.shape()));
    }
    if (!replacement && draws > nonzero) {
      throw ValueError(fmt::format(
          "multinomial: {} draws without replacement from row {}, which has only {} non-zero "
          "weights ({}); pass replacement = true",
          draws, r, nonzero, weights.shape()));
    }
    for (std::size_t d = 0; d < draws; ++d) {
      double total = 0.0;
      for (double v : row) total += v;
      // Inverse CDF: the first index whose running sum passes u * total.
      const double u = generator.uniform() * total;
      double running = 0.0;
      std::size_t pick = k;
      for (std::size_t j = 0; j < k; ++j) {
        running += row[j];
        if (row[j] > 0.0 && u < running) {
          pick = j;
          break;
        }
      }
      if (pick == k) {  // u rounded up to total: the last index with weight
        for (std::size_t j = k; j-- > 0;) {
          if (row[j] > 0.0) {
            pick = j;
            break;
          }
        }
      }
      out[r * draws + d] = static_cast<double>(pick);
      if (!replacement) row[pick] = 0.0;
    }
  }
  if (weights.rank() == 1) return from_values(std::move(out), {num_samples});
  return from_values(std::move(out), {static_cast<std::int64_t>(rows), num_samples});
}

}  // namespace tapegrad
