//! Adversarial examples and adversarial training: FGSM (Goodfellow et al., 2015), PGD under
//! an $L_\infty$ or $L_2$ threat model (Madry et al., 2018, "Towards Deep Learning Models
//! Resistant to Adversarial Attacks"; reference code github.com/MadryLab/mnist_challenge and the
//! `perturb_iterative` loop of github.com/BorealisAI/advertorch), Madry-style adversarial
//! training and robust-accuracy evaluation.
//!
//! The attacks are model-agnostic: they take a closure that returns the loss of a batch and its
//! gradient with respect to the input (`∂ℓ/∂x`, no parameter gradients), so they work for any
//! model that can back-propagate to its input — [`mlp_objective`] adapts an [`Mlp`],
//! [`sequential_objective`] a [`Sequential`].
//!
//! One PGD step on each example $i$ (perturbation $\delta_i = x_i - x^0_i$):
//! $x \leftarrow x + \alpha\,\mathrm{sign}(g)$ ($L_\infty$) or
//! $x_i \leftarrow x_i + \alpha\, g_i/\lVert g_i\rVert_2$ ($L_2$), then the projection onto
//! the ball $\lVert \delta_i \rVert \le \epsilon$ (clipping each coordinate to $[-\epsilon,
//! \epsilon]$, or scaling $\delta_i$ by $\min(1, \epsilon/\lVert\delta_i\rVert_2)$), then
//! clamping $x$ to the data range $[lo, hi]$. Because $x^0$ lies in the data range, the clamp
//! only shrinks $|\delta_{ik}|$, so the result stays in the ball. FGSM is one $L_\infty$ step of
//! size $\epsilon$ from $x^0$: $x^{adv} = x + \epsilon\,\mathrm{sign}(\nabla_x \ell)$, used by
//! Deep Co-Training ($\epsilon = 0.02$, tessera-ssl) and by the robustness experiments.

use ndarray::{
    Array, Array2, ArrayD, ArrayView, ArrayView2, ArrayViewD, ArrayViewMut, Axis, Dimension,
    RemoveAxis, Zip,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tessera_core::{check, RejectInput};

use crate::error::Error;
use crate::loss::{argmax, Loss, Targets};
use crate::model::Mlp;
use crate::sequential::Sequential;
use crate::train::Trainer;
use crate::{Float, Result};

/// The norm that bounds each example's perturbation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Norm {
    /// $\max_k |\delta_k| \le \epsilon$; steps follow the gradient's sign.
    LInf,
    /// $\lVert \delta \rVert_2 \le \epsilon$ over all of an example's entries; steps follow the
    /// normalised gradient.
    L2,
}

/// Projected gradient descent (here: ascent on the loss) with an optional random start and
/// clamping to the data range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PgdConfig {
    /// The threat model.
    pub norm: Norm,
    /// Radius $\epsilon \ge 0$ of each example's ball.
    pub epsilon: f64,
    /// Step size $\alpha > 0$ (in the norm of the threat model).
    pub step_size: f64,
    /// Gradient steps, at least 1.
    pub steps: usize,
    /// Start from a uniform draw in the ball (Madry et al.) instead of the clean input.
    pub random_start: bool,
    /// Data range `(lo, hi)` every adversarial entry is clamped to (the clean inputs must lie
    /// in it); `None` leaves the entries unbounded.
    pub clamp: Option<(f64, f64)>,
}

impl PgdConfig {
    /// PGD with a random start and no clamping.
    pub fn new(norm: Norm, epsilon: f64, step_size: f64, steps: usize) -> Self {
        Self {
            norm,
            epsilon,
            step_size,
            steps,
            random_start: true,
            clamp: None,
        }
    }

    /// FGSM: one $L_\infty$ step of size $\epsilon$ from the clean input.
    pub fn fgsm(epsilon: f64) -> Self {
        Self {
            norm: Norm::LInf,
            epsilon,
            step_size: epsilon,
            steps: 1,
            random_start: false,
            clamp: None,
        }
    }

