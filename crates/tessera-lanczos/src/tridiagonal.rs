//! Pure-Rust symmetric eigensolvers: implicit QL with Wilkinson shifts for symmetric
//! tridiagonal matrices, Golub–Welsch Gauss quadrature, and a small dense symmetric solver
//! (Householder reduction + the same QL iteration) used for the projected matrices of the
//! restarted Lanczos method.
//!
//! Written here instead of pulling LAPACK so that the default build needs no system library
//! (DESIGN.md: offline, pure-Rust default); the algorithm is the classical one of Bowdler,
//! Martin, Reinsch & Wilkinson (EISPACK `tql1`/`tql2`, 1968) and Golub & Welsch (1969).

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, Slice};
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::util::check_finite;
use crate::Float;

/// Which eigenvector information [`tridiagonal_eigen`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EigenvectorMode {
    /// Eigenvalues only.
    None,
    /// Only the first component of every eigenvector (all Golub–Welsch needs), `O(n²)`.
    FirstComponents,
    /// Full eigenvectors, `O(n³)`.
    Full,
}

/// Eigen-decomposition of a symmetric tridiagonal matrix, eigenvalues ascending.
#[derive(Debug, Clone)]
pub struct TridiagonalEigen<F> {
    /// Eigenvalues, ascending.
    pub values: Array1<F>,
    /// Eigenvectors as columns (`n × n`) when requested with [`EigenvectorMode::Full`].
    pub vectors: Option<Array2<F>>,
    /// First component of each eigenvector (with [`EigenvectorMode::FirstComponents`] or
    /// [`EigenvectorMode::Full`]).
    pub first_components: Option<Array1<F>>,
}

/// Eigenvalues (and optionally eigenvectors) of the symmetric tridiagonal matrix with
/// diagonal `diag` (length `n ≥ 1`) and off-diagonal `off` (length `n − 1`).
///
/// Implicit QL with Wilkinson shifts; a split is declared when
/// `|e_i| ≤ ε·(|d_i| + |d_{i+1}|)`.
pub fn tridiagonal_eigen<F: Float>(
    diag: ArrayView1<'_, F>,
    off: ArrayView1<'_, F>,
    mode: EigenvectorMode,
) -> Result<TridiagonalEigen<F>> {
    let n = diag.len();
    if n == 0 {
        return Err(Error::invalid(
            "diag.len()",
            n,
            "the matrix must be at least 1×1",
        ));
    }
    if off.len() + 1 != n {
        return Err(Error::shape(
            "off",
            format!("length {}", n - 1),
            format!("length {}", off.len()),
        ));
    }
    check_finite("diag", diag.iter())?;
    check_finite("off", off.iter())?;
    let mut d = diag.to_owned();
    let mut e = Array1::zeros(n);
    e.slice_axis_mut(Axis(0), Slice::from(..n - 1)).assign(&off);
    let mut z = match mode {
        EigenvectorMode::None => None,
        EigenvectorMode::FirstComponents => {
            let mut z = Array2::zeros((1, n));
            z[[0, 0]] = F::one();
            Some(z)
        }
        EigenvectorMode::Full => Some(Array2::eye(n)),
    };
    implicit_ql(&mut d, &mut e, z.as_mut())?;
    Ok(sorted(d, z, mode))
}

/// Sorts eigenvalues ascending, permuting eigenvector columns alike.
fn sorted<F: Float>(
    d: Array1<F>,
    z: Option<Array2<F>>,
    mode: EigenvectorMode,
) -> TridiagonalEigen<F> {
    let n = d.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| d[a].partial_cmp(&d[b]).expect("finite eigenvalues"));
    let values = Array1::from_iter(order.iter().map(|&i| d[i]));
    let z = z.map(|z| z.select(Axis(1), &order));
    match mode {
        EigenvectorMode::None => TridiagonalEigen {
            values,
            vectors: None,
            first_components: None,
        },
        EigenvectorMode::FirstComponents => TridiagonalEigen {
            values,
            first_components: z.map(|z| z.row(0).to_owned()),
            vectors: None,
        },
        EigenvectorMode::Full => {
            let z = z.expect("vectors were requested");
            TridiagonalEigen {
                values,
                first_components: Some(z.row(0).to_owned()),
                vectors: Some(z),
            }
        }
    }
}

