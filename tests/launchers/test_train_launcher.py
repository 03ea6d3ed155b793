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


def run_launcher(
    env_overrides: dict, *args: str, timeout: int = 400, check: bool = True
) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_overrides}
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "run_grpo_video.sh"), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
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


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The CI-sized demo: the default launcher, 2 steps, 4 held-out questions (the held-out figure before step 1
    and the controls after training)."""
    out = tmp_path_factory.mktemp("demo") / "smoke"
    proc = run_launcher({"MAX_STEPS": "2", "OUTPUT_DIR": str(out)}, "--heldout_eval_questions", "4")
    return out, proc


def test_default_run_writes_every_demo_artifact_with_finite_metrics(demo_run):
    """The CI-sized demo (issue 4): the default launcher on the shipped tiny instruct base writes the checkpoint,
    manifest, metrics, curves.png, the trajectory gallery and the held-out evaluation with its controls."""
    import math

    out, proc = demo_run
    assert proc.stdout.splitlines()[0].startswith("[run_grpo_video] no MODEL_PATH/DATA_PATH: training the tiny offline")
    log = proc.stdout + proc.stderr
    assert str(paths.tiny_instruct_dir()) in log  # the demo starts from the shipped instruct base
    assert "step 1/2 reward=" in log and "step 2/2 reward=" in log and "total time" in log
    assert (out / "curves.png").stat().st_size > 10_000
    assert "<h2>step 1</h2>" in (out / "trajectories.html").read_text()  # step 1 is always in the gallery
    heldout = json.loads((out / "heldout_eval.json").read_text())
    assert heldout["questions"] == 4 and set(heldout["results"]) == {
        "grounded",
        "no_crop",
        "gt_crop",
        "random_box",
        "whole_image_box",
        "centre_box",
        "majority_answer",
    }
    for condition in ("grounded", "no_crop", "gt_crop"):
        for key in ("accuracy", "format", "turns_mean", "answered_frac"):
            assert math.isfinite(heldout["results"][condition][key]), (condition, key)
    assert 0.0 < heldout["results"]["random_box"]["giou_score"] < 1.0
    assert (out / "checkpoint-2" / "COMPLETE").is_file()
    from transformers import Qwen2_5_VLForConditionalGeneration

    Qwen2_5_VLForConditionalGeneration.from_pretrained(out)  # the final model loads
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["training_args"]["num_first_round_samples"] == 4 and manifest["packages"]["trl"] == "1.16.0"
    metrics = read_metrics(out / "metrics.jsonl")
    assert sorted(metrics) == [1, 2]
    for key in (
        "rewards/format_reward/mean",
        "rewards/accuracy_reward/mean",
        "giou/no_box_rate",
        "rollout/turns_mean",
        "completions/mean_length",
        "frac_reward_zero_std",
        "loss",
    ):
        assert math.isfinite(metrics[2][key]), key


def test_the_demo_console_has_one_line_per_step_and_an_early_heldout_figure(demo_run):
    """Before: TRL's whole metric dict and a progress bar beside each step line (323 KB for the demo); the first
    held-out figure came after the last step."""
    out, proc = demo_run
    log = proc.stdout + proc.stderr
    assert "{'loss'" not in log and "'rewards/format_reward/mean'" not in log and "it/s]" not in log
    assert [
        line.split("] ", 1)[1].split(" reward=")[0]
        for line in log.splitlines()
        if " step " in line and " reward=" in line
    ] == ["step 1/2", "step 2/2"]
    first_step = log.index("step 1/2 reward=")
    assert log.index("held-out (greedy, 4 questions) before training (the base model): accuracy") < first_step
    step0 = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert step0["step"] == 0 and 0.0 <= step0["heldout/accuracy"] <= 1.0 and "heldout/accuracy_se" in step0


def test_the_demo_reports_say_what_they_show(demo_run):
    out, _ = demo_run
    heldout = json.loads((out / "heldout_eval.json").read_text())
    assert "FIRST grounding box" in heldout["fields"]["giou_score"]  # why grounded and no-crop GIoU are equal
    assert "upper bound" in heldout["conditions"]["gt_crop"] and set(heldout["base"]) >= {"accuracy", "giou_score"}
    assert heldout["results"]["grounded"]["accuracy_se"] is not None
    card = (out / "README.md").read_text()
    assert "fine-tuned version of [None]" not in card
    assert f"- base model: `{paths.tiny_instruct_dir()}`" in card and "configs/grpo/tiny_cpu.yaml`" in card
    assert "| ground-truth crop (upper bound) |" in card and "- steps: 2 logged of max_steps 2" in card
    page = (out / "trajectories.html").read_text()
    assert "Shows all 1 logged step(s)." in page and "model input frame 112x112 px, original 448x448 px" in page


def test_a_trained_checkpoint_evaluates_as_it_was_trained(demo_run, tmp_path, caplog):
    """Before: the final folder was evaluated at 448 px, 512 tokens and 5 turns (accuracy 0.0). Now the final
    folder and checkpoint-N carry rollout_settings.json; evaluating them with no flags gives the predictions of an
    evaluation with the run's settings spelled out as flags (the one list, ROLLOUT_KEYS)."""
    import logging

    from ground_r1.cli import evaluate
    from ground_r1.evaluation.predictions import load_predictions
    from ground_r1.rollout_settings import EVAL_FLAGS, ROLLOUT_KEYS

    caplog.set_level(logging.INFO)
    out, _ = demo_run
    settings = json.loads((out / "rollout_settings.json").read_text())["settings"]
    assert json.loads((out / "checkpoint-2" / "rollout_settings.json").read_text())["settings"] == settings
    assert (settings["max_pixels"], settings["max_new_tokens_per_turn"], settings["max_turns"]) == (12544, 48, 3)

    def run(model, name, *flags):
        assert (
            evaluate.main(
                [
                    "--protocol",
                    "ground_r1",
                    "--model_path",
                    str(model),
                    "--output_dir",
                    str(tmp_path / name),
                    "--no_progress",
                    "--stages",
                    "infer,score,table",
                    *flags,
                ]
            )
            == 0
        )
        return {p["key"]: (p["turns"], p["answer"]) for p in load_predictions(tmp_path / name)}

    spelled = [
        arg
        for flag, key in EVAL_FLAGS.items()
        if settings.get(key) is not None
        for arg in (f"--{flag}", str(settings[key]))
    ]
    assert {key for flag, key in EVAL_FLAGS.items() if f"--{flag}" in spelled} == set(ROLLOUT_KEYS)
    explicit = run(out, "explicit", "--no-checkpoint_settings", *spelled)
    final, checkpoint = run(out, "final"), run(out / "checkpoint-2", "checkpoint")
    assert len(explicit) == 8 and final == explicit and checkpoint == explicit
    table = (tmp_path / "final" / "table.md").read_text()
    assert "from the checkpoint's rollout_settings.json (as trained): max_turns=3, max_new_tokens_per_turn=48" in table
    used = json.loads((tmp_path / "final" / "inference_config.json").read_text())
    assert (used["max_pixels"], used["sampling"]["max_new_tokens"], used["max_turns"]) == (12544, 48, 3)
    assert "max_pixels=12544 (checkpoint)" in caplog.text


