//! Random masks from a seed (Bernoulli or exact count) and the masking of weights, gradients
//! and optimiser state during training.

use ndarray::{ArrayBase, ArrayViewMut, Dimension};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_core::{check, RejectInput};

use crate::allocation::{LayerDensities, LayerShape};
use crate::error::{Error, Result};
use crate::mask::Mask;

/// How a random mask with density $d$ over $n$ weights is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sampling {
    /// Every weight is kept independently with probability $d$ (Random_Pruning's
    /// `torch.rand(shape) < d`): the count of kept weights is Binomial$(n, d)$.
    Bernoulli,
    /// Exactly $\mathrm{round}(d \cdot n)$ weights are kept, chosen uniformly without
    /// replacement. (RigL keeps $n - \lfloor (1-d) n \rfloor$, which can differ by one.)
    ExactCount,
}

/// Number of kept weights of an exact-count mask: $\mathrm{round}(d \cdot n)$, halves away
/// from zero.
pub fn exact_kept_count(len: usize, density: f64) -> usize {
    ((density * len as f64).round() as usize).min(len)
}

/// The longest mask [`Mask::bernoulli`] and [`Mask::exact_count`] sample (2^31 entries).
pub const MAX_SAMPLED_MASK_LEN: usize = 1 << 31;

impl Mask {
    /// A Bernoulli mask: each of `len` entries kept with probability `density` ∈ (0, 1].
    ///
    /// `len` above [`MAX_SAMPLED_MASK_LEN`] is an error (checked before allocating).
    pub fn bernoulli<R: Rng + ?Sized>(len: usize, density: f64, rng: &mut R) -> Result<Self> {
        check::density("density", density)?;
        check::size_at_most("len", len, MAX_SAMPLED_MASK_LEN)?;
        let keep: Vec<bool> = (0..len).map(|_| rng.random_bool(density)).collect();
        Ok(Mask::from_bools(&keep))
    }

    /// A mask with exactly `round(density · len)` kept entries at uniformly random positions.
    pub fn exact_count<R: Rng + ?Sized>(len: usize, density: f64, rng: &mut R) -> Result<Self> {
        check::density("density", density)?;
        check::size_at_most("len", len, MAX_SAMPLED_MASK_LEN)?;
        Ok(Self::with_kept_count(
            len,
            exact_kept_count(len, density),
            rng,
        ))
    }

    /// A mask with exactly `kept` (≤ `len`, clamped) entries at uniformly random positions.
    pub fn with_kept_count<R: Rng + ?Sized>(len: usize, kept: usize, rng: &mut R) -> Self {
        let kept = kept.min(len);
        // Sample whichever side is smaller so that the cost is O(min(kept, len − kept)).
        if kept <= len / 2 {
            let mut mask = Mask::zeros(len);
            for i in rand::seq::index::sample(rng, len, kept) {
                mask.set(i, true).expect("index sampled below len");
            }
            mask
        } else {
            let mut mask = Mask::ones(len);
            for i in rand::seq::index::sample(rng, len, len - kept) {
                mask.set(i, false).expect("index sampled below len");
            }
            mask
        }
    }

    /// A random mask drawn with `sampling`.
    pub fn random<R: Rng + ?Sized>(
        len: usize,
        density: f64,
        sampling: Sampling,
        rng: &mut R,
    ) -> Result<Self> {
        match sampling {
            Sampling::Bernoulli => Self::bernoulli(len, density, rng),
            Sampling::ExactCount => Self::exact_count(len, density, rng),
        }
    }

    /// Zeroes every pruned entry of an n-dimensional array in place, in its logical
    /// (row-major) order, whatever its memory layout.
    pub fn apply_view<F, D>(&self, mut values: ArrayViewMut<'_, F, D>) -> Result<()>
    where
        F: Copy + num_traits::Zero,
        D: Dimension,
    {
        if values.len() != self.len() {
            return Err(Error::shape(
                "values",
                format!("{} entries", self.len()),
                values.shape(),
            ));
        }
        if let Some(slice) = values.as_slice_mut() {
            return self.apply(slice);
        }
        for (i, v) in values.iter_mut().enumerate() {
            if !self.get(i) {
                *v = F::zero();
            }
        }
        Ok(())
    }

    /// A copy of `values` with the pruned entries zeroed ($w \odot m$).
    pub fn masked<S, F, D>(&self, values: &ArrayBase<S, D>) -> Result<ndarray::Array<F, D>>
    where
        S: ndarray::Data<Elem = F>,
        F: Copy + num_traits::Zero,
        D: Dimension,
    {
        let mut out = values.to_owned();
        self.apply_view(out.view_mut())?;
        Ok(out)
    }

    /// Masks after an optimiser step: always `w ← w ⊙ m`; with
    /// [`MaskPolicy::WEIGHTS_GRADIENTS_AND_STATE`] also the gradient and every optimiser state
    /// buffer (momentum, Adam moments). The reference implementations mask only the weights
    /// ([`MaskPolicy::WEIGHTS_ONLY`]), so pruned weights may carry non-zero momentum.
    pub fn apply_after_step<F: Copy + num_traits::Zero>(
        &self,
        policy: MaskPolicy,
        weights: &mut [F],
        gradient: &mut [F],
        optimiser_state: &mut [&mut [F]],
    ) -> Result<()> {
        // Check every length first so that an error leaves all buffers untouched.
        for (name, len) in [("weights", weights.len()), ("gradient", gradient.len())]
            .into_iter()
            .chain(optimiser_state.iter().map(|s| ("optimiser_state", s.len())))
        {
            if len != self.len() {
                return Err(Error::shape(
                    name,
                    format!("{} entries", self.len()),
                    format!("{len} entries"),
                ));
            }
        }
        self.apply(weights)?;
        if policy.mask_gradients {
            self.apply(gradient)?;
        }
        if policy.mask_optimizer_state {
            for state in optimiser_state.iter_mut() {
                self.apply(state)?;
            }
        }
        Ok(())
    }
}

/// What besides the weights is masked at every training step. The reference code
/// (Random_Pruning, RigL) masks only the weights, after the step: that is the default
/// ([`MaskPolicy::WEIGHTS_ONLY`]). tessera-nn's `MaskSet` takes the same policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MaskPolicy {
    /// Also zero pruned gradient entries (before the optimiser sees them).
    pub mask_gradients: bool,
    /// Also zero pruned entries of the optimiser state (momentum, Adam moments) after the step.
    pub mask_optimizer_state: bool,
}

