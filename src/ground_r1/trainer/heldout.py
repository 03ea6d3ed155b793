"""Held-out greedy evaluation during and after training (issue 4, issue 17).

:class:`HeldoutEvaluation` runs ``ground_r1.evaluation.controls`` on the run's first ``heldout_eval_questions``
held-out records with the trainer's rollout settings. :class:`HeldoutCallback` uses it for the early figure a
newcomer waits for: before step 1 (the base model, the reference every later figure is read against) and every
``heldout_eval_steps`` steps, the grounded condition only; its numbers go into that step's log record as
``heldout/accuracy``, ``heldout/accuracy_se``, ``heldout/giou_score``, ``heldout/format`` (metrics.jsonl and the
trackers) and one console line. After training the CLI runs every condition once and writes heldout_eval.json.

One process only: a rank-0-only forward would hang a sharded (ZeRO-3) model; with several processes the CLI says
how to run the evaluation afterwards.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from transformers import TrainerCallback

logger = logging.getLogger("ground_r1.train")

LOGGED_FIELDS = ("accuracy", "accuracy_se", "giou_score", "format")


class HeldoutEvaluation:
    """The held-out records and images of a run, evaluated greedily through the training rollout."""

    def __init__(
        self,
        records: Sequence[dict[str, Any]],
        registry,
        rollout_config,
        sampling,
        seed: int = 0,
        coordinates: str | None = None,
    ):
        from ground_r1.data.images import load_image

        self.records = list(records)
        self.images = [load_image(r["image"]) for r in self.records]
        self.registry, self.rollout_config, self.sampling, self.seed = registry, rollout_config, sampling, seed
        self.coordinates = coordinates  # training's box convention (None: the model family's)

    def run(self, model, processor, conditions: Sequence[str]) -> dict[str, dict[str, float]]:
        import torch

        from ground_r1.evaluation.controls import evaluate_controls

        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return evaluate_controls(
                    model,
                    processor,
                    self.records,
                    self.images,
                    self.registry,
                    self.rollout_config,
                    conditions=conditions,
                    sampling=self.sampling,
                    seed=self.seed,
                    coordinates=self.coordinates,
                )
        finally:
            model.train(was_training)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and value == value


class HeldoutCallback(TrainerCallback):
    """Greedy held-out accuracy before step 1 and every ``every`` steps (module doc). ``trainer`` is set after the
    trainer is built (``attach``)."""

    def __init__(self, evaluation: HeldoutEvaluation, every: int):
        self.evaluation, self.every = evaluation, every
        self.trainer = None
        self.base: dict[str, float] | None = None  # the step-0 figures of this process's run

    def attach(self, trainer) -> "HeldoutCallback":
        self.trainer = trainer
        return self

    def _evaluate(self, step: int) -> dict[str, float]:
        trainer = self.trainer
        model = trainer.accelerator.unwrap_model(trainer.model)
        grounded = self.evaluation.run(model, trainer.processing_class, ["grounded"])["grounded"]
        se = grounded.get("accuracy_se")
        logger.info(
            "held-out (greedy, %d questions) %s: accuracy %.3f%s, GIoU %.3f, format %.2f",
            grounded["questions"],
            "before training (the base model)" if step == 0 else f"at step {step}",
            grounded["accuracy"],
            f" ± {se:.3f}" if se is not None else "",
            grounded["giou_score"],
            grounded["format"],
        )
        return grounded

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step != 0 or self.trainer is None:
            return  # a resumed run: its base figure is in metrics.jsonl already
        self.base = self._evaluate(0)
        self.trainer.log({f"heldout/{k}": self.base[k] for k in LOGGED_FIELDS if _finite(self.base.get(k))})

    def on_step_end(self, args, state, control, **kwargs):
        if self.trainer is None or not self.every or state.global_step % self.every:
            return
        result = self._evaluate(state.global_step)
        # Into this step's log record (the step is logged right after on_step_end): TRL averages the lists of
        # `_metrics` into the record, so the figures land in metrics.jsonl and the trackers with the step's metrics.
        for key in LOGGED_FIELDS:
            if _finite(result.get(key)):
                self.trainer._metrics["train"][f"heldout/{key}"].append(float(result[key]))