# Kill/resume runs: the tiny preset cut to ~1 s per step, with a reward that varies within a group
# (benchmarks/reliability/harness_rewards.py) so that the weights really move: with the format/accuracy rewards
# alone the random tiny model earns nothing, the loss is 0, and a resume that lost the weights would go unnoticed.
FAST = [
    "--num_generations",
    "4",
    "--per_device_train_batch_size",
    "4",
    "--max_turns",
    "2",
    "--max_new_tokens_per_turn",
    "12",
    "--max_completion_length",
    "256",
    "--learning_rate",
    "1e-3",
    "--reward_functions",
    "format",
    "accuracy",
    "harness_rewards:varied_length",
    "--max_steps",
    "4",
    "--heldout_eval_questions",
    "0",
]  # the preset's post-training held-out evaluation is not under test here
# The random tiny model, not the shipped instruct base: its turns end at random lengths, so the varied-length reward
# has a spread and every step moves the weights (the instruct base fills the 12-token turns: zero advantage).
FAST_ENV = {
    "PYTHONPATH": str(REPO / "benchmarks" / "reliability"),
    "OMP_NUM_THREADS": "1",
    "MODEL_PATH": str(paths.tiny_model_dir()),
    "CONFIG": str(REPO / "configs" / "grpo" / "tiny_cpu.yaml"),
}


