//! The dense matrix–vector kernel behind `LinearOperator::apply` for row-major matrices.
//!
//! Written by hand because ndarray's own product (without a BLAS) reduces each row with one
//! scalar-width accumulator chain and is compiled for the baseline instruction set; the
//! Lanczos algorithms of this crate spend almost all their time here on dense operators, so
//! the product has to stream the matrix at memory speed. The kernel walks four rows at once
//! (each load of `x` feeds four fused multiply–adds) with two vector accumulators per row,
//! written with `pulp`'s explicit SIMD types so that it does not depend on the
//! auto-vectoriser; `pulp` picks the best instruction set at run time (AVX2/FMA on x86-64)
//! and falls back to scalar code elsewhere. Single-threaded it matches OpenBLAS's `dgemv`
//! on an n = 2000 matrix (docs/PERFORMANCE.md).

/// Scalars with a vectorised dense matrix–vector kernel (`f32` and `f64`); a supertrait of
/// [`crate::Float`], implemented here only.
pub trait DenseKernel: Sized {
    /// `y[i] = Σ_j a[i·ncols + j]·x[j]` for the `y.len()` rows stored row-major in `a`.
    /// Callers guarantee `a.len() == y.len() * ncols` and `x.len() == ncols`.
    fn gemv_row_major(a: &[Self], ncols: usize, x: &[Self], y: &mut [Self]);

    /// `y ← y − Aᵀ·h` for the `h.len()` rows of `A` stored row-major in `a`.
    /// Callers guarantee `a.len() == h.len() * y.len()`.
    fn gemv_transposed_sub(a: &[Self], h: &[Self], y: &mut [Self]);
}

pub(crate) fn gemv_row_major<F: DenseKernel>(a: &[F], ncols: usize, x: &[F], y: &mut [F]) {
    debug_assert_eq!(a.len(), y.len() * ncols);
    debug_assert_eq!(x.len(), ncols);
    F::gemv_row_major(a, ncols, x, y)
}

pub(crate) fn gemv_transposed_sub<F: DenseKernel>(a: &[F], h: &[F], y: &mut [F]) {
    debug_assert_eq!(a.len(), h.len() * y.len());
    F::gemv_transposed_sub(a, h, y)
}

/// One kernel per scalar type: a struct that `pulp` compiles per instruction set, and the
/// [`DenseKernel`] impl that dispatches to it.
macro_rules! dense_kernel {
    (
        $t:ty, $vec:ident, $kernel:ident, $transposed:ident, $as_simd:ident, $as_mut_simd:ident,
        $splat:ident, $fma:ident, $add:ident, $sum:ident
    ) => {
        struct $kernel<'a> {
            a: &'a [$t],
            ncols: usize,
            x: &'a [$t],
            y: &'a mut [$t],
        }

        impl pulp::WithSimd for $kernel<'_> {
            type Output = ();

            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, simd: S) {
                let Self { a, ncols, x, y } = self;
                if ncols == 0 {
                    y.fill(0.0);
                    return;
                }
                let (x_vec, x_tail) = S::$as_simd(x);
                let zero = simd.$splat(0.0);
                let row_dot_tail = |row: &[$t], acc: S::$vec| -> $t {
                    let head = simd.$sum(acc);
                    row[ncols - x_tail.len()..]
                        .iter()
                        .zip(x_tail)
                        .fold(head, |s, (&a, &b)| s + a * b)
                };
                let mut row_groups = a.chunks_exact(ROWS * ncols);
                let mut out_groups = y.chunks_exact_mut(ROWS);
                for (rows, out) in (&mut row_groups).zip(&mut out_groups) {
                    let r: [&[$t]; ROWS] =
                        std::array::from_fn(|i| &rows[i * ncols..(i + 1) * ncols]);
                    let v: [&[S::$vec]; ROWS] = std::array::from_fn(|i| S::$as_simd(r[i]).0);
                    let mut acc = [[zero; 2]; ROWS];
                    let mut pairs = x_vec.chunks_exact(2);
                    for (j, xp) in (&mut pairs).enumerate() {
                        for i in 0..ROWS {
                            acc[i][0] = simd.$fma(v[i][2 * j], xp[0], acc[i][0]);
                            acc[i][1] = simd.$fma(v[i][2 * j + 1], xp[1], acc[i][1]);
                        }
                    }
                    if let [x_last] = pairs.remainder() {
                        let j = x_vec.len() - 1;
                        for i in 0..ROWS {
                            acc[i][0] = simd.$fma(v[i][j], *x_last, acc[i][0]);
                        }
                    }
                    for i in 0..ROWS {
                        out[i] = row_dot_tail(r[i], simd.$add(acc[i][0], acc[i][1]));
                    }
                }
                for (row, out) in row_groups
                    .remainder()
                    .chunks_exact(ncols)
                    .zip(out_groups.into_remainder())
                {
                    let acc = S::$as_simd(row)
                        .0
                        .iter()
                        .zip(x_vec)
                        .fold(zero, |acc, (&a, &b)| simd.$fma(a, b, acc));
                    *out = row_dot_tail(row, acc);
                }
            }
        }

        struct $transposed<'a> {
            a: &'a [$t],
            h: &'a [$t],
            y: &'a mut [$t],
        }

        impl pulp::WithSimd for $transposed<'_> {
            type Output = ();

            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, simd: S) {
                let Self { a, h, y } = self;
                let ncols = y.len();
                if ncols == 0 {
                    return;
                }
                // Four rows per pass over `y`, so `y` is loaded and stored a quarter as often.
                let mut row_groups = a.chunks_exact(ROWS * ncols);
                let mut coefficient_groups = h.chunks_exact(ROWS);
                for (rows, coefficients) in (&mut row_groups).zip(&mut coefficient_groups) {
                    let r: [&[$t]; ROWS] =
                        std::array::from_fn(|i| &rows[i * ncols..(i + 1) * ncols]);
                    let c: [S::$vec; ROWS] = std::array::from_fn(|i| simd.$splat(-coefficients[i]));
                    let (y_vec, y_tail) = S::$as_mut_simd(y);
                    let v: [&[S::$vec]; ROWS] = std::array::from_fn(|i| S::$as_simd(r[i]).0);
                    for (j, yv) in y_vec.iter_mut().enumerate() {
                        let mut acc = *yv;
                        for i in 0..ROWS {
                            acc = simd.$fma(c[i], v[i][j], acc);
                        }
                        *yv = acc;
                    }
                    let tail_start = ncols - y_tail.len();
                    for (j, yt) in y_tail.iter_mut().enumerate() {
                        for i in 0..ROWS {
                            *yt -= coefficients[i] * r[i][tail_start + j];
                        }
                    }
                }
                for (row, &coefficient) in row_groups
                    .remainder()
                    .chunks_exact(ncols)
                    .zip(coefficient_groups.remainder())
                {
                    let c = simd.$splat(-coefficient);
                    let (y_vec, y_tail) = S::$as_mut_simd(y);
                    let (row_vec, row_tail) = S::$as_simd(row);
                    for (yv, &av) in y_vec.iter_mut().zip(row_vec) {
                        *yv = simd.$fma(c, av, *yv);
                    }
                    for (yt, &av) in y_tail.iter_mut().zip(row_tail) {
                        *yt -= coefficient * av;
                    }
                }
            }
        }

        impl DenseKernel for $t {
            fn gemv_row_major(a: &[$t], ncols: usize, x: &[$t], y: &mut [$t]) {
                pulp::Arch::new().dispatch($kernel { a, ncols, x, y });
            }

            fn gemv_transposed_sub(a: &[$t], h: &[$t], y: &mut [$t]) {
                pulp::Arch::new().dispatch($transposed { a, h, y });
            }
        }
    };
}