impl MaskPolicy {
    /// Only the weights, after each step (as the RigL and Random_Pruning code do).
    pub const WEIGHTS_ONLY: Self = Self {
        mask_gradients: false,
        mask_optimizer_state: false,
    };
    /// Weights, gradients and every optimiser state buffer.
    pub const WEIGHTS_GRADIENTS_AND_STATE: Self = Self {
        mask_gradients: true,
        mask_optimizer_state: true,
    };
}

/// One random mask per layer, reproducible from `seed`.
///
/// Layer `l` draws from `ChaCha8Rng::seed_from_u64(seed)` on stream `l`, so a layer's mask
/// does not change when other layers are added, removed or resized.
pub fn sample_masks(
    layers: &[LayerShape],
    densities: &LayerDensities,
    sampling: Sampling,
    seed: u64,
) -> Result<Vec<Mask>> {
    if densities.densities.len() != layers.len() {
        return Err(Error::shape(
            "densities",
            format!("{} layers", layers.len()),
            format!("{} densities", densities.densities.len()),
        ));
    }
    layers
        .iter()
        .zip(&densities.densities)
        .enumerate()
        .map(|(l, (layer, &d))| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(l as u64);
            Mask::random(layer.numel(), d, sampling, &mut rng)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};

    #[test]
    fn exact_count_has_round_d_n_ones() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (len, d) in [(10, 0.25), (10, 0.35), (1000, 0.1), (7, 1.0), (129, 0.9)] {
            let m = Mask::exact_count(len, d, &mut rng).unwrap();
            assert_eq!(m.count_ones(), exact_kept_count(len, d));
        }
        assert_eq!(exact_kept_count(10, 0.25), 3);
        assert_eq!(exact_kept_count(10, 0.35), 4);
    }

    #[test]
    fn seeded_masks_are_reproducible_and_bad_density_errors() {
        let a = Mask::bernoulli(500, 0.3, &mut ChaCha8Rng::seed_from_u64(9)).unwrap();
        let b = Mask::bernoulli(500, 0.3, &mut ChaCha8Rng::seed_from_u64(9)).unwrap();
        let c = Mask::bernoulli(500, 0.3, &mut ChaCha8Rng::seed_from_u64(10)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for bad in [0.0, 1.01, f64::NAN] {
            assert!(Mask::bernoulli(5, bad, &mut rng).is_err());
            assert!(Mask::exact_count(5, bad, &mut rng).is_err());
        }
    }

    #[test]
    fn apply_view_handles_non_contiguous_layout() {
        let mask = Mask::from_bools(&[true, false, false, true, true, false]);
        let base: Array2<f64> = array![[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]];
        // Transposed view: logical order is 1 2 3 4 5 6 though memory order is not.
        let mut t = base.t().to_owned();
        mask.apply_view(t.view_mut()).unwrap();
        assert_eq!(t, array![[1.0, 0.0, 0.0], [4.0, 5.0, 0.0]]);
        let mut base2 = base.clone();
        mask.apply_view(base2.view_mut().reversed_axes()).unwrap();
        assert_eq!(base2, array![[1.0, 4.0], [0.0, 5.0], [0.0, 0.0]]);
        let mut wrong = Array2::<f64>::zeros((2, 2));
        assert!(mask.apply_view(wrong.view_mut()).is_err());
    }

    #[test]
    fn after_step_policies() {
        let mask = Mask::from_bools(&[true, false]);
        let (mut w, mut g, mut m) = ([1.0f32, 2.0], [3.0f32, 4.0], [5.0f32, 6.0]);
        mask.apply_after_step(MaskPolicy::WEIGHTS_ONLY, &mut w, &mut g, &mut [&mut m])
            .unwrap();
        assert_eq!((w, g, m), ([1.0, 0.0], [3.0, 4.0], [5.0, 6.0]));
        mask.apply_after_step(
            MaskPolicy::WEIGHTS_GRADIENTS_AND_STATE,
            &mut w,
            &mut g,
            &mut [&mut m],
        )
        .unwrap();
        assert_eq!((w, g, m), ([1.0, 0.0], [3.0, 0.0], [5.0, 0.0]));
        let mut short = [1.0f32];
        assert!(mask
            .apply_after_step(MaskPolicy::WEIGHTS_ONLY, &mut w, &mut g, &mut [&mut short])
            .is_err());
    }
}