/// The QL sweep: on return `d` holds the eigenvalues (unsorted) and the columns of `z` have
/// been rotated along (so `z = I` gives eigenvectors, a single row gives that row of them).
/// `e[i]` couples `d[i]` and `d[i+1]`; `e[n-1]` is scratch.
fn implicit_ql<F: Float>(
    d: &mut Array1<F>,
    e: &mut Array1<F>,
    mut z: Option<&mut Array2<F>>,
) -> Result<()> {
    let n = d.len();
    let eps = F::epsilon();
    let two = F::from_f64_rounded(2.0);
    let max_iterations = 60;
    for l in 0..n {
        let mut iterations = 0;
        loop {
            // The first negligible coupling at or after l ends the unreduced block [l, m].
            let mut m = l;
            while m + 1 < n {
                if e[m].abs() <= eps * (d[m].abs() + d[m + 1].abs()) {
                    break;
                }
                m += 1;
            }
            if m == l {
                break;
            }
            iterations += 1;
            if iterations > max_iterations {
                return Err(Error::EigenSolverFailed {
                    index: l,
                    iterations,
                });
            }
            // Wilkinson shift: the eigenvalue of the leading 2×2 block closest to d[l].
            let g0 = (d[l + 1] - d[l]) / (two * e[l]);
            let r0 = pythag(g0, F::one());
            let mut g = d[m] - d[l] + e[l] / (g0 + r0.copysign(g0));
            let (mut sin, mut cos, mut p) = (F::one(), F::one(), F::zero());
            let mut underflow = false;
            let mut i = m;
            while i > l {
                i -= 1;
                let f = sin * e[i];
                let b = cos * e[i];
                let r = pythag(f, g);
                e[i + 1] = r;
                if r == F::zero() {
                    // The rotation underflowed: the block already split at i; undo the shift
                    // for this element and restart the sweep.
                    d[i + 1] -= p;
                    e[m] = F::zero();
                    underflow = true;
                    break;
                }
                sin = f / r;
                cos = g / r;
                let g1 = d[i + 1] - p;
                let r1 = (d[i] - g1) * sin + two * cos * b;
                p = sin * r1;
                d[i + 1] = g1 + p;
                g = cos * r1 - b;
                if let Some(z) = z.as_deref_mut() {
                    for k in 0..z.nrows() {
                        let zi1 = z[[k, i + 1]];
                        let zi = z[[k, i]];
                        z[[k, i + 1]] = sin * zi + cos * zi1;
                        z[[k, i]] = cos * zi - sin * zi1;
                    }
                }
            }
            if underflow {
                continue;
            }
            d[l] -= p;
            e[l] = g;
            e[m] = F::zero();
        }
    }
    Ok(())
}

/// Gauss quadrature nodes and weights from a Jacobi (symmetric tridiagonal) matrix by the
/// Golub–Welsch algorithm: nodes are its eigenvalues, weights the squared first components
/// of its normalised eigenvectors. The weights sum to 1 (multiply by the measure's total
/// mass `μ₀` for a classical rule, e.g. `√π` for Gauss–Hermite).
///
/// ```
/// use ndarray::Array1;
/// use tessera_lanczos::golub_welsch;
/// // Legendre: α = 0, β_k = k/√(4k²−1); 2-point rule: ±1/√3, weights 1/2 (×2 = μ₀).
/// let (x, w) = golub_welsch(Array1::zeros(2).view(), Array1::from(vec![1.0 / 3f64.sqrt()]).view()).unwrap();
/// assert!((x[1] - 1.0 / 3f64.sqrt()).abs() < 1e-15 && (w[0] - 0.5).abs() < 1e-15);
/// ```
pub fn golub_welsch<F: Float>(
    alpha: ArrayView1<'_, F>,
    beta: ArrayView1<'_, F>,
) -> Result<(Array1<F>, Array1<F>)> {
    let eig = tridiagonal_eigen(alpha, beta, EigenvectorMode::FirstComponents)?;
    let first = eig
        .first_components
        .expect("first components were requested");
    let mut weights = first.mapv(|v| v * v);
    // The eigenvector matrix is orthogonal, so Σ q₀ᵢ² = 1 up to rounding; renormalise.
    let total: F = weights.sum();
    weights.mapv_inplace(|w| w / total);
    Ok((eig.values, weights))
}

