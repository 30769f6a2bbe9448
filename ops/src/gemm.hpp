#pragma once
// The one matrix product of ops/ (private): C [m, n] = op(A) [m, k] op(B) [k, n] + beta C,
// row-major, leading dimensions as stored (cblas_dgemm's arguments with alpha 1).
//
// The product is split across tapegrad's threads (parallel.hpp), blocks of C's rows or columns
// per thread, and OpenBLAS runs on the calling thread of each block: at the first product
// tapegrad sets OpenBLAS to one thread, so that the process has one pool of threads and not two.
// OpenBLAS's own workers spin (sched_yield) for a while after every product, and on two cores they
// took the core that tapegrad's elementwise kernels had split onto (W7: a third of the samples in
// the scheduler). tapegrad::set_num_threads(n) thus governs the products too, as
// torch.set_num_threads does in PyTorch.
#include <cstdint>

namespace tapegrad::kernels {

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const double* a,
          std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c,
          std::int64_t ldc);

// Sets OpenBLAS to one thread if it is not (gemm calls it before every product).
void blas_on_calling_thread();

}  // namespace tapegrad::kernels