    /// Sets the random start.
    pub fn with_random_start(mut self, random_start: bool) -> Self {
        self.random_start = random_start;
        self
    }

    /// Clamps every adversarial entry to `[lo, hi]`.
    pub fn with_clamp(mut self, lo: f64, hi: f64) -> Self {
        self.clamp = Some((lo, hi));
        self
    }

    /// Checks $\epsilon \ge 0$, $\alpha > 0$, at least one step and a non-empty finite clamp
    /// range.
    pub fn validate(&self) -> Result<()> {
        check::non_negative("epsilon", self.epsilon)?;
        check::positive("step_size", self.step_size)?;
        check::positive_size("steps", self.steps)?;
        if let Some(range) = self.clamp {
            check::range("clamp", range, f64::NEG_INFINITY, f64::INFINITY)?;
        }
        Ok(())
    }
}

fn check_batch<F: Float, D: Dimension>(inputs: &ArrayView<'_, F, D>) -> Result<usize> {
    let batch = check::non_empty_batch("inputs", inputs.shape())?;
    check::finite("inputs", inputs)?;
    Ok(batch)
}

/// Projects every example's perturbation (the sub-array along axis 0) onto the ball of radius
/// `epsilon` of `norm`, in place: clipping for $L_\infty$, scaling by
/// $\min(1, \epsilon/\lVert\delta_i\rVert_2)$ for $L_2$ (the closest point of the ball).
/// Errors when `epsilon` is negative or non-finite, `delta` has no batch axis or is empty, or
/// holds a non-finite value.
pub fn project<F: Float, D: RemoveAxis>(
    delta: ArrayViewMut<'_, F, D>,
    norm: Norm,
    epsilon: f64,
) -> Result<()> {
    check::non_negative("epsilon", epsilon)?;
    check::non_empty_batch("delta", delta.shape())?;
    check::finite("delta", &delta)?;
    project_unchecked(delta, norm, epsilon);
    Ok(())
}

fn project_unchecked<F: Float, D: RemoveAxis>(
    mut delta: ArrayViewMut<'_, F, D>,
    norm: Norm,
    epsilon: f64,
) {
    match norm {
        Norm::LInf => {
            let (lo, hi) = (F::from_f64_rounded(-epsilon), F::from_f64_rounded(epsilon));
            delta.mapv_inplace(|d| d.max(lo).min(hi));
        }
        Norm::L2 => {
            for mut example in delta.axis_iter_mut(Axis(0)) {
                let norm = l2_norm(example.iter().copied());
                if norm > epsilon {
                    let scale = F::from_f64_rounded(epsilon / norm);
                    example.mapv_inplace(|d| d * scale);
                }
            }
        }
    }
}

/// $\lVert v \rVert_2$ accumulated in `f64` (no overflow for any finite `f32` input).
fn l2_norm<F: Float>(values: impl Iterator<Item = F>) -> f64 {
    let scale = values
        .map(|v| v.to_f64_exact())
        .fold((0.0f64, 1.0f64), |(max, sum), v| {
            // Scaled accumulation (as LAPACK's nrm2) so huge f64 entries do not overflow.
            let a = v.abs();
            if a == 0.0 {
                (max, sum)
            } else if a > max {
                (a, 1.0 + sum * (max / a) * (max / a))
            } else {
                (max, sum + (a / max) * (a / max))
            }
        });
    if scale.0 == 0.0 {
        0.0
    } else {
        scale.0 * scale.1.sqrt()
    }
}

