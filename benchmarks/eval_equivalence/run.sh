#!/usr/bin/env bash
# Evaluation equivalence (issue 22): every evaluation launcher before and after a change, on the default data and on
# the release's files, judged and not, and every file they wrote compared.
#
#   bash benchmarks/eval_equivalence/run.sh BEFORE_REV [WORK_DIR]      # e.g. f1518b2; WORK_DIR default /tmp/eval_eq
#
# BEFORE_REV is checked out (git archive) into WORK_DIR/before; the working tree is "after". Placeholder image trees
# for the release's files are built once in WORK_DIR/layouts (tests/evaluation/release_full.py, decodable PNGs).
# ~25 minutes on a 2-core CPU (layouts ~5, each side ~10). Results: WORK_DIR/compare.txt.
set -euo pipefail
BEFORE_REV=${1:?usage: run.sh BEFORE_REV [WORK_DIR]}
WORK=${2:-/tmp/eval_eq}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PY="$REPO/.venv/bin/python"
mkdir -p "$WORK"
if [ ! -d "$WORK/layouts/full" ]; then
  SHARED=$(PYTHONPATH="$REPO/src" "$PY" -c 'from ground_r1 import paths; print(paths.shared_dir())')
  mkdir -p "$WORK/layouts/samples_files"
  for f in "$SHARED"/data/release-format/*.sample.jsonl; do cp "$f" "$WORK/layouts/samples_files/$(basename "$f" .sample.jsonl).jsonl"; done
  ln -sfn "$SHARED/data/release-full" "$WORK/layouts/full_files"
  PYTHONPATH="$REPO/src:$REPO/tests/evaluation" "$PY" - "$WORK/layouts" <<'PYEOF'
import sys
from pathlib import Path
from release_full import build
root = Path(sys.argv[1])
build(root / "samples_files", root / "samples", decodable=True)
build(root / "full_files", root / "full", decodable=True)
PYEOF
fi
rm -rf "$WORK/before" "$WORK/out_before" "$WORK/out_after"
mkdir -p "$WORK/before" && git -C "$REPO" archive "$BEFORE_REV" | tar -x -C "$WORK/before"
bash "$HERE/launchers.sh" "$WORK/before" "$WORK/out_before" "$WORK/layouts"
bash "$HERE/launchers.sh" "$REPO" "$WORK/out_after" "$WORK/layouts"
bash "$HERE/compare.sh" "$WORK/out_before" "$WORK/before" "$WORK/out_after" "$REPO" | tee "$WORK/compare.txt"
