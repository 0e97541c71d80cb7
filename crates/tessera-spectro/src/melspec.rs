//! Mel spectrogram and log-mel plans (librosa `feature.melspectrogram` + `power_to_db`).

use ndarray::{Array2, Array3, ArrayView1, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;
use tessera_core::RejectInput;

use crate::db::{power_to_db_in_place, DbConfig};
use crate::error::{Error, Result};
use crate::mel::{mel_filterbank_with_empty, MelNorm, MelScale, SparseFilterbank};
use crate::stft::{FrameScratch, PadMode, Stft, StftConfig};
use crate::window::Window;
use crate::Float;

/// What to do when some mel filters come out empty (all-zero rows: too many mels for the
/// FFT resolution at low frequencies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyFilters {
    /// Refuse with [`Error::EmptyMelFilters`] (the default of the librosa and SSLH presets).
    Error,
    /// Accept them, as librosa and torchaudio do with a warning; their rows of the output are
    /// always zero (−100 dB after `power_to_db` with `amin = 1e-10`) and
    /// [`MelSpectrogram::empty_filters`] lists them.
    Allow,
}

/// Every parameter of `librosa.feature.melspectrogram`, plus the empty-filter policy.
#[derive(Debug, Clone, PartialEq)]
pub struct MelConfig {
    /// Sampling rate in Hz.
    pub sample_rate: f64,
    /// FFT size (any positive length).
    pub n_fft: usize,
    /// Samples between frames.
    pub hop_length: usize,
    /// Window length (≤ `n_fft`); `None` means `n_fft`.
    pub win_length: Option<usize>,
    /// Analysis window.
    pub window: Window,
    /// Centre frames by padding `n_fft / 2` samples on each side.
    pub center: bool,
    /// Padding used when centring.
    pub pad_mode: PadMode,
    /// Exponent of the magnitude: 2 for power, 1 for magnitude (any positive value).
    pub power: f64,
    /// Number of mel bands.
    pub n_mels: usize,
    /// Lowest filter edge in Hz.
    pub fmin: f64,
    /// Highest filter edge in Hz (≤ `sample_rate / 2`); `None` means `sample_rate / 2`.
    pub fmax: Option<f64>,
    /// Mel scale.
    pub scale: MelScale,
    /// Filter normalisation.
    pub norm: MelNorm,
    /// Policy for empty filters.
    pub empty_filters: EmptyFilters,
}

impl MelConfig {
    /// librosa's defaults: `n_fft = 2048`, `hop_length = 512`, periodic Hann, centred with
    /// zero padding, power 2, 128 mels from 0 Hz to `sr / 2`, Slaney scale and norm.
    pub fn librosa(sample_rate: f64) -> Self {
        MelConfig {
            sample_rate,
            n_fft: 2048,
            hop_length: 512,
            win_length: None,
            window: Window::hann(),
            center: true,
            pad_mode: PadMode::Constant,
            power: 2.0,
            n_mels: 128,
            fmin: 0.0,
            fmax: None,
            scale: MelScale::Slaney,
            norm: MelNorm::Slaney,
            empty_filters: EmptyFilters::Error,
        }
    }

    /// `torchaudio.transforms.MelSpectrogram` defaults: `n_fft = 400`, `hop_length = 200`,
    /// periodic Hann, centred with reflect padding, power 2, 128 mels from 0 Hz to
    /// `⌊sr/2⌋` (torchaudio's `sample_rate // 2`), HTK scale, no norm.
    ///
    /// torchaudio's defaults leave some filters empty at common rates (e.g. 16 kHz), which
    /// torchaudio only warns about, so this preset uses [`EmptyFilters::Allow`].
    pub fn torchaudio(sample_rate: f64) -> Self {
        MelConfig {
            n_fft: 400,
            hop_length: 200,
            pad_mode: PadMode::Reflect,
            fmax: Some((sample_rate / 2.0).floor()),
            scale: MelScale::Htk,
            norm: MelNorm::None,
            empty_filters: EmptyFilters::Allow,
            ..MelConfig::librosa(sample_rate)
        }
    }

