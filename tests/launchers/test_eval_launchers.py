"""The four evaluation launchers end to end (SPEC §7) on the tiny model, on the release's real file formats.

Data: the release's samples (`visualCoT_eval_subset150_choice.sample.jsonl`, 13 sub-datasets with the authors'
absolute image paths; `RefCOCO_eval_subset_1000.sample.jsonl`, 8 splits, COCO xywh boxes), read from shared/
and never copied. Placeholder images are generated at the rewritten paths (IMAGE_ROOT + IMAGE_PATH_PREFIX).
One item per sub-dataset (one object per split) keeps each run at ~15-40 s on a 2-core CPU.

The last test evaluates a checkpoint written by the trainer (`python -m ground_r1.cli.train_grpo`, one step of
the tiny CPU preset) through `MODEL_PATH`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))
from fake_chat_server import FakeChatServer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
VISCOT = "visualCoT_eval_subset150_choice.sample.jsonl"
REFCOCO = "RefCOCO_eval_subset_1000.sample.jsonl"
PREFIX = "/home/meng/data/Visual-CoT"
KEY = "sk-launcher-SECRET-777"

pytestmark = pytest.mark.slow


def placeholder(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), ((width * 7) % 256, (height * 13) % 256, 90)).save(path)


@pytest.fixture(scope="module")
def viscot_images(release_format_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("viscot_images")
    for line in (release_format_dir / VISCOT).read_text().splitlines():
        record = json.loads(line)
        placeholder(root / record["image"][len(PREFIX) + 1 :], record["width"], record["height"])
    return root


@pytest.fixture(scope="module")
def refcoco_images(release_format_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("refcoco_images")
    for line in (release_format_dir / REFCOCO).read_text().splitlines():
        record = json.loads(line)
        placeholder(root / record["image"], record["width"], record["height"])
    return root


def launch(script: str, cwd: Path, extra_env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(NUM_GPUS="1", BATCH_SIZE="8", OMP_NUM_THREADS="1", **extra_env)
    result = subprocess.run(
        ["bash", str(REPO / "eval" / script), "--no_progress", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def viscot_env(release_format_dir: Path, images: Path) -> dict[str, str]:
    return {
        "DATA_PATH": str(release_format_dir / VISCOT),
        "IMAGE_ROOT": str(images),
        "IMAGE_PATH_PREFIX": PREFIX,
        "OUTPUT_DIR": "out",
    }  # relative: resolved against the caller's directory


def predictions(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def check_viscot_table(result, out: Path, judged: bool) -> None:
    records = predictions(out)
    assert len(records) == 13 and all(r["status"] == "ok" for r in records)  # one per sub-dataset
    assert {r["dataset"] for r in records} >= {"emotic", "docvqa", "gqa"}
    assert all(r["turns"] and "answer" in r and "ground_truth" in r and r["trajectory"]["turns"] for r in records)
    table = (out / "table.md").read_text()
    assert table in result.stdout  # the launcher ends by printing its table
    assert "| **AVG** | **12** |" in table  # the 12 paper sub-datasets are all present: the plain AVG
    assert "| Emotic (not in AVG) | 1 |" in table
    assert ("**NOTHING WAS JUDGED**" in table) is not judged


def test_multi_baseline_with_the_judge_server(tmp_path, release_format_dir, viscot_images):
    with FakeChatServer(default=("score", 0.5)) as server:
        env = viscot_env(release_format_dir, viscot_images)
        env.update(
            OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY=KEY, OPENAI_MODEL="judge-test", PROMPT_CLASS="basic_grpo"
        )
        result = launch("multi_baseline.sh", tmp_path, env, "--max_items", "1")
        assert len(server.chat_requests) == 13
    out = tmp_path / "out"
    check_viscot_table(result, out, judged=True)
    assert all(r["prompt"].endswith("final answer in <answer> </answer> tags.") for r in predictions(out))
    # Every judgment is 0.5: each sub-dataset's judge mean and the AVG are 50.0.
    assert "| **AVG** | **12** | **50.0 ± 0.0** |" in (out / "table.md").read_text()
    texts = [p.read_text() for p in out.rglob("*") if p.is_file()] + [result.stdout, result.stderr]
    assert all(KEY not in text for text in texts)


def test_multi_ground_r1(tmp_path, release_format_dir, viscot_images):
    result = launch(
        "multi_Ground_R1.sh", tmp_path, viscot_env(release_format_dir, viscot_images), "--max_items_per_dataset", "1"
    )
    out = tmp_path / "out"
    check_viscot_table(result, out, judged=False)
    records = predictions(out)
    assert all(1 <= r["trajectory"]["num_turns"] <= 5 and r["protocol"] == "ground_r1" for r in records)
    # The tiny model never answers: every trajectory runs its 5 turns, each grounding turn with a crop window.
    assert all(t["crop_window"] is not None for r in records for t in r["trajectory"]["turns"][:-1])


def test_multi_ground_sft(tmp_path, release_format_dir, viscot_images):
    result = launch(
        "multi_Ground_SFT.sh", tmp_path, viscot_env(release_format_dir, viscot_images), "--max_items_per_dataset", "1"
    )
    out = tmp_path / "out"
    check_viscot_table(result, out, judged=False)
    assert all(
        r["trajectory"]["num_turns"] == 2 and r["trajectory"]["turns"][0]["crop_window"] is not None
        for r in predictions(out)
    )


def test_multi_refcoco(tmp_path, release_format_dir, refcoco_images):
    env = {"DATA_PATH": str(release_format_dir / REFCOCO), "IMAGE_ROOT": str(refcoco_images), "OUTPUT_DIR": "out"}
    result = launch("multi_RefCOCO.sh", tmp_path, env, "--max_items", "1")
    out = tmp_path / "out"
    records = predictions(out)
    assert len({r["object_key"] for r in records}) == 8  # one object per split
    table = (out / "table.md").read_text()
    assert table in result.stdout
    assert "standard (per expression)" in table and "any expression (object hit by any of its expressions)" in table
    assert "release (any expression, int() boxes)" in table and "not clamped" in table
    rows = [line.split(" | ")[0][2:] for line in table.splitlines() if line.startswith("| RefCOCO")]
    assert rows == [
        "RefCOCO/val",
        "RefCOCO/testA",
        "RefCOCO/testB",
        "RefCOCOplus/val",
        "RefCOCOplus/testA",
        "RefCOCOplus/testB",
        "RefCOCOg/val",
        "RefCOCOg/test",
    ]


def test_multi_ground_r1_on_a_checkpoint_written_by_the_trainer(tmp_path, release_format_dir, viscot_images):
    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "ground_r1.cli.train_grpo",
            "--config",
            str(REPO / "configs/grpo/tiny_cpu.yaml"),
            "--max_steps",
            "1",
            "--save_steps",
            "1",
            "--output_dir",
            str(tmp_path / "grpo"),
            "--report_to",
            "none",
            "--heldout_eval_questions",
            "0",
        ],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert train.returncode == 0, train.stderr[-4000:]
    checkpoint = tmp_path / "grpo" / "checkpoint-1"
    assert (checkpoint / "model.safetensors").is_file()
    env = {**viscot_env(release_format_dir, viscot_images), "MODEL_PATH": "grpo/checkpoint-1"}  # relative to the caller
    # The checkpoint's rollout_settings.json gives its 112-px view and 3 turns; the flag cuts the tokens for the CPU.
    result = launch("multi_Ground_R1.sh", tmp_path, env, "--max_items_per_dataset", "1", "--max_new_tokens", "16")
    out = tmp_path / "out"
    check_viscot_table(result, out, judged=False)
    used = json.loads((out / "inference_config.json").read_text())
    assert used["model"] == str(checkpoint)
    assert (used["max_pixels"], used["max_turns"], used["sampling"]["max_new_tokens"]) == (12544, 3, 16)
    assert used["notes"]["settings_sources"]["max_pixels"] == "checkpoint"
    assert used["notes"]["settings_sources"]["max_new_tokens_per_turn"] == "flag"
