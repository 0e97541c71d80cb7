// Sparse (CSR) x dense products for tessera-sparse's masked layers.

// out[r, c] = sum over the stored entries k of row r of values[k] * dense[indices[k], c],
// accumulated in entry order as tessera-sparse's CsrMatrix::matmul does. dense is
// ncols_sparse x n (row-major), out is nrows x n.
extern "C" __global__ void csr_matmul(const long long* __restrict__ indptr,
                                      const long long* __restrict__ indices,
                                      const float* __restrict__ values, long long nrows,
                                      const float* __restrict__ dense, long long n,
                                      float* __restrict__ out) {
    TESSERA_GRID_STRIDE(index, nrows * n) {
        const long long r = index / n;
        const long long c = index % n;
        float sum = 0.0f;
        for (long long k = indptr[r]; k < indptr[r + 1]; ++k) {
            sum += values[k] * dense[indices[k] * n + c];
        }
        out[index] = sum;
    }
}

// Masked weight gradient at the stored entries: grad[k] = dy[row_k, :] . x[indices[k], :] for
// Y = W X, with dy nrows x n and x ncols x n (tessera-sparse's CsrMatrix::masked_gradient).
// rows[k] is the row of entry k (expanded from indptr on the host once per pattern).
extern "C" __global__ void csr_masked_gradient(const long long* __restrict__ rows,
                                               const long long* __restrict__ indices,
                                               long long nnz, const float* __restrict__ dy,
                                               const float* __restrict__ x, long long n,
                                               float* __restrict__ grad) {
    TESSERA_GRID_STRIDE(k, nnz) {
        const float* dy_row = dy + rows[k] * n;
        const float* x_row = x + indices[k] * n;
        float sum = 0.0f;
        for (long long j = 0; j < n; ++j) {
            sum += dy_row[j] * x_row[j];
        }
        grad[k] = sum;
    }
}
