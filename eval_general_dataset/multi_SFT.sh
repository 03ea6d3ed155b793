#!/usr/bin/env bash
# The general LVLM benchmarks (SPEC §7) for the SFT ablations (SPEC §8). PROTOCOL picks how the model is asked:
#   baseline    (default; "direct" is another name for it) one turn: the question + the benchmark's answer-format
#               suffix ("Respond with only the letter (A, B, C or D)." ...): the Vanilla SFT model, and the base
#               model's baseline
#   ground_sft  the two fixed turns of Ground SFT: (1) ask for the evidence box [x1,y1,x2,y2], (2) show the crop
#               of the original image around it (28-px minimum, shifted inside; the full image if no box) and
#               ask for the answer
# Greedy with repetition penalty 1.05; then MM-Vet's LLM judge, the metrics and one summary table across
# benchmarks in the paper's units (OUTPUT_DIR/summary.md + summary.csv, printed at the end).
#
#   bash eval_general_dataset/multi_SFT.sh                             # demo: tiny model, built-in demo set
#   MODEL_PATH=outputs/sft/vanilla DATASET_ROOT=/data/Ground_R1_General_Eval NUM_GPUS=8 \
#     bash eval_general_dataset/multi_SFT.sh
#   PROTOCOL=ground_sft MODEL_PATH=outputs/sft/ground DATASET_ROOT=/data/Ground_R1_General_Eval \
#     bash eval_general_dataset/multi_SFT.sh
#
# Variables (all optional):
#   PROTOCOL        baseline (default; direct is the same) or ground_sft, as above
#   BENCHMARKS      comma list (default all): MME,POPE,SEED_Bench,MMBench_en_dev,MMMU_val,MME_RealWorld_Lite,
#                   RealworldQA,MMVet (case and punctuation ignored)
#                   zoom-in benchmarks (issue 18; named, not in "all"; "zoom" = all five): vstar (the official
#                   per-image JSON folder), vstar_hf (HF test_questions.jsonl), hrbench_4k, hrbench_8k, treebench;
#                   DATASET_ROOT = that benchmark's folder (docs/metrics.md "Zoom-in benchmarks")
#   MODEL_PATH      checkpoint folder or hub id (default: the tiny random model, a demo, not a result); a GRPO
#                   checkpoint's rollout_settings.json sets pixels, turns and tokens unless a flag does
#   DATASET_ROOT    folder holding the release files (MME.jsonl, ... or {name}/{name}.jsonl) and their images:
#                   DATASET_ROOT/{name}/ when that folder exists, else beside the file (default: a built-in demo
#                   set, evaluated with 32 new tokens per turn)
#   IMAGE_ROOT      the release's layout: DATASET_ROOT = the JSONL folder, images of {name} in IMAGE_ROOT/{name}/
#                   (the release's LVLM_benchmarks folder)
#   OUTPUT_DIR      default outputs/eval_general/sft_$PROTOCOL; one subfolder per benchmark; rerun to resume
#   NUM_GPUS        processes, one per GPU (default: visible GPUs, else 1); > 1 launches torchrun
#   BATCH_SIZE      items per generate call per process (default 8)
#   OPENAI_MODEL OPENAI_BASE_URL OPENAI_API_KEY   MM-Vet's judge; none set: MM-Vet is NOT JUDGED (n/a)
# Extra arguments go to `python -m ground_r1.cli.evaluate`, the one evaluation entry point (e.g. --max_items 50).
#
# Exit codes (README "Exit codes"): 0 all evaluated; 1 configuration error; 3 MM-Vet items left unjudged (rerun);
# 4 records skipped or a benchmark could not run (the rest finished; OUTPUT_DIR/skipped_records.jsonl).
#
# Time: the demo takes ~10 s on a 2-core CPU (measured). The full benchmarks with the 7B have not been timed.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/_env.sh"

PROTOCOL="${PROTOCOL:-baseline}"
case "$PROTOCOL" in
  baseline|ground_sft) ;;
  direct) PROTOCOL=baseline ;;  # the general benchmarks' old name for the one-turn protocol
  *) echo "multi_SFT.sh: PROTOCOL must be baseline (or direct) or ground_sft, got '$PROTOCOL'" >&2; exit 1 ;;  # a configuration error
esac
OUTPUT_DIR="${OUTPUT_DIR:+$(abs_path "$OUTPUT_DIR")}"
ARGS=(--protocol "$PROTOCOL" --benchmarks "${BENCHMARKS:-all}" --batch_size "${BATCH_SIZE:-8}"
      --output_dir "${OUTPUT_DIR:-$REPO/outputs/eval_general/sft_$PROTOCOL}")
if [ -n "${MODEL_PATH:-}" ]; then ARGS+=(--model_path "$(resolve_model_path "$MODEL_PATH")"); fi
if [ -n "${DATASET_ROOT:-}" ]; then ARGS+=(--dataset_root "$(abs_path "$DATASET_ROOT")"); fi
if [ -n "${IMAGE_ROOT:-}" ]; then ARGS+=(--image_root "$(abs_path "$IMAGE_ROOT")"); fi

cd "$REPO"
launch_eval ground_r1.cli.evaluate "${ARGS[@]}" "$@"
