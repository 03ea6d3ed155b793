#!/usr/bin/env bash
# The seeded random-kill benchmark (docs/reliability.md): training and evaluation on the tiny CPU setup, each
# killed K times at seed-chosen points (SIGKILL/SIGTERM inside steps, inside checkpoint writes, during inference
# and during judging against a faulty judge endpoint), resumed until done, compared with uninterrupted runs.
#
#   bash benchmarks/run_kill_harness.sh                          # seed 0, 10 kills each, train + eval
#   SEED=3 KILLS=20 TARGET=train bash benchmarks/run_kill_harness.sh
#   bash benchmarks/run_kill_harness.sh --steps 16 --items_per_dataset 3   # extra flags go to kill_harness.py
#
# Variables: SEED (0), KILLS (10 per target), TARGET (both | train | eval), OUT (outputs/kill_harness).
# Output: OUT/summary.json, OUT/logs/ (one log per launch), and a printed summary; exit status 0 = PASS.
# Time: ~3 min for the default on a 2-core CPU shared with other jobs (measured 2m46s; ~10 s per relaunch).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/_env.sh"
OUT="$(abs_path "${OUT:-$REPO/outputs/kill_harness}")"
cd "$REPO"
exec "$PY" benchmarks/reliability/kill_harness.py --seed "${SEED:-0}" --kills "${KILLS:-10}" \
  --target "${TARGET:-both}" --out "$OUT" "$@"
