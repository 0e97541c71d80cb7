// Host-shim launchers of kernels/fourier.cu (see cuda_host_shim.h).
#include "cuda_host_shim.h"
#include "../common.cuh"
#include "../fourier.cu"

extern "C" void shim_fourier_gather(unsigned grid, unsigned block, const float2* spectrum,
                                    long long items, int height, int width, const int* kept_rows,
                                    int out_height, const int* kept_cols, int out_width,
                                    float scale, float2* cropped) {
    shim_launch(fourier_gather, grid, block, spectrum, items, height, width, kept_rows,
                out_height, kept_cols, out_width, scale, cropped);
}

extern "C" void shim_fourier_real_part(unsigned grid, unsigned block, const float2* values,
                                       long long count, float* out) {
    shim_launch(fourier_real_part, grid, block, values, count, out);
}
