#!/usr/bin/env bash
# Prepare the SFT ablation data (SPEC §8): vanilla.jsonl, ground.jsonl and the evidence-box crops. Runs
#   python -m ground_r1.cli.prepare_sft_data --data_path $DATA_PATH --output_dir $SFT_DATA_DIR --config $CONFIG ...
#
#   bash qwen-vl-finetune/scripts/prepare_SFT_data.sh          # from the repo root (the seed README), or from anywhere
#   DATA_PATH=/data/viscot_train.jsonl IMAGE_ROOT=/data/Visual-CoT MODEL_PATH=Qwen/Qwen2.5-VL-7B-Instruct \
#     bash qwen-vl-finetune/scripts/prepare_SFT_data.sh
#
# Variables (relative paths are taken from where you run the script):
#   DATA_PATH         VisCoT records JSONL (SPEC §6; convert the upstream format with ground_r1.cli.prepare_viscot).
#                     Unset: the built-in synthetic zoom data.
#   IMAGE_ROOT        folder the records' image paths resolve against (default: DATA_PATH's folder)
#   IMAGE_PATH_PREFIX prefix of the records' absolute image paths to replace by IMAGE_ROOT (the release's files
#                     carry /home/<author>/... paths)
#   SFT_DATA_DIR      output folder (default: outputs/sft_data; Vanilla_SFT.sh / Ground_SFT.sh read it there)
#   CONFIG            the SFT launcher's preset: its min_pixels / max_pixels define the box targets' input frame.
#                     Give the same CONFIG to Vanilla_SFT.sh / Ground_SFT.sh: they refuse data prepared with other
#                     limits. Default, as the launchers pick theirs: MODEL_PATH set -> configs/sft/ground.yaml
#                     (= vanilla.yaml's 3136 / 401408), unset -> configs/sft/tiny_cpu.yaml (12544)
#   MIN_PIXELS / MAX_PIXELS   override the preset's (then train with the same values)
#   MAX_RECORDS       only the first N records; SKIP_BAD_RECORDS=1 skips bad records (listed in skipped_records.jsonl)
# The unused NUM_GPUS, OUTPUT_DIR and MAX_STEPS of the training launchers are ignored here.
# Default run (nothing set): 1,000 synthetic records (built once, ~5 s), crops cut and saved, ~10 s; a rerun reuses the crops.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/_env.sh"

if [ -n "${MODEL_PATH:-}" ]; then DEFAULT_CONFIG="$REPO/configs/sft/ground.yaml"; else DEFAULT_CONFIG="$REPO/configs/sft/tiny_cpu.yaml"; fi
CONFIG="$(abs_path "${CONFIG:-}")"; CONFIG="${CONFIG:-$DEFAULT_CONFIG}"
SFT_DATA_DIR="$(abs_path "${SFT_DATA_DIR:-}")"; SFT_DATA_DIR="${SFT_DATA_DIR:-$REPO/outputs/sft_data}"
DATA_PATH="$(abs_path "${DATA_PATH:-}")"
IMAGE_ROOT="$(abs_path "${IMAGE_ROOT:-}")"

ARGS=(--output_dir "$SFT_DATA_DIR" --config "$CONFIG")
[ -n "$DATA_PATH" ] && ARGS+=(--data_path "$DATA_PATH")
[ -n "$IMAGE_ROOT" ] && ARGS+=(--image_root "$IMAGE_ROOT")
[ -n "${IMAGE_PATH_PREFIX:-}" ] && ARGS+=(--image_path_prefix "$IMAGE_PATH_PREFIX")
[ -n "${MIN_PIXELS:-}" ] && ARGS+=(--min_pixels "$MIN_PIXELS")
[ -n "${MAX_PIXELS:-}" ] && ARGS+=(--max_pixels "$MAX_PIXELS")
[ -n "${MAX_RECORDS:-}" ] && ARGS+=(--max_records "$MAX_RECORDS")
[ "${SKIP_BAD_RECORDS:-0}" = "1" ] && ARGS+=(--skip_bad_records)

cd "$REPO"
exec "$PY" -m ground_r1.cli.prepare_sft_data "${ARGS[@]}" "$@"
