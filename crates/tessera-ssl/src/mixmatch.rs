//! MixMatch (Berthelot et al., 2019): guessed labels for `K` augmentations of every
//! unlabelled item, then mixup of labelled and unlabelled items with a shuffle of both.
//!
//! With a labelled batch $\hat X = ((x_b, p_b))_{b \le B}$ and $K$ augmented views
//! $\hat u_{b,k}$ of an unlabelled batch:
//!
//! 1. $q_b = \mathrm{Sharpen}(\frac1K \sum_k \mathrm{softmax}(z(\hat u_{b,k})), T)$;
//! 2. $\hat U = ((\hat u_{b,k}, q_b))$, view-major: row $k B_u + b$;
//! 3. $W = \mathrm{Shuffle}(\mathrm{Concat}(\hat X, \hat U))$;
//! 4. $X'_i = \mathrm{MixUp}(\hat X_i, W_i)$ and $U'_i = \mathrm{MixUp}(\hat U_i, W_{|\hat X| + i})$
//!    with $\lambda \sim \mathrm{Beta}(\alpha, \alpha)$, $\lambda' = \max(\lambda, 1 - \lambda)$,
//!    so every mixed item stays closer to its own source;
//! 5. $L = L_X + w\,\lambda_u L_U$ with $L_X$ the soft cross-entropy on $X'$, $L_U$ the MSE
//!    between $\mathrm{softmax}$ and the targets of $U'$, $w$ a ramp-up factor.
//!
//! Defaults: $\alpha = 0.75$, $T = 0.5$, $K = 2$ (the number of views given), $\lambda_u = 1$
//! (SSLH; the paper uses 75–150 on images with its MSE).

use ndarray::{
    concatenate, Array, Array1, Array2, ArrayView, ArrayView2, Axis, Dimension, RemoveAxis, Slice,
};
use rand::seq::SliceRandom;
use rand::Rng;
use tessera_augment::{LambdaRule, LambdaScope, Mixup};
use tessera_core::RejectInput;

use crate::fixmatch::rename;
use crate::losses::{
    check_logits_and_targets, mse_probabilities_unchecked, soft_cross_entropy_unchecked,
    LossAndGradient,
};
use crate::sharpen::guess_labels;
use crate::{check, Error, Float, Result};

/// The loss applied to the mixed unlabelled batch $U'$.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoftTargetLoss {
    /// $\frac{1}{BC}\sum (\mathrm{softmax}(z) - q)^2$ (MixMatch paper).
    Mse,
    /// Soft cross-entropy (ReMixMatch paper; SSLH uses it for both recipes).
    SoftCrossEntropy,
}

impl SoftTargetLoss {
    pub(crate) fn evaluate<F: Float>(
        self,
        logits: ArrayView2<F>,
        targets: ArrayView2<F>,
    ) -> LossAndGradient<F> {
        match self {
            SoftTargetLoss::Mse => mse_probabilities_unchecked(logits, targets),
            SoftTargetLoss::SoftCrossEntropy => soft_cross_entropy_unchecked(logits, targets),
        }
    }
}

/// MixMatch hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixMatchConfig {
    /// Beta concentration $\alpha > 0$ of mixup (0.75).
    pub alpha: f64,
    /// Sharpening temperature $T > 0$ (0.5).
    pub temperature: f64,
    /// Weight $\lambda_u \ge 0$ of the unlabelled loss (1).
    pub lambda_u: f64,
    /// The loss on $U'$ (MSE, as in the paper).
    pub unlabelled_loss: SoftTargetLoss,
    /// One $\lambda$ per item (the official code, SSLH) or per batch.
    pub lambda_scope: LambdaScope,
}

impl Default for MixMatchConfig {
    fn default() -> Self {
        MixMatchConfig {
            alpha: 0.75,
            temperature: 0.5,
            lambda_u: 1.0,
            unlabelled_loss: SoftTargetLoss::Mse,
            lambda_scope: LambdaScope::PerItem,
        }
    }
}

