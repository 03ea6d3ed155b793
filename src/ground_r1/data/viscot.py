"""Convert the upstream Visual-CoT format (what users download) into our flat records (SPEC §6).

Upstream item (``shared/data/viscot-original-format/benchmark.sample.json``)::

    {"dataset": "cub", "split": "val", "question_id": 7,
     "image": ["cot/cub/.../x.jpg", "cot/cub/.../x.jpg###[141, 87, 397, 298]"],
     "conversations": [
       {"from": "human", "value": "<image>\\n<question> Please provide the bounding box coordinate of the
                                   region that can help you answer the question better."},
       {"from": "gpt", "value": "[0.282, 0.316, 0.794, 0.738]"},   # the box, normalised 0-1 (not used)
       {"from": "human", "value": "<image>"},                       # the crop
       {"from": "gpt", "value": "No"}]}                             # the answer

Record written (key order of the release's files)::

    {"image": "cot/cub/.../x.jpg", "width": W, "height": H, "bboxs": [[141, 87, 397, 298]],
     "dataset": "cub", "split": "val", "problem": "<question>", "solution": "No", "problem_id": 7}

- ``problem``: the first human turn without the ``<image>`` marker and without the trailing box request.
- ``solution``: the last gpt turn; ``bboxs``: the pixel box(es) after ``###`` (the normalised box turn is
  redundant and rounded, so it is ignored).
- ``image`` stays the relative upstream path (portable: the loader joins it with ``image_root``);
  ``width``/``height`` are read from the image header when the file is found under ``image_root``, else
  left out (the loader reads or reports them later).

Bad items are reported by line (JSONL) or item number (JSON list) with the reason; the output is written
atomically, and only when every item converted or ``skip_bad_records`` is set.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ground_r1.data.images import ImageLoadError, image_size
from ground_r1.data.records import ValidationIssue, resolve_image_path

logger = logging.getLogger(__name__)

# The box request appended to every upstream question (checked on all 26 samples: exactly this sentence,
# after one space). Matched leniently (coordinate/coordinates, can/could, optional period).
_BOX_REQUEST = re.compile(
    r"\s*Please provide the bounding box coordinates? of the region that (?:can|could) help you answer the "
    r"question better\.?\s*$"
)
_IMAGE_MARKER = re.compile(r"^\s*<image>\s*")


@dataclass
class ConvertReport:
    """Outcome of :func:`convert_viscot`."""

    input_path: str
    output_path: str
    total: int = 0  # non-blank items read
    count: int = 0  # records converted (written when ``written``)
    written: bool = False
    without_size: int = 0  # records whose image was not found, so width/height were left out
    bad: list[ValidationIssue] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"{self.input_path}: {self.total} item(s) read, {self.count} converted, {len(self.bad)} bad; "
            + (f"written to {self.output_path}" if self.written else "nothing written"),
        ]
        if self.without_size:
            lines.append(f"{self.without_size} record(s) without width/height (image not found under image_root)")
        lines += [f"  {issue}" for issue in self.bad[:50]]
        if len(self.bad) > 50:
            lines.append(f"  ... and {len(self.bad) - 50} more")
        return "\n".join(lines)


class _BadItem(ValueError):
    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


def _read_items(path: Path) -> tuple[str, Iterator[tuple[int, Any, str | None]], int | None]:
    """(unit, iterator of (number, item or None, JSON error or None), total if known).

    A file whose first non-blank character is ``[`` is one JSON list (upstream ships these); anything else
    is JSONL.
    """
    with path.open(encoding="utf-8") as fh:
        head = fh.read(4096).lstrip()
    if head.startswith("["):
        with path.open(encoding="utf-8") as fh:
            try:
                items = json.load(fh)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{path}:{exc.lineno}: invalid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno}); the file starts with "
                    "'[' so it is read as one JSON list"
                ) from exc
        return "item", ((i, item, None) for i, item in enumerate(items, start=1)), len(items)

    def lines() -> Iterator[tuple[int, Any, str | None]]:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    yield lineno, json.loads(line), None
                except json.JSONDecodeError as exc:
                    yield lineno, None, f"invalid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})"

    return "line", lines(), None


def _parse_box(text: str) -> list[float | int]:
    try:
        box = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _BadItem("image", f"box after '###' is not a JSON list: {text!r}") from exc
    ok = (
        isinstance(box, list)
        and len(box) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)
    )
    if not ok:
        raise _BadItem("image", f"box after '###' must be 4 finite numbers [x1, y1, x2, y2], got {text!r}")
    return box


def convert_item(item: Any) -> dict[str, Any]:
    """One upstream item as a record (without width/height); raises _BadItem (a ValueError) with the field."""
    if not isinstance(item, dict):
        raise _BadItem("record", f"expected a JSON object, got {type(item).__name__}")
    for name in ("image", "conversations", "dataset"):
        if name not in item:
            raise _BadItem(name, "missing required field")

    image = item["image"]
    if isinstance(image, str):
        image = [image]
    if not isinstance(image, list) or not image or not all(isinstance(v, str) for v in image):
        raise _BadItem("image", f"expected a list of strings [path, 'path###[x1, y1, x2, y2]'], got {image!r}")
    path = image[0].split("###")[0].strip()
    boxes = [_parse_box(part.strip()) for entry in image for part in entry.split("###")[1:]]
    if not path:
        raise _BadItem("image", "empty image path")

    conv = item["conversations"]
    if not isinstance(conv, list) or not all(
        isinstance(t, dict) and isinstance(t.get("from"), str) and isinstance(t.get("value"), str) for t in conv
    ):
        raise _BadItem("conversations", "expected a list of {'from': str, 'value': str} turns")
    if len(conv) < 4 or conv[0]["from"] != "human" or conv[-1]["from"] != "gpt":
        roles = [t["from"] for t in conv]
        raise _BadItem("conversations", f"expected human question, gpt box, human crop, gpt answer; got roles {roles}")
    question = _BOX_REQUEST.sub("", _IMAGE_MARKER.sub("", conv[0]["value"], count=1)).strip()
    answer = conv[-1]["value"].strip()
    if not question:
        raise _BadItem("conversations", "empty question in the first human turn")

    dataset = item["dataset"]
    if not isinstance(dataset, str) or not dataset.strip():
        raise _BadItem("dataset", f"expected a non-empty string, got {dataset!r}")
    split = item.get("split")
    if split is not None and not isinstance(split, str):
        raise _BadItem("split", f"expected a string, got {split!r}")

    record: dict[str, Any] = {"image": path, "bboxs": boxes, "dataset": dataset}
    if split is not None:
        record["split"] = split
    record["problem"] = question
    record["solution"] = answer
    if "question_id" in item:
        record["problem_id"] = item["question_id"]
    return record


def _with_size(record: dict[str, Any], image_root: str | os.PathLike[str] | None) -> bool:
    """Put width/height (after EXIF orientation) first after ``image`` when the image is found."""
    try:
        width, height = image_size(resolve_image_path(record["image"], image_root))
    except ImageLoadError:
        return False
    ordered = {"image": record.pop("image"), "width": width, "height": height}
    ordered.update(record)
    record.clear()
    record.update(ordered)
    return True


def convert_viscot(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    progress: bool = True,
    skip_bad_records: bool = False,
) -> ConvertReport:
    """Convert an upstream Visual-CoT file (JSON list or JSONL) to a records JSONL at ``out_path``.

    Every bad item is reported (``report.bad``, by line/item number, with the field and reason). The output
    is written (atomically) when there are no bad items, or with ``skip_bad_records`` (good items only);
    otherwise nothing is written and ``report.written`` is False.
    """
    src, dst = Path(in_path), Path(out_path)
    if not src.is_file():
        raise FileNotFoundError(f"Visual-CoT file not found: '{src}'")
    report = ConvertReport(str(src), str(dst))
    unit, items, total = _read_items(src)
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, total=total, desc=f"converting {src.name}", unit="item")

    records: list[dict[str, Any]] = []
    for number, item, json_error in items:
        report.total += 1
        try:
            if json_error is not None:
                raise _BadItem("json", json_error)
            record = convert_item(item)
        except _BadItem as exc:
            report.bad.append(ValidationIssue(str(src), number, exc.field, str(exc), unit))
            continue
        if not _with_size(record, image_root):
            report.without_size += 1
        records.append(record)
    report.count = len(records)

    if report.bad and not skip_bad_records:
        return report
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, dst)
    report.written = True
    if report.without_size:
        logger.warning(
            "%d of %d record(s) have no width/height: their image was not found under image_root=%s",
            report.without_size,
            report.count,
            image_root,
        )
    return report
