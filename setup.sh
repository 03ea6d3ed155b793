#!/usr/bin/env bash
# Ground-R1 setup: creates (or reuses) .venv with the pinned stack and builds the tiny offline model.
#
#   bash setup.sh          # CPU or GPU machine: torch 2.13.0, pinned stack, deepspeed (DS_BUILD_OPS=0)
#   bash setup.sh --gpu    # + GPU extras: torchvision (matching torch), qwen-vl-utils, flash-attn
#   bash setup.sh --force  # reinstall even if the stamp says the environment is ready
#
# Variables: PYTHON (interpreter used to create .venv, default python3), VENV (default <repo>/.venv),
# GROUND_R1_CACHE (where the tiny model is built, default <repo>/.cache).
# Time: ~2-4 min from nothing on a 2-core CPU machine (242 s measured on 2 cores shared with other work, load 4-5);
# a second run on a ready machine takes seconds.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$REPO"
VENV="${VENV:-$REPO/.venv}"
PYTHON="${PYTHON:-python3}"
GPU=0
FORCE=0
for arg in "$@"; do
  case "$arg" in
    --gpu) GPU=1 ;;
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg' (expected --gpu, --force or --help)" >&2; exit 2 ;;
  esac
done

step() { echo "[setup] $*"; }
fail() {
  echo "[setup] FAILED at step: $1" >&2
  echo "[setup] what to do: $2" >&2
  exit 1
}

have_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }

if [ "$GPU" = 1 ] && ! have_gpu; then
  fail "check --gpu" "--gpu was given but no NVIDIA GPU is visible (nvidia-smi). Run 'bash setup.sh' without --gpu on a CPU machine: torchvision and flash-attn cannot work without CUDA."
fi

# The stamp records what was installed; a ready machine with an unchanged stamp skips every pip call.
stamp_inputs() {
  cat requirements.txt constraints.txt pyproject.toml
  [ "$GPU" = 1 ] && cat requirements-gpu.txt
  echo "gpu=$GPU"
}
STAMP="$VENV/.ground_r1_setup_stamp"
WANT="$(stamp_inputs | sha256sum | cut -d' ' -f1)"

if [ ! -x "$VENV/bin/python" ]; then
  step "creating virtual environment $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV" || fail "create .venv" "install python3-venv (Debian: apt-get install python3-venv) or set PYTHON=/path/to/python3.10+"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)

if [ "$FORCE" = 0 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && "$PY" -c "import ground_r1, torch, trl, transformers" 2>/dev/null; then
  step "environment already up to date ($VENV); skipping installs (use --force to reinstall)"
else
  step "1/4 installing torch==2.13.0 first (pinned by constraints.txt for every later step)"
  "${PIP[@]}" torch==2.13.0 || fail "install torch" "check that PyPI is reachable; on a GPU cluster pip fetches the CUDA build of torch 2.13.0"

  step "2/4 installing the pinned stack from requirements.txt"
  "${PIP[@]}" -r requirements.txt -c constraints.txt || fail "install requirements.txt" "read the pip error above; the pins are those of ../shared/ENVIRONMENT.md"

  step "3/4 installing deepspeed==0.19.8 with DS_BUILD_OPS=0 (ops are JIT-built when first used)"
  DS_BUILD_OPS=0 "${PIP[@]}" deepspeed==0.19.8 -c constraints.txt || fail "install deepspeed" "DeepSpeed builds from source: it needs gcc and the Python headers (Debian: apt-get install build-essential python3-dev)"

  step "4/4 installing ground_r1 in editable mode"
  "${PIP[@]}" --no-deps -e . || fail "install ground_r1" "run from the repository root; pyproject.toml must be present"

  if [ "$GPU" = 1 ]; then
    step "GPU extras: torchvision (matching torch 2.13.0) and qwen-vl-utils"
    "${PIP[@]}" -r requirements-gpu.txt -c constraints.txt || fail "install GPU extras" "read the pip error above"
    step "GPU extras: flash-attn (--no-build-isolation; may compile for a long time)"
    if ! "${PIP[@]}" --no-build-isolation flash-attn -c constraints.txt; then
      echo "[setup] WARNING: flash-attn did not install; training will use attention 'sdpa' instead (slower, same results)." >&2
    fi
  fi

  if [ "$GPU" = 0 ] && "$PY" -c "import importlib.util,sys; sys.exit(0 if importlib.util.find_spec('torchvision') else 1)"; then
    fail "check torchvision" "torchvision is present in $VENV but there is no GPU: it breaks transformers' AutoProcessor. Run: $PY -m pip uninstall -y torchvision"
  fi
  echo "$WANT" > "$STAMP"
fi

step "building the tiny offline Qwen2.5-VL (skipped when it is already built)"
"$PY" -m ground_r1.demo.tiny --default || fail "build tiny model" "run '$PY -m ground_r1.demo.tiny --default' to see the full error"

step "ready. Next: bash scripts/run_grpo_video.sh (CPU demo) or bash scripts/test.sh (tests)"
