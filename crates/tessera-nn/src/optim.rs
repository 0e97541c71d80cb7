//! Optimisers (SGD with momentum/Nesterov/weight decay, Adam/AdamW), per-layer learning-rate
//! multipliers and learning-rate schedules.

use ndarray::{Array1, ArrayView1, ArrayViewMut1, Axis, Slice, Zip};
use tessera_core::{check, RejectInput};

use crate::error::{Error, Result};
use crate::groups::ParamGroups;
use crate::model::Mlp;
use crate::param::OptimizerFamily;
use crate::sequential::Sequential;
use crate::Float;

/// SGD as in PyTorch (`dampening = 0`): `g ← ∇ + λw`; `v ← μv + g`;
/// `w ← w − η·(g + μv)` (Nesterov) or `w ← w − η·v`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Momentum `μ ∈ [0, 1)`.
    pub momentum: f64,
    /// Nesterov momentum (needs `μ > 0`).
    pub nesterov: bool,
    /// L2 weight decay `λ ≥ 0` (added to the gradient).
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
}

/// Adam (Kingma & Ba 2015) with bias correction; with `decoupled = true` it is AdamW
/// (Loshchilov & Hutter 2019): `w ← w(1 − ηλ)` instead of adding `λw` to the gradient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// `β₁ ∈ [0, 1)`.
    pub beta1: f64,
    /// `β₂ ∈ [0, 1)`.
    pub beta2: f64,
    /// `ε > 0` added to `√v̂`.
    pub eps: f64,
    /// Weight decay `λ ≥ 0`.
    pub weight_decay: f64,
    /// AdamW's decoupled decay.
    pub decoupled: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }
}

/// An optimiser choice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerConfig {
    /// Stochastic gradient descent.
    Sgd(SgdConfig),
    /// Adam / AdamW.
    Adam(AdamConfig),
}

impl OptimizerConfig {
    /// Plain SGD.
    pub fn sgd() -> Self {
        OptimizerConfig::Sgd(SgdConfig::default())
    }

    /// Adam with PyTorch defaults.
    pub fn adam() -> Self {
        OptimizerConfig::Adam(AdamConfig::default())
    }

    /// The family (decides the parameterisation's learning-rate multipliers).
    pub fn family(&self) -> OptimizerFamily {
        match self {
            OptimizerConfig::Sgd(_) => OptimizerFamily::Sgd,
            OptimizerConfig::Adam(_) => OptimizerFamily::Adam,
        }
    }

    fn validate(&self) -> Result<()> {
        let unit = |name: &'static str, v: f64| {
            if v.is_finite() && (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::invalid(name, v, "must lie in [0, 1)"))
            }
        };
        let decay = |v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::invalid("weight_decay", v, "must be finite and >= 0"))
            }
        };
        match self {
            OptimizerConfig::Sgd(c) => {
                unit("momentum", c.momentum)?;
                decay(c.weight_decay)?;
                if c.nesterov && c.momentum == 0.0 {
                    return Err(Error::invalid(
                        "nesterov",
                        true,
                        "Nesterov needs momentum > 0",
                    ));
                }
            }
            OptimizerConfig::Adam(c) => {
                unit("beta1", c.beta1)?;
                unit("beta2", c.beta2)?;
                decay(c.weight_decay)?;
                if !(c.eps.is_finite() && c.eps > 0.0) {
                    return Err(Error::invalid("eps", c.eps, "must be finite and > 0"));
                }
            }
        }
        Ok(())
    }
}

/// An optimiser bound to one network's parameter layout. Every parameter's step size is
/// `lr × (parameterisation multiplier of its layer) × (user multiplier of its layer)`.
#[derive(Debug, Clone)]
pub struct Optimizer<F> {
    config: OptimizerConfig,
    /// Per-parameter multiplier (parameterisation × user), flat like the parameters.
    lr_scale: Array1<F>,
    /// Parameterisation multipliers `(weight, bias)` per layer.
    base_multipliers: Vec<(f64, f64)>,
    user_multipliers: Vec<f64>,
    layer_ranges: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// Per-parameter group multipliers ([`Optimizer::set_group_lr_multiplier`]), flat.
    group_scale: Array1<F>,
    /// Momentum buffer (SGD) or first moment (Adam).
    first: Array1<F>,
    /// Second moment (Adam only; empty for SGD).
    second: Array1<F>,
    steps: u64,
}

