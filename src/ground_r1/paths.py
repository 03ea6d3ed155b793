"""Where the project finds its own things: the repository, the cache of built models, shared data.

Every default path of the project is derived here, so launchers, tests and library code agree.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path | None:
    """The source checkout holding this package (editable install), or None for a wheel install."""
    candidate = PACKAGE_DIR.parent.parent
    if (candidate / "pyproject.toml").is_file() and (candidate / "src" / "ground_r1").is_dir():
        return candidate
    return None


def cache_dir() -> Path:
    """Where built artifacts (the tiny offline model) live: $GROUND_R1_CACHE, else <repo>/.cache,
    else ~/.cache/ground_r1."""
    env = os.environ.get("GROUND_R1_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    root = repo_root()
    if root is not None:
        return root / ".cache"
    return Path.home() / ".cache" / "ground_r1"


def tiny_model_dir() -> Path:
    """The random-weight tiny Qwen2.5-VL that `bash setup.sh` builds (tests use it)."""
    return cache_dir() / "tiny-qwen2.5-vl"


def shared_dir() -> Path | None:
    """The `shared/` folder beside the checkout (SPEC, release-format samples), if present."""
    env = os.environ.get("GROUND_R1_SHARED")
    if env:
        return Path(env).expanduser().resolve()
    root = repo_root()
    if root is not None and (root.parent / "shared").is_dir():
        return root.parent / "shared"
    return None


def tiny_instruct_dir() -> Path:
    """The tiny *instruct* base shipped with the package (built by `ground_r1.demo.instruct_recipe`): the
    default model of the CPU demo. Committed, so a fresh clone starts RL with no training wait."""
    return PACKAGE_DIR / "assets" / "tiny-instruct"
