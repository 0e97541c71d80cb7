"""Golden values for tessera-nn, computed with an independent numpy implementation.

Network (μP, GELU tanh approximation): 3 -> 5 (input layer), one residual block of depth 2
with branch scale 0.2 at width 5, then 5 -> 4 (output). Flat parameter layout as tessera-nn:
layer by layer, W (row-major [out, in]) then b; layers: input, branch 1, branch 2, output.

The Hessian is built by central finite differences of the analytic numpy gradient, the
optimiser trajectories follow PyTorch's SGD (Nesterov, coupled weight decay) and AdamW update
rules with the μP learning-rate multipliers of the crate README.

Run from the crate root: python3 tests/data/make_fixtures.py
"""
import os

import numpy as np

OUT = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20240611)

D, W, K, B = 3, 5, 4, 6
SCALE = 0.2
# (fan_in, fan_out, forward multiplier) per layer, μP multiplier form.
LAYERS = [(D, W, 1 / np.sqrt(D)), (W, W, 1 / np.sqrt(W)), (W, W, 1 / np.sqrt(W)), (W, K, 1 / W)]
K0, C0 = np.sqrt(2 / np.pi), 0.044715


def gelu(x):
    return 0.5 * x * (1 + np.tanh(K0 * (x + C0 * x**3)))


def gelu_prime(x):
    t = np.tanh(K0 * (x + C0 * x**3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * K0 * (1 + 3 * C0 * x**2)


def unpack(theta):
    out, off = [], 0
    for fi, fo, _ in LAYERS:
        w = theta[off:off + fi * fo].reshape(fo, fi)
        off += fi * fo
        b = theta[off:off + fo]
        off += fo
        out.append((w, b))
    assert off == theta.size
    return out


NPARAM = sum(fi * fo + fo for fi, fo, _ in LAYERS)


def forward(theta, x):
    p = unpack(theta)
    m = [l[2] for l in LAYERS]
    z0 = m[0] * x @ p[0][0].T + p[0][1]
    h0 = gelu(z0)
    z1 = m[1] * h0 @ p[1][0].T + p[1][1]
    h1 = gelu(z1)
    z2 = h0 + SCALE * (m[2] * h1 @ p[2][0].T + p[2][1])
    h2 = gelu(z2)
    logits = m[3] * h2 @ p[3][0].T + p[3][1]
    return dict(x=x, z0=z0, h0=h0, z1=z1, h1=h1, z2=z2, h2=h2, logits=logits)


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def loss_and_grad(theta, x, y):
    c = forward(theta, x)
    p = unpack(theta)
    m = [l[2] for l in LAYERS]
    ls = log_softmax(c["logits"])
    loss = -(y * ls).sum() / B
    g_logits = (np.exp(ls) * y.sum(axis=1, keepdims=True) - y) / B
    grads = [None] * 4
    grads[3] = (m[3] * g_logits.T @ c["h2"], g_logits.sum(0))
    g_h2 = m[3] * g_logits @ p[3][0]
    d2 = g_h2 * gelu_prime(c["z2"])
    grads[2] = (SCALE * m[2] * d2.T @ c["h1"], SCALE * d2.sum(0))
    g_h1 = SCALE * m[2] * d2 @ p[2][0]
    d1 = g_h1 * gelu_prime(c["z1"])
    grads[1] = (m[1] * d1.T @ c["h0"], d1.sum(0))
    g_h0 = m[1] * d1 @ p[1][0] + d2
    d0 = g_h0 * gelu_prime(c["z0"])
    grads[0] = (m[0] * d0.T @ x, d0.sum(0))
    flat = np.concatenate([np.concatenate([gw.ravel(), gb]) for gw, gb in grads])
    return loss, flat


theta = rng.normal(0.0, 1.0, NPARAM) * 0.8
x = rng.normal(0.0, 1.0, (B, D))
y = rng.dirichlet(np.ones(K), size=B)

loss, grad = loss_and_grad(theta, x, y)
eps = 1e-5
hess = np.zeros((NPARAM, NPARAM))
for i in range(NPARAM):
    e = np.zeros(NPARAM)
    e[i] = eps
    hess[:, i] = (loss_and_grad(theta + e, x, y)[1] - loss_and_grad(theta - e, x, y)[1]) / (2 * eps)
hess = 0.5 * (hess + hess.T)


def lr_multipliers(family):
    """μP learning-rate multipliers (weight, bias) per layer, from the README table."""
    if family == "sgd":
        pairs = [(W, W), (W, W), (W, W), (W, 1.0)]
    else:
        pairs = [(1.0, 1.0), (1 / np.sqrt(W), 1.0), (1 / np.sqrt(W), 1.0), (1.0, 1.0)]
    return np.concatenate([np.concatenate([np.full(fi * fo, mw), np.full(fo, mb)])
                           for (fi, fo, _), (mw, mb) in zip(LAYERS, pairs)])


def sgd_nesterov(theta, steps, lr=0.01, mu=0.9, wd=0.01):
    scale = lr_multipliers("sgd")
    w, buf = theta.copy(), None
    for _ in range(steps):
        g = loss_and_grad(w, x, y)[1] + wd * w
        buf = g.copy() if buf is None else mu * buf + g
        w = w - lr * scale * (g + mu * buf)
    return w


def adamw(theta, steps, lr=0.01, b1=0.9, b2=0.999, eps=1e-8, wd=0.1):
    scale = lr_multipliers("adam")
    w, m, v = theta.copy(), np.zeros_like(theta), np.zeros_like(theta)
    for t in range(1, steps + 1):
        g = loss_and_grad(w, x, y)[1]
        w = w * (1 - lr * scale * wd)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * scale * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return w


c = forward(theta, x)
fixtures = {
    "params": theta,
    "x": x,
    "soft_targets": y,
    "logits": c["logits"],
    "pre_activation_2": c["z2"],
    "loss": np.array([loss]),
    "gradient": grad,
    "hessian": hess,
    "sgd_nesterov_3_steps": sgd_nesterov(theta, 3),
    "adamw_3_steps": adamw(theta, 3),
}
for name, value in fixtures.items():
    np.save(os.path.join(OUT, f"{name}.npy"), np.ascontiguousarray(value, dtype=np.float64))
print(f"{NPARAM} parameters, loss {loss:.6f}; wrote {len(fixtures)} fixtures to {OUT}")
