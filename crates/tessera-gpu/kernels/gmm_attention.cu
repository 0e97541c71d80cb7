// Gaussian-mixture logit mask fused with masked softmax attention, equal to tessera-gmm's
// GaussianMixtureMask and attention_forward / attention_backward (Chen et al., "Gaussian Mixture
// Mask Attention"; reference code https://github.com/CatworldLee/Gaussian-Mixture-Mask-Attention).
//
// Layouts (row-major, as tessera-gmm): q, k (batch, heads, tokens, d_head); v, out
// (batch, heads, tokens, d_value); probabilities and logit gradients (batch, heads, tokens,
// tokens); masks and their gradients (heads, tokens, tokens); alpha, sigma (kernels, heads).
//
// A mask operand is described by `mask_kind`: 0 none, 1 a dense (heads, tokens, tokens) array,
// 2 the Gaussian mixture read from its table of (heads, rows * cols) offset-class values
// (gmm_class_values, recomputed from alpha / sigma on every call; tokens: `extra` leading ones
// without a position, then a row-major grid of `cols` columns). The mixture depends on the
// offset class only, so the table gives gmm_mask's values bit for bit with one load per logit
// instead of `kernels` exponentials, and no tokens^2 mask is ever formed. `combine` 0 multiplies the logits by the
// mask, 1 adds it; `neutral` (1 or 0) is the mask value of the extra tokens.

// The variance floor of tessera-gmm (VARIANCE_EPSILON): sigma^2 + 1e-5 keeps sigma = 0 finite.
#define TESSERA_GMM_VARIANCE_EPSILON 1e-5f

// Squared grid distance of grid tokens gi and gj (indices after the extra tokens).
__device__ __forceinline__ float gmm_squared_distance(long long gi, long long gj, int cols) {
    const long long dr = gi / cols - gj / cols;
    const long long dc = gi % cols - gj % cols;
    return (float)(dr * dr + dc * dc);
}

// The precision 1 / (2 (sigma^2 + eps)) of Gaussian `at`, as tessera-gmm computes it.
__device__ __forceinline__ float gmm_precision(const float* sigma, long long at) {
    const float s = sigma[at];
    return 1.0f / (2.0f * (s * s + TESSERA_GMM_VARIANCE_EPSILON));
}

// G[h, i, j] = sum_k alpha[k, h] exp(-d2_ij * precision[k, h]), summed over k in order from 0
// (tessera-gmm's order); `neutral` when i or j is an extra token.
__device__ __forceinline__ float gmm_mask_value(const float* alpha, const float* sigma, int heads,
                                                int kernels, int cols, int extra, float neutral,
                                                long long h, long long i, long long j) {
    if (i < extra || j < extra) {
        return neutral;
    }
    const float d2 = gmm_squared_distance(i - extra, j - extra, cols);
    float value = 0.0f;
    for (int k = 0; k < kernels; ++k) {
        const long long at = (long long)k * heads + h;
        value += alpha[at] * expf(-d2 * gmm_precision(sigma, at));
    }
    return value;
}

// table[h, o] = the mixture at offset class o = dr * cols + dc (squared distance dr^2 + dc^2),
// summed as gmm_mask_value sums it.
extern "C" __global__ void gmm_class_values(const float* __restrict__ alpha,
                                            const float* __restrict__ sigma, int heads,
                                            int kernels, int rows, int cols,
                                            float* __restrict__ table) {
    const long long classes = (long long)rows * cols;
    TESSERA_GRID_STRIDE(index, heads * classes) {
        const long long o = index % classes;
        const long long h = index / classes;
        // Tokens 0 and o of a grid without extra tokens are at offset class o.
        table[index] = gmm_mask_value(alpha, sigma, heads, kernels, cols, 0, 0.0f, h, 0, o);
    }
}

