"""MMBench (SPEC §7): CircularEval, the official protocol, as the headline; single-pass accuracy beside it.

The release's ``MMBench_en_dev.jsonl`` holds the 1,164 dev questions and their rotated copies: the copy ``k`` of
question ``q`` has ``Question_id = q + k x 1,000,000`` and its options rotated (so its answer letter moves).
**CircularEval** (MMBench's official evaluator; lmms-eval 0.7.3 ``mmbench_evals.py`` ``eval_result``) counts a
question right only when *every* copy of it (``Question_id % 1,000,000``) is answered right: a model that always
answers "A" scores 0, where per-row accuracy gives it about a quarter.

Per copy, the letter is read as lmms-eval 0.7.3's ``mmbench_en_dev_static`` reads it
(:func:`~ground_r1.evaluation.benchmarks.reference.mmbench_can_infer`: MMBench's own prefetch, then lmms-eval's
static extractor where the official evaluator would ask GPT).

Reported, each labelled: ``circular_accuracy`` (the headline) with per-category / per-L2 CircularEval,
``single_pass_accuracy`` (the same reader over the original questions only, ``Question_id < 1,000,000``), and the
variants: CircularEval with our lenient reader, and the release's number (per row over every copy, the release's
first-character rule). ``circular_per_question`` holds each question's 0/1 for error bars (:meth:`MMBenchSpec.
estimate`: a seeded bootstrap over questions, issue 17). A question some of
whose copies have no scored record (a prediction error, or a copy skipped at reading: a missing image) is left
out of CircularEval and counted (``n_incomplete``), never scored from the copies that remain.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ground_r1.evaluation.benchmarks.choice import ChoiceSpec, choice_metrics
from ground_r1.evaluation.benchmarks.parsing import extract_answer_span, release_letter_match
from ground_r1.evaluation.benchmarks.spec import BenchmarkItem, BenchmarkRecords, percent, variant_key
from ground_r1.evaluation.summary import ScoredBenchmark, SummaryRow
from ground_r1.evaluation.uncertainty import Estimate, bootstrap_estimate, mean_estimate

__all__ = ["CIRCULAR_MODULUS", "MMBENCH_SINGLE_PASS_RULE", "MMBenchSpec", "circular_outcomes"]

CIRCULAR_MODULUS = 1_000_000  # Question_id = original id + k x 1,000,000 (the release README; MMBench's index)

MMBENCH_SINGLE_PASS_RULE = "single pass over the originals, the same matcher (lmms-eval 0.7.3 static)"
MMBENCH_VARIANTS: tuple[tuple[str, str], ...] = (
    ("lenient", "CircularEval, ours: lenient letter reader"),
    ("release", "release: per row over every copy, first character of the turn or answer"),
)


def circular_outcomes(records: list[dict[str, Any]], flag: str = "correct") -> tuple[dict[int, bool], int]:
    """Per question, whether every copy is right (``record[flag]``, or ``record["variants"][flag]``), over the
    complete questions only; and how many questions were left out because a copy has no record."""
    copies: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        copies[record["circular_group"]].append(record)
    outcomes, incomplete = {}, 0
    for group, members in copies.items():
        if len(members) < members[0]["circular_size"]:
            incomplete += 1
            continue
        outcomes[group] = all(bool(r[flag] if flag == "correct" else r["variants"][flag]) for r in members)
    return outcomes, incomplete


def _circular_by(records: list[dict[str, Any]], key) -> dict[str, dict[str, Any]]:
    """CircularEval per group of the question's original row (its category as MMBench reports it)."""
    outcomes, _ = circular_outcomes(records)
    originals = {r["circular_group"]: r for r in records if r["circular_copy"] == 0}
    groups: dict[str, list[bool]] = defaultdict(list)
    for question, right in outcomes.items():
        original = originals.get(question)
        if original is not None:
            groups[key(original)].append(right)
    return {
        name: {"accuracy": percent(sum(flags), len(flags)), "n": len(flags)} for name, flags in sorted(groups.items())
    }


