//! Losses on batch-first `(batch, classes)` logits, each returning its value **and** its
//! gradient with respect to the logits, so that any model (tessera-nn or another engine) can
//! train with them.
//!
//! With $p = \mathrm{softmax}(z)$ row by row, $B$ items and $C$ classes:
//!
//! * soft cross-entropy $L = -\frac1B \sum_b \sum_c q_{bc} \log p_{bc}$,
//!   $\partial L/\partial z = (p \cdot \textstyle\sum_c q_{bc} - q)/B$;
//! * MSE on probabilities $L = \frac{1}{BC} \sum_{b,c} (p_{bc} - q_{bc})^2$ (MixMatch's $L_U$,
//!   Mean Teacher's consistency cost; PyTorch's `MSELoss` mean reduction);
//! * Jensen–Shannon divergence (Deep Co-Training's $L_{cot}$) $L = \frac1B \sum_b
//!   H(m_b) - \tfrac12 (H(p_b) + H(r_b))$ with $m = \tfrac12(p + r)$.
//!
//! Targets $q$ are constants (no gradient flows into them), as every SSL recipe here
//! requires: guessed labels, pseudo-labels and teacher predictions are computed without
//! gradient.

use ndarray::{Array2, ArrayView2, Zip};

use crate::softmax::{log_softmax_unchecked, softmax_backward_unchecked};
use crate::{check, Float, Result};

/// A scalar loss and its gradient with respect to the logits it was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct LossAndGradient<F> {
    /// The (batch-averaged) loss value.
    pub value: F,
    /// $\partial L / \partial z$, same shape as the logits.
    pub grad: Array2<F>,
}

/// A loss of two sets of logits and its gradient with respect to both.
#[derive(Debug, Clone, PartialEq)]
pub struct PairLoss<F> {
    /// The (batch-averaged) loss value.
    pub value: F,
    /// $\partial L / \partial z_a$ (first argument).
    pub grad_a: Array2<F>,
    /// $\partial L / \partial z_b$ (second argument).
    pub grad_b: Array2<F>,
}

/// Soft-target cross-entropy averaged over the batch:
/// $L = -\frac1B \sum_b \sum_c q_{bc} \log \mathrm{softmax}(z_b)_c$.
///
/// `targets` rows must be probability distributions (one-hot, mixed, sharpened...). Errors on
/// empty or non-finite logits, mismatched shapes, or target rows that are not distributions.
pub fn soft_cross_entropy<F: Float>(
    logits: ArrayView2<F>,
    targets: ArrayView2<F>,
) -> Result<LossAndGradient<F>> {
    check_logits_and_targets(&logits, &targets)?;
    Ok(soft_cross_entropy_unchecked(logits, targets))
}

/// Mean squared error between the softmax of `logits` and the probability rows `targets`,
/// averaged over every entry: $L = \frac{1}{BC}\sum_{b,c} (p_{bc} - q_{bc})^2$.
///
/// Errors on empty or non-finite logits, mismatched shapes, or target rows that are not
/// distributions.
pub fn mse_probabilities<F: Float>(
    logits: ArrayView2<F>,
    targets: ArrayView2<F>,
) -> Result<LossAndGradient<F>> {
    check_logits_and_targets(&logits, &targets)?;
    Ok(mse_probabilities_unchecked(logits, targets))
}

/// Jensen–Shannon divergence between the softmaxes of two sets of logits, averaged over the
/// batch, with the gradient for both (Deep Co-Training's $L_{cot}$, where both networks are
/// trained by it):
/// $L = \frac1B\sum_b \tfrac12 \mathrm{KL}(p_b \,\|\, m_b) + \tfrac12 \mathrm{KL}(r_b \,\|\,
/// m_b)$, $m = \tfrac12(p + r)$, which equals $H(m) - \tfrac12(H(p) + H(r))$ and lies in
/// $[0, \log 2]$.
///
/// Errors on empty or non-finite logits or mismatched shapes.
pub fn jensen_shannon<F: Float>(
    logits_a: ArrayView2<F>,
    logits_b: ArrayView2<F>,
) -> Result<PairLoss<F>> {
    check::logits("logits_a", &logits_a)?;
    check::same_shape(
        "logits_b",
        &logits_b,
        logits_a.shape(),
        "the shape of logits_a",
    )?;
    check::finite("logits_b", &logits_b)?;
    Ok(jensen_shannon_unchecked(logits_a, logits_b))
}

