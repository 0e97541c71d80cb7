//! Dense symmetric matrices stored as their packed upper triangle.

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1};
use rayon::prelude::*;
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::gemv::{packed_row_offset, TriangleLayout};
use crate::operator::LinearOperator;
use crate::Float;

/// Below this many stored entries the product runs on the calling thread.
const PARALLEL_MIN_ENTRIES: usize = 1 << 16;

/// The most row blocks a parallel triangle product is split into. The split depends only
/// on the dimension (never on the thread count), so products are bit-identical for every
/// rayon pool size.
const TRIANGLE_BLOCKS: usize = 16;

/// Entries of `y` summed per task when the per-block partial outputs are reduced (each entry
/// is summed over the blocks in block order).
const REDUCE_CHUNK: usize = 4096;

/// A dense symmetric `n × n` matrix that stores only its upper triangle (row `i` holds
/// `a[i, i..n]`, LAPACK's packed row-major layout): half the memory of a full matrix, and a
/// product `y = A·x` that reads each stored entry once for both `a_ij·x_j` and its mirror
/// `a_ji·x_i` (like BLAS `dspmv`). Dense symmetric operators are memory-bound, so this
/// roughly halves the time of every product against a full row-major product
/// (docs/PERFORMANCE.md). A plain `Array2` that is exactly symmetric gets the same
/// upper-triangle product in the Lanczos-type algorithms (see
/// [`LinearOperator::repeated_apply`]); this type also halves the memory, accepts matrices
/// that are symmetric only up to rounding, and uses the fast product everywhere.
///
/// ```
/// use ndarray::arr2;
/// use tessera_lanczos::{top_eigenpairs, SymmetricMatrix, Which};
/// let a = arr2(&[[2.0f64, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 2.0]]);
/// let packed = SymmetricMatrix::from_dense(a.view())?;
/// assert_eq!(packed.to_dense(), a);
/// let top = top_eigenpairs(&packed, 1, Which::LargestAlgebraic, 1e-12)?;
/// assert!((top.values[0] - (2.0 + 2f64.sqrt())).abs() < 1e-12);
/// # Ok::<(), tessera_lanczos::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SymmetricMatrix<F> {
    n: usize,
    packed: Vec<F>,
}

impl<F: Float> SymmetricMatrix<F> {
    /// Packs a symmetric matrix after checking that it is square, non-empty, finite and
    /// symmetric: `|a_ij − a_ji| ≤ 100·ε·max|a|` (rounding-level asymmetry is accepted; the
    /// upper triangle is kept).
    pub fn from_dense(a: ArrayView2<'_, F>) -> Result<Self> {
        let n = check_square(a)?;
        check_symmetric("a", a)?;
        Ok(Self::pack(a, n))
    }

    /// Packs the upper triangle of a square, finite matrix without looking at the lower one
    /// (the matrix is taken to be its symmetric completion).
    pub fn from_upper(a: ArrayView2<'_, F>) -> Result<Self> {
        let n = check_square(a)?;
        Ok(Self::pack(a, n))
    }

    fn pack(a: ArrayView2<'_, F>, n: usize) -> Self {
        let mut packed = Vec::with_capacity(n * (n + 1) / 2);
        for i in 0..n {
            packed.extend(a.row(i).iter().skip(i).copied());
        }
        Self { n, packed }
    }

    /// The dimension `n`.
    pub fn dim(&self) -> usize {
        self.n
    }

    /// The entry `a[i, j]` (either triangle), or `None` outside the matrix.
    pub fn get(&self, i: usize, j: usize) -> Option<F> {
        if i >= self.n || j >= self.n {
            return None;
        }
        let (r, c) = if i <= j { (i, j) } else { (j, i) };
        Some(self.packed[packed_row_offset(self.n, r) + c - r])
    }

    /// The full `n × n` matrix.
    pub fn to_dense(&self) -> Array2<F> {
        Array2::from_shape_fn((self.n, self.n), |(i, j)| {
            self.get(i, j).expect("indices inside the matrix")
        })
    }
}

