// Host-shim launchers of kernels/sparse.cu (see cuda_host_shim.h).
#include "cuda_host_shim.h"
#include "../common.cuh"
#include "../sparse.cu"

extern "C" void shim_csr_matmul(unsigned grid, unsigned block, const long long* indptr,
                                const long long* indices, const float* values, long long nrows,
                                const float* dense, long long n, float* out) {
    shim_launch(csr_matmul, grid, block, indptr, indices, values, nrows, dense, n, out);
}

extern "C" void shim_csr_masked_gradient(unsigned grid, unsigned block, const long long* rows,
                                         const long long* indices, long long nnz,
                                         const float* dy, const float* x, long long n,
                                         float* grad) {
    shim_launch(csr_masked_gradient, grid, block, rows, indices, nnz, dy, x, n, grad);
}