impl<F: Float> Optimizer<F> {
    /// An optimiser for `mlp` with the learning-rate multipliers of its parameterisation.
    pub fn new(config: OptimizerConfig, mlp: &Mlp<F>) -> Result<Self> {
        config.validate()?;
        let family = config.family();
        let gain = mlp
            .config()
            .init_gain
            .unwrap_or_else(|| mlp.config().activation.default_gain());
        let base_multipliers: Vec<(f64, f64)> = mlp
            .layers()
            .iter()
            .map(|l| {
                let sc = mlp
                    .config()
                    .parameterization
                    .scaling(l.role, l.fan_in, l.fan_out, gain, family);
                (sc.weight_lr, sc.bias_lr)
            })
            .collect();
        let layer_ranges = mlp
            .layers()
            .iter()
            .map(|l| (l.weight_range(), l.bias_range()))
            .collect();
        let n = mlp.num_params();
        let mut opt = Self {
            config,
            lr_scale: Array1::zeros(n),
            user_multipliers: vec![1.0; base_multipliers.len()],
            base_multipliers,
            layer_ranges,
            group_scale: Array1::ones(n),
            first: Array1::zeros(n),
            second: match config {
                OptimizerConfig::Adam(_) => Array1::zeros(n),
                OptimizerConfig::Sgd(_) => Array1::zeros(0),
            },
            steps: 0,
        };
        opt.refresh_scale();
        Ok(opt)
    }

    /// An optimiser for a flat vector of `num_params` parameters with every learning-rate
    /// multiplier 1 (a [`Sequential`]'s; set multipliers per named group with
    /// [`Optimizer::set_group_lr_multiplier`]).
    pub fn for_params(config: OptimizerConfig, num_params: usize) -> Result<Self> {
        config.validate()?;
        let mut opt = Self {
            config,
            lr_scale: Array1::ones(num_params),
            base_multipliers: Vec::new(),
            user_multipliers: Vec::new(),
            layer_ranges: Vec::new(),
            group_scale: Array1::ones(num_params),
            first: Array1::zeros(num_params),
            second: match config {
                OptimizerConfig::Adam(_) => Array1::zeros(num_params),
                OptimizerConfig::Sgd(_) => Array1::zeros(0),
            },
            steps: 0,
        };
        opt.refresh_scale();
        Ok(opt)
    }

    /// An optimiser for `model`'s flat parameters (see [`Optimizer::for_params`]).
    pub fn for_sequential(config: OptimizerConfig, model: &Sequential<F>) -> Result<Self> {
        Self::for_params(config, model.num_params())
    }

    /// Multiplies the learning rate of every parameter `pattern` selects in `groups` by
    /// `multiplier ≥ 0` (0 freezes them, weight decay included), replacing the group's
    /// previous multiplier (μP's per-group rates, layer-wise fine-tuning).
    pub fn set_group_lr_multiplier(
        &mut self,
        groups: &ParamGroups,
        pattern: &str,
        multiplier: f64,
    ) -> Result<()> {
        if !(multiplier.is_finite() && multiplier >= 0.0) {
            return Err(Error::invalid(
                "multiplier",
                multiplier,
                "must be finite and >= 0",
            ));
        }
        if groups.len() != self.lr_scale.len() {
            return Err(Error::shape(
                "groups",
                format!("{} parameters", self.lr_scale.len()),
                format!("{} parameters", groups.len()),
            ));
        }
        let m = F::from_f64_rounded(multiplier);
        for r in groups.ranges(pattern)? {
            self.group_scale.slice_mut(ndarray::s![r]).fill(m);
        }
        self.refresh_scale();
        Ok(())
    }

