"""The run manifest: resolved configuration, git commit, package versions (OUTPUT_DIR/run_manifest.json).

Secrets never enter it: keys that look like credentials are replaced by "***" (issue: API keys are never
saved with checkpoints or configs)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from ground_r1 import paths

PACKAGES = ("ground_r1", "torch", "transformers", "trl", "accelerate", "datasets", "deepspeed", "peft", "flash-attn")
_SECRET_WORDS = ("api_key", "apikey", "token", "secret", "password", "hub_token")


def scrub(value):
    """Replace values under secret-looking keys, recursively."""
    if isinstance(value, dict):
        return {k: ("***" if any(w in str(k).lower() for w in _SECRET_WORDS) and v not in (None, "", False)
                    and not isinstance(v, (int, float)) else scrub(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


def git_commit() -> str | None:
    root = paths.repo_root()
    if root is None:
        return None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def scrub_argv(argv: list[str]) -> list[str]:
    """Command-line values after secret-looking flags (`--hub_token X`, `--api_key=X`) become "***"."""
    out, hide_next = [], False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        secret = flag.startswith("-") and any(w in flag.lower() for w in _SECRET_WORDS)
        if secret and eq:
            out.append(flag + "=***")
        else:
            out.append(arg)
            hide_next = secret
    return out


def _as_dict(obj):
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if is_dataclass(obj):
        return asdict(obj)
    return dict(obj)


def write_manifest(output_dir: str | Path, argv: list[str], **sections) -> Path:
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "created": datetime.now(timezone.utc).isoformat(),
        "command": [sys.executable, "-m", "ground_r1.cli.train_grpo", *scrub_argv(argv)],
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        **{name: scrub(_as_dict(obj)) for name, obj in sections.items()},
    }
    path = output_dir / "run_manifest.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path
