"""End-to-end runs of `scripts/run_grpo_video.sh` on the tiny model (CPU). Slow: each is a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ground_r1 import paths

REPO = paths.repo_root()
pytestmark = pytest.mark.slow

# Metrics that measure time, not the algorithm: excluded when comparing runs.
TIMING_KEYS = {"step_time", "train_runtime", "train_samples_per_second", "train_steps_per_second", "epoch"}


def run_launcher(env_overrides: dict, *args: str, timeout: int = 400, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_overrides}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "run_grpo_video.sh"), *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"launcher failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def read_metrics(path: Path) -> dict[int, dict]:
    """step -> the per-step metrics record (the final summary record is left out)."""
    out = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if "loss" in rec:
            out[rec["step"]] = {k: v for k, v in rec.items() if k not in TIMING_KEYS}
    return out


def test_default_run_writes_checkpoint_manifest_and_metrics(tmp_path):
    out = tmp_path / "smoke"
    proc = run_launcher({"MAX_STEPS": "2", "OUTPUT_DIR": str(out)})
    assert proc.stdout.splitlines()[0].startswith("[run_grpo_video] no MODEL_PATH/DATA_PATH: training the tiny offline")
    assert (out / "checkpoint-2" / "COMPLETE").is_file()
    from transformers import Qwen2_5_VLForConditionalGeneration

    Qwen2_5_VLForConditionalGeneration.from_pretrained(out)  # the final model loads
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["training_args"]["num_first_round_samples"] == 2 and manifest["packages"]["trl"] == "1.16.0"
    metrics = read_metrics(out / "metrics.jsonl")
    assert sorted(metrics) == [1, 2]
    for key in ("rewards/format_reward/mean", "rewards/accuracy_reward/mean", "giou/no_box_rate",
                "rollout/turns_mean", "completions/mean_length", "frac_reward_zero_std"):
        assert key in metrics[2], key


def test_killed_run_resumes_from_last_complete_checkpoint_with_identical_metrics(tmp_path):
    common = ["--save_steps", "2", "--max_steps", "4"]
    unbroken, broken = tmp_path / "unbroken", tmp_path / "broken"
    run_launcher({"OUTPUT_DIR": str(unbroken)}, *common)
    # Same run, SIGKILLed right after checkpoint-2 is complete; a half-written checkpoint-3 is planted to prove
    # it is never loaded.
    killed = run_launcher({"OUTPUT_DIR": str(broken), "GROUND_R1_KILL_AFTER_CHECKPOINT": "2"}, *common, check=False)
    assert killed.returncode != 0 and not (broken / "checkpoint-4").exists()
    (broken / "checkpoint-3").mkdir()
    (broken / "checkpoint-3" / "trainer_state.json").write_text('{"global_step": 3, "log_hi')
    resumed = run_launcher({"OUTPUT_DIR": str(broken), "RESUME": "1"}, *common)
    assert "skipping incomplete checkpoint" in resumed.stderr + resumed.stdout
    a, b = read_metrics(unbroken / "metrics.jsonl"), read_metrics(broken / "metrics.jsonl")
    assert sorted(b) == [1, 2, 3, 4]
    for step in (3, 4):
        assert b[step] == a[step], f"step {step} differs after resume"


def test_two_processes_zero3_with_ranks_finishing_in_different_rounds(tmp_path):
    """(h) Rank 0's trajectories answer in round 1, rank 1's ground until round 5. Each round is a collective (the
    all-reduced "any unfinished" flag, and a ZeRO-3 model forward per scripted generate call): a rank that
    stopped after round 1 would reach the loss forward's collectives while the other still generates, and hang.
    The run must finish within the timeout."""
    out = tmp_path / "zero3"
    run_launcher({"NUM_GPUS": "2", "MAX_STEPS": "2", "OUTPUT_DIR": str(out)},
                 "--scripted_policy", "uneven_by_rank",
                 "--max_turns", "5", "--max_completion_length", "2048", timeout=400)
    metrics = read_metrics(out / "metrics.jsonl")
    assert sorted(metrics) == [1, 2]
    # Both ranks ran 5 rounds (rank 0 joined rounds 2-5 with dummy calls); turns: rank 0 = 1, rank 1 = 5.
    assert metrics[2]["rollout/turns_max"] == 5.0
    assert (out / "checkpoint-2" / "COMPLETE").is_file()
