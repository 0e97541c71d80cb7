//! Cross-checks against naive, independent implementations: an O(n²) DFT on explicitly
//! padded frames, a dense filterbank product, a direct dB formula and f32 vs f64.

use approx::assert_abs_diff_eq;
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_spectro::{
    mel_filterbank, power_to_db, Complex, DbConfig, Float, LogMelConfig, LogMelSpectrogram,
    MelConfig, MelNorm, MelScale, MelSpectrogram, PadMode, Reference, Window, WindowKind,
};

/// numpy.pad semantics, written out directly.
fn pad(x: &[f64], amount: usize, mode: PadMode) -> Vec<f64> {
    let n = x.len();
    let mut out = Vec::with_capacity(n + 2 * amount);
    for i in (1..=amount).rev() {
        out.push(match mode {
            PadMode::Constant => 0.0,
            PadMode::Reflect => x[i],
        });
    }
    out.extend_from_slice(x);
    for i in 1..=amount {
        out.push(match mode {
            PadMode::Constant => 0.0,
            PadMode::Reflect => x[n - 1 - i],
        });
    }
    out
}

/// The window from its textbook formula, zero-padded and centred.
fn textbook_window(kind: WindowKind, win_length: usize, n_fft: usize) -> Vec<f64> {
    let m = win_length as f64;
    let phase = |i: usize| 2.0 * std::f64::consts::PI * i as f64 / m;
    let left = (n_fft - win_length) / 2;
    let mut w = vec![0.0; n_fft];
    for i in 0..win_length {
        w[left + i] = match kind {
            WindowKind::Hann => 0.5 - 0.5 * phase(i).cos(),
            WindowKind::Hamming => 0.54 - 0.46 * phase(i).cos(),
            WindowKind::Blackman => 0.42 - 0.5 * phase(i).cos() + 0.08 * (2.0 * phase(i)).cos(),
            WindowKind::Rectangular => 1.0,
        };
    }
    w
}

struct Case {
    sr: f64,
    n_fft: usize,
    hop: usize,
    win_length: usize,
    kind: WindowKind,
    center: bool,
    pad_mode: PadMode,
    power: f64,
    n_mels: usize,
    scale: MelScale,
    norm: MelNorm,
}

fn naive_mel(x: &[f64], c: &Case) -> Array2<f64> {
    let padded = if c.center {
        pad(x, c.n_fft / 2, c.pad_mode)
    } else {
        x.to_vec()
    };
    let window = textbook_window(c.kind, c.win_length, c.n_fft);
    let frames = 1 + (padded.len() - c.n_fft) / c.hop;
    let bins = c.n_fft / 2 + 1;
    let mut power = Array2::<f64>::zeros((bins, frames));
    for t in 0..frames {
        for k in 0..bins {
            let mut acc = Complex::new(0.0, 0.0);
            for i in 0..c.n_fft {
                let angle =
                    -2.0 * std::f64::consts::PI * ((k * i) % c.n_fft) as f64 / c.n_fft as f64;
                acc += Complex::new(angle.cos(), angle.sin()) * (window[i] * padded[t * c.hop + i]);
            }
            power[[k, t]] = acc.norm().powf(c.power);
        }
    }
    let fb =
        mel_filterbank::<f64>(c.sr, c.n_fft, c.n_mels, 0.0, c.sr / 2.0, c.scale, c.norm).unwrap();
    fb.dot(&power)
}

fn plan_for(c: &Case) -> MelConfig {
    MelConfig {
        n_fft: c.n_fft,
        hop_length: c.hop,
        win_length: Some(c.win_length),
        window: Window::Periodic(c.kind),
        center: c.center,
        pad_mode: c.pad_mode,
        power: c.power,
        n_mels: c.n_mels,
        scale: c.scale,
        norm: c.norm,
        ..MelConfig::librosa(c.sr)
    }
}

