//! SSLH's weak and strong augmentation pools applied to cached log-mels.
//!
//! The pools are tessera-augment's [`AugmentPool::sslh_weak`] / [`AugmentPool::sslh_strong`]
//! (with probability `p` one transform chosen uniformly). Their waveform transforms act here
//! on the time axis of the log-mel, which is what they do to the spectrogram up to STFT edge
//! effects: occlusion silences a segment of frames, speed perturbation resamples the frames by
//! nearest index and pads/crops back to length; CutOutSpec fills a time × frequency box. Every
//! fill is the standardised "silence" floor instead of SSLH's raw 0 / −80 dB. The random
//! extents are drawn by the tessera-augment transforms themselves (applied to frame-index
//! vectors), so the ranges and alignment rules are exactly theirs.

use anyhow::Result;
use ndarray::{s, Array1, Array4, ArrayView2, ArrayView4, Axis};
use rand::Rng;
use tessera_augment::{AudioAugment, AugmentPool, CutOutSpec, Occlusion, SpeedPerturbation};

/// A pool and the fill value of the standardised log-mels.
#[derive(Debug, Clone)]
pub struct LogMelPool {
    pool: AugmentPool,
    floor: f32,
}

impl LogMelPool {
    /// SSLH's weak pool (p = 0.5).
    pub fn weak(floor: f32) -> Self {
        LogMelPool {
            pool: AugmentPool::sslh_weak(),
            floor,
        }
    }

    /// SSLH's strong pool (p = 1).
    pub fn strong(floor: f32) -> Self {
        LogMelPool {
            pool: AugmentPool::sslh_strong(),
            floor,
        }
    }

    /// One augmented copy of every item of `x` `(N, 1, F, T)`, items in order from `rng`.
    pub fn apply_batch<R: Rng + ?Sized>(
        &self,
        x: ArrayView4<'_, f32>,
        rng: &mut R,
    ) -> Result<Array4<f32>> {
        let mut out = x.to_owned();
        for mut item in out.axis_iter_mut(Axis(0)) {
            let Some(augment) = self.pool.choose(rng) else {
                continue;
            };
            let mut spec = item.index_axis_mut(Axis(0), 0);
            let augmented = self.apply_one(augment, spec.view(), rng)?;
            spec.assign(&augmented);
        }
        Ok(out)
    }

    fn apply_one<R: Rng + ?Sized>(
        &self,
        augment: &AudioAugment,
        spec: ArrayView2<'_, f32>,
        rng: &mut R,
    ) -> Result<ndarray::Array2<f32>> {
        let frames = spec.ncols();
        match augment {
            AudioAugment::Occlusion(o) => {
                // The occluded range of a frame-index vector is the silenced segment.
                let occlusion = Occlusion::new(o.scales(), 0.0)?;
                let (_, range) = occlusion.apply(Array1::<f32>::ones(frames).view(), rng)?;
                let mut out = spec.to_owned();
                out.slice_mut(s![.., range]).fill(self.floor);
                Ok(out)
            }
            AudioAugment::SpeedPerturbation(sp) => {
                // Resample the frame indices 1..=T; 0 marks padding.
                let stretch =
                    SpeedPerturbation::new(sp.rates(), tessera_augment::Align::Random, 0.0)?;
                let index = Array1::from_shape_fn(frames, |t| (t + 1) as f32);
                let (source, _) = stretch.apply(index.view(), rng)?;
                let mut out = ndarray::Array2::from_elem(spec.raw_dim(), self.floor);
                for (t, &k) in source.iter().enumerate() {
                    if k >= 1.0 {
                        out.column_mut(t).assign(&spec.column(k as usize - 1));
                    }
                }
                Ok(out)
            }
            AudioAugment::CutOutSpec(c) => {
                let cutout =
                    CutOutSpec::new(c.freq_scales(), c.time_scales(), f64::from(self.floor))?;
                Ok(cutout.apply(spec, rng)?)
            }
            other => Ok(other.apply_spectrogram(spec, rng)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn ramp_batch(n: usize) -> Array4<f32> {
        Array4::from_shape_fn((n, 1, 4, 16), |(i, _, f, t)| (i * 100 + f * 20 + t) as f32)
    }

    #[test]
    fn strong_pool_changes_every_item_and_keeps_values_from_the_item_or_the_floor() {
        let x = ramp_batch(40);
        let pool = LogMelPool::strong(-9.0);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let y = pool.apply_batch(x.view(), &mut rng).unwrap();
        assert_eq!(y.dim(), x.dim());
        let mut changed = 0;
        for (a, b) in x.outer_iter().zip(y.outer_iter()) {
            if a != b {
                changed += 1;
            }
            // Every value is the floor or one of the item's own values (frames only move).
            for &v in b.iter() {
                assert!(v == -9.0 || a.iter().any(|&u| u == v), "{v}");
            }
        }
        // p = 1, but a zero-length occlusion or a unit-rate stretch can leave an item as is.
        assert!(changed >= 30, "{changed}/40 items changed");
    }

    #[test]
    fn weak_pool_leaves_about_half_the_items_alone() {
        let x = ramp_batch(400);
        let pool = LogMelPool::weak(-9.0);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let y = pool.apply_batch(x.view(), &mut rng).unwrap();
        let same = x
            .outer_iter()
            .zip(y.outer_iter())
            .filter(|(a, b)| a == b)
            .count();
        assert!((150..=280).contains(&same), "{same}/400 unchanged");
    }

    #[test]
    fn speed_perturbation_moves_whole_frames() {
        let x = ramp_batch(1);
        let pool = LogMelPool::weak(-9.0);
        let stretch = AudioAugment::SpeedPerturbation(SpeedPerturbation::sslh_strong());
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let spec = x.slice(s![0, 0, .., ..]);
        let y = pool.apply_one(&stretch, spec, &mut rng).unwrap();
        for t in 0..16 {
            let col = y.column(t);
            let is_floor = col.iter().all(|&v| v == -9.0);
            let is_frame = (0..16).any(|k| col == spec.column(k));
            assert!(is_floor || is_frame, "frame {t}: {col}");
        }
    }
}