/// Calls the objective and checks what it returns: a finite loss and a finite gradient of the
/// inputs' shape.
fn evaluate<F, D, G>(objective: &mut G, x: ArrayView<'_, F, D>) -> Result<(F, Array<F, D>)>
where
    F: Float,
    D: Dimension,
    G: FnMut(ArrayView<'_, F, D>) -> Result<(F, Array<F, D>)>,
{
    let shape = x.shape().to_vec();
    let (loss, grad) = objective(x)?;
    check::finite_values("loss", [loss])?;
    check::shape("input_grad", grad.shape(), &shape)?;
    check::finite("input_grad", &grad)?;
    Ok((loss, grad))
}

/// PGD adversarial examples of `inputs` (axis 0 is the batch; any rank), maximising the loss
/// that `loss_and_input_grad` returns with its input gradient (e.g. [`mlp_objective`]).
///
/// The random start (if any) draws from `rng`: uniform in the $L_\infty$ box, or uniform in
/// the $L_2$ ball (a Gaussian direction, radius $\epsilon u^{1/d}$ with $d$ entries per
/// example). Every step calls the objective once; the last iterate is returned.
///
/// Errors on an invalid `config` (see [`PgdConfig::validate`]), an empty or non-finite batch,
/// inputs outside the clamp range, and an objective that fails or returns a non-finite loss, a
/// non-finite gradient or one of another shape.
pub fn pgd<F, D, R, G>(
    inputs: ArrayView<'_, F, D>,
    config: &PgdConfig,
    rng: &mut R,
    mut loss_and_input_grad: G,
) -> Result<Array<F, D>>
where
    F: Float,
    D: RemoveAxis,
    R: Rng + ?Sized,
    G: FnMut(ArrayView<'_, F, D>) -> Result<(F, Array<F, D>)>,
{
    config.validate()?;
    let batch = check_batch(&inputs)?;
    let clamp = config
        .clamp
        .map(|(lo, hi)| (F::from_f64_rounded(lo), F::from_f64_rounded(hi)));
    if let Some((lo, hi)) = clamp {
        if let Some(&bad) = inputs.iter().find(|&&v| v < lo || v > hi) {
            return Err(Error::invalid(
                "inputs",
                bad,
                format!(
                    "must lie in the clamp range {:?} (the ε-ball guarantee needs it)",
                    config.clamp.unwrap_or_default()
                ),
            ));
        }
    }
    let per_example = inputs.len() / batch;
    let mut delta = Array::<F, D>::zeros(inputs.raw_dim());
    if config.random_start && config.epsilon > 0.0 {
        match config.norm {
            Norm::LInf => delta.mapv_inplace(|_| {
                F::from_f64_rounded(rng.random_range(-config.epsilon..=config.epsilon))
            }),
            Norm::L2 => {
                for mut example in delta.axis_iter_mut(Axis(0)) {
                    example.mapv_inplace(|_| F::from_f64_rounded(rng.sample(StandardNormal)));
                    let norm = l2_norm(example.iter().copied());
                    let u: f64 = rng.random();
                    let radius = config.epsilon * u.powf(1.0 / per_example as f64);
                    if norm > 0.0 {
                        let scale = F::from_f64_rounded(radius / norm);
                        example.mapv_inplace(|d| d * scale);
                    }
                }
                // Rounding of the scaled draw may overshoot the radius by an ulp.
                project_unchecked(delta.view_mut(), Norm::L2, config.epsilon);
            }
        }
    }
    let mut x = &inputs + &delta;
    clamp_to(&mut x, clamp);
    let alpha = F::from_f64_rounded(config.step_size);
    for _ in 0..config.steps {
        let (_, grad) = evaluate(&mut loss_and_input_grad, x.view())?;
        match config.norm {
            Norm::LInf => Zip::from(&mut x).and(&grad).for_each(|x, &g| {
                *x += alpha * sign(g);
            }),
            Norm::L2 => {
                for (mut x, g) in x.axis_iter_mut(Axis(0)).zip(grad.axis_iter(Axis(0))) {
                    let norm = l2_norm(g.iter().copied());
                    if norm > 0.0 {
                        // α/‖g‖ in f64 first: ‖g‖ of a mean loss can be tiny in f32.
                        let scale = F::from_f64_rounded(config.step_size / norm);
                        Zip::from(&mut x).and(&g).for_each(|x, &g| *x += scale * g);
                    }
                }
            }
        }
        Zip::from(&mut delta)
            .and(&x)
            .and(&inputs)
            .for_each(|d, &x, &x0| *d = x - x0);
        project_unchecked(delta.view_mut(), config.norm, config.epsilon);
        Zip::from(&mut x)
            .and(&delta)
            .and(&inputs)
            .for_each(|x, &d, &x0| *x = x0 + d);
        clamp_to(&mut x, clamp);
    }
    Ok(x)
}

fn clamp_to<F: Float, D: Dimension>(x: &mut Array<F, D>, clamp: Option<(F, F)>) {
    if let Some((lo, hi)) = clamp {
        x.mapv_inplace(|v| v.max(lo).min(hi));
    }
}

/// PyTorch's `sign`: 0 at 0.
fn sign<F: Float>(g: F) -> F {
    if g > F::zero() {
        F::one()
    } else if g < F::zero() {
        -F::one()
    } else {
        F::zero()
    }
}

/// FGSM adversarial examples through the objective: one gradient, one $L_\infty$ step of size
/// `epsilon`, then the optional clamp to `(lo, hi)`. The same as [`pgd`] with
/// [`PgdConfig::fgsm`].
pub fn fgsm<F, D, G>(
    inputs: ArrayView<'_, F, D>,
    epsilon: f64,
    clamp: Option<(f64, f64)>,
    loss_and_input_grad: G,
) -> Result<Array<F, D>>
where
    F: Float,
    D: RemoveAxis,
    G: FnMut(ArrayView<'_, F, D>) -> Result<(F, Array<F, D>)>,
{
    let config = PgdConfig {
        clamp,
        ..PgdConfig::fgsm(epsilon)
    };
    // No random start: the generator is never drawn from.
    pgd(
        inputs,
        &config,
        &mut ChaCha8Rng::seed_from_u64(0),
        loss_and_input_grad,
    )
}

/// The attack objective of an [`Mlp`]: `x ↦ (loss, ∂loss/∂x)` against `targets`, through
/// [`Mlp::loss_and_input_gradient`] (no parameter gradients).
pub fn mlp_objective<'a, F: Float>(
    mlp: &'a Mlp<F>,
    targets: Targets<'a, F>,
    loss: Loss,
) -> impl FnMut(ArrayView2<'_, F>) -> Result<(F, Array2<F>)> + 'a {
    move |x| mlp.loss_and_input_gradient(x, &targets, loss)
}

/// The FGSM adversarial example $x + \epsilon\,\mathrm{sign}(g)$ for any array rank, with
/// $\mathrm{sign}(0) = 0$ (PyTorch's `sign`, as advertorch's `GradientSignAttack` uses, without
/// clipping).
///
/// `input_grad` is $\nabla_x \ell$ of the caller's model (e.g. the cross-entropy against its own
/// predicted or true labels). Errors when the shapes differ, a value is non-finite, or
/// $\epsilon < 0$.
pub fn fgsm_example<F: Float, D: Dimension>(
    inputs: ArrayView<F, D>,
    input_grad: ArrayView<F, D>,
    epsilon: f64,
) -> Result<Array<F, D>> {
    check::non_negative("epsilon", epsilon)?;
    check::shape("input_grad", input_grad.shape(), inputs.shape())?;
    check::finite("inputs", &inputs)?;
    check::finite("input_grad", &input_grad)?;
    let step = F::from_f64_rounded(epsilon);
    Ok(Zip::from(&inputs).and(&input_grad).map_collect(|&x, &g| {
        let sign = if g > F::zero() {
            F::one()
        } else if g < F::zero() {
            -F::one()
        } else {
            F::zero()
        };
        x + step * sign
    }))
}

/// The attack objective of a [`Sequential`] (any input rank, e.g. NCHW images):
/// `x ↦ (loss, ∂loss/∂x)` in evaluation mode (running statistics, no dropout), through
/// [`Sequential::input_gradient`] (no parameter gradients).
pub fn sequential_objective<'a, F: Float>(
    model: &'a Sequential<F>,
    targets: Targets<'a, F>,
    loss: Loss,
) -> impl FnMut(ArrayViewD<'_, F>) -> Result<(F, ArrayD<F>)> + 'a {
    move |x| model.input_gradient(x, &targets, loss)
}

/// Clean and robust accuracy of a [`Sequential`] classifier (evaluation mode) under a PGD
/// attack on the softmax cross-entropy against `labels`.
pub fn sequential_robust_accuracy<F: Float, R: Rng + ?Sized>(
    model: &Sequential<F>,
    x: ArrayViewD<'_, F>,
    labels: &[usize],
    config: &PgdConfig,
    rng: &mut R,
) -> Result<RobustAccuracy> {
    robust_accuracy(
        x,
        labels,
        config,
        rng,
        sequential_objective(model, Targets::Hard(labels), Loss::SoftmaxCrossEntropy),
        |x| {
            let logits = model.predict(x)?;
            let shape = logits.shape().to_vec();
            logits
                .into_dimensionality::<ndarray::Ix2>()
                .map_err(|_| Error::shape("logits", "(batch, classes)", format!("{shape:?}")))
        },
    )
}

/// Adversarial training (Madry et al., 2018): each step trains on PGD examples of the batch,
/// optionally mixed with the clean batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdversarialTraining {
    /// The attack that makes the training examples.
    pub attack: PgdConfig,
    /// Weight $w \in [0, 1]$ of the clean loss: the step follows
    /// $\nabla[(1 - w)\,\ell(x^{adv}) + w\,\ell(x)]$ (Goodfellow et al. 2015 use $w = 0.5$;
    /// Madry et al. $w = 0$).
    pub clean_weight: f64,
}

impl AdversarialTraining {
    /// Pure PGD training ($w = 0$).
    pub fn new(attack: PgdConfig) -> Self {
        Self {
            attack,
            clean_weight: 0.0,
        }
    }

    /// Mixes in the clean loss with weight `clean_weight`.
    pub fn with_clean_weight(mut self, clean_weight: f64) -> Self {
        self.clean_weight = clean_weight;
        self
    }

    /// Checks the attack and $w \in [0, 1]$.
    pub fn validate(&self) -> Result<()> {
        self.attack.validate()?;
        check::in_range("clean_weight", self.clean_weight, 0.0, 1.0)?;
        Ok(())
    }
}

/// The losses of one adversarial training step, before the update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdversarialStep<F> {
    /// Loss on the PGD examples.
    pub adversarial_loss: F,
    /// Loss on the clean batch (computed only when the clean weight is positive).
    pub clean_loss: Option<F>,
}

/// One adversarial training step of `mlp`: PGD examples of `x` against `targets` (the
/// parameters held fixed during the attack), then one update by `trainer` (its optimiser,
/// schedule and masks) along the gradient of the mixed loss.
pub fn adversarial_training_step<F: Float, R: Rng + ?Sized>(
    trainer: &mut Trainer<F>,
    mlp: &mut Mlp<F>,
    x: ArrayView2<'_, F>,
    targets: &Targets<'_, F>,
    loss: Loss,
    config: &AdversarialTraining,
    rng: &mut R,
) -> Result<AdversarialStep<F>> {
    config.validate()?;
    mlp.check_input(x)?;
    let adversarial = {
        let fixed: &Mlp<F> = mlp;
        pgd(x, &config.attack, rng, |x: ArrayView2<'_, F>| {
            fixed.loss_and_input_gradient(x, targets, loss)
        })?
    };
    let (adversarial_loss, mut grad) = mlp.loss_and_gradient(adversarial.view(), targets, loss)?;
    let clean_loss = if config.clean_weight > 0.0 {
        let (clean_loss, clean_grad) = mlp.loss_and_gradient(x, targets, loss)?;
        let w = F::from_f64_rounded(config.clean_weight);
        let keep = F::from_f64_rounded(1.0 - config.clean_weight);
        Zip::from(&mut grad)
            .and(&clean_grad)
            .for_each(|g, &c| *g = keep * *g + w * c);
        Some(clean_loss)
    } else {
        None
    };
    trainer.step_with_gradient(mlp, grad)?;
    Ok(AdversarialStep {
        adversarial_loss,
        clean_loss,
    })
}

/// Clean and robust accuracy of a classifier on one batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RobustAccuracy {
    /// Fraction of examples classified correctly.
    pub clean: f64,
    /// Fraction of PGD examples classified correctly.
    pub robust: f64,
}

