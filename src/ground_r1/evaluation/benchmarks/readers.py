"""Reading a benchmark file, one reader per layout, apart from validating its records.

A reader turns a file into :class:`RawRecord` s: each one a record as the file holds it, or why it cannot be read
(not UTF-8, not JSON, not an object), always with where it is (file and line). What a record must hold is the
benchmark spec's business (:meth:`~ground_r1.evaluation.benchmarks.spec.BenchmarkSpec.read` validates each one); a
reader never drops a record silently. A spec names its layout (``BenchmarkSpec.layout``); a new layout (a folder of
per-image JSON files, a TSV with base64 images) is one more reader registered in :data:`READERS`.

- ``jsonl``: one JSON object per line, the release's layout and ours; blank lines are skipped, and a line that is
  not UTF-8 or not JSON is that line's problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = ["READERS", "RawRecord", "read_jsonl", "reader"]


@dataclass
class RawRecord:
    """One record as a file holds it (``record``), or why it cannot be read (``problem``: field, why)."""

    file: str
    line: int
    record: dict[str, Any] | None = None
    problem: tuple[str, str] | None = None


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
                yield RawRecord(str(path), line_no,
                                problem=("record", f"expected a JSON object, got {type(record).__name__}"))
                continue
            yield RawRecord(str(path), line_no, record=record)


READERS: dict[str, Callable[[Path], Iterator[RawRecord]]] = {"jsonl": read_jsonl}


def reader(layout: str) -> Callable[[Path], Iterator[RawRecord]]:
    """The reader of ``layout``.

    Raises:
        ValueError: an unknown layout (the known ones are listed).
    """
    if layout not in READERS:
        raise ValueError(f"unknown benchmark file layout {layout!r}; known: {', '.join(READERS)}")
    return READERS[layout]
