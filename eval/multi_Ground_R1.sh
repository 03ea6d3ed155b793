#!/usr/bin/env bash
# VisCoT with the Ground-R1 protocol (SPEC §2, §7): multi-round grounding (box -> crop of the original image ->
# next round, up to 5 assistant turns), greedy with repetition penalty 1.05, the same rollout code as training;
# then the LLM judge, the scores and the table (judge and rule-based scores per sub-dataset, AVG over the 12 of
# the paper, emotic apart). Baseline vs Ground-R1 side by side: add --compare_to <the baseline's OUTPUT_DIR>.
#
#   bash eval/multi_Ground_R1.sh                                   # demo: tiny model, 8 synthetic items
#   MODEL_PATH=outputs/grpo/checkpoint-1000 DATA_PATH=data/visualCoT_eval_subset150_choice.jsonl \
#     IMAGE_ROOT=/data/Visual-CoT IMAGE_PATH_PREFIX=/home/meng/data/Visual-CoT NUM_GPUS=8 \
#     OPENAI_API_KEY=... bash eval/multi_Ground_R1.sh --compare_to outputs/eval/baseline_only_question
#
# Variables (all optional):
#   MODEL_PATH          checkpoint folder or hub id (default: the tiny random model, a demo, not a result); a GRPO
#                       checkpoint's rollout_settings.json sets pixels, turns and tokens unless a flag does
#   DATA_PATH           VisCoT records JSONL, SPEC §6 (default: built-in synthetic VisCoT-format set, 8 items)
#   IMAGE_ROOT          image folder (default: the data file's folder)
#   IMAGE_PATH_PREFIX   absolute prefix of the data's image paths to replace by IMAGE_ROOT (the release's files)
#   OUTPUT_DIR          where every stage writes (default outputs/eval/ground_r1); rerun to resume
#   NUM_GPUS            processes, one per GPU (default: visible GPUs, else 1); > 1 launches torchrun
#   BATCH_SIZE          items per generate call per process (default 8; each round generates all unfinished ones)
#   OPENAI_MODEL OPENAI_BASE_URL OPENAI_API_KEY   the judge; none set: NOTHING IS JUDGED (rule-based table)
# Extra arguments go to `python -m ground_r1.cli.evaluate` (e.g. --max_turns 3, --max_items 10).
#
# Exit codes (README "Exit codes"): 0 all evaluated; 1 configuration error (bad path, judge key refused);
# 3 items left unjudged (rerun judges only those); 4 records skipped (OUTPUT_DIR/skipped_records.jsonl) or predictions failed.
#
# Time: the demo takes ~30 s on a 2-core CPU (measured). The full benchmark (1,950 items, up to 5 turns of 512
# new tokens) with the 7B has not been timed in this project; judging sends 1,950 requests, 8 at a time.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/_env.sh"

OUTPUT_DIR="${OUTPUT_DIR:+$(abs_path "$OUTPUT_DIR")}"
ARGS=(--protocol ground_r1 --batch_size "${BATCH_SIZE:-8}" --output_dir "${OUTPUT_DIR:-$REPO/outputs/eval/ground_r1}")
eval_data_args

cd "$REPO"
launch_eval ground_r1.cli.evaluate "${ARGS[@]}" "$@"