    /// The SSLH (semi-supervised audio classification) front end: the torchaudio preset with
    /// `n_fft = 2048`, `hop_length = 512` and 64 mels (ESC-10 at 44.1 kHz, 5 s → 64×431;
    /// UrbanSound8K at 22.05 kHz, 4 s → 64×173; Speech Commands at 16 kHz, 1 s → 64×32).
    pub fn sslh(sample_rate: f64) -> Self {
        MelConfig {
            n_fft: 2048,
            hop_length: 512,
            n_mels: 64,
            empty_filters: EmptyFilters::Error,
            ..MelConfig::torchaudio(sample_rate)
        }
    }

    /// The STFT part of this configuration.
    pub fn stft_config(&self) -> StftConfig {
        StftConfig {
            n_fft: self.n_fft,
            hop_length: Some(self.hop_length),
            win_length: self.win_length,
            window: self.window.clone(),
            center: self.center,
            pad_mode: self.pad_mode,
        }
    }

    /// The upper filter edge actually used: `fmax`, or `sample_rate / 2`.
    pub fn resolved_fmax(&self) -> f64 {
        self.fmax.unwrap_or(self.sample_rate / 2.0)
    }
}

/// How the magnitude is raised to `power`, chosen once so the frame loop does not branch on
/// a float comparison.
#[derive(Debug, Clone, Copy)]
enum Exponent<T> {
    Two,
    One,
    Other(T),
}

/// Reusable buffers of [`MelSpectrogram::compute_into`] and [`LogMelSpectrogram::compute_into`]
/// (frame, spectrum, power and mel rows), for training loops that featurise every step
/// without allocating. Make one per thread with [`MelSpectrogram::scratch`].
pub struct MelScratch<T> {
    frame: FrameScratch<T>,
    power: Vec<T>,
    mel: Vec<T>,
}

impl<T> std::fmt::Debug for MelScratch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelScratch")
            .field("bins", &self.power.len())
            .field("mels", &self.mel.len())
            .finish_non_exhaustive()
    }
}

/// A reusable mel-spectrogram plan: STFT plan, sparse filterbank and buffers sizes, built
/// once from a checked [`MelConfig`].
#[derive(Debug, Clone)]
pub struct MelSpectrogram<T: Float> {
    config: MelConfig,
    stft: Stft<T>,
    filterbank: Array2<T>,
    sparse: SparseFilterbank<T>,
    exponent: Exponent<T>,
    empty_filters: Vec<usize>,
}

impl<T: Float> MelSpectrogram<T> {
    /// Checks `config` and builds the plan.
    ///
    /// # Errors
    /// Any invalid STFT or mel parameter (see [`Stft::new`] and
    /// [`crate::mel_filterbank`]), `power` not positive and finite, and empty filters under
    /// [`EmptyFilters::Error`].
    pub fn new(config: MelConfig) -> Result<Self> {
        if !(config.power.is_finite() && config.power > 0.0) {
            return Err(Error::invalid(
                "power",
                config.power,
                "must be positive and finite",
            ));
        }
        let stft = Stft::new(config.stft_config())?;
        let fmax = config.resolved_fmax();
        let (filterbank, empty_filters) = mel_filterbank_with_empty::<T>(
            config.sample_rate,
            config.n_fft,
            config.n_mels,
            config.fmin,
            fmax,
            config.scale,
            config.norm,
        )?;
        if config.empty_filters == EmptyFilters::Error && !empty_filters.is_empty() {
            return Err(Error::EmptyMelFilters {
                n_mels: config.n_mels,
                n_fft: config.n_fft,
                sample_rate: config.sample_rate,
                fmin: config.fmin,
                fmax,
                empty: empty_filters,
            });
        }
        let exponent = if config.power == 2.0 {
            Exponent::Two
        } else if config.power == 1.0 {
            Exponent::One
        } else {
            Exponent::Other(T::from_f64_rounded(config.power / 2.0))
        };
        Ok(MelSpectrogram {
            sparse: SparseFilterbank::from_dense(&filterbank),
            config,
            stft,
            filterbank,
            exponent,
            empty_filters,
        })
    }

