"""Prediction files of an evaluation run: append as items finish, resume after a kill, merge the shards.

Layout in ``output_dir`` (DESIGN "Evaluation": each stage writes a file the next one reads):

- ``predictions.rank{r}.jsonl``: what process ``r`` produced, one JSON object per line, appended and flushed
  as each item finishes. Only process ``r`` writes it.
- ``predictions.jsonl``: the merge (rank 0, after every process has finished): one record per key, in item
  order, written atomically. Later stages read this file.

Keys are the record ``key`` (``file:line``; ``file:line:expression`` for RefCOCO): ids repeat in the real
files (SPEC §6). Every record has ``key`` and ``status`` (``"ok"``, or ``"error"`` with an ``error`` text:
an item whose image could not be read). Resume rule: an item is done when the last record of its key, over
the merged file and every shard, has status ``ok``; an ``error`` item is tried again. A kill can leave a half
written last line: a reader ignores it, and the process that owns the shard cuts it off before appending
(:func:`repair_truncated_tail`); the resumed run then writes that item again.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

logger = logging.getLogger(__name__)

MERGED_NAME = "predictions.jsonl"
STATUSES = ("ok", "error")


def shard_path(output_dir: str | os.PathLike[str], rank: int) -> Path:
    """The file process ``rank`` appends to."""
    return Path(output_dir) / f"predictions.rank{int(rank)}.jsonl"


def merged_path(output_dir: str | os.PathLike[str]) -> Path:
    return Path(output_dir) / MERGED_NAME


def prediction_files(output_dir: str | os.PathLike[str]) -> list[Path]:
    """The merged file (first) and every shard (by rank) that exist in ``output_dir``."""
    out = Path(output_dir)
    shards = sorted(out.glob("predictions.rank*.jsonl"), key=lambda p: (len(p.name), p.name))
    merged = merged_path(out)
    return ([merged] if merged.is_file() else []) + shards


def repair_truncated_tail(path: str | os.PathLike[str]) -> int:
    """Cut a last line without its newline (a killed write) off ``path``; the number of bytes removed.
    Only the process that appends to ``path`` may call this."""
    p = Path(path)
    if not p.is_file():
        return 0
    data = p.read_bytes()
    end = data.rfind(b"\n") + 1
    if end == len(data):
        return 0
    logger.warning("%s: dropping a truncated last line (%d bytes) left by an interrupted run", p, len(data) - end)
    with open(p, "r+b") as handle:
        handle.truncate(end)
    return len(data) - end


def iter_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The complete records of a prediction file, in order (a last line without newline is ignored).

    Raises:
        ValueError: a complete line that is not a prediction record, named as ``file:line`` (the file was
            edited by hand or is not a prediction file: remove the line or the file).
    """
    p = Path(path)
    if not p.is_file():
        return
    data = p.read_bytes()
    data = data[: data.rfind(b"\n") + 1]
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}:{number}: not a JSON line ({exc.msg}); remove the line or the file") from None
        if not isinstance(record, dict) or "key" not in record or record.get("status") not in STATUSES:
            raise ValueError(f"{p}:{number}: not a prediction record (needs 'key' and a status in {STATUSES})")
        yield record


def latest_records(paths: Iterable[str | os.PathLike[str]]) -> dict[str, dict[str, Any]]:
    """The last record per key over ``paths`` read in order (later files win)."""
    latest: dict[str, dict[str, Any]] = {}
    for path in paths:
        for record in iter_records(path):
            latest[str(record["key"])] = record
    return latest


def done_keys(output_dir: str | os.PathLike[str]) -> set[str]:
    """Keys whose latest record (merged file, then shards) has status ``ok``: what a resumed run skips."""
    latest = latest_records(prediction_files(output_dir))
    return {key for key, record in latest.items() if record["status"] == "ok"}


class PredictionWriter:
    """Appends records to one shard, flushing each (a kill loses at most the line being written)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_truncated_tail(self.path)
        self._handle = open(self.path, "a", encoding="utf-8")
        self.written = 0

    def write(self, record: dict[str, Any]) -> None:
        if "key" not in record or record.get("status") not in STATUSES:
            raise ValueError(f"a prediction record needs 'key' and a status in {STATUSES}: {sorted(record)}")
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        self.written += 1

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "PredictionWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def merge_predictions(output_dir: str | os.PathLike[str], key_order: list[str] | None = None) -> Path:
    """Write ``predictions.jsonl``: the latest record of each key over the merged file and all shards, in
    ``key_order`` (keys not listed follow, sorted) — so the merge of a resumed or sharded run equals an
    uninterrupted single-process run's byte for byte. Atomic (temporary file + rename). Returns its path."""
    out = Path(output_dir)
    latest = latest_records(prediction_files(out))
    order = [k for k in (key_order or []) if k in latest]
    listed = set(order)
    order += sorted(k for k in latest if k not in listed)
    target = merged_path(out)
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for key in order:
            handle.write(json.dumps(latest[key], ensure_ascii=False) + "\n")
    os.replace(tmp, target)
    errors = sum(1 for k in order if latest[k]["status"] != "ok")
    logger.info("merged %d predictions (%d errors) into %s", len(order), errors, target)
    return target


def load_predictions(output_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The merged predictions of a run, in file order.

    Raises:
        FileNotFoundError: no ``predictions.jsonl`` (run the infer stage first).
    """
    path = merged_path(output_dir)
    if not path.is_file():
        raise FileNotFoundError(f"no {MERGED_NAME} in {output_dir}: run the 'infer' stage first")
    return list(iter_records(path))
