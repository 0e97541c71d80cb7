//! The dense kernels behind the products of this crate: row-major matrix–vector, the
//! transposed product of Gram–Schmidt, and the upper-triangle product of symmetric matrices.
//!
//! Written by hand because ndarray's own product (without a BLAS) reduces each row with one
//! scalar-width accumulator chain and is compiled for the baseline instruction set; the
//! Lanczos algorithms of this crate spend almost all their time here on dense operators, so
//! the product has to stream the matrix at memory speed. The row-major kernel walks four rows at once
//! (each load of `x` feeds four fused multiply–adds) with two vector accumulators per row,
//! written with `pulp`'s explicit SIMD types so that it does not depend on the
//! auto-vectoriser; `pulp` picks the best instruction set at run time (AVX2/FMA on x86-64)
//! and falls back to scalar code elsewhere. Single-threaded it matches OpenBLAS's `dgemv`
//! on an n = 2000 matrix (docs/PERFORMANCE.md).

use crate::Float;

/// The vectorised kernels of one scalar type (`f32` and `f64`, implemented here only); the
/// generic entry points below reach them through [`Float`]'s slice downcasts.
trait DenseKernel: Sized {
    /// `y[i] = Σ_j a[i·ncols + j]·x[j]` for the `y.len()` rows stored row-major in `a`.
    /// Callers guarantee `a.len() == y.len() * ncols` and `x.len() == ncols`.
    fn gemv_row_major(a: &[Self], ncols: usize, x: &[Self], y: &mut [Self]);

    /// `y ← y − Aᵀ·h` for the `h.len()` rows of `A` stored row-major in `a`.
    /// Callers guarantee `a.len() == h.len() * y.len()`.
    fn gemv_transposed_sub(a: &[Self], h: &[Self], y: &mut [Self]);

    /// `y ← y + (contribution of rows `rows`)` for a symmetric `A` of which only the upper
    /// triangle is read: each entry `a_ij` (`j ≥ i`) is applied with its mirror,
    /// `y_i += a_ij·x_j` and, for `j > i`, `y_j += a_ij·x_i`. Summed over a partition of the
    /// rows this is `y = A·x`. `storage` starts at row `rows.start` and is laid out as
    /// `layout` says.
    fn symmetric_rows(
        storage: &[Self],
        layout: TriangleLayout,
        rows: std::ops::Range<usize>,
        x: &[Self],
        y: &mut [Self],
    );
}

/// Where row `i` of the upper triangle (`a[i, i..n]`) lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriangleLayout {
    /// Row-packed: rows of lengths `n, n − 1, …, 1` back to back.
    Packed,
    /// Full row-major storage with this row stride; the lower triangle is never read.
    Full(usize),
}

/// Calls `$method` of [`DenseKernel`] for the concrete type behind `F`: the slices are
/// downcast to `f64` or `f32` (the only `Float` types), so exactly one arm applies.
macro_rules! dispatch {
    ($method:ident, ($($shared:ident),*), $out:ident, ($($arg:expr),*)) => {{
        if let ($(Some($shared),)*) = ($(F::as_f64_slice($shared),)*) {
            if let Some($out) = F::as_f64_slice_mut($out) {
                return <f64 as DenseKernel>::$method($($arg),*);
            }
        }
        if let ($(Some($shared),)*) = ($(F::as_f32_slice($shared),)*) {
            if let Some($out) = F::as_f32_slice_mut($out) {
                return <f32 as DenseKernel>::$method($($arg),*);
            }
        }
        unreachable!("Float is sealed to f32 and f64")
    }};
}

/// `y[i] = Σ_j a[i·ncols + j]·x[j]` for the `y.len()` rows stored row-major in `a`.
pub(crate) fn gemv_row_major<F: Float>(a: &[F], ncols: usize, x: &[F], y: &mut [F]) {
    debug_assert_eq!(a.len(), y.len() * ncols);
    debug_assert_eq!(x.len(), ncols);
    dispatch!(gemv_row_major, (a, x), y, (a, ncols, x, y))
}

/// The rows `rows` of the product of a symmetric matrix stored as its upper triangle
/// (see [`DenseKernel::symmetric_rows`]).
pub(crate) fn symmetric_rows<F: Float>(
    storage: &[F],
    layout: TriangleLayout,
    rows: std::ops::Range<usize>,
    x: &[F],
    y: &mut [F],
) {
    dispatch!(
        symmetric_rows,
        (storage, x),
        y,
        (storage, layout, rows, x, y)
    )
}

