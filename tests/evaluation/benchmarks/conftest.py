"""Helpers for benchmark tests: write hand-made release-format JSONL files and placeholder images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from PIL import Image


def make_placeholder_image(path: Path) -> None:
    """A tiny real image file at ``path`` (format from the extension; PNG when it has none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), "PNG")
    Image.new("RGB", (4, 4), (128, 64, 32)).save(path, format=fmt)


@pytest.fixture
def write_benchmark(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    """``write_benchmark(file_name, records, images=True) -> (jsonl_path, dataset_root)``.

    Records are dicts (written as JSON lines) or raw strings (written as they are, for malformed
    lines). With ``images``, a placeholder is created for every record's ``Image`` under the root.
    """

    def write(name: str, records: list[Any], *, images: bool = True) -> tuple[Path, Path]:
        root = tmp_path / "images_root"
        root.mkdir(exist_ok=True)
        path = tmp_path / name
        lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        if images:
            for record in records:
                if isinstance(record, dict) and isinstance(record.get("Image"), str):
                    target = root / record["Image"]
                    if not target.suffix:
                        target = target.with_name(target.name + ".jpg")
                    if not target.exists():
                        make_placeholder_image(target)
        return path, root

    return write


@pytest.fixture
def placeholder_image() -> Callable[[Path], None]:
    """The placeholder-image writer, for tests that lay out images themselves."""
    return make_placeholder_image
