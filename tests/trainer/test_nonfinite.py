"""Non-finite steps (trainer.nonfinite): a NaN loss or gradient, injected at a chosen step on the tiny model, is
logged with the batch's record ids and its optimizer step is skipped (weights, Adam state and LR schedule
untouched); later steps train. Policies raise and ignore, the consecutive limit, and the all-reduced flag over
two real gloo processes."""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path

import pytest
import torch

from ground_r1.trainer.nonfinite import FAULT_ENV, NonFiniteGuard, NonFiniteStepError, injected_fault

TINY_PIXELS = dict(min_pixels=3136, max_pixels=12544)
KEY = "q.jsonl:7"


def length_reward(completions, **kwargs):
    """Varies within a group (sampled lengths differ), so advantages and gradients are non-zero."""
    return [len(c) / 100.0 for c in completions]


class Snapshots:
    """Trainable weights after each optimizer step (step 0 = before training)."""

    def __init__(self):
        from transformers import TrainerCallback

        self.weights: dict[int, dict[str, torch.Tensor]] = {}
        outer = self

        class _Cb(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, **kwargs):
                outer.weights[0] = outer.take(model)

            def on_step_end(self, args, state, control, model=None, **kwargs):
                outer.weights[state.global_step] = outer.take(model)

        self.callback = _Cb()

    @staticmethod
    def take(model) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def same(self, a: int, b: int) -> bool:
        return all(torch.equal(self.weights[a][n], self.weights[b][n]) for n in self.weights[a])


@pytest.fixture
def run(tiny_model_dir, tmp_path, monkeypatch):
    """run(fault, **config) -> (trainer, snapshots, events): 3 optimizer steps on one question (key KEY)."""
    from datasets import Dataset
    from PIL import Image

    from ground_r1.config import GroundR1Config
    from ground_r1.models.loading import load_model, load_processor
    from ground_r1.trainer.grpo_trainer import GroundR1Trainer

    def factory(fault: str, max_steps: int = 3, **overrides):
        monkeypatch.setenv(FAULT_ENV, fault)
        image = tmp_path / "img.png"
        Image.new("RGB", (448, 336), (40, 120, 200)).save(image)
        record = dict(
            image=str(image),
            problem="What colour is the dot?",
            solution="red",
            dataset="zoom_synthetic",
            bboxs=[[100.0, 100.0, 200.0, 180.0]],
            key=KEY,
        )
        settings = dict(
            output_dir=str(tmp_path / "out"),
            per_device_train_batch_size=4,
            num_generations=4,
            num_first_round_samples=2,
            max_steps=max_steps,
            max_turns=1,
            max_new_tokens_per_turn=8,
            max_completion_length=64,
            beta=0.0,
            loss_type="grpo",
            learning_rate=1e-2,
            lr_scheduler_type="linear",
            remove_unused_columns=False,
            logging_steps=1,
            report_to=[],
            save_strategy="no",
            use_cpu=True,
            gradient_checkpointing=False,
            bf16=False,
            seed=3,
            **TINY_PIXELS,
        )
        settings.update(overrides)
        snaps = Snapshots()
        trainer = GroundR1Trainer(
            model=load_model(tiny_model_dir),
            reward_funcs=[length_reward],
            args=GroundR1Config(**settings),
            train_dataset=Dataset.from_list([record] * 8),
            processing_class=load_processor(tiny_model_dir, **TINY_PIXELS),
            callbacks=[snaps.callback],
        )
        return trainer, snaps

    return factory


def events(trainer) -> list[dict]:
    path = Path(trainer.args.output_dir) / "nonfinite_steps.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def adam_steps(trainer) -> set[int]:
    """Adam's step counter of every trainable parameter (one value when they all stepped together)."""
    return {int(s["step"]) for s in trainer.optimizer.state.values()}


