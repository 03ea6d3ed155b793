#!/usr/bin/env bash
# RefCOCO / RefCOCO+ / RefCOCOg grounding (SPEC §7): one turn per referring expression with Qwen's prompt
# "Locate {expression} in this image and output the bbox coordinates in JSON format.", the first box rescaled
# from the model's input frame to original pixels, Acc@0.5 per split. Two labelled protocols: standard (each
# expression counts; first) and the release's (an object is correct if any of its expressions hits). No judge.
#
#   bash eval/multi_RefCOCO.sh                                     # demo: tiny model, 4 synthetic objects
#   MODEL_PATH=outputs/grpo/checkpoint-1000 DATA_PATH=data/RefCOCO_eval_subset_1000.jsonl \
#     IMAGE_ROOT=/data/refcoco_images NUM_GPUS=8 bash eval/multi_RefCOCO.sh
#
# Variables (all optional):
#   MODEL_PATH          checkpoint folder or hub id (default: the tiny random model, a demo, not a result); a GRPO
#                       checkpoint's rollout_settings.json sets pixels, turns and tokens unless a flag does
#   DATA_PATH           released RefCOCO file: bboxs COCO xywh, solution = expressions, dataset = split
#                       (default: a built-in synthetic set in that format, 4 objects x 2 expressions)
#   IMAGE_ROOT          image folder (default: the data file's folder)
#   IMAGE_PATH_PREFIX   absolute prefix of the data's image paths to replace by IMAGE_ROOT
#   OUTPUT_DIR          where every stage writes (default outputs/eval/refcoco); rerun to resume
#   NUM_GPUS            processes, one per GPU (default: visible GPUs, else 1); > 1 launches torchrun
#   BATCH_SIZE          items per generate call per process (default 8)
#   OPENAI_MODEL OPENAI_BASE_URL OPENAI_API_KEY   not used (RefCOCO is scored by IoU)
# Extra arguments go to `python -m ground_r1.cli.evaluate` (e.g. --max_items 100: objects per split).
#
# Exit codes (README "Exit codes"): 0 all evaluated; 1 configuration error (bad path, judge key refused);
# 4 records skipped (OUTPUT_DIR/skipped_records.jsonl) or predictions failed.
#
# Time: the demo takes ~15 s on a 2-core CPU (measured). The full file (8,000 objects, ~3 expressions each) with
# the 7B has not been timed in this project.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/_env.sh"

OUTPUT_DIR="${OUTPUT_DIR:+$(abs_path "$OUTPUT_DIR")}"
ARGS=(--protocol refcoco --batch_size "${BATCH_SIZE:-8}" --output_dir "${OUTPUT_DIR:-$REPO/outputs/eval/refcoco}")
eval_data_args

cd "$REPO"
launch_eval ground_r1.cli.evaluate "${ARGS[@]}" "$@"
