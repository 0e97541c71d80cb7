//! ReMixMatch (Berthelot et al., 2020): MixMatch with distribution alignment and
//! augmentation anchoring.
//!
//! For a labelled batch (strongly augmented) and an unlabelled batch seen through one weak
//! view $\tilde u_b$ and $K$ strong views $\hat u_{b,k}$:
//!
//! 1. $q_b = \mathrm{Sharpen}(\mathrm{Normalize}(p(y \mid \tilde u_b) \cdot p(y) / \tilde p(y)),
//!    T)$ — the weak view is the anchor, aligned by [`DistributionAlignment`] over a window of
//!    128 batches;
//! 2. every strong view gets the anchor's guess: $\hat U = ((\hat u_{b,k}, q_b))$, plus the weak
//!    view itself as SSLH does (`include_weak_in_mix`; Algorithm 1 of the paper lists only the
//!    strong views);
//! 3. $X', U'$ by the MixMatch shuffle-and-mixup with $\lambda' = \max(\lambda, 1-\lambda)$;
//! 4. $\hat U_1 = ((\hat u_{b,1}, q_b))$, the first strong view unmixed;
//! 5. $L = L_X + w(\lambda_u L_U + \lambda_{u1} L_{U1})$, all soft cross-entropies, with
//!    $\lambda_u = 1.5$, $\lambda_{u1} = 0.5$ and $w$ a ramp-up factor. The self-supervised
//!    rotation loss is left to the caller (it needs a rotation head).

use ndarray::{Array, Array1, Array2, ArrayView, ArrayView1, ArrayView2, Dimension, RemoveAxis};
use rand::Rng;
use tessera_augment::{LambdaScope, Mixup};
use tessera_core::RejectInput;

use crate::alignment::DistributionAlignment;
use crate::mixmatch::{
    check_labelled, check_views, checked_loss, checked_mixup, mix_with_guesses, mixed_losses,
    SoftTargetLoss,
};
use crate::sharpen::sharpen_unchecked;
use crate::softmax::softmax_unchecked;
use crate::{check, Error, Float, Result};

/// ReMixMatch hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReMixMatchConfig {
    /// Beta concentration $\alpha > 0$ of mixup (0.75).
    pub alpha: f64,
    /// Sharpening temperature $T > 0$ (0.5).
    pub temperature: f64,
    /// Weight $\lambda_u \ge 0$ of the mixed unlabelled loss (1.5).
    pub lambda_u: f64,
    /// Weight $\lambda_{u1} \ge 0$ of the unmixed first-strong-view loss (0.5).
    pub lambda_u1: f64,
    /// Distribution-alignment window in batches (128).
    pub history: usize,
    /// The loss on $U'$ (soft cross-entropy).
    pub unlabelled_loss: SoftTargetLoss,
    /// Put the weak view into $\hat U$ too (SSLH: true).
    pub include_weak_in_mix: bool,
    /// One $\lambda$ per item or per batch.
    pub lambda_scope: LambdaScope,
}

impl Default for ReMixMatchConfig {
    fn default() -> Self {
        ReMixMatchConfig {
            alpha: 0.75,
            temperature: 0.5,
            lambda_u: 1.5,
            lambda_u1: 0.5,
            history: 128,
            unlabelled_loss: SoftTargetLoss::SoftCrossEntropy,
            include_weak_in_mix: true,
            lambda_scope: LambdaScope::PerItem,
        }
    }
}

/// A checked ReMixMatch recipe with its distribution-alignment state.
#[derive(Debug, Clone)]
pub struct ReMixMatch<F> {
    config: ReMixMatchConfig,
    mixup: Mixup,
    alignment: DistributionAlignment<F>,
}

