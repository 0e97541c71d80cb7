//! The short-time Fourier transform and its inverse, with librosa's framing, padding and
//! window-sum-square normalisation.

use std::borrow::Cow;
use std::sync::Arc;
use tessera_core::RejectInput;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use num_complex::Complex;
use tessera_fft::realfft::{ComplexToReal, RealToComplex};

use crate::error::{Error, Result};
use crate::window::{stft_window, Window};
use crate::Float;

/// How a centred STFT extends the signal by `n_fft / 2` samples on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadMode {
    /// Zeros (librosa's default).
    Constant,
    /// Mirror without repeating the edge sample (`numpy.pad(mode="reflect")`, torch's
    /// `reflect`). Needs a signal longer than `n_fft / 2` samples.
    Reflect,
}

/// The parameters of an STFT, named and defaulted as in `librosa.stft`.
#[derive(Debug, Clone, PartialEq)]
pub struct StftConfig {
    /// FFT size; any positive length (not only powers of two).
    pub n_fft: usize,
    /// Samples between frame starts; `None` means `win_length / 4` (librosa's default).
    pub hop_length: Option<usize>,
    /// Window length, at most `n_fft`; `None` means `n_fft`. A shorter window is zero-padded
    /// and centred to `n_fft`.
    pub win_length: Option<usize>,
    /// The window function.
    pub window: Window,
    /// Pad the signal by `n_fft / 2` on each side so that frame `t` is centred at
    /// `t · hop_length`.
    pub center: bool,
    /// Padding used when `center` is true.
    pub pad_mode: PadMode,
}

impl StftConfig {
    /// librosa's defaults for this `n_fft`: hop `n_fft / 4`, periodic Hann window of length
    /// `n_fft`, centred frames, zero padding.
    pub fn new(n_fft: usize) -> Self {
        StftConfig {
            n_fft,
            hop_length: None,
            win_length: None,
            window: Window::hann(),
            center: true,
            pad_mode: PadMode::Constant,
        }
    }
}

/// The first non-finite sample, if any. The scan runs over fixed-size chunks with a
/// branch-free fold so that it vectorises: it is on the hot path of every `compute`.
pub(crate) fn first_non_finite<T: Float>(samples: &[T]) -> Option<(usize, T)> {
    const CHUNK: usize = 256;
    samples.chunks(CHUNK).enumerate().find_map(|(c, chunk)| {
        if chunk.iter().fold(true, |ok, v| ok & v.is_finite()) {
            None
        } else {
            chunk
                .iter()
                .position(|v| !v.is_finite())
                .map(|i| (c * CHUNK + i, chunk[i]))
        }
    })
}

/// Per-thread buffers of the frame loop, allocated once per plan use so that the loop itself
/// never allocates.
pub(crate) struct FrameScratch<T> {
    frame: Vec<T>,
    spectrum: Vec<Complex<T>>,
    fft: Vec<Complex<T>>,
}

/// A reusable STFT plan: the padded window and the forward and inverse real FFT plans.
///
/// ```
/// use ndarray::Array1;
/// use tessera_spectro::{Stft, StftConfig};
///
/// let stft = Stft::<f64>::new(StftConfig { hop_length: Some(128), ..StftConfig::new(512) })?;
/// let signal = Array1::from_shape_fn(4000, |i| (0.05 * i as f64).sin());
/// let spectrum = stft.compute(signal.view())?;
/// assert_eq!(spectrum.dim(), (257, 1 + 4000 / 128));
/// let back = stft.inverse(spectrum.view(), Some(4000))?;
/// assert!((&back - &signal).iter().all(|e| e.abs() < 1e-9));
/// # Ok::<(), tessera_spectro::Error>(())
/// ```
pub struct Stft<T: Float> {
    n_fft: usize,
    hop_length: usize,
    win_length: usize,
    window: Array1<T>,
    center: bool,
    pad_mode: PadMode,
    forward: Arc<dyn RealToComplex<T>>,
    inverse: Arc<dyn ComplexToReal<T>>,
}

impl<T: Float> std::fmt::Debug for Stft<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stft")
            .field("n_fft", &self.n_fft)
            .field("hop_length", &self.hop_length)
            .field("win_length", &self.win_length)
            .field("center", &self.center)
            .field("pad_mode", &self.pad_mode)
            .finish_non_exhaustive()
    }
}

