#!/usr/bin/env python3
"""Golden fixtures for tessera-data's MNIST-1D generator (tests/mnist1d.rs); run from anywhere.

Reference: S. Greydanus, "Scaling down Deep Learning", 2020 (arXiv:2011.14439), PyPI package
`mnist1d` (https://github.com/greydanus/mnist1d, Apache-2.0). Produced with mnist1d 0.0.2.post1,
numpy 2.4.6, scipy 1.17.1 (`pip install mnist1d`). Only the package's *local* generator is used
(`make_dataset`, `transform` and its stage functions); nothing is downloaded.

How the draws are recorded: the package draws its random numbers inside each stage function.
Before every stage we save numpy's global RNG state, draw the same quantity the stage is about
to draw (a uniform, an integer, a normal vector), restore the state and call the package's
stage. So each stage's input, draw and output are recorded exactly, and the chained stages are
checked below to equal the package's own `transform` bit for bit.

Files (all float64 unless said):
- mnist1d_templates.npy         (10, 12)  get_templates()['x']
- mnist1d_stage_config.npy      (2, 12)   row 0 default arguments, row 1 a non-default set:
    [template_len, pad_lo, pad_hi, scale_coeff, max_translation, corr_noise_scale,
     corr_sigma(=2, fixed in the package), iid_noise_scale, shear_scale, final_seq_length,
     0, 0]
- mnist1d_stage_draws.npy       (E, 7)    [config row, label, u_pad, u_scale, k, u_shear, p]
- mnist1d_stage_white_corr.npy  (E, 72)   white normals of the correlated noise (NaN-padded)
- mnist1d_stage_white_iid.npy   (E, 72)   white normals of the iid noise (NaN-padded)
- mnist1d_stage_<name>.npy      (E, 72)   stage outputs, NaN-padded to 72 columns:
    padded, dilated, scaled, shifted, corr_noise (the filtered noise), with_corr, with_iid,
    sheared, final
- mnist1d_gauss_params.npy      (G, 2)    [length, sigma] of scipy.ndimage.gaussian_filter checks
- mnist1d_gauss_in.npy / _out.npy (G, 72) inputs / outputs (mode='reflect', truncate=4), NaN-padded
- mnist1d_interp_params.npy     (I, 2)    [n_in, n_out] of the package's `interpolate`
- mnist1d_interp_in.npy / _out.npy (I, 80)
- mnist1d_small_draws.npy       (20, 7)   every draw of make_dataset(num_samples=20, seed=0)
                                          [0, label, u_pad, u_scale, k, u_shear, p]
- mnist1d_small_white_corr.npy / _white_iid.npy (20, 72)
- mnist1d_small_perm.npy        (20,) int64 the batch permutation
- mnist1d_small_x.npy (16, 40), mnist1d_small_x_test.npy (4, 40), mnist1d_small_y.npy,
  mnist1d_small_y_test.npy (int64): make_dataset's output for that configuration
- mnist1d_stats.npy             float64 statistics of the default data set (5000 examples,
  seed 42), see `stats()` for the layout
"""
import copy
import os

import numpy as np
from scipy.ndimage import gaussian_filter

from mnist1d.data import get_dataset_args, get_templates, make_dataset
from mnist1d.transform import (
    corr_noise_like,
    iid_noise_like,
    interpolate,
    pad,
    shear,
    transform,
    translate,
)
from mnist1d.utils import ObjectView

HERE = os.path.dirname(os.path.abspath(__file__))
EPS = 1e-8  # transform()'s default eps
WIDTH = 72


def save(name, array):
    np.save(os.path.join(HERE, name), array)


def padded_row(values, width=WIDTH):
    row = np.full(width, np.nan)
    row[: len(values)] = values
    return row


def peek(draw):
    """Runs `draw()` on the global RNG and rewinds it, so the next stage draws the same."""
    state = np.random.get_state()
    value = draw()
    np.random.set_state(state)
    return value