def _skipped_copies(file: Path, lines: set[int]) -> dict[int, int]:
    """Per question (``Question_id % 1,000,000``), how many of its copies sit on the skipped ``lines`` of ``file``
    (a skipped line without a readable integer ``Question_id`` names no question: the records report has it)."""
    counts: dict[int, int] = defaultdict(int)
    if not lines:
        return counts
    with file.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no not in lines:
                continue
            try:
                number = int(json.loads(raw)["Question_id"])
            except (ValueError, TypeError, KeyError, UnicodeDecodeError):
                continue
            counts[number % CIRCULAR_MODULUS] += 1
    return counts


@dataclass(frozen=True)
class MMBenchSpec(ChoiceSpec):
    """MMBench dev (en): CircularEval over ``Question_id % 1,000,000`` groups."""

    headline_metric: str = "circular_accuracy"
    reader: str = "mmbench"
    variant_rules: tuple[tuple[str, str], ...] = MMBENCH_VARIANTS

    def _finish_item(self, item: BenchmarkItem, record: dict[str, Any], problems: list) -> None:
        super()._finish_item(item, record, problems)
        question_id = record.get("Question_id")
        try:
            number = int(question_id)
        except (TypeError, ValueError):
            problems.append(
                ("Question_id", f"expected an integer id (copies are id + k x 1,000,000), got {question_id!r}")
            )
            return
        item.extra["circular_group"] = number % CIRCULAR_MODULUS
        item.extra["circular_copy"] = number // CIRCULAR_MODULUS

    def _validate_items(self, items: list[BenchmarkItem]) -> list[str]:
        problems = super()._validate_items(items)
        sizes: dict[int, int] = defaultdict(int)
        for item in items:
            sizes[item.extra["circular_group"]] += 1
        seen: dict[tuple[int, int], BenchmarkItem] = {}
        for item in items:
            item.extra["circular_size"] = sizes[item.extra["circular_group"]]
            key = (item.extra["circular_group"], item.extra["circular_copy"])
            if key in seen:
                problems.append(
                    f"{item.source_file}:{item.line}:Question_id: copy {key[1]} of question {key[0]} "
                    f"appears twice (also line {seen[key].line})"
                )
            seen[key] = item
        return problems

    def read(self, path, dataset_root, *, check_images: bool = True) -> BenchmarkRecords:
        """:meth:`BenchmarkSpec.read`; a copy skipped there (e.g. its image missing) still counts in its question's
        ``circular_size``, so that question is incomplete (``n_incomplete``), never scored from the other copies."""
        result = super().read(path, dataset_root, check_images=check_images)
        missing = _skipped_copies(result.file, {issue.line for issue in result.skipped})
        for item in result.items:
            item.extra["circular_size"] += missing.get(item.extra["circular_group"], 0)
        return result

    def first_items(self, items: list[BenchmarkItem], count: int) -> list[BenchmarkItem]:
        """The first ``count`` questions (by first appearance) with **all** their rotated copies, wherever the
        copies sit in the file (the release file lists the 1,164 originals first, then the copies)."""
        kept: set[int] = set()
        for item in items:
            group = item.extra["circular_group"]
            if group not in kept:
                if len(kept) == count:
                    continue
                kept.add(group)
        return [item for item in items if item.extra["circular_group"] in kept]

    def score_item(
        self, item: BenchmarkItem, prediction_text: str, *, judge_score: float | None = None
    ) -> dict[str, Any]:
        record = self._base_record(item, judge_score)
        options = item.extra.get("options") or {}
        extracted = extract_answer_span(prediction_text)
        past = self.past_letter(item)
        parsed = self.read_letter(extracted, options, past)
        lenient = self.lenient_letter(prediction_text, options, past)
        record.update(
            groups=item.extra.get("groups", {}),
            circular_group=item.extra["circular_group"],
            circular_copy=item.extra["circular_copy"],
            circular_size=item.extra["circular_size"],
            extracted=extracted,
            parsed=parsed,
            correct=parsed == item.answer,
            variants={
                "lenient": lenient == item.answer,
                "release": release_letter_match(prediction_text, item.answer),
            },
        )
        return record

    def estimate(self, records: list[dict[str, Any]], metric: str = "headline") -> Estimate:
        """Error bars of the reported numbers (docs/metrics.md "Error bars").

        CircularEval (``"headline"``, and the lenient reader's, ``"variant:lenient"``): one row per complete
        question (1 when every copy is right, :func:`circular_outcomes`), bootstrapped over questions (1,000
        resamples, seed 0): the copies of a question stand or fall together, so the question is the unit.
        ``"single_pass"``: the standard error of the mean over the originals. ``"variant:release"``: the release's
        per-row accuracy, the standard error of the mean over every row.
        """
        key = variant_key(metric)
        if metric == "single_pass":
            return mean_estimate([100.0 * bool(r["correct"]) for r in records if r["circular_copy"] == 0])
        if metric == "headline" or key == "lenient":
            outcomes, _ = circular_outcomes(records, "correct" if key is None else key)
            questions = set(outcomes)
            rows = [100.0 * float(right) for _, right in sorted(outcomes.items())]
            return bootstrap_estimate(
                rows,
                lambda units: float(units[:, 0].mean()),
                items=sum(1 for r in records if r["circular_group"] in questions),
                unit="questions (each with its rotated copies)",
            )
        return super().estimate(records, metric)

    def summary_rows(self, metrics: dict[str, Any], scored: ScoredBenchmark, skipped: int = 0) -> list[SummaryRow]:
        """CircularEval accuracy over questions (a question with a copy missing left out and counted), the
        single-pass accuracy of the originals, the lenient CircularEval and the release's per-row accuracy."""
        records = scored.records
        incomplete = metrics["n_incomplete"]
        notes = (
            f"{metrics['n_questions']} questions x their rotated copies ({metrics['n_rows']} rows); unparsed: "
            "questions with an unread copy"
        )
        notes += f"; {incomplete} question(s) with a copy missing left out" if incomplete else ""
        unread_questions = len({r["circular_group"] for r in records if r.get("parsed") is None})
        unread_originals = sum(1 for r in records if r.get("parsed") is None and r["circular_copy"] == 0)
        circular = self.summary_row(
            scored,
            skipped,
            "CircularEval accuracy",
            metrics["circular_accuracy"],
            notes,
            extra_left_out=incomplete,
            items=metrics["n_questions"],
        )
        single = self.summary_row(
            scored,
            skipped,
            "single-pass accuracy (originals only)",
            metrics["single_pass_accuracy"],
            f"Question_id < 1,000,000: {metrics['n_originals']} questions",
            rule=MMBENCH_SINGLE_PASS_RULE,
            items=metrics["n_originals"],
            which="single_pass",
        )
        circular.unparsed, single.unparsed = unread_questions, unread_originals
        (lenient,) = self.variant_summary_rows(
            scored,
            skipped,
            "CircularEval accuracy",
            {"lenient": metrics["variants"]["lenient"]},
            items=metrics["n_questions"],
        )
        (per_row,) = self.variant_summary_rows(
            scored, skipped, "per-row accuracy", {"release": metrics["variants"]["release"]}
        )
        return [circular, single, lenient, per_row]

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """``circular_accuracy`` (headline), ``single_pass_accuracy`` (originals), per-group CircularEval, the
        variants, ``circular_per_question`` and the counts (see the module doc)."""
        self._check_records(records)
        outcomes, incomplete = circular_outcomes(records)
        lenient, _ = circular_outcomes(records, "lenient")
        originals = [r for r in records if r["circular_copy"] == 0]
        single = choice_metrics(originals)
        per_row = choice_metrics(records, ("release",))
        result: dict[str, Any] = {
            "circular_accuracy": percent(sum(outcomes.values()), len(outcomes)),
            "n_questions": len(outcomes),
            "n_questions_correct": sum(outcomes.values()),
            "n_incomplete": incomplete,
            "single_pass_accuracy": single["accuracy"],
            "n_originals": single["n"],
            "n_rows": len(records),
            "n_unparsed": per_row["n_unparsed"],
            "variants": {
                "lenient": percent(sum(lenient.values()), len(lenient)),
                "release": per_row["variants"]["release"],
            },
            "circular_per_question": {str(q): int(right) for q, right in sorted(outcomes.items())},
            "per_category": _circular_by(records, lambda r: r["category"]),
        }
        for field_name in self.group_fields:
            key = "per_" + field_name.lower().replace("-", "_")
            result[key] = _circular_by(records, lambda r, f=field_name: r.get("groups", {}).get(f, ""))
        return result