/// A checked MixMatch recipe: builds mixed batches and evaluates the MixMatch loss.
#[derive(Debug, Clone)]
pub struct MixMatch {
    config: MixMatchConfig,
    mixup: Mixup,
}

/// One MixMatch training batch: what the model must be run on, with its targets.
#[derive(Debug, Clone)]
pub struct MixMatchBatch<F, D: Dimension> {
    /// $X'$: the mixed labelled inputs, shape of the labelled inputs.
    pub labelled_inputs: Array<F, D>,
    /// Targets of $X'$ (probability rows).
    pub labelled_targets: Array2<F>,
    /// $U'$: the mixed unlabelled inputs, $K B_u$ rows, view-major.
    pub unlabelled_inputs: Array<F, D>,
    /// Targets of $U'$ (probability rows).
    pub unlabelled_targets: Array2<F>,
    /// The sharpened guesses $q$, one row per unlabelled item, `(B_u, C)`.
    pub guesses: Array2<F>,
    /// $W_i = \mathrm{Concat}(\hat X, \hat U)_{\pi(i)}$ with $\pi$ = `permutation`.
    pub permutation: Vec<usize>,
    /// $\lambda'_i \ge 0.5$ of every row of $X'$.
    pub labelled_lambdas: Array1<F>,
    /// $\lambda'_i \ge 0.5$ of every row of $U'$.
    pub unlabelled_lambdas: Array1<F>,
}

/// The MixMatch loss of one step, its parts and its gradients.
#[derive(Debug, Clone, PartialEq)]
pub struct MixMatchLoss<F> {
    /// $L_X + w\,\lambda_u L_U$.
    pub value: F,
    /// $L_X$.
    pub supervised: F,
    /// $L_U$ (before weighting).
    pub unlabelled: F,
    /// $\partial L/\partial z$ of the logits on $X'$.
    pub grad_labelled: Array2<F>,
    /// $\partial L/\partial z$ of the logits on $U'$ (weighted).
    pub grad_unlabelled: Array2<F>,
}

impl MixMatch {
    /// Checks $\alpha > 0$, $T > 0$, $\lambda_u \ge 0$.
    pub fn new(config: MixMatchConfig) -> Result<Self> {
        let mixup = checked_mixup(
            config.alpha,
            config.temperature,
            &[("lambda_u", config.lambda_u)],
            config.lambda_scope,
        )?;
        Ok(MixMatch { config, mixup })
    }

    /// The configuration this recipe was built from.
    pub fn config(&self) -> &MixMatchConfig {
        &self.config
    }

    /// Builds $X'$ and $U'$ from a labelled batch, `K` augmented views of an unlabelled batch
    /// and the model's logits on each view (the views and the logits in the same order).
    ///
    /// The inputs may have any rank (batch first); labelled and unlabelled items must have
    /// the same shape. Randomness (the shuffle, then the $\lambda$ of $X'$, then those of
    /// $U'$) comes from `rng`. Errors when `K = 0`, the views or logits disagree in shape, a
    /// target row is not a distribution, or any value is non-finite.
    pub fn build_batch<F: Float, D: RemoveAxis, R: Rng + ?Sized>(
        &self,
        labelled_inputs: ArrayView<F, D>,
        labelled_targets: ArrayView2<F>,
        unlabelled_views: &[ArrayView<F, D>],
        unlabelled_logits: &[ArrayView2<F>],
        rng: &mut R,
    ) -> Result<MixMatchBatch<F, D>> {
        let classes = check_labelled(&labelled_inputs, &labelled_targets)?;
        check_views(&labelled_inputs, unlabelled_views, "unlabelled_views")?;
        if unlabelled_logits.len() != unlabelled_views.len() {
            return Err(Error::shape(
                "unlabelled_logits",
                format!("{} arrays (one per view)", unlabelled_views.len()),
                unlabelled_logits.len(),
            ));
        }
        let unlabelled_batch = unlabelled_views[0].shape()[0];
        for logits in unlabelled_logits {
            check::same_shape(
                "unlabelled_logits",
                logits,
                &[unlabelled_batch, classes],
                "(unlabelled batch, classes of labelled_targets)",
            )?;
        }
        let guesses = guess_labels(unlabelled_logits, self.config.temperature)?;
        let mixed = mix_with_guesses(
            &self.mixup,
            labelled_inputs,
            labelled_targets,
            (unlabelled_views, "unlabelled_views"),
            guesses.view(),
            rng,
        )?;
        Ok(MixMatchBatch {
            labelled_inputs: mixed.labelled_inputs,
            labelled_targets: mixed.labelled_targets,
            unlabelled_inputs: mixed.unlabelled_inputs,
            unlabelled_targets: mixed.unlabelled_targets,
            guesses,
            permutation: mixed.permutation,
            labelled_lambdas: mixed.labelled_lambdas,
            unlabelled_lambdas: mixed.unlabelled_lambdas,
        })
    }

