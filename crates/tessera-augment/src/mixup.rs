//! mixup (Zhang et al., 2018) with the MixMatch λ rule (Berthelot et al., 2019).
//!
//! $\lambda \sim \mathrm{Beta}(\alpha, \alpha)$, optionally $\lambda' = \max(\lambda, 1-\lambda)$,
//! then $\tilde x_i = \lambda_i x_i + (1-\lambda_i) x'_i$ and
//! $\tilde y_i = \lambda_i y_i + (1-\lambda_i) y'_i$.

use ndarray::{
    Array, Array1, Array2, ArrayView, ArrayView1, ArrayView2, ArrayViewD, Axis, Dimension, IxDyn,
    Zip,
};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::{Beta, Distribution};
use tessera_core::RejectInput;

use crate::check;
use crate::{Error, Float, Result};

/// How the sampled $\lambda$ is post-processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LambdaRule {
    /// Use $\lambda \sim \mathrm{Beta}(\alpha, \alpha)$ as drawn (original mixup).
    Plain,
    /// $\lambda' = \max(\lambda, 1-\lambda) \ge 0.5$, so the mixed item stays closer to its
    /// first operand (MixMatch, ReMixMatch).
    MixMatch,
}

/// Whether one $\lambda$ is shared by the whole batch or drawn per item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LambdaScope {
    /// One $\lambda$ for the batch (the original mixup code).
    PerBatch,
    /// An independent $\lambda_i$ per item (MixMatch, SSLH).
    PerItem,
}

/// A checked mixup configuration: $\mathrm{Beta}(\alpha, \alpha)$, rule and scope.
#[derive(Debug, Clone)]
pub struct Mixup {
    alpha: f64,
    rule: LambdaRule,
    scope: LambdaScope,
    beta: Beta<f64>,
}

/// The result of a mixup: mixed inputs and soft targets, the $\lambda_i$ used for every item
/// and the partner index of every item (`inputs_b[permutation[i]]` for [`Mixup::mix_batch`],
/// the identity for [`Mixup::mix_with`]).
#[derive(Debug, Clone)]
pub struct Mixed<F, D: Dimension> {
    /// $\lambda_i a_i + (1-\lambda_i) b_i$, same shape as the inputs.
    pub inputs: Array<F, D>,
    /// $\lambda_i y_i + (1-\lambda_i) y'_i$, shape `(batch, classes)`.
    pub targets: Array2<F>,
    /// The $\lambda_i$ of every item (after the [`LambdaRule`]).
    pub lambdas: Array1<F>,
    /// Item `i` was mixed with item `permutation[i]` of the second operand.
    pub permutation: Vec<usize>,
}

impl Mixup {
    /// Checks `alpha > 0` (finite) and builds the Beta distribution.
    pub fn new(alpha: f64, rule: LambdaRule, scope: LambdaScope) -> Result<Self> {
        check::positive("alpha", alpha)?;
        let beta = Beta::new(alpha, alpha)
            .map_err(|e| Error::invalid("alpha", alpha, format!("Beta(alpha, alpha): {e}")))?;
        Ok(Mixup {
            alpha,
            rule,
            scope,
            beta,
        })
    }

    /// The Beta concentration $\alpha$.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The λ post-processing rule.
    pub fn rule(&self) -> LambdaRule {
        self.rule
    }

    /// Per-batch or per-item λ.
    pub fn scope(&self) -> LambdaScope {
        self.scope
    }

