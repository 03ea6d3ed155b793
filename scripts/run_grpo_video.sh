#!/usr/bin/env bash
# Ground-R1 GRPO training (the seed README's command).
#
#   bash scripts/run_grpo_video.sh                       # CPU demo: tiny offline model, built-in synthetic data
#   CONFIG=configs/grpo/release.yaml MODEL_PATH=Qwen/Qwen2.5-VL-7B-Instruct DATA_PATH=viscot_train.jsonl \
#     IMAGE_ROOT=/data/viscot NUM_GPUS=4 bash scripts/run_grpo_video.sh
#   RESUME=1 OUTPUT_DIR=out/run1 bash scripts/run_grpo_video.sh   # continue from the last complete checkpoint
#
# Variables (all optional; relative paths are taken from the directory you run it from):
#   MODEL_PATH   model folder or hub id          (default: the tiny offline Qwen2.5-VL)
#   DATA_PATH    training JSONL (VisCoT records) (default: built-in synthetic zoom-in data)
#   IMAGE_ROOT   folder image paths resolve against;  IMAGE_PATH_PREFIX: absolute prefix in the records to replace
#   OUTPUT_DIR   run folder (checkpoints, metrics.jsonl, run_manifest.json)   (default: outputs/grpo)
#   CONFIG       preset YAML                      (default: configs/grpo/tiny_cpu.yaml, or release.yaml with MODEL_PATH)
#   NUM_GPUS     processes per node (default: visible GPUs, else 1);  NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT
#   DEEPSPEED    DeepSpeed JSON (default: configs/deepspeed/zero3.json; zero3_cpu.json on CPU)
#   MAX_STEPS    override the step count;  RESUME=1: resume from the last complete checkpoint of OUTPUT_DIR
# Extra arguments are passed to `python -m ground_r1.cli.train_grpo` (any config field: --learning_rate 2e-6 ...).
# Time: the default CPU demo takes about a minute on 2 cores.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/_env.sh"

MODEL_PATH="${MODEL_PATH:-}"
DATA_PATH="$(abs_path "${DATA_PATH:-}")"
IMAGE_ROOT="$(abs_path "${IMAGE_ROOT:-}")"
OUTPUT_DIR="$(abs_path "${OUTPUT_DIR:-$REPO/outputs/grpo}")"
if [ -n "$MODEL_PATH" ] && [ -e "$(abs_path "$MODEL_PATH")" ]; then MODEL_PATH="$(abs_path "$MODEL_PATH")"; fi
if [ -z "$MODEL_PATH" ] && [ -z "$DATA_PATH" ]; then
  echo "[run_grpo_video] no MODEL_PATH/DATA_PATH: training the tiny offline Qwen2.5-VL on the built-in synthetic data (CPU demo)"
  DEFAULT_CONFIG="configs/grpo/tiny_cpu.yaml"
else
  echo "[run_grpo_video] model=${MODEL_PATH:-<tiny offline model>} data=${DATA_PATH:-<built-in synthetic data>} output=$OUTPUT_DIR"
  DEFAULT_CONFIG="configs/grpo/release.yaml"
fi
CONFIG="$(abs_path "${CONFIG:-$REPO/$DEFAULT_CONFIG}")"
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-29500}"
cd "$REPO"

ARGS=(--config "$CONFIG" --output_dir "$OUTPUT_DIR")
[ -n "$MODEL_PATH" ] && ARGS+=(--model_name_or_path "$MODEL_PATH")
[ -n "$DATA_PATH" ] && ARGS+=(--data_path "$DATA_PATH")
[ -n "$IMAGE_ROOT" ] && ARGS+=(--image_root "$IMAGE_ROOT")
[ -n "${IMAGE_PATH_PREFIX:-}" ] && ARGS+=(--image_path_prefix "$IMAGE_PATH_PREFIX")
[ -n "${MAX_STEPS:-}" ] && ARGS+=(--max_steps "$MAX_STEPS")
[ "${RESUME:-0}" = 1 ] && ARGS+=(--resume_from_checkpoint auto)

HAVE_GPU=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then HAVE_GPU=1; fi
WORLD=$((NUM_GPUS * NNODES))

if [ "$WORLD" -le 1 ] && [ "$HAVE_GPU" = 0 ]; then
  # One CPU process: no launcher needed.
  exec "$PY" -m ground_r1.cli.train_grpo "${ARGS[@]}" "$@"
fi

if [ "$HAVE_GPU" = 1 ]; then
  DEEPSPEED="$(abs_path "${DEEPSPEED:-$REPO/configs/deepspeed/zero3.json}")"
  ACCEL_CONFIG="$REPO/configs/accelerate/multi_node.yaml"
  [ "$NNODES" = 1 ] && ACCEL_CONFIG="$REPO/configs/accelerate/single_node.yaml"
else
  # Several processes on CPU: DeepSpeed ZeRO-3 over gloo (ENVIRONMENT.md).
  export DS_ACCELERATOR=cpu
  export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-$REPO/.cache/torch_extensions}"
  DEEPSPEED="$(abs_path "${DEEPSPEED:-$REPO/configs/deepspeed/zero3_cpu.json}")"
  ACCEL_CONFIG="$REPO/configs/accelerate/cpu_zero3.yaml"
fi
echo "[run_grpo_video] accelerate launch: $WORLD processes ($NNODES node(s)), DeepSpeed $DEEPSPEED"
exec "$PY" -m accelerate.commands.launch \
  --config_file "$ACCEL_CONFIG" \
  --num_processes "$WORLD" --num_machines "$NNODES" --machine_rank "$NODE_RANK" \
  --main_process_ip "$MASTER_ADDR" --main_process_port "$MASTER_PORT" \
  --deepspeed_config_file "$DEEPSPEED" \
  -m ground_r1.cli.train_grpo "${ARGS[@]}" "$@"
