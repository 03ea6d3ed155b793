"""The one evaluation pipeline (SPEC §7): read -> infer -> judge -> score -> table, for any registered benchmark.

Every benchmark (VisCoT, RefCOCO, the general set, the zoom-in benchmarks) is a spec of one registry
(:mod:`ground_r1.evaluation.benchmarks`); this module calls the spec's run hooks and never asks which class a spec
is. Each stage is resumable and reads what the previous one wrote in the benchmark's folder:

- **read** (:func:`read_runs`): every record of every requested file read and validated before any inference
  (``spec.locate_data`` / ``spec.demo_data``, then ``spec.read_run``); the skipped records are listed
  (:func:`write_records_report`). A benchmark whose file cannot be read stops a run of that benchmark alone
  (a configuration error) and is reported as "could not run" in a run of several.
- **infer** (:func:`infer`): the inference items of the protocol (``spec.eval_items``) through the engine, this
  process's share (``items[rank::world_size]``), finished keys skipped; rank 0 merges. V*'s option-likelihood
  protocols score options instead (:mod:`ground_r1.evaluation.likelihood`).
- **judge** (:func:`judge`): a spec with ``needs_judge`` asks its judge (``judge_items``, ``judge_plan``) over an
  OpenAI-compatible endpoint into the folder's ``judgments.jsonl``: resumable and cached; no endpoint: NOT JUDGED,
  said loudly, and the table says so.
- **score** (:func:`score`): ``spec.score_run`` writes the folder's per-item scores and returns its summary rows.
- **table** (:func:`table`): a run of one benchmark in its own folder writes that spec's table
  (``spec.write_run_table``: VisCoT's per sub-dataset, RefCOCO's per split) or, for a spec whose table is its summary
  rows, ``summary.md``; a run of several writes ``summary.md`` / ``summary.csv`` across them.

Folders: a run of one benchmark (``--data_path``, or the ``eval/`` launchers' VisCoT or RefCOCO) writes into
``OUTPUT_DIR`` itself; a run of named benchmarks (``--benchmarks``) gives each its own ``OUTPUT_DIR/{name}/``, so
each resumes on its own.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ground_r1.evaluation import outcome
from ground_r1.evaluation.benchmark_run import BenchmarkData, ReadOptions, RunOptions
from ground_r1.evaluation.benchmarks import BenchmarkFileError, BenchmarkSpec
from ground_r1.evaluation.identity import LIKELIHOOD_PROTOCOLS, InferenceConfig
from ground_r1.evaluation.predictions import MERGED_NAME, load_predictions
from ground_r1.evaluation.processes import DistContext, barrier
from ground_r1.evaluation.summary import SummaryRow, failed_row, render_summary_csv, render_summary_markdown

logger = logging.getLogger(__name__)

__all__ = [
    "SUMMARY_CSV",
    "SUMMARY_MD",
    "BenchmarkRun",
    "RunRead",
    "incomplete_count",
    "infer",
    "judge",
    "judge_benchmark",
    "read_runs",
    "records_note",
    "score",
    "table",
    "write_records_report",
]

SUMMARY_MD, SUMMARY_CSV = "summary.md", "summary.csv"


@dataclass
class BenchmarkRun:
    """One benchmark of a run: its spec, its folder, and its data (None when the data was not read: a rerun of
    the judge, score or table stages of a benchmark whose predictions carry everything its scores need)."""

    spec: BenchmarkSpec
    folder: Path
    data: BenchmarkData | None = None

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class RunRead:
    """The benchmarks that can run, and why each other one cannot (a run of several: the others run)."""

    runs: list[BenchmarkRun]
    failed: dict[str, str] = field(default_factory=dict)
    per_benchmark: bool = True  # each benchmark in OUTPUT_DIR/{name}/ (else the one benchmark in OUTPUT_DIR)
    data_read: bool = True  # the data files were read (every stage but a rerun of the later ones)


# ------------------------------------------------------------------------------------------------- read


def read_runs(
    specs: Sequence[BenchmarkSpec],
    output_dir: str | os.PathLike[str],
    *,
    per_benchmark: bool,
    data_path: str | None,
    dataset_root: str | None,
    image_root: str | None,
    options: ReadOptions,
    ctx: DistContext,
    read_data: bool = True,
) -> RunRead:
    """Locate and read every benchmark (the built-in demo set when neither ``data_path`` nor ``dataset_root`` is
    given: rank 0 writes it, every process reads it, each benchmark's ``demo_max_items`` unless ``max_items`` is set). ``read_data`` False: only the folders (a rerun of the later
    stages of benchmarks that score from their predictions alone).

    Raises:
        FileNotFoundError, ValueError, OSError: the file of a run's only benchmark cannot be read (named); in a run
            of several the benchmark is in ``failed`` with why, and the others are read.
    """
    out = Path(output_dir)
    runs = [BenchmarkRun(spec, out / spec.name if per_benchmark else out) for spec in specs]
    result = RunRead([], per_benchmark=per_benchmark, data_read=read_data)
    if not read_data:
        result.runs = runs
        return result
    demo = data_path is None and dataset_root is None
    if demo and ctx.is_main:
        for run in runs:
            try:
                run.spec.demo_data(out, write=True)
            except ValueError:
                pass  # said again, by every process, when the data is read below
    if demo:
        barrier(ctx)
    for run in runs:
        try:
            file, images = (
                run.spec.demo_data(out, write=False)
                if demo
                else run.spec.locate_data(data_path, dataset_root, image_root)
            )
            limit = options.max_items if options.max_items is not None or not demo else run.spec.demo_max_items
            run.data = run.spec.read_run(file, images, dataclasses.replace(options, max_items=limit))
        except (FileNotFoundError, BenchmarkFileError, ValueError, OSError) as exc:
            if not per_benchmark:
                raise
            logger.error("%s CANNOT RUN: %s", run.name, exc)
            result.failed[run.name] = str(exc)
            continue
        if run.data.skipped and not options.skip_bad_records:
            from ground_r1.data.records import RecordValidationError
            from ground_r1.evaluation.inference import EVAL_SKIP_HINT

            raise RecordValidationError(run.data.skipped, EVAL_SKIP_HINT)
        if demo:
            logger.warning("no data given: %s reads the built-in demo set %s (a demo, not a result)", run.name, file)
        result.runs.append(run)
    return result


def write_records_report(read: RunRead, output_dir: str | os.PathLike[str]) -> int:
    """The run's record lists in ``OUTPUT_DIR``: ``skipped_records.jsonl`` (``file:line: field: why``) and
    ``evidence_box_issues.jsonl`` (records evaluated with their box metric n/a), each line naming its benchmark in a
    run of several; a run of one benchmark also writes ``records_report.json`` (the counts its table shows). Stale
    lists of an earlier run are removed. Returns the number of skipped records."""
    from ground_r1.data.records import BOX_ISSUES_NAME, SKIPPED_RECORDS_NAME, write_issues

    out = Path(output_dir)
    for name, of in ((SKIPPED_RECORDS_NAME, "skipped"), (BOX_ISSUES_NAME, "box_notes")):
        path = out / name
        path.unlink(missing_ok=True)
        for run in read.runs:
            issues = getattr(run.data, of)
            if issues:
                extra = {"benchmark": run.name} if read.per_benchmark else None
                write_issues(issues, path, extra=extra, append=True)
    total = sum(run.data.skipped_records for run in read.runs)
    if not read.per_benchmark:
        for run in read.runs:
            data = run.data
            report = outcome.RecordsReport(
                file=str(data.file),
                records_read=data.records_read,
                skipped=data.skipped_records,
                skipped_by_field=outcome.reason_counts(data.skipped),
                evaluated=data.evaluated_records,
                box_issues=data.box_issue_records,
            )
            report.write(out)
            log = logger.warning if data.skipped else logger.info
            where = f"; skipped records listed in {out / SKIPPED_RECORDS_NAME}" if data.skipped else ""
            log("%s%s", report.line(), where)
        return total
    for run in read.runs:
        logger.log(logging.WARNING if run.data.skipped else logging.INFO, "%s", file_line(run.data))
    if total:
        logger.warning("%d record(s) skipped in all; each is listed in %s", total, out / SKIPPED_RECORDS_NAME)
    return total


def file_line(data: BenchmarkData) -> str:
    """Per file: records read, evaluated, skipped and why (``MME: FILE: 900 records read, 900 evaluated, ...``)."""
    return (
        f"{data.name}: "
        + outcome.RecordsReport(
            file=str(data.file),
            records_read=data.records_read,
            skipped=data.skipped_records,
            skipped_by_field=outcome.reason_counts(data.skipped),
            evaluated=data.evaluated_records,
        ).line()
    )


# ------------------------------------------------------------------------------------------------ infer


def infer(
    runs: Sequence[BenchmarkRun],
    protocol: str,
    config_of: Callable[[BenchmarkSpec], InferenceConfig],
    make_engine: Callable[[], Any],
    load_likelihood_model: Callable[[Any], tuple[Any, Any]],
    ctx: DistContext,
    *,
    progress: bool = True,
) -> None:
    """Predict every benchmark into its folder (``config_of(spec)``: the settings its predictions are made and
    checked with); ``make_engine`` builds the one engine, and only when something is left to predict.
    ``load_likelihood_model(rollout)``: the (model, processor) that scores V*'s options."""
    from ground_r1.evaluation import inference

    for run in runs:
        data = run.data
        if protocol in LIKELIHOOD_PROTOCOLS:  # V*'s official scoring: no answer is generated
            from ground_r1.evaluation.likelihood import run_likelihood

            items = data.items
            run.spec.prepare_images(items)
            rollout = make_engine() if protocol == "ground_r1_likelihood" else None
            model, processor = load_likelihood_model(rollout)
            written = run_likelihood(
                run.spec,
                items,
                model.eval(),
                processor,
                run.folder,
                config_of(run.spec),
                rank=ctx.rank,
                world_size=ctx.world_size,
                rollout=rollout,
            )
            done: Any = f"{written} item(s) scored by option likelihood"
        else:
            items = run.spec.eval_items(data, protocol)
            done = inference.run_inference(
                items,
                make_engine,
                run.folder,
                config_of(run.spec),
                rank=ctx.rank,
                world_size=ctx.world_size,
                progress=progress,
            )
        logger.info("%s rank %d: %s", run.name, ctx.rank, done)
        barrier(ctx)
        if ctx.is_main:
            inference.finish(run.folder, items)


