#!/usr/bin/env python3
"""Golden fixtures for tessera-data's tests/golden.rs (run from anywhere).

- digits_*.npy: scikit-learn's `load_digits()` read independently of our binary file, to
  check that `data/digits.bin` and its loader reproduce it exactly.
- resample_*.npy: a sum of sines at 44.1 kHz (parameters stored, so Rust rebuilds the
  input), resampled to 16 kHz by scipy.signal.resample_poly (a polyphase FIR resampler, an
  algorithm independent of rubato's FFT resampler).
"""
import os

import numpy as np
from scipy.signal import resample_poly
from sklearn.datasets import load_digits

HERE = os.path.dirname(os.path.abspath(__file__))


def save(name, array):
    np.save(os.path.join(HERE, name), array)


def digits():
    d = load_digits()
    data = d.data.astype(np.int64)
    save("digits_first10.npy", data[:10])
    save("digits_targets.npy", d.target.astype(np.int64))
    save("digits_pixel_sums.npy", data.sum(axis=1))


def resampling():
    rng = np.random.default_rng(7)
    # freq (Hz), amplitude, phase (rad): all well below the 8 kHz output Nyquist.
    params = np.column_stack(
        [
            np.array([220.0, 710.0, 1530.0, 3200.0, 5100.0]),
            rng.uniform(0.05, 0.2, 5),
            rng.uniform(0, 2 * np.pi, 5),
        ]
    )
    n = 11025  # 0.25 s at 44.1 kHz
    t = np.arange(n) / 44100.0
    x = sum(a * np.sin(2 * np.pi * f * t + p) for f, a, p in params)
    save("resample_params.npy", params)
    save("resample_poly_44100_to_16000.npy", resample_poly(x, 160, 441))


if __name__ == "__main__":
    digits()
    resampling()
