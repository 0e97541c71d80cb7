#!/usr/bin/env python3
"""Side-by-side: one SGD training step (forward + backward + update) of a 784->512->512->10
ReLU MLP with softmax cross-entropy on a batch of 256, in numpy and in tessera-nn.

Both run twice, single-threaded and with the default thread count: numpy in fresh
subprocesses (the BLAS thread count must be set before numpy is imported:
OPENBLAS_NUM_THREADS=1 etc.), tessera-nn's release example `step_throughput` with
RAYON_NUM_THREADS=1 and unset (its gemms split their output across the rayon pool). Prints
medians in milliseconds and the ratios numpy / tessera at equal thread counts.

    python3 benches/compare/nn_numpy.py [--steps 20] [--precision f32|f64] [--workspace DIR]
"""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def numpy_worker(steps, precision):
    import numpy as np

    dtype = np.float32 if precision == "f32" else np.float64
    rng = np.random.default_rng(0)
    batch, dims = 256, [784, 512, 512, 10]
    x = rng.random((batch, dims[0])).astype(dtype)
    labels = rng.integers(0, 10, batch)
    onehot = np.zeros((batch, 10), dtype)
    onehot[np.arange(batch), labels] = 1
    params = []
    for fan_in, fan_out in zip(dims[:-1], dims[1:]):
        w = (rng.standard_normal((fan_out, fan_in)) * np.sqrt(2.0 / fan_in)).astype(dtype)
        params.append([w, np.zeros(fan_out, dtype)])
    lr = dtype(0.01)

    def step():
        (w1, b1), (w2, b2), (w3, b3) = params
        z1 = x @ w1.T + b1
        h1 = np.maximum(z1, 0)
        z2 = h1 @ w2.T + b2
        h2 = np.maximum(z2, 0)
        z3 = h2 @ w3.T + b3
        z3 = z3 - z3.max(axis=1, keepdims=True)
        e = np.exp(z3)
        p = e / e.sum(axis=1, keepdims=True)
        g3 = (p - onehot) / batch
        g_w3, g_b3 = g3.T @ h2, g3.sum(0)
        d2 = (g3 @ w3) * (z2 > 0)
        g_w2, g_b2 = d2.T @ h1, d2.sum(0)
        d1 = (d2 @ w2) * (z1 > 0)
        g_w1, g_b1 = d1.T @ x, d1.sum(0)
        for (w, b), gw, gb in zip(params, (g_w1, g_w2, g_w3), (g_b1, g_b2, g_b3)):
            w -= lr * gw
            b -= lr * gb

    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    print(f"step_ms {times[len(times) // 2]:.3f}")


def run_numpy(steps, precision, single_thread):
    env = dict(os.environ)
    for var in THREAD_VARS:
        if single_thread:
            env[var] = "1"
        else:
            env.pop(var, None)
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--numpy-worker", "--steps", str(steps),
         "--precision", precision],
        env=env, check=True, capture_output=True, text=True).stdout
    return parse(out)["step_ms"]


def parse(text):
    values = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                values[parts[0]] = float(parts[1])
            except ValueError:
                pass
    return values


def run_tessera(steps, precision, workspace, single_thread):
    cmd = ["cargo", "run", "--release", "--quiet", "-p", "tessera-nn", "--example",
           "step_throughput", "--", str(steps), precision]
    env = dict(os.environ)
    env.pop("RAYON_NUM_THREADS", None)
    if single_thread:
        env["RAYON_NUM_THREADS"] = "1"
    out = subprocess.run(cmd, cwd=workspace, env=env, check=True, capture_output=True,
                         text=True).stdout
    return parse(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--precision", choices=["f32", "f64"], default="f32")
    ap.add_argument("--workspace", default=ROOT, help="cargo workspace to build the example in")
    ap.add_argument("--numpy-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.numpy_worker:
        numpy_worker(args.steps, args.precision)
        return

    ours_single = run_tessera(args.steps, args.precision, args.workspace, single_thread=True)
    ours_default = run_tessera(args.steps, args.precision, args.workspace, single_thread=False)
    np_single = run_numpy(args.steps, args.precision, single_thread=True)
    np_default = run_numpy(args.steps, args.precision, single_thread=False)
    print(f"784->512->512->10 ReLU MLP, batch 256, SGD step, {args.precision}, "
          f"median of {args.steps} steps (ms); {os.cpu_count()} CPUs")
    print(f"{'threads':<18}{'tessera-nn':>12}{'numpy':>10}{'numpy / tessera':>18}")
    for label, ours, theirs in (("1", ours_single, np_single), ("default", ours_default, np_default)):
        print(f"{label:<18}{ours['step_ms']:>12.2f}{theirs:>10.2f}{theirs / ours['step_ms']:>18.2f}")
    for label, ours in (("1 thread", ours_single), ("default threads", ours_default)):
        print(f"tessera-nn Hessian-vector product on the same batch, {label}: {ours['hvp_ms']:.2f} ms "
              f"({ours['hvp_ms'] / ours['step_ms']:.2f} x one training step)")

if __name__ == "__main__":
    main()
