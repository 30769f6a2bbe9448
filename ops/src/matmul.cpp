// Matrix product through OpenBLAS dgemm; the rule's two products use dgemm's transpose flags.
#include "tapegrad/ops/matmul.hpp"

#include <cblas.h>

#include <fmt/format.h>

#include "kernels.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"

namespace tapegrad {

Tensor matmul(const Tensor& a, const Tensor& b, MatmulOptions options, std::source_location where) {
  if (a.rank() != 2 || b.rank() != 2) {
    throw ShapeError(
        fmt::format("matmul: needs two 2-D tensors ({} vs {}); make a vector a row with "
                    "reshape(v, {{1, -1}}) or a column with reshape(v, {{-1, 1}})",
                    a.shape(), b.shape()));
  }
  const bool ta = options.transpose_a;
  const bool tb = options.transpose_b;
  // op(a) [n, k], op(b) [k, m] -> y [n, m]
  const auto n = static_cast<std::size_t>(ta ? a.shape()[1] : a.shape()[0]);
  const auto k = static_cast<std::size_t>(ta ? a.shape()[0] : a.shape()[1]);
  const auto k_b = static_cast<std::size_t>(tb ? b.shape()[1] : b.shape()[0]);
  const auto m = static_cast<std::size_t>(tb ? b.shape()[0] : b.shape()[1]);
  if (k != k_b) {
    throw ShapeError(fmt::format(
        "matmul: inner dimensions differ ({}{} vs {}{}): op(a) has {} columns, op(b) has {} rows",
        a.shape(), ta ? " transposed" : "", b.shape(), tb ? " transposed" : "", k, k_b));
  }
  std::vector<double> y(n * m, 0.0);
  if (n > 0 && m > 0 && k > 0) {
    // Row-major storage: the leading dimension of each matrix is its stored row length.
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), 1.0,
                a.values().data(), static_cast<int>(a.shape()[1]), b.values().data(),
                static_cast<int>(b.shape()[1]), 0.0, y.data(), static_cast<int>(m));
  }
  return record(
      {"matmul", "da = g b^T, db = a^T g"},
      Shape{static_cast<std::int64_t>(n), static_cast<std::int64_t>(m)}, std::move(y), {a, b},
      [ta, tb](const Tensor& g, const Tensor&, std::span<const Tensor> in) {
        const Tensor& a = in[0];
        const Tensor& b = in[1];
        // y = op(a) op(b):  d op(a) = g op(b)^T,  d op(b) = op(a)^T g, each turned back
        // into the stored layout by choosing the operand order and flags (no transposed
        // copies).
        Tensor da, db;
        if (kernels::needs_grad(in, 0)) {
          da = ta ? matmul(b, g, {.transpose_a = tb, .transpose_b = true})
                  : matmul(g, b, {.transpose_a = false, .transpose_b = !tb});
        }
        if (kernels::needs_grad(in, 1)) {
          db = tb ? matmul(g, a, {.transpose_a = true, .transpose_b = ta})
                  : matmul(a, g, {.transpose_a = !ta, .transpose_b = false});
        }
        return TensorList{da, db};
      },
      where);
}

}  // namespace tapegrad