    /// Freezes every parameter `pattern` selects (learning-rate multiplier 0).
    pub fn freeze(&mut self, groups: &ParamGroups, pattern: &str) -> Result<()> {
        self.set_group_lr_multiplier(groups, pattern, 0.0)
    }

    /// Trains only the parameters `patterns` select (multiplier 1) and freezes the rest, as
    /// test-time adaptation does with its adapted parameters.
    pub fn train_only(&mut self, groups: &ParamGroups, patterns: &[&str]) -> Result<()> {
        let keep: Array1<F> = groups.indicator(patterns)?;
        if keep.len() != self.lr_scale.len() {
            return Err(Error::shape(
                "groups",
                format!("{} parameters", self.lr_scale.len()),
                format!("{} parameters", keep.len()),
            ));
        }
        self.group_scale = keep;
        self.refresh_scale();
        Ok(())
    }

    /// The per-parameter learning-rate multipliers (parameterisation × layer × group), flat.
    pub fn lr_multipliers(&self) -> ArrayView1<'_, F> {
        self.lr_scale.view()
    }

    fn refresh_scale(&mut self) {
        self.lr_scale.fill(F::one());
        for (j, (wr, br)) in self.layer_ranges.iter().enumerate() {
            let (mw, mb) = self.base_multipliers[j];
            let u = self.user_multipliers[j];
            self.lr_scale
                .slice_axis_mut(Axis(0), Slice::from(wr.clone()))
                .fill(F::from_f64_rounded(mw * u));
            self.lr_scale
                .slice_axis_mut(Axis(0), Slice::from(br.clone()))
                .fill(F::from_f64_rounded(mb * u));
        }
        self.lr_scale *= &self.group_scale;
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The parameterisation's `(weight, bias)` learning-rate multipliers per layer.
    pub fn parameterization_multipliers(&self) -> &[(f64, f64)] {
        &self.base_multipliers
    }

    /// Multiplies `layer`'s learning rate by `multiplier ≥ 0` (0 freezes the layer, weight
    /// decay included).
    pub fn set_layer_lr_multiplier(&mut self, layer: usize, multiplier: f64) -> Result<()> {
        if layer >= self.user_multipliers.len() {
            return Err(Error::invalid(
                "layer",
                layer,
                format!("network has {} layers", self.user_multipliers.len()),
            ));
        }
        if !(multiplier.is_finite() && multiplier >= 0.0) {
            return Err(Error::invalid(
                "multiplier",
                multiplier,
                "must be finite and >= 0",
            ));
        }
        self.user_multipliers[layer] = multiplier;
        self.refresh_scale();
        Ok(())
    }

    /// Trains only `layers` (multiplier 1), freezing every other layer (multiplier 0).
    pub fn set_trainable_layers(&mut self, layers: &[usize]) -> Result<()> {
        if let Some(&bad) = layers.iter().find(|&&l| l >= self.user_multipliers.len()) {
            return Err(Error::invalid(
                "layers",
                bad,
                format!("network has {} layers", self.user_multipliers.len()),
            ));
        }
        for (j, m) in self.user_multipliers.iter_mut().enumerate() {
            *m = if layers.contains(&j) { 1.0 } else { 0.0 };
        }
        self.refresh_scale();
        Ok(())
    }

    /// The user multiplier of every layer.
    pub fn layer_lr_multipliers(&self) -> &[f64] {
        &self.user_multipliers
    }

    /// Optimiser state vectors in the parameter layout (momentum/first moment, then the second
    /// moment for Adam) — for masking.
    pub fn state_mut(&mut self) -> Vec<&mut Array1<F>> {
        match self.config {
            OptimizerConfig::Sgd(_) => vec![&mut self.first],
            OptimizerConfig::Adam(_) => vec![&mut self.first, &mut self.second],
        }
    }

    /// One update of `mlp`'s parameters with gradient `grad` and global learning rate `lr > 0`.
    pub fn step(&mut self, mlp: &mut Mlp<F>, grad: ArrayView1<'_, F>, lr: f64) -> Result<()> {
        self.step_params(mlp.params_mut(), grad, lr)
    }

    /// One update of `model`'s flat parameters (see [`Optimizer::step_params`]).
    pub fn step_sequential(
        &mut self,
        model: &mut Sequential<F>,
        grad: ArrayView1<'_, F>,
        lr: f64,
    ) -> Result<()> {
        self.step_params(model.params_mut(), grad, lr)
    }

    /// One update of a flat parameter vector with gradient `grad` and global learning rate
    /// `lr > 0` (non-finite parameters are caught by the next forward pass).
    pub fn step_params(
        &mut self,
        mut w: ArrayViewMut1<'_, F>,
        grad: ArrayView1<'_, F>,
        lr: f64,
    ) -> Result<()> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::invalid(
                "lr",
                lr,
                "learning rate must be finite and > 0",
            ));
        }
        if grad.len() != self.lr_scale.len() || w.len() != self.lr_scale.len() {
            return Err(Error::shape(
                "grad",
                format!("length {}", self.lr_scale.len()),
                format!(
                    "gradient length {}, network with {} parameters",
                    grad.len(),
                    w.len()
                ),
            ));
        }
        check::finite("grad", &grad)?;
        self.steps += 1;
        let lr = F::from_f64_rounded(lr);
        match self.config {
            OptimizerConfig::Sgd(c) => {
                let mu = F::from_f64_rounded(c.momentum);
                let wd = F::from_f64_rounded(c.weight_decay);
                let first_step = self.steps == 1;
                Zip::from(&mut w)
                    .and(&grad)
                    .and(&mut self.first)
                    .and(&self.lr_scale)
                    .for_each(|w, &g, v, &scale| {
                        let g = g + wd * *w;
                        let update = if c.momentum > 0.0 {
                            // PyTorch starts the buffer at the first gradient.
                            *v = if first_step { g } else { mu * *v + g };
                            if c.nesterov {
                                g + mu * *v
                            } else {
                                *v
                            }
                        } else {
                            g
                        };
                        *w -= lr * scale * update;
                    });
            }
            OptimizerConfig::Adam(c) => {
                let b1 = F::from_f64_rounded(c.beta1);
                let b2 = F::from_f64_rounded(c.beta2);
                let eps = F::from_f64_rounded(c.eps);
                let wd = F::from_f64_rounded(c.weight_decay);
                let t = self.steps as i32;
                let corr1 = F::one() - b1.powi(t);
                let corr2 = F::one() - b2.powi(t);
                let coupled = !c.decoupled;
                Zip::from(&mut w)
                    .and(&grad)
                    .and(&mut self.first)
                    .and(&mut self.second)
                    .and(&self.lr_scale)
                    .for_each(|w, &g, m, v, &scale| {
                        let step = lr * scale;
                        let g = if coupled { g + wd * *w } else { g };
                        if !coupled {
                            *w -= step * wd * *w;
                        }
                        *m = b1 * *m + (F::one() - b1) * g;
                        *v = b2 * *v + (F::one() - b2) * g * g;
                        let m_hat = *m / corr1;
                        let v_hat = *v / corr2;
                        *w -= step * m_hat / (v_hat.sqrt() + eps);
                    });
            }
        }
        Ok(())
    }
}

