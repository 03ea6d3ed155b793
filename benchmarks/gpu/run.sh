#!/usr/bin/env bash
# The GPU check of issue 19, as one script: install what the GPU image lacks, run the tests marked `gpu`, and
# measure one GRPO step side by side at Qwen2.5-VL-3B sizes (random weights): step time, rollout share, peak
# memory, loss batch fill, tokens/s, MFU of the training forward/backward. Sized to finish in under 5 minutes on
# one H200 (leaving time for a rerun); on CPU it runs the same steps at tiny sizes (tests/test_gpu_script.py, CI).
#
#   bash benchmarks/gpu/run.sh                                  # GPU machine: wheels, gpu tests, 3B perf step
#   DEVICE=cpu GEOMETRY=tiny bash benchmarks/gpu/run.sh         # CPU, tiny model (~30 s): keeps the script working
#
# Variables (optional; relative paths are taken from the directory you run it from):
#   DEVICE    cuda | cpu        (default: cuda when nvidia-smi sees a GPU, else cpu)
#   GEOMETRY  3b | 7b | tiny    (default: 3b on cuda, tiny on cpu)
#   WHEELS    folder of wheels to install first (default benchmarks/gpu/wheels, filled by fetch_wheels.sh;
#             skipped when absent or when the pinned versions are already importable)
#   OUT       JSON of every figure (default benchmarks/gpu/results/perf_<geometry>_<device>.json)
#   PY        the python to use (default: the .venv's, else python3: the GPU image's own)
# The perf settings are issue 19's: N=8 (G1=2), 1 question, max_pixels 401,408, 5 turns of up to 512 tokens under
# the forced `mixed_rounds` policy (trajectories end in rounds 1-3), AdamW, beta 0.04 (one reference model in
# memory), bf16, gradient checkpointing, loops (a) ours and (b) TRL's single turn, 1 warm-up + 1 timed step each.
# MFU peaks: 989 TFLOP/s (H200 dense bf16 spec) and 790 (measured on that H200); see benchmarks/perf/README.md.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/_env.sh"

if [ -z "${DEVICE:-}" ]; then
  if have_gpu; then DEVICE=cuda; else DEVICE=cpu; fi
fi
GEOMETRY="${GEOMETRY:-$([ "$DEVICE" = cuda ] && echo 3b || echo tiny)}"
WHEELS="$(abs_path "${WHEELS:-$REPO/benchmarks/gpu/wheels}")"
OUT="$(abs_path "${OUT:-$REPO/benchmarks/gpu/results/perf_${GEOMETRY}_${DEVICE}.json}")"
cd "$REPO"
# The GPU image has no install of this package: import it from the checkout.
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
echo "[gpu] device=$DEVICE geometry=$GEOMETRY python=$PY out=$OUT"

# 1. The pinned stack (transformers 5.23, trl 1.16, deepspeed 0.19.8, datasets 5.2 and what they need that the
#    image lacks), from carried wheels, without the network; torch stays the image's CUDA build.
pinned_ok() {
  "$PY" - <<'PY'
import importlib.metadata as m, sys
want = {"transformers": "5.23.0", "trl": "1.16.0", "datasets": "5.2.0", "deepspeed": "0.19.8"}
bad = []
for name, version in want.items():
    try:
        have = m.version(name)
    except m.PackageNotFoundError:
        have = None
    if have != version:
        bad.append(f"{name} {have} (want {version})")
print("; ".join(bad) if bad else "pinned stack present")
sys.exit(1 if bad else 0)
PY
}
if ! pinned_ok; then
  if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    # Only the wheels whose version the image does not already hold (no index, no dependency resolution: torch and
    # everything it needs stay the image's).
    mapfile -t NEEDED < <("$PY" - "$WHEELS" <<'PY'
import importlib.metadata as m, pathlib, sys
for wheel in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    name, version = wheel.name.split("-")[:2]
    try:
        have = m.version(name.replace("_", "-"))
    except m.PackageNotFoundError:
        have = None
    if have != version:
        print(wheel)
PY
)
    echo "[gpu] installing ${#NEEDED[@]} carried wheel(s) from $WHEELS: ${NEEDED[*]##*/}"
    [ "${#NEEDED[@]}" -eq 0 ] || "$PY" -m pip install --quiet --no-index --no-deps "${NEEDED[@]}"
    "$PY" -m pip check 2>&1 | grep -v -i "torch" || true
    pinned_ok || { echo "[gpu] the pinned stack is still incomplete after installing $WHEELS" >&2; exit 2; }
  elif [ "$DEVICE" = cuda ]; then
    echo "[gpu] the pinned stack is missing and $WHEELS holds no wheels: run benchmarks/gpu/fetch_wheels.sh where" \
         "PyPI is reachable and carry the folder" >&2
    exit 2
  else
    echo "[gpu] CPU run: using the current environment as it is"
  fi
fi

# 2. Tests that need CUDA (marker `gpu`; on a CPU machine they are collected and skipped).
echo "[gpu] pytest -m gpu"
"$PY" -m pytest tests -m gpu -q -p no:cacheprovider -o addopts="" -rs

# 3. One side-by-side step of (a) and (b) at the issue's settings (tiny sizes on CPU).
if [ "$GEOMETRY" = tiny ]; then
  SIZES=(--questions 1 --num_generations 2 --g1 2 --max_turns 2 --max_new_tokens_per_turn 28 --max_pixels 12544)
else
  SIZES=(--questions 1 --num_generations 8 --g1 2 --max_turns 5 --max_new_tokens_per_turn 512 --max_pixels 401408)
fi
GEOMETRY="$GEOMETRY" DEVICE="$DEVICE" REPEATS=1 OUT="$OUT" bash benchmarks/run_perf.sh "${SIZES[@]}" \
  --modes ab --policy mixed_rounds --optim adamw_torch --beta 0.04 --gradient_checkpointing on --warmup 1

# 4. The figures the issue asks for, from the JSON.
"$PY" - "$OUT" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for step in r["steps"]:
    share = step["rollout_s"] / step["step_s"]
    mfu = ", ".join(f"{k} {v:.3f}" for k, v in step["mfu"].items()) or "no peak named (CPU)"
    print(f"[gpu] ({step['mode']}) step {step['step_s']:.2f} s, rollout share {share:.2f}, peak {step['peak_memory_mib']:.0f} MiB, "
          f"loss batch fill {step['loss_batch_fill']:.3f} (padded {step['loss_batch_fill_padded']:.3f}), "
          f"gen {step['generated_tokens_per_s']:.0f} tok/s, trained {step['trained_tokens_per_s']:.0f} tok/s, "
          f"train fwd/bwd {step['train_tflops_per_s']:.2f} TFLOP/s, MFU: {mfu}")
print(f"[gpu] wrote {sys.argv[1]}")
PY
