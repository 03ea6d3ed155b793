"""Placeholder benchmark folders for the zoom-in benchmarks (issue 18), for end-to-end runs.

- :func:`vstar_folder`: V*'s official layout from the real annotations (shared/data/thinking-with-images-full),
  each image a flat JPEG just large enough to hold all its boxes (the annotations carry no size);
- :func:`hrbench_zoomeye`: ZoomEye's HR-Bench 4K JSONL (real, copied) and a placeholder ``image/<index>.jpg`` each;
- :func:`treebench_tsv`: a hand-made ``TreeBench.tsv`` in the official columns (no real record exists), images base64.

    python tests/evaluation/zoom_fixtures.py /tmp/zoom      # writes vstar/, hrbench4k/, treebench/
"""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path

from PIL import Image


def _full_dir() -> Path:
    from ground_r1.paths import shared_dir

    return Path(shared_dir()) / "data" / "thinking-with-images-full"


def vstar_folder(root: Path, limit: int | None = None) -> Path:
    records = json.loads((_full_dir() / "vstar_bench.annotations.json").read_text())
    for n, (rel, record) in enumerate(records.items()):
        if limit is not None and n >= limit:
            break
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
        width = max(int(b[0] + b[2]) for b in record["bbox"]) + 8
        height = max(int(b[1] + b[3]) for b in record["bbox"]) + 8
        if not path.with_suffix(".jpg").exists():
            Image.new("RGB", (width, height), (120, 120, 120)).save(path.with_suffix(".jpg"), quality=50)
    return root


def hrbench_zoomeye(root: Path, limit: int | None = None) -> Path:
    source = _full_dir() / "hr-bench_4k.zoomeye.jsonl"
    lines = source.read_text().splitlines()[:limit]
    root.mkdir(parents=True, exist_ok=True)
    (root / source.name).write_text("\n".join(lines) + "\n")
    for line in lines:
        record = json.loads(line)
        path = root / record["input_image"]
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            Image.new("RGB", (96, 64), (record["index"] % 256, 80, 40)).save(path, quality=50)
    return root


def _b64_jpeg(size: tuple[int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 90, 160)).save(buffer, format="JPEG", quality=50)
    return base64.b64encode(buffer.getvalue()).decode()


TREEBENCH_ROWS = (  # (question, options, answer, category, targets xyxy, image size)
    (
        "Which object is red?",
        "A. the cup\nB. the box\nC. the pen\nD. the hat",
        "A",
        "Perception/Attributes",
        [[40, 30, 120, 90]],
        (320, 240),
    ),
    (
        "What is left of the cup?",
        "A. a box\nB. a pen\nC. a hat\nD. nothing",
        "B",
        "Reasoning/Ordering",
        [[10, 10, 60, 60], [200, 100, 300, 200]],
        (320, 240),
    ),
    (
        "Recognize the question and options in the image and answer it.",
        "A. 1\nB. 2\nC. 3\nD. 4",
        "C",
        "Perception/OCR",
        [[0, 0, 100, 50]],
        (200, 100),
    ),
    ("Is the lid on the jar?", "A. yes\nB. no", "A", "Reasoning/Contact and Occlusion", [], (160, 120)),
)


def treebench_tsv(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    header = ["index", "question", "multi-choice options", "answer", "category", "target_instances", "image"]
    lines = ["\t".join(header)]
    for index, (question, options, answer, category, targets, size) in enumerate(TREEBENCH_ROWS):
        quoted = '"' + options.replace('"', '""') + '"'
        lines.append("\t".join([str(index), question, quoted, answer, category, str(targets), _b64_jpeg(size)]))
    (root / "TreeBench.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


if __name__ == "__main__":
    out = Path(sys.argv[1])
    vstar_folder(out / "vstar")
    hrbench_zoomeye(out / "hrbench4k")
    treebench_tsv(out / "treebench")
    print(out)
