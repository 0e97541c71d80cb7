//! Augmentation pools (SSLH): with probability `p`, apply ONE transform chosen uniformly.
//!
//! SSLH wraps its pool in `RandomChoice` and gives every transform the same probability `p`
//! (weak 0.5, strong 1.0): a transform is picked uniformly, then applied with probability
//! `p`. Waveform transforms run before the conversion to a spectrogram, spectrogram
//! transforms after it; the conversion is the caller's (e.g. `tessera-spectro`).

use ndarray::{Array1, Array2, ArrayView1};
use rand::Rng;
use tessera_core::RejectInput;

use crate::check;
use crate::spectrogram::{CutOutSpec, SpecAugment, TimeShift};
use crate::waveform::{AdditiveNoise, Gain, Occlusion, SpeedPerturbation};
use crate::{Error, Float, Result};

/// Where in the audio pipeline a transform acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// On the raw waveform, before the spectrogram.
    Waveform,
    /// On the `(freq, time)` spectrogram.
    Spectrogram,
}

/// One transform of an audio pool.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioAugment {
    /// [`Occlusion`] of the waveform.
    Occlusion(Occlusion),
    /// [`SpeedPerturbation`] of the waveform.
    SpeedPerturbation(SpeedPerturbation),
    /// [`AdditiveNoise`] on the waveform.
    AdditiveNoise(AdditiveNoise),
    /// [`Gain`] on the waveform.
    Gain(Gain),
    /// [`CutOutSpec`] on the spectrogram.
    CutOutSpec(CutOutSpec),
    /// [`SpecAugment`] masks on the spectrogram (all frames valid).
    SpecAugment(SpecAugment),
    /// [`TimeShift`] of the spectrogram frames.
    TimeShift(TimeShift),
}

impl AudioAugment {
    /// Whether it acts on the waveform or on the spectrogram.
    pub fn domain(&self) -> Domain {
        match self {
            AudioAugment::Occlusion(_)
            | AudioAugment::SpeedPerturbation(_)
            | AudioAugment::AdditiveNoise(_)
            | AudioAugment::Gain(_) => Domain::Waveform,
            AudioAugment::CutOutSpec(_)
            | AudioAugment::SpecAugment(_)
            | AudioAugment::TimeShift(_) => Domain::Spectrogram,
        }
    }

    /// Applies a waveform transform; `Err` for a spectrogram transform.
    pub fn apply_waveform<F: Float, R: Rng + ?Sized>(
        &self,
        waveform: ArrayView1<F>,
        rng: &mut R,
    ) -> Result<Array1<F>> {
        match self {
            AudioAugment::Occlusion(t) => Ok(t.apply(waveform, rng)?.0),
            AudioAugment::SpeedPerturbation(t) => Ok(t.apply(waveform, rng)?.0),
            AudioAugment::AdditiveNoise(t) => Ok(t.apply(waveform, rng)?.0),
            AudioAugment::Gain(t) => Ok(t.apply(waveform, rng)?.0),
            other => Err(Error::invalid(
                "augment",
                format!("{other:?}"),
                "is a spectrogram transform, not a waveform one",
            )),
        }
    }

    /// Applies a spectrogram transform to one `(freq, time)` spectrogram; `Err` for a
    /// waveform transform.
    pub fn apply_spectrogram<F: Float, R: Rng + ?Sized>(
        &self,
        spectrogram: ndarray::ArrayView2<F>,
        rng: &mut R,
    ) -> Result<Array2<F>> {
        match self {
            AudioAugment::CutOutSpec(t) => t.apply(spectrogram, rng),
            AudioAugment::SpecAugment(t) => {
                let batch = spectrogram.insert_axis(ndarray::Axis(0));
                let out = t.apply_batch(batch, None, rng)?;
                Ok(out.index_axis_move(ndarray::Axis(0), 0))
            }
            AudioAugment::TimeShift(t) => Ok(t.apply(spectrogram, rng)?.0),
            other => Err(Error::invalid(
                "augment",
                format!("{other:?}"),
                "is a waveform transform, not a spectrogram one",
            )),
        }
    }
}

/// A pool: with probability `p`, one transform chosen uniformly is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct AugmentPool {
    augments: Vec<AudioAugment>,
    p: f64,
}

impl AugmentPool {
    /// Checks a non-empty pool and `p ∈ [0, 1]`.
    pub fn new(augments: Vec<AudioAugment>, p: f64) -> Result<Self> {
        check::probability("p", p)?;
        if augments.is_empty() {
            return Err(Error::invalid(
                "augments",
                "[]",
                "a pool needs at least one transform",
            ));
        }
        Ok(AugmentPool { augments, p })
    }

