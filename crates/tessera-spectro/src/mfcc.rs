//! Mel-frequency cepstral coefficients (librosa `feature.mfcc`, DCT-II orthonormal).

use ndarray::{Array2, Array3, ArrayView1, ArrayView2, Axis};
use tessera_core::RejectInput;

use crate::db::{power_to_db_in_place, DbConfig};
use crate::error::{Error, Result};
use crate::melspec::{MelConfig, MelSpectrogram};
use crate::Float;

/// The orthonormal DCT-II matrix of shape `(n_out, n_in)`:
/// $D_{k,n} = s_k \cos\big(\pi k (2n + 1) / (2 n_{in})\big)$ with $s_0 = \sqrt{1/n_{in}}$,
/// $s_k = \sqrt{2/n_{in}}$, so that `D · x` equals the first `n_out` rows of
/// `scipy.fftpack.dct(x, type=2, norm="ortho")`.
///
/// A matrix rather than an FFT-based DCT because `n_mfcc × n_mels` is tiny (20 × 128): the
/// product is cheap and exact to rounding.
///
/// # Errors
/// `n_in == 0`, or `n_out` outside `1..=n_in`.
pub fn dct_ii_ortho<T: Float>(n_out: usize, n_in: usize) -> Result<Array2<T>> {
    if n_in == 0 {
        return Err(Error::invalid("n_in", 0, "must be at least 1"));
    }
    if n_out == 0 || n_out > n_in {
        return Err(Error::invalid(
            "n_out",
            n_out,
            format!("must be in 1..={n_in}"),
        ));
    }
    let first = (1.0 / n_in as f64).sqrt();
    let rest = (2.0 / n_in as f64).sqrt();
    Ok(Array2::from_shape_fn((n_out, n_in), |(k, n)| {
        let scale = if k == 0 { first } else { rest };
        let angle = std::f64::consts::PI * (k * (2 * n + 1)) as f64 / (2 * n_in) as f64;
        T::from_f64_rounded(scale * angle.cos())
    }))
}

/// Parameters of [`Mfcc`], with librosa's defaults from [`MfccConfig::librosa`].
#[derive(Debug, Clone, PartialEq)]
pub struct MfccConfig {
    /// The mel spectrogram the coefficients are taken from.
    pub mel: MelConfig,
    /// Its dB conversion (librosa calls `power_to_db` with its defaults).
    pub db: DbConfig,
    /// Number of coefficients kept, `1..=n_mels`.
    pub n_mfcc: usize,
    /// Cepstral liftering $1 + (L/2)\sin(\pi (k + 1)/L)$ when `lifter > 0`; 0 disables it.
    pub lifter: f64,
}

impl MfccConfig {
    /// librosa's `feature.mfcc` defaults: [`MelConfig::librosa`], `power_to_db` defaults,
    /// 20 coefficients, no liftering.
    pub fn librosa(sample_rate: f64) -> Self {
        MfccConfig {
            mel: MelConfig::librosa(sample_rate),
            db: DbConfig::librosa(),
            n_mfcc: 20,
            lifter: 0.0,
        }
    }
}

/// A reusable MFCC plan: $C = \mathrm{lift} \odot (D \cdot \mathrm{dB}(M))$ where $M$ is the
/// mel spectrogram and $D$ the orthonormal DCT-II.
#[derive(Debug, Clone)]
pub struct Mfcc<T: Float> {
    mel: MelSpectrogram<T>,
    db: DbConfig,
    /// DCT-II rows with the lifter folded in.
    basis: Array2<T>,
}

impl<T: Float> Mfcc<T> {
    /// Checks `config` and builds the plan.
    ///
    /// # Errors
    /// As [`MelSpectrogram::new`], plus `n_mfcc` outside `1..=n_mels`, a negative or
    /// non-finite `lifter`, an invalid dB config.
    pub fn new(config: MfccConfig) -> Result<Self> {
        if !(config.lifter.is_finite() && config.lifter >= 0.0) {
            return Err(Error::invalid(
                "lifter",
                config.lifter,
                "must be finite and non-negative",
            ));
        }
        config.db.validate()?;
        let n_mels = config.mel.n_mels;
        if config.n_mfcc == 0 || config.n_mfcc > n_mels {
            return Err(Error::invalid(
                "n_mfcc",
                config.n_mfcc,
                format!("must be in 1..=n_mels = {n_mels}"),
            ));
        }
        let mel = MelSpectrogram::new(config.mel)?;
        let mut basis = dct_ii_ortho::<f64>(config.n_mfcc, n_mels)?;
        if config.lifter > 0.0 {
            let lifter = config.lifter;
            for (k, mut row) in basis.outer_iter_mut().enumerate() {
                let gain =
                    1.0 + (lifter / 2.0) * (std::f64::consts::PI * (k + 1) as f64 / lifter).sin();
                row.mapv_inplace(|v| v * gain);
            }
        }
        Ok(Mfcc {
            mel,
            db: config.db,
            basis: basis.mapv(T::from_f64_rounded),
        })
    }

