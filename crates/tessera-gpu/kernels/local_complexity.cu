// Local complexity (Humayun, Balestriero & Baraniuk, "Deep networks always grok and here is why",
// ICML 2024), equal to tessera-spline's LocalComplexityEstimator::compute on a
// PiecewiseLinearNet<f32>: the P vertices x ± r·v_p of every sample (lc_vertices), the forward
// pass of all B·P vertices layer by layer (lc_dense_forward), and per sample and counted layer
// the number of neurons whose pre-activation sign is not constant over the vertices
// (lc_neuron_changes, then lc_sample_counts), with the vertices the CPU must recompute where
// the error bounds leave a count open (lc_vertex_flags).
//
// Counts are integers, so "equal" means exactly equal, but the GPU sums a dot product in
// another order than the CPU's GEMM. Every pre-activation therefore carries a bound on how far
// the CPU's value can lie from this one (a running forward error analysis, Higham, "Accuracy
// and Stability of Numerical Algorithms", §3.1): a neuron whose sign pattern the bound cannot
// settle is flagged, and the host recomputes that sample on the CPU.

// vertices[(s * P + p) * dim + k] = x[s, k] + radius * frame[p, k] for p < half and
// x[s, k] - radius * frame[p - half, k] otherwise (P = 2 * half), rounded as the CPU rounds.
extern "C" __global__ void lc_vertices(const float* __restrict__ x, long long samples, int dim,
                                       const float* __restrict__ frame, int half, float radius,
                                       float* __restrict__ vertices) {
    const long long n_vertices = 2LL * half;
    TESSERA_GRID_STRIDE(index, samples * n_vertices * dim) {
        const long long k = index % dim;
        const long long row = index / dim;
        const long long p = row % n_vertices;
        const long long s = row / n_vertices;
        const float step = radius * frame[(p % half) * dim + k];
        const float value = x[s * dim + k];
        vertices[index] = p < half ? value + step : value - step;
    }
}

// One affine layer on `rows` input rows, one thread per (row, neuron):
//   pre[row, o]  = (sum_k W[o, k] * h[row, k] + b[o]) (+ skip[row, o])
// with the weight stored transposed, weight_t[k * out_dim + o] = W[o, k], so that the threads
// of a warp (consecutive o, same row) read consecutive weights and one shared input value.
// The sum follows the CPU's GEMM (matrixmultiply, which ndarray uses for f32): blocks of `kc`
// consecutive k, each accumulated from 0 in k order with fused multiply-adds when `fused`
// (its FMA kernels) or rounded products and sums otherwise, and added to the running total
// block by block. Where the host's GEMM does exactly that, pre equals the CPU's bit for bit.
//   post[row, o] = pre > 0 ? pre : pre * slope
// summed in k order, each product and sum rounded separately (the source is compiled with
// --fmad=false). pre_error bounds |pre - pre_cpu| for a CPU that sums the same terms in any
// order (with or without fused multiply-add), starting from inputs within input_error:
//   2 gamma (A + D) + D,  A = sum |W||h| + |b| + |skip|,  D = sum |W| dh + dskip,
// gamma = m u / (1 - m u) with m = in_dim + 2 and u = 2^-24, times `safety` (the rounding of
// the bound itself) plus `underflow` (subnormal products). It is exactly 0 when every term is
// exactly zero and the inputs are exact: then both devices compute ±0. post_error propagates
// the bound through the activation (Lipschitz constant max(1, |slope|) plus the rounding of
// pre * slope).
extern "C" __global__ void lc_dense_forward(
    const float* __restrict__ input, const float* __restrict__ input_error, long long rows,
    int in_dim, const float* __restrict__ weight_t, const float* __restrict__ bias, int out_dim,
    const float* __restrict__ skip, const float* __restrict__ skip_error, int has_skip,
    int kc, int fused, float slope, float gamma, float safety, float underflow,
    float* __restrict__ pre,
    float* __restrict__ pre_error, float* __restrict__ post, float* __restrict__ post_error) {
    TESSERA_GRID_STRIDE(index, rows * out_dim) {
        const long long o = index % out_dim;
        const long long row = index / out_dim;
        const float* h = input + row * in_dim;
        const float* dh = input_error + row * in_dim;
        float sum = 0.0f;
        float block = 0.0f;
        float magnitude = 0.0f;
        float spread = 0.0f;
        int inexact_input = 0;
        for (int k = 0; k < in_dim; ++k) {
            const float w = weight_t[(long long)k * out_dim + o];
            block = fused ? fmaf(w, h[k], block) : block + w * h[k];
            if ((k + 1) % kc == 0 || k + 1 == in_dim) {
                sum += block;
                block = 0.0f;
            }
            magnitude += fabsf(w) * fabsf(h[k]);
            if (dh[k] != 0.0f && w != 0.0f) {
                spread += fabsf(w) * dh[k];
                inexact_input = 1;
            }
        }
        sum += bias[o];
        magnitude += fabsf(bias[o]);
        if (has_skip) {
            const float v = skip[index];
            const float dv = skip_error[index];
            sum += v;
            magnitude += fabsf(v);
            if (dv != 0.0f) {
                spread += dv;
                inexact_input = 1;
            }
        }
        float error = 0.0f;
        if (magnitude != 0.0f || inexact_input) {
            error = (2.0f * gamma * (magnitude + spread) + spread) * safety + underflow;
        }
        pre[index] = sum;
        pre_error[index] = error;
        post[index] = sum > 0.0f ? sum : sum * slope;
        float out_error = 0.0f;
        if (error != 0.0f) {
            const float lipschitz = fmaxf(1.0f, fabsf(slope));
            const float unit = 5.9604645e-8f;  // 2^-24
            out_error =
                (lipschitz * error + unit * fabsf(slope) * (2.0f * fabsf(sum) + error)) * safety +
                underflow;
        }
        post_error[index] = out_error;
    }
}

