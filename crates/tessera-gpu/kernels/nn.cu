// The elementwise parts of tessera-nn's Dense and Conv2d layers on the device; the products
// themselves are cuBLAS GEMMs (src/nn.rs). Layouts are tessera-nn's exactly:
//   dense activations (rows, features), conv activations NCHW, and the unrolled receptive
//   fields of one image a (C·kh·kw) × (oh·ow) matrix with row (c·kh + ky)·kw + kx and column
//   oy·ow + ox; a batch of them is stored image after image, (batch, C·kh·kw, oh·ow).
// A per-channel tensor is viewed as (outer, channels, inner): dense (rows, out, 1), conv
// (batch, out, oh·ow).

// values[(a·channels + c)·inner + i] += bias[c], then max(·, 0) when relu is set (a NaN stays
// NaN, as in the CPU's comparison-based ReLU).
extern "C" __global__ void nn_bias_add(float* __restrict__ values, long long outer, int channels,
                                       long long inner, const float* __restrict__ bias,
                                       int relu) {
    TESSERA_GRID_STRIDE(index, outer * channels * inner) {
        const long long c = (index / inner) % channels;
        float v = values[index] + bias[c];
        if (relu && v < 0.0f) {
            v = 0.0f;
        }
        values[index] = v;
    }
}

// grad[c] = sum over a of (sum over i of delta[(a·channels + c)·inner + i]), one thread per
// channel: each image's plane is summed from zero first and the planes are then added in
// order, the CPU's order (Dense: a column sum row by row; Conv2d: per-image plane sums).
extern "C" __global__ void nn_bias_grad(const float* __restrict__ delta, long long outer,
                                        int channels, long long inner,
                                        float* __restrict__ grad) {
    TESSERA_GRID_STRIDE(c, channels) {
        float total = 0.0f;
        for (long long a = 0; a < outer; ++a) {
            const float* plane = delta + (a * channels + c) * inner;
            float partial = 0.0f;
            for (long long i = 0; i < inner; ++i) {
                partial += plane[i];
            }
            total += partial;
        }
        grad[c] = total;
    }
}

// cols[(b·K + row)·P + p] = x[b, c, oy·sh + ky − ph, ox·sw + kx − pw], or 0 in the zero
// padding, with K = C·kh·kw, row = (c·kh + ky)·kw + kx, P = oh·ow, p = oy·ow + ox.
extern "C" __global__ void nn_im2col(const float* __restrict__ x, long long batch, int channels,
                                     int height, int width, int kernel_h, int kernel_w,
                                     int stride_h, int stride_w, int pad_h, int pad_w, int out_h,
                                     int out_w, float* __restrict__ cols) {
    const long long positions = (long long)out_h * out_w;
    const long long rows = (long long)channels * kernel_h * kernel_w;
    TESSERA_GRID_STRIDE(index, batch * rows * positions) {
        const long long p = index % positions;
        const long long image_row = index / positions;
        const long long row = image_row % rows;
        const long long b = image_row / rows;
        const long long kx = row % kernel_w;
        const long long ky = (row / kernel_w) % kernel_h;
        const long long c = row / ((long long)kernel_w * kernel_h);
        const long long iy = (p / out_w) * stride_h + ky - pad_h;
        const long long ix = (p % out_w) * stride_w + kx - pad_w;
        float v = 0.0f;
        if (iy >= 0 && iy < height && ix >= 0 && ix < width) {
            v = x[((b * channels + c) * height + iy) * width + ix];
        }
        cols[index] = v;
    }
}

// The adjoint of nn_im2col as a gather, one thread per input pixel (no atomics):
// dx[b, c, iy, ix] (+)= sum over (ky, kx), in that order, of cols[b, (c·kh + ky)·kw + kx,
// oy·ow + ox] for the one output position (oy, ox) with oy·sh + ky − ph = iy and
// ox·sw + kx − pw = ix, when it exists. The CPU's col2im adds the same terms in the same
// order, so accumulate = 1 (start from dx) or 0 (start from zero) reproduces it exactly.
extern "C" __global__ void nn_col2im(const float* __restrict__ cols, long long batch,
                                     int channels, int height, int width, int kernel_h,
                                     int kernel_w, int stride_h, int stride_w, int pad_h,
                                     int pad_w, int out_h, int out_w, int accumulate,
                                     float* __restrict__ dx) {
    const long long positions = (long long)out_h * out_w;
    const long long rows = (long long)channels * kernel_h * kernel_w;
    TESSERA_GRID_STRIDE(index, batch * channels * height * width) {
        const long long ix = index % width;
        const long long image_line = index / width;
        const long long iy = image_line % height;
        const long long image_channel = image_line / height;
        const long long c = image_channel % channels;
        const long long b = image_channel / channels;
        const float* image_cols = cols + b * rows * positions;
        float sum = accumulate ? dx[index] : 0.0f;
        for (int ky = 0; ky < kernel_h; ++ky) {
            const long long ty = iy + pad_h - ky;
            if (ty < 0 || ty % stride_h != 0 || ty / stride_h >= out_h) {
                continue;
            }
            const long long oy = ty / stride_h;
            for (int kx = 0; kx < kernel_w; ++kx) {
                const long long tx = ix + pad_w - kx;
                if (tx < 0 || tx % stride_w != 0 || tx / stride_w >= out_w) {
                    continue;
                }
                const long long ox = tx / stride_w;
                const long long row = (c * kernel_h + ky) * kernel_w + kx;
                sum += image_cols[row * positions + oy * out_w + ox];
            }
        }
        dx[index] = sum;
    }
}

// out[i] (+)= sum over b, in order, of partials[b·len + i]: the per-image weight gradients of
// a convolution (one strided-batched GEMM) summed over the images, one thread per output.
extern "C" __global__ void nn_sum_batch(const float* __restrict__ partials, long long batch,
                                        long long len, int accumulate, float* __restrict__ out) {
    TESSERA_GRID_STRIDE(index, len) {
        float sum = 0.0f;
        for (long long b = 0; b < batch; ++b) {
            sum += partials[b * len + index];
        }
        out[index] = accumulate ? out[index] + sum : sum;
    }
}
