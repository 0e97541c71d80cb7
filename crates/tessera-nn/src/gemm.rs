//! The matrix products of training and curvature, split across the rayon pool.
//!
//! Each block is one call of the `gemm` crate (faer's kernels, also candle's CPU matmul):
//! best of 7 on this project's 2-core AVX2 machine it ran the products of the benchmark MLP and
//! CNN at 37–44 GFMA/s against 34–41 for matrixmultiply (ndarray's `general_mat_mul`), 7–20 %
//! faster on every shape. Its entry point takes raw pointers and strides, hence the one
//! `unsafe` block of the crate.

use ndarray::linalg::general_mat_mul;
use ndarray::parallel::prelude::*;
use ndarray::{ArrayBase, ArrayView2, ArrayViewMut2, Axis, Data, DataMut, Ix2};

use crate::Float;

/// Below this many multiply–adds a product runs as one call (a task costs a few µs).
const PARALLEL_MIN_FMAS: usize = 1 << 18;
/// Blocks are whole multiples of this many rows (or columns): a multiple of every register
/// tile and cache block of matrixmultiply's kernels, so each block's tiles line up with those
/// of one big call and every entry is computed by exactly the same instructions (edge tiles
/// round differently).
const SPLIT_ALIGN: usize = 64;

/// `C ← α·A·B + β·C`, like `ndarray::linalg::general_mat_mul`, with the larger dimension of
/// `C` (rows with those of `A`, or columns with those of `B`) split into one contiguous,
/// tile-aligned block per rayon thread. Every entry of `C` is still one dot product over the
/// whole inner dimension, computed by the same kernel instructions as in one call, so the
/// result does not depend on the number of threads (checked bit for bit in the tests) and
/// training stays deterministic.
pub(crate) fn gemm<F, S1, S2, S3>(
    alpha: F,
    a: &ArrayBase<S1, Ix2>,
    b: &ArrayBase<S2, Ix2>,
    beta: F,
    c: &mut ArrayBase<S3, Ix2>,
) where
    F: Float,
    S1: Data<Elem = F>,
    S2: Data<Elem = F>,
    S3: DataMut<Elem = F>,
{
    let (m, k) = a.dim();
    let n = b.ncols();
    let threads = rayon::current_num_threads();
    let split_rows = m >= n;
    let long = if split_rows { m } else { n };
    if threads < 2 || m * n * k < PARALLEL_MIN_FMAS || long < 2 * SPLIT_ALIGN {
        product(alpha, a.view(), b.view(), beta, c.view_mut());
        return;
    }
    let block = long.div_ceil(threads).next_multiple_of(SPLIT_ALIGN);
    let (a, b) = (a.view(), b.view());
    if split_rows {
        a.axis_chunks_iter(Axis(0), block)
            .into_par_iter()
            .zip(c.axis_chunks_iter_mut(Axis(0), block))
            .for_each(|(a_rows, c_rows)| product(alpha, a_rows, b, beta, c_rows));
    } else {
        b.axis_chunks_iter(Axis(1), block)
            .into_par_iter()
            .zip(c.axis_chunks_iter_mut(Axis(1), block))
            .for_each(|(b_cols, c_cols)| product(alpha, a, b_cols, beta, c_cols));
    }
}

