//! The generated tasks: deterministic from the seed, class-balanced, and each keyword class
//! really has the spectro-temporal pattern its name promises.

use ndarray::{Array1, Array2, ArrayView1, Axis};
use tessera_data::{
    load_digits, KeywordConfig, Shapes, ShapesConfig, SyntheticKeywords, KEYWORD_CLASSES,
};

fn keywords(seed: u64, clips_per_class: usize) -> SyntheticKeywords {
    SyntheticKeywords::new(KeywordConfig {
        n_classes: 12,
        clips_per_class,
        seed,
        ..KeywordConfig::default()
    })
    .unwrap()
}

#[test]
fn keywords_are_deterministic_and_balanced() {
    let a = keywords(42, 2).generate();
    let b = keywords(42, 2).generate();
    let c = keywords(43, 2).generate();
    assert_eq!(a, b, "same seed, same clips bit for bit");
    assert_ne!(a.clips, c.clips, "another seed, other clips");
    assert_eq!(a.class_counts().unwrap(), vec![2; 12]);
    assert_eq!(a.class_names, KEYWORD_CLASSES.map(String::from).to_vec());
    assert_eq!(a.ids[5], "keywords-42-5");
    // Clip i depends only on (seed, i): a larger task starts with the same clips.
    let larger = keywords(42, 3).generate();
    assert_eq!(larger.clips.row(17), a.clips.row(17));
    // Clips of one class differ from each other (random pitch, timing, noise...).
    assert_ne!(a.clips.row(0), a.clips.row(12));
}

/// Power spectrogram (Hann, 512-point frames, hop 256) as (frames, bins).
fn spectrogram(signal: ArrayView1<f32>) -> Array2<f64> {
    let fft = tessera_fft::real_forward::<f64>(512).unwrap();
    let frames = 1 + (signal.len() - 512) / 256;
    let mut out = Array2::zeros((frames, 257));
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    for f in 0..frames {
        for (n, x) in input.iter_mut().enumerate() {
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / 512.0).cos();
            *x = f64::from(signal[f * 256 + n]) * w;
        }
        fft.process(&mut input, &mut spectrum).unwrap();
        for (k, c) in spectrum.iter().enumerate() {
            out[[f, k]] = c.norm_sqr();
        }
    }
    out
}

/// Spectral centroid (Hz) of the frames holding at least 10% of the loudest frame's energy.
fn active_centroids(signal: ArrayView1<f32>) -> Vec<f64> {
    let spec = spectrogram(signal);
    let energy = spec.sum_axis(Axis(1));
    let loudest = energy.fold(0f64, |a, &b| a.max(b));
    spec.outer_iter()
        .zip(energy.iter())
        .filter(|(_, &e)| e >= 0.1 * loudest)
        .map(|(row, &e)| {
            row.iter()
                .enumerate()
                .map(|(k, p)| k as f64 * 16_000.0 / 512.0 * p)
                .sum::<f64>()
                / e
        })
        .collect()
}

fn clean_clip(class: usize, seed: u64) -> Array1<f32> {
    let generator = SyntheticKeywords::new(KeywordConfig {
        n_classes: 12,
        clips_per_class: 1,
        seed,
        snr_db: (60.0, 60.0),
        ..KeywordConfig::default()
    })
    .unwrap();
    generator.clip(class).unwrap()
}

fn slope(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean_t = (n - 1.0) / 2.0;
    let mean_v = values.iter().sum::<f64>() / n;
    let cov: f64 = values
        .iter()
        .enumerate()
        .map(|(t, v)| (t as f64 - mean_t) * (v - mean_v))
        .sum();
    cov / values
        .iter()
        .enumerate()
        .map(|(t, _)| (t as f64 - mean_t).powi(2))
        .sum::<f64>()
}

#[test]
fn keyword_classes_have_their_patterns() {
    for seed in 0..3 {
        let up = active_centroids(clean_clip(3, seed).view());
        let down = active_centroids(clean_clip(4, seed).view());
        assert!(slope(&up) > 20.0, "up-chirp centroid rises: {up:?}");
        assert!(slope(&down) < -20.0, "down-chirp centroid falls: {down:?}");

        let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
        let shh = mean(active_centroids(clean_clip(7, seed).view()));
        let tuk = mean(active_centroids(clean_clip(8, seed).view()));
        assert!(shh > 2_000.0 && tuk < 1_300.0, "shh {shh} Hz, tuk {tuk} Hz");

        // /i/ has a low F1 and a high F2, /a/ a high F1: compare energy below 500 Hz.
        let low_share = |clip: Array1<f32>| {
            let spec = spectrogram(clip.view()).sum_axis(Axis(0));
            spec.iter().take(16).sum::<f64>() / spec.sum()
        };
        let (a, i) = (
            low_share(clean_clip(0, seed)),
            low_share(clean_clip(1, seed)),
        );
        assert!(i > a, "/i/ low-band share {i} vs /a/ {a}");

        // The diphthong /a/→/i/: the centroid rises as F2 glides from 1090 to 2290 Hz.
        let glide = active_centroids(clean_clip(9, seed).view());
        assert!(slope(&glide) > 0.0, "diphthong centroid rises: {glide:?}");
    }
}

#[test]
fn loudness_and_snr_follow_the_config() {
    let quiet = SyntheticKeywords::new(KeywordConfig {
        clips_per_class: 1,
        loudness_db: (-40.0, -40.0),
        snr_db: (60.0, 60.0),
        ..KeywordConfig::default()
    })
    .unwrap()
    .generate();
    for clip in quiet.clips.outer_iter() {
        let peak = clip.fold(0f32, |a, &b| a.max(b.abs()));
        // RMS 0.1 · 10^(-40/20) = 0.001 over the event; peaks stay within a few times that.
        assert!(peak < 0.01 && peak > 0.0005, "peak {peak}");
    }
}

#[test]
fn shapes_are_deterministic_and_balanced() {
    let config = ShapesConfig {
        images_per_class: 3,
        height: 16,
        width: 16,
        seed: 3,
        ..ShapesConfig::default()
    };
    let a = Shapes::new(config.clone()).unwrap().generate();
    let b = Shapes::new(config.clone()).unwrap().generate();
    let c = Shapes::new(ShapesConfig { seed: 4, ..config })
        .unwrap()
        .generate();
    assert_eq!(a, b);
    assert_ne!(a.images, c.images);
    assert_eq!(a.class_counts().unwrap(), vec![3; 10]);
    assert_eq!(a.images.dim(), (30, 3, 16, 16));
    assert_eq!(a.flattened().dim(), (30, 768));
    let subset = a.subset(&[4, 1]).unwrap();
    assert_eq!(subset.labels, vec![4, 1]);
    assert!(a.subset(&[30]).is_err());
}

#[test]
fn digits_are_nearly_balanced() {
    let digits = load_digits().unwrap();
    let counts = digits.class_counts().unwrap();
    assert_eq!(counts.iter().sum::<usize>(), 1797);
    assert!(
        counts.iter().all(|&c| (174..=183).contains(&c)),
        "{counts:?}"
    );
}
