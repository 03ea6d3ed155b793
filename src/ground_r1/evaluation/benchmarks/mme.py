"""MME (SPEC §7): yes/no questions, two per image; per task accuracy + acc+ (x100), summed.

Each MME image carries one "yes" and one "no" question. Per task: accuracy over questions and acc+
(the share of images whose questions are all answered right), each x100; a task's score is their sum
(max 200). Perception sums 10 tasks (max 2000), cognition 4 (max 800); the paper's MME number is the
overall sum (perception + cognition, e.g. 2327.0 -> 2360.9).

**The headline** reads answers as lmms-eval 0.7.3 does (:func:`~ground_r1.evaluation.benchmarks.reference.
mme_yes_no` on the extracted answer: lower case, dots removed, "yes"/"no", a bare "y"/"n", else the first four
characters). **Variant** ``release``: the MME authors' rule as the release's ``cal_MME.py`` applied it
(:func:`parse_yes_no_mme_official`: no dot removal, no bare "y"/"n"), its total reported beside the headline.
Images are grouped by ``(task, Image)``: the same file name appears under several tasks.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ground_r1.evaluation.benchmarks.parsing import extract_answer_span, parse_yes_no_mme_official
from ground_r1.evaluation.benchmarks.reference import mme_yes_no
from ground_r1.evaluation.benchmarks.spec import BenchmarkItem, BenchmarkSpec, percent, variant_key
from ground_r1.evaluation.summary import ScoredBenchmark, SummaryRow
from ground_r1.evaluation.uncertainty import Estimate, bootstrap_estimate

logger = logging.getLogger(__name__)

__all__ = ["MME_COGNITION_TASKS", "MME_PERCEPTION_TASKS", "MMESpec"]

MME_PERCEPTION_TASKS: tuple[str, ...] = (
    "existence", "count", "position", "color", "posters",
    "celebrity", "scene", "landmark", "artwork", "OCR",
)  # fmt: skip
MME_COGNITION_TASKS: tuple[str, ...] = (
    "commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning",
)  # fmt: skip
_ALL_TASKS = MME_PERCEPTION_TASKS + MME_COGNITION_TASKS


@dataclass(frozen=True)
class MMESpec(BenchmarkSpec):
    """MME: task from ``dataset``, yes/no ground truth, questions already end "Please answer yes or no."."""

    headline_metric: str = "overall"
    rule: str = "lmms-eval 0.7.3 mme (yes/no, bare y/n, first 4 characters)"
    variant_rules: tuple[tuple[str, str], ...] = (("release", "release cal_MME.py: MME authors' rule (no bare y/n)"),)

    required_fields: ClassVar[tuple[str, ...]] = ("Image", "problem", "solution", "dataset")

    def _finish_item(self, item: BenchmarkItem, record: dict[str, Any], problems: list) -> None:
        task = record["dataset"]
        if task not in _ALL_TASKS:
            problems.append(("dataset", f"unknown MME task {task!r}; expected one of {list(_ALL_TASKS)}"))
        if item.answer.lower() not in ("yes", "no"):
            problems.append(("solution", f"expected Yes or No, got {item.answer!r}"))
        item.category = task
        # Group key for acc+: the image as written in the file, within its task.
        item.extra["image_group"] = f"{task}/{record['Image']}"

    def _validate_items(self, items: list[BenchmarkItem]) -> list[str]:
        # acc+ needs every question of an image; MME has exactly two per image. A different count is
        # not fatal (a subset file) but is worth a warning in the log.
        groups: dict[str, list[BenchmarkItem]] = defaultdict(list)
        for item in items:
            groups[item.extra["image_group"]].append(item)
        odd = [g for g, members in groups.items() if len(members) != 2]
        if odd:
            logger.warning(
                "MME: %d image(s) do not have exactly two questions (acc+ uses what is there), e.g. %s",
                len(odd),
                odd[0],
            )
        return []

    def parse_answer(self, text: str) -> str | None:
        """The headline rule's yes/no for a final turn (its extracted answer), None for "other"."""
        return mme_yes_no(extract_answer_span(text))

    def score_item(
        self, item: BenchmarkItem, prediction_text: str, *, judge_score: float | None = None
    ) -> dict[str, Any]:
        record = self._base_record(item, judge_score)
        parsed = self.parse_answer(prediction_text)
        record.update(
            task=item.category,
            image_group=item.extra["image_group"],
            extracted=extract_answer_span(prediction_text),
            parsed=parsed,
            correct=parsed is not None and parsed == item.answer.lower(),
            variants={"release": parse_yes_no_mme_official(prediction_text) == item.answer.lower()},
        )
        return record

    def summary_rows(self, metrics: dict[str, Any], scored: ScoredBenchmark, skipped: int = 0) -> list[SummaryRow]:
        """The summed score (perception + cognition, max 2800) and its variant rules' sums."""
        notes = f"perception {metrics['perception']:.1f}, cognition {metrics['cognition']:.1f}"
        if metrics["missing_tasks"]:
            notes += f"; only {14 - len(metrics['missing_tasks'])}/14 tasks"
        metric = "total (perception + cognition)"
        return [
            self.summary_row(scored, skipped, metric, metrics["overall"], notes),
            *self.variant_summary_rows(scored, skipped, metric, metrics["variants"]),
        ]

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Per task ``acc``, ``acc_plus``, ``score`` (x100) and totals; tasks absent are listed.

        Returns keys ``per_task``, ``perception``, ``cognition``, ``overall``, ``missing_tasks``,
        ``complete`` (all 14 tasks present), ``n_items``, ``n_unparsed``, and the release rule's total and
        per-task scores (``variants["release"]``, ``variants_per_task["release"]``).
        """
        self._check_records(records)
        result = _mme_totals(records, lambda r: bool(r["correct"]))
        release = _mme_totals(records, lambda r: bool(r["variants"]["release"]))
        result["variants"] = {"release": release["overall"]}
        result["variants_per_task"] = {"release": {t: v["score"] for t, v in release["per_task"].items()}}
        result["n_unparsed"] = sum(r["parsed"] is None for r in records)
        return result

    def estimate(self, records: list[dict[str, Any]], metric: str = "headline") -> Estimate:
        """The total (perception + cognition) with its bootstrap standard error: units are the images of each
        task (acc+ needs both of an image's questions), resampled within their task, 1,000 times, seed 0.
        ``metric="variant:release"``: the same for the release rule's total (``variants["release"]``)."""
        key = variant_key(metric)
        tasks = {t: i for i, t in enumerate(_ALL_TASKS)}
        groups: dict[tuple[str, str], list[bool]] = defaultdict(list)
        for record in records:
            right = record["correct"] if key is None else record["variants"][key]
            groups[(record["task"], record["image_group"])].append(bool(right))
        keys = list(groups)
        rows = [(tasks[k[0]], sum(groups[k]), len(groups[k]), float(all(groups[k]))) for k in keys]
        codes = np.asarray([r[0] for r in rows], dtype=np.int64)
        present = np.unique(codes)

        def total(unit_rows: np.ndarray) -> float:
            correct = np.bincount(codes, weights=unit_rows[:, 1], minlength=len(tasks))[present]
            items = np.bincount(codes, weights=unit_rows[:, 2], minlength=len(tasks))[present]
            all_right = np.bincount(codes, weights=unit_rows[:, 3], minlength=len(tasks))[present]
            images = np.bincount(codes, minlength=len(tasks))[present]
            return float(np.sum(100.0 * correct / items + 100.0 * all_right / images))

        return bootstrap_estimate(
            rows,
            total,
            items=len(records),
            strata=[k[0] for k in keys],
            unit="images (each with its questions, resampled within its task)",
        )


def _mme_totals(records: list[dict[str, Any]], right) -> dict[str, Any]:
    """Per task acc / acc+ / score and the totals, a record counting as right when ``right(record)``."""
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record["task"] not in _ALL_TASKS:
            raise ValueError(f"MME: record {record['key']!r} has unknown task {record['task']!r}")
        by_task[record["task"]].append(record)
    per_task = {}
    for task in _ALL_TASKS:
        task_records = by_task.get(task)
        if not task_records:
            continue
        images: dict[str, list[bool]] = defaultdict(list)
        for record in task_records:
            images[record["image_group"]].append(right(record))
        n_correct = sum(right(r) for r in task_records)
        n_images_all_right = sum(all(flags) for flags in images.values())
        acc = percent(n_correct, len(task_records))
        acc_plus = percent(n_images_all_right, len(images))
        per_task[task] = {
            "acc": acc,
            "acc_plus": acc_plus,
            "score": acc + acc_plus,
            "n": len(task_records),
            "n_images": len(images),
            "n_unparsed": sum(r["parsed"] is None for r in task_records),
        }
    perception = sum(per_task[t]["score"] for t in MME_PERCEPTION_TASKS if t in per_task)
    cognition = sum(per_task[t]["score"] for t in MME_COGNITION_TASKS if t in per_task)
    missing = [t for t in _ALL_TASKS if t not in per_task]
    return {
        "per_task": per_task,
        "perception": perception,
        "cognition": cognition,
        "overall": perception + cognition,
        "missing_tasks": missing,
        "complete": not missing,
        "n_items": len(records),
    }