    /// $L = L_X + w\,\lambda_u L_U$ from the model's logits on `batch.labelled_inputs` and
    /// `batch.unlabelled_inputs`; `ramp = w ≥ 0` (e.g. a linear [`RampUp`](crate::RampUp)).
    pub fn loss<F: Float, D: Dimension>(
        &self,
        batch: &MixMatchBatch<F, D>,
        labelled_logits: ArrayView2<F>,
        unlabelled_logits: ArrayView2<F>,
        ramp: f64,
    ) -> Result<MixMatchLoss<F>> {
        let (supervised, unlabelled) = mixed_losses(
            ramp,
            self.config.unlabelled_loss,
            (labelled_logits, batch.labelled_targets.view()),
            (unlabelled_logits, batch.unlabelled_targets.view()),
        )?;
        let weight = F::from_f64_rounded(ramp * self.config.lambda_u);
        Ok(MixMatchLoss {
            value: supervised.value + weight * unlabelled.value,
            supervised: supervised.value,
            unlabelled: unlabelled.value,
            grad_labelled: supervised.grad,
            grad_unlabelled: unlabelled.grad * weight,
        })
    }
}

/// Checks the hyper-parameters MixMatch and ReMixMatch share (`alpha > 0`, `temperature > 0`,
/// each loss weight `>= 0`, in that order) and builds their mixup.
pub(crate) fn checked_mixup(
    alpha: f64,
    temperature: f64,
    weights: &[(&'static str, f64)],
    scope: LambdaScope,
) -> Result<Mixup> {
    check::positive("alpha", alpha)?;
    check::positive("temperature", temperature)?;
    for &(name, weight) in weights {
        check::non_negative(name, weight)?;
    }
    Ok(Mixup::new(alpha, LambdaRule::MixMatch, scope)?)
}

/// `L_X` (soft cross-entropy) and the unsupervised `L_U` (`kind`) of a mixed batch, after
/// checking `ramp >= 0`; each pair is (logits, the batch's targets).
pub(crate) fn mixed_losses<F: Float>(
    ramp: f64,
    kind: SoftTargetLoss,
    (labelled_logits, labelled_targets): (ArrayView2<F>, ArrayView2<F>),
    (unlabelled_logits, unlabelled_targets): (ArrayView2<F>, ArrayView2<F>),
) -> Result<(LossAndGradient<F>, LossAndGradient<F>)> {
    check::non_negative("ramp", ramp)?;
    let supervised = checked_loss(
        SoftTargetLoss::SoftCrossEntropy,
        labelled_logits,
        labelled_targets,
        "labelled_logits",
    )?;
    let unlabelled = checked_loss(
        kind,
        unlabelled_logits,
        unlabelled_targets,
        "unlabelled_logits",
    )?;
    Ok((supervised, unlabelled))
}

/// Evaluates `kind` after checking `logits` against the batch's `targets`.
pub(crate) fn checked_loss<F: Float>(
    kind: SoftTargetLoss,
    logits: ArrayView2<F>,
    targets: ArrayView2<F>,
    name: &'static str,
) -> Result<LossAndGradient<F>> {
    check::logits(name, &logits)?;
    check::same_shape(
        name,
        &logits,
        targets.shape(),
        "one row per item of the batch, one column per class",
    )?;
    check_logits_and_targets(&logits, &targets).map_err(|e| rename(e, name, "batch targets"))?;
    Ok(kind.evaluate(logits, targets))
}

/// The labelled batch: non-empty, finite inputs; one probability row per item.
pub(crate) fn check_labelled<F: Float, D: RemoveAxis>(
    inputs: &ArrayView<F, D>,
    targets: &ArrayView2<F>,
) -> Result<usize> {
    let batch = inputs.shape().first().copied().unwrap_or(0);
    if batch == 0 {
        return Err(Error::shape(
            "labelled_inputs",
            "at least one item (batch first)",
            inputs.shape(),
        ));
    }
    check::finite("labelled_inputs", inputs)?;
    if targets.nrows() != batch {
        return Err(Error::shape(
            "labelled_targets",
            format!("({batch}, classes) (one row per labelled item)"),
            targets.shape(),
        ));
    }
    let (_, classes) = check::probability_rows("labelled_targets", targets)?;
    Ok(classes)
}

/// `K >= 1` views of identical shape, items shaped like the labelled items, all finite.
pub(crate) fn check_views<F: Float, D: RemoveAxis>(
    labelled_inputs: &ArrayView<F, D>,
    views: &[ArrayView<F, D>],
    name: &'static str,
) -> Result<()> {
    let first = views.first().ok_or_else(|| {
        Error::invalid(
            name,
            "K = 0 views",
            "at least one augmented view is needed (K >= 1)",
        )
    })?;
    let shape = first.shape();
    if shape[0] == 0 || shape[1..] != labelled_inputs.shape()[1..] {
        return Err(Error::shape(
            name,
            format!(
                "(unlabelled batch >= 1, {:?}) like the labelled items",
                &labelled_inputs.shape()[1..]
            ),
            shape,
        ));
    }
    for view in views {
        check::same_shape(name, view, shape, "every view like the first")?;
        check::finite(name, view)?;
    }
    Ok(())
}

/// `rows` stacked `times` times (block `k` = rows), matching view-major concatenation.
pub(crate) fn repeat_rows<F: Float>(rows: ArrayView2<F>, times: usize) -> Array2<F> {
    let (n, c) = rows.dim();
    let mut out = Array2::<F>::zeros((n * times, c));
    for k in 0..times {
        out.slice_axis_mut(Axis(0), Slice::from(k * n..(k + 1) * n))
            .assign(&rows);
    }
    out
}

/// Concatenates the unlabelled `views` (view-major; `name` is the parameter they came from),
/// gives every view's rows the `guesses` as targets, and mixes them with the labelled batch.
pub(crate) fn mix_with_guesses<F: Float, D: RemoveAxis, R: Rng + ?Sized>(
    mixup: &Mixup,
    labelled_inputs: ArrayView<F, D>,
    labelled_targets: ArrayView2<F>,
    (views, name): (&[ArrayView<F, D>], &'static str),
    guesses: ArrayView2<F>,
    rng: &mut R,
) -> Result<Mixed<F, D>> {
    let unlabelled_inputs = concatenate(Axis(0), views)
        .map_err(|e| Error::shape(name, "concatenable views", e.to_string()))?;
    let repeated = repeat_rows(guesses, views.len());
    mix_match(
        mixup,
        labelled_inputs,
        labelled_targets,
        unlabelled_inputs.view(),
        repeated.view(),
        rng,
    )
}

/// Output of [`mix_match`].
pub(crate) struct Mixed<F, D: Dimension> {
    pub labelled_inputs: Array<F, D>,
    pub labelled_targets: Array2<F>,
    pub unlabelled_inputs: Array<F, D>,
    pub unlabelled_targets: Array2<F>,
    pub permutation: Vec<usize>,
    pub labelled_lambdas: Array1<F>,
    pub unlabelled_lambdas: Array1<F>,
}

/// Steps 3–4 shared by MixMatch and ReMixMatch: shuffle the concatenation, then mix each part
/// with its slice of the shuffle.
pub(crate) fn mix_match<F: Float, D: RemoveAxis, R: Rng + ?Sized>(
    mixup: &Mixup,
    labelled_inputs: ArrayView<F, D>,
    labelled_targets: ArrayView2<F>,
    unlabelled_inputs: ArrayView<F, D>,
    unlabelled_targets: ArrayView2<F>,
    rng: &mut R,
) -> Result<Mixed<F, D>> {
    let labelled = labelled_inputs.shape()[0];
    let all_inputs = concatenate(Axis(0), &[labelled_inputs.view(), unlabelled_inputs.view()])
        .map_err(|e| {
            Error::shape(
                "unlabelled_inputs",
                "items shaped like labelled_inputs",
                e.to_string(),
            )
        })?;
    let all_targets = concatenate(
        Axis(0),
        &[labelled_targets.view(), unlabelled_targets.view()],
    )
    .map_err(|e| {
        Error::shape(
            "unlabelled_targets",
            "rows shaped like labelled_targets",
            e.to_string(),
        )
    })?;
    let mut permutation: Vec<usize> = (0..all_inputs.shape()[0]).collect();
    permutation.shuffle(rng);
    let shuffled_inputs = all_inputs.select(Axis(0), &permutation);
    let shuffled_targets = all_targets.select(Axis(0), &permutation);
    let x = mixup.mix_with(
        labelled_inputs,
        labelled_targets,
        shuffled_inputs.slice_axis(Axis(0), Slice::from(..labelled)),
        shuffled_targets.slice_axis(Axis(0), Slice::from(..labelled)),
        rng,
    )?;
    let u = mixup.mix_with(
        unlabelled_inputs,
        unlabelled_targets,
        shuffled_inputs.slice_axis(Axis(0), Slice::from(labelled..)),
        shuffled_targets.slice_axis(Axis(0), Slice::from(labelled..)),
        rng,
    )?;
    Ok(Mixed {
        labelled_inputs: x.inputs,
        labelled_targets: x.targets,
        unlabelled_inputs: u.inputs,
        unlabelled_targets: u.targets,
        permutation,
        labelled_lambdas: x.lambdas,
        unlabelled_lambdas: u.lambdas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array3};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn builds_shapes_and_rejects_k_zero() {
        let mixmatch = MixMatch::new(MixMatchConfig::default()).unwrap();
        let x = Array3::<f64>::from_shape_fn((3, 2, 4), |(b, i, j)| (b * 8 + i * 4 + j) as f64);
        let y = array![[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]];
        let u1 = Array3::<f64>::from_elem((5, 2, 4), -1.0);
        let u2 = Array3::<f64>::from_elem((5, 2, 4), -2.0);
        let z = Array2::<f64>::zeros((5, 2));
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let batch = mixmatch
            .build_batch(
                x.view(),
                y.view(),
                &[u1.view(), u2.view()],
                &[z.view(), z.view()],
                &mut rng,
            )
            .unwrap();
        assert_eq!(batch.labelled_inputs.shape(), &[3, 2, 4]);
        assert_eq!(batch.unlabelled_inputs.shape(), &[10, 2, 4]);
        assert_eq!(batch.unlabelled_targets.shape(), &[10, 2]);
        assert_eq!(batch.permutation.len(), 13);
        let err = mixmatch
            .build_batch::<f64, _, _>(x.view(), y.view(), &[], &[], &mut rng)
            .unwrap_err();
        assert!(err.to_string().contains("K = 0"), "{err}");
        let err = mixmatch
            .build_batch(
                x.view(),
                y.view(),
                &[u1.view()],
                &[z.view(), z.view()],
                &mut rng,
            )
            .unwrap_err();
        assert!(err.to_string().contains("unlabelled_logits"), "{err}");
        let bad = MixMatch::new(MixMatchConfig {
            temperature: 0.0,
            ..Default::default()
        });
        assert!(bad.unwrap_err().to_string().contains("temperature"));
        let bad = MixMatch::new(MixMatchConfig {
            alpha: -1.0,
            ..Default::default()
        });
        assert!(bad.unwrap_err().to_string().contains("alpha"));
    }
}
