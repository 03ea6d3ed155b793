"""Which checkpoint a run resumes from: the last *complete* one, never a half-written one.

The HF Trainer writes `checkpoint-N/` file by file (weights, optimizer, scheduler, RNG, then
trainer_state.json) with no atomic rename, so a kill can leave a folder that looks like a checkpoint. A folder
counts as complete when:

- `trainer_state.json` parses and its `global_step` equals N (it is written after everything else);
- model weights are present (safetensors, an index whose shards all exist, or a DeepSpeed-saved bin);
- unless the run saves weights only: the optimizer state (`optimizer.pt`, or a DeepSpeed `global_step*` folder)
  and at least one RNG state file.

`GroundR1Trainer` brackets every save with markers: `IN_PROGRESS` before anything is written, renamed to
`COMPLETE` after all ranks finished (a barrier). A folder holding `IN_PROGRESS` is never complete, whatever
files it has: under several ranks rank 0's `trainer_state.json` can be on disk while another rank is still
writing its shard, and a kill right before the rename leaves exactly that. Folders written by a plain HF
Trainer (no markers) are judged by the file checks alone; the checks also run on marked folders (a disk can
lose files after the fact).

Preemption (SIGTERM, what SLURM and Kubernetes send before SIGKILL): `Preemption` turns the signal into "stop
at the end of the current step with a complete checkpoint, then exit 143", with the decision agreed by all
ranks. `checkpoint_fault` is the test-only fault hook that kills a run at chosen points inside a save.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import threading
from pathlib import Path
from typing import Callable

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "COMPLETE"
IN_PROGRESS_MARKER = "IN_PROGRESS"
PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM: what a shell reports for a process ended by SIGTERM
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_problems(folder: str | Path, require_optimizer: bool = True) -> list[str]:
    """Why `folder` is not a complete checkpoint ([] when it is)."""
    folder = Path(folder)
    problems: list[str] = []
    if (folder / IN_PROGRESS_MARKER).exists():
        problems.append(f"the save was interrupted ({IN_PROGRESS_MARKER} marker, never renamed to {COMPLETE_MARKER})")
    m = _CHECKPOINT_RE.match(folder.name)
    state_file = folder / "trainer_state.json"
    try:
        state = json.loads(state_file.read_text())
        step = int(state["global_step"])
        if m and step != int(m.group(1)):
            problems.append(f"trainer_state.json says step {step}, folder says {m.group(1)}")
    except FileNotFoundError:
        problems.append("trainer_state.json missing")
    except (OSError, ValueError, KeyError, TypeError) as err:
        problems.append(f"trainer_state.json unreadable ({type(err).__name__})")
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                problems.append(f"weight shards missing: {sorted(missing)[:3]}")
        except (OSError, ValueError, KeyError) as err:
            problems.append(f"model.safetensors.index.json unreadable ({type(err).__name__})")
    elif not any(
        (folder / name).is_file() for name in ("model.safetensors", "pytorch_model.bin", "adapter_model.safetensors")
    ):
        problems.append("no model weights")
    if require_optimizer:
        has_optimizer = (folder / "optimizer.pt").is_file() or any(p.is_dir() for p in folder.glob("global_step*"))
        if not has_optimizer:
            problems.append("no optimizer state")
        if not any(folder.glob("rng_state*.pth")):
            problems.append("no RNG state")
    return problems


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """checkpoint-N folders of a run, oldest first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def last_complete_checkpoint(output_dir: str | Path, require_optimizer: bool = True) -> Path | None:
    """The newest complete checkpoint of a run, or None. Incomplete newer ones are logged and skipped."""
    for folder in reversed(list_checkpoints(output_dir)):
        problems = checkpoint_problems(folder, require_optimizer=require_optimizer)
        if not problems:
            return folder
        logger.warning("skipping incomplete checkpoint %s: %s", folder, "; ".join(problems))
    return None


