"""Non-finite steps: a NaN/inf loss or gradient is detected, logged with the batch's record ids, and (by default)
the optimizer step is skipped instead of writing NaN into the weights.

Where it hooks into the transformers 5.23 loop (per optimizer step: `training_step` x gradient accumulation
[forward -> `compute_loss` -> backward], clip, `optimizer.step()`, `lr_scheduler.step()` unless
`accelerator.optimizer_step_was_skipped`, `zero_grad`, `global_step += 1`):

- loss: `GroundR1Trainer.compute_loss` hands each micro-batch's loss to :meth:`NonFiniteGuard.check_loss`
  before backward. The backward still runs (skipping it would desynchronise DDP's reducer and DeepSpeed's
  engine); a flagged accumulation window is thrown away at the step.
- gradients: :meth:`NonFiniteGuard.install` wraps the prepared optimizer's `step`. Before the real step it
  computes the gradient norm; when it, or any loss of the window, is not finite, the step is skipped: no
  optimizer update, gradients zeroed, and the accelerate optimizer marked "step skipped" so the Trainer does
  not advance the LR schedule either (the mechanism mixed precision uses for overflow). `global_step` still
  advances: the batch was consumed.
- ranks: each decision is a MAX all-reduce of the local flag (:func:`any_rank`), so every rank skips, raises
  or goes on together; a rank that stepped alone would diverge, and under ZeRO-3 the next collective hangs.
- DeepSpeed: the engine steps inside `accelerator.backward`, before the Trainer's (no-op) `optimizer.step()`.
  ZeRO-2 (`check_grad_overflow`, on by default) and ZeRO-3 (always, deepspeed 0.19.8) skip a step whose global
  gradient norm is not finite, LR schedule included; the guard reads that verdict (`step_was_skipped`) as its
  gradient check and logs it. So under DeepSpeed "skip" is DeepSpeed's own skip, "ignore" cannot force the
  update, and a non-finite loss (whose gradients are non-finite) is skipped by DeepSpeed; a step DeepSpeed
  applied despite a flagged loss is logged as "applied".

Policies (`GroundR1Config.nonfinite_policy`): ``skip`` (default), ``raise`` (stop with
:class:`NonFiniteStepError` at detection: a loss before its backward), ``ignore`` (log only; the update goes
through, the plain HF behaviour). ``max_consecutive_nonfinite_steps`` (default 5, 0 = no limit) stops a run
whose weights have stopped moving.

Each event is a WARNING and a line of ``OUTPUT_DIR/nonfinite_steps.jsonl`` (main process)::

    {"step", "which": "loss"|"grad", "action": "skipped"|"applied"|"raise", "policy",
     "ranks": [...], "record_ids": [...], "loss": [...], "grad_norm": float|null, "consecutive"}

``ranks`` / ``record_ids``: for a loss, the ranks whose loss was not finite and the question keys (``file:line``)
of their generation batches; for a gradient (already reduced over ranks), every rank that saw it and its keys.

Test-only fault hook: ``GROUND_R1_FAULT_NONFINITE="loss:STEP[:RANK],grad:STEP[:RANK]"`` makes the loss (times
NaN, so its gradients are NaN too) or one gradient element NaN at optimizer step STEP (1-based, as logged).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

logger = logging.getLogger(__name__)

POLICIES = ("skip", "raise", "ignore")
LOG_NAME = "nonfinite_steps.jsonl"
FAULT_ENV = "GROUND_R1_FAULT_NONFINITE"


class NonFiniteStepError(RuntimeError):
    """A non-finite loss or gradient under policy "raise", or too many consecutive skipped steps."""


def policy_problem(policy: str, max_consecutive: int) -> list[str]:
    """Config problems of the two settings ([] when valid)."""
    import difflib

    problems = []
    if policy not in POLICIES:
        close = difflib.get_close_matches(str(policy), POLICIES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"nonfinite_policy must be one of {', '.join(POLICIES)}, got {policy!r}{hint}")
    if max_consecutive < 0:
        problems.append(f"max_consecutive_nonfinite_steps must be >= 0 (0 = no limit), got {max_consecutive}")
    return problems


# -- collectives (no-ops in a single process) -------------------------------------------------------------------


def _world() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _rank() -> int:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def any_rank(flag: bool, device: torch.device | str | None = None) -> bool:
    """True on every rank when `flag` is true on any rank (MAX all-reduce; nccl needs `device` on the GPU)."""
    if _world() == 1:
        return bool(flag)
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_lists(items: Sequence[Any]) -> list[Any]:
    """Every rank's `items`, concatenated in rank order, on every rank."""
    if _world() == 1:
        return list(items)
    import torch.distributed as dist

    parts: list[Any] = [None] * _world()
    dist.all_gather_object(parts, list(items))
    return [x for part in parts for x in part]


# -- fault injection (tests and benchmarks/reliability) ---------------------------------------------------------


