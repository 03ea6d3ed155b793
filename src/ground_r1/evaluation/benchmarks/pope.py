"""POPE (SPEC §7): object-hallucination yes/no questions in three splits, positive class "yes".

Per split (``Category``: adversarial / popular / random) and overall: accuracy, precision, recall, F1
and yes-ratio, all x100. Accuracy counts every item (an unparsed answer is wrong); precision, recall,
F1 and yes-ratio come from the confusion matrix of the parsed answers only, with the unparsed count
reported beside them (as the MME/POPE tool of the release did). The paper's POPE number (83.6 ->
89.5) is the overall accuracy: the release's script printed accuracy only.

Answers are read with :func:`parse_yes_no` (first word, else the only yes/no word used); the release's
rule (MME's four-character prefix test) is recorded beside it as ``accuracy_release_rule``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ground_r1.evaluation.benchmarks.parsing import (
    extract_answer_span,
    parse_yes_no,
    parse_yes_no_mme_official,
)
from ground_r1.evaluation.benchmarks.spec import BenchmarkItem, BenchmarkSpec, percent
from ground_r1.evaluation.uncertainty import Estimate, bootstrap_estimate

__all__ = ["POPE_SPLITS", "PopeSpec", "pope_metrics"]

POPE_SPLITS: tuple[str, ...] = ("adversarial", "popular", "random")


def pope_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, yes-ratio (x100) and the confusion counts of some records.

    A ratio with an empty denominator (no "yes" predicted, no parsed answer) is 0.0.
    """
    tp = fp = tn = fn = 0
    for record in records:
        gt, pred = record["answer_yes_no"], record["parsed"]
        if pred is None:
            continue
        if pred == "yes":
            tp, fp = (tp + 1, fp) if gt == "yes" else (tp, fp + 1)
        else:
            fn, tn = (fn + 1, tn) if gt == "yes" else (fn, tn + 1)
    n = len(records)
    parsed = tp + fp + tn + fn
    precision = percent(tp, tp + fp)
    recall = percent(tp, tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": percent(tp + tn, n),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": percent(tp + fp, parsed),
        "accuracy_release_rule": percent(sum(bool(r["correct_release_rule"]) for r in records), n),
        "n": n,
        "n_unparsed": n - parsed,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


@dataclass(frozen=True)
class PopeSpec(BenchmarkSpec):
    """POPE: split from ``Category``; yes/no ground truth; the questions carry no answer instruction."""

    headline_metric: str = "overall.accuracy"

    required_fields: ClassVar[tuple[str, ...]] = ("Image", "problem", "solution", "Category")

    def _finish_item(self, item: BenchmarkItem, record: dict[str, Any], problems: list) -> None:
        split = record["Category"]
        if split not in POPE_SPLITS:
            problems.append(
                ("Category", f"unknown POPE split {split!r}; expected one of {list(POPE_SPLITS)}")
            )
        if item.answer.lower() not in ("yes", "no"):
            problems.append(("solution", f"expected yes or no, got {item.answer!r}"))
        item.category = split

    def parse_answer(self, text: str) -> str | None:
        return parse_yes_no(text)

    def score_item(
        self, item: BenchmarkItem, prediction_text: str, *, judge_score: float | None = None
    ) -> dict[str, Any]:
        record = self._base_record(item, judge_score)
        gt = item.answer.lower()
        parsed = self.parse_answer(prediction_text)
        record.update(
            split=item.category,
            answer_yes_no=gt,
            extracted=extract_answer_span(prediction_text),
            parsed=parsed,
            correct=parsed == gt,
            correct_release_rule=parse_yes_no_mme_official(prediction_text) == gt,
        )
        return record

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """``{"per_split": {split: metrics}, "overall": metrics}`` (see :func:`pope_metrics`)."""
        self._check_records(records)
        by_split: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in records:
            by_split[record["split"]].append(record)
        return {
            "per_split": {s: pope_metrics(by_split[s]) for s in POPE_SPLITS if s in by_split},
            "overall": pope_metrics(records),
        }

    def estimate(self, records: list[dict[str, Any]], metric: str = "headline") -> Estimate:
        """Accuracy: the standard error of a mean over items. F1 (``metric="f1"``): a bootstrap over items of the
        F1 of :func:`pope_metrics` (1,000 resamples, seed 0)."""
        if metric != "f1":
            return super().estimate(records, metric)
        rows = [(r["parsed"] == "yes" and r["answer_yes_no"] == "yes", r["parsed"] == "yes" and r["answer_yes_no"] != "yes",
                 r["parsed"] == "no" and r["answer_yes_no"] == "yes") for r in records]

        def f1(unit_rows: np.ndarray) -> float:
            tp, fp, fn = unit_rows.sum(axis=0)
            precision, recall = percent(tp, tp + fp), percent(tp, tp + fn)
            return 2 * precision * recall / (precision + recall) if precision + recall else 0.0

        return bootstrap_estimate(rows, f1)
