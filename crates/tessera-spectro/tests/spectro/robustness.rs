//! Bad input is an error, never silence, ∞ or an abort (issue 12).

use ndarray::Array1;
use tessera_spectro::{
    mel_filterbank, LogMelConfig, LogMelSpectrogram, MelNorm, MelScale, Stft, StftConfig,
    MAX_N_FFT, MAX_N_MELS,
};

fn loud(amplitude: f32) -> Array1<f32> {
    Array1::from_shape_fn(8192, |i| {
        amplitude * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 22050.0).sin()
    })
}

#[test]
fn loud_finite_audio_is_an_error_naming_the_signal_never_silence_or_infinity() {
    let plan = LogMelSpectrogram::<f32>::new(LogMelConfig::librosa(22050.0)).unwrap();
    for amplitude in [3e38f32, 1e30, 1e25, 1e20] {
        match plan.compute(loud(amplitude).view()) {
            Ok(log_mel) => {
                assert!(
                    log_mel.iter().all(|v| v.is_finite()),
                    "amplitude {amplitude}: non-finite log-mel"
                );
                let peak = log_mel.iter().cloned().fold(f32::MIN, f32::max);
                assert!(peak > -100.0, "amplitude {amplitude}: silence");
            }
            Err(e) => assert!(e.to_string().contains("signal"), "{e}"),
        }
    }
    // Ordinary loudness still works.
    let log_mel = plan.compute(loud(1.0).view()).unwrap();
    assert!(log_mel.iter().all(|v| v.is_finite()));
    // f64 has the range for what overflows f32.
    let plan64 = LogMelSpectrogram::<f64>::new(LogMelConfig::librosa(22050.0)).unwrap();
    let signal = loud(1.0).mapv(|v| f64::from(v) * 1e30);
    let log_mel = plan64.compute(signal.view()).unwrap();
    assert!(log_mel.iter().all(|v| v.is_finite()));
}

#[test]
fn huge_sizes_are_errors_not_aborts() {
    for n_fft in [1usize << 40, usize::MAX, MAX_N_FFT + 1] {
        let e = Stft::<f32>::new(StftConfig::new(n_fft)).unwrap_err();
        assert!(e.to_string().contains("n_fft"), "{e}");
    }
    for n_mels in [1usize << 40, MAX_N_MELS + 1] {
        let e = mel_filterbank::<f32>(
            22050.0,
            2048,
            n_mels,
            0.0,
            11025.0,
            MelScale::Slaney,
            MelNorm::Slaney,
        )
        .unwrap_err();
        assert!(e.to_string().contains("n_mels"), "{e}");
    }
    let e = mel_filterbank::<f32>(
        22050.0,
        1 << 40,
        128,
        0.0,
        11025.0,
        MelScale::Slaney,
        MelNorm::Slaney,
    )
    .unwrap_err();
    assert!(e.to_string().contains("n_fft"), "{e}");
}

#[test]
fn negative_frequencies_and_empty_ffts_are_errors() {
    use tessera_spectro::{fft_frequencies, hz_to_mel, mel_frequencies, mel_to_hz};
    for scale in [MelScale::Slaney, MelScale::Htk] {
        for hz in [-1.0, -1e9, f64::NAN, f64::INFINITY] {
            let e = hz_to_mel(hz, scale).unwrap_err();
            assert!(e.to_string().contains("hz"), "{e}");
        }
        assert!(mel_to_hz(-1.0, scale).is_err());
        assert!(mel_to_hz(1e300, scale).is_err());
        assert!(mel_frequencies(10, -5.0, 100.0, scale).is_err());
        assert!(mel_frequencies(10, 200.0, 100.0, scale).is_err());
        assert_eq!(mel_frequencies(10, 0.0, 8000.0, scale).unwrap().len(), 10);
    }
    let e = fft_frequencies(16000.0, 0).unwrap_err();
    assert!(e.to_string().contains("n_fft"), "{e}");
    assert!(fft_frequencies(0.0, 8).is_err());
    assert!(fft_frequencies(16000.0, usize::MAX).is_err());
}