impl<T: Float> Clone for Stft<T> {
    fn clone(&self) -> Self {
        Stft {
            n_fft: self.n_fft,
            hop_length: self.hop_length,
            win_length: self.win_length,
            window: self.window.clone(),
            center: self.center,
            pad_mode: self.pad_mode,
            forward: Arc::clone(&self.forward),
            inverse: Arc::clone(&self.inverse),
        }
    }
}

/// The largest accepted `n_fft` (2^24 samples, over 5 minutes at 48 kHz): an FFT plan and
/// its buffers are allocated from it, so larger sizes are an error instead of an abort.
pub const MAX_N_FFT: usize = 1 << 24;

impl<T: Float> Stft<T> {
    /// Checks `config` and builds the plan.
    ///
    /// # Errors
    /// `n_fft == 0`, `win_length == 0` or `> n_fft`, `hop_length == 0` (also when the default
    /// `win_length / 4` is zero), `n_fft > MAX_N_FFT`, or an invalid custom window.
    pub fn new(config: StftConfig) -> Result<Self> {
        if config.n_fft == 0 {
            return Err(Error::invalid("n_fft", 0, "must be at least 1"));
        }
        tessera_core::check::size_at_most("n_fft", config.n_fft, MAX_N_FFT)?;
        let win_length = config.win_length.unwrap_or(config.n_fft);
        if win_length == 0 {
            return Err(Error::invalid("win_length", 0, "must be at least 1"));
        }
        if win_length > config.n_fft {
            return Err(Error::invalid(
                "win_length",
                win_length,
                format!("must not exceed n_fft = {}", config.n_fft),
            ));
        }
        let hop_length = config.hop_length.unwrap_or(win_length / 4);
        if hop_length == 0 {
            return Err(Error::invalid(
                "hop_length",
                0,
                if config.hop_length.is_some() {
                    "must be at least 1".to_string()
                } else {
                    format!("the default win_length / 4 is 0 for win_length = {win_length}; set hop_length")
                },
            ));
        }
        let window = stft_window::<T>(&config.window, win_length, config.n_fft)?;
        Ok(Stft {
            n_fft: config.n_fft,
            hop_length,
            win_length,
            window,
            center: config.center,
            pad_mode: config.pad_mode,
            forward: tessera_fft::real_forward::<T>(config.n_fft)?,
            inverse: tessera_fft::real_inverse::<T>(config.n_fft)?,
        })
    }

    /// FFT size.
    pub fn n_fft(&self) -> usize {
        self.n_fft
    }

    /// Hop length in samples.
    pub fn hop_length(&self) -> usize {
        self.hop_length
    }

    /// Window length before zero-padding to `n_fft`.
    pub fn win_length(&self) -> usize {
        self.win_length
    }

    /// Whether frames are centred.
    pub fn center(&self) -> bool {
        self.center
    }

    /// The analysis window, zero-padded and centred to `n_fft` samples.
    pub fn window(&self) -> &Array1<T> {
        &self.window
    }

    /// Number of frequency bins, `n_fft / 2 + 1`.
    pub fn n_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    fn pad(&self) -> usize {
        if self.center {
            self.n_fft / 2
        } else {
            0
        }
    }

    /// Number of frames for a signal of `signal_len` samples:
    /// $1 + \lfloor (N + 2\lfloor n_{fft}/2 \rfloor - n_{fft}) / hop \rfloor$ centred,
    /// $1 + \lfloor (N - n_{fft}) / hop \rfloor$ otherwise.
    ///
    /// # Errors
    /// An empty signal; a signal shorter than `n_fft` without centring; reflect padding
    /// longer than the signal allows (`n_fft / 2 ≥ N`).
    pub fn frame_count(&self, signal_len: usize) -> Result<usize> {
        if signal_len == 0 {
            return Err(Error::invalid(
                "signal",
                "length 0",
                "must hold at least one sample",
            ));
        }
        if self.center {
            if self.pad_mode == PadMode::Reflect && self.n_fft / 2 >= signal_len {
                return Err(Error::invalid(
                    "pad_mode",
                    "Reflect",
                    format!(
                        "reflect padding of n_fft / 2 = {} samples needs a signal longer than \
                         that, got length {signal_len}; use PadMode::Constant or a smaller n_fft",
                        self.n_fft / 2
                    ),
                ));
            }
            Ok(1 + (signal_len + 2 * self.pad() - self.n_fft) / self.hop_length)
        } else {
            if signal_len < self.n_fft {
                return Err(Error::invalid(
                    "signal",
                    format!("length {signal_len}"),
                    format!(
                        "must be at least n_fft = {} samples for an uncentred STFT",
                        self.n_fft
                    ),
                ));
            }
            Ok(1 + (signal_len - self.n_fft) / self.hop_length)
        }
    }