    /// The configuration the plan was built from.
    pub fn config(&self) -> &MelConfig {
        &self.config
    }

    /// The STFT plan.
    pub fn stft(&self) -> &Stft<T> {
        &self.stft
    }

    /// The dense filterbank, shape `(n_mels, n_fft / 2 + 1)`.
    pub fn filterbank(&self) -> &Array2<T> {
        &self.filterbank
    }

    /// Indices of all-zero filters (always empty under [`EmptyFilters::Error`]).
    pub fn empty_filters(&self) -> &[usize] {
        &self.empty_filters
    }

    /// Number of mel bands.
    pub fn n_mels(&self) -> usize {
        self.sparse.n_mels()
    }

    /// Number of frames for a signal of `signal_len` samples (see [`Stft::frame_count`]).
    ///
    /// # Errors
    /// As [`Stft::frame_count`].
    pub fn frame_count(&self, signal_len: usize) -> Result<usize> {
        self.stft.frame_count(signal_len)
    }

    /// Buffers for [`MelSpectrogram::compute_into`], sized for this plan.
    pub fn scratch(&self) -> MelScratch<T> {
        MelScratch {
            frame: self.stft.scratch(),
            power: vec![T::zero(); self.sparse.n_bins()],
            mel: vec![T::zero(); self.sparse.n_mels()],
        }
    }

    /// The mel spectrogram of `signal` written into `out` (shape `(n_mels, frames)`, see
    /// [`MelSpectrogram::frame_count`]), reusing `scratch`; no allocation when the STFT does
    /// not pad (`center = false`), one padded copy of the signal otherwise.
    ///
    /// # Errors
    /// As [`MelSpectrogram::compute`], and when `out` has another shape or `scratch` was made
    /// by a plan of other sizes.
    pub fn compute_into(
        &self,
        signal: ArrayView1<T>,
        out: ArrayViewMut2<T>,
        scratch: &mut MelScratch<T>,
    ) -> Result<()> {
        let (samples, frames) = self.stft.prepare(&signal)?;
        if out.dim() != (self.n_mels(), frames) {
            return Err(Error::shape("out", (self.n_mels(), frames), out.dim()));
        }
        if scratch.power.len() != self.sparse.n_bins() || scratch.mel.len() != self.n_mels() {
            return Err(Error::shape(
                "scratch",
                format!("{} bins, {} mels", self.sparse.n_bins(), self.n_mels()),
                format!("{} bins, {} mels", scratch.power.len(), scratch.mel.len()),
            ));
        }
        self.compute_prepared_into(&samples, frames, out, scratch)
    }

