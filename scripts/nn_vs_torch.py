#!/usr/bin/env python3
"""Side-by-side training-step times of tessera-nn and PyTorch (CPU), alternating the two.

Runs, `--rounds` times in turn, tessera's benchmark binaries (`benches/layers.rs`: the small
CNN, batch 128; `benches/nn.rs`: the 784→512→512→10 MLP, batch 256; both print the best of
`TESSERA_NN_BEST_OF` runs per thread count) and the PyTorch scripts that time the same steps
(`bench_layers_torch.py`, `bench_nn_torch.py`, PyTorch's fastest eager path). Alternating
spreads a shared machine's background load over both tools; each tool's best over all rounds
is reported, with the ratio PyTorch / tessera (above 1: tessera is faster) per network and
thread count, and the worst round's ratio beside it.

    cargo build --release -p tessera-nn --bench layers --bench nn
    python3 scripts/nn_vs_torch.py --rounds 5
"""

import argparse
import glob
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LINE = re.compile(r"^(tessera|torch)(?: (cnn|mlp))? threads=(\d+) best_ms=([0-9.]+)")


def newest_binary(name):
    candidates = [
        p
        for p in glob.glob(os.path.join(ROOT, "target", "release", "deps", f"{name}-*"))
        if os.access(p, os.X_OK) and not p.endswith(".d")
    ]
    if not candidates:
        sys.exit(f"no bench binary {name}: run `cargo build --release -p tessera-nn --bench {name}`")
    return max(candidates, key=os.path.getmtime)


def run(command, env_extra, network):
    env = dict(os.environ, **env_extra)
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    times = {}
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            times[(network, int(m.group(3)))] = float(m.group(4))
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="CNN: best of, per run")
    parser.add_argument("--mlp-repeats", type=int, default=10, help="MLP: best of, per run")
    args = parser.parse_args()
    tools = {
        "tessera": [
            ([newest_binary("layers")], {"TESSERA_NN_BEST_OF": str(args.repeats)}, "cnn"),
            ([newest_binary("nn")], {"TESSERA_NN_BEST_OF": str(args.mlp_repeats)}, "mlp"),
        ],
        "torch": [
            (
                [sys.executable, os.path.join(HERE, "bench_layers_torch.py"), "--threads", "1", "2",
                 "--repeats", str(args.repeats)],
                {},
                "cnn",
            ),
            (
                [sys.executable, os.path.join(HERE, "bench_nn_torch.py"), "--threads", "1", "2",
                 "--repeats", str(args.mlp_repeats)],
                {},
                "mlp",
            ),
        ],
    }
    rounds = []
    for r in range(args.rounds):
        result = {}
        for tool, runs in tools.items():
            for command, env, network in runs:
                for key, ms in run(command, env, network).items():
                    result[(tool,) + key] = ms
        rounds.append(result)
        print(f"round {r + 1}: " + ", ".join(f"{k[0]} {k[1]} {k[2]}t {v:.2f}" for k, v in sorted(result.items())),
              flush=True)
    print()
    print("| step | threads | tessera best ms | PyTorch best ms | PyTorch / tessera | worst round |")
    print("|---|---|---|---|---|---|")
    for network in ("cnn", "mlp"):
        for threads in (1, 2):
            ours = [r[("tessera", network, threads)] for r in rounds]
            theirs = [r[("torch", network, threads)] for r in rounds]
            worst = min(t / o for o, t in zip(ours, theirs))
            print(f"| {network} | {threads} | {min(ours):.2f} | {min(theirs):.2f} | "
                  f"{min(theirs) / min(ours):.2f} | {worst:.2f} |")


if __name__ == "__main__":
    main()
