#!/usr/bin/env python3
"""Times, in PyTorch on a CUDA device, the operations tessera-gpu's benches time, for the
side-by-side table of docs/PERFORMANCE.md (issue 20):

- batched log-mel of 256 x 10 s clips at 22.05 kHz (librosa defaults: n_fft 2048, hop 512,
  128 Slaney mels, power 2, dB with ref 1, amin 1e-10, top_db 80 per item): torch.stft on the
  device + power + mel matmul + dB, the fastest plain-PyTorch path (no torchaudio graph);
- attention with a multiplicative mask (the GMM-mask paper) and plain
  scaled_dot_product_attention (the 1.2x target is against the unmasked SDPA);
- torch.sparse.mm (CSR) for random pruning's three layer shapes at densities 0.1 and 0.01.

Each operation runs on tensors already on the device, with warm-up, timed by CUDA events,
best of `--reps`; the script prints one markdown table. Run on the GPU machine:

    python3 scripts/gpu_vs_torch.py --reps 20

and the Rust side with `cargo bench -p tessera-gpu --bench gpu` (or the bench binary built by
`cargo bench -p tessera-gpu --no-run` copied there).
"""
import argparse
import math

import torch


def timed(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    best = math.inf
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(stop))
    return best  # milliseconds


def slaney_mel(sr, n_fft, n_mels, device):
    """Slaney-scale, Slaney-normalised mel filterbank (librosa.filters.mel defaults)."""
    def hz_to_mel(f):
        f = torch.as_tensor(f, dtype=torch.float64)
        lin = 3.0 * f / 200.0
        log = 15.0 + 27.0 * torch.log(torch.clamp(f, min=1e-10) / 1000.0) / math.log(6.4)
        return torch.where(f >= 1000.0, log, lin)

    def mel_to_hz(m):
        lin = 200.0 * m / 3.0
        log = 1000.0 * torch.exp(math.log(6.4) * (m - 15.0) / 27.0)
        return torch.where(m >= 15.0, log, lin)

    fft_freqs = torch.linspace(0, sr / 2, n_fft // 2 + 1, dtype=torch.float64)
    mel_points = mel_to_hz(torch.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2, dtype=torch.float64))
    fdiff = torch.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    weights *= (2.0 / (mel_points[2:n_mels + 2] - mel_points[:n_mels]))[:, None]
    return weights.to(device=device, dtype=torch.float32)


def log_mel(args, device):
    sr, n_fft, hop, n_mels = 22050, 2048, 512, 128
    clips = torch.rand(256, 10 * sr, device=device) - 0.5
    window = torch.hann_window(n_fft, periodic=True, device=device)
    mel = slaney_mel(sr, n_fft, n_mels, device)

    def run():
        spec = torch.stft(clips, n_fft, hop_length=hop, window=window, center=True,
                          pad_mode="constant", return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2
        m = torch.matmul(mel, power)
        db = 10.0 * torch.log10(torch.clamp(m, min=1e-10))
        peak = db.amax(dim=(1, 2), keepdim=True)
        return torch.maximum(db, peak - 80.0)

    def stft_matmul_only():
        spec = torch.stft(clips, n_fft, hop_length=hop, window=window, center=True,
                          pad_mode="constant", return_complex=True)
        return torch.matmul(mel, spec.abs() ** 2)

    return [("log-mel 256 x 10 s (stft + power + mel matmul + dB, top_db)", timed(run, args.reps)),
            ("log-mel 256 x 10 s (stft + mel matmul only)", timed(stft_matmul_only, args.reps))]


def attention(args, device):
    rows = []
    for batch, heads, tokens, dim in [(64, 6, 197, 64), (16, 12, 577, 64)]:
        q, k, v = (torch.randn(batch, heads, tokens, dim, device=device) for _ in range(3))
        mask = torch.rand(heads, tokens, tokens, device=device)
        scale = 1.0 / math.sqrt(dim)

        def masked():
            logits = torch.matmul(q, k.transpose(-1, -2)) * scale * mask
            return torch.matmul(torch.softmax(logits, dim=-1), v)

        rows.append((f"attention b{batch} h{heads} n{tokens} d{dim}: SDPA, no mask",
                     timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v), args.reps)))
        rows.append((f"attention b{batch} h{heads} n{tokens} d{dim}: matmul-softmax, multiplicative mask",
                     timed(masked, args.reps)))
    return rows


def sparse(args, device):
    rows = []
    for nrows, ncols, n in [(1024, 1024, 256), (512, 2304, 128), (4096, 1024, 64)]:
        for density in (0.1, 0.01):
            w = torch.randn(nrows, ncols, device=device)
            w = w * (torch.rand(nrows, ncols, device=device) < density)
            csr = w.to_sparse_csr()
            b = torch.randn(ncols, n, device=device)
            rows.append((f"torch.sparse.mm CSR {nrows}x{ncols} . {ncols}x{n}, density {density}",
                         timed(lambda: torch.sparse.mm(csr, b), args.reps)))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("skipped: no CUDA device")
        return
    device = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    print("| operation | best ms |\n|---|---|")
    for name, ms in log_mel(args, device) + attention(args, device) + sparse(args, device):
        print(f"| {name} | {ms:.3f} |")


if __name__ == "__main__":
    main()
