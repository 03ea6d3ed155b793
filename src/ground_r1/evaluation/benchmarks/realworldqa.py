"""RealWorldQA (SPEC §7): exact match, x100, over a mix of multiple-choice and free answers.

The release file writes each question with its own answer instruction ("Please answer directly with
only the letter of the correct option and nothing else." or "... with a single word or number."), so
both protocols pose it as given. Multiple-choice items (options in the question, a letter as ground
truth) compare the letter read by :func:`extract_choice_letter`; free items compare
:func:`normalize_text` of the extracted answer and of the ground truth ("Yes." == "yes"). The release's
rule (lower-cased extracted answer == lower-cased ground truth) is recorded beside it.
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
from ground_r1.evaluation.benchmarks.spec import BenchmarkItem, BenchmarkSpec

__all__ = ["RealWorldQASpec"]

MULTIPLE_CHOICE = "multiple_choice"
FREE_FORM = "free_form"


@dataclass(frozen=True)
class RealWorldQASpec(BenchmarkSpec):
    """RealWorldQA: category is the answer type (``multiple_choice`` / ``free_form``)."""

    def _finish_item(self, item: BenchmarkItem, record: dict[str, Any], problems: list) -> None:
        options = parse_options(record["problem"])
        answer = item.answer.strip()
        is_choice = bool(options) and len(answer) == 1 and answer.upper() in options
        if options and not is_choice and len(answer) == 1 and answer.isalpha():
            problems.append(
                ("solution", f"{answer!r} is not one of the question's options {''.join(options)}")
            )
        item.extra["options"] = options if is_choice else {}
        item.category = MULTIPLE_CHOICE if is_choice else FREE_FORM
        if is_choice:
            item.answer = answer.upper()

    def parse_answer(self, text: str, options: dict[str, str] | None = None) -> str | None:
        """A letter when ``options`` are given, else the normalised extracted answer."""
        if options:
            return extract_choice_letter(text, "".join(options), options)
        return normalize_text(extract_answer_span(text)) or None

    def score_item(
        self, item: BenchmarkItem, prediction_text: str, *, judge_score: float | None = None
    ) -> dict[str, Any]:
        record = self._base_record(item, judge_score)
        options = item.extra.get("options") or {}
        extracted = extract_answer_span(prediction_text)
        parsed = self.parse_answer(prediction_text, options)
        target = item.answer if options else normalize_text(item.answer)
        record.update(
            extracted=extracted,
            parsed=parsed,
            correct=parsed is not None and parsed == target,
            correct_release_rule=extracted.lower() == item.answer.strip().lower(),
        )
        return record

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Overall accuracy (x100) with counts, and the same per answer type (``per_type``)."""
        self._check_records(records)
        result = choice_metrics(records)
        by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in records:
            by_type[record["category"]].append(record)
        result["per_type"] = {
            t: choice_metrics(by_type[t]) for t in (MULTIPLE_CHOICE, FREE_FORM) if t in by_type
        }
        return result
