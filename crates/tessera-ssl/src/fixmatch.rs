//! FixMatch (Sohn et al., 2020): confident hard pseudo-labels from the weak view, a masked
//! cross-entropy on the strong view.
//!
//! $\hat y_b = \arg\max_c p^{w}_{bc}$, $\mathrm{mask}_b = [\max_c p^{w}_{bc} \ge \tau]$ and
//! $L_u = \frac{1}{B_u} \sum_b \mathrm{mask}_b \cdot (-\log \mathrm{softmax}(z^{s}_b)_{\hat y_b})$:
//! the sum is divided by the **whole** unlabelled batch $B_u$, not by the number of confident
//! items, so the unlabelled term grows as the model becomes confident (paper eq. 4; SSLH's
//! `torch.mean(loss_u * mask)`).

use ndarray::{Array1, Array2, ArrayView2, Axis};
use tessera_core::RejectInput;

use crate::losses::{check_logits_and_targets, soft_cross_entropy_unchecked, LossAndGradient};
use crate::softmax::{log_softmax_unchecked, softmax_unchecked};
use crate::{check, Error, Float, Result};

/// Hard pseudo-labels and their confidence mask.
#[derive(Debug, Clone, PartialEq)]
pub struct PseudoLabels<F> {
    /// $\arg\max_c p_{bc}$ per item (the first maximum on ties).
    pub labels: Vec<usize>,
    /// $\max_c p_{bc}$ per item.
    pub confidence: Array1<F>,
    /// 1 where `confidence >= threshold`, else 0.
    pub mask: Array1<F>,
}

impl<F: Float> PseudoLabels<F> {
    /// The share of items whose pseudo-label is used (mean of the mask).
    pub fn mask_rate(&self) -> F {
        self.mask.mean().unwrap_or_else(F::zero)
    }
}

/// Pseudo-labels from weak-view probabilities with confidence threshold $\tau$ (`threshold`):
/// the mask keeps item $b$ when $\max_c p_{bc} \ge \tau$.
///
/// Errors when $\tau \notin [0, 1]$ or a row of `probabilities` is not a distribution.
pub fn pseudo_labels<F: Float>(
    probabilities: ArrayView2<F>,
    threshold: f64,
) -> Result<PseudoLabels<F>> {
    check::unit_interval("threshold", threshold)?;
    check::probability_rows("probabilities", &probabilities)?;
    Ok(pseudo_labels_unchecked(probabilities, threshold))
}

/// The FixMatch unlabelled loss: cross-entropy of the strong-view `logits` against the hard
/// pseudo-labels, multiplied by the mask and averaged over the whole batch.
///
/// Gradient: $\partial L/\partial z_b = \mathrm{mask}_b\,(p_b - e_{\hat y_b}) / B_u$. Errors when
/// `logits` is empty or non-finite, or its batch or class count disagrees with the
/// pseudo-labels.
pub fn masked_cross_entropy<F: Float>(
    logits: ArrayView2<F>,
    pseudo: &PseudoLabels<F>,
) -> Result<LossAndGradient<F>> {
    let (batch, classes) = check::logits("logits", &logits)?;
    if pseudo.labels.len() != batch || pseudo.mask.len() != batch {
        return Err(Error::shape(
            "pseudo",
            format!("{batch} labels and mask entries (one per row of logits)"),
            (pseudo.labels.len(), pseudo.mask.len()),
        ));
    }
    if let Some(&label) = pseudo.labels.iter().find(|&&l| l >= classes) {
        return Err(Error::invalid(
            "pseudo.labels",
            label,
            format!("must be < classes = {classes}"),
        ));
    }
    check::finite("pseudo.mask", &pseudo.mask)?;
    Ok(masked_cross_entropy_unchecked(logits, pseudo))
}

fn pseudo_labels_unchecked<F: Float>(
    probabilities: ArrayView2<F>,
    threshold: f64,
) -> PseudoLabels<F> {
    let tau = F::from_f64_rounded(threshold);
    let mut labels = Vec::with_capacity(probabilities.nrows());
    let mut confidence = Array1::<F>::zeros(probabilities.nrows());
    for (row, values) in probabilities.axis_iter(Axis(0)).enumerate() {
        let (best, &max) =
            values.iter().enumerate().fold(
                (0, &values[0]),
                |acc, (c, v)| if *v > *acc.1 { (c, v) } else { acc },
            );
        labels.push(best);
        confidence[row] = max;
    }
    let mask = confidence.mapv(|c| if c >= tau { F::one() } else { F::zero() });
    PseudoLabels {
        labels,
        confidence,
        mask,
    }
}