/// `C ← α·A·B + β·C` on the calling thread (`β = 0`: `C` is not read, so a NaN in it does not
/// propagate, as with BLAS). Views with a negative stride (never made by this crate) and empty
/// inner dimensions go to ndarray's product instead.
pub(crate) fn product<F: Float>(
    alpha: F,
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    beta: F,
    mut c: ArrayViewMut2<'_, F>,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert!(
        b.nrows() == k && c.dim() == (m, n),
        "product of {m}×{k} and {}×{n} into {:?}",
        b.nrows(),
        c.dim()
    );
    if m == 0 || n == 0 {
        return;
    }
    let negative = [a.strides(), b.strides(), c.strides()]
        .concat()
        .iter()
        .any(|&s| s < 0);
    if k == 0 || negative {
        general_mat_mul(alpha, &a, &b, beta, &mut c);
        return;
    }
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    let read_c = beta != F::zero();
    // SAFETY: the three pointers and their strides come from live views of exactly the shapes
    // passed (`a`: m×k, `b`: k×n, `c`: m×n, checked above), all strides non-negative, so `gemm`
    // touches only elements of those views; `c` is a unique borrow, so it aliases neither
    // operand; `F` is `f32` or `f64` (sealed), types `gemm` implements. `gemm` computes
    // `dst ← α_gemm·dst + β_gemm·lhs·rhs`, so our `β` is its `alpha` and our `α` its `beta`;
    // with `read_dst = false` it does not read `c`.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_cs,
            c_rs,
            read_c,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            beta,
            alpha,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use ndarray::Array2;

    fn filled(rows: usize, cols: usize, seed: usize) -> Array2<f64> {
        Array2::from_shape_fn((rows, cols), |(i, j)| {
            (((i * 131 + j * 71 + seed * 17) % 97) as f64 / 13.0 - 3.5).sin()
        })
    }

    /// `α·A·B + β·C` by the definition, in f64.
    fn naive(
        alpha: f64,
        a: &Array2<f64>,
        b: &Array2<f64>,
        beta: f64,
        c: &Array2<f64>,
    ) -> Array2<f64> {
        Array2::from_shape_fn(c.dim(), |(i, j)| {
            let dot: f64 = (0..a.ncols()).map(|t| a[[i, t]] * b[[t, j]]).sum();
            alpha * dot + if beta == 0.0 { 0.0 } else { beta * c[[i, j]] }
        })
    }

    #[test]
    fn products_match_the_definition_for_every_layout() {
        for &(m, k, n) in &[(1, 1, 1), (7, 5, 3), (33, 17, 65), (64, 288, 20), (3, 0, 4)] {
            let a = filled(m, k, 1);
            let b = filled(k, n, 2);
            let c0 = filled(m, n, 3);
            for (alpha, beta) in [(1.0, 0.0), (0.7, 0.3), (-2.0, 1.0)] {
                let want = naive(alpha, &a, &b, beta, &c0);
                // Row-major, transposed (column-major) and reversed (negative-stride) operands.
                let at = a.t().as_standard_layout().to_owned();
                let bt = b.t().as_standard_layout().to_owned();
                let a_rev = a.slice(ndarray::s![..;-1, ..]).to_owned();
                for (av, bv) in [
                    (a.view(), b.view()),
                    (at.t(), bt.t()),
                    (a.view(), bt.t()),
                    (a_rev.slice(ndarray::s![..;-1, ..]), b.view()),
                ] {
                    let mut got = c0.clone();
                    product(alpha, av, bv, beta, got.view_mut());
                    for (g, w) in got.iter().zip(&want) {
                        assert_relative_eq!(*g, *w, epsilon = 1e-12, max_relative = 1e-12);
                    }
                }
                // Into a transposed output.
                let mut got_t = c0.t().as_standard_layout().to_owned();
                product(
                    alpha,
                    a.view(),
                    b.view(),
                    beta,
                    got_t.view_mut().reversed_axes(),
                );
                for (g, w) in got_t.t().iter().zip(&want) {
                    assert_relative_eq!(*g, *w, epsilon = 1e-12, max_relative = 1e-12);
                }
            }
            // β = 0 does not read C: a NaN there does not reach the result.
            let mut nan = Array2::from_elem((m, n), f64::NAN);
            product(1.0, a.view(), b.view(), 0.0, nan.view_mut());
            assert!(nan.iter().all(|v| v.is_finite()), "{m}×{k}×{n}");
        }
    }

    #[test]
    fn split_products_equal_one_call_bit_for_bit() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        // Tall (row split), wide (column split), transposed operands, small (one call).
        for &(m, k, n) in &[(256, 300, 70), (10, 256, 512), (7, 5, 3), (517, 129, 517)] {
            let a = filled(m, k, 1);
            let bt = filled(n, k, 2);
            let c0 = filled(m, n, 3);
            for transposed_b in [false, true] {
                let b = if transposed_b {
                    bt.t().to_owned()
                } else {
                    bt.t().as_standard_layout().to_owned()
                };
                let mut want = c0.clone();
                product(0.7, a.view(), b.view(), 0.3, want.view_mut());
                let mut got = c0.clone();
                pool.install(|| gemm(0.7, &a, &b, 0.3, &mut got));
                assert_eq!(got, want, "{m}×{k}·{k}×{n}");
                // The same operand as a transposed view: its own single call is the reference
                // (the kernels may order a column-major operand's sums differently).
                let mut want_view = c0.clone();
                product(0.7, a.view(), bt.t(), 0.3, want_view.view_mut());
                let mut got_view = c0.clone();
                pool.install(|| gemm(0.7, &a.view(), &bt.t(), 0.3, &mut got_view.view_mut()));
                assert_eq!(got_view, want_view, "views {m}×{k}·{k}×{n}");
                let (a32, b32) = (a.mapv(|v| v as f32), b.mapv(|v| v as f32));
                let mut want32 = c0.mapv(|v| v as f32);
                product(0.7, a32.view(), b32.view(), 0.3, want32.view_mut());
                for threads in [2, 3] {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    let mut got = c0.mapv(|v| v as f32);
                    pool.install(|| gemm(0.7, &a32, &b32, 0.3, &mut got));
                    assert_eq!(got, want32, "f32, {threads} threads, {m}×{k}·{k}×{n}");
                }
            }
        }
    }
}
