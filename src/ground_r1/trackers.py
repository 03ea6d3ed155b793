"""Experiment trackers of `report_to` (wandb, tensorboard): checked before any work, logging into the run folder.

transformers builds a tracker's callback only when the trainer is constructed, after the data is validated and the
model loaded, and a tracker that is missing or cannot log in fails there. :func:`check_trackers` makes the same
decision at the start of a run and names the fix: the install command (both are in requirements.txt, installed by
setup.sh), or for wandb without an API key, `wandb login` / `WANDB_API_KEY`, or `WANDB_MODE=offline`.

:func:`tracker_environment` puts the trackers' files in the run folder unless told otherwise: wandb writes
`OUTPUT_DIR/wandb/` (`WANDB_DIR`; project `ground-r1` unless `WANDB_PROJECT`), tensorboard
`OUTPUT_DIR/runs/<date>_<host>/` (transformers' default; `TENSORBOARD_LOGGING_DIR` overrides). Offline,
`WANDB_MODE=offline` writes a run that `wandb sync OUTPUT_DIR/wandb/offline-run-*` uploads later.
"""

from __future__ import annotations

import importlib.util
import netrc
import os
from pathlib import Path
from typing import Iterable
from urllib.parse import urlparse

# The versions requirements.txt pins (installed with the stack by setup.sh).
INSTALL = {"wandb": "pip install wandb==0.31.0", "tensorboard": "pip install tensorboard==2.21.0"}
OFFLINE_WANDB_MODES = ("offline", "disabled", "dryrun")


class TrackerError(RuntimeError):
    """A tracker of `report_to` cannot start; the message says what to do."""


def _names(report_to: Iterable[str] | str | None) -> list[str]:
    if report_to is None:
        return []
    names = [report_to] if isinstance(report_to, str) else list(report_to)
    return [n for n in names if n and n != "none"]


def _get(environ, key: str, default: str = "") -> str:
    """One variable, by name (``environ`` None: the process environment; tests pass a dict)."""
    return os.environ.get(key, default) if environ is None else environ.get(key, default)


def _set(environ, key: str, value: str) -> None:
    if environ is None:
        os.environ[key] = value
    else:
        environ[key] = value


def _wandb_has_key(environ) -> bool:
    if _get(environ, "WANDB_API_KEY"):
        return True
    host = urlparse(_get(environ, "WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc(_get(environ, "NETRC") or None).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def check_trackers(report_to: Iterable[str] | str | None, environ=None) -> list[str]:
    """The trackers that will log; raises TrackerError for one that cannot start (module doc)."""
    names = _names(report_to)
    problems = []
    for name in names:
        if name == "wandb":
            if importlib.util.find_spec("wandb") is None:
                problems.append(f"--report_to wandb: wandb is not installed: {INSTALL['wandb']} (or bash setup.sh)")
            elif _get(environ, "WANDB_MODE").lower() not in OFFLINE_WANDB_MODES and not _wandb_has_key(environ):
                problems.append(
                    "--report_to wandb: no wandb API key (WANDB_API_KEY, or `wandb login`); or log "
                    "locally with WANDB_MODE=offline and upload later with `wandb sync OUTPUT_DIR/wandb`"
                )
        elif name == "tensorboard":
            if importlib.util.find_spec("tensorboard") is None:
                problems.append(
                    f"--report_to tensorboard: tensorboard is not installed: {INSTALL['tensorboard']} "
                    "(or bash setup.sh)"
                )
    if problems:
        raise TrackerError("a tracker of report_to cannot start:\n  - " + "\n  - ".join(problems))
    return names


def tracker_environment(
    report_to: Iterable[str] | str | None, output_dir: str | os.PathLike[str], environ=None
) -> dict:
    """Set the wandb defaults of the module doc (values already set win); returns what was set."""
    set_now = {}
    if "wandb" in _names(report_to):
        for key, value in (("WANDB_DIR", str(Path(output_dir).resolve())), ("WANDB_PROJECT", "ground-r1")):
            if not _get(environ, key):
                _set(environ, key, value)
                set_now[key] = value
        Path(_get(environ, "WANDB_DIR")).mkdir(parents=True, exist_ok=True)
    return set_now
