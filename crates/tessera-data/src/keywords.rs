//! Synthetic keyword audio: a Speech-Commands-like task generated from a seed.
//!
//! Each class is a distinct spectro-temporal pattern (formant-shaped harmonic stacks, a
//! diphthong glide, up/down chirps, AM and FM tones, band-limited noise bursts, a
//! fricative+vowel syllable, a double beep). Every clip draws its own pitch, speaking rate,
//! onset, vocal-tract scale, loudness, background noise level and hum, so a classifier must
//! learn the pattern rather than memorise a template.

use std::f64::consts::PI;
use tessera_core::RejectInput;

use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::dataset::AudioDataset;
use crate::error::{Error, Result};
use crate::hash::mix_seed;

/// Names of the generated classes, in label order (a configuration uses the first
/// `n_classes`).
pub const KEYWORD_CLASSES: [&str; 12] = [
    "aa", "ee", "oo", "up", "down", "wow", "vee", "shh", "tuk", "aiy", "sa", "beep",
];

/// Formant frequencies (Hz) of the vowels /a/, /i/, /u/ (Peterson & Barney 1952 averages).
const FORMANTS_A: [f64; 3] = [730.0, 1090.0, 2440.0];
const FORMANTS_I: [f64; 3] = [270.0, 2290.0, 3010.0];
const FORMANTS_U: [f64; 3] = [300.0, 870.0, 2240.0];
const FORMANT_GAINS: [f64; 3] = [1.0, 0.6, 0.3];
const FORMANT_BANDWIDTHS: [f64; 3] = [90.0, 110.0, 160.0];

/// Settings of the generator; [`KeywordConfig::default`] gives the 10-class, 16 kHz, 1 s task.
#[derive(Debug, Clone, PartialEq)]
pub struct KeywordConfig {
    /// Number of classes, `2..=12` (the first entries of [`KEYWORD_CLASSES`]).
    pub n_classes: usize,
    /// Clips of each class (the dataset is exactly class-balanced).
    pub clips_per_class: usize,
    /// Sample rate in Hz, `8000..=192000`.
    pub sample_rate: u32,
    /// Clip length in seconds, `(0.25, 10]`.
    pub clip_seconds: f64,
    /// Seed: the same seed gives the same clips bit for bit.
    pub seed: u64,
    /// Largest random pitch shift in semitones, either way (`0..=12`).
    pub pitch_semitones: f64,
    /// Speaking-rate range `(slowest, fastest)`, drawn log-uniformly; `0.25 ≤ lo ≤ hi ≤ 4`.
    pub speed_range: (f64, f64),
    /// Loudness range in dB relative to an RMS of 0.1 (`lo ≤ hi ≤ 0`).
    pub loudness_db: (f64, f64),
    /// Signal-to-noise ratio range in dB of the background (`-20 ≤ lo ≤ hi ≤ 60`).
    pub snr_db: (f64, f64),
}

impl Default for KeywordConfig {
    fn default() -> Self {
        Self {
            n_classes: 10,
            clips_per_class: 100,
            sample_rate: 16_000,
            clip_seconds: 1.0,
            seed: 0,
            pitch_semitones: 4.0,
            speed_range: (0.75, 1.33),
            loudness_db: (-20.0, 0.0),
            snr_db: (0.0, 20.0),
        }
    }
}

fn check_range(name: &'static str, range: (f64, f64), lo: f64, hi: f64) -> Result<()> {
    let (a, b) = range;
    if !(a.is_finite() && b.is_finite() && lo <= a && a <= b && b <= hi) {
        return Err(Error::invalid(
            name,
            format!("({a}, {b})"),
            format!("need {lo} <= lo <= hi <= {hi}"),
        ));
    }
    Ok(())
}

/// The checked generator. Clip `i` has label `i % n_classes` and its own random stream
/// derived from `(seed, i)`, so any clip can be produced alone, in any order.
#[derive(Debug, Clone)]
pub struct SyntheticKeywords {
    config: KeywordConfig,
    clip_samples: usize,
}