/// Eigen-decomposition of a small dense symmetric matrix (`values` ascending, `vectors` as
/// columns) by Householder reduction to tridiagonal form followed by implicit QL. Only the
/// lower triangle is read. `O(n³)`: meant for projected matrices of a few hundred rows.
pub fn symmetric_eigen<F: Float>(a: ArrayView2<'_, F>) -> Result<(Array1<F>, Array2<F>)> {
    let n = a.nrows();
    if a.ncols() != n {
        return Err(Error::shape(
            "a",
            "a square matrix",
            format!("{}×{}", n, a.ncols()),
        ));
    }
    if n == 0 {
        return Err(Error::invalid(
            "a.nrows()",
            n,
            "the matrix must be at least 1×1",
        ));
    }
    check_finite("a", a.iter())?;
    let (mut d, mut e, mut q) = householder_tridiagonalise(a);
    implicit_ql(&mut d, &mut e, Some(&mut q))?;
    let eig = sorted(d, Some(q), EigenvectorMode::Full);
    Ok((eig.values, eig.vectors.expect("vectors were requested")))
}

/// `√(a² + b²)` without overflow or underflow (EISPACK's `pythag`): several times faster than
/// libm's correctly rounded `hypot`, which dominated the QL sweeps, and accurate to a few ulp.
#[inline]
fn pythag<F: Float>(a: F, b: F) -> F {
    let (a, b) = (a.abs(), b.abs());
    let (big, small) = if a > b { (a, b) } else { (b, a) };
    if big == F::zero() {
        return F::zero();
    }
    let r = small / big;
    big * (F::one() + r * r).sqrt()
}