    /// Fills `out` (`n_mels × frames`) from a prepared signal.
    pub(crate) fn compute_prepared_into(
        &self,
        samples: &[T],
        frames: usize,
        mut out: ArrayViewMut2<T>,
        scratch: &mut MelScratch<T>,
    ) -> Result<()> {
        let MelScratch { frame, power, mel } = scratch;
        let exponent = self.exponent;
        self.stft
            .for_each_frame(samples, frames, frame, |t, spectrum| {
                // One loop per exponent so that the common power-2 case is a plain loop the
                // compiler vectorises.
                let squares = power.iter_mut().zip(spectrum);
                match exponent {
                    Exponent::Two => squares.for_each(|(p, c)| *p = c.re * c.re + c.im * c.im),
                    Exponent::One => {
                        squares.for_each(|(p, c)| *p = (c.re * c.re + c.im * c.im).sqrt())
                    }
                    Exponent::Other(half_power) => {
                        squares.for_each(|(p, c)| *p = (c.re * c.re + c.im * c.im).powf(half_power))
                    }
                }
                self.sparse.apply(power, mel);
                for (dst, &v) in out.column_mut(t).iter_mut().zip(mel.iter()) {
                    *dst = v;
                }
            })?;
        // A finite but very loud signal can overflow the float type in the power spectrum
        // (|X|² above T::MAX, or ∞ − ∞ = NaN in the FFT). That is an error naming the
        // signal, never a NaN that `power_to_db` would clamp to silence.
        if let Some(((mel_band, frame), &v)) = out.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::invalid(
                "signal",
                format!("a signal whose mel power is {v} at (mel {mel_band}, frame {frame})"),
                format!(
                    "the power spectrum overflows {}: scale the signal down (e.g. to [-1, 1]) \
                     or compute in f64",
                    std::any::type_name::<T>()
                ),
            ));
        }
        Ok(())
    }

    /// The mel spectrogram of one signal, shape `(n_mels, frames)`:
    /// $M = W\,|STFT(x)|^{p}$, equal to `librosa.feature.melspectrogram`.
    ///
    /// # Errors
    /// An empty or non-finite signal, one too short for the STFT settings, or one so loud
    /// that its power spectrum overflows `T` (an error naming `signal`, never silence).
    pub fn compute(&self, signal: ArrayView1<T>) -> Result<Array2<T>> {
        let (samples, frames) = self.stft.prepare(&signal)?;
        let mut out = Array2::zeros((self.n_mels(), frames));
        let mut scratch = self.scratch();
        self.compute_prepared_into(&samples, frames, out.view_mut(), &mut scratch)?;
        Ok(out)
    }

    /// Mel spectrograms of a batch of equal-length signals (rows of `signals`), shape
    /// `(batch, n_mels, frames)`, computed in parallel over the batch with rayon.
    ///
    /// # Errors
    /// An empty batch, or any row that [`MelSpectrogram::compute`] would reject (the error
    /// names the row).
    pub fn compute_batch(&self, signals: ArrayView2<T>) -> Result<Array3<T>> {
        self.batch_with(signals, |_| ())
    }

    /// Shared batch driver: computes each item in parallel, then runs `finish` on it.
    pub(crate) fn batch_with(
        &self,
        signals: ArrayView2<T>,
        finish: impl Fn(ArrayViewMut2<T>) + Sync,
    ) -> Result<Array3<T>> {
        let (batch, length) = signals.dim();
        if batch == 0 {
            return Err(Error::invalid(
                "signals",
                "a batch of 0 rows",
                "must hold at least one signal",
            ));
        }
        let frames = self.stft.frame_count(length)?;
        for (row, signal) in signals.outer_iter().enumerate() {
            let samples = match signal.to_slice() {
                Some(slice) => std::borrow::Cow::Borrowed(slice),
                None => std::borrow::Cow::Owned(signal.to_vec()),
            };
            if let Some((i, v)) = crate::stft::first_non_finite(&samples) {
                return Err(Error::invalid(
                    "signals",
                    format!("row {row}, sample[{i}] = {v}"),
                    "every sample must be finite",
                ));
            }
        }
        let mut out = Array3::zeros((batch, self.n_mels(), frames));
        out.axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(signals.axis_iter(Axis(0)).into_par_iter())
            .try_for_each_init(
                || self.scratch(),
                |scratch, (mut item, signal)| {
                    let (samples, _) = self.stft.prepare(&signal)?;
                    self.compute_prepared_into(&samples, frames, item.view_mut(), scratch)?;
                    finish(item);
                    Ok::<(), Error>(())
                },
            )?;
        Ok(out)
    }
}

/// A mel configuration together with its dB conversion.
#[derive(Debug, Clone, PartialEq)]
pub struct LogMelConfig {
    /// The mel spectrogram.
    pub mel: MelConfig,
    /// The power → dB conversion, applied per signal.
    pub db: DbConfig,
}

impl LogMelConfig {
    /// [`MelConfig::librosa`] with librosa's `power_to_db` defaults (`ref = 1`,
    /// `amin = 1e-10`, `top_db = 80`).
    pub fn librosa(sample_rate: f64) -> Self {
        LogMelConfig {
            mel: MelConfig::librosa(sample_rate),
            db: DbConfig::librosa(),
        }
    }

