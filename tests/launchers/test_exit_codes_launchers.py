"""Each launcher's exit codes as the README's "Exit codes" table states them (issue 15), through the launchers
themselves (bash -> exec python, so the code reaches the caller). The cheap cases run without a model (stages
after inference on written predictions, or a configuration error before any work); the others run the tiny
model on one or two items. tests/evaluation/test_exit_codes.py covers every code in process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
from fake_chat_server import FakeChatServer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-exit-launchers-SECRET-31"
EVAL_LAUNCHERS = [
    "eval/multi_baseline.sh",
    "eval/multi_Ground_R1.sh",
    "eval/multi_Ground_SFT.sh",
    "eval/multi_RefCOCO.sh",
    "eval_general_dataset/multi_Ground_R1.sh",
    "eval_general_dataset/multi_SFT.sh",
]
TRAIN_LAUNCHERS = [
    "scripts/run_grpo_video.sh",
    "qwen-vl-finetune/scripts/Vanilla_SFT.sh",
    "qwen-vl-finetune/scripts/Ground_SFT.sh",
    "qwen-vl-finetune/scripts/prepare_SFT_data.sh",
]


def readme_exit_table() -> dict[str, dict[str, str]]:
    """The README's exit-code table: {launcher path: {code: meaning}} (a column naming several launchers gives
    each of them the column)."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        for line in section.splitlines()
        if line.startswith("| ")
    ]
    header, body = rows[0], rows[1:]
    table: dict[str, dict[str, str]] = {}
    for column, cell in enumerate(header[1:], start=1):
        for launcher in re.findall(r"`([^`]+\.sh)`", cell):
            table[launcher] = {row[0]: row[column] for row in body}
    return table


def test_the_readme_table_names_every_launcher_and_the_contract():
    table = readme_exit_table()
    assert sorted(table) == sorted(EVAL_LAUNCHERS + TRAIN_LAUNCHERS)
    for launcher in EVAL_LAUNCHERS:
        codes = table[launcher]
        assert "configuration error" in codes["1"] and "skipped" in codes["4"]
        assert ("rerun" in codes["3"]) is (launcher != "eval/multi_RefCOCO.sh")
    assert "GPU-only preset" in table["scripts/run_grpo_video.sh"]["1"]
    assert "SIGTERM" in table["scripts/run_grpo_video.sh"]["143"]
    from ground_r1.trainer.alarms import STOPPED_EXIT_CODE

    assert "collapse alarm" in table["scripts/run_grpo_video.sh"][str(STOPPED_EXIT_CODE)]
    # Issue 17's codes in the same table: a local MODEL_PATH that is not there and a tracker that cannot start are
    # configuration errors (1, the model path checked before the preset), a wrong command line a usage error (2).
    for launcher in EVAL_LAUNCHERS + TRAIN_LAUNCHERS[:3]:
        assert "`MODEL_PATH` that is not there" in table[launcher]["1"]
    assert "checked first" in table["scripts/run_grpo_video.sh"]["1"]
    assert "tracker that cannot start" in table["scripts/run_grpo_video.sh"]["1"]
    assert (
        table["eval/multi_baseline.sh"]["2"].startswith("usage error")
        and "no prefix matching" in table["eval/multi_baseline.sh"]["2"]
    )
    assert "unknown YAML key" in table["scripts/run_grpo_video.sh"]["2"]
    # The numbers the table gives are the CLIs' own constants.
    from ground_r1.evaluation import outcome

    assert sorted(table["eval/multi_baseline.sh"]) == ["0", "1", "143", "2", "3", "4"]
    assert (outcome.EXIT_CONFIG_ERROR, outcome.EXIT_UNJUDGED, outcome.EXIT_INCOMPLETE) == (1, 3, 4)


