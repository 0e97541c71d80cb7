#!/usr/bin/env python3
"""PyTorch's time for the tessera-nn CNN benchmark step, on the CPU at a fixed thread count.

One SGD training step (forward, cross-entropy, backward, update) of the small CNN that
`cargo bench -p tessera-nn --bench layers` times for tessera (benches/layers.rs): batch 128 of
3x32x32 float32 images; conv 3x3 3->32, batch norm, ReLU, 2x2 max-pool, conv 3x3 32->64, batch
norm, ReLU, 2x2 max-pool, global average pool, linear 64->10. Best of `--repeats` runs of
`--steps` steps after a warm-up.

    python3 scripts/bench_layers_torch.py --threads 1 2

prints one line per thread count: `torch cnn threads=N best_ms=...`.
"""

import argparse
import time

import torch
from torch import nn


def make_step():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, foreach=True)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.rand(128, 3, 32, 32) * 2 - 1
    y = torch.randint(0, 10, (128,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    for threads in args.threads:
        torch.set_num_threads(threads)
        step = make_step()
        for _ in range(args.warmup):
            step()
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            best = min(best, (time.perf_counter() - start) / args.steps)
        print(f"torch cnn threads={threads} best_ms={best * 1e3:.2f}")


if __name__ == "__main__":
    main()
