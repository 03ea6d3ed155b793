#!/usr/bin/env bash
# VisCoT baseline (SPEC §7): ONE turn per question with a prompt class, then the LLM judge, the scores and
# the table (judge and rule-based scores per sub-dataset, AVG over the 12 of the paper, emotic apart).
#
#   bash eval/multi_baseline.sh                                    # demo: tiny model, 8 synthetic items
#   MODEL_PATH=/ckpt/Qwen2.5-VL-7B-Instruct DATA_PATH=data/visualCoT_eval_subset150_choice.jsonl \
#     IMAGE_ROOT=/data/Visual-CoT IMAGE_PATH_PREFIX=/home/meng/data/Visual-CoT NUM_GPUS=8 \
#     OPENAI_API_KEY=... bash eval/multi_baseline.sh
#
# Variables (all optional):
#   MODEL_PATH          checkpoint folder or hub id (default: the tiny random model, a demo, not a result); a GRPO
#                       checkpoint's rollout_settings.json sets pixels, turns and tokens unless a flag does
#   DATA_PATH           VisCoT records JSONL, SPEC §6 (default: built-in synthetic VisCoT-format set, 8 items)
#   IMAGE_ROOT          image folder (default: the data file's folder)
#   IMAGE_PATH_PREFIX   absolute prefix of the data's image paths to replace by IMAGE_ROOT (the release's files)
#   OUTPUT_DIR          where every stage writes (default outputs/eval/baseline_$PROMPT_CLASS); rerun to resume
#   NUM_GPUS            processes, one per GPU (default: visible GPUs, else 1); > 1 launches torchrun
#   BATCH_SIZE          items per generate call per process (default 8)
#   PROMPT_CLASS        only_question | simply_answer | basic_grpo (default only_question)
#   OPENAI_MODEL OPENAI_BASE_URL OPENAI_API_KEY   the judge; none set: NOTHING IS JUDGED (rule-based table)
# Extra arguments go to `python -m ground_r1.cli.evaluate` (e.g. --max_items 10, --compare_to DIR).
#
# Exit codes (README "Exit codes"): 0 all evaluated; 1 configuration error (bad path, judge key refused);
# 3 items left unjudged (rerun judges only those); 4 records skipped (OUTPUT_DIR/skipped_records.jsonl) or predictions failed.
#
# Time: the demo takes ~10 s on a 2-core CPU (measured). The full benchmark (1,950 items, up to 512 new tokens)
# with the 7B has not been timed in this project; judging sends 1,950 requests, 8 at a time.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/_env.sh"

PROMPT_CLASS="${PROMPT_CLASS:-only_question}"
OUTPUT_DIR="${OUTPUT_DIR:+$(abs_path "$OUTPUT_DIR")}"
ARGS=(--protocol baseline --prompt_class "$PROMPT_CLASS" --batch_size "${BATCH_SIZE:-8}"
      --output_dir "${OUTPUT_DIR:-$REPO/outputs/eval/baseline_$PROMPT_CLASS}")
eval_data_args

cd "$REPO"
launch_eval ground_r1.cli.evaluate "${ARGS[@]}" "$@"
