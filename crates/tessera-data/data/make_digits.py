#!/usr/bin/env python3
"""Convert scikit-learn's copy of the UCI optical handwritten digits to `digits.bin`.

The data (1797 images of 8x8 pixels with values 0..16, labels 0..9) is the test part of
"Optical Recognition of Handwritten Digits" by E. Alpaydin and C. Kaynak (UCI Machine Learning
Repository, 1998, https://doi.org/10.24432/C50P49), licensed CC BY 4.0; scikit-learn ships
it as `sklearn/datasets/data/digits.csv.gz`, so no network access is needed
(`pip install scikit-learn`).

File layout (all integers little-endian), read by `tessera_data::digits`:

    offset  size        field
    0       8           magic  b"TSDIGIT1"
    8       4           n_images (u32)      = 1797
    12      4           height (u32)        = 8
    16      4           width (u32)         = 8
    20      4           n_classes (u32)     = 10
    24      4           max_value (u32)     = 16
    28      n*h*w       pixels, u8, image-major then row-major
    ..      n           labels, u8
    ..      4           CRC-32 (zlib.crc32) of every byte before it (u32)

Run from anywhere: python3 crates/tessera-data/data/make_digits.py
"""
import os
import struct
import zlib

import numpy as np
from sklearn.datasets import load_digits


def main():
    digits = load_digits()
    pixels = digits.data.astype(np.int64)
    labels = digits.target.astype(np.int64)
    assert pixels.shape == (1797, 64), pixels.shape
    assert pixels.min() >= 0 and pixels.max() <= 16
    assert set(labels.tolist()) == set(range(10))
    body = b"TSDIGIT1" + struct.pack("<5I", pixels.shape[0], 8, 8, 10, 16)
    body += pixels.astype(np.uint8).tobytes(order="C")
    body += labels.astype(np.uint8).tobytes()
    blob = body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits.bin")
    with open(out, "wb") as handle:
        handle.write(blob)
    print(f"wrote {out}: {len(blob)} bytes, crc32 {zlib.crc32(body) & 0xFFFFFFFF:08x}")


if __name__ == "__main__":
    main()
