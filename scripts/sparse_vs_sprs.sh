#!/usr/bin/env bash
# Side-by-side tables of tessera-sparse against sprs 0.11 (sparse × dense) and dense-then-mask
# (masked weight gradient), one thread and two threads reported separately, plus the kernel
# crossover (issue 19). The machine header and load averages go with the tables; on a shared
# machine only the ratios of the interleaved runs are meaningful.
#
#   scripts/sparse_vs_sprs.sh [example args, e.g. --reps 15 --products --threads 1]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p tessera-sparse --example vs_sprs
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
echo "loadavg at start: $(cat /proc/loadavg)"
cargo run --release -q -p tessera-sparse --example vs_sprs -- "$@"
echo "loadavg at end: $(cat /proc/loadavg)"
