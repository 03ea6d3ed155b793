"""VisCoT result tables (SPEC §7, §9): per sub-dataset means, the AVG of the paper, judge and rule side by side.

- Per sub-dataset: the mean judge score and the mean rule-based score, both x100 (the paper's unit). Failures
  (judge ``failed`` / ``unparseable`` / ``missing``, and inference errors) are excluded from the means and
  counted in their own column.
- AVG: the plain mean of the per-sub-dataset means over the 12 sub-datasets of the paper (all but emotic, which
  is reported on its own row). With fewer of them present the row says how many ("AVG (2 of 12)"). The AVG is
  refused when the failures exceed ``max_failure_share`` of the items it covers, unless ``allow_failures``.
- Other datasets (e.g. the synthetic one) get rows after emotic, outside the AVG.
- Nothing judged: the judge cells read "not judged" and the Markdown says so in capitals (SPEC §7).
- Two runs (e.g. baseline and Ground-R1) are shown side by side, one column group per run.
- box: the mean box metric (:func:`ground_r1.evaluation.scores.box_score`) x100 of the protocols that ground;
  items whose evidence box is unusable are evaluated with this metric n/a and counted in the notes.
- Every number carries its standard error (``value ± SE``; issue 17, docs/metrics.md "Error bars"): of the mean
  over a row's items (box: its scored boxes), a seeded bootstrap for the AVG; the CSV gives each its own column.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ground_r1.evaluation.scores import JUDGE_FAILURES
from ground_r1.evaluation.uncertainty import Estimate, mean_estimate, mean_of_group_means

logger = logging.getLogger(__name__)

# SPEC §9 column order of the paper, with its display names.
PAPER_DATASETS: dict[str, str] = {
    "docvqa": "DocVQA",
    "textcap": "TextCaps",
    "textvqa": "TextVQA",
    "dude": "DUDE",
    "sroie": "SROIE",
    "infographicsvqa": "InfoVQA",
    "flickr30k": "Flickr30k",
    "v7w": "Visual7W",
    "gqa": "GQA",
    "openimages": "OpenImages",
    "vsr": "VSR",
    "cub": "CUB",
}
SEPARATE_DATASETS: dict[str, str] = {"emotic": "Emotic"}  # SPEC §7: reported, not in the AVG
DEFAULT_MAX_FAILURE_SHARE = 0.05
NOTHING_JUDGED = (
    "**NOTHING WAS JUDGED**: no LLM judge ran for {runs} (no endpoint configured: set OPENAI_BASE_URL and/or "
    "OPENAI_API_KEY, or the judge stage was skipped). The judge columns are empty; the rule-based scores are "
    "the training accuracy rules (SPEC §3), not the paper's metric."
)


@dataclass
class DatasetStats:
    """One sub-dataset of one run."""

    items: int = 0
    errors: int = 0  # inference errors
    judge_failures: int = 0  # judged items without a score (inference errors included)
    judge_scores: list[float] = field(default_factory=list)
    rule_scores: list[float] = field(default_factory=list)
    rule_applies: bool = False
    box_scores: list[float] = field(default_factory=list)
    box_status: dict[str, int] = field(default_factory=dict)  # box_status -> items (scores.BOX_STATUSES)

    @property
    def box_mean(self) -> float | None:
        return sum(self.box_scores) / len(self.box_scores) if self.box_scores else None

    @property
    def grounded(self) -> bool:
        """Whether the protocol produced boxes (any item not ``no_grounding``)."""
        return any(n for status, n in self.box_status.items() if status != "no_grounding")

    @property
    def judge_mean(self) -> float | None:
        return sum(self.judge_scores) / len(self.judge_scores) if self.judge_scores else None

    @property
    def rule_mean(self) -> float | None:
        return sum(self.rule_scores) / len(self.rule_scores) if self.rule_scores else None

    def estimate(self, column: str) -> Estimate:
        """The ``column`` ("judge" or "rule") mean with its standard error over the scored items."""
        return mean_estimate(self.judge_scores if column == "judge" else self.rule_scores)


@dataclass
class Average:
    """An AVG cell: a value (with its bootstrap standard error), or None with the reason."""

    value: float | None
    note: str = ""
    refused: bool = False
    se: float | None = None

    def cell(self, digits: int, empty: str = "n/a") -> str:
        text = _x100(self.value, digits)
        if text is None:
            return "refused" if self.refused else empty
        return text + (f" ± {_x100(self.se, digits)}" if self.se is not None else "")


@dataclass
class RunTable:
    label: str
    stats: dict[str, DatasetStats]
    judged: bool
    judge_avg: Average
    rule_avg: Average
    avg_label: str
    letter_rules: tuple[str, ...] = ()  # option-letter rule(s) of the rule column (rows without one: older runs)


def dataset_stats(rows: Iterable[Mapping[str, Any]]) -> dict[str, DatasetStats]:
    """Per-dataset counts and score lists of score rows (see :mod:`ground_r1.evaluation.scores`)."""
    stats: dict[str, DatasetStats] = {}
    for row in rows:
        s = stats.setdefault(str(row["dataset"]), DatasetStats())
        s.items += 1
        if row.get("status") != "ok":
            s.errors += 1
        if row["judge_status"] == "ok":
            s.judge_scores.append(float(row["judge_score"]))
        elif row["judge_status"] in JUDGE_FAILURES:
            s.judge_failures += 1
        if row.get("rule_score") is not None:
            s.rule_scores.append(float(row["rule_score"]))
            s.rule_applies = True
        status = row.get("box_status", "no_grounding")
        s.box_status[status] = s.box_status.get(status, 0) + 1
        if status == "ok":
            s.box_scores.append(float(row["box_score"]))
    return stats


def average(stats: Mapping[str, DatasetStats], column: str, max_failure_share: float, allow_failures: bool) -> Average:
    """The AVG of ``column`` ("judge" or "rule") over the paper's sub-datasets present in ``stats``."""
    present = [d for d in PAPER_DATASETS if d in stats]
    if not present:
        return Average(None, "no VisCoT sub-dataset in this run")
    items = sum(stats[d].items for d in present)
    failures = sum(stats[d].judge_failures if column == "judge" else stats[d].errors for d in present)
    share = failures / items if items else 0.0
    if share > max_failure_share and not allow_failures:
        return Average(
            None,
            f"{column} AVG refused: {failures} of {items} items failed ({share:.1%} > {max_failure_share:.0%}); "
            "fix and rerun (finished items are kept), or pass --allow_failures",
            refused=True,
        )
    means = [stats[d].judge_mean if column == "judge" else stats[d].rule_mean for d in present]
    missing = [PAPER_DATASETS[d] for d, m in zip(present, means) if m is None]
    if missing:
        return Average(None, f"{column} AVG n/a: no {column} score for {', '.join(missing)}")
    # The error bar: a seeded bootstrap over the items of each sub-dataset (docs/metrics.md, Error bars).
    values = {d: stats[d].judge_scores if column == "judge" else stats[d].rule_scores for d in present}
    estimate = mean_of_group_means([d for d in present for _ in values[d]], [v for d in present for v in values[d]])
    return Average(sum(means) / len(means), se=estimate.se)