def max_weight_diff(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert set(x) == set(y)
    return max(float((x[k] - y[k]).abs().max()) for k in x)


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory) -> Path:
    """The uninterrupted FAST run (a checkpoint every step: saving does not change what is computed)."""
    out = tmp_path_factory.mktemp("unbroken") / "run"
    run_launcher({**FAST_ENV, "OUTPUT_DIR": str(out)}, *FAST, "--save_steps", "1")
    return out


def test_killed_run_resumes_from_last_complete_checkpoint_with_identical_metrics(tmp_path, unbroken):
    broken = tmp_path / "broken"
    common = [*FAST, "--save_steps", "2"]
    # Same run, SIGKILLed right after checkpoint-2 is complete; a half-written checkpoint-3 is planted to prove
    # it is never loaded.
    killed = run_launcher(
        {**FAST_ENV, "OUTPUT_DIR": str(broken), "GROUND_R1_KILL_AFTER_CHECKPOINT": "2"}, *common, check=False
    )
    assert killed.returncode != 0 and not (broken / "checkpoint-4").exists()
    (broken / "checkpoint-3").mkdir()
    (broken / "checkpoint-3" / "trainer_state.json").write_text('{"global_step": 3, "log_hi')
    resumed = run_launcher({**FAST_ENV, "OUTPUT_DIR": str(broken), "RESUME": "1"}, *common)
    assert "skipping incomplete checkpoint" in resumed.stderr + resumed.stdout
    a, b = read_metrics(unbroken / "metrics.jsonl"), read_metrics(broken / "metrics.jsonl")
    assert sorted(b) == [1, 2, 3, 4]
    for step in (3, 4):
        assert b[step] == a[step], f"step {step} differs after resume"
    # The weights were resumed too (HF's own loader skipped 56 of the 57 tensors; see
    # GroundR1Trainer._load_from_checkpoint).
    assert max_weight_diff(unbroken, broken) == 0.0


def test_sigterm_in_a_step_and_in_checkpoint_writing_ends_cleanly_and_resumes_to_the_unbroken_run(tmp_path, unbroken):
    out = tmp_path / "preempted"
    env = {**FAST_ENV, "OUTPUT_DIR": str(out)}
    args = [*FAST, "--save_steps", "3"]  # checkpoint-2 below exists only because of the SIGTERM
    # 1. SIGTERM during step 2 (sent by the reward function, between rollout and loss): the step finishes, its
    #    checkpoint is written and marked complete, exit 143.
    first = run_launcher({**env, "RELIABILITY_SIGNAL_AT_STEP": "2:term"}, *args, check=False)
    assert first.returncode == 143, first.stderr[-3000:]
    assert "stopped by SIGTERM after step 2" in first.stdout + first.stderr
    assert (out / "checkpoint-2" / "COMPLETE").is_file() and not (out / "checkpoint-3").exists()
    # 2. Resumed; SIGTERM while checkpoint-3 is being written (weights on disk, optimizer not yet): the save
    #    finishes, then exit 143.
    second = run_launcher({**env, "RESUME": "1", "GROUND_R1_FAULT_CHECKPOINT": "3:weights:term"}, *args, check=False)
    assert second.returncode == 143, second.stderr[-3000:]
    assert "resuming from " + str(out / "checkpoint-2") in second.stdout + second.stderr
    assert (out / "checkpoint-3" / "COMPLETE").is_file() and not (out / "checkpoint-3" / "IN_PROGRESS").exists()
    assert not (out / "checkpoint-4").exists()
    # 3. Resumed from checkpoint-3 to the end: every step's metrics and the final weights equal the unbroken run's.
    third = run_launcher({**env, "RESUME": "1"}, *args)
    assert "resuming from " + str(out / "checkpoint-3") in third.stdout + third.stderr
    a, b = read_metrics(unbroken / "metrics.jsonl"), read_metrics(out / "metrics.jsonl")
    assert sorted(b) == [1, 2, 3, 4] and all(b[s] == a[s] for s in a)
    assert max_weight_diff(unbroken, out) == 0.0


