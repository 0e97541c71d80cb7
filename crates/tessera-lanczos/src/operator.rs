//! The linear-operator abstraction every algorithm of this crate works on, and its
//! implementations for dense matrices, closures, shifted/scaled wrappers and (feature
//! `sparse`, on by default) tessera-sparse's `CsrMatrix`.

use ndarray::parallel::prelude::*;
use ndarray::{ArrayBase, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, Data, Ix2};
use rayon::slice::{ParallelSlice, ParallelSliceMut};
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::gemv::{gemv_row_major, TriangleLayout};
use crate::symmetric::triangle_product;
use crate::Float;

/// A square linear operator `A` of dimension `n` (symmetric for the algorithms of this crate),
/// known only through products `y ← A·x`.
///
/// Implemented for dense matrices, CSR matrices, closures and wrappers in this crate, and by
/// `tessera-nn` for exact Hessian- and Gauss–Newton-vector products.
pub trait LinearOperator<F> {
    /// The dimension `n` (the operator is `n × n`).
    fn dim(&self) -> usize;

    /// Writes `A·x` into `y`. Callers guarantee `x.len() == y.len() == self.dim()`.
    fn apply(&self, x: ArrayView1<'_, F>, y: ArrayViewMut1<'_, F>);

    /// Writes `A·X` into `Y` column by column (`X`, `Y` of shape `(n, k)`); override when a
    /// blocked product is cheaper than `k` single products.
    fn apply_batch(&self, x: ArrayView2<'_, F>, mut y: ArrayViewMut2<'_, F>) {
        for (xc, yc) in x.axis_iter(Axis(1)).zip(y.axis_iter_mut(Axis(1))) {
            self.apply(xc, yc);
        }
    }

    /// Checks that the operator is usable (e.g. a dense matrix is square); every algorithm of
    /// this crate calls it first. The default accepts every operator.
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// A faster stand-in for [`apply`](Self::apply), for an algorithm about to apply the
    /// operator to many single vectors (Lanczos, top eigenpairs, power iteration), which asks
    /// once per run. Dense matrices that are exactly symmetric (`a_ij == a_ji`, checked here
    /// in one pass) return a product that reads only the upper triangle: half the bytes of a
    /// memory-bound product, and the same result up to rounding. The default returns `None`
    /// (use `apply`).
    fn repeated_apply(&self) -> Option<RepeatedApply<'_, F>> {
        None
    }
}

/// A product `y ← A·x` returned by [`LinearOperator::repeated_apply`].
pub type RepeatedApply<'a, F> =
    Box<dyn Fn(ArrayView1<'_, F>, ArrayViewMut1<'_, F>) + Send + Sync + 'a>;

/// Rows per parallel task of the dense products: large enough that a task streams a few
/// hundred kilobytes of the matrix, small enough to balance two to sixteen cores.
const DENSE_ROW_BLOCK: usize = 64;
/// Below this many entries the dense product runs on the calling thread (no rayon overhead).
const DENSE_PARALLEL_MIN_ENTRIES: usize = 1 << 16;

/// Dense matrices (owned arrays and views). For row-major (standard-layout) matrices the
/// product is this crate's vectorised kernel over row blocks that run in parallel (rayon);
/// other layouts use ndarray's product. `validate` rejects non-square matrices and matrices
/// that are not symmetric up to rounding (`|a_ij − a_ji| ≤ 100·ε·max|a|`). `apply_batch` is a blocked matrix–matrix product
/// (matrixmultiply's gemm per row block), which reads `A` once for all `k` columns.
impl<F: Float, S: Data<Elem = F>> LinearOperator<F> for ArrayBase<S, Ix2> {
    fn dim(&self) -> usize {
        self.nrows()
    }

    fn apply(&self, x: ArrayView1<'_, F>, mut y: ArrayViewMut1<'_, F>) {
        let Some(a) = self.as_slice() else {
            ndarray::linalg::general_mat_vec_mul(F::one(), self, &x, F::zero(), &mut y);
            return;
        };
        let n = self.ncols();
        let x = crate::util::contiguous(&x);
        let x = &*x;
        let product = |out: &mut [F]| {
            if a.len() < DENSE_PARALLEL_MIN_ENTRIES {
                gemv_row_major(a, n, x, out);
            } else {
                a.par_chunks(DENSE_ROW_BLOCK * n)
                    .zip(out.par_chunks_mut(DENSE_ROW_BLOCK))
                    .for_each(|(rows, out)| gemv_row_major(rows, n, x, out));
            }
        };
        match y.as_slice_mut() {
            Some(out) => product(out),
            None => {
                let mut out = vec![F::zero(); self.nrows()];
                product(&mut out);
                y.assign(&ArrayView1::from(&out));
            }
        }
    }