// The mixture of tokens i, j from the class table (mask kind 2).
__device__ __forceinline__ float gmm_table_value(const float* table, int cols, int extra,
                                                 long long classes, float neutral, long long h,
                                                 long long i, long long j) {
    if (i < extra || j < extra) {
        return neutral;
    }
    const long long gi = i - extra;
    const long long gj = j - extra;
    const long long dr = gi / cols - gj / cols;
    const long long dc = gi % cols - gj % cols;
    const long long o = (dr < 0 ? -dr : dr) * cols + (dc < 0 ? -dc : dc);
    return table[h * classes + o];
}

// mask[h, i, j] = G[h, i, j] for a grid of `tokens` tokens (extra ones included).
extern "C" __global__ void gmm_mask(const float* __restrict__ alpha,
                                    const float* __restrict__ sigma, int heads, int kernels,
                                    int cols, int extra, long long tokens, float neutral,
                                    float* __restrict__ mask) {
    TESSERA_GRID_STRIDE(index, heads * tokens * tokens) {
        const long long j = index % tokens;
        const long long i = (index / tokens) % tokens;
        const long long h = index / (tokens * tokens);
        mask[index] = gmm_mask_value(alpha, sigma, heads, kernels, cols, extra, neutral, h, i, j);
    }
}

// One thread per (b, h, i): the logits S_ij = scale * <q_i, k_j>, combined with the mask
// (`mask` is the dense array for kind 1, the class table for kind 2),
// a softmax over j with the maximum subtracted (tessera-core's softmax: exp, sum in order,
// divide), written to probs[b, h, i, :] (the thread's own row, also its scratch), then
// out[b, h, i, :] = sum_j P_ij v_j.
extern "C" __global__ void gmm_attention_forward(
    const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
    long long batch, int heads, long long tokens, int d_head, int d_value, float scale,
    int mask_kind, int combine, const float* __restrict__ mask, int cols, int extra,
    float neutral, float* __restrict__ out, float* __restrict__ probs) {
    TESSERA_GRID_STRIDE(index, batch * heads * tokens) {
        const long long i = index % tokens;
        const long long plane = index / tokens;
        const long long h = plane % heads;
        const float* q_row = q + index * d_head;
        const float* k_plane = k + plane * tokens * d_head;
        const float* v_plane = v + plane * tokens * d_value;
        float* row = probs + index * tokens;
        float max = TESSERA_NEG_INF;
        for (long long j = 0; j < tokens; ++j) {
            float dot = 0.0f;
            for (int d = 0; d < d_head; ++d) {
                dot += q_row[d] * k_plane[j * d_head + d];
            }
            float logit = scale * dot;
            if (mask_kind != 0) {
                const float g =
                    mask_kind == 1
                        ? mask[(h * tokens + i) * tokens + j]
                        : gmm_table_value(mask, cols, extra, tokens - extra, neutral, h, i, j);
                logit = combine == 0 ? logit * g : logit + g;
            }
            row[j] = logit;
            max = fmaxf(max, logit);
        }
        float sum = 0.0f;
        for (long long j = 0; j < tokens; ++j) {
            row[j] = expf(row[j] - max);
            sum += row[j];
        }
        for (long long j = 0; j < tokens; ++j) {
            row[j] = row[j] / sum;
        }
        for (int e = 0; e < d_value; ++e) {
            float acc = 0.0f;
            for (long long j = 0; j < tokens; ++j) {
                acc += row[j] * v_plane[j * d_value + e];
            }
            out[index * d_value + e] = acc;
        }
    }
}

// out[p, r, c] = alpha * sum_t A(p, r, t) B(p, t, c) for `planes` independent products, where
// A(p, r, t) is a[p, r, t] (a_trans = 0, a stored (rows, inner)) or a[p, t, r] (a_trans = 1,
// stored (inner, rows)), and B likewise with b_trans: the backward pass's dP = dO V^T,
// dV = P^T dO, dQ = scale dS K and dK = scale dS^T Q.
extern "C" __global__ void attention_batched_matmul(const float* __restrict__ a, int a_trans,
                                                    const float* __restrict__ b, int b_trans,
                                                    long long planes, long long rows,
                                                    long long inner, long long cols_out,
                                                    float alpha, float* __restrict__ out) {
    TESSERA_GRID_STRIDE(index, planes * rows * cols_out) {
        const long long c = index % cols_out;
        const long long r = (index / cols_out) % rows;
        const long long p = index / (rows * cols_out);
        const float* a_plane = a + p * rows * inner;
        const float* b_plane = b + p * inner * cols_out;
        float acc = 0.0f;
        for (long long t = 0; t < inner; ++t) {
            const float x = a_trans ? a_plane[t * rows + r] : a_plane[r * inner + t];
            const float y = b_trans ? b_plane[c * inner + t] : b_plane[t * cols_out + c];
            acc += x * y;
        }
        out[index] = alpha * acc;
    }
}

