// Batched log-mel spectrogram, equal to tessera-spectro's LogMelSpectrogram::compute_batch:
// framing and window (logmel_frames) -> real FFT (cuFFT, outside this file) -> power and mel
// projection (logmel_power_mel) -> per-item maximum (logmel_partial_max, logmel_item_max) ->
// decibels with the per-item reference and top_db floor (logmel_to_db).

// frames[(b * n_frames + t) * n_fft + k] = window[k] * x_b[t * hop + k - pad], where the signal
// is extended by zeros (reflect = 0) or by mirroring without repeating the edge (reflect = 1).
extern "C" __global__ void logmel_frames(const float* __restrict__ signals, long long batch,
                                         long long n_samples, const float* __restrict__ window,
                                         int n_fft, int hop, int n_frames, int pad, int reflect,
                                         float* __restrict__ frames) {
    TESSERA_GRID_STRIDE(index, batch * n_frames * n_fft) {
        const long long k = index % n_fft;
        const long long row = index / n_fft;
        const long long t = row % n_frames;
        const long long b = row / n_frames;
        long long position = t * hop + k - pad;
        float sample = 0.0f;
        if (position >= 0 && position < n_samples) {
            sample = signals[b * n_samples + position];
        } else if (reflect) {
            // The plan checks pad <= n_samples - 1, so one reflection lands inside.
            position = position < 0 ? -position : 2 * (n_samples - 1) - position;
            sample = signals[b * n_samples + position];
        }
        frames[index] = window[k] * sample;
    }
}

// mel[(b * n_mels + m) * n_frames + t] = sum_j weights[offsets[m] + j] * P[b, t, starts[m] + j],
// where P = |X|^2 (exponent 2), |X| (exponent 1) or (|X|^2)^half_power (otherwise), and the
// sparse filter rows are stored back to back (weights, offsets[m]..offsets[m + 1]).
extern "C" __global__ void logmel_power_mel(const float2* __restrict__ spectrum, long long batch,
                                            int n_frames, int n_bins,
                                            const float* __restrict__ weights,
                                            const int* __restrict__ offsets,
                                            const int* __restrict__ starts, int n_mels,
                                            int exponent_kind, float half_power,
                                            float* __restrict__ mel) {
    TESSERA_GRID_STRIDE(index, batch * n_mels * n_frames) {
        const long long t = index % n_frames;
        const long long bm = index / n_frames;
        const long long m = bm % n_mels;
        const long long b = bm / n_mels;
        const float2* bins = spectrum + (b * n_frames + t) * n_bins + starts[m];
        float sum = 0.0f;
        for (int j = offsets[m]; j < offsets[m + 1]; ++j) {
            const float2 c = bins[j - offsets[m]];
            float power = c.x * c.x + c.y * c.y;
            if (exponent_kind == 1) {
                power = sqrtf(power);
            } else if (exponent_kind == 2) {
                power = powf(power, half_power);
            }
            sum += weights[j] * power;
        }
        mel[index] = sum;
    }
}

// partial[b * chunks + c] = max of values[b * per_item + c * chunk .. + chunk] (clipped to the
// item), or the first non-finite value there, so that an overflow reaches the host.
extern "C" __global__ void logmel_partial_max(const float* __restrict__ values, long long batch,
                                              long long per_item, long long chunk,
                                              long long chunks, float* __restrict__ partial) {
    TESSERA_GRID_STRIDE(index, batch * chunks) {
        const long long c = index % chunks;
        const long long b = index / chunks;
        const long long begin = c * chunk;
        const long long end = begin + chunk < per_item ? begin + chunk : per_item;
        float best = TESSERA_NEG_INF;
        for (long long i = begin; i < end; ++i) {
            const float v = values[b * per_item + i];
            if (!isfinite(v)) {
                best = v;  // an overflowed power: the host reports it
                break;
            }
            best = fmaxf(best, v);
        }
        partial[index] = best;
    }
}

// item_max[b] = max of partial[b * chunks .. (b + 1) * chunks], or its first non-finite value.
extern "C" __global__ void logmel_item_max(const float* __restrict__ partial, long long batch,
                                           long long chunks, float* __restrict__ item_max) {
    TESSERA_GRID_STRIDE(b, batch) {
        float best = TESSERA_NEG_INF;
        for (long long c = 0; c < chunks; ++c) {
            const float v = partial[b * chunks + c];
            if (!isfinite(v)) {
                best = v;
                break;
            }
            best = fmaxf(best, v);
        }
        item_max[b] = best;
    }
}

// values = 10 log10(max(amin, S)) - 10 log10(max(amin, ref_b)), then max(., max_db_b - top_db)
// when use_top_db; ref_b is `reference` or, when reference_is_max, the item's maximum power.
extern "C" __global__ void logmel_to_db(float* __restrict__ values, long long batch,
                                        long long per_item, const float* __restrict__ item_max,
                                        float amin, int reference_is_max, float reference,
                                        int use_top_db, float top_db) {
    TESSERA_GRID_STRIDE(index, batch * per_item) {
        const long long b = index / per_item;
        const float ref = reference_is_max ? item_max[b] : reference;
        const float reference_db = 10.0f * log10f(fmaxf(amin, ref));
        float db = 10.0f * log10f(fmaxf(amin, values[index])) - reference_db;
        if (use_top_db) {
            const float max_db = 10.0f * log10f(fmaxf(amin, item_max[b])) - reference_db;
            db = fmaxf(db, max_db - top_db);
        }
        values[index] = db;
    }
}
