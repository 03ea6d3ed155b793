#!/usr/bin/env bash
# Speed and memory of one GRPO step, side by side, in one process: (a) GroundR1Trainer, (b) TRL's stock
# GRPOTrainer single-turn on the same prompts, (c) the release-style multi-round loop, and (a) with one saving
# off: (n) vision reuse, (k) KV carry-over, (p) the loss batch (TRL's padded one). Prints a table and the ratios
# (a)/(b), (c)/(a), (p)/(a), ... with min/median/max over the repeats; writes every raw figure to OUT (JSON).
#
#   bash benchmarks/run_perf.sh                          # tiny model on CPU, 3 repeats
#   GEOMETRY=7b DEVICE=cuda bash benchmarks/run_perf.sh --max_new_tokens_per_turn 512 --max_turns 5 \
#     --max_pixels 401408 --questions 1                  # the real 7B sizes, random init, on one GPU
#
# Variables (optional; a relative OUT is taken from the directory you run it from):
#   GEOMETRY  tiny | 3b | 7b              (default tiny; 3b/7b need DEVICE=cuda)
#   DEVICE    cpu | cuda                  (default cpu)
#   REPEATS   repeats of the three steps  (default 3)
#   OUT       JSON of every figure        (default benchmarks/perf/results/perf_<geometry>_<device>.json)
# Extra arguments go to benchmarks/perf/bench_rollout.py (see its --help: --questions, --num_generations,
# --max_turns, --policy, --profile DIR, ...). What the figures mean: benchmarks/perf/README.md.
# Time: the default run took 4 min 14 s on 2 shared CPU cores (load ~4), most of it in (c) (measured with `time`).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/_env.sh"

GEOMETRY="${GEOMETRY:-tiny}"
DEVICE="${DEVICE:-cpu}"
REPEATS="${REPEATS:-3}"
OUT="$(abs_path "${OUT:-$REPO/benchmarks/perf/results/perf_${GEOMETRY}_${DEVICE}.json}")"
cd "$REPO"

echo "[run_perf] geometry=$GEOMETRY device=$DEVICE repeats=$REPEATS out=$OUT"
exec "$PY" benchmarks/perf/bench_rollout.py --geometry "$GEOMETRY" --device "$DEVICE" --repeats "$REPEATS" \
  --out "$OUT" "$@"