# ------------------------------------------------------------------------------------------------ judge


def judge(
    runs: Sequence[BenchmarkRun],
    enabled: bool,
    config_for: Callable[[BenchmarkSpec], Any],
    cache_path: str | os.PathLike[str],
) -> int:
    """Each judged benchmark's judge (``spec.needs_judge``) when an endpoint is configured (``config_for(spec)``: the
    :class:`~ground_r1.evaluation.judge.JudgeConfig`); returns how many items were left unjudged (failed or
    unparseable: a rerun judges only those)."""
    from ground_r1.evaluation.judge import judgments_path

    unjudged = 0
    for run in (r for r in runs if r.spec.needs_judge):
        if not enabled:
            logger.warning("NOTHING WAS JUDGED for %s: the judge stage was skipped (--no-judge)", run.name)
            continue
        config = config_for(run.spec)
        if not config.is_configured():
            logger.warning(
                "NOTHING WAS JUDGED for %s: no judge endpoint configured (set OPENAI_BASE_URL and/or "
                "OPENAI_API_KEY, and OPENAI_MODEL); the table says so (VisCoT: rule-based scores only; MM-Vet: n/a)",
                run.name,
            )
            continue
        predictions = {str(p["key"]): p for p in load_predictions(run.folder)}
        report = judge_benchmark(
            run.spec, run.data, predictions, judgments_path(run.folder), config, cache_path=cache_path
        )
        logger.info("%s: %s", run.name, report.summary())
        unjudged += report.failed + report.unparseable
    return unjudged