    /// SSLH weak pool, `p = 0.5`: occlusion `[0, 0.25]`, speed rate `U(0.5, 1.5)`,
    /// CutOutSpec `[0.1, 0.5]²` at −80 dB.
    pub fn sslh_weak() -> Self {
        AugmentPool {
            augments: vec![
                AudioAugment::Occlusion(Occlusion::sslh_weak()),
                AudioAugment::SpeedPerturbation(SpeedPerturbation::sslh_weak()),
                AudioAugment::CutOutSpec(CutOutSpec::sslh_weak()),
            ],
            p: 0.5,
        }
    }

    /// SSLH strong pool, `p = 1`: occlusion `[0, 0.75]`, speed rate `U(0.25, 1.75)`,
    /// CutOutSpec `[0.5, 1]²` at −80 dB.
    pub fn sslh_strong() -> Self {
        AugmentPool {
            augments: vec![
                AudioAugment::Occlusion(Occlusion::sslh_strong()),
                AudioAugment::SpeedPerturbation(SpeedPerturbation::sslh_strong()),
                AudioAugment::CutOutSpec(CutOutSpec::sslh_strong()),
            ],
            p: 1.0,
        }
    }

    /// The transforms.
    pub fn augments(&self) -> &[AudioAugment] {
        &self.augments
    }

    /// The probability of applying a transform at all.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// Picks a transform uniformly, then keeps it with probability `p` (`None`: identity).
    pub fn choose<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<&AudioAugment> {
        let index = rng.random_range(0..self.augments.len());
        rng.random_bool(self.p).then(|| &self.augments[index])
    }

    /// Waveform → augmented spectrogram: a chosen waveform transform runs before
    /// `to_spectrogram`, a chosen spectrogram transform after it.
    ///
    /// `to_spectrogram` may fail with the caller's error type `E`, which must absorb this
    /// crate's [`Error`] (`anyhow::Error` and `Box<dyn Error>` do).
    pub fn apply<F, R, E, C>(
        &self,
        waveform: ArrayView1<F>,
        to_spectrogram: C,
        rng: &mut R,
    ) -> std::result::Result<Array2<F>, E>
    where
        F: Float,
        R: Rng + ?Sized,
        E: From<Error>,
        C: FnOnce(ArrayView1<F>) -> std::result::Result<Array2<F>, E>,
    {
        match self.choose(rng) {
            None => to_spectrogram(waveform),
            Some(augment) => match augment.domain() {
                Domain::Waveform => {
                    let augmented = augment.apply_waveform(waveform, rng)?;
                    to_spectrogram(augmented.view())
                }
                Domain::Spectrogram => {
                    let spectrogram = to_spectrogram(waveform)?;
                    Ok(augment.apply_spectrogram(spectrogram.view(), rng)?)
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn weak_pool_applies_about_half_the_time_and_each_transform_a_third() {
        let pool = AugmentPool::sslh_weak();
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let mut counts = [0usize; 4];
        let draws = 6000;
        for _ in 0..draws {
            match pool.choose(&mut rng) {
                None => counts[3] += 1,
                Some(AudioAugment::Occlusion(_)) => counts[0] += 1,
                Some(AudioAugment::SpeedPerturbation(_)) => counts[1] += 1,
                Some(_) => counts[2] += 1,
            }
        }
        let share = |c: usize| c as f64 / draws as f64;
        assert_abs_diff_eq!(share(counts[3]), 0.5, epsilon = 0.03);
        for c in &counts[..3] {
            assert_abs_diff_eq!(share(*c), 1.0 / 6.0, epsilon = 0.03);
        }
        let strong = AugmentPool::sslh_strong();
        assert!((0..100).all(|_| strong.choose(&mut rng).is_some()));
    }

    #[test]
    fn pipeline_runs_the_right_stage() {
        // A toy "spectrogram": the waveform as one row.
        let to_spec = |w: ArrayView1<f64>| -> Result<Array2<f64>> {
            Ok(w.to_owned().insert_axis(ndarray::Axis(0)))
        };
        let waveform = Array1::<f64>::ones(100);
        let cut = AugmentPool::new(
            vec![AudioAugment::CutOutSpec(
                CutOutSpec::new((1.0, 1.0), (0.5, 0.5), -80.0).unwrap(),
            )],
            1.0,
        )
        .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let out = cut.apply(waveform.view(), to_spec, &mut rng).unwrap();
        assert_eq!(out.iter().filter(|&&v| v == -80.0).count(), 50);
        let never = AugmentPool::new(cut.augments().to_vec(), 0.0).unwrap();
        let out = never.apply(waveform.view(), to_spec, &mut rng).unwrap();
        assert!(out.iter().all(|&v| v == 1.0));
        assert!(AugmentPool::new(vec![], 0.5).is_err());
        assert!(AugmentPool::new(cut.augments().to_vec(), 1.5).is_err());
        assert!(AugmentPool::new(cut.augments().to_vec(), f64::NAN).is_err());
    }
}
