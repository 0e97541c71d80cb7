//! Losses on the logits: softmax cross-entropy (hard labels or soft targets) and mean squared
//! error, with their gradients and Hessian-vector products with respect to the logits.

use ndarray::{Array1, Array2, ArrayView2, Axis, Zip};
use tessera_core::{check, RejectInput};

use crate::error::{Error, Result};
use crate::Float;

/// Which loss to take of the logits `z` (batch `B` × classes `K`). Both are averaged over the
/// batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Loss {
    /// `L = −(1/B) Σ_i Σ_k y_ik log softmax(z_i)_k`; hard labels are one-hot `y`.
    SoftmaxCrossEntropy,
    /// `L = (1/(B·K)) Σ_i Σ_k (z_ik − y_ik)²` (PyTorch `MSELoss`, mean reduction); hard labels
    /// are one-hot `y`.
    Mse,
}

/// Targets of a batch.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a, F> {
    /// One class index per row, each `< K`.
    Hard(&'a [usize]),
    /// One row of `K` values per example: non-negative weights (usually a probability
    /// vector: soft labels, mixup, sharpened guesses) for cross-entropy, regression targets for
    /// MSE.
    Soft(ArrayView2<'a, F>),
}

impl<F: Float> Targets<'_, F> {
    /// Checks the targets against a batch of `batch` rows and `classes` logits.
    pub fn validate(&self, batch: usize, classes: usize, loss: Loss) -> Result<()> {
        match self {
            Targets::Hard(labels) => {
                if labels.len() != batch {
                    return Err(Error::shape(
                        "targets",
                        format!("{batch} labels"),
                        format!("{} labels", labels.len()),
                    ));
                }
                if let Some(&bad) = labels.iter().find(|&&l| l >= classes) {
                    return Err(Error::invalid(
                        "targets",
                        bad,
                        format!("label must be < number of classes {classes}"),
                    ));
                }
            }
            Targets::Soft(y) => {
                if y.dim() != (batch, classes) {
                    return Err(Error::shape(
                        "targets",
                        format!("({batch}, {classes})"),
                        format!("{:?}", y.dim()),
                    ));
                }
                check::finite_values("targets", y.iter().copied())?;
                if loss == Loss::SoftmaxCrossEntropy {
                    if let Some(bad) = y.iter().find(|&&v| v < F::zero()) {
                        return Err(Error::invalid(
                            "targets",
                            bad,
                            "soft targets for cross-entropy must be non-negative",
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        match self {
            Targets::Hard(l) => l.len(),
            Targets::Soft(y) => y.nrows(),
        }
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class each example counts as correct for accuracy: the label, or the arg-max of
    /// the soft row.
    pub fn class_of(&self, row: usize) -> usize {
        match self {
            Targets::Hard(l) => l[row],
            Targets::Soft(y) => argmax(y.row(row).iter().copied()),
        }
    }

    /// Dense targets (one-hot for hard labels), shape `(len, classes)`.
    ///
    /// # Errors
    /// A hard label `>= classes`, soft targets with another number of columns,, or a one-hot
    /// matrix of more than [`MAX_DENSE_TARGET_ENTRIES`] entries.
    pub fn to_dense(&self, classes: usize) -> Result<Array2<F>> {
        match self {
            Targets::Hard(l) => {
                check::positive_size("classes", classes)?;
                check::element_count(
                    "dense targets (labels × classes)",
                    &[l.len(), classes],
                    MAX_DENSE_TARGET_ENTRIES,
                )?;
                if let Some((i, &c)) = l.iter().enumerate().find(|(_, &c)| c >= classes) {
                    return Err(Error::invalid(
                        "targets",
                        format!("label {c} of example {i}"),
                        format!("labels must be < classes = {classes}"),
                    ));
                }
                let mut y = Array2::zeros((l.len(), classes));
                for (i, &c) in l.iter().enumerate() {
                    y[[i, c]] = F::one();
                }
                Ok(y)
            }
            Targets::Soft(y) => {
                if y.ncols() != classes {
                    return Err(Error::shape(
                        "targets",
                        format!("{classes} columns"),
                        format!("{} columns", y.ncols()),
                    ));
                }
                Ok(y.to_owned())
            }
        }
    }
}

/// The most entries [`Targets::to_dense`] allocates (2^28).
pub const MAX_DENSE_TARGET_ENTRIES: usize = 1 << 28;

pub(crate) fn argmax<F: Float>(values: impl Iterator<Item = F>) -> usize {
    let mut best = 0;
    let mut best_value = F::neg_infinity();
    for (i, v) in values.enumerate() {
        if v > best_value {
            best = i;
            best_value = v;
        }
    }
    best
}

pub use tessera_core::softmax::softmax;

fn softmax_unchecked<F: Float>(logits: ArrayView2<'_, F>) -> Array2<F> {
    let mut p = logits.to_owned();
    tessera_core::softmax::softmax_rows_in_place(p.view_mut());
    p
}

/// The loss value and `∂L/∂z` (shape of the logits). Validates shapes, finiteness and labels.
pub fn loss_and_logit_gradient<F: Float>(
    logits: ArrayView2<'_, F>,
    targets: &Targets<'_, F>,
    loss: Loss,
) -> Result<(F, Array2<F>)> {
    let (batch, classes) = logits.dim();
    if batch == 0 {
        return Err(Error::invalid(
            "logits",
            "0 rows",
            "batch must not be empty",
        ));
    }
    targets.validate(batch, classes, loss)?;
    check::finite_values("logits", logits.iter().copied())?;
    let inv_b = F::one() / F::from_count(batch);
    match loss {
        Loss::SoftmaxCrossEntropy => {
            let mut grad = softmax_unchecked(logits);
            let mut total = F::zero();
            for (i, (z, mut g)) in logits
                .axis_iter(Axis(0))
                .zip(grad.axis_iter_mut(Axis(0)))
                .enumerate()
            {
                let max = z.fold(F::neg_infinity(), |m, &v| m.max(v));
                let log_sum = z.fold(F::zero(), |s, &v| s + (v - max).exp()).ln() + max;
                match targets {
                    Targets::Hard(labels) => {
                        let c = labels[i];
                        total += log_sum - z[c];
                        g[c] -= F::one();
                    }
                    Targets::Soft(y) => {
                        let y = y.row(i);
                        let mass: F = y.sum();
                        total += Zip::from(&z)
                            .and(&y)
                            .fold(F::zero(), |s, &zk, &yk| s + yk * (log_sum - zk));
                        Zip::from(&mut g)
                            .and(&y)
                            .for_each(|gk, &yk| *gk = *gk * mass - yk);
                    }
                }
            }
            grad.mapv_inplace(|v| v * inv_b);
            Ok((total * inv_b, grad))
        }
        Loss::Mse => {
            let y = targets.to_dense(classes)?;
            let scale = F::one() / F::from_count(batch * classes);
            let diff = &logits - &y;
            let total = diff.iter().fold(F::zero(), |s, &d| s + d * d) * scale;
            Ok((total, diff * (F::from_f64_rounded(2.0) * scale)))
        }
    }
}

/// Each row's prediction entropy $H_i = -\sum_k p_{ik} \log p_{ik}$ with $p_i = \mathrm{softmax}(z_i)$
/// (for picking confident samples, as EcoTTA and EATA do). Errors when `logits` is empty or
/// holds NaN or ±∞.
pub fn prediction_entropies<F: Float>(logits: ArrayView2<'_, F>) -> Result<Array1<F>> {
    let log_p = tessera_core::softmax::log_softmax(logits)?;
    Ok(row_entropies(log_p.view()))
}

fn row_entropies<F: Float>(log_p: ArrayView2<'_, F>) -> Array1<F> {
    // p·log p from the log-probabilities: p = 0 (underflow) contributes exactly 0.
    log_p
        .rows()
        .into_iter()
        .map(|row| -row.fold(F::zero(), |h, &l| h + l.exp() * l))
        .collect()
}

/// The entropy loss of test-time adaptation (TENT, Wang et al., ICLR 2021, "Tent: Fully
/// Test-Time Adaptation by Entropy Minimization"; github.com/DequanWang/tent) and its exact
/// gradient with respect to the logits:
/// $L = \frac1B \sum_i H_i$, $H_i = -\sum_k p_{ik}\log p_{ik}$, and
/// $\partial L/\partial z_{ik} = -\frac1B\, p_{ik}\,(\log p_{ik} + H_i)$.
///
/// Entropy takes no targets, so it is not a [`Loss`] variant; train with it through the
/// external-loss path: [`crate::Mlp::forward`], this function,
/// [`crate::Mlp::backward_from_logit_grad`], [`crate::Trainer::step_with_gradient`].
/// Errors when `logits` is empty or holds NaN or ±∞.
pub fn entropy_and_logit_gradient<F: Float>(logits: ArrayView2<'_, F>) -> Result<(F, Array2<F>)> {
    let log_p = tessera_core::softmax::log_softmax(logits)?;
    let entropies = row_entropies(log_p.view());
    let inv_b = F::one() / F::from_count(logits.nrows());
    let mut grad = log_p;
    for (mut row, &h) in grad.rows_mut().into_iter().zip(&entropies) {
        row.mapv_inplace(|l| -(l.exp() * (l + h)) * inv_b);
    }
    Ok((entropies.sum() * inv_b, grad))
}

/// The entropy loss on confident samples only (EATA, Niu et al., ICML 2022; EcoTTA, Song et
/// al., CVPR 2023): the mean entropy $\frac{1}{|S|}\sum_{i \in S} H_i$ over the rows
/// $S = \{i : H_i < \text{threshold}\}$ and its gradient with respect to the logits, which is
/// [`entropy_and_logit_gradient`]'s on the rows of $S$ and zero on the others. Returns
/// `(loss, gradient, |S|)`; with no confident row the loss and the gradient are zero.
///
/// # Errors
/// Empty or non-finite `logits`, a non-finite `threshold`.
pub fn confident_entropy_and_logit_gradient<F: Float>(
    logits: ArrayView2<'_, F>,
    threshold: F,
) -> Result<(F, Array2<F>, usize)> {
    check::finite_scalar("threshold", threshold.to_f64_exact())?;
    let log_p = tessera_core::softmax::log_softmax(logits)?;
    let entropies = row_entropies(log_p.view());
    let confident = entropies.iter().filter(|&&h| h < threshold).count();
    let mut grad = Array2::zeros(logits.raw_dim());
    if confident == 0 {
        return Ok((F::zero(), grad, 0));
    }
    let inv_s = F::one() / F::from_count(confident);
    let mut loss = F::zero();
    for ((mut row, log_row), &h) in grad
        .rows_mut()
        .into_iter()
        .zip(log_p.rows())
        .zip(&entropies)
    {
        if h < threshold {
            loss += h;
            Zip::from(&mut row)
                .and(&log_row)
                .for_each(|g, &l| *g = -(l.exp() * (l + h)) * inv_s);
        }
    }
    Ok((loss * inv_s, grad, confident))
}

/// The Hessian of the loss with respect to the logits applied to `direction` (one matrix per
/// row, so the result has the shape of the logits). For cross-entropy it is
/// `s_i (diag p_i − p_i p_iᵀ)/B` with `s_i = Σ_k y_ik`; for MSE `2/(B·K)·I`.
/// Callers have validated `targets` against `logits`.
pub(crate) fn logit_hessian_vector<F: Float>(
    logits: ArrayView2<'_, F>,
    targets: &Targets<'_, F>,
    loss: Loss,
    direction: ArrayView2<'_, F>,
) -> Array2<F> {
    let (batch, classes) = logits.dim();
    let inv_b = F::one() / F::from_count(batch);
    match loss {
        Loss::SoftmaxCrossEntropy => {
            let p = softmax_unchecked(logits);
            let mut out = Array2::zeros((batch, classes));
            for i in 0..batch {
                let mass = match targets {
                    Targets::Hard(_) => F::one(),
                    Targets::Soft(y) => y.row(i).sum(),
                };
                let pi = p.row(i);
                let ri = direction.row(i);
                let dot = Zip::from(&pi)
                    .and(&ri)
                    .fold(F::zero(), |s, &a, &b| s + a * b);
                Zip::from(out.row_mut(i))
                    .and(&pi)
                    .and(&ri)
                    .for_each(|o, &pk, &rk| *o = mass * inv_b * pk * (rk - dot));
            }
            out
        }
        Loss::Mse => {
            direction.mapv(|v| v * F::from_f64_rounded(2.0) / F::from_count(batch * classes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::array;

    #[test]
    fn cross_entropy_hard_equals_one_hot_soft() {
        let z = array![[1.0f64, -0.5, 2.0], [0.3, 0.1, -1.0]];
        let labels = [2usize, 0];
        let (lh, gh) =
            loss_and_logit_gradient(z.view(), &Targets::Hard(&labels), Loss::SoftmaxCrossEntropy)
                .unwrap();
        let y = Targets::Hard(&labels).to_dense(3).unwrap();
        let (ls, gs) = loss_and_logit_gradient(
            z.view(),
            &Targets::Soft(y.view()),
            Loss::SoftmaxCrossEntropy,
        )
        .unwrap();
        assert_abs_diff_eq!(lh, ls, epsilon = 1e-14);
        assert_abs_diff_eq!(gh, gs, epsilon = 1e-14);
        // Hand value: row 0 CE = logsumexp(z0) - 2.
        let lse0 = (1.0f64.exp() + (-0.5f64).exp() + 2.0f64.exp()).ln();
        let lse1 = (0.3f64.exp() + 0.1f64.exp() + (-1.0f64).exp()).ln();
        assert_abs_diff_eq!(lh, 0.5 * ((lse0 - 2.0) + (lse1 - 0.3)), epsilon = 1e-14);
    }

    #[test]
    fn rejects_bad_targets() {
        let z = array![[1.0f64, 2.0]];
        let ce = Loss::SoftmaxCrossEntropy;
        assert!(loss_and_logit_gradient(z.view(), &Targets::Hard(&[2]), ce).is_err());
        assert!(loss_and_logit_gradient(z.view(), &Targets::Hard(&[0, 1]), ce).is_err());
        let neg = array![[-0.1f64, 1.1]];
        assert!(loss_and_logit_gradient(z.view(), &Targets::Soft(neg.view()), ce).is_err());
        let nan = array![[f64::NAN, 1.0]];
        assert!(loss_and_logit_gradient(z.view(), &Targets::Soft(nan.view()), Loss::Mse).is_err());
    }
}
