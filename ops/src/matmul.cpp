// Matrix products through OpenBLAS dgemm (2-D, batched, bmm); the rules use dgemm's transpose
// flags.
#include "tapegrad/ops/matmul.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "gemm.hpp"
#include "kernels.hpp"
#include "tapegrad/core/broadcast.hpp"
#include "tapegrad/core/error.hpp"
#include "tapegrad/core/tape.hpp"
#include "tapegrad/ops/shape_ops.hpp"

namespace tapegrad {

namespace {

// The 2-D product: op(a) [n, k] x op(b) [k, m] -> [n, m], one dgemm.
Tensor matrix_product(const Tensor& a, const Tensor& b, MatmulOptions options,
                      std::source_location where) {
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
  // dgemm with beta 0 writes every element; only an empty inner dimension leaves zeros to fill.
  Values y = k > 0 ? Values(n * m) : Values(n * m, 0.0);
  if (n > 0 && m > 0 && k > 0) {
    // Row-major storage: the leading dimension of each matrix is its stored row length.
    kernels::gemm(ta, tb, static_cast<std::int64_t>(n), static_cast<std::int64_t>(m),
                  static_cast<std::int64_t>(k), a.values().data(), a.shape()[1], b.values().data(),
                  b.shape()[1], 0.0, y.data(), static_cast<std::int64_t>(m));
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

// Batches of matrices (either operand of rank >= 3): op(a) [..A, n, k] x op(b) [..B, k, m] ->
// [broadcast(A, B), n, m], one dgemm per batch element on the operands in place.
Tensor batched_product(const Tensor& a, const Tensor& b, MatmulOptions options, const char* op,
                       std::source_location where) {
  const bool ta = options.transpose_a;
  const bool tb = options.transpose_b;
  const std::vector<std::int64_t>& ad = a.shape().dims();
  const std::vector<std::int64_t>& bd = b.shape().dims();
  const std::int64_t a_rows = ad[ad.size() - 2], a_cols = ad[ad.size() - 1];
  const std::int64_t b_rows = bd[bd.size() - 2], b_cols = bd[bd.size() - 1];
  const std::int64_t n = ta ? a_cols : a_rows, k = ta ? a_rows : a_cols;
  const std::int64_t k_b = tb ? b_cols : b_rows, m = tb ? b_rows : b_cols;
  if (k != k_b) {
    throw ShapeError(fmt::format(
        "{}: inner dimensions differ ({}{} vs {}{}): op(a) has {} columns, op(b) has {} rows", op,
        a.shape(), ta ? " transposed" : "", b.shape(), tb ? " transposed" : "", k, k_b));
  }
  const Shape batch_a(std::vector<std::int64_t>(ad.begin(), ad.end() - 2));
  const Shape batch_b(std::vector<std::int64_t>(bd.begin(), bd.end() - 2));
  Shape batch;
  try {
    batch = broadcast_shapes(batch_a, batch_b, op);
  } catch (const ShapeError&) {
    throw ShapeError(
        fmt::format("{}: batch dimensions {} and {} cannot be broadcast together ({} vs {})", op,
                    batch_a, batch_b, a.shape(), b.shape()));
  }
  std::vector<std::int64_t> dims = batch.dims();
  dims.push_back(n);
  dims.push_back(m);
  Shape out(std::move(dims));
  // A batch of a against a single b, a untransposed: a's matrices stacked row after row are one
  // [B*n, k] matrix, so the whole batch is one dgemm (the rule keeps that for db too).
  const bool fold = !ta && batch_b.numel() == 1 && batch_a == batch;
  Values y = k > 0 ? Values(out.numel()) : Values(out.numel(), 0.0);  // as in matmul
  if (n > 0 && m > 0 && k > 0 && batch.numel() > 0) {
    const auto mat_a = static_cast<std::size_t>(a_rows * a_cols);
    const auto mat_b = static_cast<std::size_t>(b_rows * b_cols);
    const auto mat_y = static_cast<std::size_t>(n * m);
    const auto rows = fold ? static_cast<std::int64_t>(batch.numel()) * n : n;
    // a [rows, k] at a_at, b [k, m] at b_at -> y [rows, m] at y_at (row-major, as stored)
    auto gemm = [&](const double* a_at, const double* b_at, double* y_at) {
      kernels::gemm(ta, tb, rows, m, k, a_at, a_cols, b_at, b_cols, 0.0, y_at, m);
    };
    if (fold) {
      gemm(a.values().data(), b.values().data(), y.data());
    } else {
      // Threads share the batch elements (each product then runs on one thread: a product
      // called from inside a split runs inline).
      const double per_product =
          static_cast<double>(n) * static_cast<double>(m) * static_cast<double>(k);
      kernels::for_each_broadcast_split(
          batch, detail::broadcast_strides(batch_a, batch),
          detail::broadcast_strides(batch_b, batch),
          static_cast<std::size_t>((1 << 18) / std::max(1.0, per_product)),
          [&](std::size_t o, std::size_t ai, std::size_t bi) {
            gemm(a.values().data() + ai * mat_a, b.values().data() + bi * mat_b,
                 y.data() + o * mat_y);
          });
    }
  }
  return record(
      {op, "da = g op(b)^T, db = op(a)^T g (per batch element)"}, std::move(out), std::move(y),
      {a, b},
      [ta, tb, fold](const Tensor& g, const Tensor&, std::span<const Tensor> in) {
        const Tensor& a = in[0];
        const Tensor& b = in[1];
        // As in the 2-D rule, through the flags; broadcast batch dimensions are summed away by
        // the engine (sum_to).
        Tensor da, db;
        if (kernels::needs_grad(in, 0)) {
          da = ta ? matmul(b, g, {.transpose_a = tb, .transpose_b = true})
                  : matmul(g, b, {.transpose_a = false, .transpose_b = !tb});
        }
        if (kernels::needs_grad(in, 1)) {
          if (fold) {
            // Every batch element used the one b: its gradient is one product over the stacked
            // rows, [B*n, k]^T [B*n, m], rather than B products summed afterwards.
            const Tensor a2 = reshape(a, {-1, a.shape()[a.rank() - 1]});
            const Tensor g2 = reshape(g, {-1, g.shape()[g.rank() - 1]});
            db = reshape(
                tb ? matmul(g2, a2, {.transpose_a = true}) : matmul(a2, g2, {.transpose_a = true}),
                b.shape().dims());
          } else {
            db = tb ? matmul(g, a, {.transpose_a = true, .transpose_b = ta})
                    : matmul(a, g, {.transpose_a = !ta, .transpose_b = false});
          }
        }
        return TensorList{da, db};
      },
      where);
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, MatmulOptions options, std::source_location where) {
  if (a.rank() == 2 && b.rank() == 2) return matrix_product(a, b, options, where);
  if (a.rank() == 0 || b.rank() == 0) {
    throw ShapeError(fmt::format(
        "matmul: both operands need at least one dimension ({} vs {}); multiply by a scalar with "
        "mul",
        a.shape(), b.shape()));
  }
  if (a.rank() >= 2 && b.rank() >= 2) return batched_product(a, b, options, "matmul", where);
  // A 1-D operand, as torch.matmul: a [k] is a row [1, k], b [k] a column [k, 1]; the added
  // dimension is removed from the result.
  const bool a_vec = a.rank() == 1, b_vec = b.rank() == 1;
  if ((a_vec && options.transpose_a) || (b_vec && options.transpose_b)) {
    throw ShapeError(fmt::format(
        "matmul: a transpose flag is set on a 1-D operand, which has no transpose ({}{} vs {}{})",
        a.shape(), options.transpose_a ? " transposed" : "", b.shape(),
        options.transpose_b ? " transposed" : ""));
  }
  const std::int64_t k_a =
      a_vec ? a.shape()[0] : a.shape()[a.rank() - (options.transpose_a ? 2 : 1)];
  const std::int64_t k_b =
      b_vec ? b.shape()[0] : b.shape()[b.rank() - (options.transpose_b ? 1 : 2)];
  if (k_a != k_b) {
    throw ShapeError(fmt::format(
        "matmul: inner dimensions differ ({}{} vs {}{}): op(a) has {} columns, op(b) has {} rows",
        a.shape(), options.transpose_a ? " transposed" : "", b.shape(),
        options.transpose_b ? " transposed" : "", k_a, k_b));
  }
  const Tensor y = matmul(a_vec ? reshape(a, {1, -1}, where) : a,
                          b_vec ? reshape(b, {-1, 1}, where) : b, options, where);
  std::vector<std::int64_t> dims = y.shape().dims();
  if (b_vec) dims.pop_back();
  if (a_vec) dims.erase(dims.end() - (b_vec ? 1 : 2));
  return reshape(y, std::move(dims), where);
}

Tensor bmm(const Tensor& a, const Tensor& b, std::source_location where) {
  if (a.rank() != 3 || b.rank() != 3 || a.shape()[0] != b.shape()[0] ||
      a.shape()[2] != b.shape()[1]) {
    throw ShapeError(fmt::format(
        "bmm: needs [B, n, k] x [B, k, m], with the same B and k ({} vs {}); for broadcast batch "
        "dimensions or 1-D operands use matmul",
        a.shape(), b.shape()));
  }
  return batched_product(a, b, {}, "bmm", where);
}

}  // namespace tapegrad
