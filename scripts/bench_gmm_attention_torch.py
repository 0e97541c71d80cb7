#!/usr/bin/env python3
"""PyTorch's time for the tessera-gpu GMM-attention benchmark, for the side-by-side table.

Times forward + backward of multi-head attention at the shapes of
`cargo bench -p tessera-gpu --bench gmm_attention` (benches/gmm_attention.rs): batch 32,
12 heads, 197 tokens (a CLS token and a 14x14 grid), d_head = 64, float32, five Gaussians per
head, on `--device` (cuda by default):

- `sdpa`: torch.nn.functional.scaled_dot_product_attention without a mask (the performance
  target's baseline: tessera-gpu's GMM attention should come within 1.2x of it on an H100/H200);
- `sdpa_additive`: the same with the GMM mask as a float `attn_mask` (an additive logit bias);
- `gmm_multiplicative`: the reference model's attention written out (Q K^T * scale, times the
  GMM mask, softmax, times V), with gradients for alpha and sigma as well.

The mask is built from alpha and sigma inside the timed step, as tessera-gpu does. Best of
`--repeats` runs of `--steps` steps after a warm-up, synchronising before the clock stops.

    python3 scripts/bench_gmm_attention_torch.py --device cuda

prints one line per variant: `torch <variant> device=... best_ms=...`.
"""

import argparse
import time

import torch
import torch.nn.functional as F


def gmm_mask(alpha, sigma, rows, cols, extra, neutral):
    """(heads, tokens, tokens) mixture over squared grid distances; extra tokens neutral."""
    r = torch.arange(rows, device=alpha.device).repeat_interleave(cols)
    c = torch.arange(cols, device=alpha.device).repeat(rows)
    d2 = ((r[:, None] - r[None, :]) ** 2 + (c[:, None] - c[None, :]) ** 2).float()
    precision = 1.0 / (2.0 * (sigma**2 + 1e-5))  # (K, H)
    grid = (alpha[:, :, None, None] * torch.exp(-d2[None, None] * precision[:, :, None, None])).sum(0)
    tokens = extra + rows * cols
    full = torch.full((alpha.shape[1], tokens, tokens), neutral, device=alpha.device)
    full[:, extra:, extra:] = grid
    return full


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--side", type=int, default=14)
    parser.add_argument("--d-head", type=int, default=64)
    parser.add_argument("--kernels", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    # Full fp32 products, as tessera-gpu computes them (no TF32).
    torch.backends.cuda.matmul.allow_tf32 = False
    tokens = args.side * args.side + 1
    shape = (args.batch, args.heads, tokens, args.d_head)
    q, k, v = (torch.rand(shape, device=device) * 2 - 1 for _ in range(3))
    for t in (q, k, v):
        t.requires_grad_(True)
    alpha = (torch.randn(args.kernels, args.heads, device=device) * 2).requires_grad_(True)
    sigma = (torch.randn(args.kernels, args.heads, device=device) * 10 + 10).requires_grad_(True)
    scale = args.d_head**-0.5

    def sdpa():
        out = F.scaled_dot_product_attention(q, k, v)
        out.backward(out.detach())

    def sdpa_additive():
        mask = gmm_mask(alpha, sigma, args.side, args.side, 1, 0.0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[None])
        out.backward(out.detach())

    def gmm_multiplicative():
        mask = gmm_mask(alpha, sigma, args.side, args.side, 1, 1.0)
        logits = (q @ k.transpose(-1, -2)) * scale * mask[None]
        out = torch.softmax(logits, dim=-1) @ v
        out.backward(out.detach())

    for name, step in [("sdpa", sdpa), ("sdpa_additive", sdpa_additive), ("gmm_multiplicative", gmm_multiplicative)]:
        for _ in range(3):
            step()
        best = float("inf")
        for _ in range(args.repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, (time.perf_counter() - start) / args.steps)
        print(f"torch {name} device={device} best_ms={best * 1e3:.3f}")


if __name__ == "__main__":
    main()
