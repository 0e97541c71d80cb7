//! CutMix (Yun et al., 2019): paste a box of the partner into each item.
//!
//! $\lambda \sim \mathrm{Beta}(\alpha, \alpha)$; a box of side ratio $\sqrt{1-\lambda}$ centred at a
//! uniform position is clipped to the image, and the targets are mixed with the *actual*
//! share of the item that survives: $\lambda_{\text{adj}} = 1 - \frac{|\text{box}|}{H W}$.

use std::ops::Range;
use tessera_core::RejectInput;

use ndarray::{Array, Array1, ArrayView, ArrayView2, Axis, Dimension, IxDyn, Slice, Zip};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::{Beta, Distribution};

use crate::check;
use crate::mixup::LambdaScope;
use crate::region::last_two_axes_mut;
use crate::{Error, Float, Result};

/// A rectangle over the last two axes (rows × columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxRegion {
    /// Rows (second-to-last axis) covered.
    pub rows: Range<usize>,
    /// Columns (last axis) covered.
    pub cols: Range<usize>,
}

impl BoxRegion {
    /// Number of cells covered.
    pub fn area(&self) -> usize {
        self.rows.len() * self.cols.len()
    }
}

/// A checked CutMix configuration.
#[derive(Debug, Clone)]
pub struct CutMix {
    alpha: f64,
    scope: LambdaScope,
    beta: Beta<f64>,
}

/// Result of a CutMix: mixed inputs and targets, the *actual* λ of each item (the share of
/// the item left visible), the partner of each item and its box.
#[derive(Debug, Clone)]
pub struct CutMixed<F, D: Dimension> {
    /// Inputs with the partner's box pasted in.
    pub inputs: Array<F, D>,
    /// `λ_adj·y_i + (1 − λ_adj)·y_partner`.
    pub targets: ndarray::Array2<F>,
    /// The adjusted λ of every item: `1 − box area / (H·W)`.
    pub lambdas: Array1<F>,
    /// Item `i` received a box from item `permutation[i]` of the second operand.
    pub permutation: Vec<usize>,
    /// The box pasted into each item.
    pub boxes: Vec<BoxRegion>,
}

impl CutMix {
    /// Checks `alpha > 0` (finite). With [`LambdaScope::PerBatch`] one box is shared by the
    /// batch (the reference implementation); with [`LambdaScope::PerItem`] each item gets its own.
    pub fn new(alpha: f64, scope: LambdaScope) -> Result<Self> {
        check::positive("alpha", alpha)?;
        let beta = Beta::new(alpha, alpha)
            .map_err(|e| Error::invalid("alpha", alpha, format!("Beta(alpha, alpha): {e}")))?;
        Ok(CutMix { alpha, scope, beta })
    }

    /// The Beta concentration $\alpha$.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// Samples a box on a `rows × cols` grid: side ratio $\sqrt{1-\lambda}$, centre uniform,
    /// clipped to the grid.
    ///
    /// # Errors
    /// An empty grid (`rows == 0` or `cols == 0`).
    pub fn sample_box<R: Rng + ?Sized>(
        &self,
        rows: usize,
        cols: usize,
        rng: &mut R,
    ) -> Result<BoxRegion> {
        check::positive_size("rows", rows)?;
        check::positive_size("cols", cols)?;
        let lambda = self.beta.sample(rng);
        let ratio = (1.0 - lambda).max(0.0).sqrt();
        let cut_rows = (rows as f64 * ratio).floor() as usize;
        let cut_cols = (cols as f64 * ratio).floor() as usize;
        let centre_row = rng.random_range(0..rows);
        let centre_col = rng.random_range(0..cols);
        let clip = |centre: usize, cut: usize, n: usize| {
            let start = centre.saturating_sub(cut / 2);
            let end = (centre + cut / 2).min(n);
            start..end.max(start)
        };
        Ok(BoxRegion {
            rows: clip(centre_row, cut_rows, rows),
            cols: clip(centre_col, cut_cols, cols),
        })
    }

    /// Pastes a box of item `i` of `b` into item `i` of `a` (first axis = batch, the box spans
    /// the last two axes, so rank ≥ 3: `(N, H, W)`, `(N, C, H, W)`, ...).
    pub fn mix_with<F: Float, D: Dimension, R: Rng + ?Sized>(
        &self,
        inputs_a: ArrayView<F, D>,
        targets_a: ArrayView2<F>,
        inputs_b: ArrayView<F, D>,
        targets_b: ArrayView2<F>,
        rng: &mut R,
    ) -> Result<CutMixed<F, D>> {
        let batch = self.check(&inputs_a, &targets_a, &inputs_b, &targets_b)?;
        self.mix_indexed(
            inputs_a.into_dyn(),
            targets_a,
            inputs_b.into_dyn(),
            targets_b,
            (0..batch).collect(),
            rng,
        )
    }

    /// Classic CutMix: pastes boxes from a random permutation of the batch itself.
    /// The permutation is drawn first, then the boxes.
    pub fn mix_batch<F: Float, D: Dimension, R: Rng + ?Sized>(
        &self,
        inputs: ArrayView<F, D>,
        targets: ArrayView2<F>,
        rng: &mut R,
    ) -> Result<CutMixed<F, D>> {
        let batch = self.check(&inputs, &targets, &inputs, &targets)?;
        let mut permutation: Vec<usize> = (0..batch).collect();
        permutation.shuffle(rng);
        self.mix_indexed(
            inputs.view().into_dyn(),
            targets,
            inputs.view().into_dyn(),
            targets,
            permutation,
            rng,
        )
    }

