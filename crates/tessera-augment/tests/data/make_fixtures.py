#!/usr/bin/env python3
"""Golden fixtures for tessera-augment's Fourier low-pass crop (EfficientTrain).

Run from this directory: `python3 make_fixtures.py` (numpy only). Writes small .npy files:

* `fourier_input_<case>.npy`  float64 images (C, H, W), seeded
* `fourier_output_<case>.npy` numpy's crop of the same images

Two independent numpy paths are used and checked against each other:
1. EfficientTrain's rule: fft2 -> keep the four low-frequency corner blocks -> scale by
   (B1/H)(B2/W) -> real(ifft2). For odd sizes the "corners" are ceil(m/2) non-negative and
   floor(m/2) negative frequencies per axis.
2. fftshift -> centre crop starting at n//2 - m//2 -> ifftshift -> same scale -> real(ifft2).
"""
import numpy as np

CASES = {
    # name: (channels, height, width, out_height, out_width)
    "even": (3, 16, 16, 8, 8),
    "odd_crop": (2, 16, 14, 9, 7),
    "odd_image": (2, 15, 13, 8, 6),
    "mixed": (1, 17, 12, 11, 12),
    "full": (2, 9, 10, 9, 10),
}


def kept(n, m):
    return np.concatenate([np.arange((m + 1) // 2), np.arange(n - m // 2, n)]).astype(int)


def crop_corners(x, bh, bw):
    _, h, w = x.shape
    f = np.fft.fft2(x, axes=(-2, -1))
    f = f[:, kept(h, bh)][:, :, kept(w, bw)]
    f *= (bh / h) * (bw / w)
    return np.real(np.fft.ifft2(f, axes=(-2, -1)))


def crop_shifted(x, bh, bw):
    _, h, w = x.shape
    f = np.fft.fftshift(np.fft.fft2(x, axes=(-2, -1)), axes=(-2, -1))
    r0, c0 = h // 2 - bh // 2, w // 2 - bw // 2
    f = f[:, r0:r0 + bh, c0:c0 + bw]
    f = np.fft.ifftshift(f, axes=(-2, -1)) * ((bh / h) * (bw / w))
    return np.real(np.fft.ifft2(f, axes=(-2, -1)))


def main():
    rng = np.random.default_rng(20240611)
    for name, (c, h, w, bh, bw) in CASES.items():
        x = rng.random((c, h, w))
        y = crop_corners(x, bh, bw)
        assert np.allclose(y, crop_shifted(x, bh, bw), atol=1e-12), name
        assert np.allclose(y.mean(axis=(-2, -1)), x.mean(axis=(-2, -1)), atol=1e-12), name
        np.save(f"fourier_input_{name}.npy", x)
        np.save(f"fourier_output_{name}.npy", y)
        print(f"{name}: {x.shape} -> {y.shape}")


if __name__ == "__main__":
    main()