def launch(script: str, cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    full = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OPENAI_")
        and k
        not in (
            "MODEL_PATH",
            "DATA_PATH",
            "DATASET_ROOT",
            "IMAGE_ROOT",
            "OUTPUT_DIR",
            "BENCHMARKS",
            "PROTOCOL",
            "CONFIG",
        )
    }
    full.update(NUM_GPUS="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", **env)
    return subprocess.run(
        ["bash", str(REPO / script), *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=600
    )


def write_predictions(run_dir: Path, n: int) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "key": f"v.jsonl:{i}",
            "status": "ok",
            "dataset": "docvqa",
            "problem": f"question {i}?",
            "solution": f"answer {i}",
            "turns": [f"<answer>guess {i}</answer>"],
        }
        for i in range(1, n + 1)
    ]
    (run_dir / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_dir


@pytest.mark.slow
def test_viscot_launchers_exit_1_3_and_0_for_a_refused_key_an_unjudged_item_and_a_clean_run(tmp_path):
    stages = ("--stages", "judge,score,table")
    with FakeChatServer(policy=lambda request, n: ("status", 401)) as server:
        env = {
            "OUTPUT_DIR": str(write_predictions(tmp_path / "a", 3)),
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": KEY,
        }
        refused = launch("eval/multi_Ground_SFT.sh", tmp_path, env, *stages, "--judge_concurrency", "1")
        assert refused.returncode == 1 and len(server.chat_requests) == 1
        assert "judge authentication failed: HTTP 401" in refused.stderr and KEY not in refused.stderr
        server.set_policy(
            lambda request, n: ("reply", "no idea") if "question 2?" in request.user_content else ("reply", "score: 1")
        )
        assert launch("eval/multi_baseline.sh", tmp_path, env, *stages).returncode == 3
        server.set_policy(lambda request, n: ("reply", "score: 1"))
        assert launch("eval/multi_Ground_R1.sh", tmp_path, env, *stages).returncode == 0
    missing = launch(
        "eval/multi_Ground_R1.sh",
        tmp_path,
        {"DATA_PATH": str(tmp_path / "none.jsonl"), "OUTPUT_DIR": str(tmp_path / "b")},
    )
    assert missing.returncode == 1 and f"records file not found: '{tmp_path / 'none.jsonl'}'" in missing.stderr


@pytest.mark.slow
def test_refcoco_launcher_exits_4_with_a_skipped_record(tmp_path):
    Image.new("RGB", (64, 48), (30, 90, 150)).save(tmp_path / "r.png")
    good = {
        "image": "r.png",
        "width": 64,
        "height": 48,
        "bboxs": [[2.0, 2.0, 20.0, 20.0]],
        "dataset": "RefCOCO/val",
        "problem": "",
        "solution": ["left block"],
    }
    (tmp_path / "refcoco.jsonl").write_text(json.dumps(good) + "\n" + json.dumps({**good, "image": "gone.png"}) + "\n")
    result = launch(
        "eval/multi_RefCOCO.sh",
        tmp_path,
        {"DATA_PATH": "refcoco.jsonl", "OUTPUT_DIR": "out"},
        "--no_progress",
        "--max_new_tokens",
        "4",
    )
    assert result.returncode == 4, result.stderr[-3000:]
    assert [
        json.loads(line)["line"] for line in (tmp_path / "out" / "skipped_records.jsonl").read_text().splitlines()
    ] == [2]


@pytest.mark.slow
def test_general_launchers_exit_4_for_a_benchmark_that_cannot_run_and_1_for_configuration_errors(tmp_path):
    root = tmp_path / "data"
    (root / "MME").mkdir(parents=True)
    Image.new("RGB", (16, 16), (1, 2, 3)).save(root / "MME" / "a.png")
    rows = [
        {"Image": "a.png", "dataset": "count", "solution": answer, "problem": "How many? Please answer yes or no."}
        for answer in ("Yes", "No")
    ]
    (root / "MME.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {"DATASET_ROOT": str(root), "OUTPUT_DIR": str(tmp_path / "out"), "BENCHMARKS": "MME,POPE"}
    result = launch(
        "eval_general_dataset/multi_Ground_R1.sh",
        tmp_path,
        env,
        "--no_progress",
        "--max_new_tokens",
        "2",
        "--max_turns",
        "1",
    )
    assert result.returncode == 4, result.stderr[-3000:]
    assert "| POPE | could not run |" in result.stdout and "| MME | total (perception + cognition) |" in result.stdout
    assert launch("eval_general_dataset/multi_SFT.sh", tmp_path, {**env, "BENCHMARKS": "MME,mmvtt"}).returncode == 1
    assert launch("eval_general_dataset/multi_SFT.sh", tmp_path, {**env, "PROTOCOL": "chat"}).returncode == 1
    no_images = launch("eval_general_dataset/multi_SFT.sh", tmp_path, {**env, "IMAGE_ROOT": str(tmp_path / "none")})
    assert no_images.returncode == 1 and "--image_root (IMAGE_ROOT) is not a folder" in no_images.stderr
