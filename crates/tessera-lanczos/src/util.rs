//! Small shared helpers: input validation, vector kernels, random probes.

use ndarray::{Array1, ArrayView1, ArrayView2, ArrayViewMut1, Axis};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::gemv::{gemv_row_major, gemv_transposed_sub};
use crate::operator::LinearOperator;
use crate::Float;

/// `x` as a contiguous slice, copied only when the view is strided.
pub(crate) fn contiguous<'a, F: Clone>(x: &'a ArrayView1<'_, F>) -> std::borrow::Cow<'a, [F]> {
    match x.as_slice() {
        Some(slice) => std::borrow::Cow::Borrowed(slice),
        None => std::borrow::Cow::Owned(x.to_vec()),
    }
}

/// Errors on the first NaN/±∞ of `values`.
pub(crate) fn check_finite<'a, F: Float>(
    name: &'static str,
    values: impl IntoIterator<Item = &'a F>,
) -> Result<()> {
    for (index, v) in values.into_iter().enumerate() {
        if !v.is_finite() {
            return Err(Error::non_finite(name, index, v));
        }
    }
    Ok(())
}

/// Checks a finite, non-negative tolerance.
pub(crate) fn check_tolerance<F: Float>(name: &'static str, tol: F) -> Result<()> {
    if !tol.is_finite() || tol < F::zero() {
        return Err(Error::invalid(name, tol, "must be finite and ≥ 0"));
    }
    Ok(())
}

/// Validates the operator (square, at least 1×1).
pub(crate) fn check_operator<F: Float, O: LinearOperator<F> + ?Sized>(op: &O) -> Result<usize> {
    op.validate()?;
    let n = op.dim();
    if n == 0 {
        return Err(Error::invalid(
            "op.dim()",
            n,
            "the operator must be at least 1×1",
        ));
    }
    Ok(n)
}

/// Applies `op` and turns non-finite output into an error.
pub(crate) fn apply_checked<F: Float, O: LinearOperator<F> + ?Sized>(
    op: &O,
    x: ArrayView1<'_, F>,
    mut y: ArrayViewMut1<'_, F>,
    application: usize,
) -> Result<()> {
    op.apply(x, y.view_mut());
    first_non_finite(y.iter(), application)
}

/// Applies `op` to the columns of `x` and turns non-finite output into an error.
pub(crate) fn apply_batch_checked<F: Float, O: LinearOperator<F> + ?Sized>(
    op: &O,
    x: ArrayView2<'_, F>,
    y: &mut ndarray::Array2<F>,
    first_application: usize,
) -> Result<()> {
    op.apply_batch(x, y.view_mut());
    for (c, col) in y.axis_iter(Axis(1)).enumerate() {
        first_non_finite(col.iter(), first_application + c)?;
    }
    Ok(())
}

fn first_non_finite<'a, F: Float>(
    values: impl Iterator<Item = &'a F>,
    application: usize,
) -> Result<()> {
    for (index, v) in values.enumerate() {
        if !v.is_finite() {
            return Err(Error::NonFiniteOperatorOutput {
                application,
                index,
                value: v.to_string(),
            });
        }
    }
    Ok(())
}

/// Euclidean norm, with scaling so that large or tiny entries do not over/underflow in `f32`.
pub(crate) fn norm<F: Float>(x: ArrayView1<'_, F>) -> F {
    let scale = x.iter().fold(F::zero(), |m, v| m.max(v.abs()));
    if scale == F::zero() || !scale.is_finite() {
        return scale;
    }
    let inv = F::one() / scale;
    let sum: F = x.iter().map(|&v| (v * inv) * (v * inv)).sum();
    scale * sum.sqrt()
}

/// A Rademacher (±1) vector.
pub(crate) fn rademacher<F: Float, R: Rng + ?Sized>(n: usize, rng: &mut R) -> Array1<F> {
    Array1::from_shape_fn(n, |_| {
        if rng.random::<bool>() {
            F::one()
        } else {
            -F::one()
        }
    })
}

/// A standard Gaussian vector.
pub(crate) fn gaussian<F: Float, R: Rng + ?Sized>(n: usize, rng: &mut R) -> Array1<F> {
    Array1::from_shape_fn(n, |_| {
        let v: f64 = StandardNormal.sample(rng);
        F::from_f64_rounded(v)
    })
}

/// Two passes of classical Gram–Schmidt of `w` against the rows of `basis`; returns the
/// projection coefficients (sum of both passes).
pub(crate) fn cgs2<F: Float>(basis: ArrayView2<'_, F>, w: &mut Array1<F>) -> Array1<F> {
    let mut coeffs = Array1::zeros(basis.nrows());
    if basis.nrows() == 0 {
        return coeffs;
    }
    let (Some(rows), Some(w_slice)) = (basis.as_slice(), w.as_slice_mut()) else {
        for _ in 0..2 {
            let h = basis.dot(&*w);
            ndarray::linalg::general_mat_vec_mul(-F::one(), &basis.t(), &h, F::one(), w);
            coeffs += &h;
        }
        return coeffs;
    };
    let ncols = w_slice.len();
    let mut h = vec![F::zero(); basis.nrows()];
    for _ in 0..2 {
        // h = V·w, then w ← w − Vᵀh.
        gemv_row_major(rows, ncols, w_slice, &mut h);
        gemv_transposed_sub(rows, &h, w_slice);
        coeffs.iter_mut().zip(&h).for_each(|(c, &v)| *c += v);
    }
    coeffs
}