def injected_fault(which: str, step: int, rank: int) -> bool:
    """Whether `GROUND_R1_FAULT_NONFINITE` asks for a non-finite `which` ("loss"/"grad") at (step, rank).

    Raises:
        ValueError: a malformed entry.
    """
    text = os.environ.get(FAULT_ENV, "")
    for entry in filter(None, (e.strip() for e in text.split(","))):
        parts = entry.split(":")
        if len(parts) not in (2, 3) or parts[0] not in ("loss", "grad") or not all(p.isdigit() for p in parts[1:]):
            raise ValueError(f"{FAULT_ENV}={text!r}: entry {entry!r} is not loss|grad:STEP[:RANK]")
        if parts[0] == which and int(parts[1]) == step and (len(parts) == 2 or int(parts[2]) == rank):
            return True
    return False


def gradient_norm(params: Sequence[torch.nn.Parameter]) -> float:
    """The total 2-norm of the parameters' gradients (nan/inf when any element is not finite; 0.0 with none)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.nn.utils.get_total_norm(grads, norm_type=2.0))


def _is_deepspeed(optimizer: Any) -> bool:
    try:
        from accelerate.utils.deepspeed import DeepSpeedOptimizerWrapper
    except ImportError:  # pragma: no cover - accelerate always ships it
        return False
    return isinstance(optimizer, DeepSpeedOptimizerWrapper)


# -- the guard --------------------------------------------------------------------------------------------------


class NonFiniteGuard:
    """Detects non-finite losses and gradients of a run and applies the policy (module docstring).

    Args:
        policy: "skip", "raise" or "ignore".
        max_consecutive: stop after this many consecutive skipped steps (0 = never).
        log_path: the JSONL event log (written by the main process only); None = no file.
        is_main: whether this process writes the log and the warnings.
        device: where the all-reduced flag lives (the accelerator's device: nccl needs a GPU tensor).
        agree / gather: the collectives (defaults: :func:`any_rank`, :func:`gather_lists`); tests pass fakes.

    Raises:
        ValueError: an unknown policy or a negative limit.
    """

    def __init__(
        self,
        policy: str = "skip",
        max_consecutive: int = 5,
        log_path: str | os.PathLike[str] | None = None,
        is_main: bool = True,
        device: torch.device | str | None = None,
        agree: Callable[[bool], bool] | None = None,
        gather: Callable[[Sequence[Any]], list[Any]] | None = None,
    ) -> None:
        problems = policy_problem(policy, max_consecutive)
        if problems:
            raise ValueError("; ".join(problems))
        self.policy = policy
        self.max_consecutive = max_consecutive
        self.log_path = Path(log_path) if log_path is not None else None
        self.is_main = is_main
        self.agree = agree if agree is not None else (lambda flag: any_rank(flag, device))
        self.gather = gather if gather is not None else gather_lists
        self.consecutive = 0
        self.skipped_steps = 0
        self.events: list[dict[str, Any]] = []
        self._batch_ids: list[str] = []
        self._window_loss: list[dict[str, Any]] = []  # flagged ranks' loss details of the current step

    def set_batch_ids(self, ids: Sequence[Any]) -> None:
        """The record ids of this rank's current generation batch (the question keys)."""
        self._batch_ids = [str(i) for i in ids]

    # -- loss: one call per micro-batch, before backward ----------------------------------------------------------
    def check_loss(self, loss: torch.Tensor, step: int) -> torch.Tensor:
        """Check a micro-batch loss of optimizer step `step` (1-based); returns the loss to back-propagate.

        Raises:
            NonFiniteStepError: policy "raise" and the loss is not finite on some rank (on every rank).
        """
        if injected_fault("loss", step, _rank()):
            loss = loss * float("nan")
        local_bad = not bool(torch.isfinite(loss.detach()).all())
        if not self.agree(local_bad):
            return loss
        value = float(loss.detach().float().mean())
        details = self.gather([{"rank": _rank(), "ids": self._batch_ids, "loss": value}] if local_bad else [])
        self._window_loss.extend(details)
        if self.policy == "raise":
            event = self._event(step, "loss", "raise", None)
            raise NonFiniteStepError(
                f"step {step}: non-finite loss {event['loss']} on rank(s) {event['ranks']}, records "
                f"{event['record_ids']} (nonfinite_policy=raise; 'skip' would skip the step and go on). Logged to "
                f"{self.log_path}"
            )
        if self.is_main:
            logger.warning(
                "step %d: non-finite loss %s on rank(s) %s, records %s: %s",
                step,
                [d["loss"] for d in details],
                [d["rank"] for d in details],
                _ids(details),
                "the optimizer step will be skipped" if self.policy == "skip" else "logged only (policy ignore)",
            )
        return loss

    # -- gradients: around the optimizer step ---------------------------------------------------------------------
    def install(self, optimizer: Any, step_fn: Callable[[], int]) -> None:
        """Wrap `optimizer.step` (the accelerate-prepared optimizer the Trainer steps); idempotent.
        `step_fn()` gives the 1-based number of the step being taken."""
        if getattr(optimizer, "_ground_r1_nonfinite_guard", None) is self:
            return
        original = optimizer.step

        def guarded_step(*args: Any, **kwargs: Any) -> Any:
            return self._on_optimizer_step(optimizer, original, step_fn(), args, kwargs)

        # Keep the marks torch's LR scheduler put on the step it wrapped (else it warns "overridden").
        optimizer.step = functools.update_wrapper(guarded_step, original, assigned=(), updated=("__dict__",))
        optimizer._ground_r1_nonfinite_guard = self

    def _on_optimizer_step(self, optimizer: Any, original: Callable, step: int, args: tuple, kwargs: dict) -> Any:
        deepspeed = _is_deepspeed(optimizer)
        if deepspeed:  # the engine already stepped (or skipped) inside backward
            norm = None
            local_bad = bool(optimizer.step_was_skipped)
        else:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            if injected_fault("grad", step, _rank()):
                first = next((p for p in params if p.grad is not None), None)
                if first is not None:
                    first.grad.view(-1)[0] = float("nan")
            norm = gradient_norm(params)
            local_bad = not math.isfinite(norm)
        grad_bad = self.agree(local_bad)
        if not grad_bad and not self._window_loss:
            self.consecutive = 0
            return self._step(optimizer, original, args, kwargs, deepspeed)
        which = "loss" if self._window_loss else "grad"
        grad_details = self.gather([{"rank": _rank(), "ids": self._batch_ids, "grad_norm": norm}] if local_bad else [])
        if self.policy == "raise":
            event = self._event(step, which, "raise", grad_details)
            raise NonFiniteStepError(
                f"step {step}: non-finite {which} on rank(s) {event['ranks']}, records {event['record_ids']} "
                f"(nonfinite_policy=raise; 'skip' would skip the step and go on). Logged to {self.log_path}"
            )
        if deepspeed:
            skipped = bool(optimizer.step_was_skipped)
        else:
            skipped = self.policy == "skip"
        self.consecutive = self.consecutive + 1 if skipped else 0
        self.skipped_steps += int(skipped)
        event = self._event(step, which, "skipped" if skipped else "applied", grad_details)
        result = None
        if skipped and not deepspeed:
            optimizer.zero_grad(set_to_none=True)
            optimizer._is_overflow = True  # accelerate's "step skipped": the Trainer leaves the LR schedule alone
        elif not deepspeed:
            result = self._step(optimizer, original, args, kwargs, deepspeed)
        if self.is_main:
            logger.warning(
                "step %d: non-finite %s on rank(s) %s, records %s: optimizer step %s",
                step,
                which,
                event["ranks"],
                event["record_ids"],
                "SKIPPED (weights, optimizer state and LR schedule unchanged)"
                if skipped
                else "APPLIED" + (" by DeepSpeed" if deepspeed else " (policy ignore)"),
            )
        if self.max_consecutive and self.consecutive > self.max_consecutive:
            raise NonFiniteStepError(
                f"{self.consecutive} consecutive optimizer steps (up to step {step}) had a non-finite loss or "
                f"gradient (max_consecutive_nonfinite_steps={self.max_consecutive}): the weights have stopped "
                f"moving. The records are in {self.log_path}; lower the learning rate, check those records, or "
                "train in fp32/bf16 instead of fp16"
            )
        return result

    def _step(self, optimizer: Any, original: Callable, args: tuple, kwargs: dict, deepspeed: bool) -> Any:
        self._window_loss = []
        if not deepspeed and getattr(optimizer, "scaler", None) is None and hasattr(optimizer, "_is_overflow"):
            optimizer._is_overflow = False  # a previous skip set it; accelerate resets it only with a grad scaler
        return original(*args, **kwargs)

    def _event(self, step: int, which: str, action: str, grad_details: list[dict] | None) -> dict[str, Any]:
        """Record one event (JSON line on the main process) and clear the window."""
        # A flagged loss names the ranks whose loss was not finite; a gradient (reduced over ranks: every rank sees
        # it) names every rank whose check failed.
        details = self._window_loss if which == "loss" else (grad_details or [])
        event = {
            "step": step,
            "which": which,
            "action": action,
            "policy": self.policy,
            "ranks": sorted({d["rank"] for d in details}),
            "record_ids": _ids(details),
            "loss": [json_safe(d["loss"]) for d in self._window_loss] or None,
            "grad_norm": json_safe(
                next((d["grad_norm"] for d in grad_details or [] if d.get("grad_norm") is not None), None)
            ),
            "consecutive": self.consecutive,
        }
        self._window_loss = []
        self.events.append(event)
        if self.is_main and self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(event) + "\n")
        return event


def _ids(details: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for d in details:
        for i in d["ids"]:
            seen.setdefault(i, None)
    return list(seen)


def json_safe(value: float | None) -> float | str | None:
    """nan/inf as strings (JSON has no such numbers)."""
    if value is None or math.isfinite(value):
        return value
    return str(value)
