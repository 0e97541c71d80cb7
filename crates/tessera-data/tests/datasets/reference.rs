//! Checks against naive or analytic references.

use crate::common;

use tessera_data::{class_counts, stratified_split};

/// Naive reference: the per-class labelled counts a stratified split must give.
fn expected_counts(counts: &[usize], fraction: f64) -> Vec<usize> {
    counts
        .iter()
        .map(|&n| {
            if n == 0 {
                0
            } else {
                ((fraction * n as f64).round() as usize).clamp(1, n)
            }
        })
        .collect()
}

#[test]
fn stratified_counts_match_the_naive_rule_on_unbalanced_classes() {
    // Classes of 3, 10, 57, 0 and 130 items, interleaved irregularly.
    let sizes = [3usize, 10, 57, 0, 130];
    let mut labels = Vec::new();
    for (class, &size) in sizes.iter().enumerate() {
        labels.extend(std::iter::repeat_n(class, size));
    }
    labels.rotate_left(41);
    for fraction in [0.05, 0.1, 0.25, 0.5, 1.0] {
        let split = stratified_split(&labels, sizes.len(), fraction, 17).unwrap();
        let chosen: Vec<usize> = split.labelled.iter().map(|&i| labels[i]).collect();
        assert_eq!(
            class_counts(&chosen, sizes.len()).unwrap(),
            expected_counts(&sizes, fraction),
            "fraction {fraction}"
        );
    }
}

#[cfg(feature = "wav")]
mod audio {
    use super::common::{peak_frequency, sine, write_pcm16, TempDir};
    use approx::assert_abs_diff_eq;
    use ndarray::Array1;
    use tessera_data::{fit_length, load_clip, resample, ClipSpec, FitMode};

    /// Naive reference for crop/pad.
    fn naive_fit(signal: &[f32], length: usize, centre: bool) -> Vec<f32> {
        let mut out = vec![0.0; length];
        if signal.len() >= length {
            let start = if centre {
                (signal.len() - length) / 2
            } else {
                0
            };
            out.copy_from_slice(&signal[start..start + length]);
        } else {
            let start = if centre {
                (length - signal.len()) / 2
            } else {
                0
            };
            out[start..start + signal.len()].copy_from_slice(signal);
        }
        out
    }

    #[test]
    fn fit_length_matches_the_naive_crop_and_pad() {
        let signal: Vec<f32> = (0..37).map(|i| i as f32 + 1.0).collect();
        for length in [1, 10, 36, 37, 38, 80] {
            for (mode, centre) in [(FitMode::Start, false), (FitMode::Center, true)] {
                let fitted = fit_length(Array1::from(signal.clone()).view(), length, mode);
                assert_eq!(fitted.to_vec(), naive_fit(&signal, length, centre));
            }
        }
    }

    /// Resampling a sine must keep its frequency (checked with a naive DFT) and its
    /// samples (checked against the analytic sine at the new rate, away from the edges).
    #[test]
    fn resampling_preserves_a_sine() {
        for (from, to, freq) in [
            (44_100u32, 16_000u32, 1_000.0),
            (22_050, 16_000, 3_000.0),
            (16_000, 44_100, 440.0),
            (8_000, 22_050, 2_500.0),
        ] {
            let n = from as usize / 4;
            let input = Array1::from(sine(freq, from, n, 0.5));
            let output = resample(input.view(), from, to).unwrap();
            let expected_len = (n as u64 * u64::from(to)).div_ceil(u64::from(from)) as usize;
            assert_eq!(output.len(), expected_len);
            let peak = peak_frequency(&output.as_slice().unwrap()[..2_000], to, 10.0);
            assert_abs_diff_eq!(peak, freq, epsilon = 10.0);
            let m = output.len();
            let worst = (m / 10..m - m / 10)
                .map(|t| {
                    let analytic =
                        0.5 * (2.0 * std::f64::consts::PI * freq * t as f64 / f64::from(to)).sin();
                    (f64::from(output[t]) - analytic).abs()
                })
                .fold(0f64, f64::max);
            assert!(worst < 2e-3, "{from}->{to}: max error {worst}");
        }
    }

    #[test]
    fn resample_rejects_bad_input() {
        let x = Array1::from(vec![0.0f32, 1.0]);
        let err = resample(x.view(), 0, 16_000).unwrap_err().to_string();
        assert!(err.contains("from_rate"), "{err}");
        let err = resample(x.view(), 16_000, 0).unwrap_err().to_string();
        assert!(err.contains("to_rate"), "{err}");
        let err = resample(Array1::<f32>::zeros(0).view(), 16_000, 8_000)
            .unwrap_err()
            .to_string();
        assert!(err.contains("signal"), "{err}");
        let bad = Array1::from(vec![0.0f32, f32::NAN]);
        let err = resample(bad.view(), 16_000, 8_000).unwrap_err().to_string();
        assert!(err.contains("signal[1]"), "{err}");
        assert_eq!(resample(x.view(), 8_000, 8_000).unwrap(), x);
    }

    #[test]
    fn wav_round_trip_through_load_clip() {
        let dir = TempDir::new("roundtrip");
        let path = dir.path().join("tone.wav");
        let samples = sine(1_234.0, 16_000, 4_000, 0.7);
        write_pcm16(&path, &samples, 16_000, 1);
        let clip = load_clip(
            &path,
            &ClipSpec {
                sample_rate: 16_000,
                clip_samples: 3_000,
                fit: FitMode::Center,
            },
        )
        .unwrap();
        for (t, &x) in clip.iter().enumerate() {
            assert_abs_diff_eq!(x, samples[t + 500], epsilon = 0.5 / 32_768.0 + 1e-7);
        }
        // Our own writer reads back to within one 16-bit step.
        let ours = dir.path().join("ours.wav");
        tessera_data::write_wav_mono(&ours, clip.view(), 16_000).unwrap();
        let back = tessera_data::read_wav_mono(&ours).unwrap();
        assert_eq!(back.sample_rate, 16_000);
        for (a, b) in back.samples.iter().zip(clip.iter()) {
            assert_abs_diff_eq!(a, b, epsilon = 0.5 / 32_768.0 + 1e-7);
        }
        let err =
            tessera_data::write_wav_mono(&ours, Array1::from(vec![f32::INFINITY]).view(), 16_000)
                .unwrap_err()
                .to_string();
        assert!(err.contains("samples[0]"), "{err}");
        let err = tessera_data::read_wav_mono(dir.path().join("absent.wav"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent.wav"), "{err}");
    }
}