/// How the learning rate decays after the warm-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decay {
    /// Constant.
    Constant,
    /// Multiply by `gamma` every `every` steps (PyTorch `StepLR`).
    Step {
        /// Steps between decays (≥ 1).
        every: usize,
        /// Factor in `(0, 1]`.
        gamma: f64,
    },
    /// Cosine from the base rate to `final_lr` over `total_steps`, then `final_lr`
    /// (PyTorch `CosineAnnealingLR` without restarts).
    Cosine {
        /// Length of the decay (≥ 1).
        total_steps: usize,
        /// Rate at the end, `0 ≤ final_lr ≤ base`.
        final_lr: f64,
    },
}

/// A learning-rate schedule: linear warm-up from `base/W` to `base` over the first `W` steps,
/// then `decay` evaluated at `t − W`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    base_lr: f64,
    warmup_steps: usize,
    decay: Decay,
}

impl LrSchedule {
    /// A checked schedule without warm-up.
    pub fn new(base_lr: f64, decay: Decay) -> Result<Self> {
        if !(base_lr.is_finite() && base_lr > 0.0) {
            return Err(Error::invalid(
                "base_lr",
                base_lr,
                "learning rate must be finite and > 0",
            ));
        }
        match decay {
            Decay::Constant => {}
            Decay::Step { every, gamma } => {
                if every == 0 {
                    return Err(Error::invalid("every", every, "must be at least 1"));
                }
                if !(gamma.is_finite() && gamma > 0.0 && gamma <= 1.0) {
                    return Err(Error::invalid("gamma", gamma, "must lie in (0, 1]"));
                }
            }
            Decay::Cosine {
                total_steps,
                final_lr,
            } => {
                if total_steps == 0 {
                    return Err(Error::invalid(
                        "total_steps",
                        total_steps,
                        "must be at least 1",
                    ));
                }
                if !(final_lr.is_finite() && final_lr >= 0.0 && final_lr <= base_lr) {
                    return Err(Error::invalid(
                        "final_lr",
                        final_lr,
                        "must lie in [0, base_lr]",
                    ));
                }
            }
        }
        Ok(Self {
            base_lr,
            warmup_steps: 0,
            decay,
        })
    }

