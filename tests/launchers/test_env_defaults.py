"""The launchers' shared defaults (scripts/_env.sh), issue 17: offline only for the embedded default, a variable
written after the command is pointed out, a missing local MODEL_PATH is named. Each runs bash only (or exits
before any model import), so they stay fast."""

from __future__ import annotations

import os
import subprocess

from ground_r1 import paths

REPO = paths.repo_root()


def _env_after_sourcing(env: dict, *args: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "MODEL_PATH")}
    proc = subprocess.run(
        ["bash", "-c", 'source scripts/_env.sh; echo "${HF_HUB_OFFLINE-unset}"', "launcher", *args],
        cwd=REPO,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_offline_belongs_to_the_embedded_default_not_to_a_users_model():
    """Before: HF_HUB_OFFLINE=1 for every run, so MODEL_PATH=Qwen/Qwen2.5-VL-7B-Instruct could not download."""
    assert _env_after_sourcing({}) == "1"  # nothing configured: the shipped tiny model, no network needed
    assert _env_after_sourcing({"MODEL_PATH": "Qwen/Qwen2.5-VL-7B-Instruct"}) == "unset"
    assert _env_after_sourcing({}, "--model_name_or_path", "Qwen/Qwen2.5-VL-7B-Instruct") == "unset"
    assert _env_after_sourcing({"HF_HUB_OFFLINE": "0"}) == "0"  # the user's setting always wins
    assert _env_after_sourcing({"HF_HUB_OFFLINE": "1", "MODEL_PATH": "/models/qwen"}) == "1"


def test_a_variable_after_the_command_gets_a_hint_to_put_it_first():
    proc = subprocess.run(
        ["bash", "scripts/run_grpo_video.sh", "MAX_STEPS=2"], cwd=REPO, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert "'MAX_STEPS=2' is an environment variable given after the command; put it first:" in proc.stderr
    assert "MAX_STEPS=2 bash scripts/run_grpo_video.sh ..." in proc.stderr


def test_model_paths_that_look_local_are_resolved_from_the_callers_folder_even_when_missing(tmp_path):
    script = 'source "$REPO_DIR/scripts/_env.sh"; for p in "$@"; do echo "$(resolve_model_path "$p")"; done'
    proc = subprocess.run(
        ["bash", "-c", script, "x", "Qwen/Qwen2.5-VL-7B-Instruct", "./missing", "runs/a/b", "/abs"],
        cwd=tmp_path,
        env={**os.environ, "REPO_DIR": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.stdout.splitlines() == [
        "Qwen/Qwen2.5-VL-7B-Instruct",
        f"{tmp_path}/./missing",
        f"{tmp_path}/runs/a/b",
        "/abs",
    ]


def test_a_missing_local_model_path_exits_1_naming_it_before_anything_loads(tmp_path):
    """Before: 'invalid hub repo id' in a 76-line traceback, or the release preset's bf16 error first."""
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "run_grpo_video.sh")],
        cwd=tmp_path,
        env={**os.environ, "MODEL_PATH": "./outputs/grpo", "OUTPUT_DIR": str(tmp_path / "o")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert f"MODEL_PATH {tmp_path}/./outputs/grpo: no such folder" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()
