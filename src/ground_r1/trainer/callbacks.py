"""Run outputs written during training: `metrics.jsonl` (every logged metric, one line per log step) and one
human-readable line per step with the key metrics (docs/metrics.md defines them).

The console gets that one line per step and nothing else per step: :func:`quiet_console` removes transformers'
progress bar and printer callbacks (the bar's `write(str(logs))` printed TRL's whole metric dict every step,
323 KB for the demo) and its weight-loading/saving bars. Every metric still goes to metrics.jsonl and to the
trackers of `report_to`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

from transformers import TrainerCallback

logger = logging.getLogger("ground_r1.train")

STEP_LINE_KEYS = (
    ("reward", "reward"),
    ("rewards/format_reward/mean", "format"),
    ("rewards/accuracy_reward/mean", "acc"),
    ("giou/score", "giou"),
    ("rollout/turns_mean", "turns"),
    ("completions/mean_length", "len"),
    ("frac_reward_zero_std", "zero_std"),
    ("loss", "loss"),
    ("kl", "kl"),
)


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan"/"inf": JSON has no such numbers
    return value


class MetricsJsonlCallback(TrainerCallback):
    """Appends each log event to OUTPUT_DIR/metrics.jsonl (main process only) and prints a step line."""

    def __init__(self, output_dir: str | Path):
        self.path = Path(output_dir) / "metrics.jsonl"
        self._start = time.perf_counter()
        self._first_step: int | None = None
        self._first_time = self._start

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"step": state.global_step, **{k: _jsonable(v) for k, v in logs.items()}}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if "train_runtime" in logs:
            logger.info("training done: %d steps in %.1f s", state.global_step, logs["train_runtime"])
            return
        if not any(key in logs for key, _ in STEP_LINE_KEYS):
            return  # e.g. the held-out figure logged before step 1: its own line was printed
        if self._first_step is None:
            self._first_step, self._first_time = state.global_step, time.perf_counter()
        parts = [f"step {state.global_step}/{state.max_steps}"]
        for key, short in STEP_LINE_KEYS:
            if key in logs:
                parts.append(
                    f"{short}={logs[key]:.3f}" if isinstance(logs[key], (int, float)) else f"{short}={logs[key]}"
                )
        elapsed = time.perf_counter() - self._start
        parts.append(f"t={elapsed:.0f}s")
        done = state.global_step - self._first_step
        if done > 0 and state.max_steps > state.global_step:  # the rate since the first logged step of this run
            per_step = (time.perf_counter() - self._first_time) / done
            parts.append(f"eta={per_step * (state.max_steps - state.global_step):.0f}s")
        logger.info(" ".join(parts))


def quiet_console(trainer) -> None:
    """One console line per step (module doc): drop HF's ProgressCallback / PrinterCallback and the progress bars
    of weight loading and saving. Call after the trainer is built."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.utils import logging as hf_logging

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    hf_logging.disable_progress_bar()
