"""RealWorldQA (SPEC §7): exact match, x100, over a mix of multiple-choice and free answers.

The release file writes each question with its own answer instruction ("Please answer directly with only the
letter of the correct option and nothing else." or "... with a single word or number."), so both protocols
pose it as given. Its options are written "A. text", and on eleven questions "A: text" (one of them "B text");
all are options.

**The headline rule is lmms-eval 0.7.3's** (``realworldqa_process_results``): a ground truth A-D is a
multiple-choice item, the letter read by lmms-eval's shared extractor
(:func:`~ground_r1.evaluation.benchmarks.reference.mcq_extract` over A-D); any other ground truth is compared with
the lower-cased, stripped answer without its trailing dots ("Yes." == "yes"). Variants: ``lenient`` (ours:
:func:`extract_choice_letter` with the question's options, so "Yellow" reads "B"; free answers by
:func:`normalize_text`) and ``release`` (lower-cased extracted answer == lower-cased ground truth).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ground_r1.evaluation.benchmarks.choice import choice_metrics
from ground_r1.evaluation.benchmarks.parsing import (
    extract_answer_span,
    extract_choice_letter,
    normalize_text,
    parse_options,
)
from ground_r1.evaluation.benchmarks.reference import mcq_extract
from ground_r1.evaluation.benchmarks.spec import BenchmarkItem, BenchmarkSpec

__all__ = ["RealWorldQASpec"]

MULTIPLE_CHOICE = "multiple_choice"
FREE_FORM = "free_form"
_CHOICE_LETTERS = ("A", "B", "C", "D")  # lmms-eval: a ground truth among these is a multiple-choice item


@dataclass(frozen=True)
class RealWorldQASpec(BenchmarkSpec):
    """RealWorldQA: category is the answer type (``multiple_choice`` / ``free_form``)."""

    rule: str = "lmms-eval 0.7.3 realworldqa (mcq_extract for A-D; exact match)"
    variant_rules: tuple[tuple[str, str], ...] = (
        ("lenient", "ours: lenient reader (option text, normalised exact match)"),
        ("release", "release: lower-cased extracted answer == lower-cased ground truth"),
    )

    def _finish_item(self, item: BenchmarkItem, record: dict[str, Any], problems: list) -> None:
        options = parse_options(record["problem"])
        answer = item.answer.strip()
        is_choice = answer.upper() in _CHOICE_LETTERS
        if is_choice and options and answer.upper() not in options:
            problems.append(("solution", f"{answer!r} is not one of the question's options {''.join(options)}"))
        item.extra["options"] = options if is_choice else {}
        item.category = MULTIPLE_CHOICE if is_choice else FREE_FORM
        if is_choice:
            item.answer = answer.upper()

    def parse_answer(self, text: str, options: dict[str, str] | None = None, *, choice: bool = False) -> str | None:
        """The headline rule's reading of a final turn: a letter (``choice``), else the cleaned answer."""
        answer = extract_answer_span(text)
        if choice:
            return mcq_extract(answer, _CHOICE_LETTERS)
        return answer.lower().strip().rstrip(".")

    def score_item(
        self, item: BenchmarkItem, prediction_text: str, *, judge_score: float | None = None
    ) -> dict[str, Any]:
        record = self._base_record(item, judge_score)
        options = item.extra.get("options") or {}
        choice = item.category == MULTIPLE_CHOICE
        extracted = extract_answer_span(prediction_text)
        parsed = self.parse_answer(prediction_text, choice=choice)
        if choice:
            correct = parsed == item.answer
            lenient = extract_choice_letter(prediction_text, "".join(options) or "ABCD", options) == item.answer
        else:
            correct = parsed == item.answer.strip().lower()
            lenient = bool(normalize_text(extracted)) and normalize_text(extracted) == normalize_text(item.answer)
        record.update(
            extracted=extracted,
            parsed=parsed if choice or parsed else None,
            correct=correct,
            variants={"lenient": lenient, "release": extracted.lower() == item.answer.strip().lower()},
        )
        return record

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Overall accuracy (x100) with counts, and the same per answer type (``per_type``)."""
        self._check_records(records)
        keys = [key for key, _ in self.variant_rules]
        result = choice_metrics(records, keys)
        by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in records:
            by_type[record["category"]].append(record)
        result["per_type"] = {t: choice_metrics(by_type[t], keys) for t in (MULTIPLE_CHOICE, FREE_FORM) if t in by_type}
        return result
