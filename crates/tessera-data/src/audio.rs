//! WAV input/output (hound), mono mixdown, resampling (rubato) and crop/pad to a clip length.

use std::path::Path;
use tessera_core::RejectInput;

use ndarray::{Array1, ArrayView1, Axis, Slice};
use rubato::{FftFixedIn, Resampler};

use crate::error::{Error, Result};

/// Where to cut a long signal (or pad a short one) to the clip length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FitMode {
    /// Keep the first samples; pad zeros at the end.
    #[default]
    Start,
    /// Keep the middle samples; pad zeros equally on both sides (the extra one at the end).
    Center,
}

/// How the loaders turn a WAV file into a fixed-length clip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipSpec {
    /// Target sample rate in Hz (files at another rate are resampled).
    pub sample_rate: u32,
    /// Clip length in samples at `sample_rate`.
    pub clip_samples: usize,
    /// Crop/pad rule.
    pub fit: FitMode,
}

impl ClipSpec {
    /// A spec of `seconds` at `sample_rate` with [`FitMode::Start`].
    ///
    /// # Errors
    /// A zero rate, or a non-finite or non-positive duration.
    pub fn from_seconds(sample_rate: u32, seconds: f64) -> Result<Self> {
        if sample_rate == 0 {
            return Err(Error::invalid("sample_rate", 0, "must be positive"));
        }
        if !(seconds.is_finite() && seconds > 0.0) {
            return Err(Error::invalid("seconds", seconds, "must be positive"));
        }
        let spec = Self {
            sample_rate,
            clip_samples: (seconds * f64::from(sample_rate)).round() as usize,
            fit: FitMode::Start,
        };
        spec.check()?;
        Ok(spec)
    }

    /// The SSLH clip settings of ESC-10: 44.1 kHz, 5 s.
    pub fn esc10() -> Self {
        Self {
            sample_rate: 44_100,
            clip_samples: 5 * 44_100,
            fit: FitMode::Start,
        }
    }

    /// The SSLH clip settings of UrbanSound8K: 22.05 kHz, 4 s.
    pub fn urbansound8k() -> Self {
        Self {
            sample_rate: 22_050,
            clip_samples: 4 * 22_050,
            fit: FitMode::Start,
        }
    }

    /// The clip settings of Speech Commands: 16 kHz, 1 s.
    pub fn speech_commands() -> Self {
        Self {
            sample_rate: 16_000,
            clip_samples: 16_000,
            fit: FitMode::Start,
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.sample_rate == 0 {
            return Err(Error::invalid("sample_rate", 0, "must be positive"));
        }
        if self.clip_samples == 0 {
            return Err(Error::invalid("clip_samples", 0, "must be positive"));
        }
        Ok(())
    }
}

/// A decoded WAV file mixed down to mono.
#[derive(Debug, Clone, PartialEq)]
pub struct MonoAudio {
    /// Samples in $[-1, 1]$ (integer PCM divided by $2^{\text{bits}-1}$; float passed through).
    pub samples: Array1<f32>,
    /// The file's sample rate in Hz.
    pub sample_rate: u32,
}

/// Reads a WAV file (8/16/24/32-bit integer PCM or 32-bit float, any channel count) and
/// averages its channels to mono.
///
/// # Errors
/// [`Error::Io`] if the file cannot be opened, [`Error::CorruptWav`] if it cannot be decoded
/// or holds no samples or a non-finite sample.
pub fn read_wav_mono(path: impl AsRef<Path>) -> Result<MonoAudio> {
    let path = path.as_ref();
    let corrupt = |reason: String| Error::CorruptWav {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader =
        hound::WavReader::new(std::io::BufReader::new(file)).map_err(|e| corrupt(e.to_string()))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels);
    if channels == 0 || spec.sample_rate == 0 {
        return Err(corrupt(format!(
            "{channels} channels at {} Hz",
            spec.sample_rate
        )));
    }
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .into_samples::<f32>()
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| corrupt(e.to_string()))?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| corrupt(e.to_string()))?
        }
    };
    if interleaved.is_empty() {
        return Err(corrupt("no samples".into()));
    }
    if interleaved.iter().any(|x| !x.is_finite()) {
        return Err(corrupt("non-finite sample".into()));
    }
    let samples: Array1<f32> = interleaved
        .chunks(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    Ok(MonoAudio {
        samples,
        sample_rate: spec.sample_rate,
    })
}

