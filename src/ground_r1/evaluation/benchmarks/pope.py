"""POPE (SPEC §7): object-hallucination yes/no questions in three splits, positive class "yes".

**The headline rule is the POPE authors'** (:func:`~ground_r1.evaluation.benchmarks.reference.pope_yes_no`, their
``evaluate.py``): the first sentence of the answer, "No"/"no"/"not" among its words reads "no", anything else
"yes". Every answer is read, so accuracy, precision, recall, F1 and yes-ratio (all x100) are over *all* answers
as that rule reads them, per split (``Category``: adversarial / popular / random) and overall. The paper's POPE
number (83.6 -> 89.5) is the overall accuracy: the release's script printed accuracy only.

Variants, each an accuracy beside the headline: ``lmms_eval`` (lmms-eval 0.7.3 ``pope``: the lower-cased,
stripped answer must equal "yes"/"no" exactly, so "Yes." is wrong there) and ``release`` (the release's
``cal_MME.py`` rule: the MME authors' four-character prefix test).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ground_r1.evaluation.benchmarks.parsing import extract_answer_span, parse_yes_no_mme_official
from ground_r1.evaluation.benchmarks.reference import pope_yes_no
from ground_r1.evaluation.benchmarks.spec import BenchmarkItem, BenchmarkSpec, percent, variant_accuracies
from ground_r1.evaluation.summary import ScoredBenchmark, SummaryRow
from ground_r1.evaluation.uncertainty import Estimate, bootstrap_estimate

__all__ = ["POPE_SPLITS", "PopeSpec", "pope_metrics"]

POPE_SPLITS: tuple[str, ...] = ("adversarial", "popular", "random")
POPE_VARIANTS: tuple[tuple[str, str], ...] = (
    ("lmms_eval", "lmms-eval 0.7.3 pope: exact yes/no after lower/strip"),
    ("release", "release cal_MME.py: MME authors' prefix rule"),
)


def pope_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, yes-ratio (x100) and the confusion counts of some records, over all of
    them (the POPE rule reads every answer); the variants' accuracies. An empty denominator gives 0.0."""
    tp = fp = tn = fn = 0
    for record in records:
        gt, pred = record["answer_yes_no"], record["parsed"]
        if pred == "yes":
            tp, fp = (tp + 1, fp) if gt == "yes" else (tp, fp + 1)
        else:
            fn, tn = (fn + 1, tn) if gt == "yes" else (fn, tn + 1)
    n = len(records)
    precision = percent(tp, tp + fp)
    recall = percent(tp, tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": percent(tp + tn, n),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": percent(tp + fp, n),
        "n": n,
        "n_unparsed": 0,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "variants": variant_accuracies(records, [key for key, _ in POPE_VARIANTS]),
    }


@dataclass(frozen=True)
class PopeSpec(BenchmarkSpec):
    """POPE: split from ``Category``; yes/no ground truth; the questions carry no answer instruction."""

    headline_metric: str = "overall.accuracy"
    rule: str = "POPE authors (first sentence; No/no/not -> no, else yes)"
    variant_rules: tuple[tuple[str, str], ...] = POPE_VARIANTS

    required_fields: ClassVar[tuple[str, ...]] = ("Image", "problem", "solution", "Category")

    def _finish_item(self, item: BenchmarkItem, record: dict[str, Any], problems: list) -> None:
        split = record["Category"]
        if split not in POPE_SPLITS:
            problems.append(("Category", f"unknown POPE split {split!r}; expected one of {list(POPE_SPLITS)}"))
        if item.answer.lower() not in ("yes", "no"):
            problems.append(("solution", f"expected yes or no, got {item.answer!r}"))
        item.category = split

    def parse_answer(self, text: str) -> str:
        """The POPE authors' reading of a final turn (its extracted answer): always "yes" or "no"."""
        return pope_yes_no(extract_answer_span(text))

    def score_item(
        self, item: BenchmarkItem, prediction_text: str, *, judge_score: float | None = None
    ) -> dict[str, Any]:
        record = self._base_record(item, judge_score)
        gt = item.answer.lower()
        extracted = extract_answer_span(prediction_text)
        parsed = self.parse_answer(prediction_text)
        record.update(
            split=item.category,
            answer_yes_no=gt,
            extracted=extracted,
            parsed=parsed,
            correct=parsed == gt,
            variants={
                "lmms_eval": extracted.lower().strip() == gt,
                "release": parse_yes_no_mme_official(prediction_text) == gt,
            },
        )
        return record

    def summary_rows(self, metrics: dict[str, Any], scored: ScoredBenchmark, skipped: int = 0) -> list[SummaryRow]:
        """Accuracy and F1 over all splits (precision, recall and yes-ratio in the notes), then the variant rules'
        accuracies."""
        o = metrics["overall"]
        notes = f"precision {o['precision']:.1f}, recall {o['recall']:.1f}, yes-ratio {o['yes_ratio']:.1f}"
        return [
            self.summary_row(scored, skipped, "accuracy", o["accuracy"], notes),
            self.summary_row(scored, skipped, "F1", o["f1"], notes, which="f1"),
            *self.variant_summary_rows(scored, skipped, "accuracy", o["variants"]),
        ]

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
        """Accuracy (and a variant rule's, ``"variant:KEY"``): the standard error of a mean over items. F1
        (``metric="f1"``): a bootstrap over items of the F1 of :func:`pope_metrics` (1,000 resamples, seed 0), every
        answer read by the headline rule as there (not "yes" is "no")."""
        if metric != "f1":
            return super().estimate(records, metric)
        said_yes = [(r["parsed"] == "yes", r["answer_yes_no"] == "yes") for r in records]
        rows = [(said and truth, said and not truth, not said and truth) for said, truth in said_yes]  # tp, fp, fn

        def f1(unit_rows: np.ndarray) -> float:
            tp, fp, fn = unit_rows.sum(axis=0)
            precision, recall = percent(tp, tp + fp), percent(tp, tp + fn)
            return 2 * precision * recall / (precision + recall) if precision + recall else 0.0

        return bootstrap_estimate(rows, f1)