/// Checks that the square matrix `a` is symmetric up to rounding:
/// `|a_ij − a_ji| ≤ 100·ε·max|a|` for every pair (the error names `name` and the first pair
/// that differs by more).
pub(crate) fn check_symmetric<F: Float>(name: &'static str, a: ArrayView2<'_, F>) -> Result<()> {
    let n = a.nrows();
    let scale = a.iter().fold(F::zero(), |m, v| m.max(v.abs()));
    let allowed = F::from_f64_rounded(100.0) * F::epsilon() * scale;
    for i in 0..n {
        for j in i + 1..n {
            let gap = (a[[i, j]] - a[[j, i]]).abs();
            if gap > allowed {
                return Err(Error::invalid(
                    name,
                    format!(
                        "{name}[{i}, {j}] = {} but {name}[{j}, {i}] = {}",
                        a[[i, j]],
                        a[[j, i]]
                    ),
                    format!("the matrix must be symmetric (tolerance {allowed})"),
                ));
            }
        }
    }
    Ok(())
}

fn check_square<F: Float>(a: ArrayView2<'_, F>) -> Result<usize> {
    if a.nrows() != a.ncols() {
        return Err(Error::shape(
            "a",
            "a square matrix",
            format!("{}×{}", a.nrows(), a.ncols()),
        ));
    }
    if a.nrows() == 0 {
        return Err(Error::invalid(
            "a",
            "a 0×0 matrix",
            "the matrix must be at least 1×1",
        ));
    }
    crate::util::check_finite("a", a.iter())?;
    Ok(a.nrows())
}

impl<F: Float> LinearOperator<F> for SymmetricMatrix<F> {
    fn dim(&self) -> usize {
        self.n
    }

    fn apply(&self, x: ArrayView1<'_, F>, y: ArrayViewMut1<'_, F>) {
        triangle_product(&self.packed, TriangleLayout::Packed, self.n, x, y)
    }
}

/// `y = A·x` for a symmetric `A` of which `storage` holds the upper triangle in `layout`:
/// a fixed number of row ranges of about equal area (a function of `n` only) run in
/// parallel, each scattering into its own buffer (the mirrored entries reach all of y), and
/// the buffers are summed in block order, so the result does not depend on the pool size.
pub(crate) fn triangle_product<F: Float>(
    storage: &[F],
    layout: TriangleLayout,
    n: usize,
    x: ArrayView1<'_, F>,
    mut y: ArrayViewMut1<'_, F>,
) {
    let x = crate::util::contiguous(&x);
    let x = &*x;
    let rows_of = |range: &std::ops::Range<usize>| match layout {
        TriangleLayout::Packed => {
            &storage[packed_row_offset(n, range.start)..packed_row_offset(n, range.end)]
        }
        TriangleLayout::Full(stride) => {
            &storage[range.start * stride..(range.end - 1) * stride + n]
        }
    };
    let entries = n * (n + 1) / 2;
    let result = if entries < PARALLEL_MIN_ENTRIES {
        let mut out = vec![F::zero(); n];
        crate::gemv::symmetric_rows(rows_of(&(0..n)), layout, 0..n, x, &mut out);
        out
    } else {
        // The block boundaries depend only on `n`, and the partial outputs are summed in
        // block order, so the bits do not depend on the size of the rayon pool.
        let blocks = (entries / PARALLEL_MIN_ENTRIES).clamp(1, TRIANGLE_BLOCKS);
        let partials: Vec<Vec<F>> = balanced_row_ranges(n, blocks)
            .par_iter()
            .map(|range| {
                let mut out = vec![F::zero(); n];
                crate::gemv::symmetric_rows(rows_of(range), layout, range.clone(), x, &mut out);
                out
            })
            .collect();
        let mut out = vec![F::zero(); n];
        out.par_chunks_mut(REDUCE_CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| {
                let base = c * REDUCE_CHUNK;
                let len = chunk.len();
                for part in &partials {
                    chunk
                        .iter_mut()
                        .zip(&part[base..base + len])
                        .for_each(|(p, &q)| *p += q);
                }
            });
        out
    };
    y.assign(&ArrayView1::from(&result));
}

