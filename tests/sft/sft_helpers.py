"""Helpers of the SFT tests: the hand-checkable record and its image (expected values derive from these numbers)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

# The hand-checked record (tests derive every expected value from these numbers in comments).
IMAGE_W, IMAGE_H = 1120, 560
EVIDENCE_BOX = [1105, 101, 1115, 112]  # 10 x 11 px, 5 px from the right edge
QUESTION = "Which side is the marker on?\nA. left\nB. right"
SOLUTION = "<answer>B</answer>"
TINY_MIN_PIXELS, TINY_MAX_PIXELS = 3136, 12544


def write_gradient_image(path: Path, width: int = IMAGE_W, height: int = IMAGE_H) -> Path:
    """An RGB image whose pixel (x, y) is (x % 256, y % 256, (x + y) % 256): every crop has distinct content."""
    x = np.arange(width)[None, :].repeat(height, 0)
    y = np.arange(height)[:, None].repeat(width, 1)
    arr = np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "RGB").save(path)
    return path


def record(image: str = "images/page.png", **overrides) -> dict:
    rec = {
        "image": image,
        "width": IMAGE_W,
        "height": IMAGE_H,
        "bboxs": [EVIDENCE_BOX],
        "dataset": "gqa",
        "problem": QUESTION,
        "solution": SOLUTION,
        "split": "train",
        "problem_id": 0,
    }
    rec.update(overrides)
    return rec


def write_records(path: Path, lines: list) -> Path:
    """One line per item: dicts are dumped as JSON, strings written as they are (for broken lines)."""
    path.write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines))
    return path
