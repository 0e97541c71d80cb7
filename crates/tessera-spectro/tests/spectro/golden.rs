//! Golden tests against librosa 0.11 (float64), fixtures from `tests/data/make_fixtures.py`.
//!
//! Tolerances: every entry whose reference magnitude is at least `FLOOR · max|ref|` must be
//! within `rtol` relative (1e-9 for f64, 1e-4 for f32, as required); every entry, however
//! small, must also be within `atol · max|ref|` absolutely (1e-12 for f64, 1e-6 for f32:
//! the rounding noise of an FFT relative to the largest bin). The f32 runs are compared with
//! librosa's float64 values, which is stricter than comparing with librosa's float32 path.

use std::path::PathBuf;

use ndarray::{Array, Array1, Array2, ArrayView, Dimension};
use ndarray_npy::read_npy;
use tessera_spectro::{
    amplitude_to_db, mel_filterbank, power_to_db, Complex, DbConfig, Float, LogMelConfig,
    LogMelSpectrogram, MelConfig, MelNorm, MelScale, MelSpectrogram, Mfcc, MfccConfig, PadMode,
    Reference, Stft, StftConfig, Window, WindowKind,
};

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("{name}.npy"))
}

fn real(name: &str) -> Array2<f64> {
    read_npy(path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn complex(name: &str) -> Array2<Complex<f64>> {
    read_npy(path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn signal<T: Float>(name: &str) -> Array1<T> {
    let x: Array1<f32> = read_npy(path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    x.mapv(|v| T::from_f64_rounded(f64::from(v)))
}

#[derive(Clone, Copy)]
struct Tolerance {
    rtol: f64,
    floor: f64,
    atol: f64,
}

fn tolerance<T: Float>() -> Tolerance {
    if std::mem::size_of::<T>() == 8 {
        Tolerance {
            rtol: 1e-9,
            floor: 1e-8,
            atol: 1e-12,
        }
    } else {
        Tolerance {
            rtol: 1e-4,
            floor: 1e-8,
            atol: 1e-6,
        }
    }
}

/// dB values: the relative rule applies to entries above 1 % of the largest |dB| (near 0 dB
/// a relative error is meaningless); the absolute bound covers the rest.
fn db_tolerance<T: Float>() -> Tolerance {
    Tolerance {
        floor: 1e-2,
        ..tolerance::<T>()
    }
}

fn assert_close<D: Dimension>(
    label: &str,
    ours: ArrayView<f64, D>,
    reference: ArrayView<f64, D>,
    tol: Tolerance,
) {
    assert_eq!(ours.shape(), reference.shape(), "{label}: shape");
    let scale = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut worst_rel = 0.0f64;
    for (i, (&a, &b)) in ours.iter().zip(reference.iter()).enumerate() {
        let err = (a - b).abs();
        assert!(
            err <= tol.atol * scale + tol.rtol * b.abs(),
            "{label}[{i}]: {a} vs {b} (scale {scale})"
        );
        if b.abs() >= tol.floor * scale {
            worst_rel = worst_rel.max(err / b.abs());
            assert!(
                err <= tol.rtol * b.abs(),
                "{label}[{i}]: {a} vs {b}, relative error {}",
                err / b.abs()
            );
        }
    }
    eprintln!("{label}: worst relative error {worst_rel:.2e}");
}

fn to_f64<T: Float, D: Dimension>(a: &Array<T, D>) -> Array<f64, D> {
    a.mapv(|v| v.to_f64_exact())
}

fn assert_complex_close<T: Float>(
    label: &str,
    ours: &Array2<Complex<T>>,
    reference: &Array2<Complex<f64>>,
) {
    let tol = tolerance::<T>();
    assert_eq!(ours.dim(), reference.dim(), "{label}: shape");
    let scale = reference.iter().fold(0.0f64, |m, v| m.max(v.norm()));
    for ((k, t), b) in reference.indexed_iter() {
        let a = ours[[k, t]];
        let a = Complex::new(a.re.to_f64_exact(), a.im.to_f64_exact());
        let err = (a - b).norm();
        assert!(
            err <= tol.atol * scale + tol.rtol * b.norm(),
            "{label}[{k},{t}]: {a} vs {b}"
        );
        if b.norm() >= tol.floor * scale {
            assert!(err <= tol.rtol * b.norm(), "{label}[{k},{t}]: {a} vs {b}");
        }
    }
}

fn mel_plan<T: Float>(config: MelConfig) -> MelSpectrogram<T> {
    MelSpectrogram::new(config).expect("valid config")
}

fn librosa_preset<T: Float>() {
    let x = signal::<T>("librosa_signal");
    let mel = mel_plan::<T>(MelConfig::librosa(22050.0))
        .compute(x.view())
        .unwrap();
    assert_close(
        "librosa mel",
        to_f64(&mel).view(),
        real("librosa_mel").view(),
        tolerance::<T>(),
    );

    let log_mel = LogMelSpectrogram::<T>::new(LogMelConfig::librosa(22050.0))
        .unwrap()
        .compute(x.view())
        .unwrap();
    assert_close(
        "librosa log-mel",
        to_f64(&log_mel).view(),
        real("librosa_db_ref1_top80").view(),
        db_tolerance::<T>(),
    );

    let db_none = power_to_db(
        mel.view(),
        &DbConfig {
            top_db: None,
            ..DbConfig::librosa()
        },
    )
    .unwrap();
    assert_close(
        "librosa dB ref=1",
        to_f64(&db_none).view(),
        real("librosa_db_ref1_none").view(),
        db_tolerance::<T>(),
    );

    let db_max = power_to_db(
        mel.view(),
        &DbConfig {
            reference: Reference::Max,
            top_db: Some(80.0),
            ..DbConfig::librosa()
        },
    )
    .unwrap();
    assert_close(
        "librosa dB ref=max",
        to_f64(&db_max).view(),
        real("librosa_db_max_top80").view(),
        db_tolerance::<T>(),
    );

    let mfcc = Mfcc::<T>::new(MfccConfig::librosa(22050.0))
        .unwrap()
        .compute(x.view())
        .unwrap();
    assert_close(
        "librosa mfcc",
        to_f64(&mfcc).view(),
        real("librosa_mfcc").view(),
        db_tolerance::<T>(),
    );

    let lifted = Mfcc::<T>::new(MfccConfig {
        n_mfcc: 13,
        lifter: 22.0,
        ..MfccConfig::librosa(22050.0)
    })
    .unwrap()
    .compute(x.view())
    .unwrap();
    assert_close(
        "librosa mfcc lifter",
        to_f64(&lifted).view(),
        real("librosa_mfcc_lifter22").view(),
        db_tolerance::<T>(),
    );
}

#[test]
fn librosa_preset_f64() {
    librosa_preset::<f64>();
}

#[test]
fn librosa_preset_f32() {
    librosa_preset::<f32>();
}

fn htk_magnitude_reflect<T: Float>() {
    let x = signal::<T>("htk_signal");
    let config = MelConfig {
        n_fft: 512,
        hop_length: 160,
        win_length: Some(400),
        pad_mode: PadMode::Reflect,
        power: 1.0,
        n_mels: 40,
        fmin: 20.0,
        fmax: Some(8000.0),
        scale: MelScale::Htk,
        norm: MelNorm::None,
        ..MelConfig::librosa(16000.0)
    };
    let mel = mel_plan::<T>(config).compute(x.view()).unwrap();
    assert_close(
        "htk mel",
        to_f64(&mel).view(),
        real("htk_mel").view(),
        tolerance::<T>(),
    );
    let db = amplitude_to_db(
        mel.view(),
        &DbConfig {
            reference: Reference::Max,
            ..DbConfig::librosa_amplitude()
        },
    )
    .unwrap();
    assert_close(
        "htk amplitude dB",
        to_f64(&db).view(),
        real("htk_amplitude_db_max").view(),
        db_tolerance::<T>(),
    );
}

#[test]
fn htk_magnitude_reflect_f64() {
    htk_magnitude_reflect::<f64>();
}

#[test]
fn htk_magnitude_reflect_f32() {
    htk_magnitude_reflect::<f32>();
}

fn uncentred_short_window<T: Float>() {
    let x = signal::<T>("uncentred_signal");
    let stft_config = StftConfig {
        n_fft: 128,
        hop_length: Some(50),
        win_length: Some(100),
        window: Window::Periodic(WindowKind::Hamming),
        center: false,
        pad_mode: PadMode::Constant,
    };
    let spec = Stft::<T>::new(stft_config)
        .unwrap()
        .compute(x.view())
        .unwrap();
    assert_complex_close("uncentred stft", &spec, &complex("uncentred_stft"));
    let config = MelConfig {
        n_fft: 128,
        hop_length: 50,
        win_length: Some(100),
        window: Window::Periodic(WindowKind::Hamming),
        center: false,
        n_mels: 16,
        ..MelConfig::librosa(8000.0)
    };
    let mel = mel_plan::<T>(config).compute(x.view()).unwrap();
    assert_close(
        "uncentred mel",
        to_f64(&mel).view(),
        real("uncentred_mel").view(),
        tolerance::<T>(),
    );
}

#[test]
fn uncentred_short_window_f64() {
    uncentred_short_window::<f64>();
}

#[test]
fn uncentred_short_window_f32() {
    uncentred_short_window::<f32>();
}

fn odd_n_fft<T: Float>() {
    let x = signal::<T>("odd_signal");
    let stft = Stft::<T>::new(StftConfig {
        hop_length: Some(32),
        ..StftConfig::new(127)
    })
    .unwrap();
    let spec = stft.compute(x.view()).unwrap();
    assert_complex_close("odd stft", &spec, &complex("odd_stft"));
    let back = stft.inverse(spec.view(), None).unwrap();
    let reference: Array1<f64> = read_npy(path("odd_istft")).unwrap();
    assert_close(
        "odd istft",
        to_f64(&back).view(),
        reference.view(),
        tolerance::<T>(),
    );
    let config = MelConfig {
        n_fft: 127,
        hop_length: 32,
        n_mels: 12,
        power: 1.5,
        ..MelConfig::librosa(8000.0)
    };
    let mel = mel_plan::<T>(config).compute(x.view()).unwrap();
    assert_close(
        "odd mel",
        to_f64(&mel).view(),
        real("odd_mel").view(),
        tolerance::<T>(),
    );
}

#[test]
fn odd_n_fft_f64() {
    odd_n_fft::<f64>();
}

#[test]
fn odd_n_fft_f32() {
    odd_n_fft::<f32>();
}

fn signal_shorter_than_n_fft<T: Float>() {
    let x = signal::<T>("short_signal");
    let spec = Stft::<T>::new(StftConfig {
        hop_length: Some(64),
        ..StftConfig::new(256)
    })
    .unwrap()
    .compute(x.view())
    .unwrap();
    assert_complex_close("short stft", &spec, &complex("short_stft"));
    let config = MelConfig {
        n_fft: 256,
        hop_length: 64,
        n_mels: 16,
        ..MelConfig::librosa(8000.0)
    };
    let mel = mel_plan::<T>(config).compute(x.view()).unwrap();
    assert_close(
        "short mel",
        to_f64(&mel).view(),
        real("short_mel").view(),
        tolerance::<T>(),
    );
}

#[test]
fn signal_shorter_than_n_fft_f64() {
    signal_shorter_than_n_fft::<f64>();
}

#[test]
fn signal_shorter_than_n_fft_f32() {
    signal_shorter_than_n_fft::<f32>();
}

fn filterbanks<T: Float>() {
    let slaney = mel_filterbank::<T>(
        22050.0,
        256,
        24,
        0.0,
        11025.0,
        MelScale::Slaney,
        MelNorm::Slaney,
    )
    .unwrap();
    assert_close(
        "slaney filterbank",
        to_f64(&slaney).view(),
        real("fb_slaney").view(),
        tolerance::<T>(),
    );
    let htk = mel_filterbank::<T>(
        16000.0,
        255,
        20,
        100.0,
        7000.0,
        MelScale::Htk,
        MelNorm::None,
    )
    .unwrap();
    assert_close(
        "htk filterbank (odd n_fft)",
        to_f64(&htk).view(),
        real("fb_htk_odd").view(),
        tolerance::<T>(),
    );
}

#[test]
fn filterbanks_f64() {
    filterbanks::<f64>();
}

#[test]
fn filterbanks_f32() {
    filterbanks::<f32>();
}