    fn apply_batch(&self, x: ArrayView2<'_, F>, mut y: ArrayViewMut2<'_, F>) {
        if self.len() < DENSE_PARALLEL_MIN_ENTRIES {
            ndarray::linalg::general_mat_mul(F::one(), self, &x, F::zero(), &mut y);
            return;
        }
        self.axis_chunks_iter(Axis(0), DENSE_ROW_BLOCK)
            .into_par_iter()
            .zip(y.axis_chunks_iter_mut(Axis(0), DENSE_ROW_BLOCK))
            .for_each(|(rows, mut out)| {
                ndarray::linalg::general_mat_mul(F::one(), &rows, &x, F::zero(), &mut out);
            });
    }

    fn validate(&self) -> Result<()> {
        if self.nrows() != self.ncols() {
            return Err(Error::shape(
                "matrix",
                "a square matrix",
                format!("{}×{}", self.nrows(), self.ncols()),
            ));
        }
        // Every algorithm of this crate assumes a symmetric operator; a dense matrix is
        // checked (up to rounding, like `SymmetricMatrix::from_dense`).
        crate::symmetric::check_symmetric("matrix", self.view())
    }

    fn repeated_apply(&self) -> Option<RepeatedApply<'_, F>> {
        let n = self.nrows();
        if n != self.ncols() || self.len() < DENSE_PARALLEL_MIN_ENTRIES {
            return None;
        }
        let a = self.as_slice()?;
        if !is_exactly_symmetric(a, n) {
            return None;
        }
        Some(Box::new(move |x, y| {
            triangle_product(a, TriangleLayout::Full(n), n, x, y)
        }))
    }
}

/// Whether the row-major `n × n` matrix `a` equals its transpose entry for entry; compares
/// 64 × 64 tiles with their mirrors (both in cache), tile rows in parallel, and stops at the
/// first difference.
fn is_exactly_symmetric<F: Float>(a: &[F], n: usize) -> bool {
    const TILE: usize = 64;
    let tiles = n.div_ceil(TILE);
    (0..tiles).into_par_iter().all(|ti| {
        let rows = ti * TILE..((ti + 1) * TILE).min(n);
        (ti..tiles).all(|tj| {
            let cols = tj * TILE..((tj + 1) * TILE).min(n);
            rows.clone().all(|i| {
                cols.clone()
                    .filter(|&j| j > i)
                    .all(|j| a[i * n + j] == a[j * n + i])
            })
        })
    })
}

/// An operator given by a closure `f(x, y)` that writes `A·x` into `y`.
///
/// ```
/// use ndarray::{arr1, ArrayView1, ArrayViewMut1};
/// use tessera_lanczos::{FnOperator, LinearOperator};
/// // A = diag(1, 2, 3) without storing it.
/// let op = FnOperator::new(3, |x: ArrayView1<f64>, mut y: ArrayViewMut1<f64>| {
///     for i in 0..3 { y[i] = (i as f64 + 1.0) * x[i]; }
/// }).unwrap();
/// let mut y = ndarray::Array1::zeros(3);
/// op.apply(arr1(&[1.0, 1.0, 1.0]).view(), y.view_mut());
/// assert_eq!(y, arr1(&[1.0, 2.0, 3.0]));
/// ```
pub struct FnOperator<Fun> {
    dim: usize,
    f: Fun,
}

impl<Fun> std::fmt::Debug for FnOperator<Fun> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnOperator")
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

impl<Fun> FnOperator<Fun> {
    /// Wraps `f` as an operator of dimension `dim` (≥ 1).
    pub fn new(dim: usize, f: Fun) -> Result<Self> {
        if dim == 0 {
            return Err(Error::invalid(
                "dim",
                dim,
                "an operator must be at least 1×1",
            ));
        }
        Ok(Self { dim, f })
    }
}

impl<F, Fun> LinearOperator<F> for FnOperator<Fun>
where
    Fun: Fn(ArrayView1<'_, F>, ArrayViewMut1<'_, F>),
{
    fn dim(&self) -> usize {
        self.dim
    }

    fn apply(&self, x: ArrayView1<'_, F>, y: ArrayViewMut1<'_, F>) {
        (self.f)(x, y)
    }
}