def staged(x, args):
    """transform(x, t, args), one package stage at a time, recording draws and outputs."""
    n = args.template_len + args.padding[-1]
    u_pad = peek(np.random.rand)
    padded = pad(x + EPS, args.padding)
    p = len(padded) - len(x)
    assert p == args.padding[0] + int(u_pad * (args.padding[1] - args.padding[0] + 1))
    dilated = interpolate(padded, n)
    u_scale = peek(np.random.rand)
    scaled = dilated * (1 + args.scale_coeff * (np.random.rand() - 0.5))
    k = peek(lambda: np.random.choice(args.max_translation))
    shifted = translate(scaled, args.max_translation)
    white_corr = peek(lambda: np.random.randn(n))
    corr = corr_noise_like(shifted, args.corr_noise_scale)
    assert np.array_equal(corr, gaussian_filter(args.corr_noise_scale * white_corr, 2))
    mask = shifted != 0
    with_corr = mask * shifted + (1 - mask) * corr
    white_iid = peek(lambda: np.random.randn(n))
    with_iid = with_corr + iid_noise_like(with_corr, args.iid_noise_scale)
    u_shear = peek(np.random.rand)
    sheared = shear(with_iid, args.shear_scale)
    final = interpolate(sheared, args.final_seq_length)
    draws = [u_pad, u_scale, k, u_shear, p]
    stages = dict(
        padded=padded,
        dilated=dilated,
        scaled=scaled,
        shifted=shifted,
        corr_noise=corr,
        with_corr=with_corr,
        with_iid=with_iid,
        sheared=sheared,
        final=final,
    )
    return draws, white_corr, white_iid, stages


def config_row(args):
    return [
        args.template_len,
        args.padding[0],
        args.padding[1],
        args.scale_coeff,
        args.max_translation,
        args.corr_noise_scale,
        2.0,
        args.iid_noise_scale,
        args.shear_scale,
        args.final_seq_length,
        0,
        0,
    ]


def other_args():
    args = copy.deepcopy(get_dataset_args())
    args.padding = [10, 20]
    args.scale_coeff = 0.3
    args.max_translation = 30
    args.corr_noise_scale = 0.5
    args.iid_noise_scale = 0.05
    args.shear_scale = 1.5
    args.final_seq_length = 25
    return args


def stages():
    templates = get_templates()
    save("mnist1d_templates.npy", templates["x"])
    configs = [get_dataset_args(), other_args()]
    save("mnist1d_stage_config.npy", np.array([config_row(a) for a in configs], dtype=float))
    rows = {name: [] for name in ["draws", "white_corr", "white_iid"]}
    outputs = {}
    # (config, label, seed): every label once on the defaults, three on the other set.
    cases = [(0, label, 1000 + label) for label in range(10)] + [
        (1, 3, 7),
        (1, 8, 8),
        (1, 0, 9),
    ]
    for ci, label, seed in cases:
        args = configs[ci]
        x = templates["x"][label]
        np.random.seed(seed)
        draws, white_corr, white_iid, out = staged(x, args)
        np.random.seed(seed)
        reference, _ = transform(x, templates["t"], args)
        assert np.array_equal(reference, out["final"]), "staged replay != transform"
        rows["draws"].append([ci, label] + draws)
        rows["white_corr"].append(padded_row(white_corr))
        rows["white_iid"].append(padded_row(white_iid))
        for name, value in out.items():
            outputs.setdefault(name, []).append(padded_row(value))
    save("mnist1d_stage_draws.npy", np.array(rows["draws"], dtype=float))
    save("mnist1d_stage_white_corr.npy", np.array(rows["white_corr"]))
    save("mnist1d_stage_white_iid.npy", np.array(rows["white_iid"]))
    for name, value in outputs.items():
        save(f"mnist1d_stage_{name}.npy", np.array(value))