    /// Draws one $\lambda$ and applies the [`LambdaRule`].
    pub fn sample_lambda<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let lambda = self.beta.sample(rng);
        match self.rule {
            LambdaRule::Plain => lambda,
            LambdaRule::MixMatch => lambda.max(1.0 - lambda),
        }
    }

    /// Draws the λ of `batch` items: one shared value ([`LambdaScope::PerBatch`]) or one per
    /// item ([`LambdaScope::PerItem`]).
    pub fn sample_lambdas<F: Float, R: Rng + ?Sized>(
        &self,
        batch: usize,
        rng: &mut R,
    ) -> Array1<F> {
        match self.scope {
            LambdaScope::PerBatch => {
                Array1::from_elem(batch, F::from_f64_rounded(self.sample_lambda(rng)))
            }
            LambdaScope::PerItem => (0..batch)
                .map(|_| F::from_f64_rounded(self.sample_lambda(rng)))
                .collect(),
        }
    }

    /// Mixes item `i` of `a` with item `i` of `b` (first axis = batch, any rank ≥ 1):
    /// `out = λ_i·a_i + (1−λ_i)·b_i`; targets likewise (rows are soft targets).
    ///
    /// Errors when the shapes differ, the batch is empty, the targets are not
    /// `(batch, classes)`, or any value is non-finite.
    pub fn mix_with<F: Float, D: Dimension, R: Rng + ?Sized>(
        &self,
        inputs_a: ArrayView<F, D>,
        targets_a: ArrayView2<F>,
        inputs_b: ArrayView<F, D>,
        targets_b: ArrayView2<F>,
        rng: &mut R,
    ) -> Result<Mixed<F, D>> {
        let batch = check::pair_batch(&inputs_a, &targets_a, &inputs_b, &targets_b)?;
        let lambdas = self.sample_lambdas::<F, R>(batch, rng);
        let permutation: Vec<usize> = (0..batch).collect();
        let (inputs, targets) = mix_rows(
            inputs_a.into_dyn(),
            targets_a,
            inputs_b.into_dyn(),
            targets_b,
            &permutation,
            lambdas.view(),
        );
        Ok(Mixed {
            inputs: into_dim::<F, D>(inputs)?,
            targets,
            lambdas,
            permutation,
        })
    }

    /// Classic mixup: mixes the batch with a random permutation of itself.
    ///
    /// The permutation is drawn first, then the λ, both from `rng`.
    pub fn mix_batch<F: Float, D: Dimension, R: Rng + ?Sized>(
        &self,
        inputs: ArrayView<F, D>,
        targets: ArrayView2<F>,
        rng: &mut R,
    ) -> Result<Mixed<F, D>> {
        let batch = check::pair_batch(&inputs, &targets, &inputs, &targets)?;
        let mut permutation: Vec<usize> = (0..batch).collect();
        permutation.shuffle(rng);
        let lambdas = self.sample_lambdas::<F, R>(batch, rng);
        let inputs_dyn = inputs.into_dyn();
        let (mixed_inputs, mixed_targets) = mix_rows(
            inputs_dyn.view(),
            targets,
            inputs_dyn.view(),
            targets,
            &permutation,
            lambdas.view(),
        );
        Ok(Mixed {
            inputs: into_dim::<F, D>(mixed_inputs)?,
            targets: mixed_targets,
            lambdas,
            permutation,
        })
    }
}

/// Mixes with caller-chosen λ: `out_i = λ_i·a_i + (1−λ_i)·b_i` for inputs and targets.
///
/// The deterministic core of [`Mixup`], for recipes that draw λ themselves. Every `λ_i` must
/// lie in `[0, 1]`.
pub fn mix_items<F: Float, D: Dimension>(
    inputs_a: ArrayView<F, D>,
    targets_a: ArrayView2<F>,
    inputs_b: ArrayView<F, D>,
    targets_b: ArrayView2<F>,
    lambdas: ArrayView1<F>,
) -> Result<(Array<F, D>, Array2<F>)> {
    let batch = check::pair_batch(&inputs_a, &targets_a, &inputs_b, &targets_b)?;
    if lambdas.len() != batch {
        return Err(Error::shape(
            "lambdas",
            format!("[{batch}] (one per item)"),
            lambdas.shape(),
        ));
    }
    if let Some(&bad) = lambdas
        .iter()
        .find(|l| !(l.is_finite() && **l >= F::zero() && **l <= F::one()))
    {
        return Err(Error::invalid("lambdas", bad, "every λ must lie in [0, 1]"));
    }
    let identity: Vec<usize> = (0..batch).collect();
    let (inputs, targets) = mix_rows(
        inputs_a.into_dyn(),
        targets_a,
        inputs_b.into_dyn(),
        targets_b,
        &identity,
        lambdas,
    );
    Ok((into_dim::<F, D>(inputs)?, targets))
}

/// The convex combination itself: item `i` of `a` with item `partners[i]` of `b`, read in
/// place (no gathered copy of the partner batch). Shapes were checked by the caller.
fn mix_rows<F: Float>(
    inputs_a: ArrayViewD<F>,
    targets_a: ArrayView2<F>,
    inputs_b: ArrayViewD<F>,
    targets_b: ArrayView2<F>,
    partners: &[usize],
    lambdas: ArrayView1<F>,
) -> (Array<F, IxDyn>, Array2<F>) {
    let mut inputs = Array::<F, IxDyn>::zeros(inputs_a.raw_dim());
    Zip::from(inputs.axis_iter_mut(Axis(0)))
        .and(inputs_a.axis_iter(Axis(0)))
        .and(&ArrayView1::from(partners))
        .and(lambdas)
        .par_for_each(|out, a, &partner, &lambda| {
            mix_into(out, a, inputs_b.index_axis(Axis(0), partner), lambda);
        });
    let mut targets = Array2::<F>::zeros(targets_a.raw_dim());
    Zip::from(targets.rows_mut())
        .and(targets_a.rows())
        .and(&ArrayView1::from(partners))
        .and(lambdas)
        .for_each(|out, a, &partner, &lambda| {
            mix_into(out, a, targets_b.row(partner), lambda);
        });
    (inputs, targets)
}