def summarize(
    rows: Iterable[Mapping[str, Any]],
    label: str,
    max_failure_share: float = DEFAULT_MAX_FAILURE_SHARE,
    allow_failures: bool = False,
) -> RunTable:
    """One run's table data from its score rows."""
    rows = list(rows)
    stats = dataset_stats(rows)
    judged = any(r["judge_status"] != "not_judged" for r in rows)
    present = sum(1 for d in PAPER_DATASETS if d in stats)
    avg_label = "AVG" if present == len(PAPER_DATASETS) else f"AVG ({present} of {len(PAPER_DATASETS)})"
    judge_avg = average(stats, "judge", max_failure_share, allow_failures) if judged else Average(None, "not judged")
    rule_avg = average(stats, "rule", max_failure_share, allow_failures)
    letter_rules = tuple(sorted({str(r["letter_rule"]) for r in rows if r.get("letter_rule")}))
    return RunTable(label, stats, judged, judge_avg, rule_avg, avg_label, letter_rules)


def _row_order(runs: list[RunTable]) -> list[str]:
    names = {d for run in runs for d in run.stats}
    paper = [d for d in PAPER_DATASETS if d in names]
    separate = [d for d in SEPARATE_DATASETS if d in names]
    others = sorted(names - set(paper) - set(separate))
    return paper + (["__avg__"] if paper else []) + separate + others


def _x100(value: float | None, digits: int) -> str | None:
    return None if value is None else f"{100 * value:.{digits}f}"


