//! The workspace's one softmax: row-wise, numerically stable softmax and log-softmax of
//! `(batch, classes)` logits, used by tessera-nn's losses and tessera-ssl's recipes.
//!
//! $p_{ic} = e^{z_{ic} - m_i} / \sum_k e^{z_{ik} - m_i}$ with $m_i = \max_k z_{ik}$, so large
//! logits never overflow; $\log p_{ic} = z_{ic} - m_i - \log \sum_k e^{z_{ik} - m_i}$ is finite
//! for every finite input.

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

use crate::{check, Float, InputError};

fn check_logits<F: Float>(logits: &ArrayView2<F>) -> Result<(), InputError> {
    let (batch, classes) = logits.dim();
    if batch == 0 || classes == 0 {
        return Err(InputError::shape(
            "logits",
            "(batch, classes) with batch >= 1 and classes >= 1",
            logits.shape(),
        ));
    }
    check::finite("logits", logits)
}

/// Row-wise softmax. Errors when `logits` is empty or holds NaN or ±∞.
pub fn softmax<F: Float>(logits: ArrayView2<F>) -> Result<Array2<F>, InputError> {
    check_logits(&logits)?;
    let mut out = logits.to_owned();
    softmax_rows_in_place(out.view_mut());
    Ok(out)
}

/// Row-wise log-softmax. Errors when `logits` is empty or holds NaN or ±∞.
pub fn log_softmax<F: Float>(logits: ArrayView2<F>) -> Result<Array2<F>, InputError> {
    check_logits(&logits)?;
    let mut out = logits.to_owned();
    for mut row in out.rows_mut() {
        let log_normaliser = log_sum_exp(row.view());
        row.mapv_inplace(|z| z - log_normaliser);
    }
    Ok(out)
}

/// Softmax of every row in place, for callers that validated the logits already. Entries equal
/// to −∞ (log of a zero probability) give exactly 0 as long as one entry of the row is finite.
pub fn softmax_rows_in_place<F: Float>(mut logits: ArrayViewMut2<F>) {
    for row in logits.rows_mut() {
        softmax_row_in_place(row);
    }
}

fn softmax_row_in_place<F: Float>(mut row: ArrayViewMut1<F>) {
    let max = row.iter().copied().fold(F::neg_infinity(), F::max);
    row.mapv_inplace(|z| (z - max).exp());
    let sum: F = row.iter().copied().sum();
    row.mapv_inplace(|e| e / sum);
}

/// $\log \sum_k e^{x_k}$ without overflow; −∞ for a row of −∞ (or an empty row).
pub fn log_sum_exp<F: Float>(row: ArrayView1<F>) -> F {
    let max = row.iter().copied().fold(F::neg_infinity(), F::max);
    if max == F::neg_infinity() {
        return max;
    }
    let sum: F = row.iter().map(|&x| (x - max).exp()).sum();
    max + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::array;

    #[test]
    fn softmax_is_shift_invariant_and_survives_huge_logits() {
        let logits = array![[1000.0_f64, 1001.0, 999.0], [-5.0, 0.0, 5.0]];
        let p = softmax(logits.view()).unwrap();
        let shifted = softmax((&logits - 1000.0).view()).unwrap();
        assert_abs_diff_eq!(p, shifted, epsilon = 1e-15);
        let e = [(-1.0_f64).exp(), 1.0, (-2.0_f64).exp()];
        let s: f64 = e.iter().sum();
        for c in 0..3 {
            assert_abs_diff_eq!(p[[0, c]], e[c] / s, epsilon = 1e-15);
        }
        let logp = log_softmax(logits.view()).unwrap();
        assert_abs_diff_eq!(logp.mapv(f64::exp), p, epsilon = 1e-12);
        let mut with_zero = array![[f64::NEG_INFINITY, 0.0]];
        softmax_rows_in_place(with_zero.view_mut());
        assert_eq!(with_zero, array![[0.0, 1.0]]);
    }

    #[test]
    fn rejects_empty_and_non_finite_logits() {
        let nan = array![[0.0_f32, f32::NAN]];
        assert_eq!(softmax(nan.view()).unwrap_err().name(), "logits");
        assert!(log_softmax(Array2::<f64>::zeros((0, 3)).view()).is_err());
        assert!(softmax(Array2::<f64>::zeros((2, 0)).view()).is_err());
    }
}
