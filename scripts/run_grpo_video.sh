#!/usr/bin/env bash
# Ground-R1 GRPO training (the seed README's command).
#
#   bash scripts/run_grpo_video.sh                       # CPU demo: tiny offline model, built-in synthetic data
#   CONFIG=configs/grpo/release.yaml MODEL_PATH=Qwen/Qwen2.5-VL-7B-Instruct DATA_PATH=viscot_train.jsonl \
#     IMAGE_ROOT=/data/viscot NUM_GPUS=4 bash scripts/run_grpo_video.sh
#   RESUME=1 OUTPUT_DIR=out/run1 bash scripts/run_grpo_video.sh   # continue from the last complete checkpoint
#
# Variables (all optional; relative paths are taken from the directory you run it from):
#   MODEL_PATH   model folder or hub id          (default: the shipped tiny instruct Qwen2.5-VL)
#   DATA_PATH    training JSONL (VisCoT records) (default: built-in synthetic zoom-in data)
#   IMAGE_ROOT   folder image paths resolve against;  IMAGE_PATH_PREFIX: absolute prefix in the records to replace
#   OUTPUT_DIR   run folder (checkpoints, metrics.jsonl, run_manifest.json)   (default: outputs/grpo)
#   CONFIG       preset YAML                      (default: configs/grpo/tiny_cpu.yaml, or release.yaml with MODEL_PATH
#                or DATA_PATH; release.yaml trains in bf16: on a machine without a GPU the trainer refuses it before
#                any work and says what runs on CPU: `--bf16 false`, or CONFIG=configs/grpo/tiny_cpu.yaml)
#   NUM_GPUS     processes per node (default: visible GPUs, else 1);  NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT
#   DEEPSPEED    DeepSpeed JSON (default: configs/deepspeed/zero3.json; zero3_cpu.json on CPU)
#   MAX_STEPS    override the step count;  RESUME=1: resume from the last complete checkpoint of OUTPUT_DIR
# Extra arguments are passed to `python -m ground_r1.cli.train_grpo` (any config field: --learning_rate 2e-6 ...).
# Time: the default CPU demo (200 GRPO steps from the shipped tiny instruct base, the held-out accuracy before step 1
# and every 50 steps, then the held-out evaluation with controls) took 2,723 s on 2 cores shared with other work
# (mean load 4.2); 12-14 min per run with three runs side by side on a quieter machine (docs/demo.md). The first
# held-out figure is printed within a minute; MAX_STEPS=50 takes ~8 min under the same load (README).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/_env.sh"

MODEL_PATH="$(resolve_model_path "${MODEL_PATH:-}")"
DATA_PATH="$(abs_path "${DATA_PATH:-}")"
IMAGE_ROOT="$(abs_path "${IMAGE_ROOT:-}")"
OUTPUT_DIR="$(abs_path "${OUTPUT_DIR:-$REPO/outputs/grpo}")"
if [ -z "$MODEL_PATH" ] && [ -z "$DATA_PATH" ]; then
  echo "[run_grpo_video] no MODEL_PATH/DATA_PATH: training the tiny offline Qwen2.5-VL on the built-in synthetic data (CPU demo)"
  DEFAULT_CONFIG="configs/grpo/tiny_cpu.yaml"
else
  echo "[run_grpo_video] model=${MODEL_PATH:-<tiny offline model>} data=${DATA_PATH:-<built-in synthetic data>} output=$OUTPUT_DIR"
  DEFAULT_CONFIG="configs/grpo/release.yaml"
fi
CONFIG="$(abs_path "${CONFIG:-$REPO/$DEFAULT_CONFIG}")"
cd "$REPO"
# Named in the trainer's refusal of a GPU-only preset (bf16) on a machine without a GPU, with the CPU fix.
export GROUND_R1_LAUNCHER="${GROUND_R1_LAUNCHER:-bash scripts/run_grpo_video.sh}"

ARGS=(--config "$CONFIG" --output_dir "$OUTPUT_DIR")
[ -n "$MODEL_PATH" ] && ARGS+=(--model_name_or_path "$MODEL_PATH")
[ -n "$DATA_PATH" ] && ARGS+=(--data_path "$DATA_PATH")
[ -n "$IMAGE_ROOT" ] && ARGS+=(--image_root "$IMAGE_ROOT")
[ -n "${IMAGE_PATH_PREFIX:-}" ] && ARGS+=(--image_path_prefix "$IMAGE_PATH_PREFIX")
[ -n "${MAX_STEPS:-}" ] && ARGS+=(--max_steps "$MAX_STEPS")
[ "${RESUME:-0}" = 1 ] && ARGS+=(--resume_from_checkpoint auto)
launch_training run_grpo_video ground_r1.cli.train_grpo "${ARGS[@]}" "$@"
