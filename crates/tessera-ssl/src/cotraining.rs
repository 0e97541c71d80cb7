//! Deep Co-Training (Qiao et al., 2018) building blocks for two networks $f$ and $g$.
//!
//! * Co-training loss $L_{cot}$: the Jensen–Shannon divergence between $f$'s and $g$'s
//!   predictions on unlabelled data ([`jensen_shannon`](crate::jensen_shannon)), weight
//!   $\lambda_{cot} = 1$.
//! * View-difference loss $L_{dif}$: each network must agree with the *other* network's
//!   prediction on the adversarial example crafted against the other one,
//!   $L_{dif} = \frac1B \sum_b H(p_g(x_b), p_f(g\text{-adv}(x_b))) + H(p_f(x_b),
//!   p_g(f\text{-adv}(x_b)))$ with $H(p, q) = -\sum_c p_c \log q_c$, weight
//!   $\lambda_{dif} = 0.5$ (SSLH's pairing and reduction).
//! * Adversarial examples by FGSM: $x + \epsilon\,\mathrm{sign}(\nabla_x \ell)$, $\epsilon = 0.02$
//!   ([`DeepCoTrainingConfig::epsilon`]), from an input gradient the caller computes with its own
//!   model; tessera-nn's `attack::fgsm_example` (the workspace's attack module) computes them.
//!
//! Gradients flow into all four sets of logits, as in SSLH (no target is detached); a caller
//! that wants the clean predictions to act as constants simply ignores their gradients.

use ndarray::{Array2, ArrayView2, Zip};

use crate::losses::{jensen_shannon_unchecked, PairLoss};
use crate::softmax::{log_softmax_unchecked, softmax_backward_unchecked};
use crate::{check, Float, Result};

/// The view-difference loss and its gradient with respect to its four inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewDifferenceLoss<F> {
    /// $L_{dif}$ (batch-averaged, before $\lambda_{dif}$ unless built by [`DeepCoTraining`]).
    pub value: F,
    /// $\partial L/\partial$ `logits_f` ($f$ on clean inputs).
    pub grad_f: Array2<F>,
    /// $\partial L/\partial$ `logits_g` ($g$ on clean inputs).
    pub grad_g: Array2<F>,
    /// $\partial L/\partial$ `logits_f_on_adv_g` ($f$ on $g$'s adversarial examples).
    pub grad_f_on_adv_g: Array2<F>,
    /// $\partial L/\partial$ `logits_g_on_adv_f` ($g$ on $f$'s adversarial examples).
    pub grad_g_on_adv_f: Array2<F>,
}

/// $L_{dif} = -\frac1B\sum_b \langle \mathrm{softmax}(z^g_b), \log\mathrm{softmax}(z^{f\leftarrow
/// g\text{-adv}}_b)\rangle + \langle \mathrm{softmax}(z^f_b), \log\mathrm{softmax}(z^{g\leftarrow
/// f\text{-adv}}_b)\rangle$.
///
/// All four arrays are `(B, C)` logits of the same items. Errors on empty or non-finite
/// logits or mismatched shapes.
pub fn view_difference<F: Float>(
    logits_f: ArrayView2<F>,
    logits_g: ArrayView2<F>,
    logits_f_on_adv_g: ArrayView2<F>,
    logits_g_on_adv_f: ArrayView2<F>,
) -> Result<ViewDifferenceLoss<F>> {
    check::logits("logits_f", &logits_f)?;
    for (name, other) in [
        ("logits_g", logits_g.view()),
        ("logits_f_on_adv_g", logits_f_on_adv_g.view()),
        ("logits_g_on_adv_f", logits_g_on_adv_f.view()),
    ] {
        check::same_shape(name, &other, logits_f.shape(), "the shape of logits_f")?;
        check::finite(name, &other)?;
    }
    let (value_1, grad_g, grad_f_on_adv_g) =
        cross_entropy_between_logits(logits_g, logits_f_on_adv_g);
    let (value_2, grad_f, grad_g_on_adv_f) =
        cross_entropy_between_logits(logits_f, logits_g_on_adv_f);
    Ok(ViewDifferenceLoss {
        value: value_1 + value_2,
        grad_f,
        grad_g,
        grad_f_on_adv_g,
        grad_g_on_adv_f,
    })
}

/// $-\frac1B \sum_b \langle \mathrm{softmax}(t_b), \log\mathrm{softmax}(s_b)\rangle$ with the
/// gradients for the target logits $t$ and the scored logits $s$.
fn cross_entropy_between_logits<F: Float>(
    target_logits: ArrayView2<F>,
    scored_logits: ArrayView2<F>,
) -> (F, Array2<F>, Array2<F>) {
    let batch = F::from_f64_rounded(target_logits.nrows() as f64);
    let log_t = log_softmax_unchecked(target_logits);
    let log_s = log_softmax_unchecked(scored_logits);
    let t = log_t.mapv(F::exp);
    let value = -Zip::from(&t)
        .and(&log_s)
        .fold(F::zero(), |acc, &t, &ls| acc + t * ls)
        / batch;
    // ∂/∂s: (softmax(s) − softmax(t)) / B, since each row of softmax(t) sums to 1.
    let grad_scored = Zip::from(&log_s)
        .and(&t)
        .map_collect(|&ls, &t| (ls.exp() - t) / batch);
    // ∂/∂softmax(t) = −log softmax(s) / B, then through the softmax of t.
    let grad_t_probabilities = log_s.mapv(|ls| -ls / batch);
    let grad_target = softmax_backward_unchecked(t.view(), grad_t_probabilities.view());
    (value, grad_target, grad_scored)
}