def _box_cell(stats: list[DatasetStats], digits: int) -> str:
    """Mean box metric over the rows' scored boxes with its standard error (over those boxes); "-" for a protocol
    without boxes, "n/a" for none scored."""
    if not any(s.grounded for s in stats):
        return "-"
    return _with_se(mean_estimate([v for s in stats for v in s.box_scores]), digits) or "n/a"


def _shows_box(runs: list[RunTable]) -> bool:
    """The box column is shown when a run grounds (a protocol with boxes)."""
    return any(s.grounded for run in runs for s in run.stats.values())


def _cells(run: RunTable, dataset: str, digits: int, box: bool = False) -> list[str]:
    """items, judge, rule, (box,) failures of one run on one row."""
    if dataset == "__avg__":
        present = [run.stats[d] for d in PAPER_DATASETS if d in run.stats]
        items = sum(s.items for s in present)
        fails = sum(s.judge_failures if run.judged else s.errors for s in present)
        judge = run.judge_avg.cell(digits, "n/a" if run.judged else "not judged")
        return [
            str(items),
            judge,
            run.rule_avg.cell(digits),
            *([_box_cell(present, digits)] if box else []),
            str(fails),
        ]
    s = run.stats.get(dataset)
    if s is None:
        return ["0", "-", "-", *(["-"] if box else []), "-"]
    judge = _with_se(s.estimate("judge"), digits) or ("not judged" if not run.judged else "n/a")
    rule = _with_se(s.estimate("rule"), digits) or "n/a"
    return [
        str(s.items),
        judge,
        rule,
        *([_box_cell([s], digits)] if box else []),
        str(s.judge_failures if run.judged else s.errors),
    ]


def _with_se(estimate: Estimate, digits: int) -> str | None:
    """``"81.7 ± 3.1"`` (x100), ``"81.7 ± n/a"`` for a single item, None without a value."""
    text = _x100(estimate.value, digits)
    if text is None:
        return None
    return text + " ± " + (_x100(estimate.se, digits) if estimate.se is not None else "n/a")


def _row_name(dataset: str, avg_label: str) -> str:
    if dataset == "__avg__":
        return avg_label
    if dataset in PAPER_DATASETS:
        return PAPER_DATASETS[dataset]
    return f"{SEPARATE_DATASETS.get(dataset, dataset)} (not in AVG)"


def _header(runs: list[RunTable], csv_columns: bool = False) -> list[str]:
    """One column group per run; the run's label prefixes its columns when there are several runs; the box column
    when a run grounds. The CSV gives each standard error its own column."""
    columns: tuple[str, ...] = ("items", "judge", "rule", "box", "failures")
    if csv_columns:
        columns = ("items", "judge", "judge_se", "rule", "rule_se", "box", "box_se", "failures")
    if not _shows_box(runs):
        columns = tuple(c for c in columns if c not in ("box", "box_se"))
    if len(runs) == 1:
        return ["dataset", *columns]
    return ["dataset"] + [f"{r.label} {c}" for r in runs for c in columns]


LETTER_RULE_LABELS = {
    "spec": "`spec` (SPEC §3 letter after <answer>, else the first 'X.', else a bare letter)",
    "release": "`release` (the release's full rule: also credits a bare letter and the first 'X.' of the turn)",
}


def _letter_rule_label(rules: tuple[str, ...]) -> str:
    if not rules:
        return "not recorded (scores written before letter rules were recorded)"
    return " + ".join(LETTER_RULE_LABELS.get(r, r) for r in rules)