impl SyntheticKeywords {
    /// Checks `config`.
    ///
    /// # Errors
    /// Any field outside the range its documentation gives.
    pub fn new(config: KeywordConfig) -> Result<Self> {
        if !(2..=KEYWORD_CLASSES.len()).contains(&config.n_classes) {
            return Err(Error::invalid(
                "n_classes",
                config.n_classes,
                format!("must lie in 2..={}", KEYWORD_CLASSES.len()),
            ));
        }
        if config.clips_per_class == 0 {
            return Err(Error::invalid("clips_per_class", 0, "must be at least 1"));
        }
        if !(8_000..=192_000).contains(&config.sample_rate) {
            return Err(Error::invalid(
                "sample_rate",
                config.sample_rate,
                "must lie in 8000..=192000 Hz",
            ));
        }
        if !(config.clip_seconds.is_finite()
            && config.clip_seconds > 0.25
            && config.clip_seconds <= 10.0)
        {
            return Err(Error::invalid(
                "clip_seconds",
                config.clip_seconds,
                "must lie in (0.25, 10]",
            ));
        }
        if !(config.pitch_semitones.is_finite() && (0.0..=12.0).contains(&config.pitch_semitones)) {
            return Err(Error::invalid(
                "pitch_semitones",
                config.pitch_semitones,
                "must lie in [0, 12]",
            ));
        }
        check_range("speed_range", config.speed_range, 0.25, 4.0)?;
        check_range("loudness_db", config.loudness_db, -120.0, 0.0)?;
        check_range("snr_db", config.snr_db, -20.0, 60.0)?;
        let clip_samples = (config.clip_seconds * f64::from(config.sample_rate)).round() as usize;
        Ok(Self {
            config,
            clip_samples,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &KeywordConfig {
        &self.config
    }

    /// Total number of clips, `n_classes · clips_per_class`.
    pub fn len(&self) -> usize {
        self.config.n_classes * self.config.clips_per_class
    }

    /// Always false (a checked configuration has at least two clips).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Samples per clip.
    pub fn clip_samples(&self) -> usize {
        self.clip_samples
    }

    /// Label of clip `index` (`index % n_classes`: classes interleave, so every prefix of
    /// the dataset is balanced to within one clip per class).
    pub fn label(&self, index: usize) -> usize {
        index % self.config.n_classes
    }

    /// Class names of this configuration.
    pub fn class_names(&self) -> Vec<String> {
        KEYWORD_CLASSES[..self.config.n_classes]
            .iter()
            .map(|name| name.to_string())
            .collect()
    }

    /// Generates clip `index` alone.
    ///
    /// # Errors
    /// `index >= len()`.
    pub fn clip(&self, index: usize) -> Result<Array1<f32>> {
        if index >= self.len() {
            return Err(Error::invalid(
                "index",
                index,
                format!("the task has {} clips", self.len()),
            ));
        }
        Ok(self.synthesise(index))
    }

    /// Generates every clip (in parallel; the result does not depend on the thread count).
    pub fn generate(&self) -> AudioDataset {
        use rayon::prelude::*;
        let rows: Vec<Array1<f32>> = (0..self.len())
            .into_par_iter()
            .map(|index| self.synthesise(index))
            .collect();
        let mut clips = Array2::zeros((self.len(), self.clip_samples));
        for (mut row, clip) in clips.outer_iter_mut().zip(rows) {
            row.assign(&clip);
        }
        AudioDataset {
            clips,
            labels: (0..self.len()).map(|i| self.label(i)).collect(),
            class_names: self.class_names(),
            sample_rate: self.config.sample_rate,
            ids: (0..self.len())
                .map(|i| format!("keywords-{}-{i}", self.config.seed))
                .collect(),
            folds: None,
        }
    }

    fn synthesise(&self, index: usize) -> Array1<f32> {
        let config = &self.config;
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(config.seed, index as u64));
        let sr = f64::from(config.sample_rate);
        let n = self.clip_samples;

        let pitch = 2f64.powf(rng.random_range(-1.0..=1.0) * config.pitch_semitones / 12.0);
        let (slow, fast) = config.speed_range;
        let speed = (rng.random::<f64>() * (fast / slow).ln() + slow.ln()).exp();
        let tract = rng.random_range(0.9..=1.1);
        let class = self.label(index);
        let nominal_seconds = [
            0.45, 0.45, 0.45, 0.5, 0.5, 0.55, 0.55, 0.35, 0.6, 0.55, 0.6, 0.55,
        ];
        let event_len = ((nominal_seconds[class] / speed * sr) as usize).clamp(16, n * 19 / 20);
        let onset = rng.random_range(0..=n - event_len);

        let event = Event {
            sr,
            len: event_len,
            pitch,
            tract,
        };
        let mut signal = event.render(class, &mut rng);

        let level =
            0.1 * 10f64.powf(rng.random_range(config.loudness_db.0..=config.loudness_db.1) / 20.0);
        let rms = (signal.iter().map(|x| x * x).sum::<f64>() / event_len as f64).sqrt();
        let gain = if rms > 0.0 { level / rms } else { 0.0 };
        signal.iter_mut().for_each(|x| *x *= gain);

        let snr = rng.random_range(config.snr_db.0..=config.snr_db.1);
        let noise_rms = level / 10f64.powf(snr / 20.0);
        let mut clip = background(n, sr, noise_rms, &mut rng);
        for (t, x) in signal.iter().enumerate() {
            clip[onset + t] += x;
        }
        Array1::from_iter(clip.into_iter().map(|x| x.clamp(-1.0, 1.0) as f32))
    }
}

/// White + brown noise at a given RMS, plus (half the time) a quiet mains-like hum.
fn background(n: usize, sr: f64, noise_rms: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let brown_share = rng.random_range(0.0..=0.8);
    let mut brown = 0.0;
    let mut noise: Vec<f64> = (0..n)
        .map(|_| {
            let white: f64 = StandardNormal.sample(rng);
            brown = 0.995 * brown + 0.1 * white;
            (1.0 - brown_share) * white + brown_share * brown
        })
        .collect();
    normalise_rms(&mut noise, noise_rms);
    if rng.random_bool(0.5) {
        let hum_hz = rng.random_range(50.0..=400.0);
        let hum_amp = noise_rms * rng.random_range(0.1..=0.5);
        let phase = rng.random_range(0.0..2.0 * PI);
        for (t, x) in noise.iter_mut().enumerate() {
            *x += hum_amp * (2.0 * PI * hum_hz * t as f64 / sr + phase).sin();
        }
    }
    noise
}

fn normalise_rms(signal: &mut [f64], target: f64) {
    let rms = (signal.iter().map(|x| x * x).sum::<f64>() / signal.len().max(1) as f64).sqrt();
    if rms > 0.0 {
        signal.iter_mut().for_each(|x| *x *= target / rms);
    }
}

/// Raised-cosine attack and release over `ramp` of the event (as a fraction of it).
fn envelope(u: f64, ramp: f64) -> f64 {
    if u < ramp {
        0.5 - 0.5 * (PI * u / ramp).cos()
    } else if u > 1.0 - ramp {
        0.5 - 0.5 * (PI * (1.0 - u) / ramp).cos()
    } else {
        1.0
    }
}

/// One keyword utterance: its length in samples and the per-clip voice parameters.
struct Event {
    sr: f64,
    len: usize,
    pitch: f64,
    tract: f64,
}

impl Event {
    fn render(&self, class: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
        match class {
            0 => self.vowel(FORMANTS_A, FORMANTS_A, rng),
            1 => self.vowel(FORMANTS_I, FORMANTS_I, rng),
            2 => self.vowel(FORMANTS_U, FORMANTS_U, rng),
            3 => self.chirp(450.0, 2400.0, rng),
            4 => self.chirp(2400.0, 450.0, rng),
            5 => self.am_tone(rng),
            6 => self.fm_tone(rng),
            7 => self.noise_bursts(2200.0, 5500.0, 1, rng),
            8 => self.noise_bursts(250.0, 1100.0, 3, rng),
            9 => self.vowel(FORMANTS_A, FORMANTS_I, rng),
            10 => self.fricative_vowel(rng),
            _ => self.beeps(rng),
        }
    }

    /// A glottal-like harmonic stack whose harmonics are weighted by three formant
    /// resonances that glide linearly from `start` to `end` (equal for a steady vowel).
    fn vowel(&self, start: [f64; 3], end: [f64; 3], rng: &mut ChaCha8Rng) -> Vec<f64> {
        let f0 = rng.random_range(110.0..=180.0) * self.pitch;
        let intonation = rng.random_range(-0.2..=0.2);
        let nyquist_guard = 0.45 * self.sr;
        let n_harmonics = (nyquist_guard / (f0 * 1.25)).floor().max(1.0) as usize;
        let mut phase: f64 = rng.random_range(0.0..2.0 * PI);
        let mut out = vec![0.0; self.len];
        let mut amps = vec![0.0; n_harmonics];
        for (t, sample) in out.iter_mut().enumerate() {
            let u = t as f64 / self.len as f64;
            let f0_now = f0 * (1.0 + intonation * (u - 0.5));
            phase += 2.0 * PI * f0_now / self.sr;
            // Formant weights change slowly: refresh them every 64 samples.
            if t % 64 == 0 {
                for (k, amp) in amps.iter_mut().enumerate() {
                    let freq = (k + 1) as f64 * f0_now;
                    *amp = if freq < nyquist_guard {
                        (0..3)
                            .map(|i| {
                                let centre = self.tract * (start[i] + (end[i] - start[i]) * u);
                                let offset = (freq - centre) / FORMANT_BANDWIDTHS[i];
                                FORMANT_GAINS[i] / (1.0 + offset * offset)
                            })
                            .sum()
                    } else {
                        0.0
                    };
                }
            }
            // sin(kφ) by the Chebyshev recurrence sin(kφ) = 2cos φ·sin((k−1)φ) − sin((k−2)φ):
            // one sin and one cos per sample instead of one sin per harmonic (≈5× faster;
            // stable in f64 for the ≤ 60 harmonics used here).
            let (sin_1, cos_1) = phase.sin_cos();
            let twice_cos = 2.0 * cos_1;
            let (mut sin_prev, mut sin_k) = (0.0, sin_1);
            let mut voiced = 0.0;
            for amp in &amps {
                voiced += amp * sin_k;
                let sin_next = twice_cos * sin_k - sin_prev;
                sin_prev = sin_k;
                sin_k = sin_next;
            }
            *sample = voiced * envelope(u, 0.15);
        }
        out
    }

    /// An exponential sweep with a weak second harmonic.
    fn chirp(&self, from_hz: f64, to_hz: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let jitter = rng.random_range(0.85..=1.15);
        let (from, to) = (from_hz * self.pitch * jitter, to_hz * self.pitch / jitter);
        let mut phase: f64 = rng.random_range(0.0..2.0 * PI);
        (0..self.len)
            .map(|t| {
                let u = t as f64 / self.len as f64;
                let freq = from * (to / from).powf(u);
                phase += 2.0 * PI * freq / self.sr;
                (phase.sin() + 0.3 * (2.0 * phase).sin()) * envelope(u, 0.1)
            })
            .collect()
    }

    /// A tone whose amplitude is modulated at a syllabic rate (a "wow-wow" tremolo).
    fn am_tone(&self, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let carrier = rng.random_range(700.0..=1300.0) * self.pitch;
        let rate = rng.random_range(9.0..=15.0) * self.pitch.sqrt();
        let depth = rng.random_range(0.7..=1.0);
        let phase0: f64 = rng.random_range(0.0..2.0 * PI);
        (0..self.len)
            .map(|t| {
                let u = t as f64 / self.len as f64;
                let time = t as f64 / self.sr;
                let modulation = 1.0 - depth * 0.5 * (1.0 - (2.0 * PI * rate * time).cos());
                modulation * (2.0 * PI * carrier * time + phase0).sin() * envelope(u, 0.1)
            })
            .collect()
    }

    /// A tone with a wide, slow vibrato.
    fn fm_tone(&self, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let carrier = rng.random_range(700.0..=1300.0) * self.pitch;
        let rate = rng.random_range(5.0..=8.0);
        let deviation = rng.random_range(0.12..=0.25) * carrier;
        let mut phase: f64 = rng.random_range(0.0..2.0 * PI);
        (0..self.len)
            .map(|t| {
                let u = t as f64 / self.len as f64;
                let time = t as f64 / self.sr;
                let freq = carrier + deviation * (2.0 * PI * rate * time).sin();
                phase += 2.0 * PI * freq / self.sr;
                phase.sin() * envelope(u, 0.1)
            })
            .collect()
    }

    /// `count` equal bursts of band-pass noise separated by silences.
    fn noise_bursts(&self, low: f64, high: f64, count: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let noise = band_noise(self.len, self.sr, low * self.tract, high * self.tract, rng);
        let duty = rng.random_range(0.55..=0.8);
        noise
            .into_iter()
            .enumerate()
            .map(|(t, x)| {
                let position = t as f64 / self.len as f64 * count as f64;
                let within = position.fract();
                let gate = if within < duty {
                    envelope(within / duty, 0.2)
                } else {
                    0.0
                };
                x * gate
            })
            .collect()
    }

    /// A high fricative (30–45% of the event) followed by the vowel /a/.
    fn fricative_vowel(&self, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let split = (self.len as f64 * rng.random_range(0.3..=0.45)) as usize;
        let fricative = Event {
            len: split.max(16),
            ..*self
        };
        let vowel = Event {
            len: (self.len - split).max(16),
            ..*self
        };
        let mut out = fricative.noise_bursts(3800.0, 7000.0, 1, rng);
        let mut voiced = vowel.vowel(FORMANTS_A, FORMANTS_A, rng);
        normalise_rms(&mut out, 0.5);
        normalise_rms(&mut voiced, 1.0);
        out.extend(voiced);
        out.truncate(self.len);
        out.resize(self.len, 0.0);
        out
    }

    /// Two short beeps with a gap.
    fn beeps(&self, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let freq = rng.random_range(1300.0..=1900.0) * self.pitch;
        let duty = rng.random_range(0.5..=0.7);
        let phase0: f64 = rng.random_range(0.0..2.0 * PI);
        (0..self.len)
            .map(|t| {
                let position = t as f64 / self.len as f64 * 2.0;
                let within = position.fract();
                let gate = if within < duty {
                    envelope(within / duty, 0.1)
                } else {
                    0.0
                };
                gate * (2.0 * PI * freq * t as f64 / self.sr + phase0).sin()
            })
            .collect()
    }
}

/// White noise through two cascaded band-pass biquads (RBJ audio-EQ cookbook, constant
/// 0 dB peak gain) centred on the geometric mean of `[low, high]`.
fn band_noise(len: usize, sr: f64, low: f64, high: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let high = high.min(0.45 * sr);
    let low = low.min(0.5 * high);
    let centre = (low * high).sqrt();
    let q = centre / (high - low);
    let omega = 2.0 * PI * centre / sr;
    let alpha = omega.sin() / (2.0 * q);
    let a0 = 1.0 + alpha;
    let (b0, b2) = (alpha / a0, -alpha / a0);
    let (a1, a2) = (-2.0 * omega.cos() / a0, (1.0 - alpha) / a0);
    let mut out: Vec<f64> = (0..len).map(|_| StandardNormal.sample(rng)).collect();
    for _ in 0..2 {
        let (mut x1, mut x2, mut y1, mut y2) = (0.0, 0.0, 0.0, 0.0);
        for x in out.iter_mut() {
            let y = b0 * *x + b2 * x2 - a1 * y1 - a2 * y2;
            x2 = x1;
            x1 = *x;
            y2 = y1;
            y1 = y;
            *x = y;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> SyntheticKeywords {
        SyntheticKeywords::new(KeywordConfig {
            n_classes: 12,
            clips_per_class: 2,
            seed,
            ..KeywordConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn clips_are_finite_bounded_and_not_silent() {
        let data = small(1).generate();
        assert_eq!(data.clips.dim(), (24, 16_000));
        for clip in data.clips.outer_iter() {
            assert!(clip.iter().all(|x| x.is_finite() && x.abs() <= 1.0));
            let rms = (clip.iter().map(|x| x * x).sum::<f32>() / 16_000.0).sqrt();
            assert!(rms > 1e-4, "rms {rms}");
        }
    }

    #[test]
    fn a_single_clip_equals_the_same_row_of_the_dataset() {
        let generator = small(5);
        let data = generator.generate();
        assert_eq!(generator.clip(7).unwrap(), data.clip(7));
        assert!(generator.clip(24).is_err());
    }

    #[test]
    fn invalid_configs_name_the_field() {
        let cases: Vec<(KeywordConfig, &str)> = vec![
            (
                KeywordConfig {
                    n_classes: 13,
                    ..KeywordConfig::default()
                },
                "n_classes",
            ),
            (
                KeywordConfig {
                    clips_per_class: 0,
                    ..KeywordConfig::default()
                },
                "clips_per_class",
            ),
            (
                KeywordConfig {
                    sample_rate: 100,
                    ..KeywordConfig::default()
                },
                "sample_rate",
            ),
            (
                KeywordConfig {
                    clip_seconds: f64::NAN,
                    ..KeywordConfig::default()
                },
                "clip_seconds",
            ),
            (
                KeywordConfig {
                    speed_range: (1.5, 1.0),
                    ..KeywordConfig::default()
                },
                "speed_range",
            ),
            (
                KeywordConfig {
                    snr_db: (0.0, f64::INFINITY),
                    ..KeywordConfig::default()
                },
                "snr_db",
            ),
            (
                KeywordConfig {
                    pitch_semitones: -1.0,
                    ..KeywordConfig::default()
                },
                "pitch_semitones",
            ),
        ];
        for (config, field) in cases {
            let err = SyntheticKeywords::new(config).unwrap_err().to_string();
            assert!(err.contains(field), "{err} should name {field}");
        }
    }
}
