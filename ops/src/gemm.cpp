// kernels::gemm: every product of ops/ goes through here (gemm.hpp says why the threads are
// tapegrad's and not OpenBLAS's).
#include "gemm.hpp"

#include <cblas.h>

#include <algorithm>

#include "tapegrad/core/parallel.hpp"

namespace tapegrad::kernels {

namespace {

// A product is cut into at most max_blocks blocks of at least min_flops_per_block multiply-adds
// (and 8 rows or columns): W7's 64 x 64 x 16 head products stay one call, W4's layers take 8.
// max_blocks is also the most threads a product can use.
constexpr double min_flops_per_block = 1 << 20;
constexpr std::int64_t max_blocks = 8;

void one_gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const double* a,
              std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c,
              std::int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), 1.0, a,
              static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

}  // namespace

void blas_on_calling_thread() {
  // Checked at every product (a read of OpenBLAS's global), so a program that set OpenBLAS's
  // threads itself after tapegrad's last product gets tapegrad's split back at the next one.
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const double* a,
          std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c,
          std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // no products: C = beta C (dgemm would do the same; this way no call at all)
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t j = 0; j < n; ++j)
        c[i * ldc + j] = beta == 0.0 ? 0.0 : beta * c[i * ldc + j];
    }
    return;
  }
  blas_on_calling_thread();
  // C is cut into blocks of rows (m) or columns (n), the longer side, whose number depends on the
  // shape alone; each block is one dgemm call whether one thread computes them all or several
  // share them, so the result has the same bits on any thread count (a call over all of C, or
  // over halves on two threads, would not: OpenBLAS picks its kernels by size).
  const double flops = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  const bool by_rows = m >= n;
  const std::int64_t side = by_rows ? m : n;
  // A power of two, so that two or four threads get equal shares.
  const auto most = std::min<std::int64_t>(max_blocks, std::max<std::int64_t>(1, side / 8));
  std::int64_t blocks = 1;
  while (blocks * 2 <= most && static_cast<double>(blocks * 2) * min_flops_per_block <= flops) {
    blocks *= 2;
  }
  parallel_for(static_cast<std::size_t>(blocks), 1, [&](std::size_t block0, std::size_t block1) {
    for (auto block = static_cast<std::int64_t>(block0); block < static_cast<std::int64_t>(block1);
         ++block) {
      const std::int64_t first = side * block / blocks, count = side * (block + 1) / blocks - first;
      if (by_rows) {  // rows first .. of op(A) and C
        const double* a_at = ta ? a + first : a + first * lda;
        one_gemm(ta, tb, count, n, k, a_at, lda, b, ldb, beta, c + first * ldc, ldc);
      } else {  // columns first .. of op(B) and C
        const double* b_at = tb ? b + first * ldb : b + first;
        one_gemm(ta, tb, m, count, k, a, lda, b_at, ldb, beta, c + first, ldc);
      }
    }
  });
}

}  // namespace tapegrad::kernels