fn random_signal(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

#[test]
fn mel_spectrogram_matches_naive_dft_reference() {
    let cases = [
        Case {
            sr: 8000.0,
            n_fft: 64,
            hop: 16,
            win_length: 64,
            kind: WindowKind::Hann,
            center: true,
            pad_mode: PadMode::Constant,
            power: 2.0,
            n_mels: 10,
            scale: MelScale::Slaney,
            norm: MelNorm::Slaney,
        },
        Case {
            sr: 16000.0,
            n_fft: 75,
            hop: 20,
            win_length: 60,
            kind: WindowKind::Blackman,
            center: true,
            pad_mode: PadMode::Reflect,
            power: 1.0,
            n_mels: 8,
            scale: MelScale::Htk,
            norm: MelNorm::None,
        },
        Case {
            sr: 11025.0,
            n_fft: 96,
            hop: 33,
            win_length: 81,
            kind: WindowKind::Hamming,
            center: false,
            pad_mode: PadMode::Constant,
            power: 0.7,
            n_mels: 12,
            scale: MelScale::Slaney,
            norm: MelNorm::None,
        },
        Case {
            sr: 22050.0,
            n_fft: 50,
            hop: 7,
            win_length: 50,
            kind: WindowKind::Rectangular,
            center: true,
            pad_mode: PadMode::Reflect,
            power: 2.0,
            n_mels: 6,
            scale: MelScale::Htk,
            norm: MelNorm::Slaney,
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let x = random_signal(500, i as u64);
        let expected = naive_mel(&x, case);
        let got = MelSpectrogram::<f64>::new(plan_for(case))
            .unwrap()
            .compute(Array1::from(x.clone()).view())
            .unwrap();
        assert_eq!(got.dim(), expected.dim(), "case {i}");
        let scale = expected.iter().cloned().fold(0.0, f64::max);
        assert_abs_diff_eq!(got, expected, epsilon = 1e-10 * scale);
        // The f32 path agrees with the f64 one to f32 precision.
        let single = MelSpectrogram::<f32>::new(plan_for(case))
            .unwrap()
            .compute(Array1::from_iter(x.iter().map(|&v| v as f32)).view())
            .unwrap();
        for (a, b) in single.iter().zip(got.iter()) {
            assert_abs_diff_eq!(a.to_f64_exact(), *b, epsilon = 1e-5 * scale);
        }
    }
}

#[test]
fn log_mel_matches_direct_formula_per_item() {
    let plan = LogMelSpectrogram::<f64>::new(LogMelConfig {
        mel: MelConfig {
            n_fft: 256,
            hop_length: 64,
            n_mels: 20,
            ..MelConfig::librosa(8000.0)
        },
        db: DbConfig {
            reference: Reference::Max,
            amin: 1e-10,
            top_db: Some(40.0),
        },
    })
    .unwrap();
    let mut signals = Array2::<f64>::zeros((2, 1000));
    for (b, mut row) in signals.outer_iter_mut().enumerate() {
        let gain = if b == 0 { 1.0 } else { 1e-3 };
        row.assign(&Array1::from(random_signal(1000, 10 + b as u64)).mapv(|v| v * gain));
    }
    let batch = plan.compute_batch(signals.view()).unwrap();
    for b in 0..2 {
        let mel = plan.mel().compute(signals.row(b)).unwrap();
        let peak = mel.iter().cloned().fold(0.0, f64::max);
        let direct = mel.mapv(|p| (10.0 * (p.max(1e-10) / peak).log10()).max(-40.0));
        for (a, e) in batch
            .index_axis(ndarray::Axis(0), b)
            .iter()
            .zip(direct.iter())
        {
            assert_abs_diff_eq!(*a, *e, epsilon = 1e-9);
        }
        // The library function agrees with the plan.
        let via_fn = power_to_db(mel.view(), plan.db()).unwrap();
        assert_eq!(via_fn, batch.index_axis(ndarray::Axis(0), b));
    }
}