/// Reduces the symmetric `a` (lower triangle) to `Qᵀ·a·Q = tridiag(d, e)`, returning
/// `(d, e, Q)` with `e[i]` coupling `i` and `i + 1`.
pub(crate) fn householder_tridiagonalise<F: Float>(
    a: ArrayView2<'_, F>,
) -> (Array1<F>, Array1<F>, Array2<F>) {
    let n = a.nrows();
    // Symmetrise from the lower triangle.
    let mut w = Array2::from_shape_fn((n, n), |(i, j)| if i >= j { a[[i, j]] } else { a[[j, i]] });
    let mut q = Array2::<F>::eye(n);
    let mut e = Array1::zeros(n);
    for k in 0..n.saturating_sub(2) {
        // Reflector H = I − τ v vᵀ mapping w[k+1.., k] onto a multiple of the first unit vector.
        let x = w
            .column(k)
            .slice_axis(Axis(0), Slice::from(k + 1..))
            .to_owned();
        let norm_x = crate::util::norm(x.view());
        if norm_x == F::zero() {
            e[k] = F::zero();
            continue;
        }
        let alpha = if x[0] > F::zero() { -norm_x } else { norm_x };
        let mut v = x;
        v[0] -= alpha;
        // v[0] = x[0] − α has |v[0]| ≥ ‖x‖ > 0 by the choice of sign of α.
        let vnorm2 = v.dot(&v);
        let tau = F::from_f64_rounded(2.0) / vnorm2;
        // Two-sided update of the trailing block B ← H B H via p = τ B v, K = τ vᵀp/2,
        // q = p − K v, B ← B − v qᵀ − q vᵀ.
        let mut block = w.slice_each_axis_mut(|_| Slice::from(k + 1..));
        let p = block.dot(&v) * tau;
        let kappa = tau * v.dot(&p) / F::from_f64_rounded(2.0);
        let qv = &p - &(&v * kappa);
        let m = v.len();
        for i in 0..m {
            for j in 0..m {
                block[[i, j]] -= v[i] * qv[j] + qv[i] * v[j];
            }
        }
        e[k] = alpha;
        // Accumulate Q ← Q H on columns k+1.. .
        let mut qcols = q.slice_axis_mut(Axis(1), Slice::from(k + 1..));
        let qvv = qcols.dot(&v) * tau;
        for r in 0..n {
            for j in 0..m {
                qcols[[r, j]] -= qvv[r] * v[j];
            }
        }
    }
    if n >= 2 {
        e[n - 2] = w[[n - 1, n - 2]];
    }
    let d = Array1::from_shape_fn(n, |i| w[[i, i]]);
    e[n - 1] = F::zero();
    (d, e, q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::arr1;

    #[test]
    fn two_by_two() {
        let eig = tridiagonal_eigen(
            arr1(&[2.0f64, 2.0]).view(),
            arr1(&[1.0]).view(),
            EigenvectorMode::Full,
        )
        .unwrap();
        assert_abs_diff_eq!(eig.values[0], 1.0, epsilon = 1e-15);
        assert_abs_diff_eq!(eig.values[1], 3.0, epsilon = 1e-15);
        let v = eig.vectors.unwrap();
        assert_abs_diff_eq!(v[[0, 0]].abs(), 0.5f64.sqrt(), epsilon = 1e-15);
    }

    #[test]
    fn bad_input() {
        assert!(tridiagonal_eigen::<f64>(
            arr1(&[]).view(),
            arr1(&[]).view(),
            EigenvectorMode::None
        )
        .is_err());
        let e = tridiagonal_eigen(
            arr1(&[1.0, 2.0]).view(),
            arr1(&[1.0, 2.0]).view(),
            EigenvectorMode::None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("off"), "{e}");
        let e = tridiagonal_eigen(
            arr1(&[1.0, f64::NAN]).view(),
            arr1(&[1.0]).view(),
            EigenvectorMode::None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("diag"), "{e}");
        assert!(symmetric_eigen(Array2::<f64>::zeros((2, 3)).view()).is_err());
    }

    #[test]
    fn dense_reconstructs() {
        let n = 9;
        let a = Array2::from_shape_fn((n, n), |(i, j)| {
            1.0 / (1.0 + i as f64 + j as f64) + if i == j { (i as f64) * 0.3 } else { 0.0 }
        });
        let (vals, vecs) = symmetric_eigen(a.view()).unwrap();
        let recon = vecs.dot(&Array2::from_diag(&vals)).dot(&vecs.t());
        for (x, y) in recon.iter().zip(a.iter()) {
            assert_abs_diff_eq!(x, y, epsilon = 1e-13);
        }
        let ortho = vecs.t().dot(&vecs);
        for ((i, j), v) in ortho.indexed_iter() {
            assert_abs_diff_eq!(*v, if i == j { 1.0 } else { 0.0 }, epsilon = 1e-13);
        }
        for w in vals.windows(2) {
            assert!(w[0] <= w[1]);
        }
    }

    #[test]
    fn pythag_is_hypot_without_overflow() {
        for &(a, b) in &[
            (3.0f64, 4.0),
            (0.0, 0.0),
            (-1e300, 1e300),
            (1e-300, -2e-300),
            (5.0, 0.0),
        ] {
            let want = if a.abs() > 1e200 {
                a.abs() * 2f64.sqrt()
            } else {
                a.hypot(b)
            };
            assert_abs_diff_eq!(pythag(a, b), want, epsilon = 4.0 * f64::EPSILON * want);
        }
    }
}
