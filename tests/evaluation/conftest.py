"""Fixtures for evaluation tests: a scripted OpenAI-compatible chat server on 127.0.0.1 (no network)."""

from __future__ import annotations

from typing import Iterator

import pytest

# tests/ has no __init__.py: pytest puts this folder on sys.path, so the helper imports by its module name.
from fake_chat_server import FakeChatServer


@pytest.fixture
def fake_chat_server() -> Iterator[FakeChatServer]:
    """A started :class:`FakeChatServer` answering ``score: 1.0`` until a test scripts it
    (``server.script([...])`` or ``server.set_policy(fn)``); stopped after the test."""
    with FakeChatServer() as server:
        yield server


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    """The tiny random model in eval mode and its processor (112-px view), loaded once per module."""
    from ground_r1.models.loading import load_model, load_processor

    return load_model(tiny_model_dir).eval(), load_processor(tiny_model_dir, min_pixels=3136, max_pixels=12544)
