"""The summary table across benchmarks: one row per number, in the paper's units, with the rule that made it and
its error bar (SPEC §7; docs/metrics.md). Each benchmark spec makes its own rows
(:meth:`~ground_r1.evaluation.benchmarks.spec.BenchmarkSpec.summary_rows`); this module renders them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, Iterable

__all__ = ["ScoredBenchmark", "SummaryRow", "failed_row", "render_summary_csv", "render_summary_markdown"]


@dataclass
class ScoredBenchmark:
    """A benchmark's per-item score records and what was left out: ``errors`` (prediction errors), ``missing`` (no
    prediction); ``graded``: a judge's or grader's records were read; ``grader``: the model(s) they name ("" when
    none)."""

    records: list[dict[str, Any]]
    errors: int = 0
    missing: int = 0
    graded: bool = False
    grader: str = ""


@dataclass
class SummaryRow:
    """One line of the summary table: a benchmark's number in the paper's units, the rule that made it and its
    error bar.

    ``rule`` names the scoring rule (reference and version); ``variant`` marks a number made by another rule than
    the headline one (ours where more lenient, the release's). ``items`` counts the scored records (MMBench
    CircularEval: questions); ``skipped`` the file's records that could not be evaluated (named in
    ``skipped_records.jsonl``; the same on every row of a benchmark); ``unparsed`` those whose answer the rule
    could not read (scored wrong); ``left_out`` the items excluded from the number (prediction errors, missing
    predictions, failed or absent MM-Vet gradings, MMBench questions with a copy missing); ``se`` the number's
    standard error and ``error_bar`` how it was estimated (``BenchmarkSpec.estimate``, docs/metrics.md "Error
    bars").
    """

    benchmark: str
    metric: str
    score: float | None
    items: int
    unparsed: int
    left_out: int
    notes: str = ""
    rule: str = ""
    variant: bool = False
    skipped: int = 0
    se: float | None = None
    error_bar: str = ""


def failed_row(name: str, why: str) -> SummaryRow:
    """The row of a benchmark that could not run (its reason's first line in the notes)."""
    return SummaryRow(name, "could not run", None, 0, 0, 0, "COULD NOT RUN: " + why.splitlines()[0])


_COLUMNS = ("Benchmark", "Metric", "Rule", "Score ± SE", "Items", "Skipped", "Unparsed", "Left out", "Notes")


def _fmt(score: float | None, se: float | None = None) -> str:
    if score is None:
        return "n/a"
    return f"{score:.1f}" + (f" ± {se:.1f}" if se is not None else " ± n/a")


def render_summary_markdown(
    rows: list[SummaryRow], label: str, files: Iterable[str] = (), header: list[str] | None = None
) -> str:
    """The summary across benchmarks as a Markdown table (scores x100 with their standard errors; MME summed, max
    2800); each number's rule is named, variant rules' numbers follow their benchmark's headline, marked
    "variant:"; then one line per file read (``files``, :func:`ground_r1.evaluation.general.file_line`).
    ``header``: lines under the title (the run's rollout settings and their source)."""
    lines = [
        f"## General benchmarks ({label})",
        "",
        *(header or []),
        *([""] if header else []),
        "| " + " | ".join(_COLUMNS) + " |",
        "|" + "|".join("---" for _ in _COLUMNS) + "|",
    ]
    for r in rows:
        rule = f"variant: {r.rule}" if r.variant else r.rule
        cells = (
            r.benchmark,
            r.metric,
            rule,
            _fmt(r.score, r.se),
            str(r.items),
            str(r.skipped),
            str(r.unparsed),
            str(r.left_out),
            r.notes,
        )
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Scores x100 (MME: sum of per-task accuracy + acc+). Rule: the scoring rule of each number (its "
        'reference and version, docs/metrics.md); rows marked "variant:" are the same predictions scored by '
        "another rule (ours where more lenient than the reference, the release's). Unparsed answers count as "
        "wrong; left-out items (prediction errors, failed MM-Vet judgments) are excluded and counted, never "
        "scored 0; skipped records could not be evaluated (skipped_records.jsonl names each as file:line: "
        "field: why).",
        "± is one standard error: of the mean over the Items for accuracies and MM-Vet; a seeded bootstrap "
        "(1,000 resamples, seed 0) for the MME total (over images within their task), POPE's F1 (over items) "
        "and MMBench's CircularEval (over questions); n/a with fewer than two items (docs/metrics.md, Error "
        "bars).",
    ]
    files = list(files)
    if files:
        lines += ["", "Files read:", *(f"- {line}" for line in files)]
    return "\n".join(lines) + "\n"


def render_summary_csv(rows: list[SummaryRow]) -> str:
    """The same table as CSV (score empty when not available; full precision)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "benchmark",
            "metric",
            "rule",
            "variant",
            "score",
            "se",
            "items",
            "skipped",
            "unparsed",
            "left_out",
            "notes",
            "error_bar",
        ]
    )
    for r in rows:
        writer.writerow(
            [
                r.benchmark,
                r.metric,
                r.rule,
                "yes" if r.variant else "no",
                "" if r.score is None else repr(r.score),
                "" if r.se is None else repr(r.se),
                r.items,
                r.skipped,
                r.unparsed,
                r.left_out,
                r.notes,
                r.error_bar,
            ]
        )
    return buffer.getvalue()
