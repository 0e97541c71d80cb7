//! WAV input/output (hound), mono mixdown, resampling (rubato) and crop/pad to a clip length.

use std::path::Path;
use tessera_core::RejectInput;

use ndarray::{Array1, ArrayView1, Axis, Slice};
use rubato::{FftFixedIn, Resampler};

use crate::error::{Error, Result};

/// The lowest sample rate accepted, in Hz (from a file, a [`ClipSpec`] or [`resample`]).
pub const MIN_SAMPLE_RATE: u32 = 1;
/// The highest sample rate accepted, in Hz: 768 kHz, the highest rate of common audio
/// hardware and formats (8 × 96 kHz); a header claiming more is corrupt, and it would make
/// the resampler's FFT sizes (which grow with the rates) unbounded.
pub const MAX_SAMPLE_RATE: u32 = 768_000;
/// The largest magnitude accepted for a sample (float WAVs, [`resample`]'s input): float
/// audio is nominally within $[-1, 1]$; $10^6$ leaves 120 dB of headroom, while larger
/// values (one flipped exponent bit gives $10^{36}$) are corruption and overflow the
/// resampler's FFT.
pub const MAX_SAMPLE_MAGNITUDE: f32 = 1.0e6;
/// The most samples [`resample`] produces (2^28, 1 GiB of `f32`, 1.7 h at 44.1 kHz).
pub const MAX_RESAMPLED_SAMPLES: usize = 1 << 28;

/// Checks a sample rate against [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`].
pub(crate) fn check_sample_rate(name: &'static str, rate: u32) -> Result<()> {
    if (MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(Error::invalid(
            name,
            format!("{rate} Hz"),
            format!("must be within {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz"),
        ))
    }
}

/// The first sample that is non-finite or larger in magnitude than
/// [`MAX_SAMPLE_MAGNITUDE`], with its index.
fn first_bad_sample<'a>(samples: impl IntoIterator<Item = &'a f32>) -> Option<(usize, f32)> {
    samples
        .into_iter()
        .copied()
        .enumerate()
        .find(|(_, x)| !(x.is_finite() && x.abs() <= MAX_SAMPLE_MAGNITUDE))
}

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
        check_sample_rate("sample_rate", sample_rate)?;
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
        check_sample_rate("sample_rate", self.sample_rate)?;
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
/// [`Error::Io`] if the file cannot be opened, [`Error::CorruptWav`] if it cannot be decoded,
/// its header claims more data than the file holds, a sample rate outside
/// [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`] or an unsupported sample size, or it holds no
/// samples or a sample that is non-finite or larger than [`MAX_SAMPLE_MAGNITUDE`] (named by
/// its index).
pub fn read_wav_mono(path: impl AsRef<Path>) -> Result<MonoAudio> {
    let path = path.as_ref();
    let corrupt = |reason: String| Error::CorruptWav {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let reader =
        hound::WavReader::new(std::io::BufReader::new(file)).map_err(|e| corrupt(e.to_string()))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels);
    if channels == 0 {
        return Err(corrupt("the header claims 0 channels".into()));
    }
    if let Err(e) = check_sample_rate("sample_rate", spec.sample_rate) {
        return Err(corrupt(format!("the header's sample rate: {e}")));
    }
    let bits = spec.bits_per_sample;
    let bits_ok = match spec.sample_format {
        hound::SampleFormat::Float => bits == 32,
        hound::SampleFormat::Int => (1..=32).contains(&bits),
    };
    if !bits_ok {
        return Err(corrupt(format!(
            "{bits} bits per sample ({:?}) is not supported",
            spec.sample_format
        )));
    }
    // The data size the header claims must fit in the file before anything is read.
    let claimed_bytes = u64::from(reader.len()) * u64::from(bits.div_ceil(8));
    if claimed_bytes > file_len {
        return Err(corrupt(format!(
            "the header claims {} samples ({claimed_bytes} bytes) but the file has {file_len} bytes",
            reader.len()
        )));
    }
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .into_samples::<f32>()
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| corrupt(e.to_string()))?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
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
    if let Some((index, value)) = first_bad_sample(&interleaved) {
        return Err(corrupt(format!(
            "sample {index} = {value} is not finite or exceeds the magnitude limit \
             {MAX_SAMPLE_MAGNITUDE:e}"
        )));
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
    check_sample_rate("sample_rate", sample_rate)?;
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
/// Rates outside [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`], an empty signal, a sample that
/// is non-finite or larger than [`MAX_SAMPLE_MAGNITUDE`], an output longer than
/// [`MAX_RESAMPLED_SAMPLES`], or a resampler failure.
pub fn resample(signal: ArrayView1<f32>, from_rate: u32, to_rate: u32) -> Result<Array1<f32>> {
    check_sample_rate("from_rate", from_rate)?;
    check_sample_rate("to_rate", to_rate)?;
    if signal.is_empty() {
        return Err(Error::invalid("signal", "[]", "must not be empty"));
    }
    if let Some((bad, value)) = first_bad_sample(signal) {
        return Err(Error::invalid(
            "signal",
            format!("signal[{bad}] = {value}"),
            format!("must be finite with magnitude at most {MAX_SAMPLE_MAGNITUDE:e}"),
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
    // The output length comes from the real input; it is bounded before anything is
    // allocated.
    let wanted = (signal.len() as u64 * u64::from(to_rate)).div_ceil(u64::from(from_rate));
    let wanted = usize::try_from(wanted)
        .ok()
        .filter(|&w| w <= MAX_RESAMPLED_SAMPLES)
        .ok_or_else(|| {
            Error::too_large(
                "resampled length",
                format!(
                    "{wanted} samples ({} samples at {from_rate} Hz -> {to_rate} Hz)",
                    signal.len()
                ),
                MAX_RESAMPLED_SAMPLES,
            )
        })?;
    // rubato's FFT sizes are multiples of the rates divided by their gcd, `from/g` in and
    // `to/g` out. Pick the chunk so that one input chunk holds two FFT blocks (about 512
    // input frames each for rates with a large gcd): then every call produces output. A
    // fixed chunk of 1024 frames is smaller than one FFT block for rates such as
    // 16001 -> 16000 (block 16001), and the calls that only buffer input return nothing.
    let gcd = gcd(from_rate, to_rate);
    let (min_in, min_out) = ((from_rate / gcd) as usize, (to_rate / gcd) as usize);
    let blocks = 512usize
        .div_ceil(min_in)
        .min(MAX_SAMPLE_RATE as usize / min_out.max(min_in))
        .max(1);
    let chunk = 2 * blocks * min_in;
    let mut resampler = FftFixedIn::<f32>::new(from_rate as usize, to_rate as usize, chunk, 2, 1)
        .map_err(|e| failed(e.to_string()))?;
    let delay = resampler.output_delay();
    let input: Vec<f32> = signal.iter().copied().collect();
    let mut output: Vec<f32> = Vec::with_capacity(wanted + delay + 2 * chunk.max(min_out));
    let mut chunks = input.chunks_exact(chunk);
    for piece in chunks.by_ref() {
        let produced = resampler
            .process(&[piece], None)
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
    // Flush the delay line with silence until the whole signal has come out; every call
    // produces at least one FFT block, so this ends.
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

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
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