    /// Checks that `signal` is non-empty, finite and long enough, and returns it as a
    /// contiguous slice together with its frame count.
    pub(crate) fn prepare<'a>(
        &self,
        signal: &'a ArrayView1<'_, T>,
    ) -> Result<(Cow<'a, [T]>, usize)> {
        let frames = self.frame_count(signal.len())?;
        let samples = match signal.as_slice() {
            Some(slice) => Cow::Borrowed(slice),
            None => Cow::Owned(signal.to_vec()),
        };
        if let Some((i, v)) = first_non_finite(&samples) {
            return Err(Error::invalid(
                "signal",
                format!("sample[{i}] = {v}"),
                "every sample must be finite",
            ));
        }
        Ok((samples, frames))
    }

    pub(crate) fn scratch(&self) -> FrameScratch<T> {
        FrameScratch {
            frame: self.forward.make_input_vec(),
            spectrum: self.forward.make_output_vec(),
            fft: self.forward.make_scratch_vec(),
        }
    }

    /// Runs the forward FFT of every frame and hands each spectrum to `visit(frame, bins)`.
    /// `signal` must have passed [`Stft::prepare`].
    pub(crate) fn for_each_frame(
        &self,
        signal: &[T],
        frames: usize,
        scratch: &mut FrameScratch<T>,
        mut visit: impl FnMut(usize, &[Complex<T>]),
    ) -> Result<()> {
        for t in 0..frames {
            self.fill_frame(signal, t, &mut scratch.frame);
            self.forward
                .process_with_scratch(&mut scratch.frame, &mut scratch.spectrum, &mut scratch.fft)
                .map_err(|e| Error::Fft(e.to_string()))?;
            visit(t, &scratch.spectrum);
        }
        Ok(())
    }

    /// Writes the windowed frame `t` of the (virtually) padded signal into `buffer`.
    fn fill_frame(&self, signal: &[T], t: usize, buffer: &mut [T]) {
        let start = (t * self.hop_length) as isize - self.pad() as isize;
        let window = self.window.as_slice().unwrap_or(&[]);
        if start >= 0 && start as usize + self.n_fft <= signal.len() {
            let segment = &signal[start as usize..start as usize + self.n_fft];
            for ((out, &w), &x) in buffer.iter_mut().zip(window).zip(segment) {
                *out = w * x;
            }
        } else {
            for (i, (out, &w)) in buffer.iter_mut().zip(window).enumerate() {
                *out = w * self.padded_sample(signal, start + i as isize);
            }
        }
    }

    /// Sample `index` of the signal extended by the pad mode (`index` counts from the first
    /// real sample and may be negative or past the end).
    fn padded_sample(&self, signal: &[T], index: isize) -> T {
        let n = signal.len() as isize;
        if (0..n).contains(&index) {
            return signal[index as usize];
        }
        match self.pad_mode {
            PadMode::Constant => T::zero(),
            PadMode::Reflect => {
                // frame_count guaranteed pad ≤ n − 1, so one reflection lands inside.
                let mirrored = if index < 0 {
                    -index
                } else {
                    2 * (n - 1) - index
                };
                signal
                    .get(mirrored.clamp(0, n - 1) as usize)
                    .copied()
                    .unwrap_or_else(T::zero)
            }
        }
    }

    /// The complex STFT of `signal`, shape `(n_fft / 2 + 1, frames)`, equal to `librosa.stft`.
    ///
    /// # Errors
    /// An empty or non-finite signal, or one too short (see [`Stft::frame_count`]).
    pub fn compute(&self, signal: ArrayView1<T>) -> Result<Array2<Complex<T>>> {
        let (samples, frames) = self.prepare(&signal)?;
        let mut out = Array2::zeros((self.n_bins(), frames));
        let mut scratch = self.scratch();
        self.for_each_frame(&samples, frames, &mut scratch, |t, spectrum| {
            out.column_mut(t).assign(&ArrayView1::from(spectrum));
        })?;
        Ok(out)
    }

    /// The inverse STFT with librosa `istft` semantics: inverse real FFT of each frame,
    /// windowing, overlap-add, division by the window sum-square wherever it exceeds the
    /// smallest normal number, and removal of the centring pad. `length` fixes the output
    /// length (zero-padded or truncated); `None` gives `n_fft + hop·(frames − 1)` samples
    /// minus the two pads.
    ///
    /// # Errors
    /// A spectrum with a row count other than `n_fft / 2 + 1`, no frames, a non-finite entry,
    /// or `length == Some(0)`.
    pub fn inverse(
        &self,
        spectrum: ArrayView2<Complex<T>>,
        length: Option<usize>,
    ) -> Result<Array1<T>> {
        let (bins, total_frames) = spectrum.dim();
        if bins != self.n_bins() {
            return Err(Error::invalid(
                "spectrum",
                format!("{bins} rows"),
                format!("must have n_fft / 2 + 1 = {} rows", self.n_bins()),
            ));
        }
        if total_frames == 0 {
            return Err(Error::invalid(
                "spectrum",
                "0 frames",
                "must hold at least one frame",
            ));
        }
        if length == Some(0) {
            return Err(Error::invalid("length", 0, "must be at least 1 (or None)"));
        }
        if let Some(((k, t), v)) = spectrum
            .indexed_iter()
            .find(|(_, v)| !(v.re.is_finite() && v.im.is_finite()))
        {
            return Err(Error::invalid(
                "spectrum",
                format!("entry[{k}, {t}] = {v}"),
                "every entry must be finite",
            ));
        }
        let frames = match length {
            Some(len) => {
                let padded = len + 2 * self.pad();
                total_frames.min(padded.div_ceil(self.hop_length))
            }
            None => total_frames,
        };
        let full_len = self.n_fft + self.hop_length * (frames - 1);
        let mut overlap_added = vec![T::zero(); full_len];
        let mut window_sum_square = vec![T::zero(); full_len];
        let mut column = self.inverse.make_input_vec();
        let mut frame = self.inverse.make_output_vec();
        let mut fft_scratch = self.inverse.make_scratch_vec();
        let scale = T::one() / T::from_f64_rounded(self.n_fft as f64);
        let window = self.window.as_slice().unwrap_or(&[]);
        for t in 0..frames {
            for (dst, src) in column.iter_mut().zip(spectrum.column(t)) {
                *dst = *src;
            }
            // numpy's irfft ignores the imaginary parts of the DC and (even n_fft) Nyquist
            // bins; realfft rejects them, so drop them first.
            column[0].im = T::zero();
            if self.n_fft % 2 == 0 {
                column[bins - 1].im = T::zero();
            }
            self.inverse
                .process_with_scratch(&mut column, &mut frame, &mut fft_scratch)
                .map_err(|e| Error::Fft(e.to_string()))?;
            let offset = t * self.hop_length;
            for (i, (&x, &w)) in frame.iter().zip(window).enumerate() {
                overlap_added[offset + i] += w * x * scale;
                window_sum_square[offset + i] += w * w;
            }
        }
        let start = self.pad();
        let out_len = length.unwrap_or(full_len - 2 * self.pad());
        let tiny = T::min_positive_value();
        Ok(Array1::from_shape_fn(out_len, |i| {
            let j = start + i;
            match (overlap_added.get(j), window_sum_square.get(j)) {
                (Some(&y), Some(&s)) if s > tiny => y / s,
                (Some(&y), _) => y,
                _ => T::zero(),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::WindowKind;

    fn naive_dft(frame: &[f64]) -> Vec<Complex<f64>> {
        let n = frame.len();
        (0..n / 2 + 1)
            .map(|k| {
                frame
                    .iter()
                    .enumerate()
                    .fold(Complex::new(0.0, 0.0), |acc, (i, &x)| {
                        let phase = -2.0 * std::f64::consts::PI * (k * i) as f64 / n as f64;
                        acc + Complex::new(phase.cos(), phase.sin()) * x
                    })
            })
            .collect()
    }

    #[test]
    fn matches_naive_dft_of_reflect_padded_frames() {
        let config = StftConfig {
            n_fft: 9,
            hop_length: Some(4),
            win_length: Some(7),
            window: Window::Periodic(WindowKind::Hamming),
            center: true,
            pad_mode: PadMode::Reflect,
        };
        let stft = Stft::<f64>::new(config).unwrap();
        let signal: Vec<f64> = (0..23).map(|i| ((i * 7919) % 13) as f64 - 6.0).collect();
        let spec = stft.compute(ArrayView1::from(&signal)).unwrap();
        // numpy.pad(mode="reflect") by 4 on each side.
        let mut padded: Vec<f64> = (1..=4).rev().map(|i| signal[i]).collect();
        padded.extend_from_slice(&signal);
        padded.extend((1..=4).map(|i| signal[signal.len() - 1 - i]));
        let window = stft.window().to_vec();
        assert_eq!(spec.ncols(), 1 + (padded.len() - 9) / 4);
        for t in 0..spec.ncols() {
            let frame: Vec<f64> = (0..9).map(|i| window[i] * padded[t * 4 + i]).collect();
            for (k, expected) in naive_dft(&frame).iter().enumerate() {
                assert!((spec[[k, t]] - expected).norm() < 1e-12);
            }
        }
    }

    #[test]
    fn invalid_configs_name_the_parameter() {
        let cases: Vec<(StftConfig, &str)> = vec![
            (StftConfig::new(0), "n_fft"),
            (
                StftConfig {
                    hop_length: Some(0),
                    ..StftConfig::new(8)
                },
                "hop_length",
            ),
            (StftConfig::new(2), "hop_length"),
            (
                StftConfig {
                    win_length: Some(9),
                    ..StftConfig::new(8)
                },
                "win_length",
            ),
            (
                StftConfig {
                    win_length: Some(0),
                    ..StftConfig::new(8)
                },
                "win_length",
            ),
        ];
        for (config, name) in cases {
            let err = Stft::<f32>::new(config.clone()).unwrap_err();
            assert!(err.to_string().contains(name), "{config:?}: {err}");
        }
    }

    #[test]
    fn bad_signals_are_errors() {
        let stft = Stft::<f64>::new(StftConfig::new(8)).unwrap();
        assert!(stft.compute(ArrayView1::from(&[] as &[f64])).is_err());
        let err = stft
            .compute(ArrayView1::from(&[0.0, f64::INFINITY, 1.0]))
            .unwrap_err();
        assert!(err.to_string().contains("sample[1]"), "{err}");
        let uncentred = Stft::<f64>::new(StftConfig {
            center: false,
            ..StftConfig::new(8)
        })
        .unwrap();
        assert!(uncentred.compute(ArrayView1::from(&[1.0; 7])).is_err());
        let reflect = Stft::<f64>::new(StftConfig {
            pad_mode: PadMode::Reflect,
            ..StftConfig::new(8)
        })
        .unwrap();
        let err = reflect.compute(ArrayView1::from(&[1.0; 4])).unwrap_err();
        assert!(err.to_string().contains("pad_mode"), "{err}");
        assert!(reflect.compute(ArrayView1::from(&[1.0; 5])).is_ok());
    }

    #[test]
    fn inverse_rejects_wrong_shapes() {
        let stft = Stft::<f64>::new(StftConfig::new(8)).unwrap();
        assert!(stft.inverse(Array2::zeros((4, 3)).view(), None).is_err());
        assert!(stft.inverse(Array2::zeros((5, 0)).view(), None).is_err());
        assert!(stft.inverse(Array2::zeros((5, 3)).view(), Some(0)).is_err());
        let mut bad = Array2::zeros((5, 3));
        bad[[1, 1]] = Complex::new(f64::NAN, 0.0);
        assert!(stft.inverse(bad.view(), None).is_err());
    }
}