/// Row ranges of about equal triangle area, `parts` of them (fewer for tiny matrices).
fn balanced_row_ranges(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let total = n * (n + 1) / 2;
    let mut ranges = Vec::with_capacity(parts);
    let mut start = 0;
    for p in 1..=parts {
        let target = total * p / parts;
        let mut end = start;
        while end < n && packed_row_offset(n, end + 1).min(total) <= target {
            end += 1;
        }
        if p == parts {
            end = n;
        }
        if end > start {
            ranges.push(start..end);
            start = end;
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::{arr2, Array1};

    fn symmetric(n: usize) -> Array2<f64> {
        Array2::from_shape_fn((n, n), |(i, j)| {
            let (p, q) = (i.min(j), i.max(j));
            ((p * 31 + q * 17) % 23) as f64 / 7.0 - 1.5
        })
    }

    #[test]
    fn product_matches_dense_serial_and_parallel() {
        for n in [1usize, 2, 3, 7, 8, 9, 33, 300, 517] {
            let a = symmetric(n);
            let s = SymmetricMatrix::from_dense(a.view()).unwrap();
            let x = Array1::from_shape_fn(n, |i| (i as f64 * 0.37).sin());
            let mut y = Array1::from_elem(n, f64::NAN);
            s.apply(x.view(), y.view_mut());
            let want = a.dot(&x);
            for i in 0..n {
                assert_abs_diff_eq!(y[i], want[i], epsilon = 1e-11);
            }
            // strided input and output views
            let x2 = Array1::from_shape_fn(2 * n, |i| x[i / 2]);
            let mut y2 = Array1::zeros(2 * n);
            s.apply(x2.slice(ndarray::s![..;2]), y2.slice_mut(ndarray::s![..;2]));
            for (p, q) in y2.iter().step_by(2).zip(&want) {
                assert_abs_diff_eq!(*p, *q, epsilon = 1e-11);
            }
            let a32 = a.mapv(|v| v as f32);
            let s32 = SymmetricMatrix::from_dense(a32.view()).unwrap();
            let mut y32 = Array1::zeros(n);
            s32.apply(x.mapv(|v| v as f32).view(), y32.view_mut());
            for (p, q) in y32.iter().zip(&want) {
                assert_abs_diff_eq!(*p as f64, *q, epsilon = 1e-3);
            }
        }
    }

    #[test]
    fn round_trip_and_ranges_cover_every_row() {
        let a = symmetric(41);
        let s = SymmetricMatrix::from_dense(a.view()).unwrap();
        assert_eq!(s.to_dense(), a);
        assert_eq!(s.get(3, 40), Some(a[[3, 40]]));
        assert_eq!(s.get(41, 0), None);
        for parts in 1..9 {
            let ranges = balanced_row_ranges(41, parts);
            assert_eq!(ranges.first().unwrap().start, 0);
            assert_eq!(ranges.last().unwrap().end, 41);
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        }
    }

    #[test]
    fn bad_input_is_named() {
        let e = SymmetricMatrix::from_dense(arr2(&[[1.0f64, 2.0], [3.0, 1.0]]).view()).unwrap_err();
        assert!(
            e.to_string().contains("symmetric") && e.to_string().contains("a[0, 1]"),
            "{e}"
        );
        let upper = SymmetricMatrix::from_upper(arr2(&[[1.0f64, 2.0], [3.0, 1.0]]).view()).unwrap();
        assert_eq!(upper.get(1, 0), Some(2.0));
        assert!(SymmetricMatrix::from_dense(Array2::<f64>::zeros((2, 3)).view()).is_err());
        assert!(SymmetricMatrix::from_dense(Array2::<f64>::zeros((0, 0)).view()).is_err());
        let e = SymmetricMatrix::from_dense(arr2(&[[f64::NAN]]).view()).unwrap_err();
        assert!(e.to_string().contains("`a`"), "{e}");
    }
}