def test_zero3_ranks_skip_together_a_step_whose_loss_is_nan_on_one_rank(tmp_path):
    """Two CPU processes under ZeRO-3 (the engine steps inside backward): rank 1's loss at step 2 is NaN. The
    all-reduced flag logs it on rank 0, DeepSpeed skips the step on both ranks (non-finite global gradient norm),
    and the guard records the skip; steps 1 and 3 update the weights."""
    import socket

    with socket.socket() as s:  # a free rendezvous port: other 2-process runs may hold the default 29500
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    out = tmp_path / "zero3_nan"
    proc = run_launcher(
        {
            **FAST_ENV,
            "NUM_GPUS": "2",
            "MASTER_PORT": port,
            "OUTPUT_DIR": str(out),
            "GROUND_R1_FAULT_NONFINITE": "loss:2:1",
        },
        *FAST,
        "--max_steps",
        "3",
        "--save_steps",
        "1",
    )
    assert "OVERFLOW! Skipping step" in proc.stdout + proc.stderr  # DeepSpeed's own skip
    events = [json.loads(line) for line in (out / "nonfinite_steps.jsonl").read_text().splitlines()]
    assert len(events) == 1 and len(events[0]["record_ids"]) == 1  # rank 1's question
    assert {k: events[0][k] for k in ("step", "which", "action", "ranks", "loss")} == {
        "step": 2,
        "which": "loss",
        "action": "skipped",
        "ranks": [1],
        "loss": ["nan"],
    }
    assert read_metrics(out / "metrics.jsonl")[2]["grad_norm"] == "inf"  # DeepSpeed's norm of a skipped step

    def weights(step):
        from safetensors.torch import load_file

        return load_file(out / f"checkpoint-{step}" / "model.safetensors")

    w1, w2, w3 = weights(1), weights(2), weights(3)
    assert all(torch_equal(w1[k], w2[k]) for k in w1)  # the skipped step changed nothing
    assert not all(torch_equal(w2[k], w3[k]) for k in w2)  # step 3 trained


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_two_processes_zero3_with_ranks_finishing_in_different_rounds(tmp_path):
    """(h) Rank 0's trajectories answer in round 1, rank 1's ground until round 5. Each round is a collective (the
    all-reduced "any unfinished" flag, and a ZeRO-3 model forward per scripted generate call): a rank that
    stopped after round 1 would reach the loss forward's collectives while the other still generates, and hang.
    The run must finish within the timeout."""
    out = tmp_path / "zero3"
    proc = run_launcher(
        {"NUM_GPUS": "2", "MAX_STEPS": "2", "OUTPUT_DIR": str(out)},
        "--scripted_policy",
        "uneven_by_rank",
        "--max_turns",
        "5",
        "--max_completion_length",
        "2048",
        timeout=400,
    )
    # NUM_GPUS=2 without a GPU says what it runs; the held-out controls are left to one process, named whole.
    assert "NUM_GPUS=2 on a machine without a GPU: 2 CPU processes under DeepSpeed ZeRO-3 over gloo" in proc.stdout
    log = proc.stdout + proc.stderr
    assert f"python -m ground_r1.cli.evaluate_controls --model_path {out} --max_questions 64" in log
    assert "<this run's preset>" not in log
    assert "froze 0 vision parameters" not in log and "froze 83616 vision parameters" in log
    metrics = read_metrics(out / "metrics.jsonl")
    assert sorted(metrics) == [1, 2]
    # Both ranks ran 5 rounds (rank 0 joined rounds 2-5 with dummy calls); turns: rank 0 = 1, rank 1 = 5.
    assert metrics[2]["rollout/turns_max"] == 5.0
    assert (out / "checkpoint-2" / "COMPLETE").is_file()


