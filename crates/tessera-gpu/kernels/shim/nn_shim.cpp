// Host-shim launchers of kernels/nn.cu (see cuda_host_shim.h).
#include "cuda_host_shim.h"
#include "../common.cuh"
#include "../nn.cu"

extern "C" void shim_nn_bias_add(unsigned grid, unsigned block, float* values, long long outer,
                                 int channels, long long inner, const float* bias, int relu) {
    shim_launch(nn_bias_add, grid, block, values, outer, channels, inner, bias, relu);
}

extern "C" void shim_nn_bias_grad(unsigned grid, unsigned block, const float* delta,
                                  long long outer, int channels, long long inner, float* grad) {
    shim_launch(nn_bias_grad, grid, block, delta, outer, channels, inner, grad);
}

extern "C" void shim_nn_im2col(unsigned grid, unsigned block, const float* x, long long batch,
                               int channels, int height, int width, int kernel_h, int kernel_w,
                               int stride_h, int stride_w, int pad_h, int pad_w, int out_h,
                               int out_w, float* cols) {
    shim_launch(nn_im2col, grid, block, x, batch, channels, height, width, kernel_h, kernel_w,
                stride_h, stride_w, pad_h, pad_w, out_h, out_w, cols);
}

extern "C" void shim_nn_col2im(unsigned grid, unsigned block, const float* cols, long long batch,
                               int channels, int height, int width, int kernel_h, int kernel_w,
                               int stride_h, int stride_w, int pad_h, int pad_w, int out_h,
                               int out_w, int accumulate, float* dx) {
    shim_launch(nn_col2im, grid, block, cols, batch, channels, height, width, kernel_h, kernel_w,
                stride_h, stride_w, pad_h, pad_w, out_h, out_w, accumulate, dx);
}

extern "C" void shim_nn_sum_batch(unsigned grid, unsigned block, const float* partials,
                                  long long batch, long long len, int accumulate, float* out) {
    shim_launch(nn_sum_batch, grid, block, partials, batch, len, accumulate, out);
}
