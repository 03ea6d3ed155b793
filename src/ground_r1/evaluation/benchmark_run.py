"""What the one evaluation pipeline (:mod:`ground_r1.evaluation.pipeline`) hands a benchmark spec.

A spec (:class:`ground_r1.evaluation.benchmarks.spec.BenchmarkSpec`) reads its file into a :class:`BenchmarkData`
under :class:`ReadOptions`, scores a finished folder into its summary rows under :class:`RunOptions`, and never
sees the command line. These types know no spec class, so the spec module and the pipeline both import them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ground_r1.data.records import ValidationIssue

if TYPE_CHECKING:
    from ground_r1.evaluation.benchmarks.spec import BenchmarkSpec

__all__ = ["BenchmarkData", "ReadOptions", "RunOptions"]


@dataclass(frozen=True)
class ReadOptions:
    """How a benchmark file is read: what ``--image_path_prefix``, ``--max_items`` (None: the spec's default),
    the pixel limits (VisCoT records carry their model-input size), ``--skip_bad_records`` and image checks say."""

    image_path_prefix: str | None = None
    max_items: int | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    skip_bad_records: bool = True
    check_images: bool = True


@dataclass
class BenchmarkData:
    """A benchmark ready to run: its spec, the file read, the image root used, its items (the spec's own type:
    a general benchmark's :class:`~ground_r1.evaluation.benchmarks.spec.BenchmarkItem`, VisCoT's and RefCOCO's
    inference items), every skipped record's problems, how many records the whole file holds, and the records
    evaluated with an unusable evidence box (VisCoT: named, their box metric n/a)."""

    spec: "BenchmarkSpec"
    file: Path
    image_root: Path
    items: list[Any]
    skipped: list[ValidationIssue] = field(default_factory=list)
    records_read: int = 0
    box_notes: list[ValidationIssue] = field(default_factory=list)
    box_issue_records: int = 0
    evaluated: int | None = None  # records evaluated (RefCOCO: objects, whose expressions are the items)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def skipped_records(self) -> int:
        return len({(issue.file, issue.line) for issue in self.skipped})  # V*: one file per record

    @property
    def evaluated_records(self) -> int:
        return len(self.items) if self.evaluated is None else self.evaluated


@dataclass(frozen=True)
class RunOptions:
    """What the score and table stages of a run need beyond its files: the protocol, the rule column's letter rule
    (VisCoT), the table's label (None: the spec's default) and the run it is compared to, and when an average
    built on too few judged items is refused."""

    protocol: str
    letter_rule: str | None = None
    label: str | None = None
    compare_to: str | None = None
    max_failure_share: float = 0.05
    allow_failures: bool = False
