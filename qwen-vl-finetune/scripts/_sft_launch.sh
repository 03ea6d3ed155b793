# The body shared by Vanilla_SFT.sh and Ground_SFT.sh (sourced with SFT_KIND set; see their headers).
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/_env.sh"

MODEL_PATH="$(resolve_model_path "${MODEL_PATH:-}")"
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
cd "$REPO"
# Named in the trainer's refusal of a GPU-only preset (bf16) on a machine without a GPU, with the CPU fix.
if [ "$SFT_KIND" = ground ]; then _launcher=Ground_SFT.sh; else _launcher=Vanilla_SFT.sh; fi
export GROUND_R1_LAUNCHER="${GROUND_R1_LAUNCHER:-bash qwen-vl-finetune/scripts/$_launcher}"

ARGS=(--config "$CONFIG" --sft_kind "$SFT_KIND" --output_dir "$OUTPUT_DIR")
[ -n "$MODEL_PATH" ] && ARGS+=(--model_name_or_path "$MODEL_PATH")
[ -n "$SFT_DATA_DIR" ] && ARGS+=(--sft_data_dir "$SFT_DATA_DIR")
[ -n "$DATA_PATH" ] && ARGS+=(--data_path "$DATA_PATH")
[ -n "$IMAGE_ROOT" ] && ARGS+=(--image_root "$IMAGE_ROOT")
[ -n "${IMAGE_PATH_PREFIX:-}" ] && ARGS+=(--image_path_prefix "$IMAGE_PATH_PREFIX")
[ -n "${MAX_STEPS:-}" ] && ARGS+=(--max_steps "$MAX_STEPS")
[ "${RESUME:-0}" = 1 ] && ARGS+=(--resume_from_checkpoint auto)

launch_training "${SFT_KIND}_sft" ground_r1.cli.train_sft "${ARGS[@]}" "$@"