/// Clean and robust accuracy of any classifier: `predict` returns the logits (batch ×
/// classes) of a batch, `loss_and_input_grad` the attack objective (usually the cross-entropy
/// against `labels`). Errors as [`pgd`] does, and when `labels` or the logits do not match
/// the batch or a label is out of range.
pub fn robust_accuracy<F, D, R, G, P>(
    inputs: ArrayView<'_, F, D>,
    labels: &[usize],
    config: &PgdConfig,
    rng: &mut R,
    loss_and_input_grad: G,
    mut predict: P,
) -> Result<RobustAccuracy>
where
    F: Float,
    D: RemoveAxis,
    R: Rng + ?Sized,
    G: FnMut(ArrayView<'_, F, D>) -> Result<(F, Array<F, D>)>,
    P: FnMut(ArrayView<'_, F, D>) -> Result<Array2<F>>,
{
    let batch = check_batch(&inputs)?;
    check::length("labels", labels.len(), batch)?;
    let mut accuracy = |x: ArrayView<'_, F, D>| -> Result<f64> {
        let logits = predict(x)?;
        if logits.nrows() != batch || logits.ncols() == 0 {
            return Err(Error::shape(
                "logits",
                format!("({batch}, classes ≥ 1)"),
                format!("{:?}", logits.dim()),
            ));
        }
        if let Some(&bad) = labels.iter().find(|&&l| l >= logits.ncols()) {
            return Err(Error::invalid(
                "labels",
                bad,
                format!("label must be < number of classes {}", logits.ncols()),
            ));
        }
        let correct = logits
            .rows()
            .into_iter()
            .zip(labels)
            .filter(|(row, &label)| argmax(row.iter().copied()) == label)
            .count();
        Ok(correct as f64 / batch as f64)
    };
    let clean = accuracy(inputs.view())?;
    let adversarial = pgd(inputs.view(), config, rng, loss_and_input_grad)?;
    let robust = accuracy(adversarial.view())?;
    Ok(RobustAccuracy { clean, robust })
}

/// Clean and robust accuracy of an [`Mlp`] under a PGD attack on the softmax cross-entropy
/// against `labels`.
pub fn mlp_robust_accuracy<F: Float, R: Rng + ?Sized>(
    mlp: &Mlp<F>,
    x: ArrayView2<'_, F>,
    labels: &[usize],
    config: &PgdConfig,
    rng: &mut R,
) -> Result<RobustAccuracy> {
    mlp.check_input(x)?;
    let targets = Targets::Hard(labels);
    targets.validate(
        x.nrows(),
        mlp.config().output_dim,
        Loss::SoftmaxCrossEntropy,
    )?;
    robust_accuracy(
        x,
        labels,
        config,
        rng,
        mlp_objective(mlp, targets, Loss::SoftmaxCrossEntropy),
        |x| mlp.predict(x),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::{array, Array3};

    #[test]
    fn fgsm_moves_by_epsilon_along_the_sign() {
        let x = Array3::<f64>::zeros((1, 2, 2));
        let g = array![[[0.3, -2.0], [0.0, 1e-30]]];
        let adv = fgsm_example(x.view(), g.view(), 0.02).unwrap();
        assert_eq!(adv, array![[[0.02, -0.02], [0.0, 0.02]]]);
        let err = fgsm_example(x.view(), g.view(), -0.1).unwrap_err();
        assert!(err.to_string().contains("epsilon"), "{err}");
        let wrong = Array3::<f64>::zeros((1, 2, 3));
        let err = fgsm_example(x.view(), wrong.view(), 0.1).unwrap_err();
        assert!(err.to_string().contains("input_grad"), "{err}");
    }

    #[test]
    fn l2_projection_is_the_closest_point_of_the_ball() {
        // Per example: (3, 4) has norm 5 → ε/5·(3, 4); the second is inside and stays.
        let mut delta = array![[3.0f64, 4.0], [0.3, -0.4]];
        project(delta.view_mut(), Norm::L2, 2.5).unwrap();
        assert_eq!(delta, array![[1.5, 2.0], [0.3, -0.4]]);
        // Rank 3: the norm runs over all of an example's entries.
        let mut cube = array![[[1.0f32, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.1]]];
        project(cube.view_mut(), Norm::L2, 1.0).unwrap();
        assert_eq!(
            cube,
            array![[[0.5f32, 0.5], [0.5, 0.5]], [[0.0, 0.0], [0.0, 0.1]]]
        );
        let mut clip = array![[0.7f64, -0.2, -3.0]];
        project(clip.view_mut(), Norm::LInf, 0.5).unwrap();
        assert_eq!(clip, array![[0.5, -0.2, -0.5]]);
        assert!(project(clip.view_mut(), Norm::L2, -1.0).is_err());
        assert!(project(clip.view_mut(), Norm::L2, f64::NAN).is_err());
    }

    /// `ℓ(x) = Σ_i w·x_i` has the maximiser `x⁰ + ε·w/‖w‖₂` (L2) or `x⁰ + ε·sign(w)` (L∞)
    /// in the ball, which PGD reaches once its steps add up to more than ε.
    #[test]
    fn pgd_on_a_linear_loss_reaches_the_closed_form_maximiser() {
        let w = array![[2.0f64, -1.0, 0.0, 2.0]];
        let objective = |x: ArrayView2<'_, f64>| -> Result<(f64, Array2<f64>)> {
            let grad = Array2::from_shape_fn(x.dim(), |(_, k)| w[[0, k]]);
            Ok(((&x * &grad).sum(), grad))
        };
        let x0 = array![[0.1f64, 0.2, 0.3, 0.4], [-1.0, 0.0, 1.0, 2.0]];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for random_start in [false, true] {
            // From a random start the component orthogonal to w shrinks geometrically with
            // every projection, so many steps reach the maximiser to rounding.
            let steps = if random_start { 200 } else { 5 };
            let l2 = PgdConfig::new(Norm::L2, 0.6, 0.25, steps).with_random_start(random_start);
            let adv = pgd(x0.view(), &l2, &mut rng, objective).unwrap();
            let unit = array![[2.0f64, -1.0, 0.0, 2.0]] / 3.0;
            for (row, start) in adv.rows().into_iter().zip(x0.rows()) {
                for k in 0..4 {
                    assert_abs_diff_eq!(row[k], start[k] + 0.6 * unit[[0, k]], epsilon = 1e-12);
                }
            }
            let linf = PgdConfig::new(Norm::LInf, 0.3, 0.1, steps).with_random_start(random_start);
            let adv = pgd(x0.view(), &linf, &mut rng, objective).unwrap();
            let expected = &x0 + &(array![[1.0f64, -1.0, 0.0, 1.0]] * 0.3);
            if random_start {
                // sign(0) = 0 leaves the third coordinate at its random start.
                for (i, j) in [(0, 0), (0, 1), (0, 3), (1, 0), (1, 1), (1, 3)] {
                    assert_abs_diff_eq!(adv[[i, j]], expected[[i, j]], epsilon = 1e-12);
                }
                assert_abs_diff_eq!(adv[[0, 2]], x0[[0, 2]], epsilon = 0.3);
            } else {
                assert_abs_diff_eq!(adv, expected, epsilon = 1e-12);
            }
        }
        let fgsm = fgsm(x0.view(), 0.05, Some((-1.0, 2.0)), objective).unwrap();
        let grad = Array2::from_shape_fn(x0.dim(), |(_, k)| w[[0, k]]);
        let reference = fgsm_example(x0.view(), grad.view(), 0.05)
            .unwrap()
            .mapv(|v| v.clamp(-1.0, 2.0));
        assert_eq!(fgsm, reference);
    }

    #[test]
    fn pgd_rejects_bad_configs_and_objectives() {
        let x = array![[0.5f64, 0.5]];
        let good = |x: ArrayView2<'_, f64>| -> Result<(f64, Array2<f64>)> {
            Ok((x.sum(), Array2::ones(x.dim())))
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let base = PgdConfig::new(Norm::LInf, 0.1, 0.05, 3);
        let name = |c: PgdConfig| {
            pgd(x.view(), &c, &mut ChaCha8Rng::seed_from_u64(0), good)
                .unwrap_err()
                .to_string()
        };
        assert!(name(PgdConfig {
            epsilon: -0.1,
            ..base
        })
        .contains("epsilon"));
        assert!(name(PgdConfig {
            epsilon: f64::INFINITY,
            ..base
        })
        .contains("epsilon"));
        assert!(name(PgdConfig {
            step_size: 0.0,
            ..base
        })
        .contains("step_size"));
        assert!(name(PgdConfig {
            step_size: f64::NAN,
            ..base
        })
        .contains("step_size"));
        assert!(name(PgdConfig { steps: 0, ..base }).contains("steps"));
        assert!(name(base.with_clamp(1.0, 0.0)).contains("clamp"));
        assert!(name(base.with_clamp(0.0, f64::NAN)).contains("clamp"));
        assert!(name(base.with_clamp(0.6, 1.0)).contains("inputs"));
        let nan = array![[f64::NAN, 0.0]];
        let err = pgd(nan.view(), &base, &mut rng, good).unwrap_err();
        assert!(err.to_string().contains("inputs"), "{err}");
        let empty = Array2::<f64>::zeros((0, 2));
        assert!(pgd(empty.view(), &base, &mut rng, good).is_err());
        let wrong_shape = |x: ArrayView2<'_, f64>| -> Result<(f64, Array2<f64>)> {
            Ok((x.sum(), Array2::ones((1, 3))))
        };
        let err = pgd(x.view(), &base, &mut rng, wrong_shape).unwrap_err();
        assert!(err.to_string().contains("input_grad"), "{err}");
        let nan_grad = |x: ArrayView2<'_, f64>| -> Result<(f64, Array2<f64>)> {
            Ok((x.sum(), Array2::from_elem(x.dim(), f64::NAN)))
        };
        let err = pgd(x.view(), &base, &mut rng, nan_grad).unwrap_err();
        assert!(err.to_string().contains("input_grad"), "{err}");
        let inf_loss = |x: ArrayView2<'_, f64>| -> Result<(f64, Array2<f64>)> {
            Ok((f64::INFINITY, Array2::ones(x.dim())))
        };
        let err = pgd(x.view(), &base, &mut rng, inf_loss).unwrap_err();
        assert!(err.to_string().contains("loss"), "{err}");
        let mix = AdversarialTraining::new(base).with_clean_weight(1.5);
        assert!(mix
            .validate()
            .unwrap_err()
            .to_string()
            .contains("clean_weight"));
    }
}