// row_dot[b, h, i] = sum_l dP[b, h, i, l] P[b, h, i, l]: the softmax backward's row term.
extern "C" __global__ void attention_row_dot(const float* __restrict__ grad_probs,
                                             const float* __restrict__ probs, long long rows,
                                             long long tokens, float* __restrict__ row_dot) {
    TESSERA_GRID_STRIDE(index, rows) {
        const float* d_row = grad_probs + index * tokens;
        const float* p_row = probs + index * tokens;
        float acc = 0.0f;
        for (long long l = 0; l < tokens; ++l) {
            acc += d_row[l] * p_row[l];
        }
        row_dot[index] = acc;
    }
}

// In place, dP -> dS' = P (dP - row_dot): the gradient of the combined logits.
extern "C" __global__ void attention_softmax_backward(float* __restrict__ grad,
                                                      const float* __restrict__ probs,
                                                      const float* __restrict__ row_dot,
                                                      long long rows, long long tokens) {
    TESSERA_GRID_STRIDE(index, rows * tokens) {
        grad[index] = probs[index] * (grad[index] - row_dot[index / tokens]);
    }
}

// One thread per (h, i, j): the mask gradient summed over the batch, dG = sum_b dS'_b S_b
// (combine 0, with S_b = scale <q_i, k_j> recomputed) or sum_b dS'_b (combine 1). The batch is
// summed in chunks of `batch_chunk` items and then over the chunks, tessera-gmm's order.
extern "C" __global__ void gmm_attention_grad_mask(
    const float* __restrict__ grad_logits, const float* __restrict__ q,
    const float* __restrict__ k, long long batch, int heads, long long tokens, int d_head,
    float scale, int combine, long long batch_chunk, float* __restrict__ grad_mask) {
    TESSERA_GRID_STRIDE(index, heads * tokens * tokens) {
        const long long j = index % tokens;
        const long long i = (index / tokens) % tokens;
        const long long h = index / (tokens * tokens);
        float total = 0.0f;
        for (long long first = 0; first < batch; first += batch_chunk) {
            const long long last = first + batch_chunk < batch ? first + batch_chunk : batch;
            float partial = 0.0f;
            for (long long b = first; b < last; ++b) {
                const long long plane = b * heads + h;
                float term = grad_logits[(plane * tokens + i) * tokens + j];
                if (combine == 0) {
                    const float* q_row = q + (plane * tokens + i) * d_head;
                    const float* k_row = k + (plane * tokens + j) * d_head;
                    float dot = 0.0f;
                    for (int d = 0; d < d_head; ++d) {
                        dot += q_row[d] * k_row[d];
                    }
                    term = term * (scale * dot);
                }
                partial += term;
            }
            total += partial;
        }
        grad_mask[index] = total;
    }
}

// In place, dS' -> dS = G * dS' (elementwise) for a multiplicative mask (dense, (heads, tokens, tokens)).
extern "C" __global__ void attention_apply_mask(float* __restrict__ grad,
                                                const float* __restrict__ mask, long long batch,
                                                int heads, long long tokens) {
    TESSERA_GRID_STRIDE(index, batch * heads * tokens * tokens) {
        const long long per_head = tokens * tokens;
        const long long h = (index / per_head) % heads;
        grad[index] = grad[index] * mask[h * per_head + index % per_head];
    }
}