def judge_benchmark(
    spec: BenchmarkSpec,
    data: BenchmarkData | None,
    predictions: dict[str, dict[str, Any]],
    out_path: str | os.PathLike[str],
    config: Any,
    *,
    cache_path: str | os.PathLike[str] | None = None,
    client: Any = None,
) -> Any:
    """Judge one benchmark's successful predictions with its spec's judge (``judge_items``, ``judge_plan``) into
    ``out_path`` (resumable; cached by exact messages when ``cache_path``); the
    :class:`~ground_r1.evaluation.judge.JudgeReport`.

    Raises:
        ValueError: the benchmark is scored by rule (it has no judge).
        JudgeNotConfiguredError: no endpoint and no key in ``config``.
    """
    from ground_r1.evaluation.judge import Judge

    if not spec.needs_judge:
        raise ValueError(f"{spec.name} is scored by rule: it has no judge")
    items = spec.judge_items(data, predictions)
    logger.info("%s: judging %d predictions with %s", spec.name, len(items), config.describe())
    return Judge(config, client=client, plan=spec.judge_plan()).judge_items(items, out_path, cache_path=cache_path)


# ------------------------------------------------------------------------------------------ score, table


def score(read: RunRead, options: RunOptions) -> list[SummaryRow]:
    """``spec.score_run`` of every benchmark; the summary rows (a failed row for each benchmark that could not run
    or be scored; the items each leaves out are counted by :func:`incomplete_count`).

    Raises:
        ValueError, OSError: a run of one benchmark whose folder cannot be scored (named).
    """
    rows: list[SummaryRow] = []
    for run in read.runs:
        try:
            scored = run.spec.score_run(run.data, run.folder, options)
        except (ValueError, OSError) as exc:  # one benchmark's unreadable outputs never stop the others
            if not read.per_benchmark:
                raise
            logger.error("%s: cannot score: %s", run.name, exc)
            read.failed[run.name] = f"cannot score: {exc}"
            continue
        rows.extend(scored)
    read.runs = [run for run in read.runs if run.name not in read.failed]
    rows.extend(failed_row(name, why) for name, why in read.failed.items())
    return rows


