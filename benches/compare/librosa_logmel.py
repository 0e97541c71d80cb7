#!/usr/bin/env python3
"""Side-by-side log-mel throughput: librosa 0.11 vs tessera-spectro, on the same clips.

    python3 benches/compare/librosa_logmel.py [--clips 32] [--seconds 10] [--threads 2]

Both compute the librosa preset (sr 22050, n_fft 2048, hop 512, 128 Slaney mels) followed by
`power_to_db` (ref 1, amin 1e-10, top_db 80) on float32 clips. librosa runs single-threaded
(OMP/OPENBLAS/MKL_NUM_THREADS=1 are set before numpy is imported). tessera runs the release
example `logmel_throughput` on a .npy of the same clips: once clip by clip on one thread and
once with `compute_batch` on `--threads` rayon threads. The script also checks that the two
agree on the first clip, then prints throughputs and ratios.
"""
import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import librosa  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SR = 22050


def librosa_logmel(clip):
    return librosa.power_to_db(librosa.feature.melspectrogram(y=clip, sr=SR))


def time_librosa(clips, min_seconds):
    librosa_logmel(clips[0])  # warm-up (filterbank cache, FFT plans)
    rounds, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while rounds == 0 or time.perf_counter() - start < min_seconds:
        for clip in clips:
            librosa_logmel(clip)
        rounds += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return rounds * len(clips) / wall, rounds * len(clips) / cpu, cpu / wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2, help="rayon threads for compute_batch")
    parser.add_argument("--min-time", type=float, default=3.0, help="seconds per librosa measurement")
    args = parser.parse_args()

    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    work = os.path.join(target, "compare")
    os.makedirs(work, exist_ok=True)
    clips_path = os.path.join(work, "librosa_logmel_clips.npy")
    check_path = os.path.join(work, "librosa_logmel_check.npy")

    rng = np.random.default_rng(7)
    n = int(SR * args.seconds)
    t = np.arange(n) / SR
    clips = np.empty((args.clips, n), dtype=np.float32)
    for i in range(args.clips):
        tone = 0.3 * np.sin(2 * np.pi * (110.0 * (i + 1)) * t)
        clips[i] = (tone + 0.1 * rng.standard_normal(n)).astype(np.float32)
    np.save(clips_path, clips)

    print(f"librosa {librosa.__version__}, numpy {np.__version__}; {args.clips} clips x {args.seconds} s")
    librosa_rate, librosa_per_cpu, librosa_util = time_librosa(clips, args.min_time)
    print(f"librosa (1 thread):          {librosa_rate:9.2f} clips/s "
          f"({librosa_per_cpu:.1f} per CPU-second, {librosa_util:.2f} cores used)")

    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "tessera-spectro", "--example", "logmel_throughput"],
        cwd=ROOT, check=True)
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    out = subprocess.run(
        ["cargo", "run", "--release", "-q", "-p", "tessera-spectro", "--example", "logmel_throughput",
         "--", clips_path, "--check", check_path],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    values = dict(re.findall(r"^(\w+)=(\S+)$", out, flags=re.M))
    single = float(values["single_thread_clips_per_s"])
    batch = float(values["batch_clips_per_s"])
    threads = values["threads"]

    ours = np.load(check_path)
    reference = librosa_logmel(clips[0].astype(np.float64))
    worst_db = float(np.max(np.abs(ours.astype(np.float64) - reference)))

    print(f"tessera single thread:       {single:9.2f} clips/s")
    print(f"tessera compute_batch ({threads} thr): {batch:9.2f} clips/s")
    print(f"ratio single / librosa:      {single / librosa_rate:9.2f}x  (target >= 3)")
    print(f"ratio batch / single:        {batch / single:9.2f}x  (target >= 1.8 on 2 cores)")
    print(f"ratio batch / librosa:       {batch / librosa_rate:9.2f}x")
    print(f"max |dB difference| on clip 0 (tessera f32 vs librosa f64): {worst_db:.2e}")
    if "batch_cpu_utilisation" in values:
        print(f"CPU cores actually used:     single {float(values['single_thread_cpu_utilisation']):.2f}, "
              f"batch {float(values['batch_cpu_utilisation']):.2f} (a shared machine may give fewer than asked)")
        print(f"clips per CPU-second:        single {float(values['single_thread_clips_per_cpu_s']):.1f}, "
              f"batch {float(values['batch_clips_per_cpu_s']):.1f} (equal = no parallel overhead)")
        per_cpu = float(values["single_thread_clips_per_cpu_s"]) / librosa_per_cpu
        print(f"ratio single / librosa per CPU-second: {per_cpu:.2f}x (load-independent)")
    if worst_db > 1e-2:
        print("ERROR: outputs disagree", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
