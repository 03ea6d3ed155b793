"""The seeded random-kill harness (benchmarks/reliability/kill_harness.py), CI-sized: 2 kills of a 4-step training
run and 3 kills of an evaluation of 13 items. The full benchmark (K >= 10 each) is benchmarks/run_kill_harness.sh.

Each test runs the harness as a process and reads its summary.json: the killed run, resumed until done, must
equal the uninterrupted one with nothing lost.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ground_r1 import paths

REPO = paths.repo_root()
HARNESS = REPO / "benchmarks" / "reliability" / "kill_harness.py"
pytestmark = pytest.mark.slow


def run_harness(out: Path, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(HARNESS), "--out", str(out), *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] and "-> PASS" in proc.stdout
    return summary


def test_training_killed_twice_resumes_to_the_reference_run(tmp_path):
    train = run_harness(tmp_path, "--seed", "0", "--kills", "2", "--target", "train", "--steps", "4")["train"]
    # Seed 0: a SIGKILL inside step 1 (or just after it), then a SIGKILL inside the save of checkpoint-4, after
    # the weights were written: that folder is half-written and must be skipped by the next launch.
    assert [(p["kind"], p["target"], p["phase"]) for p in train["kill_points"]] == [
        ("step_sigkill", 1, None),
        ("ckpt_sigkill", 4, "weights"),
    ]
    assert train["kills_delivered"] == 2 and train["cycles"] >= 2
    assert "checkpoint-4" in train["half_written_checkpoints_skipped"] and train["wrong_resumes"] == 0
    assert (train["records_lost"], train["metrics_equal"], train["steps_compared"]) == (0, True, 4)
    assert train["weights_max_abs_diff"] == 0.0 and train["nonfinite_events_equal"]


def test_evaluation_killed_three_times_judges_every_item_exactly_once(tmp_path):
    ev = run_harness(
        tmp_path, "--seed", "2", "--kills", "3", "--target", "eval", "--items_per_dataset", "1", "--long_downtime", "0"
    )["eval"]  # the long downtime: test_eval_faults.py (in-process)
    # Seed 2: SIGKILL and SIGTERM during inference (after 2 predictions), then SIGKILL during judging.
    assert [(p["kind"], p["target"]) for p in ev["kill_points"]] == [
        ("infer_sigkill", 2),
        ("infer_sigterm", 2),
        ("judge_sigkill", 1),
    ]
    assert ev["items"] == 13 and ev["kills_delivered"] == 3 and ev["finished"]
    assert (ev["records_lost"], ev["duplicate_prediction_records"], ev["duplicate_judgment_records"]) == (0, 0, 0)
    assert ev["predicted_exactly_once"] and ev["judged_exactly_once"]
    assert ev["predictions_equal"] and ev["judgments_equal"] and ev["scores_equal"] and ev["table_equal"]
    faults = ev["judge_faults"]
    assert faults["scored"] >= 13 and faults["requests"] > faults["scored"]  # the endpoint did misbehave
