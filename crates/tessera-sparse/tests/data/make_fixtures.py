"""Golden fixtures for tessera-sparse (run from this directory: `python3 make_fixtures.py`).

* rank_{i}_x.npy, rank_{i}_y.npy, rank_{i}_expected.npy: scipy.stats.kendalltau (tau-b) and
  spearmanr on vectors with and without ties -> expected = [tau, rho].
* erk_{name}_dims.npy (one row per layer, zero-padded to 4 dims), erk_{name}_expected.npy:
  densities from an independent NumPy transcription of the RigL/Random_Pruning epsilon loop
  (ERK, power 1, no custom layers), the reference algorithm of Evci et al. (2020).
* checkpoint.safetensors: a tiny PyTorch-style state dict (conv/linear weights, biases,
  batch-norm vectors) written by the `safetensors` Python package (NumPy backend).
* masks_py.safetensors: bool masks written by the Python package, to be read by tessera.

Needs numpy, scipy and safetensors (`pip install safetensors`).
"""

import numpy as np
from scipy import stats
from safetensors.numpy import save_file

rng = np.random.default_rng(20240607)

rank_cases = [
    (rng.normal(size=40), rng.normal(size=40)),
    # Heavy ties in both.
    (rng.integers(0, 5, size=60).astype(np.float64), rng.integers(0, 4, size=60).astype(np.float64)),
    # Correlated with a few ties.
    None,
    # Tiny, anti-correlated with ties.
    (np.array([1.0, 2.0, 2.0, 3.0, 5.0]), np.array([9.0, 7.0, 7.0, 7.0, 1.0])),
]
base = rng.normal(size=200)
rank_cases[2] = (np.round(base, 1), np.round(base + 0.5 * rng.normal(size=200), 1))

for i, (x, y) in enumerate(rank_cases):
    tau = stats.kendalltau(x, y).statistic  # variant 'b' is scipy's default
    rho = stats.spearmanr(x, y).statistic
    np.save(f"rank_{i}_x.npy", x)
    np.save(f"rank_{i}_y.npy", y)
    np.save(f"rank_{i}_expected.npy", np.array([tau, rho]))


def erk_reference(shapes, density):
    """Transcription of the RigL epsilon loop (ERK, power 1)."""
    dense = set()
    while True:
        divisor = 0.0
        rhs = 0.0
        raw = {}
        for name, shape in shapes.items():
            n = np.prod(shape)
            if name in dense:
                rhs -= n * (1 - density)
            else:
                rhs += n * density
                raw[name] = np.sum(shape) / np.prod(shape)
                divisor += raw[name] * n
        eps = rhs / divisor
        max_raw = max(raw.values())
        if max_raw * eps > 1:
            for name, r in raw.items():
                if r == max_raw:
                    dense.add(name)
        else:
            break
    return [1.0 if name in dense else eps * raw[name] for name in shapes]


networks = {
    "vgg_like": (
        {
            "c1": [64, 3, 3, 3],
            "c2": [64, 64, 3, 3],
            "c3": [128, 64, 3, 3],
            "c4": [128, 128, 3, 3],
            "c5": [256, 128, 3, 3],
            "fc1": [512, 4096],
            "fc2": [10, 512],
        },
        0.05,
    ),
    "mlp": ({"l1": [300, 784], "l2": [100, 300], "l3": [10, 100]}, 0.2),
    "mixed": ({"a": [8, 1, 5, 5], "b": [16, 8, 5, 5], "c": [120, 256], "d": [84, 120], "e": [10, 84]}, 0.3),
}
for name, (shapes, density) in networks.items():
    dims = np.zeros((len(shapes), 4), dtype=np.int64)
    for i, s in enumerate(shapes.values()):
        dims[i, : len(s)] = s
    np.save(f"erk_{name}_dims.npy", dims)
    np.save(f"erk_{name}_expected.npy", np.array([density] + erk_reference(shapes, density)))

checkpoint = {
    "features.0.weight": rng.normal(size=(8, 3, 3, 3)).astype(np.float32),
    "features.0.bias": np.zeros(8, dtype=np.float32),
    "features.1.weight": np.ones(8, dtype=np.float32),  # batch-norm scale
    "features.1.bias": np.zeros(8, dtype=np.float32),
    "features.1.running_mean": np.zeros(8, dtype=np.float32),
    "features.3.weight": rng.normal(size=(16, 8, 3, 3)).astype(np.float32),
    "classifier.weight": rng.normal(size=(10, 64)).astype(np.float32),
    "classifier.bias": np.zeros(10, dtype=np.float32),
}
save_file(checkpoint, "checkpoint.safetensors")

masks = {
    "features.0.weight": (np.arange(8 * 27).reshape(8, 3, 3, 3) % 3 == 0),
    "classifier.weight": (np.arange(640).reshape(10, 64) % 7 < 2),
}
save_file(masks, "masks_py.safetensors")