/// Writes a mono 16-bit PCM WAV file: sample $x$ becomes $\mathrm{round}(32768 x)$ clipped
/// to the `i16` range, the inverse of [`read_wav_mono`]'s scaling.
///
/// # Errors
/// [`Error::Io`] / [`Error::CorruptWav`] if the file cannot be written; a zero rate or a
/// non-finite sample is an [`Error::Input`].
pub fn write_wav_mono(
    path: impl AsRef<Path>,
    samples: ArrayView1<f32>,
    sample_rate: u32,
) -> Result<()> {
    let path = path.as_ref();
    if sample_rate == 0 {
        return Err(Error::invalid("sample_rate", 0, "must be positive"));
    }
    if let Some(bad) = samples.iter().position(|x| !x.is_finite()) {
        return Err(Error::invalid(
            "samples",
            format!("samples[{bad}] = {}", samples[bad]),
            "must be finite",
        ));
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let failed = |e: hound::Error| match e {
        hound::Error::IoError(io) => Error::io(path, io),
        other => Error::CorruptWav {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(failed)?;
    for &x in samples {
        writer
            .write_sample((x * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16)
            .map_err(failed)?;
    }
    writer.finalize().map_err(failed)
}

/// Resamples a whole signal from `from_rate` to `to_rate` with rubato's synchronous FFT
/// resampler ([`rubato::FftFixedIn`]), compensating its delay so that output sample $m$ lies
/// at time $m / \text{to\_rate}$; the output has $\lceil N \cdot \text{to} / \text{from} \rceil$
/// samples. Equal rates return a copy.
///
/// # Errors
/// Zero rates, an empty or non-finite signal, or a resampler failure.
pub fn resample(signal: ArrayView1<f32>, from_rate: u32, to_rate: u32) -> Result<Array1<f32>> {
    if from_rate == 0 {
        return Err(Error::invalid("from_rate", 0, "must be positive"));
    }
    if to_rate == 0 {
        return Err(Error::invalid("to_rate", 0, "must be positive"));
    }
    if signal.is_empty() {
        return Err(Error::invalid("signal", "[]", "must not be empty"));
    }
    if let Some(bad) = signal.iter().position(|x| !x.is_finite()) {
        return Err(Error::invalid(
            "signal",
            format!("signal[{bad}] = {}", signal[bad]),
            "must be finite",
        ));
    }
    if from_rate == to_rate {
        return Ok(signal.to_owned());
    }
    let failed = |reason: String| Error::Resample {
        from_rate,
        to_rate,
        reason,
    };
    let wanted = (signal.len() as u64 * u64::from(to_rate)).div_ceil(u64::from(from_rate)) as usize;
    const CHUNK: usize = 1024;
    let mut resampler = FftFixedIn::<f32>::new(from_rate as usize, to_rate as usize, CHUNK, 2, 1)
        .map_err(|e| failed(e.to_string()))?;
    let delay = resampler.output_delay();
    let input: Vec<f32> = signal.iter().copied().collect();
    let mut output: Vec<f32> = Vec::with_capacity(wanted + delay + CHUNK);
    let mut chunks = input.chunks_exact(CHUNK);
    for chunk in chunks.by_ref() {
        let produced = resampler
            .process(&[chunk], None)
            .map_err(|e| failed(e.to_string()))?;
        output.extend_from_slice(&produced[0]);
    }
    let remainder = chunks.remainder();
    if !remainder.is_empty() {
        let produced = resampler
            .process_partial(Some(&[remainder]), None)
            .map_err(|e| failed(e.to_string()))?;
        output.extend_from_slice(&produced[0]);
    }
    // Flush the delay line with silence until the whole signal has come out.
    while output.len() < delay + wanted {
        let produced = resampler
            .process_partial::<&[f32]>(None, None)
            .map_err(|e| failed(e.to_string()))?;
        if produced[0].is_empty() {
            return Err(failed("the resampler stopped producing output".into()));
        }
        output.extend_from_slice(&produced[0]);
    }
    Ok(Array1::from(output[delay..delay + wanted].to_vec()))
}

/// Crops or zero-pads `signal` to exactly `length` samples according to `mode`.
pub fn fit_length(signal: ArrayView1<f32>, length: usize, mode: FitMode) -> Array1<f32> {
    let n = signal.len();
    let mut out = Array1::zeros(length);
    if n >= length {
        let start = match mode {
            FitMode::Start => 0,
            FitMode::Center => (n - length) / 2,
        };
        out.assign(&signal.slice_axis(Axis(0), Slice::from(start..start + length)));
    } else {
        let start = match mode {
            FitMode::Start => 0,
            FitMode::Center => (length - n) / 2,
        };
        out.slice_axis_mut(Axis(0), Slice::from(start..start + n))
            .assign(&signal);
    }
    out
}

/// Reads `path`, mixes to mono, resamples to `spec.sample_rate` and fits to
/// `spec.clip_samples`.
///
/// # Errors
/// As [`read_wav_mono`] and [`resample`], and an invalid `spec`.
pub fn load_clip(path: impl AsRef<Path>, spec: &ClipSpec) -> Result<Array1<f32>> {
    spec.check()?;
    let audio = read_wav_mono(path)?;
    let at_rate = resample(audio.samples.view(), audio.sample_rate, spec.sample_rate)?;
    Ok(fit_length(at_rate.view(), spec.clip_samples, spec.fit))
}
