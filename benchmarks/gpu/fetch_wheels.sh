#!/usr/bin/env bash
# Fill benchmarks/gpu/wheels with the pinned packages the GPU image lacks, where PyPI is reachable (this machine),
# so benchmarks/gpu/run.sh can install them there without a network (the device tool carries the folder:
# carry=["benchmarks/gpu/wheels"], 64 MiB in all).
#
#   bash benchmarks/gpu/fetch_wheels.sh                 # for the image's python 3.11 (PYVER=3.12 for another)
#
# The GPU image (ENVIRONMENT.md) has torch 2.11 + CUDA, transformers 5.17, accelerate 1.15 and peft, and no trl,
# deepspeed or flash-attn. Fetched: transformers 5.23, trl 1.16, datasets 5.2, deepspeed 0.19.8 (a wheel built
# here with DS_BUILD_OPS=0: it is an sdist), and the Requires-Dist of those four that an image with transformers
# 5.17 may lack or hold too old, at the versions of this checkout's .venv (what the tests ran with). Never torch,
# numpy or anything torch depends on. pyarrow (~40 MB) is fetched only with WITH_PYARROW=1: take it when the
# image's pyarrow is older than 24 (datasets 5.2 needs >= 24). run.sh installs a wheel only when the image does
# not already hold that version.
# Variables: PYVER (3.11), DIR (benchmarks/gpu/wheels), WITH_PYARROW (0). Time: ~1 min.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/_env.sh"
PYVER="${PYVER:-3.11}"
DIR="$(abs_path "${DIR:-$REPO/benchmarks/gpu/wheels}")"
mkdir -p "$DIR"
cd "$REPO"

version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
PURE=(transformers trl datasets tokenizers huggingface-hub safetensors typer dill multiprocess fsspec hjson
      einops py-cpuinfo msgpack ninja xxhash regex)
[ "${WITH_PYARROW:-0}" = 1 ] && PURE+=(pyarrow)
SPECS=()
for name in "${PURE[@]}"; do SPECS+=("$name==$(version "$name")"); done
echo "[fetch] ${SPECS[*]} for python $PYVER -> $DIR"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYVER" \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  --implementation cp -d "$DIR" "${SPECS[@]}"
DS_BUILD_OPS=0 "$PY" -m pip wheel --quiet --no-deps --no-build-isolation -w "$DIR" "deepspeed==$(version deepspeed)"
du -sh "$DIR"
ls "$DIR"
