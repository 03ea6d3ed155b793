"""MMMU (validation, SPEC §7): multiple-choice and open questions, scored as MMMU's official parser scores them.

The release file marks each row's ``Question_Type``: ``multiple-choice`` (options in the question, a letter as
ground truth) or ``open`` (53 rows: "1.06", "Transformation", "['Tampa', 'Florida']", ...). The release posed
every row with "Respond with only the letter" and scored exact matches, so an open answer "1.060" scored 0.

- **Prompt** (baseline protocol): multiple choice keeps SPEC §7's letter suffix; an open question gets lmms-eval
  0.7.3's ``open_ended_prompt`` ("Answer the question using a single word or phrase."). The Ground-R1 protocol
  poses the plain question either way.
- **Headline** (lmms-eval 0.7.3 ``mmmu_val``, the official rules in
  :mod:`~ground_r1.evaluation.benchmarks.mmmu_rules`): multiple choice by the official letter parser, an unread
  answer wrong (the official parser draws a random letter; ``n_random_guess`` counts those items and
  ``accuracy_expected_with_guess`` adds their 1/options expectation, for comparison); open questions by the
  official open-answer rule (number normalisation, several candidate spans), the ground truth as the file writes
  it (lmms-eval's reading).
- **Rows past the kept options** (28 multiple-choice rows of the release file answer E, F or I where it kept
  A-D): kept in the 900 as the release scored them, their answer letter read by every rule as one more choice
  (:class:`~ground_r1.evaluation.benchmarks.choice.ChoiceSpec`); the headline rule's accuracy over the 872
  answerable rows is reported beside it, labelled.
- **Variants**: ``mmmu_official`` (open ground truths written as lists, "['Tampa', 'Florida']", read as lists as
  MMMU's own answer file holds them: any element counts), ``lenient`` (ours, letters only) and ``release``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ground_r1.evaluation.benchmarks.choice import CHOICE_VARIANTS, ChoiceSpec, grouped_metrics
from ground_r1.evaluation.benchmarks.mmmu_rules import (
    mmmu_answer_list,
    mmmu_open_candidates,
    mmmu_open_correct,
)
from ground_r1.evaluation.benchmarks.parsing import (
    extract_answer_span,
    release_letter_match,
)
from ground_r1.evaluation.benchmarks.spec import BenchmarkItem, percent

__all__ = ["MMMU_OPEN_SUFFIX", "MMMUSpec"]

MMMU_OPEN_SUFFIX = "Answer the question using a single word or phrase."  # lmms-eval 0.7.3 open_ended_prompt
OPEN, MULTIPLE_CHOICE = "open", "multiple-choice"

MMMU_VARIANTS: tuple[tuple[str, str], ...] = (
    ("mmmu_official", "MMMU official answer file: list ground truths read as lists"),
    *CHOICE_VARIANTS,
)


@dataclass(frozen=True)
class MMMUSpec(ChoiceSpec):
    """MMMU validation: ``Question_Type`` picks the rule; open rows have no options."""

    reader: str = "mmmu"
    variant_rules: tuple[tuple[str, str], ...] = MMMU_VARIANTS

    def _finish_item(self, item: BenchmarkItem, record: dict[str, Any], problems: list) -> None:
        super()._finish_item(item, record, problems)
        kind = record.get("Question_Type")
        is_open = kind == OPEN or (kind is None and not item.extra["options"])
        item.extra["question_type"] = OPEN if is_open else MULTIPLE_CHOICE

    def direct_prompt(self, item: BenchmarkItem) -> str:
        if item.extra.get("question_type") == OPEN:
            return f"{self.question(item).rstrip()}\n{MMMU_OPEN_SUFFIX}"
        return super().direct_prompt(item)

    def score_item(
        self, item: BenchmarkItem, prediction_text: str, *, judge_score: float | None = None
    ) -> dict[str, Any]:
        record = self._base_record(item, judge_score)
        extracted = extract_answer_span(prediction_text)
        kind = item.extra["question_type"]
        record.update(
            groups=item.extra.get("groups", {}),
            question_type=kind,
            extracted=extracted,
            answerable=not item.extra.get("answer_past_options", False),
        )
        if kind == OPEN:
            candidates = mmmu_open_candidates(extracted)
            correct = mmmu_open_correct(candidates, item.answer)
            record.update(
                parsed=candidates,
                correct=correct,
                n_options=0,
                variants={
                    "mmmu_official": mmmu_open_correct(candidates, mmmu_answer_list(item.answer)),
                    "lenient": correct,  # our letter reader does not apply: the headline rule stands
                    "release": extracted.lower() == item.answer.strip().lower(),
                },
            )
            return record
        options = item.extra.get("options") or {}
        past = self.past_letter(item)  # a release row past its options: right only if the model names that letter
        parsed = self.read_letter(extracted, options, past)
        lenient = self.lenient_letter(prediction_text, options, past)
        correct = parsed == item.answer
        record.update(
            parsed=parsed,
            correct=correct,
            n_options=len(options),
            variants={
                "mmmu_official": correct,
                "lenient": lenient == item.answer,
                "release": release_letter_match(prediction_text, item.answer),
            },
        )
        return record

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """The choice metrics plus ``per_question_type`` and the random-guess comparison (module doc)."""
        result = super().aggregate(records)
        unread = [r for r in records if r["question_type"] == MULTIPLE_CHOICE and r["parsed"] is None]
        expected = sum(1.0 / r["n_options"] for r in unread if r["n_options"])
        result["n_random_guess"] = len(unread)
        result["accuracy_expected_with_guess"] = percent(result["n_correct"] + expected, len(records))
        result["per_question_type"] = grouped_metrics(records, lambda r: r["question_type"], self.variant_keys())
        return result
