#!/usr/bin/env bash
# Ground SFT ablation (SPEC §8): [original, crop of the evidence box], turn 1 asks for the box ([x1,y1,x2,y2] in
# input pixels), turn 2 for the answer; TRL's SFTTrainer, labels on both assistant turns only, vision tower frozen,
# projector and LLM trained. Runs `python -m ground_r1.cli.train_sft`
# (one CPU process) or `accelerate launch ... -m ground_r1.cli.train_sft` (GPUs, or several CPU processes).
#
#   cd qwen-vl-finetune && bash scripts/Ground_SFT.sh                 # CPU demo: tiny model, synthetic data
#   bash qwen-vl-finetune/scripts/prepare_SFT_data.sh ... && \
#     MODEL_PATH=Qwen/Qwen2.5-VL-7B-Instruct NUM_GPUS=8 bash qwen-vl-finetune/scripts/Ground_SFT.sh
#
# Variables (all optional; relative paths are taken from the directory you run it from):
#   MODEL_PATH    model folder or hub id (default: the tiny offline Qwen2.5-VL)
#   CONFIG        preset YAML (default: configs/sft/ground.yaml with MODEL_PATH, else configs/sft/tiny_cpu.yaml);
#                 ground.yaml trains in bf16: without a GPU it is refused before any work, naming the CPU fix
#                 (`--bf16 false`, or CONFIG=configs/sft/tiny_cpu.yaml); prepare_SFT_data.sh takes the same CONFIG
#   SFT_DATA_DIR  folder written by prepare_SFT_data.sh (default with MODEL_PATH: outputs/sft_data, its default);
#                 its box targets must use this preset's min/max pixels (checked)
#   DATA_PATH     VisCoT records JSONL: prepared first into SFT_DATA_DIR (or OUTPUT_DIR/sft_data); with neither
#                 DATA_PATH nor SFT_DATA_DIR (the demo) the built-in synthetic data is prepared there
#   IMAGE_ROOT    folder image paths resolve against;  IMAGE_PATH_PREFIX: absolute prefix in the records to replace
#   OUTPUT_DIR    checkpoint folder (default: outputs/sft/ground, or outputs/sft/ground-tiny for the demo)
#   NUM_GPUS      processes per node (default: visible GPUs, else 1);  NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT
#   DEEPSPEED     DeepSpeed JSON under accelerate (default: configs/deepspeed/zero3.json, SPEC §8; zero3_cpu.json on CPU)
#   MAX_STEPS     optimizer steps (release 125 = 8,000 samples, matched to RL: the seed README's --max_steps)
#   RESUME=1      resume from the last complete checkpoint of OUTPUT_DIR
# Extra arguments go to the trainer (any config field, e.g. --learning_rate 1e-6).
# Evaluate: MODEL_PATH=$OUTPUT_DIR bash eval/multi_Ground_SFT.sh ; MODEL_PATH=$OUTPUT_DIR bash eval_general_dataset/multi_SFT.sh
# Time: the default CPU demo (16 synthetic records prepared, 2 steps) takes ~15-25 s on 2 cores.
set -euo pipefail
SFT_KIND=ground
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/_sft_launch.sh"
