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

# Offline by default: the embedded default needs no network; set HF_HUB_OFFLINE=0 to download models.
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export TOKENIZERS_PARALLELISM="${TOKENIZERS_PARALLELISM:-false}"
export PYTHONUNBUFFERED=1

# The tiny offline model (built by setup.sh): the default MODEL_PATH of every launcher.
tiny_model_path() { "$PY" -c "from ground_r1.models.tiny import ensure_tiny_model; print(ensure_tiny_model())" 2>/dev/null | tail -n 1; }