    /// [`MelConfig::torchaudio`] with torchaudio's `AmplitudeToDB` defaults (no `top_db`).
    pub fn torchaudio(sample_rate: f64) -> Self {
        LogMelConfig {
            mel: MelConfig::torchaudio(sample_rate),
            db: DbConfig::torchaudio(),
        }
    }

    /// [`MelConfig::sslh`] with `AmplitudeToDB` defaults (no `top_db`).
    pub fn sslh(sample_rate: f64) -> Self {
        LogMelConfig {
            mel: MelConfig::sslh(sample_rate),
            db: DbConfig::torchaudio(),
        }
    }
}

/// Log-mel spectrogram plan: `power_to_db(melspectrogram(x))`, with `Reference::Max` and
/// `top_db` applied per signal.
///
/// ```
/// use ndarray::Array1;
/// use tessera_spectro::{LogMelConfig, LogMelSpectrogram};
///
/// let plan = LogMelSpectrogram::<f32>::new(LogMelConfig::librosa(22050.0))?;
/// let tone = Array1::from_shape_fn(22050, |i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 22050.0).sin());
/// let log_mel = plan.compute(tone.view())?;
/// assert_eq!(log_mel.dim(), (128, 1 + 22050 / 512));
/// let peak = log_mel.iter().cloned().fold(f32::MIN, f32::max);
/// assert!(log_mel.iter().all(|&v| v >= peak - 80.0));
/// # Ok::<(), tessera_spectro::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LogMelSpectrogram<T: Float> {
    mel: MelSpectrogram<T>,
    db: DbConfig,
    #[cfg(feature = "cuda")]
    pub(crate) gpu: crate::gpu::GpuPlanSlot,
}

impl<T: Float> LogMelSpectrogram<T> {
    /// Checks `config` and builds the plan.
    ///
    /// # Errors
    /// As [`MelSpectrogram::new`] and [`DbConfig::validate`].
    pub fn new(config: LogMelConfig) -> Result<Self> {
        config.db.validate()?;
        Ok(LogMelSpectrogram {
            mel: MelSpectrogram::new(config.mel)?,
            db: config.db,
            #[cfg(feature = "cuda")]
            gpu: Default::default(),
        })
    }

    /// The underlying mel plan.
    pub fn mel(&self) -> &MelSpectrogram<T> {
        &self.mel
    }

    /// The dB conversion.
    pub fn db(&self) -> &DbConfig {
        &self.db
    }

    /// Log-mel spectrogram of one signal, shape `(n_mels, frames)`.
    ///
    /// # Errors
    /// As [`MelSpectrogram::compute`].
    pub fn compute(&self, signal: ArrayView1<T>) -> Result<Array2<T>> {
        let mut mel = self.mel.compute(signal)?;
        power_to_db_in_place(mel.view_mut(), &self.db);
        Ok(mel)
    }

    /// The log-mel spectrogram of `signal` written into `out`, reusing `scratch` (from
    /// [`MelSpectrogram::scratch`] of [`LogMelSpectrogram::mel`]); see
    /// [`MelSpectrogram::compute_into`].
    ///
    /// # Errors
    /// As [`MelSpectrogram::compute_into`].
    pub fn compute_into(
        &self,
        signal: ArrayView1<T>,
        mut out: ArrayViewMut2<T>,
        scratch: &mut MelScratch<T>,
    ) -> Result<()> {
        self.mel.compute_into(signal, out.view_mut(), scratch)?;
        power_to_db_in_place(out, &self.db);
        Ok(())
    }

