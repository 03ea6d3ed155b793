"""File readers, one per on-disk layout of the zoom-in benchmarks (V* Bench, HR-Bench, TreeBench; issue 18).

A reader only turns a file (or folder) into :class:`RawRecord` s: a record's fields as the layout stores them,
where it came from (``source`` and 1-based ``line``) and the problems of reading it (invalid JSON, a short TSV
row). It does not judge the fields: that is the spec's validation (:mod:`.zoom`), so one validation serves every
layout of a benchmark. Layouts (``../shared/data/thinking-with-images/README.md`` describes each):

- :func:`read_vstar_folder`: V*'s official folder, ``direct_attributes/`` and ``relative_position/`` each holding
  ``sa_<id>.json`` beside ``sa_<id>.jpg``; one record per JSON (``line`` 1), its folder as ``category``, its image
  the same-stem file. The official script iterates exactly these two folders (``GPT4V-hard/``, ``OCR/`` are not
  part of the 191 questions).
- :func:`read_jsonl`: one JSON object per line (V*'s HF ``test_questions.jsonl``, ZoomEye's annotation files).
- :func:`read_tsv`: VLMEvalKit's TSV (HR-Bench, TreeBench): a header row, one row per record, the ``image`` column
  base64. Images are never decoded here: the cell is replaced by an :class:`EmbeddedImage` holding where the row
  is and what its first bytes say (a JPEG/PNG signature, checked from the first 64 base64 characters), so a
  1.9 GB file is read in one streaming pass and no image stays in memory. A short all-digit ``image`` cell is
  VLMEvalKit's reference to the row of that ``index`` holding the image (rows 4k..4k+3 of HR-Bench share one).
- :func:`read_parquet`: the HF parquet twins (needs pyarrow); an image column of bytes or ``{"bytes": ...}``.

:func:`materialize_images` writes the embedded images the evaluation needs to image files, in one more pass,
only those not already written (VLMEvalKit's ``dump_image`` layout, ``images/<file stem>/<row>.<ext>`` beside the data file, the row being the
one that holds the bytes).
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = [
    "VSTAR_FOLDERS",
    "EmbeddedImage",
    "RawRecord",
    "embedded_image_kind",
    "materialize_images",
    "read_jsonl",
    "read_parquet",
    "read_tsv",
    "read_vstar_folder",
]

VSTAR_FOLDERS = ("direct_attributes", "relative_position")
_SIGNATURES = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"GIF8", ".gif"), (b"BM", ".bmp"),
               (b"RIFF", ".webp"))
_REFERENCE_MAX_CHARS = 64  # VLMEvalKit: an image cell this short is the index of the row holding the image


@dataclass
class EmbeddedImage:
    """An image stored inside a data file (TSV base64 cell, parquet bytes), not decoded yet.

    ``row`` is the 0-based data row holding the bytes (for a reference cell: the row of the referenced index, set
    by the reader once the file is read); ``suffix`` the extension its signature gives ("" when unknown);
    ``problem`` why it cannot be an image (None when its first bytes look like one)."""

    source: str
    row: int
    index: str
    suffix: str = ""
    problem: str | None = None
    reference: str | None = None  # the index a reference cell names


@dataclass
class RawRecord:
    """One record as its layout stores it. ``problems``: ``(field, why)`` found while reading (the record is
    skipped when any); ``image``: the file the layout pairs with the record (V* folder), or an embedded image."""

    source: Path
    line: int
    fields: dict[str, Any]
    problems: list[tuple[str, str]] = field(default_factory=list)
    image: Path | EmbeddedImage | None = None


def read_vstar_folder(root: Path) -> Iterator[RawRecord]:
    """Every ``{folder}/*.json`` of V*'s two evaluation folders, sorted by folder then file name.

    Raises:
        FileNotFoundError: neither folder exists under ``root`` (naming both).
    """
    folders = [root / name for name in VSTAR_FOLDERS if (root / name).is_dir()]
    if not folders:
        raise FileNotFoundError(f"V* folder layout not found under {root}: expected {' and '.join(VSTAR_FOLDERS)}/ "
                                "(the HF craigwu/vstar_bench folder)")
    for folder in folders:
        for path in sorted(folder.glob("*.json"), key=lambda p: p.name):
            problems: list[tuple[str, str]] = []
            fields: dict[str, Any] = {}
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    fields = data
                else:
                    problems.append(("record", f"expected a JSON object, got {type(data).__name__}"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                problems.append(("json", f"invalid JSON ({err})"))
            fields["category"] = folder.name
            image = next((path.with_suffix(ext) for ext in (".jpg", ".jpeg", ".png") if path.with_suffix(ext).is_file()),
                         path.with_suffix(".jpg"))
            yield RawRecord(path, 1, fields, problems, image)


def read_jsonl(path: Path) -> Iterator[RawRecord]:
    """One record per non-blank line (``line`` 1-based)."""
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                yield RawRecord(path, line_no, {}, [("json", f"invalid JSON ({err})")])
                continue
            if not isinstance(record, dict):
                yield RawRecord(path, line_no, {}, [("record", f"expected a JSON object, got {type(record).__name__}")])
                continue
            yield RawRecord(path, line_no, record)


def embedded_image_kind(head: bytes) -> str | None:
    """The file extension an image's first bytes give (``.jpg``, ``.png``, ...), None when none matches."""
    return next((suffix for signature, suffix in _SIGNATURES if head.startswith(signature)), None)


def _check_base64(cell: str) -> tuple[str, str | None]:
    """(suffix, problem) of a base64 image cell, from its first 64 characters only (no full decode)."""
    head = cell[:64].strip()
    try:
        decoded = base64.b64decode(head[: len(head) - len(head) % 4], validate=True)
    except (binascii.Error, ValueError):
        return "", f"not base64 (starts {cell[:24]!r})"
    kind = embedded_image_kind(decoded)
    if kind is None:
        return "", f"base64 that is no JPEG/PNG/GIF/BMP/WebP image (first bytes {decoded[:8]!r})"
    return kind, None


def _embedded(source: Path, row: int, index: str, cell: Any) -> EmbeddedImage:
    if not isinstance(cell, str) or not cell.strip():
        return EmbeddedImage(str(source), row, index, problem=f"expected a base64 image, got {str(cell)[:24]!r}")
    text = cell.strip()
    if len(text) <= _REFERENCE_MAX_CHARS and text.isdigit():
        return EmbeddedImage(str(source), row, index, reference=text)
    suffix, problem = _check_base64(text)
    return EmbeddedImage(str(source), row, index, suffix, problem)


def _resolve_references(records: list[RawRecord]) -> None:
    """Point each reference cell at the row holding the referenced index's bytes (VLMEvalKit's convention)."""
    holders = {r.image.index: r.image for r in records
               if isinstance(r.image, EmbeddedImage) and r.image.reference is None}
    for record in records:
        image = record.image
        if isinstance(image, EmbeddedImage) and image.reference is not None:
            target = holders.get(image.reference)
            if target is None:
                image.problem = f"refers to the image of index {image.reference}, which no row holds"
            else:
                image.row, image.suffix, image.problem = target.row, target.suffix, target.problem


def _raise_csv_limit() -> None:
    limit = sys.maxsize
    while True:  # the largest field size the platform's C long accepts (a 4K image is ~3 MB of base64)
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 10


def read_tsv(path: Path, image_column: str = "image") -> list[RawRecord]:
    """Every data row of a VLMEvalKit TSV, its ``image`` cell an :class:`EmbeddedImage` (see the module doc);
    ``line`` is the row's first physical line (the header is line 1)."""
    _raise_csv_limit()
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
            problems = []
            if len(row) != len(header):
                problems.append(("row", f"{len(row)} tab-separated cells, the header has {len(header)}"))
            fields = dict(zip(header, row))
            image = None
            if image_column in fields:
                image = _embedded(path, row_no, str(fields.get("index", row_no)).strip(), fields.pop(image_column))
            records.append(RawRecord(path, line, fields, problems, image))
    _resolve_references(records)
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
        records.append(RawRecord(path, row_no + 1, fields, [], image))
    if image_column in names:
        for record, head in zip(records, _parquet_image_heads(path, image_column)):
            image = record.image
            if isinstance(head, str) and len(head.strip()) <= _REFERENCE_MAX_CHARS and head.strip().isdigit():
                image.reference = head.strip()
            elif isinstance(head, str):
                image.suffix, image.problem = _check_base64(head)
            elif isinstance(head, (bytes, bytearray)):
                kind = embedded_image_kind(bytes(head))
                image.suffix = kind or ""
                image.problem = None if kind else f"bytes that are no image (first bytes {bytes(head[:8])!r})"
            else:
                image.problem = f"expected image bytes or base64, got {type(head).__name__}"
        _resolve_references(records)
    return records


def _parquet_cell_bytes(cell: Any) -> Any:
    if isinstance(cell, dict):  # the HF `Image` feature: {"bytes": ..., "path": ...}
        return cell.get("bytes")
    return cell


def _parquet_image_heads(path: Path, image_column: str) -> Iterator[Any]:
    """The first 64 bytes/characters of every row's image cell, one record batch at a time."""
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(columns=[image_column], batch_size=64):
        for cell in batch.column(0).to_pylist():
            value = _parquet_cell_bytes(cell)
            yield value[:64] if isinstance(value, (str, bytes, bytearray)) else value


def _decode_cell(cell: Any) -> bytes:
    value = _parquet_cell_bytes(cell)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return base64.b64decode(str(value).strip())


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def materialize_images(wanted: Iterable[tuple[EmbeddedImage, Path]], image_column: str = "image") -> int:
    """Decode each ``(embedded image, target file)`` not written yet, one streaming pass per data file; returns how
    many files were written. Several targets may share a row (one image for 4 rotations).

    Raises:
        OSError: a target folder that cannot be written (naming it).
    """
    by_source: dict[str, dict[int, list[Path]]] = {}
    for image, target in wanted:
        targets = by_source.setdefault(image.source, {}).setdefault(image.row, [])
        if not target.is_file() and target not in targets:
            targets.append(target)
    written = 0
    for source, rows in by_source.items():
        path = Path(source)
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            row_no = 0
            for batch in pq.ParquetFile(path).iter_batches(columns=[image_column], batch_size=16):
                for cell in batch.column(0).to_pylist():
                    for target in rows.get(row_no, []):
                        _write_atomic(target, _decode_cell(cell))
                        written += 1
                    row_no += 1
            continue
        _raise_csv_limit()
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t")
            header = next(reader)
            column = header.index(image_column)
            for row_no, row in enumerate(reader):
                for target in rows.get(row_no, []):
                    _write_atomic(target, _decode_cell(row[column]))
                    written += 1
    return written