/// One ReMixMatch training batch.
#[derive(Debug, Clone)]
pub struct ReMixMatchBatch<F, D: Dimension> {
    /// $X'$: mixed labelled inputs.
    pub labelled_inputs: Array<F, D>,
    /// Targets of $X'$.
    pub labelled_targets: Array2<F>,
    /// $U'$: mixed unlabelled inputs, view-major (weak view first when included, then the
    /// strong views), $B_u$ rows per view.
    pub unlabelled_inputs: Array<F, D>,
    /// Targets of $U'$.
    pub unlabelled_targets: Array2<F>,
    /// $\hat U_1$ inputs: the first strong view, unmixed.
    pub strong_inputs: Array<F, D>,
    /// The guesses $q$ (targets of $\hat U_1$), `(B_u, C)`.
    pub guesses: Array2<F>,
    /// The aligned weak-view predictions before sharpening.
    pub aligned: Array2<F>,
    /// $W_i = \mathrm{Concat}(\hat X, \hat U)_{\pi(i)}$ with $\pi$ = `permutation`.
    pub permutation: Vec<usize>,
    /// $\lambda'$ of every row of $X'$.
    pub labelled_lambdas: Array1<F>,
    /// $\lambda'$ of every row of $U'$.
    pub unlabelled_lambdas: Array1<F>,
}

/// The ReMixMatch loss of one step, its parts and its gradients.
#[derive(Debug, Clone, PartialEq)]
pub struct ReMixMatchLoss<F> {
    /// $L_X + w(\lambda_u L_U + \lambda_{u1} L_{U1})$.
    pub value: F,
    /// $L_X$.
    pub supervised: F,
    /// $L_U$ (before weighting).
    pub unlabelled: F,
    /// $L_{U1}$ (before weighting).
    pub strong: F,
    /// $\partial L/\partial z$ of the logits on $X'$.
    pub grad_labelled: Array2<F>,
    /// $\partial L/\partial z$ of the logits on $U'$ (weighted).
    pub grad_unlabelled: Array2<F>,
    /// $\partial L/\partial z$ of the logits on $\hat U_1$ (weighted).
    pub grad_strong: Array2<F>,
}

impl<F: Float> ReMixMatch<F> {
    /// A recipe over `classes` classes whose labelled marginal $p(y)$ is the running mean of
    /// the labelled targets (SSLH).
    pub fn new(config: ReMixMatchConfig, classes: usize) -> Result<Self> {
        let alignment = DistributionAlignment::new(classes, config.history)?;
        Self::with_alignment(config, alignment)
    }

    /// A recipe aligning towards a known labelled class distribution (the paper).
    pub fn with_labelled_marginal(
        config: ReMixMatchConfig,
        marginal: ArrayView1<F>,
    ) -> Result<Self> {
        let alignment = DistributionAlignment::with_labelled_marginal(marginal, config.history)?;
        Self::with_alignment(config, alignment)
    }

    fn with_alignment(
        config: ReMixMatchConfig,
        alignment: DistributionAlignment<F>,
    ) -> Result<Self> {
        let mixup = checked_mixup(
            config.alpha,
            config.temperature,
            &[
                ("lambda_u", config.lambda_u),
                ("lambda_u1", config.lambda_u1),
            ],
            config.lambda_scope,
        )?;
        Ok(ReMixMatch {
            config,
            mixup,
            alignment,
        })
    }

    /// The configuration this recipe was built from.
    pub fn config(&self) -> &ReMixMatchConfig {
        &self.config
    }

    /// The distribution-alignment state.
    pub fn alignment(&self) -> &DistributionAlignment<F> {
        &self.alignment
    }

