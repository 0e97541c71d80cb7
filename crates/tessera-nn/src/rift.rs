//! RiFT (Zhu et al., ICCV 2023): module robust criticality, the least critical module, and the
//! interpolation curve between the initial and the fine-tuned parameters.

use ndarray::{Array1, ArrayView2, Axis, Slice};
use tessera_core::RejectInput;

use crate::error::{Error, Result};
use crate::loss::{loss_and_logit_gradient, Loss, Targets};
use crate::model::{accuracy_of, Mlp};
use crate::Float;

/// Settings of the projected gradient ascent that estimates module robust criticality.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MrcConfig {
    /// Radius factor `ε`: the perturbation of module `i` lives in `‖Δ‖₂ ≤ ε‖θ_i‖₂` (paper: 0.1).
    pub epsilon: f64,
    /// Ascent steps (≥ 1).
    pub steps: usize,
    /// Each step moves `step_size × radius` along the normalised gradient (`> 0`; the
    /// projection keeps the iterate in the ball whatever the step).
    pub step_size: f64,
}

impl Default for MrcConfig {
    fn default() -> Self {
        Self {
            epsilon: 0.1,
            steps: 10,
            step_size: 0.25,
        }
    }
}

impl MrcConfig {
    fn validate(&self) -> Result<()> {
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(Error::invalid(
                "epsilon",
                self.epsilon,
                "must be finite and > 0",
            ));
        }
        if self.steps == 0 {
            return Err(Error::invalid("steps", 0, "must be at least 1"));
        }
        if !(self.step_size.is_finite() && self.step_size > 0.0) {
            return Err(Error::invalid(
                "step_size",
                self.step_size,
                "must be finite and > 0",
            ));
        }
        Ok(())
    }
}

/// The criticality of one module (dense layer: weights and bias).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModuleCriticality {
    /// The layer index.
    pub layer: usize,
    /// `L(θ)`.
    pub base_loss: f64,
    /// The largest `L(θ + Δ_i)` the ascent found.
    pub perturbed_loss: f64,
    /// `MRC = perturbed_loss − base_loss ≥ 0`.
    pub mrc: f64,
    /// `ε‖θ_i‖₂`.
    pub radius: f64,
}

/// MRC of `layer`: `max_{‖Δ‖₂ ≤ ε‖θ_i‖₂} L(θ + Δ_i) − L(θ)` by projected gradient ascent from
/// `Δ = 0`: `Δ ← Π(Δ + step_size·r·g/‖g‖)` with `r = ε‖θ_i‖₂` and `Π` the projection onto the
/// ball; the best loss seen is kept, so the estimate is a lower bound of the true maximum.
pub fn module_robust_criticality<F: Float>(
    mlp: &Mlp<F>,
    x: ArrayView2<'_, F>,
    targets: &Targets<'_, F>,
    loss: Loss,
    layer: usize,
    config: &MrcConfig,
) -> Result<ModuleCriticality> {
    config.validate()?;
    let range = mlp.layer(layer)?.param_range();
    let base_loss = mlp.loss(x, targets, loss)?.to_f64_exact();
    let theta = mlp
        .params()
        .slice_axis_move(Axis(0), Slice::from(range.clone()))
        .to_owned();
    let radius = config.epsilon * norm(theta.iter().map(|v| v.to_f64_exact()));
    let mut perturbed = mlp.clone();
    let mut delta = Array1::<f64>::zeros(range.len());
    let mut best = base_loss;
    for _ in 0..config.steps {
        let (value, grad) = perturbed.loss_and_gradient(x, targets, loss)?;
        best = best.max(value.to_f64_exact());
        let g = grad.slice_axis(Axis(0), Slice::from(range.clone()));
        let g_norm = norm(g.iter().map(|v| v.to_f64_exact()));
        if radius == 0.0 || g_norm == 0.0 {
            break;
        }
        let scale = config.step_size * radius / g_norm;
        delta.zip_mut_with(&g, |d, &gi| *d += scale * gi.to_f64_exact());
        let d_norm = norm(delta.iter().copied());
        if d_norm > radius {
            delta.mapv_inplace(|d| d * radius / d_norm);
        }
        let mut p = perturbed.params_mut();
        let mut slot = p.slice_axis_mut(Axis(0), Slice::from(range.clone()));
        for ((w, &t), &d) in slot.iter_mut().zip(&theta).zip(&delta) {
            *w = t + F::from_f64_rounded(d);
        }
    }
    best = best.max(perturbed.loss(x, targets, loss)?.to_f64_exact());
    Ok(ModuleCriticality {
        layer,
        base_loss,
        perturbed_loss: best,
        mrc: best - base_loss,
        radius,
    })
}

/// MRC of every layer, in layer order.
pub fn all_module_criticalities<F: Float>(
    mlp: &Mlp<F>,
    x: ArrayView2<'_, F>,
    targets: &Targets<'_, F>,
    loss: Loss,
    config: &MrcConfig,
) -> Result<Vec<ModuleCriticality>> {
    (0..mlp.num_layers())
        .map(|j| module_robust_criticality(mlp, x, targets, loss, j, config))
        .collect()
}

/// The layer with the smallest MRC (the first on ties); an error for an empty list.
pub fn least_critical_module(criticalities: &[ModuleCriticality]) -> Result<usize> {
    criticalities
        .iter()
        .min_by(|a, b| a.mrc.total_cmp(&b.mrc))
        .map(|c| c.layer)
        .ok_or_else(|| Error::invalid("criticalities", "[]", "need at least one module"))
}

/// One point of the interpolation curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InterpolationPoint {
    /// `α`.
    pub alpha: f64,
    /// Loss of `θ(α)`.
    pub loss: f64,
    /// Accuracy of `θ(α)` (arg-max of the logits against the target class).
    pub accuracy: f64,
}

/// The eleven `α ∈ {0, 0.1, …, 1}` of the RiFT paper.
pub fn default_alphas() -> Vec<f64> {
    (0..=10).map(|i| i as f64 / 10.0).collect()
}

/// Loss and accuracy of `θ(α) = α·θ_ft + (1 − α)·θ_0` for each `α` (any finite values).
pub fn interpolation_curve<F: Float>(
    initial: &Mlp<F>,
    fine_tuned: &Mlp<F>,
    x: ArrayView2<'_, F>,
    targets: &Targets<'_, F>,
    loss: Loss,
    alphas: &[f64],
) -> Result<Vec<InterpolationPoint>> {
    if initial.config() != fine_tuned.config() {
        return Err(Error::shape(
            "fine_tuned",
            "a network with the same configuration as `initial`",
            "a different configuration",
        ));
    }
    if let Some(bad) = alphas.iter().find(|a| !a.is_finite()) {
        return Err(Error::invalid("alphas", bad, "must be finite"));
    }
    let mut net = initial.clone();
    alphas
        .iter()
        .map(|&alpha| {
            let a = F::from_f64_rounded(alpha);
            let mixed = &fine_tuned.params() * a + &initial.params() * (F::one() - a);
            net.set_params(mixed.view())?;
            let logits = net.predict(x)?;
            let (value, _) = loss_and_logit_gradient(logits.view(), targets, loss)?;
            Ok(InterpolationPoint {
                alpha,
                loss: value.to_f64_exact(),
                accuracy: accuracy_of(logits.view(), targets),
            })
        })
        .collect()
}

fn norm(values: impl Iterator<Item = f64>) -> f64 {
    values.map(|v| v * v).sum::<f64>().sqrt()
}
