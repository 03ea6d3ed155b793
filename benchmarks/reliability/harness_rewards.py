"""The kill harness's reward function: a reward that varies within a group, plus a heartbeat and a fault hook.

`varied_length` pays min(len(completion), 120) / 120. The random tiny model never earns the format or accuracy
reward (every group would have zero advantages, a zero loss, and weights that never move, so "the weights after
resume equal the reference's" would hold trivially); sampled lengths differ within a group, so this reward makes
real gradients and real Adam updates that a wrong resume would change.

TRL calls reward functions once per step, after the rollout, with ``trainer_state``; the function uses that to
tell the harness where the run is:

- ``RELIABILITY_HEARTBEAT=PATH``: append ``"<pid> <step> <monotonic time>"`` (step = the step being computed,
  1-based). The harness waits for it to place a kill inside a chosen step.
- ``RELIABILITY_SIGNAL_AT_STEP="STEP:term|kill"``: signal this process at that step (deterministic kills for
  tests).

Used as ``--reward_functions format accuracy harness_rewards:varied_length`` with this folder on PYTHONPATH.
"""

from __future__ import annotations

import os
import signal
import time


def varied_length(completions, trainer_state=None, **kwargs) -> list[float]:
    step = trainer_state.global_step + 1 if trainer_state is not None else 0
    path = os.environ.get("RELIABILITY_HEARTBEAT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()} {step} {time.monotonic():.4f}\n")
    fault = os.environ.get("RELIABILITY_SIGNAL_AT_STEP", "")
    if fault:
        at, _, action = fault.partition(":")
        if int(at) == step:
            os.kill(os.getpid(), signal.SIGKILL if action == "kill" else signal.SIGTERM)
    return [min(len(c), 120) / 120.0 for c in completions]
