"""Each tiny family model through the launchers (issue 20 "Must show"): a 2-step GRPO run with
`scripts/run_grpo_video.sh` and a Ground-R1 evaluation of its checkpoint with `eval/multi_Ground_R1.sh`, both with
a scripted policy (`ground_r1.demo.scripted.mixed_rounds`) so that boxes, crops and second turns happen (a random
model writes no boxes). MODEL_PATH is the only change: the family is read from the folder's config.json.
Slow: real subprocesses (~25 s + ~15 s per family on 2 cores)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from ground_r1 import paths
from ground_r1.models.families import DEFAULT_FAMILY, FAMILIES

OTHER_FAMILIES = tuple(f for f in FAMILIES if f != DEFAULT_FAMILY)  # the default runs through the whole suite


REPO = paths.repo_root()
pytestmark = pytest.mark.slow


def run(script: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["bash", str(REPO / script), *args],
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=400,
    )
    if proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.mark.parametrize("family", OTHER_FAMILIES)
def test_two_training_steps_and_a_ground_r1_evaluation_from_the_launchers(family, family_model_dirs, tmp_path):
    model = family_model_dirs(family)
    out = tmp_path / "grpo"
    proc = run(
        "scripts/run_grpo_video.sh",
        {"MODEL_PATH": str(model), "CONFIG": "configs/grpo/tiny_cpu.yaml", "MAX_STEPS": "2", "OUTPUT_DIR": str(out)},
        "--scripted_policy",
        "mixed_rounds",
        "--heldout_eval_questions",
        "0",
        "--heldout_eval_steps",
        "0",
        "--trajectory_log_steps",
        "1",
        "--write_report",
        "false",
    )
    log = proc.stdout + proc.stderr
    assert "step 1/2 reward=" in log and "step 2/2 reward=" in log
    settings = json.loads((out / "rollout_settings.json").read_text())
    assert (settings["coordinates"], settings["model_family"]) == ("relative_1000", family)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["rewards/format_reward/mean"] for m in metrics if "loss" in m] == [2.0, 2.0]  # the format holds
    logged = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    crops = [(e, turn) for e in logged for turn in e["turns"] if turn["crop"] is not None]
    assert crops and all(e["coordinates"] == "relative_1000" for e in logged)
    for entry, turn in crops:  # mixed_rounds writes <box>[x,4,x+40,44]</box>: the crop of its 0-1000 box
        x = int(turn["text"].split("<box>[")[1].split(",")[0])
        ow, oh = entry["original_size"]
        box = (x * ow // 1000, 4 * oh // 1000, (x + 40) * ow // 1000, 44 * oh // 1000)
        assert turn["box"] == list(box) and turn["crop"][2] - turn["crop"][0] >= 28

    evaluation = tmp_path / "eval"
    run(
        "eval/multi_Ground_R1.sh",
        {"MODEL_PATH": str(out), "OUTPUT_DIR": str(evaluation)},
        "--scripted_policy",
        "mixed_rounds",
        "--max_items",
        "4",
    )
    predictions = [json.loads(line) for line in (evaluation / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 4 and all(p["status"] == "ok" for p in predictions)
    assert {p["trajectory"]["coordinates"] for p in predictions} == {"relative_1000"}
    assert any(t["crop_window"] for p in predictions for t in p["trajectory"]["turns"])
    assert any(p["trajectory"]["num_turns"] >= 2 for p in predictions)