/// Deep Co-Training hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeepCoTrainingConfig {
    /// FGSM step $\epsilon \ge 0$ (0.02).
    pub epsilon: f64,
    /// Weight $\lambda_{cot} \ge 0$ of the Jensen–Shannon co-training loss (1).
    pub lambda_cot: f64,
    /// Weight $\lambda_{dif} \ge 0$ of the view-difference loss (0.5).
    pub lambda_diff: f64,
}

impl Default for DeepCoTrainingConfig {
    fn default() -> Self {
        DeepCoTrainingConfig {
            epsilon: 0.02,
            lambda_cot: 1.0,
            lambda_diff: 0.5,
        }
    }
}

/// A checked Deep Co-Training recipe: $L = L_s + \lambda_{cot} L_{cot} + \lambda_{dif}
/// L_{dif}$ (the supervised part is [`soft_cross_entropy`](crate::soft_cross_entropy) of each
/// network).
#[derive(Debug, Clone)]
pub struct DeepCoTraining {
    config: DeepCoTrainingConfig,
}

impl DeepCoTraining {
    /// Checks $\epsilon, \lambda_{cot}, \lambda_{dif} \ge 0$.
    pub fn new(config: DeepCoTrainingConfig) -> Result<Self> {
        check::non_negative("epsilon", config.epsilon)?;
        check::non_negative("lambda_cot", config.lambda_cot)?;
        check::non_negative("lambda_diff", config.lambda_diff)?;
        Ok(DeepCoTraining { config })
    }

    /// The configuration this recipe was built from.
    pub fn config(&self) -> &DeepCoTrainingConfig {
        &self.config
    }

    /// $\lambda_{cot} \cdot \mathrm{JS}$ between $f$'s and $g$'s logits on unlabelled data, with
    /// both (weighted) gradients.
    pub fn co_training<F: Float>(
        &self,
        logits_f: ArrayView2<F>,
        logits_g: ArrayView2<F>,
    ) -> Result<PairLoss<F>> {
        check::logits("logits_f", &logits_f)?;
        check::same_shape(
            "logits_g",
            &logits_g,
            logits_f.shape(),
            "the shape of logits_f",
        )?;
        check::finite("logits_g", &logits_g)?;
        let weight = F::from_f64_rounded(self.config.lambda_cot);
        let loss = jensen_shannon_unchecked(logits_f, logits_g);
        Ok(PairLoss {
            value: weight * loss.value,
            grad_a: loss.grad_a * weight,
            grad_b: loss.grad_b * weight,
        })
    }

    /// $\lambda_{dif} \cdot L_{dif}$ (see [`view_difference`]) with its weighted gradients.
    pub fn view_difference<F: Float>(
        &self,
        logits_f: ArrayView2<F>,
        logits_g: ArrayView2<F>,
        logits_f_on_adv_g: ArrayView2<F>,
        logits_g_on_adv_f: ArrayView2<F>,
    ) -> Result<ViewDifferenceLoss<F>> {
        let loss = view_difference(logits_f, logits_g, logits_f_on_adv_g, logits_g_on_adv_f)?;
        let weight = F::from_f64_rounded(self.config.lambda_diff);
        Ok(ViewDifferenceLoss {
            value: weight * loss.value,
            grad_f: loss.grad_f * weight,
            grad_g: loss.grad_g * weight,
            grad_f_on_adv_g: loss.grad_f_on_adv_g * weight,
            grad_g_on_adv_f: loss.grad_g_on_adv_f * weight,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::array;

    #[test]
    fn view_difference_is_sum_of_two_cross_entropies() {
        let f = array![[1.0_f64, 0.0, -1.0]];
        let g = array![[0.0_f64, 2.0, 0.0]];
        let fa = array![[0.5_f64, 0.5, 0.0]];
        let ga = array![[-1.0_f64, 0.0, 1.0]];
        let loss = view_difference(f.view(), g.view(), fa.view(), ga.view()).unwrap();
        let sm = |z: &Array2<f64>| crate::softmax::softmax_unchecked(z.view());
        let (pf, pg, pfa, pga) = (sm(&f), sm(&g), sm(&fa), sm(&ga));
        let expected: f64 = (0..3)
            .map(|c| -pg[[0, c]] * pfa[[0, c]].ln() - pf[[0, c]] * pga[[0, c]].ln())
            .sum();
        assert_abs_diff_eq!(loss.value, expected, epsilon = 1e-14);
        let err =
            view_difference(f.view(), g.view(), fa.view(), array![[0.0, 1.0]].view()).unwrap_err();
        assert!(err.to_string().contains("logits_g_on_adv_f"), "{err}");
    }
}