/// `A + σ·I` for a borrowed operator `A` (e.g. to make a Hessian positive definite before a
/// log-determinant, or to turn the smallest eigenvalues into the largest).
#[derive(Debug, Clone, Copy)]
pub struct ShiftedOperator<'a, F, O: ?Sized> {
    op: &'a O,
    shift: F,
}

impl<'a, F: Float, O: LinearOperator<F> + ?Sized> ShiftedOperator<'a, F, O> {
    /// `op + shift·I`; `shift` must be finite.
    pub fn new(op: &'a O, shift: F) -> Result<Self> {
        if !shift.is_finite() {
            return Err(Error::invalid("shift", shift, "must be finite"));
        }
        Ok(Self { op, shift })
    }
}

impl<F: Float, O: LinearOperator<F> + ?Sized> LinearOperator<F> for ShiftedOperator<'_, F, O> {
    fn dim(&self) -> usize {
        self.op.dim()
    }

    fn apply(&self, x: ArrayView1<'_, F>, mut y: ArrayViewMut1<'_, F>) {
        self.op.apply(x, y.view_mut());
        y.scaled_add(self.shift, &x);
    }

    fn apply_batch(&self, x: ArrayView2<'_, F>, mut y: ArrayViewMut2<'_, F>) {
        self.op.apply_batch(x, y.view_mut());
        y.scaled_add(self.shift, &x);
    }

    fn validate(&self) -> Result<()> {
        self.op.validate()
    }

    fn repeated_apply(&self) -> Option<RepeatedApply<'_, F>> {
        let inner = self.op.repeated_apply()?;
        let shift = self.shift;
        Some(Box::new(move |x, mut y| {
            inner(x, y.view_mut());
            y.scaled_add(shift, &x);
        }))
    }
}

/// `c·A` for a borrowed operator `A` (e.g. `c = −1` turns smallest into largest).
#[derive(Debug, Clone, Copy)]
pub struct ScaledOperator<'a, F, O: ?Sized> {
    op: &'a O,
    scale: F,
}

impl<'a, F: Float, O: LinearOperator<F> + ?Sized> ScaledOperator<'a, F, O> {
    /// `scale·op`; `scale` must be finite.
    pub fn new(op: &'a O, scale: F) -> Result<Self> {
        if !scale.is_finite() {
            return Err(Error::invalid("scale", scale, "must be finite"));
        }
        Ok(Self { op, scale })
    }
}

impl<F: Float, O: LinearOperator<F> + ?Sized> LinearOperator<F> for ScaledOperator<'_, F, O> {
    fn dim(&self) -> usize {
        self.op.dim()
    }

    fn apply(&self, x: ArrayView1<'_, F>, mut y: ArrayViewMut1<'_, F>) {
        self.op.apply(x, y.view_mut());
        y.mapv_inplace(|v| v * self.scale);
    }

    fn apply_batch(&self, x: ArrayView2<'_, F>, mut y: ArrayViewMut2<'_, F>) {
        self.op.apply_batch(x, y.view_mut());
        y.mapv_inplace(|v| v * self.scale);
    }

    fn validate(&self) -> Result<()> {
        self.op.validate()
    }

    fn repeated_apply(&self) -> Option<RepeatedApply<'_, F>> {
        let inner = self.op.repeated_apply()?;
        let scale = self.scale;
        Some(Box::new(move |x, mut y| {
            inner(x, y.view_mut());
            y.mapv_inplace(|v| v * scale);
        }))
    }
}

/// `op` with the fast product of [`LinearOperator::repeated_apply`] when it offers one; batched
/// products keep using `op` (a blocked product reads the matrix once for all columns).
pub(crate) struct Prepared<'a, F, O: ?Sized> {
    op: &'a O,
    fast: Option<RepeatedApply<'a, F>>,
}

impl<'a, F, O: LinearOperator<F> + ?Sized> Prepared<'a, F, O> {
    pub(crate) fn new(op: &'a O) -> Self {
        Self {
            op,
            fast: op.repeated_apply(),
        }
    }
}

