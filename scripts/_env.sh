# Shared defaults for every Ground-R1 launcher. Sourced, never run: `source "$REPO/scripts/_env.sh"`.
#
# Sets: REPO (repository root), PY (the .venv python, else python3), CALLER_DIR (where the user ran the
# launcher), NUM_GPUS (default: visible NVIDIA GPUs, else 1), and the helper `abs_path PATH` that resolves a
# user-given relative path against CALLER_DIR (launchers cd to REPO, so relative paths must be fixed first).
# Environment variables always win over these defaults.

REPO="${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
CALLER_DIR="${CALLER_DIR:-$(pwd)}"
export REPO CALLER_DIR

if [ -x "$REPO/.venv/bin/python" ]; then
  PY="${PY:-$REPO/.venv/bin/python}"
else
  PY="${PY:-python3}"
fi
export PY

abs_path() {
  # abs_path PATH: empty stays empty; absolute stays; relative is taken from the caller's directory.
  local p="${1:-}"
  if [ -z "$p" ]; then echo ""; elif [ "${p:0:1}" = "/" ]; then echo "$p"; else echo "$CALLER_DIR/$p"; fi
}

if [ -z "${NUM_GPUS:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    NUM_GPUS="$(nvidia-smi -L | wc -l)"
  else
    NUM_GPUS=1
  fi
fi
export NUM_GPUS

# A launcher variable written after the command (`bash scripts/run_grpo_video.sh MAX_STEPS=2`) would reach Python
# as an argument: say where it goes. (A sourced file sees the launcher's arguments.) A NAME=value right after a
# --flag is that flag's value and is left alone.
_prev_arg=""
for _arg in "$@"; do
  if [[ "$_arg" =~ ^[A-Z][A-Z0-9_]*= ]] && [[ "$_prev_arg" != --* ]]; then
    echo "[$(basename "$0")] '$_arg' is an environment variable given after the command; put it first:" >&2
    echo "  $_arg bash $0 ..." >&2
    exit 2
  fi
  _prev_arg="$_arg"
done
unset _prev_arg _arg

# Offline only for the embedded default (the tiny model and the synthetic data ship with the project and need no
# network). A user's model (MODEL_PATH, or --model_name_or_path / --model_path) may be a hub id to download, so the
# hub stays reachable for it. HF_HUB_OFFLINE set by the user always wins (README, "Models and the hub").
_user_model="${MODEL_PATH:-}"
for _arg in "$@"; do
  case "$_arg" in --model_name_or_path|--model_name_or_path=*|--model_path|--model_path=*) _user_model=1 ;; esac
done
if [ -z "$_user_model" ]; then
  export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
fi
unset _user_model _arg
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
export PYTHONUNBUFFERED=1

# resolve_model_path PATH: a local folder is taken from the caller's directory; a hub id is kept as is. A path that
# starts with /, ./, ../ or ~, or holds more than one '/', is local even when missing (Python then names it, exit 1).
resolve_model_path() {
  local p="${1:-}"
  p="${p/#\~/$HOME}"
  local slashes="${p//[^\/]/}"
  if [ -n "$p" ] && { [ -e "$(abs_path "$p")" ] || [[ "$p" == ./* || "$p" == ../* || "$p" == /* ]] || [ "${#slashes}" -gt 1 ]; }; then
    abs_path "$p"
  else
    echo "$p"
  fi
}

have_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }

# launch_training TAG MODULE ARGS...: the one training launch of every launcher (GRPO and SFT).
#   one CPU process          -> python -m MODULE (no launcher, no DeepSpeed)
#   GPUs                     -> accelerate launch with DeepSpeed $DEEPSPEED (default ZeRO-3), one or several nodes
#   several CPU processes    -> accelerate launch, DeepSpeed ZeRO-3 over gloo (ENVIRONMENT.md)
# DeepSpeed always comes from accelerate: `--deepspeed ""` unsets a preset's own key (a training-args DeepSpeed
# config would build the process state before the CPU gloo state can be configured). Reads NUM_GPUS, NNODES,
# NODE_RANK, MASTER_ADDR, MASTER_PORT, DEEPSPEED.
launch_training() {
  local tag="$1" module="$2"
  shift 2
  local nnodes="${NNODES:-1}" world=$((NUM_GPUS * ${NNODES:-1})) deepspeed accel_config
  local -a extra=(--deepspeed "")
  if [ "$world" -le 1 ] && ! have_gpu; then
    exec "$PY" -m "$module" "${extra[@]}" "$@"
  fi
  if ! have_gpu; then
    echo "[$tag] NUM_GPUS=$NUM_GPUS on a machine without a GPU: $world CPU processes under DeepSpeed ZeRO-3 over gloo." \
         "This exercises the multi-process path (tests); it is slower than one process. Leave NUM_GPUS unset for" \
         "the one-process CPU run."
  fi
  if have_gpu; then
    deepspeed="$(abs_path "${DEEPSPEED:-$REPO/configs/deepspeed/zero3.json}")"
    accel_config="$REPO/configs/accelerate/multi_node.yaml"
    [ "$nnodes" = 1 ] && accel_config="$REPO/configs/accelerate/single_node.yaml"
  else
    export DS_ACCELERATOR=cpu
    export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-$REPO/.cache/torch_extensions}"
    deepspeed="$(abs_path "${DEEPSPEED:-$REPO/configs/deepspeed/zero3_cpu.json}")"
    accel_config="$REPO/configs/accelerate/cpu_zero3.yaml"
    extra+=(--use_cpu true)  # else the training arguments reset the gloo state to a one-process one
  fi
  echo "[$tag] accelerate launch: $world processes ($nnodes node(s)), DeepSpeed $deepspeed"
  exec "$PY" -m accelerate.commands.launch \
    --config_file "$accel_config" \
    --num_processes "$world" --num_machines "$nnodes" --machine_rank "${NODE_RANK:-0}" \
    --main_process_ip "${MASTER_ADDR:-127.0.0.1}" --main_process_port "${MASTER_PORT:-29500}" \
    --deepspeed_config_file "$deepspeed" \
    -m "$module" "${extra[@]}" "$@"
}

# launch_eval MODULE ARGS...: one process, or torchrun with NUM_GPUS processes (items sharded by rank).
launch_eval() {
  local module="$1"
  shift
  if [ "$NUM_GPUS" -gt 1 ]; then
    exec "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NUM_GPUS" -m "$module" "$@"
  fi
  exec "$PY" -m "$module" "$@"
}

# eval_data_args: appends MODEL_PATH, DATA_PATH, IMAGE_ROOT, IMAGE_PATH_PREFIX (resolved) to the array ARGS.
eval_data_args() {
  if [ -n "${MODEL_PATH:-}" ]; then ARGS+=(--model_path "$(resolve_model_path "$MODEL_PATH")"); fi
  if [ -n "${DATA_PATH:-}" ]; then ARGS+=(--data_path "$(abs_path "$DATA_PATH")"); fi
  if [ -n "${IMAGE_ROOT:-}" ]; then ARGS+=(--image_root "$(abs_path "$IMAGE_ROOT")"); fi
  if [ -n "${IMAGE_PATH_PREFIX:-}" ]; then ARGS+=(--image_path_prefix "$IMAGE_PATH_PREFIX"); fi
  return 0
}