    fn check<F: Float, D: Dimension>(
        &self,
        inputs_a: &ArrayView<F, D>,
        targets_a: &ArrayView2<F>,
        inputs_b: &ArrayView<F, D>,
        targets_b: &ArrayView2<F>,
    ) -> Result<usize> {
        if inputs_a.ndim() < 3 {
            return Err(Error::shape(
                "inputs_a",
                "rank >= 3: (batch, ..., rows, cols)",
                inputs_a.shape(),
            ));
        }
        let shape = inputs_a.shape();
        if shape[shape.len() - 1] == 0 || shape[shape.len() - 2] == 0 {
            return Err(Error::shape("inputs_a", "non-empty rows and cols", shape));
        }
        check::pair_batch(inputs_a, targets_a, inputs_b, targets_b)
    }

    fn mix_indexed<F: Float, D: Dimension, R: Rng + ?Sized>(
        &self,
        inputs_a: ArrayView<F, IxDyn>,
        targets_a: ArrayView2<F>,
        inputs_b: ArrayView<F, IxDyn>,
        targets_b: ArrayView2<F>,
        permutation: Vec<usize>,
        rng: &mut R,
    ) -> Result<CutMixed<F, D>> {
        let shape = inputs_a.shape();
        let (rows, cols) = (shape[shape.len() - 2], shape[shape.len() - 1]);
        let batch = shape[0];
        let boxes: Vec<BoxRegion> = match self.scope {
            LambdaScope::PerBatch => vec![self.sample_box(rows, cols, rng)?; batch],
            LambdaScope::PerItem => (0..batch)
                .map(|_| self.sample_box(rows, cols, rng))
                .collect::<Result<_>>()?,
        };
        let total = (rows * cols) as f64;
        let lambdas: Array1<F> = boxes
            .iter()
            .map(|b| F::from_f64_rounded(1.0 - b.area() as f64 / total))
            .collect();
        let mut inputs = inputs_a.to_owned();
        for (i, (region, &partner)) in boxes.iter().zip(&permutation).enumerate() {
            let source = inputs_b.index_axis(Axis(0), partner);
            let last = source.ndim() - 1;
            let source_box = source
                .slice_axis(Axis(last - 1), Slice::from(region.rows.clone()))
                .slice_axis(Axis(last), Slice::from(region.cols.clone()))
                .to_owned();
            last_two_axes_mut(
                inputs.index_axis_mut(Axis(0), i),
                region.rows.clone(),
                region.cols.clone(),
            )
            .assign(&source_box);
        }
        let partner_targets = targets_b.select(Axis(0), &permutation);
        let mut targets = targets_a.to_owned();
        Zip::from(targets.rows_mut())
            .and(partner_targets.rows())
            .and(&lambdas)
            .for_each(|mut row, other, &lambda| {
                Zip::from(&mut row)
                    .and(&other)
                    .for_each(|t, &o| *t = lambda * *t + (F::one() - lambda) * o);
            });
        let shape = inputs.shape().to_vec();
        let inputs = inputs
            .into_dimensionality::<D>()
            .map_err(|_| Error::shape("inputs", "the rank of the input type", shape))?;
        Ok(CutMixed {
            inputs,
            targets,
            lambdas,
            permutation,
            boxes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::{Array2, Array4};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn targets_follow_the_actual_box_area() {
        let cutmix = CutMix::new(1.0, LambdaScope::PerItem).unwrap();
        let a = Array4::<f64>::ones((6, 2, 9, 13));
        let b = Array4::<f64>::zeros((6, 2, 9, 13));
        let ya = Array2::from_shape_fn((6, 2), |(_, j)| if j == 0 { 1.0 } else { 0.0 });
        let yb = Array2::from_shape_fn((6, 2), |(_, j)| if j == 1 { 1.0 } else { 0.0 });
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mixed = cutmix
            .mix_with(a.view(), ya.view(), b.view(), yb.view(), &mut rng)
            .unwrap();
        for i in 0..6 {
            // The share of ones left per channel is exactly λ_adj.
            let kept = mixed.inputs.index_axis(Axis(0), i).sum() / (2.0 * 9.0 * 13.0);
            assert_abs_diff_eq!(kept, mixed.lambdas[i], epsilon = 1e-12);
            assert_abs_diff_eq!(mixed.targets[[i, 0]], kept, epsilon = 1e-12);
            assert_abs_diff_eq!(mixed.targets.row(i).sum(), 1.0, epsilon = 1e-12);
            let region = &mixed.boxes[i];
            assert!(region.rows.end <= 9 && region.cols.end <= 13);
        }
    }

    #[test]
    fn rejects_low_rank_and_bad_alpha() {
        assert!(CutMix::new(0.0, LambdaScope::PerBatch).is_err());
        let cutmix = CutMix::new(1.0, LambdaScope::PerBatch).unwrap();
        let x = Array2::<f32>::zeros((4, 5));
        let y = Array2::<f32>::zeros((4, 2));
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let err = cutmix.mix_batch(x.view(), y.view(), &mut rng).unwrap_err();
        assert!(err.to_string().contains("inputs_a"), "{err}");
    }
}