def test_nan_loss_skips_the_step_logs_the_ids_and_training_goes_on(run, caplog):
    trainer, snaps = run("loss:2")
    trainer.train()
    assert not snaps.same(0, 1)  # step 1 trained (the reward varies, so the gradient is not zero)
    assert snaps.same(1, 2)  # step 2: NaN loss -> no update at all
    assert not snaps.same(2, 3)  # step 3 trained again, with finite weights
    assert all(torch.isfinite(w).all() for w in snaps.weights[3].values())
    # 3 steps, one skipped: Adam stepped twice, and the linear schedule moved twice (of 3): lr = 1e-2 * (1 - 2/3).
    assert adam_steps(trainer) == {2}
    assert trainer.lr_scheduler.get_last_lr()[0] == pytest.approx(1e-2 / 3)
    # The NaN loss back-propagates NaN: the gradient norm of that step is nan as well.
    assert events(trainer) == [
        {
            "step": 2,
            "which": "loss",
            "action": "skipped",
            "policy": "skip",
            "ranks": [0],
            "record_ids": [KEY],
            "loss": ["nan"],
            "grad_norm": "nan",
            "consecutive": 1,
        }
    ]
    assert trainer.nonfinite.skipped_steps == 1 and trainer.nonfinite.consecutive == 0
    assert f"step 2: non-finite loss [nan] on rank(s) [0], records ['{KEY}']" in caplog.text


def test_nan_gradient_skips_the_step(run):
    trainer, snaps = run("grad:1", max_steps=2)
    trainer.train()
    assert snaps.same(0, 1) and not snaps.same(1, 2)
    assert adam_steps(trainer) == {1}
    assert events(trainer) == [
        {
            "step": 1,
            "which": "grad",
            "action": "skipped",
            "policy": "skip",
            "ranks": [0],
            "record_ids": [KEY],
            "loss": None,
            "grad_norm": "nan",
            "consecutive": 1,
        }
    ]


def test_policy_raise_stops_before_the_update_with_a_clear_error(run):
    import signal

    trainer, snaps = run("loss:1", nonfinite_policy="raise")
    before = signal.getsignal(signal.SIGTERM)
    expected = rf"step 1: non-finite loss \['nan'\] on rank\(s\) \[0\], records \['{KEY}'\]"
    with pytest.raises(NonFiniteStepError, match=expected):
        trainer.train()
    assert sorted(snaps.weights) == [0]  # no step ended
    assert [e["action"] for e in events(trainer)] == ["raise"]
    assert signal.getsignal(signal.SIGTERM) == before  # the preemption handler did not outlive train()


def test_consecutive_limit_stops_the_run(run):
    trainer, snaps = run("loss:1,grad:2", max_consecutive_nonfinite_steps=1)
    with pytest.raises(NonFiniteStepError, match=r"2 consecutive optimizer steps \(up to step 2\).*=1\)"):
        trainer.train()
    assert snaps.same(0, 1)  # step 1 skipped; step 2 skipped too, then the error
    assert [(e["step"], e["which"], e["consecutive"]) for e in events(trainer)] == [(1, "loss", 1), (2, "grad", 2)]


def test_policy_ignore_lets_the_nan_into_the_weights(run):
    """What the guard prevents: with 'ignore' the NaN gradient reaches Adam and every updated weight is NaN."""
    trainer, snaps = run("grad:1", max_steps=1, nonfinite_policy="ignore", max_grad_norm=0.0)
    trainer.train()
    assert [e["action"] for e in events(trainer)] == ["applied"]
    assert sum(int(torch.isnan(w).sum()) for w in snaps.weights[1].values()) == 1  # the one poisoned element


def test_hooked_trl_signatures_are_unchanged():
    """The fault hooks override these (beside test_trl_contract's pins): the guard (training_step, compute_loss),
    the checkpoint fault phase (_save_optimizer_and_scheduler) and the resume fixes (train, _load_from_checkpoint)."""
    import inspect

    from trl import GRPOTrainer

    assert str(inspect.signature(GRPOTrainer.training_step)) == "(self, model, inputs, num_items_in_batch)"
    assert str(inspect.signature(GRPOTrainer.compute_loss)) == (
        "(self, model, inputs, return_outputs=False, num_items_in_batch=None)"
    )
    assert str(inspect.signature(GRPOTrainer._save_optimizer_and_scheduler)) == "(self, output_dir: str) -> None"
    assert str(inspect.signature(GRPOTrainer.train)) == (
        "(self, resume_from_checkpoint: str | bool | None = None, trial: 'optuna.Trial | dict[str, Any] | None' = "
        "None, ignore_keys_for_eval: list[str] | None = None) -> transformers.trainer_utils.TrainOutput"
    )
    assert str(inspect.signature(GRPOTrainer._load_from_checkpoint)) == (
        "(self, resume_from_checkpoint: str, model: torch.nn.modules.module.Module | None = None) -> None"
    )


