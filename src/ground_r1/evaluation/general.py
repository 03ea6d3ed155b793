"""General LVLM benchmarks end to end (SPEC §7): registry items -> predictions -> MM-Vet grading -> records.

One benchmark at a time, each in its own folder so that each resumes on its own:

- **Items.** :func:`read_benchmarks` finds every requested benchmark's release file (:func:`locate_benchmark`:
  our layout, ``DATASET_ROOT/{name}.jsonl`` with images in ``DATASET_ROOT/{name}/``, or the release's,
  ``DATASET_ROOT`` = the JSONL folder and ``IMAGE_ROOT`` = its ``LVLM_benchmarks`` folder with
  ``IMAGE_ROOT/{name}/``) and validates every record of each, images included, before any inference. A record
  that cannot be evaluated is skipped (``file:line: field: why``, written to ``skipped_records.jsonl`` and
  counted in the summary); a benchmark whose file cannot be read at all is reported and the others run.
- **Protocols** (:data:`PROTOCOLS`): ``direct`` is the one-turn baseline with the benchmark's direct prompt
  (the question plus its answer-format suffix, e.g. "Respond with only the letter (A, B, C or D)."); ``ground_r1``
  is the multi-round rollout of training on the plain question (its template asks for ``<answer>`` tags);
  ``ground_sft`` is the fixed two turns of SPEC §8 around the direct prompt (the SFT model answers in plain
  text, so the answer-format suffix is kept; our choice, the release's general SFT script was not public).
  In every protocol the answer is read from the final turn by the benchmark's own parser.
- **MM-Vet grading** (:func:`grade_mmvet`): the official grader's messages and retry rule
  (:data:`MMVET_ASK_PLAN`) through the judge client of Evaluation I (its retries, cache and resume). A
  grading that fails stays a failure: the item is excluded from the means and counted, never scored 0.
- **Records** (:func:`score_benchmark`): ``spec.score_item`` per predicted item; an item whose prediction
  is an error (unreadable image) is left out and counted.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ground_r1.data.records import ValidationIssue
from ground_r1.evaluation.benchmarks import (
    BenchmarkFileError,
    BenchmarkItem,
    BenchmarkSpec,
    get_benchmark,
    parse_mmvet_score,
)
from ground_r1.evaluation.benchmarks.choice import ChoiceSpec
from ground_r1.evaluation.benchmarks.mmbench import MMBENCH_SINGLE_PASS_RULE, MMBenchSpec
from ground_r1.evaluation.benchmarks.mme import MMESpec
from ground_r1.evaluation.benchmarks.mmmu import MMMUSpec
from ground_r1.evaluation.benchmarks.mmvet import (
    MMVET_GRADER_MAX_TRIES,
    MMVET_GRADER_MODEL,
    MMVetSpec,
    mmvet_grader_temperature,
)
from ground_r1.evaluation.benchmarks.pope import PopeSpec
from ground_r1.evaluation.inference import EvalItem
from ground_r1.evaluation.judge import AskPlan, Judge, JudgeConfig, JudgeReport, PromptItem

logger = logging.getLogger(__name__)

__all__ = [
    "GRADES_NAME",
    "MMVET_ASK_PLAN",
    "PROTOCOLS",
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
    "grade_mmvet",
    "inference_protocol",
    "load_benchmarks",
    "locate_benchmark",
    "mmvet_grading_items",
    "read_benchmarks",
    "score_benchmark",
    "to_eval_items",
]

PROTOCOLS = ("direct", "ground_r1", "ground_sft")
_INFERENCE_PROTOCOL = {"direct": "baseline", "ground_r1": "ground_r1", "ground_sft": "ground_sft"}
GRADES_NAME = "mmvet_grades.jsonl"

# The official MM-Vet evaluator: up to 5 asks, the retry message after the first, temperature +0.5 per ask.
MMVET_ASK_PLAN = AskPlan(
    parse=parse_mmvet_score,
    max_asks=MMVET_GRADER_MAX_TRIES,
    temperature=mmvet_grader_temperature,
    expects="score in [0, 1]",
)


class GeneralDataError(ValueError):
    """One or more benchmark files cannot be evaluated; the message lists every problem of every file."""


@dataclass
class BenchmarkData:
    """A benchmark ready to run: its spec, the file read, the image root used, its items (after ``max_items``),
    every skipped record's problems and how many records the whole file holds."""

    spec: BenchmarkSpec
    file: Path
    image_root: Path
    items: list[BenchmarkItem]
    skipped: list[ValidationIssue] = field(default_factory=list)
    records_read: int = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def skipped_records(self) -> int:
        return len({issue.line for issue in self.skipped})


