// Host-shim launchers of kernels/local_complexity.cu (see cuda_host_shim.h).
#include "cuda_host_shim.h"
#include "../common.cuh"
#include "../local_complexity.cu"

extern "C" void shim_lc_vertices(unsigned grid, unsigned block, const float* x, long long samples,
                                 int dim, const float* frame, int half, float radius,
                                 float* vertices) {
    shim_launch(lc_vertices, grid, block, x, samples, dim, frame, half, radius, vertices);
}

extern "C" void shim_lc_dense_forward(unsigned grid, unsigned block, const float* input,
                                      const float* input_error, long long rows, int in_dim,
                                      const float* weight_t, const float* bias, int out_dim,
                                      const float* skip, const float* skip_error, int has_skip,
                                      int kc, int fused, float slope, float gamma, float safety, float underflow,
                                      float* pre, float* pre_error, float* post,
                                      float* post_error) {
    shim_launch(lc_dense_forward, grid, block, input, input_error, rows, in_dim, weight_t, bias,
                out_dim, skip, skip_error, has_skip, kc, fused, slope, gamma, safety, underflow, pre,
                pre_error, post, post_error);
}

extern "C" void shim_lc_neuron_changes(unsigned grid, unsigned block, const float* pre,
                                       const float* error, long long samples, int n_vertices,
                                       int width, int* status) {
    shim_launch(lc_neuron_changes, grid, block, pre, error, samples, n_vertices, width, status);
}

extern "C" void shim_lc_sample_counts(unsigned grid, unsigned block, const int* status,
                                      long long samples, int width, int slot, int slots,
                                      int* counts, int* uncertain) {
    shim_launch(lc_sample_counts, grid, block, status, samples, width, slot, slots, counts,
                uncertain);
}

extern "C" void shim_lc_vertex_flags(unsigned grid, unsigned block, const float* pre,
                                     const float* error, const int* status, long long samples,
                                     int n_vertices, int width, int* flags) {
    shim_launch(lc_vertex_flags, grid, block, pre, error, status, samples, n_vertices, width,
                flags);
}
