#!/usr/bin/env python3
"""Golden fixtures for tessera-ssl, computed with numpy in float64.

Gradients are complex-step derivatives, df/dx = Im f(x + i h e_j) / h with h = 1e-30, which
are exact to rounding and independent of the analytic gradients in the Rust code. Formulas
follow the papers (MixMatch, ReMixMatch, FixMatch, Mean Teacher, Deep Co-Training) and the
SSLH code conventions (reductions, EMA step count, alignment order).

Run from the repository root: python3 crates/tessera-ssl/tests/data/make_fixtures.py
"""
import os

import numpy as np

OUT = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20240601)


def save(name, array):
    np.save(os.path.join(OUT, f"{name}.npy"), np.asarray(array, dtype=np.float64))


def softmax(z):
    shift = np.max(z.real, axis=-1, keepdims=True)  # constant shift keeps it analytic
    e = np.exp(z - shift)
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(z):
    shift = np.max(z.real, axis=-1, keepdims=True)
    return z - shift - np.log(np.exp(z - shift).sum(axis=-1, keepdims=True))


def complex_step_grad(f, z, h=1e-30):
    grad = np.zeros_like(z, dtype=np.float64)
    for idx in np.ndindex(z.shape):
        zc = z.astype(np.complex128)
        zc[idx] += 1j * h
        grad[idx] = np.imag(f(zc)) / h
    return grad


def soft_ce(z, q):
    return -(q * log_softmax(z)).sum() / z.shape[0]


def mse(z, q):
    return ((softmax(z) - q) ** 2).sum() / z.size


def entropy(p):
    return -(p * np.log(p)).sum(axis=-1)


def js(a, b):
    p, r = softmax(a), softmax(b)
    m = 0.5 * (p + r)
    return (entropy(m) - 0.5 * (entropy(p) + entropy(r))).mean()


def view_difference(f, g, fa, ga):
    n = f.shape[0]
    return -((softmax(g) * log_softmax(fa)).sum() + (softmax(f) * log_softmax(ga)).sum()) / n


def sharpen(p, t):
    w = p ** (1.0 / t)
    return w / w.sum(axis=-1, keepdims=True)


B, C = 6, 5
logits_a = rng.normal(0.0, 2.0, (B, C))
logits_b = rng.normal(0.0, 2.0, (B, C))
logits_c = rng.normal(0.0, 2.0, (B, C))
logits_d = rng.normal(0.0, 2.0, (B, C))
targets = softmax(rng.normal(0.0, 1.5, (B, C)))
targets[0] = np.eye(C)[3]
save("logits_a", logits_a)
save("logits_b", logits_b)
save("logits_c", logits_c)
save("logits_d", logits_d)
save("targets", targets)

save("sharpen_t05", sharpen(targets, 0.5))
save("sharpen_t03", sharpen(targets, 0.3))
save("guess_t05", sharpen(0.5 * (softmax(logits_a) + softmax(logits_b)), 0.5))

save("soft_ce_value", [soft_ce(logits_a, targets)])
save("soft_ce_grad", complex_step_grad(lambda z: soft_ce(z, targets), logits_a))
save("mse_value", [mse(logits_a, targets)])
save("mse_grad", complex_step_grad(lambda z: mse(z, targets), logits_a))
save("js_value", [js(logits_a, logits_b)])
save("js_grad_a", complex_step_grad(lambda z: js(z, logits_b), logits_a))
save("js_grad_b", complex_step_grad(lambda z: js(logits_a, z), logits_b))

args = [logits_a, logits_b, logits_c, logits_d]
save("dif_value", [view_difference(*args)])
for k, name in enumerate(["f", "g", "f_on_adv_g", "g_on_adv_f"]):
    def partial(z, k=k):
        local = list(args)
        local[k] = z
        return view_difference(*local)
    save(f"dif_grad_{name}", complex_step_grad(partial, args[k]))

# FixMatch: weak-view probabilities with a few confident rows, tau = 0.95.
weak_logits = rng.normal(0.0, 1.0, (B, C))
weak_logits[[0, 2, 5], [1, 4, 0]] += 8.0
weak = softmax(weak_logits)
labels = weak.argmax(axis=1)
mask = (weak.max(axis=1) >= 0.95).astype(np.float64)
save("fixmatch_weak", weak)
save("fixmatch_labels", labels)
save("fixmatch_mask", mask)


def masked_ce(z):
    lp = log_softmax(z)
    return -(mask * lp[np.arange(B), labels]).sum() / B


save("fixmatch_value", [masked_ce(logits_c)])
save("fixmatch_grad", complex_step_grad(masked_ce, logits_c))

# Distribution alignment, history 2, SSLH order (add the batch, then align it), 3 steps.
history = 2
labelled_batches = [np.eye(C)[rng.integers(0, C, 4)] for _ in range(3)]
unlabelled_batches = [softmax(rng.normal(0.0, 1.0, (B, C))) for _ in range(3)]
for i in range(3):
    save(f"da_labelled_{i}", labelled_batches[i])
    save(f"da_unlabelled_{i}", unlabelled_batches[i])
lo = max(0, 2 - history + 1)
mean_l = np.concatenate(labelled_batches[lo:3]).mean(axis=0)
mean_u = np.concatenate(unlabelled_batches[lo:3]).mean(axis=0)
aligned = unlabelled_batches[2] * mean_l / mean_u
save("da_aligned_2", aligned / aligned.sum(axis=1, keepdims=True))

# Mean Teacher EMA with alpha_t = min(1 - 1/(t+1), decay), t from 0.
students = rng.normal(0.0, 1.0, (15, 4))
teacher = rng.normal(0.0, 1.0, 4)
save("ema_students", students)
save("ema_initial", teacher)
for t, s in enumerate(students):
    alpha = min(1.0 - 1.0 / (t + 1.0), 0.9)
    teacher = alpha * teacher + (1.0 - alpha) * s
save("ema_final", teacher)
print("fixtures written to", OUT)