    /// A constant learning rate.
    pub fn constant(lr: f64) -> Result<Self> {
        Self::new(lr, Decay::Constant)
    }

    /// Adds a linear warm-up of `steps` steps.
    pub fn with_warmup(mut self, steps: usize) -> Self {
        self.warmup_steps = steps;
        self
    }

    /// The learning rate of step `t` (0-based). Always `> 0` except at the end of a cosine
    /// decay to `final_lr = 0`, where the smallest positive `f64` is returned so the
    /// optimiser's `lr > 0` check holds.
    pub fn lr_at(&self, t: usize) -> f64 {
        if t < self.warmup_steps {
            return self.base_lr * (t + 1) as f64 / self.warmup_steps as f64;
        }
        let tau = t - self.warmup_steps;
        let lr = match self.decay {
            Decay::Constant => self.base_lr,
            // `powf` of the exact step count: a cast to i32 would wrap at large steps into a
            // negative exponent (and ∞).
            Decay::Step { every, gamma } => self.base_lr * gamma.powf((tau / every) as f64),
            Decay::Cosine {
                total_steps,
                final_lr,
            } => {
                let progress = tau.min(total_steps) as f64 / total_steps as f64;
                final_lr
                    + (self.base_lr - final_lr)
                        * 0.5
                        * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        };
        lr.max(f64::MIN_POSITIVE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn schedules() {
        let s = LrSchedule::new(
            0.1,
            Decay::Step {
                every: 10,
                gamma: 0.5,
            },
        )
        .unwrap();
        assert_eq!(s.lr_at(0), 0.1);
        assert_eq!(s.lr_at(9), 0.1);
        assert_eq!(s.lr_at(10), 0.05);
        assert_eq!(s.lr_at(25), 0.025);
        let c = LrSchedule::new(
            1.0,
            Decay::Cosine {
                total_steps: 100,
                final_lr: 0.0,
            },
        )
        .unwrap()
        .with_warmup(10);
        assert_abs_diff_eq!(c.lr_at(0), 0.1, epsilon = 1e-15);
        assert_abs_diff_eq!(c.lr_at(9), 1.0, epsilon = 1e-15);
        assert_abs_diff_eq!(c.lr_at(10), 1.0, epsilon = 1e-15);
        assert_abs_diff_eq!(c.lr_at(60), 0.5, epsilon = 1e-12);
        assert!(c.lr_at(500) > 0.0 && c.lr_at(500) < 1e-300);
        assert!(LrSchedule::constant(0.0).is_err());
        assert!(LrSchedule::constant(-1.0).is_err());
        assert!(LrSchedule::new(
            1.0,
            Decay::Step {
                every: 0,
                gamma: 0.5
            }
        )
        .is_err());
    }
}
