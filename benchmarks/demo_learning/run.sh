#!/usr/bin/env bash
# Does the CPU demo learn? For each seed: Ground-R1 GRPO from the tiny instruct base on the synthetic zoom task,
# the same run with --no_crop (the crop replaced by the original image), then a held-out greedy evaluation of
# each with the controls (no-crop lower bound, ground-truth-crop upper bound) and the model-free baselines
# (random / whole-image / centred boxes, the majority answer). The base is evaluated once before RL. A summary
# table with the spread across seeds is printed and written to OUT/summary.md.
#
#   PARALLEL=1 bash benchmarks/demo_learning/run.sh                     # the embedded default, seeds 0 1 2
#   VARIANT=release_tree PARALLEL=1 bash benchmarks/demo_learning/run.sh --num_first_round_samples 2   # the release tree
#   SEEDS="0" MAX_STEPS=40 OUT=out/demo_quick bash benchmarks/demo_learning/run.sh
#
# Variables: SEEDS (default "0 1 2"), MAX_STEPS (default: the preset's), VARIANT (default "default": results go to
# benchmarks/demo_learning/results/VARIANT), OUT (overrides that folder), EVAL_QUESTIONS (held-out questions,
# default 100), CONFIG (default configs/grpo/tiny_cpu.yaml), SKIP_NO_CROP=1 to skip the no-crop training runs,
# NO_CROP_ONLY=1 to run only them (the control of a variant first measured with SKIP_NO_CROP=1),
# PARALLEL=1 to run the seeds concurrently (one process each; the timings then share the CPU). Extra arguments go
# to every training run. Each run folder keeps run_manifest.json, metrics.jsonl and alarms.jsonl (committed with
# the results; the checkpoints are not), and timings.txt records each run's seconds with `uptime`'s load.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
PY="${PYTHON:-$REPO/.venv/bin/python}"
SEEDS="${SEEDS:-0 1 2}"
VARIANT="${VARIANT:-default}"
OUT="${OUT:-$REPO/benchmarks/demo_learning/results/$VARIANT}"
CONFIG="${CONFIG:-$REPO/configs/grpo/tiny_cpu.yaml}"
EVAL_QUESTIONS="${EVAL_QUESTIONS:-100}"
# One thread per process, whatever the caller's environment says: the float results of torch's CPU kernels
# depend on the thread count (docs/demo.md, "Reproducibility"), so a rerun with another count is another run.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$OUT"
STEPS_ARGS=()
[ -n "${MAX_STEPS:-}" ] && STEPS_ARGS=(--max_steps "$MAX_STEPS")
[ $# -gt 0 ] && printf '%s\n' "$*" > "$OUT/variant_args.txt"

load() { uptime | sed 's/.*load average: /load /'; }

evaluate() {  # evaluate MODEL OUTPUT_JSON [CONDITIONS]
  [ -f "$2" ] && { echo "[demo_learning] have $2"; return; }
  "$PY" -m ground_r1.cli.evaluate_controls --model_path "$1" --config "$CONFIG" \
    --max_questions "$EVAL_QUESTIONS" --conditions "${3:-grounded,no_crop,gt_crop,random_box,whole_image_box,centre_box,majority_answer}" \
    --output "$2" > /dev/null
}

train() {  # train RUN_DIR SEED [extra args]
  local dir="$1" seed="$2"; shift 2
  if [ -f "$dir/model.safetensors" ]; then echo "[demo_learning] have $dir"; return; fi
  local start=$SECONDS before
  before="$(load)"
  "$PY" -m ground_r1.cli.train_grpo --config "$CONFIG" --output_dir "$dir" --seed "$seed" \
    --heldout_eval_questions 0 "${STEPS_ARGS[@]}" "$@" > "$dir.log" 2>&1
  echo "[demo_learning] ${dir#"$REPO"/}: $((SECONDS - start)) s ($(date -u +%H:%M) UTC; $before at start, $(load) at end)" \
    | tee -a "$OUT/timings.txt"
}

BASE="$("$PY" -c 'from ground_r1.cli.train_grpo import default_model_path; print(default_model_path())')"
echo "[demo_learning] base model: $BASE"
evaluate "$BASE" "$OUT/base_eval.json"
one_seed() {
  local seed="$1"; shift
  mkdir -p "$OUT/seed$seed"
  if [ "${NO_CROP_ONLY:-0}" != 1 ]; then
    train "$OUT/seed$seed/grounded" "$seed" "$@"
    evaluate "$OUT/seed$seed/grounded" "$OUT/seed$seed/grounded_eval.json"
  fi
  if [ "${SKIP_NO_CROP:-0}" != 1 ]; then
    train "$OUT/seed$seed/no_crop" "$seed" --no_crop true "$@"
    evaluate "$OUT/seed$seed/no_crop" "$OUT/seed$seed/no_crop_eval.json" no_crop
  fi
}
if [ "${PARALLEL:-0}" = 1 ]; then  # one process per seed (single-threaded each); wall time ~ the slowest seed
  for seed in $SEEDS; do one_seed "$seed" "$@" & done
  wait
else
  for seed in $SEEDS; do one_seed "$seed" "$@"; done
fi
"$PY" "$REPO/benchmarks/demo_learning/summarize.py" "$OUT" | tee "$OUT/summary.md"
