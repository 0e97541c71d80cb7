#!/usr/bin/env python3
"""PyTorch's time for the tessera-nn MLP benchmark step, on the CPU at a fixed thread count.

One SGD training step (forward, cross-entropy, backward, update) of a 784→512→512→10 ReLU MLP on
a batch of 256 in float32, the step that `cargo bench -p tessera-nn --bench nn` times for
tessera (benches/nn.rs). PyTorch gets its fastest eager path: `torch.set_num_threads(n)`,
in-place ReLU, `zero_grad(set_to_none=True)`, and the faster of the `foreach` and `fused` SGD
kernels; each variant is warmed up, then timed as the best of `--repeats` runs of `--steps`
steps.

    python3 scripts/bench_nn_torch.py --threads 1 2

prints one line per thread count: `torch threads=N best_ms=... variant=...`.
"""

import argparse
import time

import torch
from torch import nn


def make_step(variant, threads):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(784, 512),
        nn.ReLU(inplace=True),
        nn.Linear(512, 512),
        nn.ReLU(inplace=True),
        nn.Linear(512, 10),
    )
    kwargs = {"foreach": True} if variant == "foreach" else {"fused": True}
    opt = torch.optim.SGD(model.parameters(), lr=0.01, **kwargs)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.rand(256, 784)
    y = torch.randint(0, 10, (256,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def best_ms(step, steps, repeats, warmup):
    for _ in range(warmup):
        step()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - start) / steps)
    return best * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=10, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs (best is kept)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    args = parser.parse_args()
    for threads in args.threads:
        torch.set_num_threads(threads)
        results = []
        for variant in ("foreach", "fused"):
            try:
                step = make_step(variant, threads)
                step()
            except (RuntimeError, TypeError) as err:  # no fused CPU SGD in old PyTorch
                print(f"# {variant} SGD unavailable: {err}")
                continue
            results.append((best_ms(step, args.steps, args.repeats, args.warmup), variant))
        ms, variant = min(results)
        print(
            f"torch threads={threads} best_ms={ms:.3f} variant={variant} "
            f"torch={torch.__version__}",
            flush=True,
        )


if __name__ == "__main__":
    main()
