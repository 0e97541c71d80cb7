// Batch augmentations on device tensors, equal to tessera-augment's mixup and spectrogram masks.
// The random draws (partners, lambdas, mask ranges) are made on the host by tessera-augment's
// own samplers, so that a seed gives the same augmentation on either device.

// out[b, i] = lambda_b * a[b, i] + (1 - lambda_b) * other[partner_b, i]
// (tessera-augment's mix_items / Mixup::mix_batch for one flattened item of `per_item` values).
extern "C" __global__ void mixup(const float* __restrict__ a, const float* __restrict__ other,
                                 const long long* __restrict__ partners,
                                 const float* __restrict__ lambdas, long long batch,
                                 long long per_item, float* __restrict__ out) {
    TESSERA_GRID_STRIDE(index, batch * per_item) {
        const long long b = index / per_item;
        const long long i = index % per_item;
        const float lambda = lambdas[b];
        const float complement = 1.0f - lambda;
        out[index] = lambda * a[index] + complement * other[partners[b] * per_item + i];
    }
}

// Fills, in place, every cell of item b that lies in one of its rectangles
// rects[4 r .. 4 r + 4] = (freq_start, freq_end, time_start, time_end), r in
// rect_offsets[b] .. rect_offsets[b + 1]. An item holds `planes` spectrograms of
// n_freq x n_time (channels); every plane of an item gets the item's rectangles.
// CutOutSpec is one rectangle per item; SpecAugment's time masks span all bins and its
// frequency masks span the item's valid frames.
extern "C" __global__ void fill_rectangles(float* __restrict__ values, long long batch,
                                           long long planes, int n_freq, int n_time,
                                           const int* __restrict__ rects,
                                           const int* __restrict__ rect_offsets, float fill) {
    TESSERA_GRID_STRIDE(index, batch * planes * n_freq * n_time) {
        const int t = (int)(index % n_time);
        const int f = (int)((index / n_time) % n_freq);
        const long long b = index / ((long long)n_time * n_freq * planes);
        for (int r = rect_offsets[b]; r < rect_offsets[b + 1]; ++r) {
            const int* rect = rects + 4 * r;
            if (f >= rect[0] && f < rect[1] && t >= rect[2] && t < rect[3]) {
                values[index] = fill;
                break;
            }
        }
    }
}
