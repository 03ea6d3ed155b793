#!/usr/bin/env bash
# VisCoT with the Ground SFT protocol (SPEC §8): two fixed turns: (1) ask for the evidence box [x1,y1,x2,y2],
# (2) show the crop of the original image around it (28-px minimum, shifted inside; the full image if no box)
# and ask for the answer; greedy with repetition penalty 1.05. Then the LLM judge, the scores and the table.
# (A Vanilla SFT model is evaluated with eval/multi_baseline.sh.)
#
#   bash eval/multi_Ground_SFT.sh                                  # demo: tiny model, 8 synthetic items
#   MODEL_PATH=outputs/sft/ground DATA_PATH=data/visualCoT_eval_subset150_choice.jsonl \
#     IMAGE_ROOT=/data/Visual-CoT IMAGE_PATH_PREFIX=/home/meng/data/Visual-CoT NUM_GPUS=8 \
#     OPENAI_API_KEY=... bash eval/multi_Ground_SFT.sh
#
# Variables (all optional):
#   MODEL_PATH          checkpoint folder or hub id (default: the tiny random model, a demo, not a result); a GRPO
#                       checkpoint's rollout_settings.json sets pixels, turns and tokens unless a flag does
#   DATA_PATH           VisCoT records JSONL, SPEC §6 (default: built-in synthetic VisCoT-format set, 8 items)
#   IMAGE_ROOT          image folder (default: the data file's folder)
#   IMAGE_PATH_PREFIX   absolute prefix of the data's image paths to replace by IMAGE_ROOT (the release's files)
#   OUTPUT_DIR          where every stage writes (default outputs/eval/ground_sft); rerun to resume
#   NUM_GPUS            processes, one per GPU (default: visible GPUs, else 1); > 1 launches torchrun
#   BATCH_SIZE          items per generate call per process (default 8)
#   OPENAI_MODEL OPENAI_BASE_URL OPENAI_API_KEY   the judge; none set: NOTHING IS JUDGED (rule-based table)
# Extra arguments go to `python -m ground_r1.cli.evaluate` (e.g. --max_items 10, --compare_to DIR).
#
# Exit codes (README "Exit codes"): 0 all evaluated; 1 configuration error (bad path, judge key refused);
# 3 items left unjudged (rerun judges only those); 4 records skipped (OUTPUT_DIR/skipped_records.jsonl) or predictions failed.
#
# Time: the demo takes ~15 s on a 2-core CPU (measured). The full benchmark (1,950 items, two turns of up to 512
# new tokens) with the 7B has not been timed in this project; judging sends 1,950 requests, 8 at a time.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/_env.sh"

OUTPUT_DIR="${OUTPUT_DIR:+$(abs_path "$OUTPUT_DIR")}"
ARGS=(--protocol ground_sft --batch_size "${BATCH_SIZE:-8}" --output_dir "${OUTPUT_DIR:-$REPO/outputs/eval/ground_sft}")
eval_data_args

cd "$REPO"
launch_eval ground_r1.cli.evaluate "${ARGS[@]}" "$@"
