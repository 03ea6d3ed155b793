"""A checkpoint counts as complete only when its content says so (ground_r1.checkpoints)."""

from __future__ import annotations

import json

import pytest

from ground_r1.checkpoints import checkpoint_problems, last_complete_checkpoint, resolve_resume


def make_checkpoint(root, step, *, state=True, weights=True, optimizer=True, rng=True, state_step=None):
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    if weights:
        (folder / "model.safetensors").write_bytes(b"w")
    if optimizer:
        (folder / "optimizer.pt").write_bytes(b"o")
    if rng:
        (folder / "rng_state.pth").write_bytes(b"r")
    if state:
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": state_step or step}))
    return folder


def test_complete_and_each_kind_of_incomplete(tmp_path):
    assert checkpoint_problems(make_checkpoint(tmp_path, 1)) == []
    assert checkpoint_problems(make_checkpoint(tmp_path, 2, optimizer=False)) == ["no optimizer state"]
    assert checkpoint_problems(make_checkpoint(tmp_path, 3, rng=False)) == ["no RNG state"]
    assert checkpoint_problems(make_checkpoint(tmp_path, 4, weights=False)) == ["no model weights"]
    assert checkpoint_problems(make_checkpoint(tmp_path, 5, state=False)) == ["trainer_state.json missing"]
    assert checkpoint_problems(make_checkpoint(tmp_path, 6, state_step=5)) == [
        "trainer_state.json says step 5, folder says 6"
    ]
    truncated = make_checkpoint(tmp_path, 7)
    (truncated / "trainer_state.json").write_text('{"global_step": 7, "log_hist')
    assert checkpoint_problems(truncated) == ["trainer_state.json unreadable (JSONDecodeError)"]
    assert checkpoint_problems(make_checkpoint(tmp_path, 8, optimizer=False, rng=False), require_optimizer=False) == []


def test_the_newest_complete_checkpoint_wins(tmp_path):
    make_checkpoint(tmp_path, 10)
    make_checkpoint(tmp_path, 20)
    make_checkpoint(tmp_path, 30, optimizer=False)  # killed while saving
    assert last_complete_checkpoint(tmp_path).name == "checkpoint-20"
    assert resolve_resume("auto", tmp_path).endswith("checkpoint-20")
    assert resolve_resume(None, tmp_path) is None
    assert resolve_resume("auto", tmp_path / "nothing-here") is None
    with pytest.raises(ValueError, match="not a complete checkpoint: no optimizer state"):
        resolve_resume(str(tmp_path / "checkpoint-30"), tmp_path)


def test_question_budget_arithmetic(monkeypatch):
    from types import SimpleNamespace

    from ground_r1.cli.train_grpo import apply_question_budget

    monkeypatch.setenv("WORLD_SIZE", "4")
    script = SimpleNamespace(max_train_questions=8000, lr_schedule_span="budget")
    args = SimpleNamespace(
        per_device_train_batch_size=8, num_generations=8, gradient_accumulation_steps=1, max_steps=-1
    )
    # 8 completions / N=8 = 1 question per device, x 4 GPUs x 1 accumulation = 4 questions per step -> 2000 steps
    # (SPEC §5: "2,000 steps on 4 GPUs").
    assert apply_question_budget(script, args) == [] and args.max_steps == 2000
    script.lr_schedule_span, args.max_steps = "epoch", -1
    callbacks = apply_question_budget(script, args)
    assert args.max_steps == -1 and len(callbacks) == 1  # the schedule keeps its span; a callback stops at 2000
