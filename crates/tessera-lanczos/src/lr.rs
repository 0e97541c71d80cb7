//! Learning-rate rules from curvature (Granziol, Zohren & Roberts, "Learning Rates as a
//! Function of Batch Size: A Random Matrix Theory Approach to Neural Network Training",
//! JMLR 23, 2022).
//!
//! * Gradient descent on a quadratic with curvature `λ_max` diverges for `η > 2/λ_max`.
//! * The Hessian of a mini-batch of size `B` is the full-data Hessian plus a random-matrix
//!   perturbation whose spectral broadening shrinks like `1/B`, so the batch Hessian's
//!   `λ_max(B) ≈ λ_full + c/B` exceeds the full-data one. In the noise-dominated regime
//!   (`c/B ≫ λ_full`) the largest stable SGD step `2/λ_max(B)` therefore grows linearly in
//!   `B`; for adaptive methods (Adam), whose preconditioner divides by the square root of the
//!   gradient second moment, the paper derives a square-root rule.

use crate::error::{Error, Result};
use crate::Float;
use tessera_core::RejectInput;

/// The optimiser family a scaling rule is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptimizerFamily {
    /// SGD (with or without momentum): linear scaling.
    Sgd,
    /// Adam and other adaptive methods: square-root scaling.
    Adam,
}

fn positive<F: Float>(name: &'static str, v: F) -> Result<F> {
    if !v.is_finite() || v <= F::zero() {
        return Err(Error::invalid(name, v, "must be finite and > 0"));
    }
    Ok(v)
}

/// The largest stable gradient-descent step `2/λ_max` (`λ_max > 0`).
///
/// ```
/// assert_eq!(tessera_lanczos::max_stable_sgd_lr(4.0f64).unwrap(), 0.5);
/// ```
pub fn max_stable_sgd_lr<F: Float>(lambda_max: F) -> Result<F> {
    Ok(F::from_f64_rounded(2.0) / positive("lambda_max", lambda_max)?)
}

/// `lr_ref` rescaled by `ratio`: linearly for SGD, by its square root for Adam.
fn scaled_lr<F: Float>(lr_ref: F, ratio: F, optimizer: OptimizerFamily) -> F {
    match optimizer {
        OptimizerFamily::Sgd => lr_ref * ratio,
        OptimizerFamily::Adam => lr_ref * ratio.sqrt(),
    }
}

/// Rescales a learning rate tuned at batch size `batch_ref` to `batch_new`: `η·(B'/B)` for
/// SGD, `η·√(B'/B)` for Adam.
pub fn batch_scaled_lr<F: Float>(
    lr_ref: F,
    batch_ref: usize,
    batch_new: usize,
    optimizer: OptimizerFamily,
) -> Result<F> {
    positive("lr_ref", lr_ref)?;
    for (name, batch) in [("batch_ref", batch_ref), ("batch_new", batch_new)] {
        if batch == 0 {
            return Err(Error::invalid(name, 0, "must be ≥ 1"));
        }
    }
    let ratio = F::from_count(batch_new) / F::from_count(batch_ref);
    Ok(scaled_lr(lr_ref, ratio, optimizer))
}

/// Rescales a learning rate by measured curvature: from a batch Hessian with `λ_ref` (where
/// `lr_ref` was tuned) to one with `λ_new`: `η·λ_ref/λ_new` for SGD, `η·√(λ_ref/λ_new)` for
/// Adam. With `λ ∝ 1/B` this reproduces [`batch_scaled_lr`].
pub fn sharpness_scaled_lr<F: Float>(
    lr_ref: F,
    lambda_ref: F,
    lambda_new: F,
    optimizer: OptimizerFamily,
) -> Result<F> {
    positive("lr_ref", lr_ref)?;
    let ratio = positive("lambda_ref", lambda_ref)? / positive("lambda_new", lambda_new)?;
    Ok(scaled_lr(lr_ref, ratio, optimizer))
}

/// Least-squares fit of `λ_max(B) = λ_full + c·(1/B − 1/N)` to measured batch-Hessian
/// extremal eigenvalues (`N` = dataset size; `None` = ∞), the model of Granziol et al.
#[derive(Debug, Clone, Copy)]
pub struct BatchSharpnessFit<F> {
    /// Extrapolated full-data `λ_max`.
    pub lambda_full: F,
    /// Noise coefficient `c` (≥ 0 when batch Hessians are sharper than the full one).
    pub noise: F,
    /// Dataset size `N`, if given.
    pub dataset_size: Option<usize>,
}