    /// Log-mel spectrograms of a batch (rows of `signals`), shape `(batch, n_mels, frames)`,
    /// in parallel; the dB reference and `top_db` apply per signal.
    ///
    /// # Errors
    /// As [`MelSpectrogram::compute_batch`].
    ///
    /// With the `cuda` feature, an `f32` batch runs on the GPU when a CUDA device is present
    /// (same result within f32 rounding), on the CPU otherwise.
    pub fn compute_batch(&self, signals: ArrayView2<T>) -> Result<Array3<T>> {
        #[cfg(feature = "cuda")]
        if let Some(out) = crate::gpu::try_log_mel_batch(self, signals)? {
            return Ok(out);
        }
        let db = self.db;
        self.mel
            .batch_with(signals, move |item| power_to_db_in_place(item, &db))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn compute_into_reuses_scratch_and_equals_compute() {
        let plan = LogMelSpectrogram::<f64>::new(LogMelConfig::librosa(22_050.0)).unwrap();
        let mut scratch = plan.mel().scratch();
        for len in [4096usize, 9000] {
            let signal = ndarray::Array1::from_shape_fn(len, |i| (i as f64 * 0.05).sin());
            let frames = plan.mel().frame_count(len).unwrap();
            let mut out = Array2::zeros((plan.mel().n_mels(), frames));
            plan.compute_into(signal.view(), out.view_mut(), &mut scratch)
                .unwrap();
            assert_eq!(out, plan.compute(signal.view()).unwrap());
            let mut wrong = Array2::zeros((plan.mel().n_mels(), frames + 1));
            let err = plan
                .compute_into(signal.view(), wrong.view_mut(), &mut scratch)
                .unwrap_err();
            assert!(err.to_string().contains("`out`"), "{err}");
        }
    }

    #[test]
    fn preset_shapes_match_sslh_datasets() {
        for (sr, seconds, frames) in [(44100.0, 5.0, 431), (22050.0, 4.0, 173), (16000.0, 1.0, 32)]
        {
            let plan = MelSpectrogram::<f32>::new(MelConfig::sslh(sr)).unwrap();
            assert_eq!(plan.frame_count((sr * seconds) as usize).unwrap(), frames);
            assert_eq!(plan.n_mels(), 64);
        }
    }

    #[test]
    fn torchaudio_preset_reports_empty_filters_at_16k() {
        let plan = MelSpectrogram::<f64>::new(MelConfig::torchaudio(16000.0)).unwrap();
        assert!(!plan.empty_filters().is_empty());
        let strict = MelConfig {
            empty_filters: EmptyFilters::Error,
            ..MelConfig::torchaudio(16000.0)
        };
        let err = MelSpectrogram::<f64>::new(strict).unwrap_err();
        assert!(err.to_string().contains("n_mels"), "{err}");
    }

    #[test]
    fn bad_power_and_fmax_are_errors() {
        let err = MelSpectrogram::<f32>::new(MelConfig {
            power: 0.0,
            ..MelConfig::librosa(22050.0)
        })
        .unwrap_err();
        assert!(err.to_string().contains("power"));
        let err = MelSpectrogram::<f32>::new(MelConfig {
            fmax: Some(12000.0),
            ..MelConfig::librosa(22050.0)
        })
        .unwrap_err();
        assert!(err.to_string().contains("fmax"));
    }

    #[test]
    fn batch_equals_single_and_names_bad_rows() {
        let plan = LogMelSpectrogram::<f64>::new(LogMelConfig::librosa(8000.0)).unwrap();
        let signals =
            Array2::from_shape_fn((3, 3000), |(b, i)| ((b + 1) as f64 * 0.01 * i as f64).sin());
        let batch = plan.compute_batch(signals.view()).unwrap();
        for b in 0..3 {
            let single = plan.compute(signals.row(b)).unwrap();
            assert_eq!(batch.index_axis(Axis(0), b), single);
        }
        let mut bad = signals.clone();
        bad[[2, 5]] = f64::NAN;
        let err = plan.compute_batch(bad.view()).unwrap_err();
        assert!(err.to_string().contains("row 2"), "{err}");
        assert!(plan.compute_batch(Array2::zeros((0, 100)).view()).is_err());
    }

    #[test]
    fn silence_gives_minus_100_db_without_top_db() {
        let plan = LogMelSpectrogram::<f32>::new(LogMelConfig::sslh(16000.0)).unwrap();
        let out = plan.compute(ndarray::Array1::zeros(16000).view()).unwrap();
        for &v in out.iter() {
            assert_abs_diff_eq!(v, -100.0, epsilon = 1e-4);
        }
    }
}