fn masked_cross_entropy_unchecked<F: Float>(
    logits: ArrayView2<F>,
    pseudo: &PseudoLabels<F>,
) -> LossAndGradient<F> {
    let batch = F::from_f64_rounded(logits.nrows() as f64);
    let log_p = log_softmax_unchecked(logits);
    let mut grad = Array2::<F>::zeros(logits.raw_dim());
    let mut total = F::zero();
    for (row, (&label, &mask)) in pseudo.labels.iter().zip(pseudo.mask.iter()).enumerate() {
        if mask == F::zero() {
            continue;
        }
        total -= mask * log_p[[row, label]];
        for c in 0..logits.ncols() {
            let indicator = if c == label { F::one() } else { F::zero() };
            grad[[row, c]] = mask * (log_p[[row, c]].exp() - indicator) / batch;
        }
    }
    LossAndGradient {
        value: total / batch,
        grad,
    }
}

/// FixMatch hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixMatchConfig {
    /// Confidence threshold $\tau \in [0, 1]$ (paper and SSLH: 0.95).
    pub threshold: f64,
    /// Weight $\lambda_u \ge 0$ of the unlabelled loss (1).
    pub lambda_u: f64,
}

impl Default for FixMatchConfig {
    fn default() -> Self {
        FixMatchConfig {
            threshold: 0.95,
            lambda_u: 1.0,
        }
    }
}

/// A checked FixMatch recipe: $L = L_s + \lambda_u L_u$.
#[derive(Debug, Clone)]
pub struct FixMatch {
    config: FixMatchConfig,
}

/// The FixMatch loss of one step, its parts and its gradients.
#[derive(Debug, Clone, PartialEq)]
pub struct FixMatchLoss<F> {
    /// $L_s + \lambda_u L_u$.
    pub value: F,
    /// $L_s$: soft cross-entropy on the labelled batch.
    pub supervised: F,
    /// $L_u$: masked cross-entropy on the strong view (before $\lambda_u$).
    pub unlabelled: F,
    /// $\partial L/\partial z$ of the labelled logits.
    pub grad_labelled: Array2<F>,
    /// $\partial L/\partial z$ of the strong-view logits (includes $\lambda_u$).
    pub grad_strong: Array2<F>,
    /// The pseudo-labels and mask taken from the weak view.
    pub pseudo: PseudoLabels<F>,
}

impl FixMatch {
    /// Checks $\tau \in [0, 1]$ and $\lambda_u \ge 0$.
    pub fn new(config: FixMatchConfig) -> Result<Self> {
        check::unit_interval("threshold", config.threshold)?;
        check::non_negative("lambda_u", config.lambda_u)?;
        Ok(FixMatch { config })
    }

    /// The configuration this recipe was built from.
    pub fn config(&self) -> &FixMatchConfig {
        &self.config
    }

    /// Pseudo-labels from the logits of the weakly augmented unlabelled batch.
    pub fn pseudo_labels<F: Float>(&self, weak_logits: ArrayView2<F>) -> Result<PseudoLabels<F>> {
        check::logits("weak_logits", &weak_logits)?;
        let probabilities = softmax_unchecked(weak_logits);
        Ok(pseudo_labels_unchecked(
            probabilities.view(),
            self.config.threshold,
        ))
    }

