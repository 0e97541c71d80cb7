// Host-shim launchers of kernels/augment.cu (see cuda_host_shim.h).
#include "cuda_host_shim.h"
#include "../common.cuh"
#include "../augment.cu"

extern "C" void shim_mixup(unsigned grid, unsigned block, const float* a, const float* other,
                           const long long* partners, const float* lambdas, long long batch,
                           long long per_item, float* out) {
    shim_launch(mixup, grid, block, a, other, partners, lambdas, batch, per_item, out);
}

extern "C" void shim_fill_rectangles(unsigned grid, unsigned block, float* values,
                                     long long batch, long long planes, int n_freq, int n_time,
                                     const int* rects, const int* rect_offsets, float fill) {
    shim_launch(fill_rectangles, grid, block, values, batch, planes, n_freq, n_time, rects,
                rect_offsets, fill);
}