def records_note(out: Path) -> str:
    """A one-benchmark table's line on its data file: records read, evaluated, skipped (and why), box metric n/a."""
    report = outcome.load_report(out)
    if report is None:
        return ""
    note = f"- records: {report.line()}"
    if report.skipped:
        note += "; each skipped record is listed in skipped_records.jsonl"
    if report.box_issues:
        note += "; the unusable evidence boxes in evidence_box_issues.jsonl"
    return note + "\n"


def table(
    read: RunRead, rows: list[SummaryRow], options: RunOptions, output_dir: str | os.PathLike[str], label: str
) -> str:
    """The run's table, written and returned as Markdown: a one-benchmark run's own table (``table.md`` /
    ``table.csv`` and its records line) when its spec has one, else ``summary.md`` / ``summary.csv`` of ``rows``
    (``label``: the run's column name there)."""
    from ground_r1.rollout_settings import run_header

    out = Path(output_dir)
    if not read.per_benchmark and len(read.runs) == 1:
        run = read.runs[0]
        markdown = run.spec.write_run_table(run.folder, options)
        if markdown is not None:
            note = records_note(run.folder)
            if note:
                markdown += note
                (run.folder / "table.md").write_text(markdown, encoding="utf-8")
            return markdown
    files = [file_line(r.data) for r in read.runs if r.data is not None] + [
        f"{name}: COULD NOT RUN: {why.splitlines()[0]}" for name, why in read.failed.items()
    ]
    header = [line for line in (run_header(r.folder) for r in read.runs[:1]) if line]
    markdown = render_summary_markdown(rows, label, files, header=header)
    (out / SUMMARY_MD).write_text(markdown, encoding="utf-8")
    (out / SUMMARY_CSV).write_text(render_summary_csv(rows), encoding="utf-8")
    return markdown


def incomplete_count(read: RunRead, skipped: int) -> int:
    """What exit 4 counts: skipped records (read now, else the folder's ``records_report.json``), predictions that
    failed (an unreadable image mid-run), items without a prediction, and benchmarks that could not run."""
    total = len(read.failed)
    for run in read.runs:
        predictions = load_predictions(run.folder) if (run.folder / MERGED_NAME).is_file() else []
        errors = sum(1 for p in predictions if p.get("status") != "ok")
        if errors:
            logger.warning(
                "%s: %d prediction(s) failed (see their 'error' in predictions.jsonl); the table leaves them out",
                run.name,
                errors,
            )
        total += errors
        if run.data is not None and predictions:
            done = {str(p["key"]) for p in predictions}
            total += sum(1 for key in {item.key for item in run.data.items} if key not in done)
    if read.data_read:
        return total + skipped
    reports = [outcome.load_report(run.folder) for run in read.runs]
    return total + sum(report.skipped for report in reports if report is not None)
