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
#   MODEL_PATH          checkpoint folder (default: the tiny random model, a demo, not a result)
#   DATA_PATH           released RefCOCO file: bboxs COCO xywh, solution = expressions, dataset = split
#                       (default: a built-in synthetic set in that format, 4 objects x 2 expressions)
#   IMAGE_ROOT          image folder (default: the data file's folder)
#   IMAGE_PATH_PREFIX   absolute prefix of the data's image paths to replace by IMAGE_ROOT
#   OUTPUT_DIR          where every stage writes (default outputs/eval/refcoco); rerun to resume
#   NUM_GPUS            processes, one per GPU (default: visible GPUs, else 1); > 1 launches torchrun
#   BATCH_SIZE          items per generate call per process (default 8)
#   OPENAI_MODEL OPENAI_BASE_URL OPENAI_API_KEY   not used (RefCOCO is scored by IoU)
# Extra arguments go to `python -m ground_r1.cli.evaluate` (e.g. --max_items_per_dataset 100: objects per split).
#
# Time: the demo takes ~15 s on a 2-core CPU (measured). The full file (8,000 objects, ~3 expressions each) with
# the 7B has not been timed in this project.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/_env.sh"

OUTPUT_DIR="${OUTPUT_DIR:+$(abs_path "$OUTPUT_DIR")}"
ARGS=(--protocol refcoco --batch_size "${BATCH_SIZE:-8}" --output_dir "${OUTPUT_DIR:-$REPO/outputs/eval/refcoco}")
if [ -n "${MODEL_PATH:-}" ]; then
  # A local folder is resolved against the caller's directory; anything else (a hub id) is passed as is.
  if [ -e "$(abs_path "$MODEL_PATH")" ]; then MODEL_PATH="$(abs_path "$MODEL_PATH")"; fi
  ARGS+=(--model_path "$MODEL_PATH")
fi
if [ -n "${DATA_PATH:-}" ]; then ARGS+=(--data_path "$(abs_path "$DATA_PATH")"); fi
if [ -n "${IMAGE_ROOT:-}" ]; then ARGS+=(--image_root "$(abs_path "$IMAGE_ROOT")"); fi
if [ -n "${IMAGE_PATH_PREFIX:-}" ]; then ARGS+=(--image_path_prefix "$IMAGE_PATH_PREFIX"); fi

cd "$REPO"
LAUNCH=("$PY" -m ground_r1.cli.evaluate)
if [ "$NUM_GPUS" -gt 1 ]; then
  LAUNCH=("$PY" -m torch.distributed.run --standalone --nproc_per_node "$NUM_GPUS" -m ground_r1.cli.evaluate)
fi
exec "${LAUNCH[@]}" "${ARGS[@]}" "$@"
