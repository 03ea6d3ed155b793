"""How an evaluation ended: its exit code (the contract every evaluation launcher keeps) and its records report.

Exit codes (README "Exit codes"; the same for ``eval/*.sh`` and ``eval_general_dataset/*.sh``):

- ``0`` every record was read and every item evaluated (and judged, where a judge is configured);
- ``1`` a configuration error: a bad path (a local MODEL_PATH that is not there included), a bad judge key
  (HTTP 401/403), a command that cannot run as given; nothing to rerun until it is fixed;
- ``2`` a usage error: argparse's code for a command line it cannot parse (an unknown or misspelt flag: the CLIs
  match no prefixes), before anything runs;
- ``3`` items left unjudged (judge endpoint down past its retries, unparseable replies): the table says so and
  the same command again judges only those items;
- ``4`` records skipped (``skipped_records.jsonl`` names each as ``file:line: field: why``), predictions that
  failed, or a benchmark that could not run: the rest finished and its numbers are in the table.

Where several apply, the lowest non-zero code wins: it names the most urgent action (fix the configuration,
then rerun the judge, then look at the skipped records).

:class:`RecordsReport` is what a loader read from one file (records read, skipped and why, records kept with an
unusable evidence box): written as ``records_report.json`` beside the predictions so that the table stage, run
later or alone, can show the counts.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

EXIT_OK = 0
EXIT_CONFIG_ERROR = 1
EXIT_UNJUDGED = 3
EXIT_INCOMPLETE = 4
REPORT_NAME = "records_report.json"

__all__ = [
    "EXIT_CONFIG_ERROR",
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "EXIT_UNJUDGED",
    "REPORT_NAME",
    "RecordsReport",
    "exit_code",
    "load_report",
    "reason_counts",
]


def exit_code(*, config_error: bool = False, unjudged: int = 0, incomplete: int = 0) -> int:
    """The code of the contract above: 1, else 3, else 4, else 0.

    ``unjudged``: items a judge or grader left without a score; ``incomplete``: skipped records, failed
    predictions and benchmarks that could not run, summed.
    """
    if config_error:
        return EXIT_CONFIG_ERROR
    if unjudged:
        return EXIT_UNJUDGED
    if incomplete:
        return EXIT_INCOMPLETE
    return EXIT_OK


def reason_counts(issues: Iterable[Any]) -> dict[str, int]:
    """How many skipped records per field (``{"Image": 3, "solution": 1}``), one count per record and field."""
    seen = {(str(i.file), i.line, i.field) for i in issues}
    return dict(sorted(Counter(f for _, _, f in seen).items()))


@dataclass
class RecordsReport:
    """What was read from one evaluation file.

    Attributes:
        file: the file read.
        records_read: non-blank lines (records) of the whole file, every one validated.
        skipped: records that cannot be evaluated (each named in ``skipped_records.jsonl``).
        skipped_by_field: ``{field: records}`` of the skipped ones (what was wrong).
        evaluated: items sent to inference (after ``--max_items`` style limits).
        box_issues: records kept whose evidence box is unusable (their box metric is n/a), VisCoT only.
    """

    file: str
    records_read: int
    skipped: int = 0
    skipped_by_field: dict[str, int] = field(default_factory=dict)
    evaluated: int = 0
    box_issues: int = 0

    def line(self) -> str:
        """One line for logs and tables: ``FILE: 1,950 records read, 1,950 evaluated, 0 skipped``."""
        text = f"{Path(self.file).name}: {self.records_read:,} records read, {self.evaluated:,} evaluated"
        if self.evaluated < self.records_read - self.skipped:
            # not "the first N": MMBench keeps whole questions (rotated copies sit far down the file), VisCoT
            # the first N of each sub-dataset
            text += f" ({self.evaluated:,} kept by the item limit)"
        text += f", {self.skipped:,} skipped"
        if self.skipped_by_field:
            text += " (" + ", ".join(f"{name}: {n}" for name, n in self.skipped_by_field.items()) + ")"
        if self.box_issues:
            text += f", {self.box_issues:,} with an unusable evidence box (box metric n/a)"
        return text

    def write(self, output_dir: str | os.PathLike[str]) -> Path:
        path = Path(output_dir) / REPORT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path


def load_report(output_dir: str | os.PathLike[str]) -> RecordsReport | None:
    """The ``records_report.json`` of an output folder, or None when the run wrote none (an older run)."""
    path = Path(output_dir) / REPORT_NAME
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return RecordsReport(**{k: v for k, v in data.items() if k in RecordsReport.__dataclass_fields__})
