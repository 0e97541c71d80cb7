"""Times tessera-spline's exact 2-D partition against the numpy prototype, side by side.

Both run on the same seeded 784 -> [64]x3 -> 10 ReLU net (He-normal weights, small Gaussian
biases) and the same plane through three seeded inputs in [0, 1]^784, over the square
[LO, HI]^2 of plane coordinates (u = (0,0), (1,0), (0,1) are the three inputs). The script
writes the weights as a safetensors file in tessera-nn's layout (layers.{j}.weight [out, in],
layers.{j}.bias [out], F64) and the inputs as plane.npy, then alternates: numpy prototype,
Rust (release build of the crate's `partition_timing` example, in-process best of
RUST_REPEATS), ROUNDS times, and reports best-of times, their ratio, both region counts (which
must agree) and the load average.

    python3 scripts/spline_timing.py [--rounds 3] [--lo -0.5] [--hi 1.5] [--threads 1]
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from spline_prototype import partition, polygon_area  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_safetensors(path, tensors):
    """Minimal safetensors writer (F64, little endian): 8-byte header length, JSON header."""
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype="<f8").tobytes()
        header[name] = {
            "dtype": "F64",
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "tessera-spline-timing"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)


def make_net(seed=0, dims=(784, 64, 64, 64, 10)):
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for n_in, n_out in zip(dims[:-1], dims[1:]):
        weights.append(rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in))
        biases.append(rng.standard_normal(n_out) * 0.1)
    points = rng.random((3, dims[0]))
    return weights, biases, points


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rust-repeats", type=int, default=5)
    ap.add_argument("--lo", type=float, default=-0.5)
    ap.add_argument("--hi", type=float, default=1.5)
    ap.add_argument("--threads", type=int, default=1,
                    help="RAYON_NUM_THREADS for the Rust side (numpy's loop is single-threaded)")
    args = ap.parse_args()

    weights, biases, points = make_net()
    tmp = tempfile.mkdtemp(prefix="spline_timing_")
    write_safetensors(
        os.path.join(tmp, "net.safetensors"),
        {f"layers.{j}.{k}": a for j, (w, b) in enumerate(zip(weights, biases))
         for k, a in (("weight", w), ("bias", b))},
    )
    np.save(os.path.join(tmp, "plane.npy"), points)

    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "tessera-spline", "--example", "partition_timing"],
        cwd=ROOT, check=True,
    )
    exe = os.path.join(ROOT, "target", "release", "examples", "partition_timing")
    x0, e1, e2 = points[0], points[1] - points[0], points[2] - points[0]
    lo, hi = args.lo, args.hi
    domain = np.array([[lo, lo], [hi, lo], [hi, hi], [lo, hi]])
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))

    py_best, rust_best = float("inf"), float("inf")
    py_regions = rust_regions = None
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        polys, _ = partition(weights, biases, x0, e1, e2, domain)
        py_best = min(py_best, time.perf_counter() - t0)
        py_regions = len(polys)
        py_area = sum(polygon_area(p) for p in polys)
        out = subprocess.run(
            [exe, tmp, str(lo), str(hi), str(args.rust_repeats)],
            check=True, capture_output=True, text=True, env=env,
        ).stdout
        fields = dict(kv.split("=") for kv in out.split())
        rust_best = min(rust_best, float(fields["best_s"]))
        rust_regions = int(fields["regions"])
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"net 784->[64]x3->10, domain [{lo}, {hi}]^2, rust threads {args.threads}")
    print(f"regions: numpy {py_regions}, rust {rust_regions} (area {py_area:.9f} vs {(hi - lo) ** 2})")
    print(f"best of {args.rounds}: numpy {py_best:.3f} s, rust {rust_best:.4f} s, "
          f"ratio {py_best / rust_best:.1f}x")
    print(f"loadavg {' '.join(load)}")
    if py_regions != rust_regions:
        sys.exit("region counts differ")


if __name__ == "__main__":
    main()
