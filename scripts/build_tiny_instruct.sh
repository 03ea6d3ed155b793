#!/usr/bin/env bash
# Rebuild the tiny instruct base of the CPU demo (ground_r1.demo.instruct_recipe; recipe configs/sft/tiny_instruct.yaml,
# which continues from configs/sft/tiny_instruct_grounding.yaml: both phases are built, the first in OUTPUT_DIR.work).
#
#   bash scripts/build_tiny_instruct.sh                       # -> src/ground_r1/assets/tiny-instruct (the demo's default)
#   OUTPUT_DIR=out/my_base SEED=1 bash scripts/build_tiny_instruct.sh
#
# Variables: OUTPUT_DIR (default src/ground_r1/assets/tiny-instruct), CONFIG (default configs/sft/tiny_instruct.yaml),
# SEED (default: the config's). Extra arguments go to the recipe (--steps_scale 0.1, --no_gate).
# Exits 1 when the held-out gate (grounding IoU>0.5 rate >= gate_iou50) is not met; the model is saved either way,
# with eval.json saying whether it passed. Writes recipe.yaml, train_log.jsonl and eval.json beside the weights.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/_env.sh"
OUTPUT_DIR="$(abs_path "${OUTPUT_DIR:-$REPO/src/ground_r1/assets/tiny-instruct}")"
CONFIG="$(abs_path "${CONFIG:-$REPO/configs/sft/tiny_instruct.yaml}")"
cd "$REPO"
ARGS=(--config "$CONFIG" --output_dir "$OUTPUT_DIR")
[ -n "${SEED:-}" ] && ARGS+=(--seed "$SEED")
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"  # the tiny model is faster single-threaded on a busy CPU
echo "[build_tiny_instruct] recipe $CONFIG -> $OUTPUT_DIR"
exec "$PY" -m ground_r1.demo.instruct_recipe "${ARGS[@]}" "$@"
