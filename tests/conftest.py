"""Shared fixtures. The tiny model is built once per test session (or reused from the setup.sh cache)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ground_r1 import paths  # noqa: E402


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`shared/` beside the checkout (CI has it there). Release-format samples are read from it, never copied."""
    found = paths.shared_dir()
    if found is None:
        pytest.fail("shared/ not found beside the checkout (set GROUND_R1_SHARED): CI always has it")
    return found


@pytest.fixture(scope="session")
def release_format_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "release-format"


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The tiny random-weight Qwen2.5-VL: the setup.sh cache if built, else built once for this session."""
    from ground_r1.demo import tiny

    return tiny.ensure_tiny_model(paths.tiny_model_dir())
