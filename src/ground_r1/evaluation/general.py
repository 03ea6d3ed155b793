"""General LVLM benchmarks end to end (SPEC §7): registry items -> predictions -> MM-Vet grading -> records.

One benchmark at a time, each in its own folder so that each resumes on its own:

- **Items.** :func:`read_benchmarks` finds every requested benchmark's release file (:func:`locate_benchmark`:
  our layout, ``DATASET_ROOT/{name}.jsonl`` with images in ``DATASET_ROOT/{name}/``, or the release's,
  ``DATASET_ROOT`` = the JSONL folder and ``IMAGE_ROOT`` = its ``LVLM_benchmarks`` folder with
  ``IMAGE_ROOT/{name}/``; a zoom-in benchmark's own folder or file, ``BenchmarkSpec.locate``) and validates every
  record of each, images included, before any inference. A record
  that cannot be evaluated is skipped (``file:line: field: why``, written to ``skipped_records.jsonl`` and
  counted in the summary); a benchmark whose file cannot be read at all is reported and the others run.
- **Protocols** (:data:`ground_r1.evaluation.identity.PROTOCOLS`, one vocabulary for every benchmark):
  ``baseline`` (``direct`` is its other name) is one turn with the benchmark's direct prompt (the question plus its
  answer-format suffix, e.g. "Respond with only the letter (A, B, C or D)."); ``ground_r1``
  is the multi-round rollout of training on the plain question (its template asks for ``<answer>`` tags);
  ``ground_sft`` is the fixed two turns of SPEC §8 around the direct prompt (the SFT model answers in plain
  text, so the answer-format suffix is kept; our choice, the release's general SFT script was not public).
  In every protocol the answer is read from the final turn by the benchmark's own parser. ``likelihood`` and
  ``ground_r1_likelihood`` score the options of a spec with a ``likelihood_rule`` (V*'s official rule,
  :mod:`ground_r1.evaluation.likelihood`) instead of reading a generated answer.
- **Judging** (:func:`ground_r1.evaluation.pipeline.judge_benchmark`): for a spec with ``needs_judge`` (MM-Vet; HR-Bench's optional official judge), its
  grader messages and its ``judge_plan`` (the official asks and reply rule) through the judge client of Evaluation I
  (its retries, cache and resume), into the benchmark folder's ``judgments.jsonl``. A grading that fails stays a failure: the item is excluded from the means and counted, never scored 0.
- **Records** (:func:`score_benchmark`): ``spec.score_prediction`` per predicted item; an item whose prediction
  is an error (unreadable image) is left out and counted; ``spec.summary_rows`` makes the summary table's rows.

These are the base :class:`~ground_r1.evaluation.benchmarks.spec.BenchmarkSpec`'s run hooks (``read_run``,
``eval_items``, ``judge_items``, ``score_run``), which the one pipeline (:mod:`ground_r1.evaluation.pipeline`)
calls; VisCoT and RefCOCO override them. Everything benchmark-specific is the spec's
(:mod:`ground_r1.evaluation.benchmarks.spec`, "How to add a benchmark"): this module never asks which class a
spec is.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ground_r1.data.records import ValidationIssue
from ground_r1.evaluation.benchmark_run import BenchmarkData, ReadOptions
from ground_r1.evaluation.benchmarks import (
    BenchmarkFileError,
    BenchmarkItem,
    BenchmarkSpec,
    get_benchmark,
    list_benchmarks,
)
from ground_r1.evaluation.identity import canonical_protocol, engine_protocol
from ground_r1.evaluation.inference import EvalItem
from ground_r1.evaluation.judge import PromptItem, load_judgments
from ground_r1.evaluation.predictions import load_predictions
from ground_r1.evaluation.summary import (
    ScoredBenchmark,
    SummaryRow,
    failed_row,
    render_summary_csv,
    render_summary_markdown,
)

logger = logging.getLogger(__name__)

__all__ = [
    "BenchmarkData",
    "GeneralDataError",
    "GeneralRead",
    "ScoredBenchmark",
    "failed_row",
    "file_line",
    "final_text",
    "SummaryRow",
    "render_summary_csv",
    "render_summary_markdown",
    "summary_rows",
    "grading_items",
    "keep_single_image",
    "load_benchmarks",
    "locate_benchmark",
    "read_benchmarks",
    "score_benchmark",
    "score_folder",
    "to_eval_items",
    "write_demo_dataset",
    "write_demo_records",
]


class GeneralDataError(ValueError):
    """One or more benchmark files cannot be evaluated; the message lists every problem of every file."""


@dataclass
class GeneralRead:
    """What :func:`read_benchmarks` read: the benchmarks that can run, and why each other one cannot."""

    loaded: list[BenchmarkData]
    failed: dict[str, str] = field(default_factory=dict)  # benchmark -> why it cannot run


def locate_benchmark(
    spec: BenchmarkSpec, dataset_root: str | os.PathLike[str], image_root: str | os.PathLike[str] | None = None
) -> tuple[Path, Path]:
    """(file to read, image root) of a benchmark: :meth:`BenchmarkSpec.locate` (the release's layout, or a zoom-in
    benchmark's own folders).

    Raises:
        FileNotFoundError: nothing found (the paths tried are named).
    """
    return spec.locate(dataset_root, image_root)


def write_demo_records(spec: BenchmarkSpec, folder: str | os.PathLike[str]) -> Path:
    """Write one spec's part of the built-in demo set into ``folder``: ``{name}.jsonl`` of its ``demo_records``
    and their images in ``{name}/`` (a red square on white, 112 x 112); returns the folder."""
    from PIL import Image, ImageDraw

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    (root / spec.default_file).write_text("".join(json.dumps(r) + "\n" for r in spec.demo_records), encoding="utf-8")
    for record in spec.demo_records:
        path = root / spec.name / record["Image"]
        path = path if path.suffix else path.with_name(path.name + spec.default_image_ext)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            image = Image.new("RGB", (112, 112), "white")
            ImageDraw.Draw(image).rectangle((32, 40, 80, 88), fill=(220, 30, 30))
            image.save(path)
    return root


def write_demo_dataset(folder: str | os.PathLike[str]) -> Path:
    """The built-in demo set of every registered general benchmark with ``demo_records``
    (:func:`write_demo_records` each), in ``folder``; returns the folder, usable as a dataset root."""
    for spec in (get_benchmark(name) for name in list_benchmarks()):
        if spec.demo_records:
            write_demo_records(spec, folder)
    return Path(folder)


def keep_single_image(data: BenchmarkData) -> None:
    """Skip the records with several images: the evaluation protocols show one image per question."""
    kept = []
    for item in data.items:
        if isinstance(item.image, list):
            data.skipped.append(
                ValidationIssue(
                    item.source_file,
                    item.line,
                    "Image",
                    f"{len(item.image)} images; the evaluation protocols show one image per question",
                )
            )
        else:
            kept.append(item)
    data.items = kept


def read_benchmarks(
    names: Iterable[str],
    dataset_root: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    max_items: int | None = None,
    check_images: bool = True,
) -> GeneralRead:
    """Locate, read and validate every record of every named benchmark (registry names or aliases), then keep
    the first ``max_items`` items of each (``spec.first_items``: MMBench keeps the first ``max_items`` questions
    with all their rotated copies). One benchmark's bad file never stops the others: it is in ``failed`` with
    why, and the others are read.

    Raises:
        UnknownBenchmarkError: a name that is no benchmark (a configuration error: check names first).
    """
    loaded: list[BenchmarkData] = []
    failed: dict[str, str] = {}
    for name in names:
        spec = get_benchmark(name)
        try:
            file, images = locate_benchmark(spec, dataset_root, image_root)
            loaded.append(spec.read_run(file, images, ReadOptions(max_items=max_items, check_images=check_images)))
        except (FileNotFoundError, BenchmarkFileError, ValueError, OSError) as exc:
            logger.error("%s CANNOT RUN: %s", spec.name, exc)
            failed[spec.name] = str(exc)
    return GeneralRead(loaded, failed)


def load_benchmarks(
    names: Iterable[str],
    dataset_root: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    max_items: int | None = None,
    check_images: bool = True,
) -> list[BenchmarkData]:
    """:func:`read_benchmarks`, strict: any benchmark that cannot run or any skipped record raises.

    Raises:
        GeneralDataError: an unknown name, a missing file or a malformed record; every problem found in every
            file is listed (``file:line: field: why``).
    """
    problems: list[str] = []
    try:
        result = read_benchmarks(
            names, dataset_root, image_root=image_root, max_items=max_items, check_images=check_images
        )
    except ValueError as exc:  # an unknown benchmark name
        raise GeneralDataError(f"cannot evaluate the general benchmarks:\n{exc}") from None
    problems += list(result.failed.values())
    problems += [str(issue) for data in result.loaded for issue in data.skipped]
    if problems:
        raise GeneralDataError("cannot evaluate the general benchmarks:\n" + "\n".join(problems))
    return result.loaded


def _prompt(spec: BenchmarkSpec, item: BenchmarkItem, protocol: str) -> str:
    return spec.question(item) if engine_protocol(protocol) == "ground_r1" else spec.direct_prompt(item)


def to_eval_items(data: BenchmarkData, protocol: str) -> list[EvalItem]:
    """The inference items of a benchmark under ``protocol`` (the question each protocol poses, see module doc).

    Raises:
        ValueError: an unknown protocol, or a multi-image record (the protocols show one image; named by
            file:line).
    """
    if canonical_protocol(protocol) not in data.spec.supported_protocols():  # an unknown one raises, listing them
        raise ValueError(
            f"{data.name} cannot be evaluated under protocol {protocol!r}: it supports "
            + ", ".join(data.spec.supported_protocols())
        )
    data.spec.prepare_images(data.items)  # images embedded in a TSV/parquet are decoded once, here
    out = []
    for item in data.items:
        if isinstance(item.image, list):
            raise ValueError(
                f"{item.source_file}:{item.line}: Image: {len(item.image)} images; the evaluation protocols show "
                "one image per question: give this record a single Image"
            )
        fields = {
            "benchmark": data.name,
            "problem": item.question,
            "solution": item.answer,
            "category": item.category,
            "line": item.line,
        }
        out.append(
            EvalItem(
                key=item.key,
                dataset=data.name,
                question=_prompt(data.spec, item, protocol),
                image=item.image,
                fields=fields,
            )
        )
    return out


def final_text(prediction: Mapping[str, Any]) -> str:
    """The final assistant turn of a prediction record ("" when it has none)."""
    turns = prediction.get("turns") or []
    return turns[-1] if turns else ""


def grading_items(
    spec: BenchmarkSpec, items: list[BenchmarkItem], predictions: Mapping[str, Mapping[str, Any]]
) -> list[PromptItem]:
    """One grading item per predicted item: the spec's grader messages, then its retry messages."""
    out = []
    for item in items:
        prediction = predictions.get(item.key)
        if prediction is None or prediction.get("status") != "ok":
            continue
        text = final_text(prediction)
        out.append(
            PromptItem.build(item.key, spec.grader_messages(item, text), spec.grader_messages(item, text, retry=True))
        )
    return out


def score_benchmark(
    data: BenchmarkData,
    predictions: Mapping[str, Mapping[str, Any]],
    grades: Mapping[str, Mapping[str, Any]] | None = None,
) -> ScoredBenchmark:
    """``spec.score_item`` of every predicted item (the final turn's text).

    ``grades`` (MM-Vet): grader records by key; only an ``ok`` record gives a score, anything else (a
    failure, no record, ``grades`` None: nothing graded) gives ``judge_score=None``: excluded and counted.
    """
    spec = data.spec
    scored = ScoredBenchmark(records=[], graded=grades is not None)
    if grades is not None:
        models = {str(g.get("model")) for g in grades.values() if g.get("status") == "ok" and g.get("model")}
        scored.grader = ", ".join(sorted(models))
    for item in data.items:
        prediction = predictions.get(item.key)
        if prediction is None:
            scored.missing += 1
            continue
        if prediction.get("status") != "ok":
            scored.errors += 1
            continue
        judge_score = None
        if spec.needs_judge and grades is not None:
            grade = grades.get(item.key)
            if grade is not None and grade.get("status") == "ok" and grade.get("score") is not None:
                judge_score = float(grade["score"])
        record = spec.score_prediction(item, prediction, judge_score=judge_score)
        record["protocol"] = prediction.get("protocol")
        scored.records.append(record)
    if scored.errors or scored.missing:
        logger.warning(
            "%s: %d prediction error(s) and %d item(s) without prediction are left out of the "
            "metrics (rerun to retry them)",
            spec.name,
            scored.errors,
            scored.missing,
        )
    return scored


def score_folder(data: BenchmarkData, folder: Path, protocol: str) -> list[SummaryRow]:
    """Score one benchmark's finished folder: ``scores.jsonl`` (a record per predicted item) and ``metrics.json``
    (the metrics, the file read, the counts, each summary row's number and error bar); its summary rows.

    Raises:
        ValueError, OSError: its predictions or judgments cannot be read (named).
    """
    from ground_r1.evaluation.judge import judgments_path

    grades_path = judgments_path(folder)
    grades = load_judgments(grades_path) if data.spec.needs_judge and grades_path.is_file() else None
    predictions = {str(p["key"]): p for p in load_predictions(folder)}
    scored = score_benchmark(data, predictions, grades)
    metrics = data.spec.aggregate(scored.records)
    (folder / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in scored.records), encoding="utf-8")
    extra = {
        "benchmark": data.name,
        "version": data.spec.version,
        "protocol": protocol,
        "file": str(data.file),
        "records_read": data.records_read,
        "skipped": data.skipped_records,
        "errors": scored.errors,
        "missing": scored.missing,
    }
    rows = summary_rows(data.spec, metrics, scored, skipped=data.skipped_records)
    # One entry per table row (a list: the headline and its variant rows may share a metric name).
    uncertainty = [
        {
            "metric": r.metric,
            "rule": r.rule,
            "variant": r.variant,
            "value": r.score,
            "se": r.se,
            "items": r.items,
            "method": r.error_bar,
        }
        for r in rows
    ]
    (folder / "metrics.json").write_text(
        json.dumps({**extra, "metrics": metrics, "uncertainty": uncertainty}, indent=2) + "\n", encoding="utf-8"
    )
    return rows


# ------------------------------------------------------------------------------------------ summary table


def summary_rows(
    spec: BenchmarkSpec, metrics: Mapping[str, Any], scored: ScoredBenchmark, skipped: int = 0
) -> list[SummaryRow]:
    """The summary table's rows of one benchmark: its spec's (``BenchmarkSpec.summary_rows``)."""
    return spec.summary_rows(dict(metrics), scored, skipped)


def file_line(data: BenchmarkData) -> str:
    """Per file: records read, evaluated, skipped and why (``FILE: 900 records read, 900 evaluated, 0 skipped``)."""
    from ground_r1.evaluation.outcome import RecordsReport, reason_counts

    return (
        f"{data.name}: "
        + RecordsReport(
            file=str(data.file),
            records_read=data.records_read,
            skipped=data.skipped_records,
            skipped_by_field=reason_counts(data.skipped),
            evaluated=len(data.items),
        ).line()
    )
