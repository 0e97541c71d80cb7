// Host-shim launchers of kernels/logmel.cu (see cuda_host_shim.h).
#include "cuda_host_shim.h"
#include "../common.cuh"
#include "../logmel.cu"

extern "C" void shim_logmel_frames(unsigned grid, unsigned block, const float* signals,
                                   long long batch, long long n_samples, const float* window,
                                   int n_fft, int hop, int n_frames, int pad, int reflect,
                                   float* frames) {
    shim_launch(logmel_frames, grid, block, signals, batch, n_samples, window, n_fft, hop,
                n_frames, pad, reflect, frames);
}

extern "C" void shim_logmel_power_mel(unsigned grid, unsigned block, const float2* spectrum,
                                      long long batch, int n_frames, int n_bins,
                                      const float* weights, const int* offsets, const int* starts,
                                      int n_mels, int exponent_kind, float half_power,
                                      float* mel) {
    shim_launch(logmel_power_mel, grid, block, spectrum, batch, n_frames, n_bins, weights,
                offsets, starts, n_mels, exponent_kind, half_power, mel);
}

extern "C" void shim_logmel_partial_max(unsigned grid, unsigned block, const float* values,
                                        long long batch, long long per_item, long long chunk,
                                        long long chunks, float* partial) {
    shim_launch(logmel_partial_max, grid, block, values, batch, per_item, chunk, chunks, partial);
}

extern "C" void shim_logmel_item_max(unsigned grid, unsigned block, const float* partial,
                                     long long batch, long long chunks, float* item_max) {
    shim_launch(logmel_item_max, grid, block, partial, batch, chunks, item_max);
}

extern "C" void shim_logmel_to_db(unsigned grid, unsigned block, float* values, long long batch,
                                  long long per_item, const float* item_max, float amin,
                                  int reference_is_max, float reference, int use_top_db,
                                  float top_db) {
    shim_launch(logmel_to_db, grid, block, values, batch, per_item, item_max, amin,
                reference_is_max, reference, use_top_db, top_db);
}
