#!/usr/bin/env bash
# The general LVLM benchmarks (SPEC §7: MME, POPE, SEED-Bench, MMBench, MMMU, MM-Vet, RealWorldQA,
# MME-RealWorld-Lite) with the Ground-R1 protocol: multi-round grounding (box -> crop of the original image ->
# next round, up to 5 assistant turns), greedy with repetition penalty 1.05, the same rollout code as training;
# the answer is read from the final turn. Then MM-Vet's LLM judge, the per-benchmark metrics and one summary
# table across benchmarks in the paper's units (OUTPUT_DIR/summary.md + summary.csv, printed at the end).
#
#   bash eval_general_dataset/multi_Ground_R1.sh                       # demo: tiny model, built-in demo set
#   MODEL_PATH=outputs/grpo/checkpoint-1000 DATASET_ROOT=/data/Ground_R1_General_Eval NUM_GPUS=8 \
#     OPENAI_API_KEY=... bash eval_general_dataset/multi_Ground_R1.sh
#   BENCHMARKS=MME,POPE ... bash eval_general_dataset/multi_Ground_R1.sh --max_items 100
#   DATASET_ROOT=Ground-R1/eval_general_dataset/dataset IMAGE_ROOT=/data/LVLM_benchmarks ... # the release's layout
#
# Exit codes (README "Exit codes"): 0 all evaluated; 1 configuration error; 3 MM-Vet items left unjudged (rerun);
# 4 records skipped or a benchmark could not run (the rest finished; OUTPUT_DIR/skipped_records.jsonl).
#
# Variables (all optional):
#   PROTOCOL        ground_r1 (default); baseline (or direct) for the base model's one turn (question + the
#                   benchmark's answer-format suffix), to put beside it; likelihood: V*'s official scoring (no
#                   generation: the option sentence with the lowest mean token loss; BENCHMARKS=vstar only);
#                   ground_r1_likelihood: the crop loop first, then that scoring given its final context
#   BENCHMARKS      comma list (default all): MME,POPE,SEED_Bench,MMBench_en_dev,MMMU_val,MME_RealWorld_Lite,
#                   RealworldQA,MMVet (case and punctuation ignored; aliases such as mmbench, mme-rwl work)
#                   zoom-in benchmarks (issue 18; named, not in "all"; "zoom" = all five): vstar (the official
#                   per-image JSON folder), vstar_hf (HF test_questions.jsonl), hrbench_4k, hrbench_8k, treebench;
#                   DATASET_ROOT = that benchmark's folder (docs/metrics.md "Zoom-in benchmarks")
#   MODEL_PATH      checkpoint folder or hub id (default: the tiny random model, a demo, not a result); a GRPO
#                   checkpoint's rollout_settings.json sets pixels, turns and tokens unless a flag does
#   DATASET_ROOT    folder holding the release files (MME.jsonl, POPE.jsonl, ... or {name}/{name}.jsonl) and
#                   their images: DATASET_ROOT/{name}/ when that folder exists, else beside the file
#                   (default: a built-in demo set of one or two items per benchmark)
#   IMAGE_ROOT      the release's layout: DATASET_ROOT = the release's eval_general_dataset/dataset (the JSONL
#                   files only) and IMAGE_ROOT = the folder its LVLM_benchmarks zip unpacks to, images of {name}
#                   in IMAGE_ROOT/{name}/
#   OUTPUT_DIR      default outputs/eval_general/ground_r1; one subfolder per benchmark; rerun to resume
#   NUM_GPUS        processes, one per GPU (default: visible GPUs, else 1); > 1 launches torchrun
#   BATCH_SIZE      items per generate call per process (default 8)
#   OPENAI_MODEL OPENAI_BASE_URL OPENAI_API_KEY   MM-Vet's judge; none set: MM-Vet is NOT JUDGED (n/a)
# Extra arguments go to `python -m ground_r1.cli.evaluate` (e.g. --max_items 50, --max_turns 3).
#
# Time: the demo takes ~10 s on a 2-core CPU (measured). The full benchmarks (~34,000 items, up to 5 turns of
# 512 new tokens) with the 7B have not been timed in this project.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/_env.sh"

PROTOCOL="${PROTOCOL:-ground_r1}"
OUTPUT_DIR="${OUTPUT_DIR:+$(abs_path "$OUTPUT_DIR")}"
ARGS=(--protocol "$PROTOCOL" --benchmarks "${BENCHMARKS:-all}" --batch_size "${BATCH_SIZE:-8}"
      --output_dir "${OUTPUT_DIR:-$REPO/outputs/eval_general/$PROTOCOL}")
if [ -n "${MODEL_PATH:-}" ]; then ARGS+=(--model_path "$(resolve_model_path "$MODEL_PATH")"); fi
if [ -n "${DATASET_ROOT:-}" ]; then ARGS+=(--dataset_root "$(abs_path "$DATASET_ROOT")"); fi
if [ -n "${IMAGE_ROOT:-}" ]; then ARGS+=(--image_root "$(abs_path "$IMAGE_ROOT")"); fi

cd "$REPO"
launch_eval ground_r1.cli.evaluate "${ARGS[@]}" "$@"