pub(crate) fn check_logits_and_targets<F: Float>(
    logits: &ArrayView2<F>,
    targets: &ArrayView2<F>,
) -> Result<()> {
    check::logits("logits", logits)?;
    check::same_shape("targets", targets, logits.shape(), "the shape of logits")?;
    check::probability_rows("targets", targets)?;
    Ok(())
}

pub(crate) fn soft_cross_entropy_unchecked<F: Float>(
    logits: ArrayView2<F>,
    targets: ArrayView2<F>,
) -> LossAndGradient<F> {
    let batch = F::from_f64_rounded(logits.nrows() as f64);
    let log_p = log_softmax_unchecked(logits);
    let mut total = F::zero();
    let mut grad = Array2::<F>::zeros(logits.raw_dim());
    Zip::from(grad.rows_mut())
        .and(log_p.rows())
        .and(targets.rows())
        .for_each(|mut grad, log_p, q| {
            let target_mass: F = q.iter().copied().sum();
            // Zero-mass entries are skipped so that 0·log 0 counts as 0, not NaN.
            total -= log_p
                .iter()
                .zip(q.iter())
                .filter(|(_, &q)| q != F::zero())
                .map(|(&lp, &q)| q * lp)
                .sum::<F>();
            Zip::from(&mut grad)
                .and(&log_p)
                .and(&q)
                .for_each(|g, &lp, &q| *g = (lp.exp() * target_mass - q) / batch);
        });
    LossAndGradient {
        value: total / batch,
        grad,
    }
}

pub(crate) fn mse_probabilities_unchecked<F: Float>(
    logits: ArrayView2<F>,
    targets: ArrayView2<F>,
) -> LossAndGradient<F> {
    let count = F::from_f64_rounded(logits.len() as f64);
    let p = log_softmax_unchecked(logits).mapv_into(F::exp);
    let difference = &p - &targets;
    let value = difference.iter().map(|&d| d * d).sum::<F>() / count;
    let two_over_count = F::from_f64_rounded(2.0) / count;
    let grad_p = difference.mapv(|d| d * two_over_count);
    LossAndGradient {
        value,
        grad: softmax_backward_unchecked(p.view(), grad_p.view()),
    }
}