    /// The underlying mel plan.
    pub fn mel(&self) -> &MelSpectrogram<T> {
        &self.mel
    }

    /// Number of coefficients.
    pub fn n_mfcc(&self) -> usize {
        self.basis.nrows()
    }

    /// MFCCs from an existing log-mel (dB) spectrogram of shape `(n_mels, frames)`
    /// (librosa `mfcc(S=...)`).
    ///
    /// # Errors
    /// A row count other than `n_mels`, or a NaN entry.
    pub fn from_log_mel(&self, log_mel: ArrayView2<T>) -> Result<Array2<T>> {
        if log_mel.nrows() != self.basis.ncols() {
            return Err(Error::invalid(
                "log_mel",
                format!("{} rows", log_mel.nrows()),
                format!("must have n_mels = {} rows", self.basis.ncols()),
            ));
        }
        if let Some(((m, t), v)) = log_mel.indexed_iter().find(|(_, v)| v.is_nan()) {
            return Err(Error::invalid(
                "log_mel",
                format!("entry[{m}, {t}] = {v}"),
                "must not be NaN",
            ));
        }
        Ok(self.basis.dot(&log_mel))
    }

    /// MFCCs of one signal, shape `(n_mfcc, frames)`.
    ///
    /// # Errors
    /// As [`MelSpectrogram::compute`].
    pub fn compute(&self, signal: ArrayView1<T>) -> Result<Array2<T>> {
        let mut mel = self.mel.compute(signal)?;
        power_to_db_in_place(mel.view_mut(), &self.db);
        Ok(self.basis.dot(&mel))
    }

    /// MFCCs of a batch of equal-length signals (rows), shape `(batch, n_mfcc, frames)`,
    /// in parallel; the dB conversion applies per signal.
    ///
    /// # Errors
    /// As [`MelSpectrogram::compute_batch`].
    pub fn compute_batch(&self, signals: ArrayView2<T>) -> Result<Array3<T>> {
        let db = self.db;
        let log_mel = self
            .mel
            .batch_with(signals, move |item| power_to_db_in_place(item, &db))?;
        let (batch, _, frames) = log_mel.dim();
        let mut out = Array3::zeros((batch, self.n_mfcc(), frames));
        for (mut dst, src) in out.outer_iter_mut().zip(log_mel.axis_iter(Axis(0))) {
            dst.assign(&self.basis.dot(&src));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn dct_is_orthonormal() {
        let d = dct_ii_ortho::<f64>(12, 12).unwrap();
        let gram = d.dot(&d.t());
        for ((i, j), v) in gram.indexed_iter() {
            let expected = if i == j { 1.0 } else { 0.0 };
            assert_abs_diff_eq!(*v, expected, epsilon = 1e-12);
        }
        assert!(dct_ii_ortho::<f64>(13, 12).is_err());
        assert!(dct_ii_ortho::<f64>(0, 12).is_err());
    }

    #[test]
    fn bad_configs_are_errors() {
        for (config, name) in [
            (
                MfccConfig {
                    n_mfcc: 0,
                    ..MfccConfig::librosa(22050.0)
                },
                "n_mfcc",
            ),
            (
                MfccConfig {
                    n_mfcc: 129,
                    ..MfccConfig::librosa(22050.0)
                },
                "n_mfcc",
            ),
            (
                MfccConfig {
                    lifter: -1.0,
                    ..MfccConfig::librosa(22050.0)
                },
                "lifter",
            ),
        ] {
            let err = Mfcc::<f32>::new(config).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
        let plan = Mfcc::<f64>::new(MfccConfig::librosa(22050.0)).unwrap();
        assert!(plan.from_log_mel(Array2::zeros((64, 3)).view()).is_err());
    }

    #[test]
    fn constant_log_mel_has_only_a_dc_coefficient() {
        let plan = Mfcc::<f64>::new(MfccConfig::librosa(22050.0)).unwrap();
        let flat = Array2::from_elem((128, 2), -30.0);
        let c = plan.from_log_mel(flat.view()).unwrap();
        assert_abs_diff_eq!(c[[0, 0]], -30.0 * 128f64.sqrt(), epsilon = 1e-9);
        for v in c.iter().skip(2) {
            assert_abs_diff_eq!(*v, 0.0, epsilon = 1e-9);
        }
    }
}