// status[s * width + i] for neuron i of sample s, from the pre-activations of its P vertices
// (rows s * P .. s * P + P - 1 of `pre`, width columns):
//   bit 0: the sign (-1, 0, +1, with NaN as 0, as tessera-spline's sign_changes) is not
//          constant over the vertices;
//   bit 1: the CPU's answer may differ: some vertex's sign is not settled by its error bound
//          (|z| > error, or error = 0 for an exact value), unless two settled vertices already
//          differ in sign (a change either way).
extern "C" __global__ void lc_neuron_changes(const float* __restrict__ pre,
                                             const float* __restrict__ error, long long samples,
                                             int n_vertices, int width,
                                             int* __restrict__ status) {
    TESSERA_GRID_STRIDE(index, samples * width) {
        const long long i = index % width;
        const long long s = index / width;
        const long long base = s * n_vertices * width + i;
        int first = 0;
        int changed = 0;
        int all_settled = 1;
        int settled_positive = 0;
        int settled_negative = 0;
        int settled_zero = 0;
        for (int p = 0; p < n_vertices; ++p) {
            const float z = pre[base + (long long)p * width];
            const float e = error[base + (long long)p * width];
            const int sign = (z > 0.0f) - (z < 0.0f);
            if (p == 0) {
                first = sign;
            } else if (sign != first) {
                changed = 1;
            }
            if (e == 0.0f || fabsf(z) > e) {
                settled_positive |= sign > 0;
                settled_negative |= sign < 0;
                settled_zero |= sign == 0;
            } else {
                all_settled = 0;
            }
        }
        const int surely_changed = settled_positive + settled_negative + settled_zero >= 2;
        status[index] = changed | (all_settled || surely_changed ? 0 : 2);
    }
}

// counts[s * slots + slot] = number of neurons of sample s with status bit 0 set, and
// uncertain[s * slots + slot] = 1 when any of them has bit 1 set (one thread per sample).
extern "C" __global__ void lc_sample_counts(const int* __restrict__ status, long long samples,
                                            int width, int slot, int slots,
                                            int* __restrict__ counts,
                                            int* __restrict__ uncertain) {
    TESSERA_GRID_STRIDE(s, samples) {
        int count = 0;
        int unsettled = 0;
        for (int i = 0; i < width; ++i) {
            const int v = status[s * width + i];
            count += v & 1;
            unsettled |= (v >> 1) & 1;
        }
        counts[s * slots + slot] = count;
        uncertain[s * slots + slot] = unsettled;
    }
}

// flags[s * P + p] |= 1 when vertex p of sample s holds, in a neuron whose status has bit 1 set
// (count left open), a value its bound does not settle: the CPU recomputes that vertex, and
// with the settled values of the others the neuron's count becomes exact. One thread per
// (sample, vertex); the launches of successive layers accumulate into the same flags.
extern "C" __global__ void lc_vertex_flags(const float* __restrict__ pre,
                                           const float* __restrict__ error,
                                           const int* __restrict__ status, long long samples,
                                           int n_vertices, int width, int* __restrict__ flags) {
    TESSERA_GRID_STRIDE(index, samples * n_vertices) {
        const long long s = index / n_vertices;
        const float* z = pre + index * width;
        const float* e = error + index * width;
        const int* open = status + s * width;
        int needed = flags[index];
        for (int i = 0; i < width && !needed; ++i) {
            if ((open[i] & 2) && !(e[i] == 0.0f || fabsf(z[i]) > e[i])) {
                needed = 1;
            }
        }
        flags[index] = needed;
    }
}