def mark_in_progress(folder: str | Path) -> None:
    """Before a save writes anything into `folder`: drop a stale `COMPLETE` (the folder is being rewritten, e.g.
    after resuming from an earlier checkpoint), then write `IN_PROGRESS`. A kill between the two leaves neither
    marker and the old, untouched files, which the file checks judge."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / COMPLETE_MARKER).unlink(missing_ok=True)
    (folder / IN_PROGRESS_MARKER).write_text("saving\n")


def mark_complete(folder: str | Path) -> None:
    """Mark `folder` complete atomically: rename `IN_PROGRESS` to `COMPLETE` (or write it through a temporary
    file when the save was not bracketed)."""
    folder = Path(folder)
    pending = folder / IN_PROGRESS_MARKER
    if pending.exists():
        pending.write_text("ok\n")  # still named IN_PROGRESS: a kill here leaves the folder incomplete
        pending.replace(folder / COMPLETE_MARKER)
        return
    tmp = folder / (COMPLETE_MARKER + ".tmp")
    tmp.write_text("ok\n")
    tmp.replace(folder / COMPLETE_MARKER)


def resolve_resume(value: str | bool | None, output_dir: str | Path, require_optimizer: bool = True) -> str | None:
    """`--resume_from_checkpoint` semantics: None/false -> fresh; "auto"/true -> the last complete checkpoint of
    output_dir (fresh if none); a path -> that checkpoint, which must be complete.

    Raises:
        ValueError: an explicit path that is not a complete checkpoint (says what is missing).
    """
    if value in (None, False, "", "false", "False", "none", "None"):
        return None
    if value in (True, "auto", "true", "True", "last"):
        found = last_complete_checkpoint(output_dir, require_optimizer=require_optimizer)
        if found is None:
            logger.info("no complete checkpoint in %s: starting fresh", output_dir)
            return None
        logger.info("resuming from %s", found)
        return str(found)
    problems = checkpoint_problems(value, require_optimizer=require_optimizer)
    if problems:
        raise ValueError(f"--resume_from_checkpoint {value} is not a complete checkpoint: " + "; ".join(problems))
    return str(value)


# -- preemption: SIGTERM -> a complete checkpoint at the end of the step -> exit 143 -------------------------------


class TrainingPreempted(SystemExit):
    """Raised after the checkpoint of a SIGTERM-ed run is complete; exits the process with 143 unless caught."""

    def __init__(self, step: int, folder: str | Path | None):
        super().__init__(PREEMPTED_EXIT_CODE)
        self.step = step
        self.folder = folder


class Preemption:
    """Turns SIGTERM into a clean, resumable stop.

    The handler only sets a flag (and says so). At the end of each optimizer step the ranks agree on it
    (`agree`, an all-reduced "any rank"; ranks get the signal at slightly different times and must stop at
    the same step or the next collective hangs); when set, the trainer saves a checkpoint of that step, marks it
    complete and raises `TrainingPreempted` (exit 143). A SIGTERM that lands while a checkpoint is being
    written lets the save finish, then exits the same way. A second SIGTERM exits at once (the default action):
    use it when the step itself hangs.
    """

    def __init__(self) -> None:
        self.requested = False
        self.stopping = False
        self._previous = None
        self._installed = False

    def install(self) -> None:
        """Set the SIGTERM handler (main thread only: Python allows handlers nowhere else)."""
        if self._installed or threading.current_thread() is not threading.main_thread():
            return
        self._previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, self._on_sigterm)
        self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous if self._previous is not None else signal.SIG_DFL)
            self._installed = False

    def _on_sigterm(self, signum, frame) -> None:
        if self.requested:
            logger.warning("second SIGTERM: exiting now, without a checkpoint of the current step")
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        self.requested = True
        logger.warning(
            "SIGTERM: finishing the current step, then saving a checkpoint and exiting with %d "
            "(send SIGTERM again to exit at once)",
            PREEMPTED_EXIT_CODE,
        )

    def stop_agreed(self, agree: Callable[[bool], bool]) -> bool:
        """Whether the run stops now; every rank must call this at the same points (`agree` is a collective)."""
        if not self.stopping and agree(self.requested):
            self.stopping = True
        return self.stopping

    def exit_after_checkpoint(self, step: int, folder: str | Path | None) -> None:
        """Raise `TrainingPreempted` (the checkpoint of `step` is complete)."""
        self.uninstall()
        logger.warning(
            "stopped by SIGTERM after step %d; checkpoint %s is complete. Resume with RESUME=1 (launcher) or "
            "--resume_from_checkpoint auto",
            step,
            folder,
        )
        raise TrainingPreempted(step, folder)


def preemption_callback(preemption: Preemption, agree: Callable[[bool], bool]):
    """The TrainerCallback that installs the handler for the length of `train()` and asks for a save and a stop
    at the end of the step in which all ranks agree that SIGTERM arrived."""
    from transformers import TrainerCallback

    class PreemptionCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            preemption.install()

        def on_step_end(self, args, state, control, **kwargs):
            if preemption.stop_agreed(agree):
                control.should_save = True
                control.should_training_stop = True

        def on_train_end(self, args, state, control, **kwargs):
            preemption.uninstall()

    return PreemptionCallback()


# -- test-only fault hook: kill a run at a chosen point inside a checkpoint save -----------------------------------

FAULT_ENV = "GROUND_R1_FAULT_CHECKPOINT"
LEGACY_KILL_ENV = "GROUND_R1_KILL_AFTER_CHECKPOINT"  # = "N:after:kill"
FAULT_PHASES = ("begin", "weights", "marker", "after")
FAULT_ACTIONS = {"kill": signal.SIGKILL, "term": signal.SIGTERM}


def parse_faults(text: str) -> list[tuple[int, str, str]]:
    """`STEP:PHASE:ACTION[,...]` -> [(step, phase, action)].

    Phases of the save of checkpoint-STEP: `begin` (only the IN_PROGRESS marker written), `weights` (model
    weights written; optimizer, scheduler, RNG and trainer state not yet), `marker` (every file written, before
    the barrier and the COMPLETE rename), `after` (COMPLETE written). Actions: `kill` (SIGKILL: the process dies
    at that point) and `term` (SIGTERM: the preemption path).

    Raises:
        ValueError: a malformed entry (the valid phases and actions are listed).
    """
    faults = []
    for entry in filter(None, (e.strip() for e in text.split(","))):
        parts = entry.split(":")
        if len(parts) != 3 or not parts[0].isdigit() or parts[1] not in FAULT_PHASES or parts[2] not in FAULT_ACTIONS:
            raise ValueError(
                f"{FAULT_ENV}={text!r}: entry {entry!r} is not STEP:PHASE:ACTION with PHASE in {FAULT_PHASES} and "
                f"ACTION in {tuple(FAULT_ACTIONS)}"
            )
        faults.append((int(parts[0]), parts[1], parts[2]))
    return faults


def checkpoint_fault(step: int, phase: str) -> None:
    """Send the configured signal to this process when (step, phase) matches `GROUND_R1_FAULT_CHECKPOINT` (or
    the older `GROUND_R1_KILL_AFTER_CHECKPOINT=N`). Tests and benchmarks/reliability only; no-op when unset."""
    faults = parse_faults(os.environ.get(FAULT_ENV, ""))
    legacy = os.environ.get(LEGACY_KILL_ENV)
    if legacy:
        faults.append((int(legacy), "after", "kill"))
    for fault_step, fault_phase, action in faults:
        if (fault_step, fault_phase) == (step, phase):
            logger.warning("fault injection: %s at checkpoint-%d phase %r", action, step, phase)
            os.kill(os.getpid(), FAULT_ACTIONS[action])
