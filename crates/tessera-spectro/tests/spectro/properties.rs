//! Property tests (proptest): filterbank shape rules, Parseval, invertibility, additivity of
//! power on disjoint bands, and the frame-count formula.

use ndarray::Array1;
use proptest::prelude::*;
use tessera_spectro::{
    fft_frequencies, mel_filterbank_with_empty, mel_frequencies, MelConfig, MelNorm, MelScale,
    MelSpectrogram, PadMode, Stft, StftConfig, Window, WindowKind,
};

fn scale_strategy() -> impl Strategy<Value = MelScale> {
    prop_oneof![Just(MelScale::Slaney), Just(MelScale::Htk)]
}

fn signal_strategy(min: usize, max: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-1.0f64..1.0, min..max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every weight is non-negative; with Slaney normalisation each triangle has unit area
    /// in Hz, up to the Riemann-sum error of sampling it at the bin spacing Δ (at most
    /// 2Δ / base, since the peak is 2 / base).
    #[test]
    fn filterbank_rows_nonnegative_with_unit_slaney_area(
        n_fft in 256usize..2049,
        n_mels in 4usize..40,
        scale in scale_strategy(),
        fmin in 0.0f64..500.0,
    ) {
        let sr = 16000.0;
        let (weights, _) = mel_filterbank_with_empty::<f64>(sr, n_fft, n_mels, fmin, sr / 2.0, scale, MelNorm::Slaney).unwrap();
        prop_assert!(weights.iter().all(|w| *w >= 0.0));
        let edges = mel_frequencies(n_mels + 2, fmin, sr / 2.0, scale).unwrap();
        let spacing = fft_frequencies(sr, n_fft).unwrap()[1];
        for (m, row) in weights.outer_iter().enumerate() {
            let base = edges[m + 2] - edges[m];
            let area: f64 = row.sum() * spacing;
            prop_assert!((area - 1.0).abs() <= 2.0 * spacing / base + 1e-9,
                "row {m}: area {area}, base {base} Hz, spacing {spacing} Hz");
        }
        let (peaks, _) = mel_filterbank_with_empty::<f64>(sr, n_fft, n_mels, fmin, sr / 2.0, scale, MelNorm::None).unwrap();
        prop_assert!(peaks.iter().all(|w| (0.0..=1.0).contains(w)));
    }

    /// With a rectangular window and hop = n_fft (non-overlapping frames), the one-sided
    /// spectrum carries exactly the frame energy: Σ_k c_k |X_k|² / n_fft = Σ x², with
    /// c_k = 1 for DC and (even n_fft) Nyquist, 2 otherwise.
    #[test]
    fn parseval_with_rectangular_window(n_fft in 1usize..300, x in signal_strategy(300, 1200)) {
        let stft = Stft::<f64>::new(StftConfig {
            hop_length: Some(n_fft),
            window: Window::Periodic(WindowKind::Rectangular),
            center: false,
            ..StftConfig::new(n_fft)
        }).unwrap();
        let spec = stft.compute(Array1::from(x.clone()).view()).unwrap();
        let frames = spec.ncols();
        let time_energy: f64 = x[..frames * n_fft].iter().map(|v| v * v).sum();
        let bins = spec.nrows();
        let mut freq_energy = 0.0;
        for ((k, _), c) in spec.indexed_iter() {
            let twice = !(k == 0 || (n_fft % 2 == 0 && k == bins - 1));
            freq_energy += if twice { 2.0 } else { 1.0 } * c.norm_sqr();
        }
        freq_energy /= n_fft as f64;
        prop_assert!((freq_energy - time_energy).abs() <= 1e-10 * time_energy.max(1e-300),
            "{freq_energy} vs {time_energy}");
    }

    /// istft(stft(x), length = N) = x for a Hann window with hop ≤ n_fft / 4, both pad modes,
    /// any n_fft, win_length ≤ n_fft.
    #[test]
    fn istft_inverts_stft(
        n_fft in 8usize..257,
        win_fraction in 0.6f64..1.0,
        hop_divisor in 4usize..9,
        reflect in any::<bool>(),
        x in signal_strategy(300, 900),
    ) {
        let win_length = ((n_fft as f64 * win_fraction) as usize).max(8);
        let hop = (win_length / hop_divisor).max(1);
        let stft = Stft::<f64>::new(StftConfig {
            hop_length: Some(hop),
            win_length: Some(win_length),
            pad_mode: if reflect { PadMode::Reflect } else { PadMode::Constant },
            ..StftConfig::new(n_fft)
        }).unwrap();
        let signal = Array1::from(x);
        let spec = stft.compute(signal.view()).unwrap();
        let back = stft.inverse(spec.view(), Some(signal.len())).unwrap();
        let worst = back.iter().zip(signal.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        prop_assert!(worst < 1e-9, "worst reconstruction error {worst}");
    }

    /// Sinusoids at integer bin frequencies put their (Hann-windowed) energy in three bins;
    /// two sets of such tones whose bins are at least three apart have no cross terms, so
    /// the mel power of the sum is the sum of the mel powers, never less than either part.
    #[test]
    fn mel_power_of_sum_on_disjoint_bands(
        low in prop::collection::vec((2usize..60, 0.1f64..1.0, 0.0f64..6.3), 1..4),
        high in prop::collection::vec((80usize..250, 0.1f64..1.0, 0.0f64..6.3), 1..4),
        hop in 100usize..600,
    ) {
        let n_fft = 512;
        let sr = 16000.0;
        let tone = |parts: &[(usize, f64, f64)]| Array1::from_shape_fn(6000, |i| {
            parts.iter().map(|&(bin, amp, phase)| {
                amp * (2.0 * std::f64::consts::PI * (bin * i) as f64 / n_fft as f64 + phase).cos()
            }).sum::<f64>()
        });
        let a = tone(&low);
        let b = tone(&high);
        let plan = MelSpectrogram::<f64>::new(MelConfig {
            n_fft,
            hop_length: hop,
            center: false,
            n_mels: 32,
            ..MelConfig::librosa(sr)
        }).unwrap();
        let ma = plan.compute(a.view()).unwrap();
        let mb = plan.compute(b.view()).unwrap();
        let mab = plan.compute((&a + &b).view()).unwrap();
        let scale = mab.iter().cloned().fold(0.0, f64::max);
        for ((&s, &pa), &pb) in mab.iter().zip(ma.iter()).zip(mb.iter()) {
            prop_assert!(s >= pa.max(pb) - 1e-9 * scale, "{s} < max({pa}, {pb})");
            prop_assert!((s - pa - pb).abs() <= 1e-9 * scale);
        }
    }

    /// Output shapes follow the frame formula for every configuration that is valid.
    #[test]
    fn shapes_follow_the_frame_formula(
        n_fft in 1usize..600,
        hop in 1usize..300,
        len in 1usize..3000,
        center in any::<bool>(),
        reflect in any::<bool>(),
    ) {
        let pad_mode = if reflect { PadMode::Reflect } else { PadMode::Constant };
        let stft = Stft::<f32>::new(StftConfig { hop_length: Some(hop), center, pad_mode, ..StftConfig::new(n_fft) }).unwrap();
        let x = Array1::<f32>::from_shape_fn(len, |i| (i as f32 * 0.37).sin());
        let expected = if center {
            if reflect && n_fft / 2 >= len { None } else { Some(1 + (len + 2 * (n_fft / 2) - n_fft) / hop) }
        } else if len >= n_fft {
            Some(1 + (len - n_fft) / hop)
        } else {
            None
        };
        match (expected, stft.compute(x.view())) {
            (Some(frames), Ok(spec)) => prop_assert_eq!(spec.dim(), (n_fft / 2 + 1, frames)),
            (None, Err(_)) => {}
            (e, r) => prop_assert!(false, "expected {e:?}, got {:?}", r.map(|s| s.dim())),
        }
        if center && n_fft % 2 == 0 && !(reflect && n_fft / 2 >= len) {
            prop_assert_eq!(stft.frame_count(len).unwrap(), 1 + len / hop);
        }
    }
}
