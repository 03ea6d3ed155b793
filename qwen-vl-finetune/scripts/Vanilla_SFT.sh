#!/usr/bin/env bash
# Vanilla SFT ablation (SPEC §8): one image, question -> ground-truth answer; TRL's SFTTrainer, labels on the
# answer only, vision tower frozen, projector and LLM trained. Runs `python -m ground_r1.cli.train_sft`
# (one CPU process) or `accelerate launch ... -m ground_r1.cli.train_sft` (GPUs, or several CPU processes).
#
#   cd qwen-vl-finetune && bash scripts/Vanilla_SFT.sh                 # CPU demo: tiny model, synthetic data
#   bash qwen-vl-finetune/scripts/prepare_SFT_data.sh ... && \
#     MODEL_PATH=Qwen/Qwen2.5-VL-7B-Instruct NUM_GPUS=8 bash qwen-vl-finetune/scripts/Vanilla_SFT.sh
#
# Variables (all optional; relative paths are taken from the directory you run it from):
#   MODEL_PATH    model folder or hub id (default: the tiny offline Qwen2.5-VL)
#   CONFIG        preset YAML (default: configs/sft/vanilla.yaml with MODEL_PATH, else configs/sft/tiny_cpu.yaml)
#   SFT_DATA_DIR  folder written by prepare_SFT_data.sh (default with MODEL_PATH: outputs/sft_data, its default)
#   DATA_PATH     VisCoT records JSONL: prepared first into SFT_DATA_DIR (or OUTPUT_DIR/sft_data); with neither
#                 DATA_PATH nor SFT_DATA_DIR (the demo) the built-in synthetic data is prepared there
#   IMAGE_ROOT    folder image paths resolve against;  IMAGE_PATH_PREFIX: absolute prefix in the records to replace
#   OUTPUT_DIR    checkpoint folder (default: outputs/sft/vanilla, or outputs/sft/vanilla-tiny for the demo)
#   NUM_GPUS      processes per node (default: visible GPUs, else 1);  NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT
#   DEEPSPEED     DeepSpeed JSON under accelerate (default: configs/deepspeed/zero3.json, SPEC §8; zero3_cpu.json on CPU)
#   MAX_STEPS     optimizer steps (release 125 = 8,000 samples, matched to RL: the seed README's --max_steps)
#   RESUME=1      resume from the last complete checkpoint of OUTPUT_DIR
# Extra arguments go to the trainer (any config field, e.g. --learning_rate 1e-6).
# Evaluate: MODEL_PATH=$OUTPUT_DIR bash eval/multi_baseline.sh ; MODEL_PATH=$OUTPUT_DIR bash eval_general_dataset/multi_SFT.sh
# Time: the default CPU demo (16 synthetic records prepared, 2 steps) takes ~15-25 s on 2 cores.
set -euo pipefail
SFT_KIND=vanilla
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/_env.sh"

MODEL_PATH="${MODEL_PATH:-}"
if [ -n "$MODEL_PATH" ] && [ -e "$(abs_path "$MODEL_PATH")" ]; then MODEL_PATH="$(abs_path "$MODEL_PATH")"; fi
DATA_PATH="$(abs_path "${DATA_PATH:-}")"
IMAGE_ROOT="$(abs_path "${IMAGE_ROOT:-}")"
SFT_DATA_DIR="$(abs_path "${SFT_DATA_DIR:-}")"
if [ -n "$MODEL_PATH" ]; then
  DEFAULT_CONFIG="configs/sft/$SFT_KIND.yaml"
  OUTPUT_DIR="$(abs_path "${OUTPUT_DIR:-$REPO/outputs/sft/$SFT_KIND}")"
  if [ -z "$SFT_DATA_DIR" ] && [ -z "$DATA_PATH" ]; then SFT_DATA_DIR="$REPO/outputs/sft_data"; fi
else
  echo "[${SFT_KIND}_sft] no MODEL_PATH: training the tiny offline Qwen2.5-VL (CPU demo preset)"
  DEFAULT_CONFIG="configs/sft/tiny_cpu.yaml"
  OUTPUT_DIR="$(abs_path "${OUTPUT_DIR:-$REPO/outputs/sft/$SFT_KIND-tiny}")"
fi
CONFIG="$(abs_path "${CONFIG:-$REPO/$DEFAULT_CONFIG}")"
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-29500}"
cd "$REPO"

ARGS=(--config "$CONFIG" --sft_kind "$SFT_KIND" --output_dir "$OUTPUT_DIR")
[ -n "$MODEL_PATH" ] && ARGS+=(--model_name_or_path "$MODEL_PATH")
[ -n "$SFT_DATA_DIR" ] && ARGS+=(--sft_data_dir "$SFT_DATA_DIR")
[ -n "$DATA_PATH" ] && ARGS+=(--data_path "$DATA_PATH")
[ -n "$IMAGE_ROOT" ] && ARGS+=(--image_root "$IMAGE_ROOT")
[ -n "${IMAGE_PATH_PREFIX:-}" ] && ARGS+=(--image_path_prefix "$IMAGE_PATH_PREFIX")
[ -n "${MAX_STEPS:-}" ] && ARGS+=(--max_steps "$MAX_STEPS")
[ "${RESUME:-0}" = 1 ] && ARGS+=(--resume_from_checkpoint auto)

HAVE_GPU=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then HAVE_GPU=1; fi
WORLD=$((NUM_GPUS * NNODES))

if [ "$WORLD" -le 1 ] && [ "$HAVE_GPU" = 0 ]; then
  # One CPU process: no launcher, no DeepSpeed (even if the preset names it).
  exec "$PY" -m ground_r1.cli.train_sft "${ARGS[@]}" --deepspeed "" "$@"
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
  ARGS+=(--use_cpu true)  # else the training arguments reset the gloo state to a one-process one
fi
echo "[${SFT_KIND}_sft] accelerate launch: $WORLD processes ($NNODES node(s)), DeepSpeed $DEEPSPEED"
# DeepSpeed comes from accelerate (as in scripts/run_grpo_video.sh); --deepspeed "" unsets the preset's own key,
# which is only for a direct `python -m ground_r1.cli.train_sft` run (a training-args DeepSpeed config would build
# the process state before the CPU gloo state can be configured).
exec "$PY" -m accelerate.commands.launch \
  --config_file "$ACCEL_CONFIG" \
  --num_processes "$WORLD" --num_machines "$NNODES" --machine_rank "$NODE_RANK" \
  --main_process_ip "$MASTER_ADDR" --main_process_port "$MASTER_PORT" \
  --deepspeed_config_file "$DEEPSPEED" \
  -m ground_r1.cli.train_sft "${ARGS[@]}" --deepspeed "" "$@"