/// Offset of row `i` in the row-packed upper triangle of an `n × n` symmetric matrix.
pub(crate) fn packed_row_offset(n: usize, i: usize) -> usize {
    i * n - i * i.saturating_sub(1) / 2
}

/// `y ← y − Aᵀ·h` for the `h.len()` rows of `A` stored row-major in `a`.
pub(crate) fn gemv_transposed_sub<F: Float>(a: &[F], h: &[F], y: &mut [F]) {
    debug_assert_eq!(a.len(), h.len() * y.len());
    dispatch!(gemv_transposed_sub, (a, h), y, (a, h, y))
}

/// One kernel per scalar type: a struct that `pulp` compiles per instruction set, and the
/// [`DenseKernel`] impl that dispatches to it.
macro_rules! dense_kernel {
    (
        $t:ty, $vec:ident, $kernel:ident, $transposed:ident, $packed:ident, $as_simd:ident,
        $as_mut_simd:ident, $splat:ident, $fma:ident, $add:ident, $sum:ident
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

        struct $packed<'a> {
            storage: &'a [$t],
            layout: TriangleLayout,
            rows: std::ops::Range<usize>,
            x: &'a [$t],
            y: &'a mut [$t],
        }

        impl pulp::WithSimd for $packed<'_> {
            type Output = ();

            #[inline(always)]
            fn with_simd<S: pulp::Simd>(self, simd: S) {
                let Self {
                    storage,
                    layout,
                    rows,
                    x,
                    y,
                } = self;
                let n = x.len();
                let base = packed_row_offset(n, rows.start);
                let row_of = |i: usize| {
                    let start = match layout {
                        TriangleLayout::Packed => packed_row_offset(n, i) - base,
                        TriangleLayout::Full(stride) => (i - rows.start) * stride + i,
                    };
                    &storage[start..start + n - i]
                };
                // Rows in groups of four: past the 4 × 4 diagonal block every column j
                // feeds four dot products (a_rj·x_j) and one mirrored update of y_j
                // (Σ_r a_rj·x_r), so y is loaded and stored once per four matrix entries.
                let mut i = rows.start;
                while i + ROWS <= rows.end {
                    let r: [&[$t]; ROWS] = std::array::from_fn(|k| row_of(i + k));
                    for k in 0..ROWS {
                        for c in k..ROWS {
                            let a = r[k][c - k];
                            y[i + k] += a * x[i + c];
                            if c > k {
                                y[i + c] += a * x[i + k];
                            }
                        }
                    }
                    let tail = i + ROWS;
                    let v: [&[S::$vec]; ROWS] =
                        std::array::from_fn(|k| S::$as_simd(&r[k][tail - i - k..]).0);
                    let t: [&[$t]; ROWS] =
                        std::array::from_fn(|k| S::$as_simd(&r[k][tail - i - k..]).1);
                    let xr: [S::$vec; ROWS] = std::array::from_fn(|k| simd.$splat(x[i + k]));
                    let (x_vec, x_tail) = S::$as_simd(&x[tail..]);
                    let (y_vec, y_tail) = S::$as_mut_simd(&mut y[tail..]);
                    let mut dots = [simd.$splat(0.0); ROWS];
                    for (j, (&xv, yv)) in x_vec.iter().zip(y_vec.iter_mut()).enumerate() {
                        let mut acc = *yv;
                        for k in 0..ROWS {
                            let a = v[k][j];
                            dots[k] = simd.$fma(a, xv, dots[k]);
                            acc = simd.$fma(xr[k], a, acc);
                        }
                        *yv = acc;
                    }
                    let mut dot: [$t; ROWS] = std::array::from_fn(|k| simd.$sum(dots[k]));
                    for (j, (&xv, yv)) in x_tail.iter().zip(y_tail.iter_mut()).enumerate() {
                        for k in 0..ROWS {
                            dot[k] += t[k][j] * xv;
                            *yv += t[k][j] * x[i + k];
                        }
                    }
                    for k in 0..ROWS {
                        y[i + k] += dot[k];
                    }
                    i += ROWS;
                }
                for i in i..rows.end {
                    let row = row_of(i);
                    let xi = x[i];
                    y[i] += row[0] * xi;
                    let splat_xi = simd.$splat(xi);
                    let (row_vec, row_tail) = S::$as_simd(&row[1..]);
                    let (x_vec, x_tail) = S::$as_simd(&x[i + 1..]);
                    let (y_vec, y_tail) = S::$as_mut_simd(&mut y[i + 1..]);
                    let mut dot = simd.$splat(0.0);
                    for ((&a, &xv), yv) in row_vec.iter().zip(x_vec).zip(y_vec.iter_mut()) {
                        dot = simd.$fma(a, xv, dot);
                        *yv = simd.$fma(splat_xi, a, *yv);
                    }
                    let mut dot = simd.$sum(dot);
                    for ((&a, &xv), yv) in row_tail.iter().zip(x_tail).zip(y_tail.iter_mut()) {
                        dot += a * xv;
                        *yv += xi * a;
                    }
                    y[i] += dot;
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

            fn symmetric_rows(
                storage: &[$t],
                layout: TriangleLayout,
                rows: std::ops::Range<usize>,
                x: &[$t],
                y: &mut [$t],
            ) {
                pulp::Arch::new().dispatch($packed {
                    storage,
                    layout,
                    rows,
                    x,
                    y,
                });
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
    PackedF64,
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
    PackedF32,
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
    use approx::assert_abs_diff_eq;

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
                    assert_abs_diff_eq!(y[i], want, epsilon = 1e-12);
                }
                let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
                let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
                let mut y32 = vec![f32::NAN; nrows];
                gemv_row_major(&a32, ncols, &x32, &mut y32);
                for i in 0..nrows {
                    assert_abs_diff_eq!(y32[i] as f64, y[i], epsilon = 1e-4);
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
                    assert_abs_diff_eq!(y[j], want, epsilon = 1e-12);
                }
                let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
                let h32: Vec<f32> = h.iter().map(|&v| v as f32).collect();
                let mut y32: Vec<f32> = y0.iter().map(|&v| v as f32).collect();
                gemv_transposed_sub(&a32, &h32, &mut y32);
                for j in 0..ncols {
                    assert_abs_diff_eq!(y32[j] as f64, y[j], epsilon = 1e-4);
                }
            }
        }
    }

    #[test]
    fn triangle_rows_over_any_partition_give_the_product() {
        for n in [1usize, 4, 5, 11, 38] {
            let a = |i: usize, j: usize| ((i.min(j) * 13 + i.max(j) * 7) % 17) as f64 - 8.0;
            let mut packed = Vec::new();
            for i in 0..n {
                packed.extend((i..n).map(|j| a(i, j)));
            }
            let x: Vec<f64> = (0..n).map(|j| (j as f64 * 0.9).sin()).collect();
            let want: Vec<f64> = (0..n)
                .map(|i| (0..n).map(|j| a(i, j) * x[j]).sum())
                .collect();
            for cut in [vec![n], vec![1.min(n), n], vec![n / 3, n / 2 + 1, n]] {
                let mut y = vec![0.0; n];
                let mut start = 0;
                for &end in &cut {
                    let rows = &packed[packed_row_offset(n, start)..packed_row_offset(n, end)];
                    f64::symmetric_rows(rows, TriangleLayout::Packed, start..end, &x, &mut y);
                    start = end;
                }
                for i in 0..n {
                    assert_abs_diff_eq!(y[i], want[i], epsilon = 1e-11);
                }
                // Full storage with a row stride: NaN below the diagonal proves it unread.
                let stride = n + 3;
                let full: Vec<f64> = (0..n * stride)
                    .map(|t| {
                        let (i, j) = (t / stride, t % stride);
                        if j >= n || j < i {
                            f64::NAN
                        } else {
                            a(i, j)
                        }
                    })
                    .collect();
                let mut y = vec![0.0; n];
                let mut start = 0;
                for &end in &cut {
                    let rows = &full[start * stride..end * stride];
                    let layout = TriangleLayout::Full(stride);
                    f64::symmetric_rows(rows, layout, start..end, &x, &mut y);
                    start = end;
                }
                for i in 0..n {
                    assert_abs_diff_eq!(y[i], want[i], epsilon = 1e-11);
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