impl<F, O: LinearOperator<F> + ?Sized> LinearOperator<F> for Prepared<'_, F, O> {
    fn dim(&self) -> usize {
        self.op.dim()
    }

    fn apply(&self, x: ArrayView1<'_, F>, y: ArrayViewMut1<'_, F>) {
        match &self.fast {
            Some(fast) => fast(x, y),
            None => self.op.apply(x, y),
        }
    }

    fn apply_batch(&self, x: ArrayView2<'_, F>, y: ArrayViewMut2<'_, F>) {
        self.op.apply_batch(x, y)
    }

    fn validate(&self) -> Result<()> {
        self.op.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::{arr1, arr2, Array1, Array2, ShapeBuilder};

    fn dense_reference(a: &Array2<f64>, x: &Array1<f64>) -> Array1<f64> {
        Array1::from_shape_fn(a.nrows(), |i| {
            (0..a.ncols()).map(|j| a[[i, j]] * x[j]).sum()
        })
    }

    #[test]
    fn dense_apply_matches_naive_small_and_parallel() {
        for &n in &[3usize, 300] {
            let a = Array2::from_shape_fn((n, n), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
            let x = Array1::from_shape_fn(n, |i| (i as f64).sin());
            let mut y = Array1::zeros(n);
            a.apply(x.view(), y.view_mut());
            let r = dense_reference(&a, &x);
            for i in 0..n {
                assert_abs_diff_eq!(y[i], r[i], epsilon = 1e-10);
            }
            // column-major copy takes the non-standard-layout path
            let mut af = Array2::zeros((n, n).f());
            af.assign(&a);
            let mut yf = Array1::zeros(n);
            af.apply(x.view(), yf.view_mut());
            for (p, q) in yf.iter().zip(r.iter()) {
                assert_abs_diff_eq!(*p, *q, epsilon = 1e-10);
            }
            // batch = columns
            let xb = Array2::from_shape_fn((n, 3), |(i, c)| ((i + c) as f64).cos());
            let mut yb = Array2::zeros((n, 3));
            a.view().apply_batch(xb.view(), yb.view_mut());
            for c in 0..3 {
                let rc = dense_reference(&a, &xb.column(c).to_owned());
                for i in 0..n {
                    assert_abs_diff_eq!(yb[[i, c]], rc[i], epsilon = 1e-9);
                }
            }
        }
    }

    #[test]
    fn symmetric_dense_matrices_get_the_triangle_product() {
        let n = 300;
        let a = Array2::from_shape_fn((n, n), |(i, j)| {
            ((i.min(j) * 31 + i.max(j) * 17) % 23) as f64 / 7.0 - 1.5
        });
        let x = Array1::from_shape_fn(n, |i| (i as f64 * 0.37).sin());
        let want = dense_reference(&a, &x);
        let fast = a.repeated_apply().expect("symmetric and large enough");
        let mut y = Array1::zeros(n);
        fast(x.view(), y.view_mut());
        for (p, q) in y.iter().zip(&want) {
            assert_abs_diff_eq!(*p, *q, epsilon = 1e-10);
        }
        // Wrappers forward the fast path.
        let shifted = ShiftedOperator::new(&a, 2.0).unwrap();
        let scaled = ScaledOperator::new(&shifted, -0.5).unwrap();
        scaled.repeated_apply().unwrap()(x.view(), y.view_mut());
        for i in 0..n {
            assert_abs_diff_eq!(y[i], -0.5 * (want[i] + 2.0 * x[i]), epsilon = 1e-10);
        }
        // Any asymmetry, even in the last tile, disables it; so do small or non-row-major
        // matrices.
        for (i, j) in [(0, 1), (299, 298), (10, 250), (130, 131)] {
            let mut b = a.clone();
            b[[i, j]] += 1e-15;
            assert!(b.repeated_apply().is_none(), "({i}, {j})");
        }
        let small = a.slice(ndarray::s![..100, ..100]).to_owned();
        assert!(small.repeated_apply().is_none());
        let mut column_major = Array2::zeros((n, n).f());
        column_major.assign(&a);
        assert!(column_major.repeated_apply().is_none());
        assert!(Array2::<f64>::zeros((300, 301)).repeated_apply().is_none());
        // Prepared uses the fast product for single vectors and `op` for batches.
        let prepared = Prepared::new(&a);
        prepared.apply(x.view(), y.view_mut());
        for (p, q) in y.iter().zip(&want) {
            assert_abs_diff_eq!(*p, *q, epsilon = 1e-10);
        }
        let xb = Array2::from_shape_fn((n, 2), |(i, c)| ((i + c) as f64).cos());
        let mut yb = Array2::zeros((n, 2));
        prepared.apply_batch(xb.view(), yb.view_mut());
        assert_abs_diff_eq!(yb, a.dot(&xb), epsilon = 1e-10);
    }

    #[test]
    fn non_square_dense_is_rejected() {
        let a = Array2::<f64>::zeros((2, 3));
        let err = a.validate().unwrap_err();
        assert!(err.to_string().contains("2×3"), "{err}");
    }

    #[test]
    fn shifted_and_scaled() {
        let a = arr2(&[[2.0f32, 1.0], [1.0, 3.0]]);
        let s = ShiftedOperator::new(&a, 0.5).unwrap();
        let c = ScaledOperator::new(&s, -2.0).unwrap();
        let x = arr1(&[1.0f32, -1.0]);
        let mut y = Array1::zeros(2);
        c.apply(x.view(), y.view_mut());
        // -2 (A + 0.5 I) x = -2 ([1, -2] + [0.5, -0.5]) = [-3, 5]
        assert_eq!(y, arr1(&[-3.0, 5.0]));
        let mut yb = Array2::zeros((2, 1));
        c.apply_batch(x.view().insert_axis(Axis(1)), yb.view_mut());
        assert_eq!(yb.column(0), y);
        assert!(ShiftedOperator::new(&a, f32::NAN).is_err());
        assert!(ScaledOperator::new(&a, f32::INFINITY).is_err());
    }

    #[test]
    fn fn_operator_rejects_zero_dim() {
        let r = FnOperator::new(0, |_x: ArrayView1<f64>, _y: ArrayViewMut1<f64>| {});
        assert!(r.unwrap_err().to_string().contains("dim"));
    }
}

/// tessera-sparse owns the workspace's CSR type; as an operator it is applied row-parallel
/// through `CsrMatrix::matvec` (bit-identical for every thread count).
#[cfg(feature = "sparse")]
impl<F: Float> LinearOperator<F> for tessera_sparse::CsrMatrix<F> {
    fn dim(&self) -> usize {
        self.dim().0
    }

    fn apply(&self, x: ArrayView1<'_, F>, mut y: ArrayViewMut1<'_, F>) {
        let x_owned;
        let x = match x.as_slice() {
            Some(x) => x,
            None => {
                x_owned = x.to_vec();
                &x_owned
            }
        };
        let result = match y.as_slice_mut() {
            Some(y) => self.matvec(x, y),
            None => {
                let mut out = vec![F::zero(); y.len()];
                let result = self.matvec(x, &mut out);
                y.iter_mut().zip(out).for_each(|(slot, v)| *slot = v);
                result
            }
        };
        debug_assert!(
            result.is_ok(),
            "callers pass vectors of the operator's dimension"
        );
    }

    fn validate(&self) -> Result<()> {
        let (rows, cols) = self.dim();
        if rows != cols {
            return Err(Error::shape(
                "csr matrix",
                "a square matrix",
                format!("{rows}×{cols}"),
            ));
        }
        Ok(())
    }
}

#[cfg(all(test, feature = "sparse"))]
mod csr_operator_tests {
    use super::*;
    use ndarray::{Array1, Array2};

    #[test]
    fn csr_operator_matches_dense_and_rejects_rectangles() {
        let n = 300;
        let a = Array2::from_shape_fn((n, n), |(i, j)| {
            if (i * 31 + j * 17) % 13 == 0 {
                i as f64 - j as f64 * 0.5
            } else {
                0.0
            }
        });
        let csr = tessera_sparse::CsrMatrix::from_dense(a.view()).unwrap();
        let x = Array1::from_shape_fn(n, |i| (i as f64 * 0.37).cos());
        let (mut y1, mut y2) = (Array1::zeros(n), Array1::zeros(n));
        LinearOperator::apply(&csr, x.view(), y1.view_mut());
        a.apply(x.view(), y2.view_mut());
        for (p, q) in y1.iter().zip(&y2) {
            approx::assert_abs_diff_eq!(*p, *q, epsilon = 1e-9);
        }
        let rect = tessera_sparse::CsrMatrix::<f64>::from_triplets(1, 2, &[(0, 0, 1.0)]).unwrap();
        let e = LinearOperator::validate(&rect).unwrap_err();
        assert!(e.to_string().contains("1×2"), "{e}");
    }
}
