"""GPU-only presets on a machine without a GPU (issue 15): refused before any work, naming the preset, why, and
the setting that runs on CPU; the launchers' own command (`DATA_PATH=missing.jsonl MAX_STEPS=2 bash
scripts/run_grpo_video.sh`) then reports the real problem once the CPU setting is given."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest
import torch

from ground_r1.presets import PresetMachineError, check_preset_for_machine, gpu_only_settings

REPO = Path(__file__).resolve().parents[1]
no_gpu_here = pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a GPU")


def cpu() -> bool:
    return False


def test_the_release_presets_are_refused_without_a_gpu_with_the_cpu_fix(monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(PresetMachineError) as err:
        check_preset_for_machine(
            ["--config", "configs/grpo/release.yaml", "--max_steps", "2"],
            launcher="bash scripts/run_grpo_video.sh",
            cpu_preset="configs/grpo/tiny_cpu.yaml",
            has_gpu=cpu,
        )
    assert str(err.value) == (
        "the preset configs/grpo/release.yaml needs a GPU and this machine has none (no CUDA device visible): "
        "configs/grpo/release.yaml: bf16: true (bf16 mixed precision runs on a CUDA GPU (transformers refuses it on "
        "CPU)). To run on CPU, add `--bf16 false` (`bash scripts/run_grpo_video.sh --bf16 false`: the preset's other "
        "settings are kept), or use the CPU preset CONFIG=configs/grpo/tiny_cpu.yaml"
    )
    for preset in ("configs/grpo/paper.yaml", "configs/sft/ground.yaml", "configs/sft/vanilla.yaml"):
        assert gpu_only_settings(["--config", preset])[1] == [("bf16", f"{preset}: bf16: true")]
    # A flag on the command line is named as such.
    assert gpu_only_settings(["--config", "configs/grpo/tiny_cpu.yaml", "--fp16"])[1] == [("fp16", "--fp16")]


def test_what_runs_on_cpu_passes(monkeypatch):
    monkeypatch.chdir(REPO)
    for argv in (
        ["--config", "configs/grpo/release.yaml", "--bf16", "false"],
        ["--config", "configs/grpo/release.yaml", "--bf16=false"],
        ["--config", "configs/grpo/release.yaml", "--use_cpu", "true"],  # CPU bf16 autocast, asked for
        ["--config", "configs/grpo/tiny_cpu.yaml"],
        ["--config", "configs/sft/tiny_cpu.yaml"],
        [],
    ):
        check_preset_for_machine(argv, launcher="x", cpu_preset="y", has_gpu=cpu)
    check_preset_for_machine(
        ["--config", "configs/grpo/release.yaml"], launcher="x", cpu_preset="y", has_gpu=lambda: True
    )
    with pytest.raises(PresetMachineError, match="preset not found: --config nowhere.yaml"):
        check_preset_for_machine(["--config", "nowhere.yaml"], launcher="x", cpu_preset="y", has_gpu=cpu)


@no_gpu_here
def test_the_training_clis_refuse_before_any_work(monkeypatch, caplog, tmp_path):
    from ground_r1.cli import train_grpo, train_sft

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("GROUND_R1_LAUNCHER", "bash qwen-vl-finetune/scripts/Ground_SFT.sh")
    caplog.set_level(logging.ERROR)
    assert (
        train_sft.main(
            ["--config", "configs/sft/ground.yaml", "--sft_kind", "ground", "--output_dir", str(tmp_path / "sft")]
        )
        == 1
    )
    assert (
        "the preset configs/sft/ground.yaml needs a GPU" in caplog.text
        and "`bash qwen-vl-finetune/scripts/Ground_SFT.sh --bf16 false`" in caplog.text
        and "CONFIG=configs/sft/tiny_cpu.yaml" in caplog.text
    )
    caplog.clear()
    monkeypatch.setenv("GROUND_R1_LAUNCHER", "bash scripts/run_grpo_video.sh")
    monkeypatch.setattr(train_grpo, "setup_logging", lambda is_main: None)  # it would replace pytest's log capture
    assert (
        train_grpo.main(
            [
                "--config",
                "configs/grpo/release.yaml",
                "--data_path",
                "missing.jsonl",
                "--output_dir",
                str(tmp_path / "grpo"),
            ]
        )
        == 1
    )
    assert "the preset configs/grpo/release.yaml needs a GPU" in caplog.text
    assert not (tmp_path / "grpo").exists() and not (tmp_path / "sft").exists()  # before any work
    # Issue 17's check comes first: a local MODEL_PATH that is not there is the problem named, not the preset.
    missing = tmp_path / "no-such-model"
    for main, argv in (
        (train_sft.main, ["--config", "configs/sft/ground.yaml", "--sft_kind", "ground"]),
        (train_grpo.main, ["--config", "configs/grpo/release.yaml"]),
    ):
        caplog.clear()
        assert main([*argv, "--model_name_or_path", str(missing), "--output_dir", str(tmp_path / "o")]) == 1
        assert f"MODEL_PATH {missing}: no such folder" in caplog.text and "needs a GPU" not in caplog.text
    assert not (tmp_path / "o").exists()


def _run(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("MODEL_PATH", "DATA_PATH", "CONFIG", "OUTPUT_DIR")}
    full.update(OMP_NUM_THREADS="1", NUM_GPUS="1", **env)
    return subprocess.run(
        ["bash", str(REPO / script), *args], cwd=REPO, env=full, capture_output=True, text=True, timeout=300
    )


@no_gpu_here
@pytest.mark.slow
def test_the_issues_command_names_the_preset_then_the_real_problem(tmp_path):
    env = {"DATA_PATH": str(tmp_path / "missing.jsonl"), "MAX_STEPS": "2", "OUTPUT_DIR": str(tmp_path / "out")}
    refused = _run("scripts/run_grpo_video.sh", env)
    assert refused.returncode == 1
    assert "the preset configs/grpo/release.yaml needs a GPU" in refused.stderr
    assert "`bash scripts/run_grpo_video.sh --bf16 false`" in refused.stderr
    assert "Your setup doesn't support bf16/gpu" not in refused.stderr and "Traceback" not in refused.stderr
    on_cpu = _run("scripts/run_grpo_video.sh", env, "--bf16", "false")
    assert on_cpu.returncode == 1 and "Traceback" not in on_cpu.stderr
    assert f"records file not found: '{tmp_path / 'missing.jsonl'}'" in on_cpu.stderr
    # A model folder that exists (issue 17 names a missing one first, before the preset: see
    # test_the_training_clis_refuse_before_any_work); MODEL_PATH makes the launcher pick the release preset.
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    vanilla = _run(
        "qwen-vl-finetune/scripts/Vanilla_SFT.sh",
        {"MODEL_PATH": str(tmp_path / "model"), "OUTPUT_DIR": str(tmp_path / "v")},
    )
    assert vanilla.returncode == 1
    assert "the preset configs/sft/vanilla.yaml needs a GPU" in vanilla.stderr
    assert "`bash qwen-vl-finetune/scripts/Vanilla_SFT.sh --bf16 false`" in vanilla.stderr