    /// The full FixMatch loss: soft cross-entropy of `labelled_logits` against
    /// `labelled_targets`, plus $\lambda_u$ times the masked cross-entropy of `strong_logits`
    /// against the pseudo-labels of `weak_logits` (treated as constants).
    ///
    /// Errors on empty or non-finite logits, target rows that are not distributions, or when
    /// the weak and strong batches differ in shape.
    pub fn loss<F: Float>(
        &self,
        labelled_logits: ArrayView2<F>,
        labelled_targets: ArrayView2<F>,
        weak_logits: ArrayView2<F>,
        strong_logits: ArrayView2<F>,
    ) -> Result<FixMatchLoss<F>> {
        check_logits_and_targets(&labelled_logits, &labelled_targets).map_err(rename_labelled)?;
        let pseudo = self.pseudo_labels(weak_logits)?;
        check::same_shape(
            "strong_logits",
            &strong_logits,
            weak_logits.shape(),
            "the shape of weak_logits",
        )?;
        check::finite("strong_logits", &strong_logits)?;
        let supervised = soft_cross_entropy_unchecked(labelled_logits, labelled_targets);
        let unlabelled = masked_cross_entropy_unchecked(strong_logits, &pseudo);
        let lambda_u = F::from_f64_rounded(self.config.lambda_u);
        Ok(FixMatchLoss {
            value: supervised.value + lambda_u * unlabelled.value,
            supervised: supervised.value,
            unlabelled: unlabelled.value,
            grad_labelled: supervised.grad,
            grad_strong: unlabelled.grad * lambda_u,
            pseudo,
        })
    }
}

/// Errors from the shared logits/targets check name `logits`/`targets`; in a recipe the
/// caller passed `labelled_logits`/`labelled_targets`.
pub(crate) fn rename_labelled(error: Error) -> Error {
    rename(error, "labelled_logits", "labelled_targets")
}

/// Renames the generic `logits`/`targets` of a shared check to the recipe's argument names.
pub(crate) fn rename(error: Error, logits: &'static str, targets: &'static str) -> Error {
    let fix = |name: &'static str| match name {
        "logits" => logits,
        "targets" => targets,
        other => other,
    };
    match error {
        Error::Input(input) => Error::Input(input.map_name(fix)),
        Error::NotProbability { name, row, reason } => Error::NotProbability {
            name: fix(name),
            row,
            reason,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::array;

    #[test]
    fn mask_uses_greater_or_equal() {
        let p = array![[0.95_f64, 0.05], [0.9, 0.1], [0.02, 0.98]];
        let pseudo = pseudo_labels(p.view(), 0.95).unwrap();
        assert_eq!(pseudo.labels, vec![0, 0, 1]);
        assert_eq!(pseudo.mask, array![1.0, 0.0, 1.0]);
        assert_abs_diff_eq!(pseudo.mask_rate(), 2.0 / 3.0, epsilon = 1e-15);
    }

    #[test]
    fn averages_over_the_whole_batch() {
        let p = array![[0.99_f64, 0.01], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]];
        let pseudo = pseudo_labels(p.view(), 0.95).unwrap();
        let z = array![[0.0_f64, 0.0], [5.0, -5.0], [1.0, 2.0], [0.0, 3.0]];
        let loss = masked_cross_entropy(z.view(), &pseudo).unwrap();
        // Only item 0 counts: −log ½, divided by 4 items (not by 1 confident item).
        assert_abs_diff_eq!(loss.value, std::f64::consts::LN_2 / 4.0, epsilon = 1e-15);
        assert_abs_diff_eq!(loss.grad[[0, 0]], (0.5 - 1.0) / 4.0, epsilon = 1e-15);
        assert!(loss
            .grad
            .rows()
            .into_iter()
            .skip(1)
            .all(|r| r.iter().all(|&g| g == 0.0)));
    }

    #[test]
    fn rejects_bad_threshold_and_mismatch() {
        let p = array![[0.5_f64, 0.5]];
        for tau in [-0.1, 1.1, f64::NAN] {
            let err = pseudo_labels(p.view(), tau).unwrap_err();
            assert!(err.to_string().contains("threshold"), "{err}");
            assert!(FixMatch::new(FixMatchConfig {
                threshold: tau,
                lambda_u: 1.0
            })
            .is_err());
        }
        let fixmatch = FixMatch::new(FixMatchConfig::default()).unwrap();
        let z1 = array![[0.0_f64, 1.0]];
        let z2 = array![[0.0_f64, 1.0], [1.0, 0.0]];
        let err = fixmatch
            .loss(z1.view(), p.view(), z1.view(), z2.view())
            .unwrap_err();
        assert!(err.to_string().contains("strong_logits"), "{err}");
        let bad_targets = array![[0.7_f64, 0.7]];
        let err = fixmatch
            .loss(z1.view(), bad_targets.view(), z1.view(), z1.view())
            .unwrap_err();
        assert!(err.to_string().contains("labelled_targets"), "{err}");
    }
}
