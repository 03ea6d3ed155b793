"""One console line per step (issue 17): TRL's metric dict is not printed, everything still reaches metrics.jsonl."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

from transformers.trainer_callback import PrinterCallback, ProgressCallback

from ground_r1.trainer.callbacks import MetricsJsonlCallback, quiet_console


def test_quiet_console_removes_the_callbacks_that_print_the_metric_dict(make_trainer):
    trainer = make_trainer()
    assert any(isinstance(cb, (ProgressCallback, PrinterCallback)) for cb in trainer.callback_handler.callbacks)
    quiet_console(trainer)
    assert not any(isinstance(cb, (ProgressCallback, PrinterCallback)) for cb in trainer.callback_handler.callbacks)


def test_each_step_logs_one_console_line_and_every_metric_to_metrics_jsonl(tmp_path, caplog):
    callback = MetricsJsonlCallback(tmp_path)
    args, control = SimpleNamespace(), SimpleNamespace()
    caplog.set_level(logging.INFO, logger="ground_r1.train")
    logs = {
        "reward": 1.5,
        "rewards/format_reward/mean": 1.5,
        "rollout/turns_mean": 2.0,
        "loss": 0.0,
        "clip_ratio/low_mean": 0.0,
        "num_tokens": 1234.0,
    }
    for step in (1, 2):
        callback.on_log(
            args, SimpleNamespace(is_world_process_zero=True, global_step=step, max_steps=4), control, logs=dict(logs)
        )
    # A held-out record before step 1 (its own line was printed by the held-out callback) adds no step line.
    callback.on_log(
        args,
        SimpleNamespace(is_world_process_zero=True, global_step=2, max_steps=4),
        control,
        logs={"heldout/accuracy": 0.25},
    )
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("step 1/4 reward=1.500 format=1.500 turns=2.000 loss=0.000 t=")
    assert "eta=" in lines[1] and "clip_ratio" not in lines[1]  # the line keeps the key metrics only
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[0] == {"step": 1, **logs} and records[2] == {"step": 2, "heldout/accuracy": 0.25}