def render_markdown(
    runs: list[RunTable], title: str = "VisCoT benchmark (scores x100)", header: list[str] | None = None
) -> str:
    """The table as Markdown, with the notes a reader needs (what each column is, refused AVGs, no judge).
    ``header``: lines printed under the title (e.g. each run's rollout settings and their source)."""
    avg_label = runs[0].avg_label
    lines = [f"## {title}: {' vs '.join(r.label for r in runs)}", ""]
    if header:
        lines += [*header, ""]
    unjudged = [r.label for r in runs if not r.judged]
    if unjudged:
        lines += [NOTHING_JUDGED.format(runs=", ".join(unjudged)), ""]
    header = _header(runs)
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|---" + "|---:" * (len(header) - 1) + "|")
    for dataset in _row_order(runs):
        name = _row_name(dataset, avg_label)
        cells = [c for run in runs for c in _cells(run, dataset, 1, _shows_box(runs))]
        if dataset == "__avg__":
            name, cells = f"**{name}**", [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join([name] + cells) + " |")
    lines += [
        "",
        "- judge: LLM judge score (SPEC §7), mean over judged items; rule: the training accuracy rule "
        "(SPEC §3), n/a where none applies; failures: items excluded from the means (failed, unparseable "
        "or missing judgments, inference errors).",
        "- ± one standard error: of the mean over the row's items (box: over its scored boxes); for the AVG "
        "a seeded bootstrap (1,000 resamples, seed 0, items resampled within their sub-dataset) of the mean "
        "of sub-dataset means (docs/metrics.md, Error bars).",
        "- rule column's option-letter rule (v7w/gqa/openimages): "
        + "; ".join(f"{r.label}: {_letter_rule_label(r.letter_rules)}" for r in runs)
        + ".",
        (
            f"- {avg_label}: plain mean of the per-sub-dataset means over the 12 VisCoT sub-datasets of the "
            "paper; emotic and other datasets are reported on their own rows."
            if "__avg__" in _row_order(runs)
            else "- no AVG: none of the 12 VisCoT sub-datasets of the paper is in this run."
        ),
    ]
    for run in runs:
        for avg in (run.judge_avg, run.rule_avg):
            if avg.refused or (avg.value is None and "n/a" in avg.note):
                lines.append(f"- {run.label}: {avg.note}")
    lines += [note for note in (_box_note(run) for run in runs) if note]
    return "\n".join(lines) + "\n"


def _box_note(run: RunTable) -> str:
    """What the box column holds, and the items it leaves out (bad evidence boxes: n/a, counted)."""
    counts: dict[str, int] = {}
    for s in run.stats.values():
        for status, n in s.box_status.items():
            counts[status] = counts.get(status, 0) + n
    if not any(n for status, n in counts.items() if status != "no_grounding"):
        return ""
    parts = [f"{counts.get('ok', 0)} scored"]
    for status, text in (
        ("bad_evidence_box", "n/a: evidence box unusable (the question is evaluated)"),
        ("no_evidence_box", "n/a: no evidence box"),
        ("no_box", "no box in the first turn"),
    ):
        if counts.get(status):
            parts.append(f"{counts[status]} {text}")
    return (
        f"- {run.label}: box = GIoU score ((GIoU + 1) / 2, SPEC §3) of the first box against the first usable "
        f"evidence box, x100; {', '.join(parts)}."
    )


def render_csv(runs: list[RunTable]) -> str:
    """The same table as CSV (x100, two decimals; "n/a", "not judged", "refused" as in the Markdown)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_header(runs, csv_columns=True) + ["in_avg"])
    for dataset in _row_order(runs):
        box = _shows_box(runs)
        cells = []
        for run in runs:
            row = _cells(run, dataset, 2, box)
            items, judge, rule, failures = row[0], row[1], row[2], row[-1]
            cells += [items, *_split_se(judge), *_split_se(rule), *(_split_se(row[3]) if box else []), failures]
        in_avg = "avg" if dataset == "__avg__" else ("yes" if dataset in PAPER_DATASETS else "no")
        writer.writerow([_row_name(dataset, runs[0].avg_label)] + cells + [in_avg])
    return buffer.getvalue()


def _split_se(cell: str) -> list[str]:
    """``"81.70 ± 3.10"`` -> ["81.70", "3.10"]; a cell without an error bar gets an empty one."""
    value, _, se = cell.partition(" ± ")
    return [value, "" if se in ("", "n/a") else se]


def write_tables(
    runs: list[RunTable], output_dir: str | os.PathLike[str], stem: str = "table", header: list[str] | None = None
) -> tuple[Path, Path]:
    """Write ``{stem}.md`` and ``{stem}.csv``; log loudly when a run was not judged. Returns both paths."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for run in runs:
        if not run.judged:
            logger.warning("NOTHING WAS JUDGED for %s: the table holds rule-based scores only", run.label)
    md, table_csv = out / f"{stem}.md", out / f"{stem}.csv"
    md.write_text(render_markdown(runs, header=header), encoding="utf-8")
    table_csv.write_text(render_csv(runs), encoding="utf-8")
    return md, table_csv
