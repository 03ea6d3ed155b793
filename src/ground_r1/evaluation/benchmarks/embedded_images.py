"""Images stored inside a benchmark's data file (VLMEvalKit's TSV base64 cells, the HF parquet twins' bytes):
checked by their first bytes when the file is read, decoded to files only before inference (zoom-in benchmarks:
HR-Bench, TreeBench).

The readers (:mod:`.readers`, layouts ``tsv`` and ``parquet``) replace an image cell by an :class:`EmbeddedImage`
holding where the row is and what its first bytes say (a JPEG/PNG signature, checked from the first 64 base64
characters), so a 1.9 GB file is read in one streaming pass and no image stays in memory. A short all-digit
``image`` cell is VLMEvalKit's reference to the row of that ``index`` holding the image (rows 4k..4k+3 of HR-Bench
share one). :func:`materialize_images` writes the embedded images the evaluation needs to image files, in one more
pass, only those not already written (VLMEvalKit's ``dump_image`` layout, ``images/<file stem>/<row>.<ext>``
beside the data file, the row being the one that holds the bytes).
"""

from __future__ import annotations

import base64
import binascii
import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = [
    "EmbeddedImage",
    "check_base64",
    "embedded_cell",
    "embedded_image_kind",
    "materialize_images",
    "parquet_image_heads",
    "raise_csv_limit",
    "resolve_references",
    "REFERENCE_MAX_CHARS",
]

_SIGNATURES = (
    (b"\xff\xd8\xff", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"GIF8", ".gif"),
    (b"BM", ".bmp"),
    (b"RIFF", ".webp"),
)
REFERENCE_MAX_CHARS = 64  # VLMEvalKit: an image cell this short is the index of the row holding the image


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


def embedded_image_kind(head: bytes) -> str | None:
    """The file extension an image's first bytes give (``.jpg``, ``.png``, ...), None when none matches."""
    return next((suffix for signature, suffix in _SIGNATURES if head.startswith(signature)), None)


def check_base64(cell: str) -> tuple[str, str | None]:
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


def embedded_cell(source: Path, row: int, index: str, cell: Any) -> EmbeddedImage:
    if not isinstance(cell, str) or not cell.strip():
        return EmbeddedImage(str(source), row, index, problem=f"expected a base64 image, got {str(cell)[:24]!r}")
    text = cell.strip()
    if len(text) <= REFERENCE_MAX_CHARS and text.isdigit():
        return EmbeddedImage(str(source), row, index, reference=text)
    suffix, problem = check_base64(text)
    return EmbeddedImage(str(source), row, index, suffix, problem)


def resolve_references(records: list[Any]) -> None:
    """Point each reference cell at the row holding the referenced index's bytes (VLMEvalKit's convention)."""
    holders = {
        r.image.index: r.image for r in records if isinstance(r.image, EmbeddedImage) and r.image.reference is None
    }
    for record in records:
        image = record.image
        if isinstance(image, EmbeddedImage) and image.reference is not None:
            target = holders.get(image.reference)
            if target is None:
                image.problem = f"refers to the image of index {image.reference}, which no row holds"
            else:
                image.row, image.suffix, image.problem = target.row, target.suffix, target.problem


def raise_csv_limit() -> None:
    limit = sys.maxsize
    while True:  # the largest field size the platform's C long accepts (a 4K image is ~3 MB of base64)
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 10


def _parquet_cell_bytes(cell: Any) -> Any:
    if isinstance(cell, dict):  # the HF `Image` feature: {"bytes": ..., "path": ...}
        return cell.get("bytes")
    return cell


def parquet_image_heads(path: Path, image_column: str) -> Iterator[Any]:
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
        raise_csv_limit()
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t")
            header = next(reader)
            column = header.index(image_column)
            for row_no, row in enumerate(reader):
                for target in rows.get(row_no, []):
                    _write_atomic(target, _decode_cell(row[column]))
                    written += 1
    return written
