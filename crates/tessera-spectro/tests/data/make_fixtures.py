#!/usr/bin/env python3
"""Golden fixtures for tessera-spectro, produced by librosa 0.11 in float64.

Run from anywhere: `python3 crates/tessera-spectro/tests/data/make_fixtures.py`.
Signals are stored as float32 (so the Rust tests can feed them exactly to both the f32 and
the f64 code paths) and converted to float64 before librosa sees them; every librosa call
works in float64 (`dtype=np.float64` is forwarded to `filters.mel`, whose default is
float32). The parameters of each case are repeated in `tests/golden.rs`.
"""
import os

import librosa
import numpy as np

OUT = os.path.dirname(os.path.abspath(__file__))
F64 = np.float64


def signal(n, sr, seed):
    """Two partials, a short chirp and white noise: a spectrum without near-zero bins."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    x = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    x += 0.25 * np.sin(2 * np.pi * 1234.5 * t + 0.3)
    x += 0.2 * np.sin(2 * np.pi * (200.0 + 0.2 * sr * t / t[-1]) * t)
    x += 0.05 * rng.standard_normal(n)
    return x.astype(np.float32)


def save(name, array):
    np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(array))


def main():
    # 1. The librosa preset (sr 22050, n_fft 2048, hop 512, 128 Slaney mels, zero padding).
    sr = 22050
    x32 = signal(4096, sr, 1)
    x = x32.astype(F64)
    save("librosa_signal", x32)
    mel = librosa.feature.melspectrogram(y=x, sr=sr, dtype=F64)
    save("librosa_mel", mel)
    save("librosa_db_ref1_top80", librosa.power_to_db(mel))
    save("librosa_db_ref1_none", librosa.power_to_db(mel, ref=1.0, top_db=None))
    save("librosa_db_max_top80", librosa.power_to_db(mel, ref=np.max, top_db=80.0))
    save("librosa_mfcc", librosa.feature.mfcc(y=x, sr=sr, n_mfcc=20, dtype=F64))
    save("librosa_mfcc_lifter22", librosa.feature.mfcc(y=x, sr=sr, n_mfcc=13, lifter=22, dtype=F64))

    # 2. HTK scale, no norm, reflect padding, magnitude (power 1), win_length < n_fft.
    sr = 16000
    x32 = signal(2000, sr, 2)
    x = x32.astype(F64)
    save("htk_signal", x32)
    mel = librosa.feature.melspectrogram(
        y=x, sr=sr, n_fft=512, hop_length=160, win_length=400, center=True, pad_mode="reflect",
        power=1.0, n_mels=40, fmin=20.0, fmax=8000.0, htk=True, norm=None, dtype=F64)
    save("htk_mel", mel)
    save("htk_amplitude_db_max", librosa.amplitude_to_db(mel, ref=np.max, amin=1e-5, top_db=80.0))

    # 3. win_length < n_fft without centring, Hamming window.
    sr = 8000
    x32 = signal(1000, sr, 3)
    x = x32.astype(F64)
    save("uncentred_signal", x32)
    spec = librosa.stft(x, n_fft=128, hop_length=50, win_length=100, window="hamming", center=False)
    save("uncentred_stft", spec)
    save("uncentred_mel", librosa.feature.melspectrogram(
        y=x, sr=sr, n_fft=128, hop_length=50, win_length=100, window="hamming", center=False,
        n_mels=16, dtype=F64))

    # 4. An odd n_fft (127), centred, zero padding; its inverse STFT.
    x32 = signal(700, sr, 4)
    x = x32.astype(F64)
    save("odd_signal", x32)
    spec = librosa.stft(x, n_fft=127, hop_length=32)
    save("odd_stft", spec)
    save("odd_istft", librosa.istft(spec, n_fft=127, hop_length=32))
    save("odd_mel", librosa.feature.melspectrogram(
        y=x, sr=sr, n_fft=127, hop_length=32, n_mels=12, power=1.5, dtype=F64))

    # 5. A signal shorter than n_fft (centred, zero padding).
    x32 = signal(100, sr, 5)
    x = x32.astype(F64)
    save("short_signal", x32)
    save("short_stft", librosa.stft(x, n_fft=256, hop_length=64))
    save("short_mel", librosa.feature.melspectrogram(
        y=x, sr=sr, n_fft=256, hop_length=64, n_mels=16, dtype=F64))

    # 6. Filterbanks on their own.
    save("fb_slaney", librosa.filters.mel(sr=22050, n_fft=256, n_mels=24, dtype=F64))
    save("fb_htk_odd", librosa.filters.mel(
        sr=16000, n_fft=255, n_mels=20, fmin=100.0, fmax=7000.0, htk=True, norm=None, dtype=F64))

    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT) if f.endswith(".npy"))
    print(f"wrote fixtures to {OUT}: {total / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
