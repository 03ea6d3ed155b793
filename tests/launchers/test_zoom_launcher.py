"""The zoom-in benchmarks end to end through the general launcher (issue 18): V* (real annotations, placeholder
images holding their boxes), HR-Bench 4K (ZoomEye's real JSONL, unfolded) and TreeBench (a hand-made TSV, base64
images) in one run of the tiny model's pipeline, turns from a scripted policy so the box rows have boxes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
import zoom_fixtures  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_zoom_benchmarks_through_the_launcher(tmp_path) -> None:
    root = tmp_path / "data"
    zoom_fixtures.vstar_folder(root / "vstar", limit=6)
    zoom_fixtures.hrbench_zoomeye(root / "hrbench_4k", limit=2)
    zoom_fixtures.treebench_tsv(root / "treebench")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL_PATH", "IMAGE_ROOT", "OPENAI_API_KEY")}
    env.update(
        NUM_GPUS="1",
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        PROTOCOL="ground_r1",
        DATASET_ROOT=str(root),
        BENCHMARKS="vstar,hrbench_4k,treebench",
        OUTPUT_DIR=str(out),
        BATCH_SIZE="16",
    )
    result = subprocess.run(
        [
            "bash",
            str(REPO / "eval_general_dataset" / "multi_Ground_R1.sh"),
            "--no_progress",
            "--scripted_policy",
            "mixed_rounds",
            "--max_turns",
            "3",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    rows = list(csv.DictReader((out / "summary.csv").open()))
    by = {(r["benchmark"], r["metric"], r["variant"]): r for r in rows}
    assert by[("vstar", "accuracy", "no")]["items"] == "6"
    assert "seed 0" in by[("vstar", "accuracy", "no")]["rule"]
    box = by[("vstar", "box IoU, round 1 (best target)", "no")]
    assert box["items"] == "6" and "items gave a box" in box["notes"] and "original pixels" in box["notes"]
    assert by[("hrbench_4k", "accuracy (avg over cycles)", "no")]["items"] == "8"  # 2 questions x 4 rotations
    assert "inferred" in by[("hrbench_4k", "accuracy (avg over cycles)", "no")]["rule"]
    assert by[("treebench", "mIoU", "no")]["items"] == "4" and by[("treebench", "mIoU", "yes")]["variant"] == "yes"
    assert (root / "treebench" / "images" / "TreeBench" / "0.jpg").is_file()  # decoded before inference
    scores = [json.loads(line) for line in (out / "vstar" / "scores.jsonl").read_text().splitlines()]
    assert all(len(s["option_order"]) == len(s["options"]) and s["option_seed"] == 0 for s in scores)
    assert "max_turns=3" in (out / "summary.md").read_text()
