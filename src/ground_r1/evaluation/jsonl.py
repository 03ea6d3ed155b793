"""The one resumable JSONL file of evaluation: append and flush each record, read back past a kill, rewrite atomically.

Every file an evaluation writes while it runs (predictions, judge and grader records, the judge cache) is JSONL so
that a killed run loses at most the line being written. A kill can leave that last line without its newline: a
reader ignores it (:func:`read_records`), and the one process that appends to the file cuts it off before it
appends again (:class:`JsonlAppender`, :func:`repair_tail`), so the resumed run writes that record again. Files
recomputed whole (the merge of the shards, a judge file whose retried records are dropped, score rows) are written
to a temporary file and renamed over the old one (:func:`write_atomic`): a reader sees the old file or the new one,
never half of it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

logger = logging.getLogger(__name__)

__all__ = ["JsonlAppender", "read_records", "repair_tail", "write_atomic"]


def _complete(data: bytes) -> bytes:
    """``data`` up to and including its last newline (a final line without one is a killed write)."""
    return data[: data.rfind(b"\n") + 1]


def repair_tail(path: str | os.PathLike[str]) -> int:
    """Cut a last line without its newline (a killed write) off ``path``; the number of bytes removed.
    Only the process that appends to ``path`` may call this."""
    p = Path(path)
    if not p.is_file():
        return 0
    data = p.read_bytes()
    end = len(_complete(data))
    if end == len(data):
        return 0
    logger.warning("%s: dropping a truncated last line (%d bytes) left by an interrupted run", p, len(data) - end)
    with open(p, "r+b") as handle:
        handle.truncate(end)
    return len(data) - end


def read_records(
    path: str | os.PathLike[str], check: Callable[[Any], str | None] | None = None, *, strict: bool = True
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of each complete, non-blank line of ``path`` (none when it does not exist).

    ``check(obj)`` says why a parsed line is not a record of this file (None: it is); without it, a record is any
    JSON object.

    Raises:
        ValueError: (``strict``) a complete line that is not JSON or not a record, named as ``file:line`` with what
            to do (the file was edited by hand or is another file). Without ``strict`` such lines are skipped with
            a warning (a cache: a lost entry only costs a request).
    """
    p = Path(path)
    if not p.is_file():
        return
    for number, line in enumerate(_complete(p.read_bytes()).decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problem = f"not a JSON line ({exc.msg})"
        else:
            problem = (
                check(obj)
                if check is not None
                else (None if isinstance(obj, dict) else f"expected a JSON object, got {type(obj).__name__}")
            )
        if problem is None:
            yield number, obj
        elif strict:
            raise ValueError(f"{p}:{number}: {problem}; remove the line or the file")
        else:
            logger.warning("%s:%d: %s; skipped", p, number, problem)


class JsonlAppender:
    """Appends records to one file, flushing each (a kill loses at most the line being written); the file's
    truncated tail, if any, is cut off first. ``check(record)`` refuses a record the file must not hold."""

    def __init__(self, path: str | os.PathLike[str], check: Callable[[Any], str | None] | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(self.path)
        self._check = check
        self._handle = open(self.path, "a", encoding="utf-8")
        self.written = 0

    def write(self, record: dict[str, Any]) -> None:
        """Append one record and flush it.

        Raises:
            ValueError: ``check`` refuses the record (why, and the record's fields).
        """
        problem = self._check(record) if self._check is not None else None
        if problem is not None:
            raise ValueError(f"{self.path}: cannot append this record: {problem}: {sorted(record)}")
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        self.written += 1

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_atomic(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> Path:
    """Write ``records`` as JSONL to ``path`` through a temporary file renamed over it; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, target)
    return target