/// `out = λ·a + (1−λ)·b`, on plain slices when all three are contiguous in the same order
/// (the common case, which the compiler vectorises), through `Zip` otherwise.
fn mix_into<F: Float, D: Dimension>(
    mut out: ndarray::ArrayViewMut<F, D>,
    a: ArrayView<F, D>,
    b: ArrayView<F, D>,
    lambda: F,
) {
    let other = F::one() - lambda;
    if let (Some(o), Some(x), Some(y)) = (out.as_slice_mut(), a.as_slice(), b.as_slice()) {
        for ((o, &x), &y) in o.iter_mut().zip(x).zip(y) {
            *o = lambda * x + other * y;
        }
        return;
    }
    Zip::from(out)
        .and(a)
        .and(b)
        .for_each(|o, &x, &y| *o = lambda * x + other * y);
}

fn into_dim<F: Float, D: Dimension>(array: Array<F, IxDyn>) -> Result<Array<F, D>> {
    let shape = array.shape().to_vec();
    array
        .into_dimensionality::<D>()
        .map_err(|_| Error::shape("inputs", "the rank of the input type", shape))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::InputError;
    use approx::assert_abs_diff_eq;
    use ndarray::{array, Array3};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn rejects_bad_alpha() {
        for alpha in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = Mixup::new(alpha, LambdaRule::Plain, LambdaScope::PerItem).unwrap_err();
            assert!(err.to_string().contains("alpha"), "{err}");
        }
    }

    #[test]
    fn mixes_items_with_their_own_lambda() {
        let mixup = Mixup::new(0.75, LambdaRule::MixMatch, LambdaScope::PerItem).unwrap();
        let a = Array3::<f64>::from_shape_fn((4, 2, 3), |(i, j, k)| (i * 6 + j * 3 + k) as f64);
        let b = a.mapv(|v| -v);
        let ya = array![[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]];
        let yb = array![[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mixed = mixup
            .mix_with(a.view(), ya.view(), b.view(), yb.view(), &mut rng)
            .unwrap();
        assert_eq!(mixed.permutation, vec![0, 1, 2, 3]);
        for i in 0..4 {
            let l = mixed.lambdas[i];
            assert!((0.5..=1.0).contains(&l));
            for (m, x) in mixed
                .inputs
                .index_axis(Axis(0), i)
                .iter()
                .zip(a.index_axis(Axis(0), i))
            {
                assert_abs_diff_eq!(*m, (2.0 * l - 1.0) * x, epsilon = 1e-12);
            }
            assert_abs_diff_eq!(mixed.targets.row(i).sum(), 1.0, epsilon = 1e-12);
        }
        // Per-item λ really differ.
        assert!(mixed.lambdas.iter().any(|&l| l != mixed.lambdas[0]));
    }

    #[test]
    fn per_batch_shares_lambda_and_batch_uses_a_permutation() {
        let mixup = Mixup::new(0.4, LambdaRule::Plain, LambdaScope::PerBatch).unwrap();
        let x = Array1::<f32>::from_iter((0..16).map(|v| v as f32));
        let y = Array2::<f32>::from_shape_fn((16, 16), |(i, j)| if i == j { 1.0 } else { 0.0 });
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mixed = mixup.mix_batch(x.view(), y.view(), &mut rng).unwrap();
        let l = mixed.lambdas[0];
        assert!(mixed.lambdas.iter().all(|&v| v == l));
        let mut sorted = mixed.permutation.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..16).collect::<Vec<_>>());
        for i in 0..16 {
            let p = mixed.permutation[i];
            let expected = l * x[i] + (1.0 - l) * x[p];
            assert_abs_diff_eq!(mixed.inputs[i], expected, epsilon = 1e-5);
            assert_abs_diff_eq!(
                mixed.targets[[i, p]],
                if p == i { 1.0 } else { 1.0 - l },
                epsilon = 1e-6
            );
        }
    }

    #[test]
    fn shape_and_value_errors_name_the_parameter() {
        let mixup = Mixup::new(1.0, LambdaRule::Plain, LambdaScope::PerItem).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let a = Array2::<f64>::zeros((3, 4));
        let b = Array2::<f64>::zeros((2, 4));
        let y = Array2::<f64>::zeros((3, 2));
        let err = mixup
            .mix_with(a.view(), y.view(), b.view(), y.view(), &mut rng)
            .unwrap_err();
        assert!(err.to_string().contains("inputs_b"), "{err}");
        let y2 = Array2::<f64>::zeros((2, 2));
        let err = mixup
            .mix_with(a.view(), y2.view(), a.view(), y2.view(), &mut rng)
            .unwrap_err();
        assert!(err.to_string().contains("targets_a"), "{err}");
        let mut nan = a.clone();
        nan[[1, 2]] = f64::NAN;
        let err = mixup.mix_batch(nan.view(), y.view(), &mut rng).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Input(InputError::NonFinite {
                    name: "inputs_a",
                    index: 6,
                    ..
                })
            ),
            "{err}"
        );
        let empty = Array2::<f64>::zeros((0, 4));
        let y0 = Array2::<f64>::zeros((0, 2));
        assert!(mixup.mix_batch(empty.view(), y0.view(), &mut rng).is_err());
        let err = mix_items(
            a.view(),
            y.view(),
            a.view(),
            y.view(),
            array![0.5, 1.5, 0.0].view(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("lambdas"), "{err}");
    }
}