def test_two_processes_zero3_agree_on_dynamic_sampling_refills(tmp_path):
    """Dynamic sampling under ZeRO-3: rank 0's groups all have equal rewards (scripted `flat_on_rank_0`), rank 1's
    have a spread. Rank 0 needs refills and rank 1 does not, yet every refill is a rollout with collective
    generate calls: both ranks must run it (they take the same decision from the same gathered rewards), or the
    run hangs. Each step: the main rollout and 2 refills of 1 question per rank; rank 1's group is kept, rank 0
    trains on a placeholder row."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    out = tmp_path / "zero3_ds"
    run_launcher(
        {"NUM_GPUS": "2", "MASTER_PORT": port, "MAX_STEPS": "2", "OUTPUT_DIR": str(out)},
        "--scripted_policy",
        "flat_on_rank_0",
        "--dynamic_sampling",
        "true",
        "--dynamic_sampling_max_refills",
        "2",
        "--num_generations",
        "4",
        "--per_device_train_batch_size",
        "4",
        "--max_turns",
        "2",
        "--max_new_tokens_per_turn",
        "64",
        "--heldout_eval_questions",
        "0",
        timeout=400,
    )
    metrics = read_metrics(out / "metrics.jsonl")
    assert sorted(metrics) == [1, 2]
    for step in (1, 2):
        m = metrics[step]
        assert (m["dynamic_sampling/refills"], m["dynamic_sampling/refill_questions"]) == (2.0, 4.0)
        assert (m["dynamic_sampling/groups_rolled"], m["dynamic_sampling/groups_dropped"]) == (6.0, 3.0)
        assert (m["dynamic_sampling/groups_kept"], m["dynamic_sampling/groups_surplus"]) == (1.0, 2.0)
        assert (m["dynamic_sampling/shortfall"], m["dynamic_sampling/placeholder_rows"]) == (1.0, 4.0)
        assert m["frac_reward_zero_std"] == 0.5
    state = json.loads((out / "checkpoint-2" / "dynamic_sampling.json").read_text())
    assert state["refill_cursor"] == 2 * 2 * 2  # 2 steps x 2 refills x 1 question x 2 ranks


# Trackers (issue 17): installed with the project, offline, their logs in the run folder.
def test_report_to_tensorboard_runs_and_leaves_its_event_file(tmp_path):
    out = tmp_path / "tb"
    run_launcher({**FAST_ENV, "OUTPUT_DIR": str(out)}, *FAST, "--max_steps", "2", "--report_to", "tensorboard")
    (events,) = list((out / "runs").glob("*/events.out.tfevents.*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = EventAccumulator(str(events.parent)).Reload().Tags()["scalars"]
    assert {"train/rewards/format_reward/mean", "train/rollout/turns_mean", "train/giou/no_box_rate"} <= set(scalars)


def test_report_to_wandb_offline_runs_and_leaves_its_run_in_the_output_folder(tmp_path):
    out = tmp_path / "wb"
    proc = run_launcher(
        {**FAST_ENV, "OUTPUT_DIR": str(out), "WANDB_MODE": "offline"}, *FAST, "--max_steps", "2", "--report_to", "wandb"
    )
    (run_file,) = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert b"rollout/turns_mean" in run_file.read_bytes()
    assert "wandb sync" in proc.stdout + proc.stderr  # wandb's own hint to upload the offline run