def test_config_rejects_an_unknown_policy():
    from ground_r1.config import GroundR1Config

    expected = r"nonfinite_policy must be one of skip, raise, ignore, got 'skp' \(did you mean 'skip'\?\)"
    with pytest.raises(ValueError, match=expected):
        GroundR1Config(
            output_dir="/tmp/x",
            nonfinite_policy="skp",
            remove_unused_columns=False,
            per_device_train_batch_size=8,
            report_to=[],
        )


def test_fault_spec_parsing(monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "loss:3,grad:5:1")
    assert injected_fault("loss", 3, 0) and injected_fault("loss", 3, 1)
    assert injected_fault("grad", 5, 1) and not injected_fault("grad", 5, 0) and not injected_fault("loss", 4, 0)
    monkeypatch.setenv(FAULT_ENV, "nan:3")
    with pytest.raises(ValueError, match=r"entry 'nan:3' is not loss\|grad:STEP\[:RANK\]"):
        injected_fault("loss", 3, 0)


# -- two real processes over gloo: the flag is all-reduced, every rank skips together ------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_rank_worker(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        log = Path(out) / "nonfinite_steps.jsonl"
        guard = NonFiniteGuard("skip", 5, log, is_main=rank == 0)
        param = torch.nn.Parameter(torch.zeros(2))
        opt = torch.optim.SGD([param], lr=1.0)
        guard.install(opt, lambda: step)
        guard.set_batch_ids([f"r{rank}:a", f"r{rank}:b"])
        history = []
        for step in (1, 2, 3):
            # step 1: only rank 1's loss is NaN; step 2: only rank 0's gradient is NaN; step 3: all finite.
            loss = torch.tensor(float("nan") if (step, rank) == (1, 1) else 1.0)
            guard.check_loss(loss, step)
            param.grad = torch.tensor([float("nan") if (step, rank) == (2, 0) else 1.0, 1.0])
            opt.step()
            history.append(param.detach().tolist())
        (Path(out) / f"rank{rank}.json").write_text(json.dumps({"history": history, "skipped": guard.skipped_steps}))
    finally:
        dist.barrier()  # both ranks done before either tears gloo down (a peer gone mid-teardown aborts: SIGABRT)
        dist.destroy_process_group()
    # Results are on disk. Skip the interpreter's teardown: in the full suite a library thread left joinable at
    # exit made a worker abort ("terminate called without an active exception") after its work was done.
    os._exit(0)


@pytest.mark.slow
def test_two_gloo_ranks_agree_to_skip_when_one_rank_is_non_finite(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_two_rank_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    # Steps 1 and 2 are skipped on both ranks although each fault hit one rank; step 3: SGD lr 1, grad 1 -> -1.
    for rank in (0, 1):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result == {"history": [[0.0, 0.0], [0.0, 0.0], [-1.0, -1.0]], "skipped": 2}
    lines = [json.loads(line) for line in (tmp_path / "nonfinite_steps.jsonl").read_text().splitlines()]
    # Rank 0 writes the log; the ids are those of the rank(s) whose value was not finite.
    assert [(e["step"], e["which"], e["ranks"], e["record_ids"]) for e in lines] == [
        (1, "loss", [1], ["r1:a", "r1:b"]),
        (2, "grad", [0], ["r0:a", "r0:b"]),
    ]
    assert lines[1]["grad_norm"] == "nan" and math.isnan(float(lines[1]["grad_norm"]))