pub(crate) fn jensen_shannon_unchecked<F: Float>(
    logits_a: ArrayView2<F>,
    logits_b: ArrayView2<F>,
) -> PairLoss<F> {
    let batch = F::from_f64_rounded(logits_a.nrows() as f64);
    let half = F::from_f64_rounded(0.5);
    let ln_2 = F::from_f64_rounded(std::f64::consts::LN_2);
    // Logits whose spread overflows F (e.g. ±3e38 in f32) give log-probabilities of −∞, and
    // 0·(−∞) made the loss and gradients NaN. Below `floor` a probability is exactly 0 in F, so
    // clamping there changes nothing that was finite and keeps every product 0·finite = 0.
    let floor = (F::min_positive_value() * F::epsilon()).ln() - F::from_f64_rounded(2.0);
    let log_p = log_softmax_unchecked(logits_a).mapv_into(|v| v.max(floor));
    let log_r = log_softmax_unchecked(logits_b).mapv_into(|v| v.max(floor));
    // log m = log(p + r) - log 2 = logaddexp(log p, log r) - log 2, finite even where p and r
    // underflow to 0.
    let log_m = Zip::from(&log_p).and(&log_r).map_collect(|&a, &b| {
        let (high, low) = if a >= b { (a, b) } else { (b, a) };
        high + (low - high).exp().ln_1p() - ln_2
    });
    let p = log_p.mapv(F::exp);
    let r = log_r.mapv(F::exp);
    let mut total = F::zero();
    Zip::from(&p)
        .and(&log_p)
        .and(&r)
        .and(&log_r)
        .and(&log_m)
        .for_each(|&p, &lp, &r, &lr, &lm| {
            total += half * (p * (lp - lm) + r * (lr - lm));
        });
    // ∂L/∂p = ½(log p − log m) (the +1 terms of the entropies cancel), then through softmax.
    let scale = half / batch;
    let grad_p = Zip::from(&log_p)
        .and(&log_m)
        .map_collect(|&lp, &lm| scale * (lp - lm));
    let grad_r = Zip::from(&log_r)
        .and(&log_m)
        .map_collect(|&lr, &lm| scale * (lr - lm));
    PairLoss {
        value: (total / batch).max(F::zero()),
        grad_a: softmax_backward_unchecked(p.view(), grad_p.view()),
        grad_b: softmax_backward_unchecked(r.view(), grad_r.view()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::softmax::softmax_unchecked;
    use approx::assert_abs_diff_eq;
    use ndarray::array;

    #[test]
    fn cross_entropy_of_one_hot_is_negative_log_probability() {
        let z = array![[1.0_f64, 2.0, 3.0], [0.0, 0.0, 0.0]];
        let q = array![[0.0_f64, 0.0, 1.0], [1.0, 0.0, 0.0]];
        let loss = soft_cross_entropy(z.view(), q.view()).unwrap();
        let p = softmax_unchecked(z.view());
        let expected = -(p[[0, 2]].ln() + p[[1, 0]].ln()) / 2.0;
        assert_abs_diff_eq!(loss.value, expected, epsilon = 1e-15);
        assert_abs_diff_eq!(loss.grad[[0, 2]], (p[[0, 2]] - 1.0) / 2.0, epsilon = 1e-15);
    }

    #[test]
    fn js_of_logits_whose_spread_overflows_is_finite() {
        // Opposite one-hot predictions: JS = log 2, gradients finite (were NaN).
        let a = array![[3.0e38_f32, -3.0e38]];
        let b = array![[-3.0e38_f32, 3.0e38]];
        let loss = jensen_shannon(a.view(), b.view()).unwrap();
        assert_abs_diff_eq!(loss.value, std::f32::consts::LN_2, epsilon = 1e-6);
        assert!(loss
            .grad_a
            .iter()
            .chain(loss.grad_b.iter())
            .all(|g| g.is_finite()));
        let a = array![[1.0e308_f64, -1.0e308, 0.0]];
        let loss = jensen_shannon(a.view(), a.view()).unwrap();
        assert_abs_diff_eq!(loss.value, 0.0, epsilon = 1e-15);
        assert_abs_diff_eq!(
            loss.grad_a,
            ndarray::Array2::zeros(loss.grad_a.raw_dim()),
            epsilon = 1e-15
        );
    }

    #[test]
    fn js_is_zero_for_identical_and_below_log_two() {
        let z = array![[1.0_f64, -2.0, 0.5]];
        let same = jensen_shannon(z.view(), z.view()).unwrap();
        assert_abs_diff_eq!(same.value, 0.0, epsilon = 1e-15);
        assert_abs_diff_eq!(
            same.grad_a,
            ndarray::Array2::zeros(same.grad_a.raw_dim()),
            epsilon = 1e-15
        );
        let a = array![[60.0_f64, -60.0]];
        let b = array![[-60.0_f64, 60.0]];
        let far = jensen_shannon(a.view(), b.view()).unwrap();
        assert_abs_diff_eq!(far.value, std::f64::consts::LN_2, epsilon = 1e-12);
    }

    #[test]
    fn mse_matches_definition() {
        let z = array![[0.0_f64, 0.0], [3.0_f64.ln(), 0.0]];
        let q = array![[1.0_f64, 0.0], [0.5, 0.5]];
        let loss = mse_probabilities(z.view(), q.view()).unwrap();
        let expected = (0.25 + 0.25 + 0.0625 + 0.0625) / 4.0;
        assert_abs_diff_eq!(loss.value, expected, epsilon = 1e-15);
    }

    #[test]
    fn errors_name_the_parameter() {
        let z = array![[0.0_f64, 1.0]];
        let q = array![[0.5_f64, 0.6]];
        let err = soft_cross_entropy(z.view(), q.view()).unwrap_err();
        assert!(err.to_string().contains("targets"), "{err}");
        let q3 = array![[0.5_f64, 0.25, 0.25]];
        let err = mse_probabilities(z.view(), q3.view()).unwrap_err();
        assert!(err.to_string().contains("targets"), "{err}");
        let inf = array![[0.0_f64, f64::INFINITY]];
        let err = jensen_shannon(z.view(), inf.view()).unwrap_err();
        assert!(err.to_string().contains("logits_b"), "{err}");
    }
}
