//! The matrix products of training and curvature, split across the rayon pool.

use ndarray::linalg::general_mat_mul;
use ndarray::parallel::prelude::*;
use ndarray::{ArrayBase, Axis, Data, DataMut, Ix2};

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
        general_mat_mul(alpha, a, b, beta, c);
        return;
    }
    let block = long.div_ceil(threads).next_multiple_of(SPLIT_ALIGN);
    let (a, b) = (a.view(), b.view());
    if split_rows {
        a.axis_chunks_iter(Axis(0), block)
            .into_par_iter()
            .zip(c.axis_chunks_iter_mut(Axis(0), block))
            .for_each(|(a_rows, mut c_rows)| {
                general_mat_mul(alpha, &a_rows, &b, beta, &mut c_rows)
            });
    } else {
        b.axis_chunks_iter(Axis(1), block)
            .into_par_iter()
            .zip(c.axis_chunks_iter_mut(Axis(1), block))
            .for_each(|(b_cols, mut c_cols)| {
                general_mat_mul(alpha, &a, &b_cols, beta, &mut c_cols)
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn filled(rows: usize, cols: usize, seed: usize) -> Array2<f64> {
        Array2::from_shape_fn((rows, cols), |(i, j)| {
            (((i * 131 + j * 71 + seed * 17) % 97) as f64 / 13.0 - 3.5).sin()
        })
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
                general_mat_mul(0.7, &a, &b, 0.3, &mut want);
                let mut got = c0.clone();
                pool.install(|| gemm(0.7, &a, &b, 0.3, &mut got));
                assert_eq!(got, want, "{m}×{k}·{k}×{n}");
                let mut got_view = c0.clone();
                pool.install(|| gemm(0.7, &a.view(), &bt.t(), 0.3, &mut got_view.view_mut()));
                assert_eq!(got_view, want, "views {m}×{k}·{k}×{n}");
                let (a32, b32) = (a.mapv(|v| v as f32), b.mapv(|v| v as f32));
                let mut want32 = c0.mapv(|v| v as f32);
                general_mat_mul(0.7, &a32, &b32, 0.3, &mut want32);
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
