#!/usr/bin/env bash
# Run the Ground-R1 test suite (sets the environment up first when .venv is missing).
#
#   bash scripts/test.sh                 # the whole suite (CI runs exactly this)
#   bash scripts/test.sh -m "not slow"   # extra arguments go to pytest
#
# First `ruff check` lints the tree with the rules in pyproject.toml ([tool.ruff.lint]) and `ruff format --check`
# checks its formatting ([tool.ruff.format]; `.venv/bin/ruff format .` fixes it); either stops the run before any
# test (a few seconds).
#
# Time: ~14 min on a 2-core CPU machine (850 s for 1,078 tests on a fresh clone, after setup's ~2 min;
# end-to-end runs are marked slow; CI runs them too).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import ground_r1" 2>/dev/null || [ ! -x .venv/bin/ruff ]; then
  echo "[test] .venv missing or incomplete: running setup.sh first"
  bash setup.sh
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest tests "$@"
