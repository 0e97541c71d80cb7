//! Helpers shared by the integration tests: a self-deleting temporary folder and WAV writers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A unique folder under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "tessera-data-{tag}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn sine(freq: f64, sample_rate: u32, n: usize, amplitude: f64) -> Vec<f32> {
    (0..n)
        .map(|t| {
            (amplitude
                * (2.0 * std::f64::consts::PI * freq * t as f64 / f64::from(sample_rate)).sin())
                as f32
        })
        .collect()
}

#[cfg(feature = "wav")]
/// Writes 16-bit PCM with `channels` interleaved copies of `samples` (each channel scaled by
/// `1 / (c + 1)` so that the mixdown is checkable).
pub fn write_pcm16(path: &Path, samples: &[f32], sample_rate: u32, channels: u16) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    let spec = hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for &x in samples {
        for c in 0..channels {
            let value = x / f32::from(c + 1);
            writer
                .write_sample((value * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16)
                .unwrap();
        }
    }
    writer.finalize().unwrap();
}

#[cfg(feature = "wav")]
pub fn write_float(path: &Path, samples: &[f32], sample_rate: u32) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for &x in samples {
        writer.write_sample(x).unwrap();
    }
    writer.finalize().unwrap();
}

pub fn write_text(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// Frequency of the largest DFT magnitude in (0, sr/2), by a direct (naive) DFT on a grid of
/// `step` Hz: independent of any FFT library.
pub fn peak_frequency(signal: &[f32], sample_rate: u32, step: f64) -> f64 {
    let sr = f64::from(sample_rate);
    let mut best = (0.0, f64::MIN);
    let mut freq = step;
    while freq < sr / 2.0 {
        let (mut re, mut im) = (0.0, 0.0);
        for (t, &x) in signal.iter().enumerate() {
            let angle = 2.0 * std::f64::consts::PI * freq * t as f64 / sr;
            re += f64::from(x) * angle.cos();
            im -= f64::from(x) * angle.sin();
        }
        let magnitude = re * re + im * im;
        if magnitude > best.1 {
            best = (freq, magnitude);
        }
        freq += step;
    }
    best.0
}
