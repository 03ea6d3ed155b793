"""Fixtures of the SFT tests: a VisCoT records file with one hand-checkable record, and the tiny processor."""

from __future__ import annotations

from pathlib import Path

import pytest

from .sft_helpers import TINY_MAX_PIXELS, TINY_MIN_PIXELS, record, write_gradient_image, write_records


@pytest.fixture
def records_file(tmp_path) -> Path:
    """data/records.jsonl holding the hand-checked record, its image at data/images/page.png."""
    write_gradient_image(tmp_path / "data" / "images" / "page.png")
    return write_records(tmp_path / "data" / "records.jsonl", [record()])


@pytest.fixture(scope="module")
def tiny_processor(tiny_model_dir):
    from ground_r1.models.loading import load_processor

    return load_processor(tiny_model_dir, min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS)
