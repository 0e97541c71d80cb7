//! WAV input (feature `wav`): integer and float PCM to `f32`/`f64` with librosa's scaling,
//! multichannel to mono by averaging.

use std::io::Read;
use std::path::Path;

use ndarray::Array1;

use crate::error::{Error, Result};
use crate::Float;

/// A decoded mono signal and its sampling rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio<T> {
    /// Samples in $[-1, 1)$ for integer input (value / $2^{bits-1}$), as stored for float input.
    pub samples: Array1<T>,
    /// Sampling rate in Hz.
    pub sample_rate: u32,
    /// Channel count of the file before down-mixing.
    pub channels: u16,
}

/// Reads a WAV file (librosa `load(path, sr=None, mono=True)` without resampling).
///
/// Integer PCM of 1 to 32 bits per sample is scaled by $2^{-(bits-1)}$; 32-bit float is
/// taken as is; channels are averaged.
///
/// # Errors
/// [`Error::Wav`] if the file cannot be opened or parsed, [`Error::UnsupportedWav`] for float
/// samples other than 32-bit, integer samples wider than 32 bits, zero channels, or
/// non-finite float samples.
pub fn read_wav<T: Float>(path: impl AsRef<Path>) -> Result<Audio<T>> {
    let name = path.as_ref().display().to_string();
    let reader = hound::WavReader::open(path.as_ref()).map_err(|source| Error::Wav {
        path: name.clone(),
        source,
    })?;
    decode(reader, &name)
}

/// Like [`read_wav`] from any reader (an in-memory buffer, a network stream).
///
/// # Errors
/// As [`read_wav`].
pub fn read_wav_from<T: Float, R: Read>(reader: R) -> Result<Audio<T>> {
    let name = "<reader>".to_string();
    let reader = hound::WavReader::new(reader).map_err(|source| Error::Wav {
        path: name.clone(),
        source,
    })?;
    decode(reader, &name)
}

fn decode<T: Float, R: Read>(mut reader: hound::WavReader<R>, name: &str) -> Result<Audio<T>> {
    let spec = reader.spec();
    let unsupported = |reason: String| Error::UnsupportedWav {
        path: name.to_string(),
        reason,
    };
    if spec.channels == 0 {
        return Err(unsupported("0 channels".into()));
    }
    let wav_error = |source| Error::Wav {
        path: name.to_string(),
        source,
    };
    let interleaved: Vec<f64> = match spec.sample_format {
        hound::SampleFormat::Int => {
            if spec.bits_per_sample == 0 || spec.bits_per_sample > 32 {
                return Err(unsupported(format!(
                    "integer samples of {} bits (1 to 32 are supported)",
                    spec.bits_per_sample
                )));
            }
            let scale = 1.0 / 2f64.powi(i32::from(spec.bits_per_sample) - 1);
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| f64::from(v) * scale))
                .collect::<std::result::Result<_, _>>()
                .map_err(wav_error)?
        }
        hound::SampleFormat::Float => {
            if spec.bits_per_sample != 32 {
                return Err(unsupported(format!(
                    "float samples of {} bits (only 32-bit float is supported)",
                    spec.bits_per_sample
                )));
            }
            reader
                .samples::<f32>()
                .map(|s| s.map(f64::from))
                .collect::<std::result::Result<_, _>>()
                .map_err(wav_error)?
        }
    };
    if let Some((i, v)) = interleaved.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(unsupported(format!(
            "sample {i} is {v}; samples must be finite"
        )));
    }
    let channels = usize::from(spec.channels);
    let frames = interleaved.len() / channels;
    let samples = Array1::from_shape_fn(frames, |i| {
        let frame = &interleaved[i * channels..(i + 1) * channels];
        T::from_f64_rounded(frame.iter().sum::<f64>() / channels as f64)
    });
    Ok(Audio {
        samples,
        sample_rate: spec.sample_rate,
        channels: spec.channels,
    })
}
