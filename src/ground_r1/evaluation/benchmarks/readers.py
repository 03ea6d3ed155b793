"""Reading a benchmark file, one reader per layout, apart from validating its records.

A reader turns a file into :class:`RawRecord` s: each one a record as the file holds it, or why it cannot be read
(not UTF-8, not JSON, not an object), always with where it is (file and line). What a record must hold is the
benchmark spec's business (:meth:`~ground_r1.evaluation.benchmarks.spec.BenchmarkSpec.read` validates each one); a
reader never drops a record silently. A spec names its layout (``BenchmarkSpec.layout``); a new layout (a folder of
per-image JSON files, a TSV with base64 images) is one more reader registered in :data:`READERS`.

- ``jsonl``: one JSON object per line, the release's layout and ours (also V*'s HF ``test_questions.jsonl`` and
  ZoomEye's annotation files); blank lines are skipped, and a line that is not UTF-8 or not JSON is that line's
  problem.
- ``vstar_folder``: V*'s official folder, ``direct_attributes/`` and ``relative_position/`` each holding
  ``sa_<id>.json`` beside ``sa_<id>.jpg``; one record per JSON (``line`` 1), its folder as ``category``, its image
  the same-stem file (``RawRecord.image``). The official script iterates exactly these two folders (``GPT4V-hard/``,
  ``OCR/`` are not part of the 191 questions).
- ``tsv``: VLMEvalKit's TSV (HR-Bench, TreeBench): a header row, one row per record, the ``image`` column base64,
  never decoded here: the cell becomes an :class:`~.embedded_images.EmbeddedImage` (``RawRecord.image``).
- ``parquet``: the HF parquet twins (needs pyarrow); an image column of bytes or ``{"bytes": ...}``, the same.

``../shared/data/thinking-with-images/README.md`` describes the zoom-in benchmarks' layouts.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ground_r1.evaluation.benchmarks.embedded_images import (
    REFERENCE_MAX_CHARS,
    EmbeddedImage,
    check_base64,
    embedded_cell,
    embedded_image_kind,
    parquet_image_heads,
    raise_csv_limit,
    resolve_references,
)

__all__ = [
    "READERS",
    "VSTAR_FOLDERS",
    "RawRecord",
    "read_jsonl",
    "read_parquet",
    "read_tsv",
    "read_vstar_folder",
    "reader",
]

VSTAR_FOLDERS = ("direct_attributes", "relative_position")


@dataclass
class RawRecord:
    """One record as a file holds it (``record``), or why it cannot be read (``problem``: field, why); ``image``: the
    image file the layout pairs with the record (V*'s folder), or an image embedded in the file (TSV, parquet)."""

    file: str
    line: int
    record: dict[str, Any] | None = None
    problem: tuple[str, str] | None = None
    image: Path | EmbeddedImage | None = None


def read_jsonl(path: Path) -> Iterator[RawRecord]:
    """One record per non-blank line, read as bytes so that a line which is not UTF-8 is that line's problem."""
    with path.open("rb") as handle:
        for line_no, raw_bytes in enumerate(handle, start=1):
            try:
                raw = raw_bytes.decode("utf-8")
            except UnicodeDecodeError as err:
                yield RawRecord(str(path), line_no, problem=("json", f"not valid UTF-8 ({err.reason})"))
                continue
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as err:
                why = f"invalid JSON ({err.msg.removesuffix(' at')} at column {err.colno})"
                yield RawRecord(str(path), line_no, problem=("json", why))
                continue
            if not isinstance(record, dict):
                yield RawRecord(
                    str(path), line_no, problem=("record", f"expected a JSON object, got {type(record).__name__}")
                )
                continue
            yield RawRecord(str(path), line_no, record=record)


def read_vstar_folder(root: Path) -> Iterator[RawRecord]:
    """Every ``{folder}/*.json`` of V*'s two evaluation folders, sorted by folder then file name.

    Raises:
        FileNotFoundError: neither folder exists under ``root`` (naming both).
    """
    folders = [root / name for name in VSTAR_FOLDERS if (root / name).is_dir()]
    if not folders:
        raise FileNotFoundError(
            f"V* folder layout not found under {root}: expected {' and '.join(VSTAR_FOLDERS)}/ "
            "(the HF craigwu/vstar_bench folder)"
        )
    for folder in folders:
        for path in sorted(folder.glob("*.json"), key=lambda p: p.name):
            image = next(
                (path.with_suffix(e) for e in (".jpg", ".jpeg", ".png") if path.with_suffix(e).is_file()),
                path.with_suffix(".jpg"),
            )
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                yield RawRecord(str(path), 1, problem=("json", f"invalid JSON ({err})"))
                continue
            if not isinstance(data, dict):
                yield RawRecord(str(path), 1, problem=("record", f"expected a JSON object, got {type(data).__name__}"))
                continue
            yield RawRecord(str(path), 1, {**data, "category": folder.name}, image=image)


def read_tsv(path: Path, image_column: str = "image") -> list[RawRecord]:
    """Every data row of a VLMEvalKit TSV, its ``image`` cell an :class:`EmbeddedImage` (see the module doc);
    ``line`` is the row's first physical line (the header is line 1)."""
    raise_csv_limit()
    records: list[RawRecord] = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = next(reader, None)
        if header is None:
            return records
        start = reader.line_num + 1
        for row_no, row in enumerate(reader):
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            problem = None
            if len(row) != len(header):
                problem = ("row", f"{len(row)} tab-separated cells, the header has {len(header)}")
            fields = dict(zip(header, row))
            image = None
            if image_column in fields:
                image = embedded_cell(path, row_no, str(fields.get("index", row_no)).strip(), fields.pop(image_column))
            records.append(RawRecord(str(path), line, None if problem else fields, problem, image))
    resolve_references(records)
    return records


def read_parquet(path: Path, image_column: str = "image") -> list[RawRecord]:
    """Every row of a parquet file (``line`` = row number + 1), the image column an :class:`EmbeddedImage`.

    Raises:
        ImportError: pyarrow is not installed (naming what to install or the TSV to use instead).
    """
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow is a transformers/datasets dependency here
        raise ImportError(f"reading {path} needs pyarrow (pip install pyarrow), or give the benchmark's TSV") from exc
    names = pq.read_schema(path).names
    table = pq.read_table(path, columns=[c for c in names if c != image_column])
    records = []
    for row_no, fields in enumerate(table.to_pylist()):
        image = EmbeddedImage(str(path), row_no, str(fields.get("index", row_no))) if image_column in names else None
        records.append(RawRecord(str(path), row_no + 1, fields, image=image))
    if image_column in names:
        for record, head in zip(records, parquet_image_heads(path, image_column)):
            image = record.image
            if isinstance(head, str) and len(head.strip()) <= REFERENCE_MAX_CHARS and head.strip().isdigit():
                image.reference = head.strip()
            elif isinstance(head, str):
                image.suffix, image.problem = check_base64(head)
            elif isinstance(head, (bytes, bytearray)):
                kind = embedded_image_kind(bytes(head))
                image.suffix = kind or ""
                image.problem = None if kind else f"bytes that are no image (first bytes {bytes(head[:8])!r})"
            else:
                image.problem = f"expected image bytes or base64, got {type(head).__name__}"
        resolve_references(records)
    return records


READERS: dict[str, Callable[[Path], Iterable[RawRecord]]] = {
    "jsonl": read_jsonl,
    "vstar_folder": read_vstar_folder,
    "tsv": read_tsv,
    "parquet": read_parquet,
}


def reader(layout: str) -> Callable[[Path], Iterable[RawRecord]]:
    """The reader of ``layout``.

    Raises:
        ValueError: an unknown layout (the known ones are listed).
    """
    if layout not in READERS:
        raise ValueError(f"unknown benchmark file layout {layout!r}; known: {', '.join(READERS)}")
    return READERS[layout]
