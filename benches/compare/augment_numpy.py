#!/usr/bin/env python3
"""Side-by-side: EfficientTrain's Fourier low-pass crop, numpy vs tessera-augment.

numpy path (the reference implementation's rule): np.fft.fft2 -> keep the four low-frequency
corner blocks -> scale (B/H)(B/W) -> real(np.fft.ifft2), on a batch (N, 3, H, W).
Ours: `FourierCrop::crop_batch` in the release example `fourier_crop_timing` (rayon over
all channels), built and run in the same invocation.

Run from the workspace root: `python3 benches/compare/augment_numpy.py [N SIZE CROP REPEATS]`.
"""
import os
import subprocess
import sys
import time

import numpy as np


def kept(n, m):
    return np.concatenate([np.arange((m + 1) // 2), np.arange(n - m // 2, n)])


def numpy_crop(x, crop):
    h, w = x.shape[-2:]
    f = np.fft.fft2(x, axes=(-2, -1))
    rows, cols = kept(h, crop), kept(w, crop)
    f = f[..., rows, :][..., :, cols]
    f *= (crop / h) * (crop / w)
    return np.real(np.fft.ifft2(f, axes=(-2, -1)))


def image_batch(batch, size, dtype):
    # The same deterministic image as the Rust example.
    n, c, i, j = np.meshgrid(
        np.arange(batch), np.arange(3), np.arange(size), np.arange(size), indexing="ij"
    )
    return (((n + 3 * c + i * j) % 17) / 16.0 + np.where((i + j) % 2 == 0, 0.1, 0.0)).astype(dtype)


def time_numpy(x, crop, repeats):
    out = numpy_crop(x, crop)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = numpy_crop(x, crop)
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return times[len(times) // 2], times[0], float(out[0, 0].mean())


def main():
    args = [int(a) for a in sys.argv[1:5]]
    batch, size, crop, repeats = (args + [32, 224, 160, 10][len(args):])[:4]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cmd = [
        "cargo", "run", "--release", "--quiet", "-p", "tessera-augment",
        "--example", "fourier_crop_timing", "--",
        str(batch), str(size), str(crop), str(repeats),
    ]
    print("building + running:", " ".join(cmd), flush=True)
    rust = subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True).stdout
    ours = {}
    for line in rust.strip().splitlines():
        name, median, best, mean = line.split()
        ours[name] = (float(median), float(best), float(mean))

    print(f"\nFourier low-pass crop, batch ({batch}, 3, {size}, {size}) -> {crop}x{crop}, "
          f"median of {repeats} (ms); numpy {np.__version__}")
    print(f"{'precision':<10}{'numpy':>12}{'tessera':>12}{'numpy/tessera':>16}{'mean check':>14}")
    for name, dtype in (("f32", np.float32), ("f64", np.float64)):
        x = image_batch(batch, size, dtype)
        median, _best, mean = time_numpy(x, crop, repeats)
        r_median, _r_best, r_mean = ours[name]
        ok = "ok" if abs(mean - r_mean) < 1e-4 else f"MISMATCH {mean:.6f} vs {r_mean:.6f}"
        print(f"{name:<10}{median:>12.2f}{r_median:>12.2f}{median / r_median:>15.2f}x{ok:>14}")


if __name__ == "__main__":
    main()
