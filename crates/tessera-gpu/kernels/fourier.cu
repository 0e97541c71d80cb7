// EfficientTrain's low-frequency crop (Wang et al., "EfficientTrain: Exploring Generalized
// Curriculum Learning for Training Visual Backbones", ICCV 2023), equal to tessera-augment's
// FourierCrop::crop_batch: a 2-D real FFT of every channel (cuFFT R2C, outside this file) ->
// gather of the kept low-frequency bins, scaled by 1 / (H W) (fourier_gather) -> 2-D complex
// inverse FFT of the small spectrum (cuFFT C2C, outside) -> real part (fourier_real_part).

// cropped[(n * out_height + i) * out_width + j] = scale * X_n[kept_rows[i], kept_cols[j]], where
// X_n is the full 2-D spectrum of channel n and `spectrum` holds its non-redundant half
// (height × (width / 2 + 1), cuFFT's R2C layout). A column beyond width / 2 is read through
// Hermitian symmetry, X[k, l] = conj(X[(height - k) mod height, width - l]), which is what the
// CPU's row-wise real FFT followed by column FFTs computes for those bins.
extern "C" __global__ void fourier_gather(const float2* __restrict__ spectrum, long long items,
                                          int height, int width,
                                          const int* __restrict__ kept_rows, int out_height,
                                          const int* __restrict__ kept_cols, int out_width,
                                          float scale, float2* __restrict__ cropped) {
    const long long half = width / 2 + 1;
    TESSERA_GRID_STRIDE(index, items * out_height * out_width) {
        const long long j = index % out_width;
        const long long rest = index / out_width;
        const long long i = rest % out_height;
        const long long n = rest / out_height;
        long long row = kept_rows[i];
        long long col = kept_cols[j];
        float sign = 1.0f;
        if (col > width / 2) {
            col = width - col;
            row = (height - row) % height;
            sign = -1.0f;
        }
        const float2 value = spectrum[(n * height + row) * half + col];
        float2 out;
        out.x = value.x * scale;
        out.y = (sign * value.y) * scale;
        cropped[index] = out;
    }
}

// out[index] = Re values[index].
extern "C" __global__ void fourier_real_part(const float2* __restrict__ values, long long count,
                                             float* __restrict__ out) {
    TESSERA_GRID_STRIDE(index, count) {
        out[index] = values[index].x;
    }
}
