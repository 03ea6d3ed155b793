"""The SFT launchers end to end on the tiny model on CPU (SPEC §8), as the seed README runs them:

    bash qwen-vl-finetune/scripts/prepare_SFT_data.sh            # from the repository root
    cd qwen-vl-finetune && bash scripts/Vanilla_SFT.sh            # nothing set: tiny model, synthetic data
    cd qwen-vl-finetune && bash scripts/Ground_SFT.sh             # on the data prepared above

Each checkpoint loads with ``Qwen2_5_VLForConditionalGeneration.from_pretrained`` and is evaluated with its
evaluation launcher (Vanilla: eval/multi_baseline.sh, Ground: eval/multi_Ground_SFT.sh, both:
eval_general_dataset/multi_SFT.sh) on two items; an evaluation launcher that is not in the tree yet is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from ground_r1 import paths

REPO = paths.repo_root()
SCRIPTS = REPO / "qwen-vl-finetune" / "scripts"
TINY_MAX_PIXELS = 12544
pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OPENAI_")
        and k
        not in (
            "MODEL_PATH",
            "DATA_PATH",
            "IMAGE_ROOT",
            "IMAGE_PATH_PREFIX",
            "OUTPUT_DIR",
            "SFT_DATA_DIR",
            "CONFIG",
            "MAX_STEPS",
            "MAX_RECORDS",
            "DEEPSPEED_CONFIG",
            "REPO",
            "CALLER_DIR",
            "PY",
        )
    }
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "NUM_GPUS": "1"}, **extra)
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-6000:]}"
    return output


def _check_checkpoint(out: Path, kind: str, steps: int) -> None:
    from transformers import Qwen2_5_VLForConditionalGeneration

    from ground_r1.models.loading import load_processor

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(out)
    assert model.config.model_type == "qwen2_5_vl"
    processor = load_processor(out, min_pixels=3136, max_pixels=TINY_MAX_PIXELS)
    assert processor.chat_template
    info = json.loads((out / "ground_r1_sft.json").read_text())
    assert (info["sft_kind"], info["global_step"], info["max_pixels"]) == (kind, steps, TINY_MAX_PIXELS)


def _evaluate(launcher: str, checkpoint: Path, out: Path) -> str:
    script = REPO / launcher
    if not script.is_file():
        pytest.skip(f"{launcher} is not in the tree yet")
    output = _run(
        [
            "bash",
            str(script),
            "--max_items_per_dataset",
            "2",
            "--max_pixels",
            str(TINY_MAX_PIXELS),
            "--max_new_tokens",
            "8",
            "--no_progress",
        ],
        cwd=REPO,
        env=_env(MODEL_PATH=str(checkpoint), OUTPUT_DIR=str(out)),
    )
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 2 and all(p["status"] == "ok" for p in predictions)
    assert "NOTHING WAS JUDGED" in output  # no judge endpoint in tests: said loudly
    return output


@pytest.fixture(scope="module")
def vanilla_run(tmp_path_factory):
    """Nothing set but OUTPUT_DIR, run from qwen-vl-finetune/ as the seed README does."""
    out = tmp_path_factory.mktemp("vanilla") / "ckpt"
    output = _run(["bash", "scripts/Vanilla_SFT.sh"], cwd=REPO / "qwen-vl-finetune", env=_env(OUTPUT_DIR=str(out)))
    return out, output


@pytest.fixture(scope="module")
def ground_run(tmp_path_factory):
    """prepare_SFT_data.sh from the repository root with a relative SFT_DATA_DIR, then Ground_SFT.sh on it."""
    root = tmp_path_factory.mktemp("ground")
    data_rel = os.path.relpath(root / "sft_data", REPO)  # relative to the caller's directory (the repo root)
    prepare = _run(
        ["bash", "qwen-vl-finetune/scripts/prepare_SFT_data.sh"],
        cwd=REPO,
        env=_env(SFT_DATA_DIR=data_rel, MAX_RECORDS="8"),
    )
    out = root / "ckpt"
    train = _run(
        ["bash", "scripts/Ground_SFT.sh"],
        cwd=REPO / "qwen-vl-finetune",
        env=_env(SFT_DATA_DIR=str(root / "sft_data"), OUTPUT_DIR=str(out), MAX_STEPS="3"),
    )
    return root, out, prepare + train


def test_prepare_launcher_writes_both_sets_for_the_tiny_pixel_bounds(ground_run):
    root, _, _ = ground_run
    data = root / "sft_data"
    meta = json.loads((data / "sft_data.json").read_text())
    # Nothing set: the synthetic data, the tiny preset's pixel bounds (configs/sft/tiny_cpu.yaml), MAX_RECORDS=8.
    assert (meta["min_pixels"], meta["max_pixels"], meta["num_examples"]) == (3136, TINY_MAX_PIXELS, 8)
    assert len((data / "ground.jsonl").read_text().splitlines()) == 8
    assert len((data / "vanilla.jsonl").read_text().splitlines()) == 8
    assert len(list((data / "crops").glob("*.png"))) == 8


def test_vanilla_launcher_trains_the_tiny_model_on_synthetic_data(vanilla_run):
    out, output = vanilla_run
    _check_checkpoint(out, "vanilla", steps=2)  # tiny_cpu.yaml: max_steps 2
    assert (out / "sft_data" / "vanilla.jsonl").is_file()  # prepared on the fly into OUTPUT_DIR/sft_data
    assert "evaluate it with: MODEL_PATH=" in output and "eval/multi_baseline.sh" in output


def test_ground_launcher_trains_on_the_prepared_data(ground_run):
    _, out, output = ground_run
    _check_checkpoint(out, "ground", steps=3)  # MAX_STEPS=3
    info = json.loads((out / "ground_r1_sft.json").read_text())
    assert info["data_file"].endswith("sft_data/ground.jsonl")
    assert "eval/multi_Ground_SFT.sh" in output


def test_vanilla_checkpoint_evaluates_with_multi_baseline(vanilla_run, tmp_path):
    out, _ = vanilla_run
    _evaluate("eval/multi_baseline.sh", out, tmp_path / "eval")


def test_ground_checkpoint_evaluates_with_multi_ground_sft(ground_run, tmp_path):
    _, out, _ = ground_run
    _evaluate("eval/multi_Ground_SFT.sh", out, tmp_path / "eval")
    predictions = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert all(p["protocol"] == "ground_sft" and len(p["turns"]) == 2 for p in predictions)


def test_sft_checkpoints_evaluate_with_the_general_sft_launcher(vanilla_run, tmp_path):
    script = REPO / "eval_general_dataset" / "multi_SFT.sh"
    if not script.is_file():
        pytest.skip("eval_general_dataset/multi_SFT.sh is not in the tree yet")
    out, _ = vanilla_run
    _run(["bash", str(script)], cwd=REPO, env=_env(MODEL_PATH=str(out), OUTPUT_DIR=str(tmp_path / "general")))


def test_two_cpu_processes_under_zero3_freeze_the_vision_tower(ground_run, tmp_path):
    """NUM_GPUS=2 on CPU: accelerate + DeepSpeed ZeRO-3 over gloo (the GPU path's code, ENVIRONMENT.md). The
    gathered checkpoint loads; the vision blocks are unchanged, the projector and the LLM moved."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    root, _, _ = ground_run
    out = tmp_path / "ckpt"
    _run(
        ["bash", str(SCRIPTS / "Ground_SFT.sh")],
        cwd=tmp_path,
        env=_env(NUM_GPUS="2", SFT_DATA_DIR=str(root / "sft_data"), OUTPUT_DIR=str(out)),
        timeout=400,
    )
    _check_checkpoint(out, "ground", steps=2)
    trained = dict(Qwen2_5_VLForConditionalGeneration.from_pretrained(out).named_parameters())
    base = dict(Qwen2_5_VLForConditionalGeneration.from_pretrained(paths.tiny_model_dir()).named_parameters())
    changed = {n for n in trained if not torch.equal(trained[n], base[n])}
    assert not any(n.startswith("model.visual.") and not n.startswith("model.visual.merger.") for n in changed)
    assert any(n.startswith("model.visual.merger.") for n in changed)
    assert any(n.startswith("model.language_model.layers.") for n in changed)