    /// Builds one batch and advances the alignment window (labelled targets and weak-view
    /// predictions are added first, then the predictions are aligned, as in SSLH).
    ///
    /// `weak_logits` are the model's logits on `weak_inputs` (constants). Randomness (the
    /// shuffle, then the $\lambda$ of $X'$, then of $U'$) comes from `rng`. Errors when `K = 0`
    /// strong views, shapes disagree, a target row is not a distribution, or a value is
    /// non-finite; on error the alignment window is unchanged.
    pub fn build_batch<D: RemoveAxis, R: Rng + ?Sized>(
        &mut self,
        labelled_inputs: ArrayView<F, D>,
        labelled_targets: ArrayView2<F>,
        weak_inputs: ArrayView<F, D>,
        strong_views: &[ArrayView<F, D>],
        weak_logits: ArrayView2<F>,
        rng: &mut R,
    ) -> Result<ReMixMatchBatch<F, D>> {
        let classes = check_labelled(&labelled_inputs, &labelled_targets)?;
        check_views(
            &labelled_inputs,
            std::slice::from_ref(&weak_inputs),
            "weak_inputs",
        )?;
        check_views(&labelled_inputs, strong_views, "strong_views")?;
        let unlabelled_batch = weak_inputs.shape()[0];
        check::same_shape(
            "strong_views",
            &strong_views[0],
            weak_inputs.shape(),
            "the shape of weak_inputs",
        )?;
        check::same_shape(
            "weak_logits",
            &weak_logits,
            &[unlabelled_batch, classes],
            "(unlabelled batch, classes of labelled_targets)",
        )?;
        check::logits("weak_logits", &weak_logits)?;
        if classes != self.alignment.classes() {
            return Err(Error::shape(
                "labelled_targets",
                format!("{} classes (the recipe's)", self.alignment.classes()),
                labelled_targets.shape(),
            ));
        }
        let weak_probabilities = softmax_unchecked(weak_logits);
        // The window only advances once the whole batch is built.
        let mut alignment = self.alignment.clone();
        let aligned = alignment.observe_and_align(labelled_targets, weak_probabilities.view())?;
        let guesses = sharpen_unchecked(aligned.view(), self.config.temperature);

        let mut parts: Vec<ArrayView<F, D>> = Vec::with_capacity(strong_views.len() + 1);
        if self.config.include_weak_in_mix {
            parts.push(weak_inputs.view());
        }
        parts.extend(strong_views.iter().map(|v| v.view()));
        let mixed = mix_with_guesses(
            &self.mixup,
            labelled_inputs,
            labelled_targets,
            (parts.as_slice(), "strong_views"),
            guesses.view(),
            rng,
        )?;
        self.alignment = alignment;
        Ok(ReMixMatchBatch {
            labelled_inputs: mixed.labelled_inputs,
            labelled_targets: mixed.labelled_targets,
            unlabelled_inputs: mixed.unlabelled_inputs,
            unlabelled_targets: mixed.unlabelled_targets,
            strong_inputs: strong_views[0].to_owned(),
            guesses,
            aligned,
            permutation: mixed.permutation,
            labelled_lambdas: mixed.labelled_lambdas,
            unlabelled_lambdas: mixed.unlabelled_lambdas,
        })
    }

    /// $L = L_X + w(\lambda_u L_U + \lambda_{u1} L_{U1})$ from the model's logits on
    /// `batch.labelled_inputs`, `batch.unlabelled_inputs` and `batch.strong_inputs`;
    /// `ramp = w ≥ 0`.
    pub fn loss<D: Dimension>(
        &self,
        batch: &ReMixMatchBatch<F, D>,
        labelled_logits: ArrayView2<F>,
        unlabelled_logits: ArrayView2<F>,
        strong_logits: ArrayView2<F>,
        ramp: f64,
    ) -> Result<ReMixMatchLoss<F>> {
        let (supervised, unlabelled) = mixed_losses(
            ramp,
            self.config.unlabelled_loss,
            (labelled_logits, batch.labelled_targets.view()),
            (unlabelled_logits, batch.unlabelled_targets.view()),
        )?;
        let strong = checked_loss(
            SoftTargetLoss::SoftCrossEntropy,
            strong_logits,
            batch.guesses.view(),
            "strong_logits",
        )?;
        let weight_u = F::from_f64_rounded(ramp * self.config.lambda_u);
        let weight_u1 = F::from_f64_rounded(ramp * self.config.lambda_u1);
        Ok(ReMixMatchLoss {
            value: supervised.value + weight_u * unlabelled.value + weight_u1 * strong.value,
            supervised: supervised.value,
            unlabelled: unlabelled.value,
            strong: strong.value,
            grad_labelled: supervised.grad,
            grad_unlabelled: unlabelled.grad * weight_u,
            grad_strong: strong.grad * weight_u1,
        })
    }
}