def filters():
    rng = np.random.default_rng(3)
    # Lengths shorter than the kernel radius exercise the repeated reflection.
    cases = [(72, 2.0), (40, 2.0), (10, 5.0), (5, 0.7), (3, 3.0), (1, 2.0), (17, 0.3)]
    params, inputs, outputs = [], [], []
    for length, sigma in cases:
        x = rng.standard_normal(length)
        params.append([length, sigma])
        inputs.append(padded_row(x))
        outputs.append(padded_row(gaussian_filter(x, sigma)))
    save("mnist1d_gauss_params.npy", np.array(params, dtype=float))
    save("mnist1d_gauss_in.npy", np.array(inputs))
    save("mnist1d_gauss_out.npy", np.array(outputs))

    cases = [(17, 40), (72, 40), (5, 72), (40, 40), (2, 9), (80, 3)]
    params, inputs, outputs = [], [], []
    for n_in, n_out in cases:
        x = rng.standard_normal(n_in)
        params.append([n_in, n_out])
        inputs.append(padded_row(x, 80))
        outputs.append(padded_row(interpolate(x, n_out), 80))
    save("mnist1d_interp_params.npy", np.array(params, dtype=float))
    save("mnist1d_interp_in.npy", np.array(inputs))
    save("mnist1d_interp_out.npy", np.array(outputs))


def small_dataset():
    """make_dataset on 20 examples, with every draw recorded by replaying its loop."""
    args = copy.deepcopy(get_dataset_args())
    args.num_samples = 20
    args.seed = 0
    templates = get_templates()
    np.random.seed(args.seed)
    draws, white_corr, white_iid = [], [], []
    for label in range(10):
        for _ in range(args.num_samples // 10):
            d, wc, wi, _ = staged(templates["x"][label], args)
            draws.append([0, label] + d)
            white_corr.append(wc)
            white_iid.append(wi)
    perm = np.random.permutation(args.num_samples)
    data = make_dataset(args)
    save("mnist1d_small_draws.npy", np.array(draws, dtype=float))
    save("mnist1d_small_white_corr.npy", np.array(white_corr))
    save("mnist1d_small_white_iid.npy", np.array(white_iid))
    save("mnist1d_small_perm.npy", perm.astype(np.int64))
    save("mnist1d_small_x.npy", data["x"])
    save("mnist1d_small_x_test.npy", data["x_test"])
    save("mnist1d_small_y.npy", data["y"].astype(np.int64))
    save("mnist1d_small_y_test.npy", data["y_test"].astype(np.int64))
    assert np.array_equal(np.array([d[1] for d in draws])[perm][:16], data["y"])


def stats():
    """Statistics of the package's default data set (5000 examples, seed 42), after its
    global standardisation, in one flat float64 vector:
    [0:2]      raw (pre-standardisation) mean and std of all values, from a replay
    [2:12]     per-class counts in the whole set
    [12:412]   per-class mean signal (10 × 40, row-major)
    [412:812]  per-class standard deviation per position (10 × 40)
    [812:852]  standard deviation per position over all examples (40)
    [852:861]  quantiles 0.01 0.05 0.1 0.25 0.5 0.75 0.9 0.95 0.99 of all values
    [861:862]  mean over examples of |x[t+1] - x[t]| averaged over t (roughness)
    """
    args = get_dataset_args()
    data = make_dataset(args)
    x = np.concatenate([data["x"], data["x_test"]])
    y = np.concatenate([data["y"], data["y_test"]])
    # Replay for the raw mean/std (make_dataset standardises before returning).
    templates = get_templates()
    np.random.seed(args.seed)
    raw = []
    for label in range(10):
        for _ in range(args.num_samples // 10):
            raw.append(transform(templates["x"][label], templates["t"], args)[0])
    raw = np.stack(raw)
    perm = np.random.permutation(len(raw))
    assert np.allclose((raw[perm] - raw.mean()) / raw.std(), x)
    means = np.stack([x[y == c].mean(0) for c in range(10)])
    stds = np.stack([x[y == c].std(0) for c in range(10)])
    counts = np.bincount(y, minlength=10).astype(float)
    quantiles = np.quantile(x, [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99])
    rough = np.abs(np.diff(x, axis=1)).mean()
    out = np.concatenate(
        [
            [raw.mean(), raw.std()],
            counts,
            means.ravel(),
            stds.ravel(),
            x.std(0),
            quantiles,
            [rough],
        ]
    )
    assert out.shape == (862,)
    save("mnist1d_stats.npy", out)


if __name__ == "__main__":
    assert ObjectView is not None
    stages()
    filters()
    small_dataset()
    stats()
    total = sum(
        os.path.getsize(os.path.join(HERE, f)) for f in os.listdir(HERE) if f.startswith("mnist1d_")
    )
    print(f"mnist1d fixtures: {total} bytes")
