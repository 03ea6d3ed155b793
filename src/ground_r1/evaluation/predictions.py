"""Prediction files of an evaluation run: append as items finish, resume after a kill, merge the shards.

Layout in ``output_dir`` (DESIGN "Evaluation": each stage writes a file the next one reads):

- ``predictions.rank{r}.jsonl``: what process ``r`` produced, one JSON object per line, appended and flushed
  as each item finishes. Only process ``r`` writes it.
- ``predictions.jsonl``: the merge (rank 0, after every process has finished): one record per key, in item
  order, written atomically. Later stages read this file.

Keys are the record ``key`` (``file:line``; ``file:line:expression`` for RefCOCO): ids repeat in the real
files (SPEC §6). Every record has ``key`` and ``status`` (``"ok"``, or ``"error"`` with an ``error`` text:
an item whose image could not be read). Resume rule: an item is done when the last record of its key, over
the merged file and every shard, has status ``ok``; an ``error`` item is tried again. Each shard is a
:mod:`ground_r1.evaluation.jsonl` file: a half-written last line left by a kill is ignored by readers and cut off
by the process that owns the shard before it appends; the resumed run then writes that item again.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from ground_r1.evaluation.jsonl import JsonlAppender, read_records, write_atomic

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


def _prediction_problem(record: Any) -> str | None:
    if not isinstance(record, dict) or "key" not in record or record.get("status") not in STATUSES:
        return f"not a prediction record (needs 'key' and a status in {STATUSES})"
    return None


def iter_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The complete records of a prediction file, in order (a last line without newline is ignored).

    Raises:
        ValueError: a complete line that is not a prediction record, named as ``file:line`` (the file was
            edited by hand or is not a prediction file: remove the line or the file).
    """
    for _, record in read_records(path, _prediction_problem):
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


class PredictionWriter(JsonlAppender):
    """Appends prediction records to one shard, flushing each (a kill loses at most the line being written)."""

    def __init__(self, path: str | os.PathLike[str]):
        super().__init__(path, _prediction_problem)


def merge_predictions(output_dir: str | os.PathLike[str], key_order: list[str] | None = None) -> Path:
    """Write ``predictions.jsonl``: the latest record of each key over the merged file and all shards, in
    ``key_order`` (keys not listed follow, sorted) — so the merge of a resumed or sharded run equals an
    uninterrupted single-process run's byte for byte. Atomic (temporary file + rename). Returns its path."""
    out = Path(output_dir)
    latest = latest_records(prediction_files(out))
    order = [k for k in (key_order or []) if k in latest]
    listed = set(order)
    order += sorted(k for k in latest if k not in listed)
    target = write_atomic(merged_path(out), (latest[key] for key in order))
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