impl<F: Float> BatchSharpnessFit<F> {
    /// Fits the model to `(batch size, λ_max)` pairs (at least two distinct batch sizes).
    pub fn fit(
        batch_sizes: &[usize],
        lambda_max: &[F],
        dataset_size: Option<usize>,
    ) -> Result<Self> {
        if batch_sizes.len() != lambda_max.len() {
            return Err(Error::shape(
                "lambda_max",
                format!("length {}", batch_sizes.len()),
                format!("length {}", lambda_max.len()),
            ));
        }
        if let Some((i, _)) = batch_sizes.iter().enumerate().find(|(_, &b)| b == 0) {
            return Err(Error::invalid(
                "batch_sizes",
                format!("[{i}] = 0"),
                "batch sizes must be ≥ 1",
            ));
        }
        if dataset_size == Some(0) {
            return Err(Error::invalid("dataset_size", 0, "must be ≥ 1"));
        }
        crate::util::check_finite("lambda_max", lambda_max.iter())?;
        let inv_n = dataset_size.map_or(F::zero(), |n| F::one() / F::from_count(n));
        let x: Vec<F> = batch_sizes
            .iter()
            .map(|&b| F::one() / F::from_count(b) - inv_n)
            .collect();
        let count = F::from_count(x.len());
        let mx = x.iter().copied().sum::<F>() / count;
        let my = lambda_max.iter().copied().sum::<F>() / count;
        let sxx: F = x.iter().map(|&v| (v - mx) * (v - mx)).sum();
        if !sxx.is_finite() || sxx <= F::zero() {
            return Err(Error::invalid(
                "batch_sizes",
                format!("{batch_sizes:?}"),
                "at least two distinct batch sizes are needed",
            ));
        }
        let sxy: F = x
            .iter()
            .zip(lambda_max)
            .map(|(&v, &y)| (v - mx) * (y - my))
            .sum();
        let noise = sxy / sxx;
        Ok(Self {
            lambda_full: my - noise * mx,
            noise,
            dataset_size,
        })
    }

    /// Predicted `λ_max` of a batch Hessian at batch size `batch` (≥ 1).
    pub fn predict_lambda_max(&self, batch: usize) -> Result<F> {
        if batch == 0 {
            return Err(Error::invalid("batch", 0, "must be ≥ 1"));
        }
        let inv_n = self
            .dataset_size
            .map_or(F::zero(), |n| F::one() / F::from_count(n));
        Ok(self.lambda_full + self.noise * (F::one() / F::from_count(batch) - inv_n))
    }

    /// Predicted largest stable SGD step `2/λ_max(B)` at batch size `batch`.
    pub fn max_stable_lr(&self, batch: usize) -> Result<F> {
        max_stable_sgd_lr(self.predict_lambda_max(batch)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn rules() {
        assert_abs_diff_eq!(
            batch_scaled_lr(0.1f64, 32, 128, OptimizerFamily::Sgd).unwrap(),
            0.4,
            epsilon = 1e-15
        );
        assert_abs_diff_eq!(
            batch_scaled_lr(0.1f64, 32, 128, OptimizerFamily::Adam).unwrap(),
            0.2,
            epsilon = 1e-15
        );
        assert_abs_diff_eq!(
            sharpness_scaled_lr(0.1f64, 8.0, 2.0, OptimizerFamily::Sgd).unwrap(),
            0.4,
            epsilon = 1e-15
        );
        assert_abs_diff_eq!(
            sharpness_scaled_lr(0.1f64, 8.0, 2.0, OptimizerFamily::Adam).unwrap(),
            0.2,
            epsilon = 1e-15
        );
        assert!(max_stable_sgd_lr(0.0f64)
            .unwrap_err()
            .to_string()
            .contains("lambda_max"));
        assert!(batch_scaled_lr(0.1f64, 0, 1, OptimizerFamily::Sgd).is_err());
        assert!(sharpness_scaled_lr(0.1f64, f64::NAN, 1.0, OptimizerFamily::Sgd).is_err());
    }

    #[test]
    fn fit_recovers_model() {
        let b = [16usize, 32, 64, 128, 256];
        let lam: Vec<f64> = b
            .iter()
            .map(|&x| 3.0 + 40.0 * (1.0 / x as f64 - 1.0 / 1000.0))
            .collect();
        let fit = BatchSharpnessFit::fit(&b, &lam, Some(1000)).unwrap();
        assert_abs_diff_eq!(fit.lambda_full, 3.0, epsilon = 1e-12);
        assert_abs_diff_eq!(fit.noise, 40.0, epsilon = 1e-10);
        assert_abs_diff_eq!(fit.predict_lambda_max(1000).unwrap(), 3.0, epsilon = 1e-12);
        assert_abs_diff_eq!(fit.max_stable_lr(1000).unwrap(), 2.0 / 3.0, epsilon = 1e-12);
        assert!(BatchSharpnessFit::fit(&[8, 8], &[1.0f64, 2.0], None).is_err());
        assert!(BatchSharpnessFit::fit(&[8, 0], &[1.0f64, 2.0], None).is_err());
        assert!(BatchSharpnessFit::fit(&[8], &[1.0f64, 2.0], None).is_err());
    }
}
