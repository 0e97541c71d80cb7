// Host-shim launchers of kernels/gmm_attention.cu (see cuda_host_shim.h).
#include "cuda_host_shim.h"
#include "../common.cuh"
#include "../gmm_attention.cu"

extern "C" void shim_gmm_mask(unsigned grid, unsigned block, const float* alpha,
                              const float* sigma, int heads, int kernels, int cols, int extra,
                              long long tokens, float neutral, float* mask) {
    shim_launch(gmm_mask, grid, block, alpha, sigma, heads, kernels, cols, extra, tokens, neutral,
                mask);
}

extern "C" void shim_gmm_attention_forward(unsigned grid, unsigned block, const float* q,
                                           const float* k, const float* v, long long batch,
                                           int heads, long long tokens, int d_head, int d_value,
                                           float scale, int mask_kind, int combine,
                                           const float* mask, int cols, int extra, float neutral,
                                           float* out, float* probs) {
    shim_launch(gmm_attention_forward, grid, block, q, k, v, batch, heads, tokens, d_head, d_value,
                scale, mask_kind, combine, mask, cols, extra, neutral, out, probs);
}

extern "C" void shim_attention_batched_matmul(unsigned grid, unsigned block, const float* a,
                                              int a_trans, const float* b, int b_trans,
                                              long long planes, long long rows, long long inner,
                                              long long cols_out, float alpha, float* out) {
    shim_launch(attention_batched_matmul, grid, block, a, a_trans, b, b_trans, planes, rows, inner,
                cols_out, alpha, out);
}

extern "C" void shim_attention_row_dot(unsigned grid, unsigned block, const float* grad_probs,
                                       const float* probs, long long rows, long long tokens,
                                       float* row_dot) {
    shim_launch(attention_row_dot, grid, block, grad_probs, probs, rows, tokens, row_dot);
}

extern "C" void shim_attention_softmax_backward(unsigned grid, unsigned block, float* grad,
                                                const float* probs, const float* row_dot,
                                                long long rows, long long tokens) {
    shim_launch(attention_softmax_backward, grid, block, grad, probs, row_dot, rows, tokens);
}

extern "C" void shim_gmm_attention_grad_mask(unsigned grid, unsigned block,
                                             const float* grad_logits, const float* q,
                                             const float* k, long long batch, int heads,
                                             long long tokens, int d_head, float scale,
                                             int combine, long long batch_chunk,
                                             float* grad_mask) {
    shim_launch(gmm_attention_grad_mask, grid, block, grad_logits, q, k, batch, heads, tokens,
                d_head, scale, combine, batch_chunk, grad_mask);
}

extern "C" void shim_attention_apply_mask(unsigned grid, unsigned block, float* grad,
                                          const float* mask, long long batch, int heads,
                                          long long tokens) {
    shim_launch(attention_apply_mask, grid, block, grad, mask, batch, heads, tokens);
}

extern "C" void shim_gmm_class_grad(unsigned grid, unsigned block, const float* grad_mask,
                                    int heads, int rows, int cols, int extra, float* class_grad) {
    shim_launch(gmm_class_grad, grid, block, grad_mask, heads, rows, cols, extra, class_grad);
}

extern "C" void shim_gmm_parameter_grad(unsigned grid, unsigned block, const float* class_grad,
                                        const float* alpha, const float* sigma, int heads,
                                        int kernels, int rows, int cols, float* grad) {
    shim_launch(gmm_parameter_grad, grid, block, class_grad, alpha, sigma, heads, kernels, rows,
                cols, grad);
}

extern "C" void shim_gmm_class_values(unsigned grid, unsigned block, const float* alpha,
                                      const float* sigma, int heads, int kernels, int rows,
                                      int cols, float* table) {
    shim_launch(gmm_class_values, grid, block, alpha, sigma, heads, kernels, rows, cols, table);
}

extern "C" void shim_attention_nonfinite_partial(unsigned grid, unsigned block,
                                                 const float* values, long long len,
                                                 long long chunk, long long chunks,
                                                 float* partial) {
    shim_launch(attention_nonfinite_partial, grid, block, values, len, chunk, chunks, partial);
}

extern "C" void shim_attention_nonfinite_total(unsigned grid, unsigned block,
                                               const float* partial, long long chunks,
                                               float* total) {
    shim_launch(attention_nonfinite_total, grid, block, partial, chunks, total);
}
