//! Row-wise softmax, log-softmax and the softmax vector–Jacobian product.
//!
//! $p_{ic} = e^{z_{ic}} / \sum_k e^{z_{ik}}$, computed as $e^{z_{ic} - \max_k z_{ik}}$ over its
//! row sum so that large logits never overflow; $\log p_{ic} = z_{ic} - \max_k z_{ik} - \log\sum_k
//! e^{z_{ik} - \max_k z_{ik}}$ is always finite for finite logits.
//!
//! Every loss of this crate is written as a function of probabilities and pulled back to the
//! logits with [`softmax_backward`]: $\partial L/\partial z_{ic} = p_{ic}\,(g_{ic} - \sum_k g_{ik}
//! p_{ik})$ where $g = \partial L / \partial p$.

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, Zip};

use crate::{check, Float, Result};

/// Row-wise softmax of `(batch, classes)` logits.
///
/// Errors when `logits` is empty or holds a NaN or an infinity.
pub fn softmax<F: Float>(logits: ArrayView2<F>) -> Result<Array2<F>> {
    check::logits("logits", &logits)?;
    Ok(softmax_unchecked(logits))
}

/// Row-wise log-softmax of `(batch, classes)` logits (finite for every finite input).
///
/// Errors when `logits` is empty or holds a NaN or an infinity.
pub fn log_softmax<F: Float>(logits: ArrayView2<F>) -> Result<Array2<F>> {
    check::logits("logits", &logits)?;
    Ok(log_softmax_unchecked(logits))
}

/// Pulls a gradient with respect to the probabilities back to the logits:
/// $\partial L/\partial z = p \odot (g - \langle g, p\rangle)$ row by row.
///
/// `probabilities` must be the softmax of the logits (rows summing to 1) and `grad_probabilities`
/// must have the same shape. Errors otherwise, or on non-finite values.
pub fn softmax_backward<F: Float>(
    probabilities: ArrayView2<F>,
    grad_probabilities: ArrayView2<F>,
) -> Result<Array2<F>> {
    check::probability_rows("probabilities", &probabilities)?;
    check::same_shape(
        "grad_probabilities",
        &grad_probabilities,
        probabilities.shape(),
        "the shape of probabilities",
    )?;
    check::finite("grad_probabilities", &grad_probabilities)?;
    Ok(softmax_backward_unchecked(
        probabilities,
        grad_probabilities,
    ))
}

pub(crate) fn softmax_unchecked<F: Float>(logits: ArrayView2<F>) -> Array2<F> {
    let mut out = logits.to_owned();
    for row in out.rows_mut() {
        softmax_row_in_place(row);
    }
    out
}

pub(crate) fn log_softmax_unchecked<F: Float>(logits: ArrayView2<F>) -> Array2<F> {
    let mut out = logits.to_owned();
    for mut row in out.rows_mut() {
        let log_normaliser = log_sum_exp(row.view());
        row.mapv_inplace(|z| z - log_normaliser);
    }
    out
}

pub(crate) fn softmax_backward_unchecked<F: Float>(
    probabilities: ArrayView2<F>,
    grad_probabilities: ArrayView2<F>,
) -> Array2<F> {
    let mut out = Array2::<F>::zeros(probabilities.raw_dim());
    Zip::from(out.rows_mut())
        .and(probabilities.rows())
        .and(grad_probabilities.rows())
        .for_each(|mut out, p, g| {
            let inner: F = p.iter().zip(g.iter()).map(|(&p, &g)| p * g).sum();
            Zip::from(&mut out)
                .and(&p)
                .and(&g)
                .for_each(|o, &p, &g| *o = p * (g - inner));
        });
    out
}

/// $\log \sum_k e^{x_k}$ without overflow (finite input, at least one entry).
pub(crate) fn log_sum_exp<F: Float>(row: ArrayView1<F>) -> F {
    let max = row.iter().copied().fold(F::neg_infinity(), F::max);
    if max == F::neg_infinity() {
        return max;
    }
    let sum: F = row.iter().map(|&x| (x - max).exp()).sum();
    max + sum.ln()
}

/// Softmax of one row in place; entries equal to $-\infty$ (log of a zero probability) give
/// exactly 0 as long as one entry is finite.
pub(crate) fn softmax_row_in_place<F: Float>(mut row: ArrayViewMut1<F>) {
    let max = row.iter().copied().fold(F::neg_infinity(), F::max);
    row.mapv_inplace(|z| (z - max).exp());
    let sum: F = row.iter().copied().sum();
    row.mapv_inplace(|e| e / sum);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn softmax_is_shift_invariant_and_survives_huge_logits() {
        let logits = array![[1000.0_f64, 1001.0, 999.0], [-5.0, 0.0, 5.0]];
        let p = softmax(logits.view()).unwrap();
        let shifted = softmax((&logits - 1000.0).view()).unwrap();
        for (a, b) in p.iter().zip(shifted.iter()) {
            assert!((a - b).abs() < 1e-15);
        }
        let e = [(-1.0_f64).exp(), 1.0, (-2.0_f64).exp()];
        let s: f64 = e.iter().sum();
        for c in 0..3 {
            assert!((p[[0, c]] - e[c] / s).abs() < 1e-15);
        }
        let logp = log_softmax(logits.view()).unwrap();
        for (lp, p) in logp.iter().zip(p.iter()) {
            assert!((lp.exp() - p).abs() < 1e-12);
        }
    }

    #[test]
    fn backward_matches_explicit_jacobian() {
        let z = array![[0.3_f64, -1.2, 2.0, 0.1]];
        let p = softmax(z.view()).unwrap();
        let g = array![[0.5_f64, -1.0, 2.0, 0.25]];
        let back = softmax_backward(p.view(), g.view()).unwrap();
        for c in 0..4 {
            let mut expected = 0.0;
            for k in 0..4 {
                let jacobian = if k == c {
                    p[[0, k]] * (1.0 - p[[0, c]])
                } else {
                    -p[[0, k]] * p[[0, c]]
                };
                expected += g[[0, k]] * jacobian;
            }
            assert!((back[[0, c]] - expected).abs() < 1e-15);
        }
    }

    #[test]
    fn rejects_bad_input() {
        let nan = array![[0.0_f32, f32::NAN]];
        assert!(softmax(nan.view())
            .unwrap_err()
            .to_string()
            .contains("logits"));
        let empty = Array2::<f64>::zeros((0, 3));
        assert!(log_softmax(empty.view()).is_err());
        let not_p = array![[0.7_f64, 0.7]];
        let err = softmax_backward(not_p.view(), not_p.view()).unwrap_err();
        assert!(err.to_string().contains("probabilities"), "{err}");
    }
}