/// Rows that share each load of `x` (four rows × two accumulators = eight vector registers).
const ROWS: usize = 4;

dense_kernel!(
    f64,
    f64s,
    KernelF64,
    TransposedF64,
    as_simd_f64s,
    as_mut_simd_f64s,
    splat_f64s,
    mul_add_e_f64s,
    add_f64s,
    reduce_sum_f64s
);
dense_kernel!(
    f32,
    f32s,
    KernelF32,
    TransposedF32,
    as_simd_f32s,
    as_mut_simd_f32s,
    splat_f32s,
    mul_add_e_f32s,
    add_f32s,
    reduce_sum_f32s
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_for_every_shape_remainder() {
        for nrows in [1usize, 3, 4, 5, 9] {
            for ncols in [1usize, 7, 8, 9, 17, 33] {
                let a: Vec<f64> = (0..nrows * ncols)
                    .map(|i| ((i * 37 % 19) as f64 - 9.0) / 7.0)
                    .collect();
                let x: Vec<f64> = (0..ncols).map(|j| (j as f64 * 0.3).cos()).collect();
                let mut y = vec![f64::NAN; nrows];
                gemv_row_major(&a, ncols, &x, &mut y);
                for i in 0..nrows {
                    let want: f64 = (0..ncols).map(|j| a[i * ncols + j] * x[j]).sum();
                    assert!((y[i] - want).abs() < 1e-12, "{nrows}×{ncols} row {i}");
                }
                let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
                let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                let mut y32 = vec![f32::NAN; nrows];
                gemv_row_major(&a32, ncols, &x32, &mut y32);
                for i in 0..nrows {
                    assert!((y32[i] as f64 - y[i]).abs() < 1e-4);
                }
            }
        }
    }

    #[test]
    fn transposed_sub_matches_naive() {
        for nrows in [1usize, 3, 4, 5, 9] {
            for ncols in [1usize, 7, 8, 9, 17, 33] {
                let a: Vec<f64> = (0..nrows * ncols)
                    .map(|i| ((i * 37 % 19) as f64 - 9.0) / 7.0)
                    .collect();
                let h: Vec<f64> = (0..nrows).map(|i| (i as f64 * 0.7).sin()).collect();
                let y0: Vec<f64> = (0..ncols).map(|j| (j as f64 * 0.3).cos()).collect();
                let mut y = y0.clone();
                gemv_transposed_sub(&a, &h, &mut y);
                for j in 0..ncols {
                    let want = y0[j] - (0..nrows).map(|i| a[i * ncols + j] * h[i]).sum::<f64>();
                    assert!((y[j] - want).abs() < 1e-12, "{nrows}×{ncols} column {j}");
                }
                let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
                let h32: Vec<f32> = h.iter().map(|&v| v as f32).collect();
                let mut y32: Vec<f32> = y0.iter().map(|&v| v as f32).collect();
                gemv_transposed_sub(&a32, &h32, &mut y32);
                for j in 0..ncols {
                    assert!((y32[j] as f64 - y[j]).abs() < 1e-4);
                }
            }
        }
    }

    #[test]
    fn zero_columns_give_zeros() {
        let mut y = vec![1.0f64; 3];
        gemv_row_major(&[], 0, &[], &mut y);
        assert_eq!(y, vec![0.0; 3]);
    }
}
