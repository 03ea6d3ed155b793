"""Which checkpoint a run resumes from: the last *complete* one, never a half-written one.

The HF Trainer writes `checkpoint-N/` file by file (weights, optimizer, scheduler, RNG, then
trainer_state.json) with no atomic rename, so a kill can leave a folder that looks like a checkpoint. A folder
counts as complete when:

- `trainer_state.json` parses and its `global_step` equals N (it is written after everything else);
- model weights are present (safetensors, an index whose shards all exist, or a DeepSpeed-saved bin);
- unless the run saves weights only: the optimizer state (`optimizer.pt`, or a DeepSpeed `global_step*` folder)
  and at least one RNG state file.

`GroundR1Trainer` also writes `COMPLETE` into a folder after all ranks finished saving it; the checks above
still run on it (a disk can lose files after the fact).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "COMPLETE"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_problems(folder: str | Path, require_optimizer: bool = True) -> list[str]:
    """Why `folder` is not a complete checkpoint ([] when it is)."""
    folder = Path(folder)
    problems: list[str] = []
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
    elif not any((folder / name).is_file() for name in ("model.safetensors", "pytorch_model.bin", "adapter_model.safetensors")):
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


def mark_complete(folder: str | Path) -> None:
    """Write the marker atomically (temp file + rename)."""
    folder = Path(folder)
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