// First pass of the parameter gradient: one thread per (h, offset class o = dr * cols + dc)
// sums dG over the token pairs (i, j) of the grid at that offset, visiting i and then j in
// ascending order (tessera-gmm's order): for each i, j's row is ri - dr then ri + dr and its
// column ci - dc then ci + dc.
extern "C" __global__ void gmm_class_grad(const float* __restrict__ grad_mask, int heads,
                                          int rows, int cols, int extra,
                                          float* __restrict__ class_grad) {
    const long long classes = (long long)rows * cols;
    const long long tokens = extra + classes;
    TESSERA_GRID_STRIDE(index, heads * classes) {
        const long long o = index % classes;
        const long long h = index / classes;
        const long long dr = o / cols;
        const long long dc = o % cols;
        const float* plane = grad_mask + h * tokens * tokens;
        float acc = 0.0f;
        for (long long gi = 0; gi < classes; ++gi) {
            const long long ri = gi / cols;
            const long long ci = gi % cols;
            const float* row = plane + (extra + gi) * tokens + extra;
            for (int side_r = 0; side_r < (dr == 0 ? 1 : 2); ++side_r) {
                const long long rj = side_r == 0 ? ri - dr : ri + dr;
                if (rj < 0 || rj >= rows) {
                    continue;
                }
                for (int side_c = 0; side_c < (dc == 0 ? 1 : 2); ++side_c) {
                    const long long cj = side_c == 0 ? ci - dc : ci + dc;
                    if (cj < 0 || cj >= cols) {
                        continue;
                    }
                    acc += row[rj * cols + cj];
                }
            }
        }
        class_grad[index] = acc;
    }
}

// Second pass: one thread per parameter; grad[k * heads + h] = dL/dalpha[k, h] =
// sum_o A[h, o] e_o and grad[K H + k * heads + h] = dL/dsigma[k, h] =
// alpha (sum_o A[h, o] e_o d2_o) sigma (2 p)^2, with e_o = exp(-d2_o p), p the precision.
extern "C" __global__ void gmm_parameter_grad(const float* __restrict__ class_grad,
                                              const float* __restrict__ alpha,
                                              const float* __restrict__ sigma, int heads,
                                              int kernels, int rows, int cols,
                                              float* __restrict__ grad) {
    const long long block = (long long)kernels * heads;
    const long long classes = (long long)rows * cols;
    TESSERA_GRID_STRIDE(index, 2 * block) {
        const long long at = index % block;
        const long long h = at % heads;
        const float p = gmm_precision(sigma, at);
        const float* summed = class_grad + h * classes;
        float da = 0.0f;
        float weighted = 0.0f;
        for (long long o = 0; o < classes; ++o) {
            const long long dr = o / cols;
            const long long dc = o % cols;
            const float d = (float)(dr * dr + dc * dc);
            const float e = expf(-d * p);
            da += summed[o] * e;
            weighted += summed[o] * e * d;
        }
        grad[index] = index < block ? da : alpha[at] * weighted * sigma[at] * (2.0f * p) * (2.0f * p);
    }
}

// First pass of the finiteness check of device-resident results: partial[c] = the number of
// NaN or infinite values in values[c * chunk .. (c + 1) * chunk] (clipped to len).
extern "C" __global__ void attention_nonfinite_partial(const float* __restrict__ values,
                                                       long long len, long long chunk,
                                                       long long chunks,
                                                       float* __restrict__ partial) {
    TESSERA_GRID_STRIDE(c, chunks) {
        const long long begin = c * chunk;
        const long long end = begin + chunk < len ? begin + chunk : len;
        float count = 0.0f;
        for (long long i = begin; i < end; ++i) {
            count += isfinite(values[i]) ? 0.0f : 1.0f;
        }
        partial[c] = count;
    }
}

// Second pass: total[0] = the sum of the partial counts (one thread).
extern "C" __global__ void attention_nonfinite_total(const float* __restrict__ partial,
                                                     long long chunks,
                                                     float* __restrict__ total) {
    TESSERA_GRID_STRIDE(index, 1) {
        float sum = 0.0f;
        for (long long c = 0; c < chunks; ++c) {
            sum += partial[c];
        }
        total[index] = sum;
    }
}