@dataclass
class GeneralRead:
    """What :func:`read_benchmarks` read: the benchmarks that can run, and why each other one cannot."""

    loaded: list[BenchmarkData]
    failed: dict[str, str] = field(default_factory=dict)  # benchmark -> why it cannot run


def inference_protocol(protocol: str) -> str:
    """The Evaluation I protocol running a general protocol (``direct`` is the one-turn ``baseline``).

    Raises:
        ValueError: an unknown protocol (the valid names are listed).
    """
    if protocol not in _INFERENCE_PROTOCOL:
        raise ValueError(f"unknown general-benchmark protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    return _INFERENCE_PROTOCOL[protocol]


def locate_benchmark(
    spec: BenchmarkSpec, dataset_root: str | os.PathLike[str], image_root: str | os.PathLike[str] | None = None
) -> tuple[Path, Path]:
    """(release file, image root) of a benchmark.

    The file is ``DATASET_ROOT/{default_file}`` (e.g. ``MME.jsonl``), else ``DATASET_ROOT/{name}/{default_file}``.
    Images: with ``image_root`` (the release's layout: the folder the ``LVLM_benchmarks`` zip unpacks to),
    ``IMAGE_ROOT/{name}/``; else ``DATASET_ROOT/{name}/`` when that folder exists (the release's per-benchmark
    image folders: POPE's and RealWorldQA's ``images/img_0.png`` are different files), else the file's folder.

    Raises:
        FileNotFoundError: neither file exists, or ``IMAGE_ROOT/{name}/`` does not (the paths tried are named).
    """
    root = Path(dataset_root).expanduser()
    candidates = [root / spec.default_file, root / spec.name / spec.default_file]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise FileNotFoundError(
            f"{spec.name}: benchmark file not found: tried {candidates[0]} and {candidates[1]} (put the release's "
            f"{spec.default_file} in DATASET_ROOT, or leave {spec.name} out of BENCHMARKS)"
        )
    if image_root is not None:
        folder = Path(image_root).expanduser() / spec.name
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{spec.name}: image folder not found: {folder} (IMAGE_ROOT holds one folder per benchmark, as the "
                f"release's LVLM_benchmarks/{spec.name}/)"
            )
        return found, folder
    folder = root / spec.name
    return found, folder if folder.is_dir() else found.parent


def _single_image(data: BenchmarkData) -> None:
    """Skip the records with several images: the evaluation protocols show one image per question."""
    kept = []
    for item in data.items:
        if isinstance(item.image, list):
            data.skipped.append(ValidationIssue(item.source_file, item.line, "Image",
                                                f"{len(item.image)} images; the evaluation protocols show one "
                                                "image per question"))
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
            result = spec.read(file, images, check_images=check_images)
        except (FileNotFoundError, BenchmarkFileError, ValueError, OSError) as exc:
            logger.error("%s CANNOT RUN: %s", spec.name, exc)
            failed[spec.name] = str(exc)
            continue
        data = BenchmarkData(spec, file, images, result.items, list(result.skipped), result.records_read)
        _single_image(data)
        if max_items:
            data.items = spec.first_items(data.items, max_items)  # MMBench: the first questions with all copies
        loaded.append(data)
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
        result = read_benchmarks(names, dataset_root, image_root=image_root, max_items=max_items,
                                 check_images=check_images)
    except ValueError as exc:  # an unknown benchmark name
        raise GeneralDataError(f"cannot evaluate the general benchmarks:\n{exc}") from None
    problems += list(result.failed.values())
    problems += [str(issue) for data in result.loaded for issue in data.skipped]
    if problems:
        raise GeneralDataError("cannot evaluate the general benchmarks:\n" + "\n".join(problems))
    return result.loaded


def _prompt(spec: BenchmarkSpec, item: BenchmarkItem, protocol: str) -> str:
    return spec.question(item) if protocol == "ground_r1" else spec.direct_prompt(item)


def to_eval_items(data: BenchmarkData, protocol: str) -> list[EvalItem]:
    """The inference items of a benchmark under ``protocol`` (the question each protocol poses, see module doc).

    Raises:
        ValueError: an unknown protocol, or a multi-image record (the protocols show one image; named by
            file:line).
    """
    inference_protocol(protocol)
    out = []
    for item in data.items:
        if isinstance(item.image, list):
            raise ValueError(
                f"{item.source_file}:{item.line}: Image: {len(item.image)} images; the evaluation protocols show "
                "one image per question: give this record a single Image"
            )
        fields = {"benchmark": data.name, "problem": item.question, "solution": item.answer,
                  "category": item.category, "line": item.line}
        out.append(EvalItem(key=item.key, dataset=data.name, question=_prompt(data.spec, item, protocol),
                            image=item.image, fields=fields))
    return out


def final_text(prediction: Mapping[str, Any]) -> str:
    """The final assistant turn of a prediction record ("" when it has none)."""
    turns = prediction.get("turns") or []
    return turns[-1] if turns else ""


def mmvet_grading_items(
    spec: BenchmarkSpec, items: list[BenchmarkItem], predictions: Mapping[str, Mapping[str, Any]]
) -> list[PromptItem]:
    """One grading item per predicted MM-Vet item: the official messages, then the retry messages."""
    out = []
    for item in items:
        prediction = predictions.get(item.key)
        if prediction is None or prediction.get("status") != "ok":
            continue
        text = final_text(prediction)
        out.append(PromptItem.build(item.key, spec.grader_messages(item, text),
                                    spec.grader_messages(item, text, retry=True)))
    return out


def grade_mmvet(
    data: BenchmarkData,
    predictions: Mapping[str, Mapping[str, Any]],
    out_path: str | os.PathLike[str],
    config: JudgeConfig,
    *,
    cache_path: str | os.PathLike[str] | None = None,
    client: Any = None,
) -> JudgeReport:
    """Grade MM-Vet predictions into ``out_path`` (resumable; cached by exact messages when ``cache_path``).

    Raises:
        JudgeNotConfiguredError: no endpoint and no key in ``config``.
    """
    items = mmvet_grading_items(data.spec, data.items, predictions)
    logger.info("MM-Vet: grading %d answers with %s", len(items), config.describe())
    return Judge(config, client=client, plan=MMVET_ASK_PLAN).judge_items(items, out_path, cache_path=cache_path)


@dataclass
class ScoredBenchmark:
    """Per-item records and what was left out: ``errors`` (prediction errors), ``missing`` (no prediction);
    ``grader``: the MM-Vet grader model(s) named by the grading records used ("" when none)."""

    records: list[dict[str, Any]]
    errors: int = 0
    missing: int = 0
    graded: bool = False
    grader: str = ""


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
        record = spec.score_item(item, final_text(prediction), judge_score=judge_score)
        record["protocol"] = prediction.get("protocol")
        scored.records.append(record)
    if scored.errors or scored.missing:
        logger.warning("%s: %d prediction error(s) and %d item(s) without prediction are left out of the "
                       "metrics (rerun to retry them)", spec.name, scored.errors, scored.missing)
    return scored


# ------------------------------------------------------------------------------------------ summary table


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


def summary_rows(
    spec: BenchmarkSpec, metrics: Mapping[str, Any], scored: ScoredBenchmark, skipped: int = 0
) -> list[SummaryRow]:
    """The paper's numbers of one benchmark, each with its rule and standard error: MME the summed score
    (perception + cognition), POPE accuracy and F1, MMBench CircularEval and single-pass accuracy, MM-Vet the
    graded total (its grader named), the others letter / exact-match accuracy (x100); a letter benchmark with rows
    whose answer is past their options (MMMU) also gets the headline rule's accuracy over the answerable rows,
    labelled; then each variant rule's number, labelled. ``skipped`` (the file's skipped records) is carried on
    every row. Each row's error bar is ``spec.estimate(records, which)`` of the statistic the row prints."""
    records = scored.records
    unparsed = sum(1 for r in records if r.get("parsed") is None)
    left_out = scored.errors + scored.missing

    def row(metric: str, score: Any, notes: str = "", extra_left_out: int = 0, rule: str = spec.rule,
            items: int | None = None, variant: bool = False, which: str = "headline") -> SummaryRow:
        value = float(score) if isinstance(score, (int, float)) else None
        estimate = spec.estimate(records, which)
        return SummaryRow(spec.name, metric, value, len(records) if items is None else items, unparsed,
                          left_out + extra_left_out, notes, rule, variant, skipped,
                          estimate.se if value is not None else None, estimate.describe())

    def variant_rows(metric: str, values: Mapping[str, Any], items: int | None = None) -> list[SummaryRow]:
        labels = dict(spec.variant_rules)
        return [row(metric, values[key], rule=labels[key], items=items, variant=True, which=f"variant:{key}")
                for key in labels if key in values]

    if isinstance(spec, MMESpec):
        notes = f"perception {metrics['perception']:.1f}, cognition {metrics['cognition']:.1f}"
        if metrics["missing_tasks"]:
            notes += f"; only {14 - len(metrics['missing_tasks'])}/14 tasks"
        metric = "total (perception + cognition)"
        return [row(metric, metrics["overall"], notes), *variant_rows(metric, metrics["variants"])]
    if isinstance(spec, PopeSpec):
        o = metrics["overall"]
        notes = f"precision {o['precision']:.1f}, recall {o['recall']:.1f}, yes-ratio {o['yes_ratio']:.1f}"
        return [row("accuracy", o["accuracy"], notes), row("F1", o["f1"], notes, which="f1"),
                *variant_rows("accuracy", o["variants"])]
    if isinstance(spec, MMBenchSpec):
        incomplete = metrics["n_incomplete"]
        notes = (f"{metrics['n_questions']} questions x their rotated copies ({metrics['n_rows']} rows); unparsed: "
                 "questions with an unread copy")
        notes += f"; {incomplete} question(s) with a copy missing left out" if incomplete else ""
        unread_questions = len({r["circular_group"] for r in records if r.get("parsed") is None})
        unread_originals = sum(1 for r in records if r.get("parsed") is None and r["circular_copy"] == 0)
        circular = row("CircularEval accuracy", metrics["circular_accuracy"], notes, extra_left_out=incomplete,
                       items=metrics["n_questions"])
        single = row("single-pass accuracy (originals only)", metrics["single_pass_accuracy"],
                     f"Question_id < 1,000,000: {metrics['n_originals']} questions",
                     rule=MMBENCH_SINGLE_PASS_RULE, items=metrics["n_originals"], which="single_pass")
        circular.unparsed, single.unparsed = unread_questions, unread_originals
        (lenient,) = variant_rows("CircularEval accuracy", {"lenient": metrics["variants"]["lenient"]},
                                  items=metrics["n_questions"])
        (per_row,) = variant_rows("per-row accuracy", {"release": metrics["variants"]["release"]})
        return [circular, single, lenient, per_row]
    if isinstance(spec, MMVetSpec):
        failed = metrics["n_failed"]
        if not scored.graded:
            notes = "NOT GRADED: no grader endpoint configured (OPENAI_*)"
        else:
            notes = f"graded {metrics['n_graded']}/{metrics['n_items']}"
            notes += f", {failed} grading(s) failed" if failed else ""
        grader = f"grader {scored.grader}" if scored.grader else "no grader ran"
        rule = f"MM-Vet official grader prompt ({grader}; official: {MMVET_GRADER_MODEL})"
        return [row("total (LLM-graded)", metrics["total"], notes, extra_left_out=failed, rule=rule)]
    result = [row("accuracy", spec.headline(dict(metrics)))]
    notes = []
    past = metrics.get("n_answer_past_options", 0) if isinstance(spec, ChoiceSpec) else 0
    if past:
        notes.append(f"all rows, as the release: {past} whose answer is past the kept options are right only if "
                     "the model names that letter")
    if isinstance(spec, MMMUSpec) and metrics.get("n_random_guess"):
        notes.append(f"{metrics['n_random_guess']} unread letter(s) scored wrong (official: a random guess, "
                     f"expected {metrics['accuracy_expected_with_guess']:.1f})")
    result[0].notes = "; ".join(notes)
    if past:  # issue 15: the rows the model could answer, by the headline rule, labelled
        answerable = metrics["n_answerable"]
        subset = row(f"accuracy over the {answerable} answerable rows", metrics["accuracy_answerable"],
                     f"the {past} rows past the kept options left out", items=answerable, which="answerable")
        subset.unparsed = sum(1 for r in records if r.get("answerable", True) and r.get("parsed") is None)
        result.append(subset)
    return result + variant_rows("accuracy", metrics.get("variants", {}))


def failed_row(name: str, why: str) -> SummaryRow:
    """The row of a benchmark that could not run (its reason's first line in the notes)."""
    return SummaryRow(name, "could not run", None, 0, 0, 0, "COULD NOT RUN: " + why.splitlines()[0])


_COLUMNS = ("Benchmark", "Metric", "Rule", "Score ± SE", "Items", "Skipped", "Unparsed", "Left out", "Notes")


def _fmt(score: float | None, se: float | None = None) -> str:
    if score is None:
        return "n/a"
    return f"{score:.1f}" + (f" ± {se:.1f}" if se is not None else " ± n/a")


def file_line(data: BenchmarkData) -> str:
    """Per file: records read, evaluated, skipped and why (``FILE: 900 records read, 900 evaluated, 0 skipped``)."""
    from ground_r1.evaluation.outcome import RecordsReport, reason_counts

    return f"{data.name}: " + RecordsReport(
        file=str(data.file), records_read=data.records_read, skipped=data.skipped_records,
        skipped_by_field=reason_counts(data.skipped), evaluated=len(data.items)).line()


def render_summary_markdown(
    rows: list[SummaryRow], label: str, files: Iterable[str] = (), header: list[str] | None = None
) -> str:
    """The summary across benchmarks as a Markdown table (scores x100 with their standard errors; MME summed, max
    2800); each number's rule is named, variant rules' numbers follow their benchmark's headline, marked
    "variant:"; then one line per file read (``files``, :func:`file_line`). ``header``: lines under the title
    (the run's rollout settings and their source)."""
    lines = [f"## General benchmarks ({label})", "", *(header or []), *([""] if header else []),
             "| " + " | ".join(_COLUMNS) + " |", "|" + "|".join("---" for _ in _COLUMNS) + "|"]
    for r in rows:
        rule = f"variant: {r.rule}" if r.variant else r.rule
        cells = (r.benchmark, r.metric, rule, _fmt(r.score, r.se), str(r.items), str(r.skipped), str(r.unparsed),
                 str(r.left_out), r.notes)
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Scores x100 (MME: sum of per-task accuracy + acc+). Rule: the scoring rule of each number (its "
              "reference and version, docs/metrics.md); rows marked \"variant:\" are the same predictions scored by "
              "another rule (ours where more lenient than the reference, the release's). Unparsed answers count as "
              "wrong; left-out items (prediction errors, failed MM-Vet gradings) are excluded and counted, never "
              "scored 0; skipped records could not be evaluated (skipped_records.jsonl names each as file:line: "
              "field: why).",
              "± is one standard error: of the mean over the Items for accuracies and MM-Vet; a seeded bootstrap "
              "(1,000 resamples, seed 0) for the MME total (over images within their task), POPE's F1 (over items) "
              "and MMBench's CircularEval (over questions); n/a with fewer than two items (docs/metrics.md, Error "
              "bars)."]
    files = list(files)
    if files:
        lines += ["", "Files read:", *(f"- {line}" for line in files)]
    return "\n".join(lines) + "\n"


def render_summary_csv(rows: list[SummaryRow]) -> str:
    """The same table as CSV (score empty when not available; full precision)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["benchmark", "metric", "rule", "variant", "score", "se", "items", "skipped", "unparsed",
                     "left_out", "notes", "error_bar"])
    for r in rows:
        writer.writerow([r.benchmark, r.metric, r.rule, "yes" if r.variant else "no",
                         "" if r.score is None else repr(r.score), "" if r.se is None else repr(r.se), r.items,
                         r.skipped, r.unparsed, r.left_out, r.notes, r.error_bar])
    return buffer.getvalue()
