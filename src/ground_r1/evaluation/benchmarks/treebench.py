"""TreeBench (Haochen-Wang409/TreeVGR @ 4823ad8; HF HaochenWang/TreeBench): 405 questions with evidence boxes
(issue 18; ``../shared/data/thinking-with-images/README.md`` §3).

**No real record was available**: this reader is built from the format the official code reads (the columns
``index, question, multi-choice options, answer, category, target_instances, image``; ``target_instances`` a
string holding a Python list of ``[x1, y1, x2, y2]`` boxes in original pixels, parsed with
:func:`ast.literal_eval`; ``image`` base64), in ``TreeBench.tsv`` or its parquet twin. Tests use hand-made files.

Prompt: TreeVGR's user text (``question + " Options:\\n" + options``; the baseline protocol appends its instruction
to answer with the letter between ``<answer>`` tags; the official code always appends the options).

Scoring, **headline = TreeVGR's ``inference_treebench.py``**:

- accuracy: the first ``<answer>(.*?)</answer>`` of the final turn (no DOTALL, as the official regex), stripped
  and upper-cased, else the whole turn; right iff it equals the answer letter exactly ("A." is wrong);
- mIoU: every ``<box>(.*?)</box>`` of the whole output (all turns), kept only if it matches
  ``\\[(\\d+),(\\d+),(\\d+),(\\d+)\\]`` from its first character with ``x1 < x2`` and ``y1 < y2``; for each target the
  best IoU over the predicted boxes (one box may serve several targets; extra boxes cost nothing); the item's
  score is the mean over targets, 0 with no valid box, 0 with no target; mIoU = the mean over items x100.
  **Departure**: the official code compares the model's input-frame pixels with original-image boxes as they
  are; we first map every box from the model's input frame to original pixels (SPEC §2), as the table says.

**Variant = VLMEvalKit's TreeBench** (its numbers are the paper's): boxes from the ``<think>`` content only (the
whole output when there is none); no valid box 0, no target and any box 1; the letter is the ``<answer>``
content upper-cased through ``extract_characters_regex`` (first A-E letter; "" for a reply over 10 words with
none); VLMEvalKit prints mIoU on a 0-1 scale (the table shows it x100).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ground_r1.boxes import iou
from ground_r1.models.families.coordinates import frame_of_record
from ground_r1.evaluation.benchmarks.readers import RawRecord
from ground_r1.evaluation.benchmarks.parsing import parse_options
from ground_r1.evaluation.summary import ScoredBenchmark, SummaryRow
from ground_r1.evaluation.benchmarks.spec import BenchmarkItem, percent
from ground_r1.evaluation.benchmarks.zoom import ZoomSpec
from ground_r1.evaluation.box_quality import BOX_FRAME_NOTE, box_quality_record, box_quality_summary, prediction_boxes
from ground_r1.evaluation.uncertainty import Estimate, mean_estimate

__all__ = [
    "TREEBENCH_INSTRUCTION",
    "TreeBenchSpec",
    "treevgr_boxes",
    "treevgr_item_iou",
    "treevgr_letter",
    "vlmevalkit_letter",
]

TREEBENCH_INSTRUCTION = (
    "Select the best answer to the above multiple-choice question based on the image. After the "
    "reasoning process, respond with only the letter of the correct option between <answer> and "
    "</answer>."
)
_ANSWER = re.compile(r"<answer>(.*?)</answer>")
_BOX = re.compile(r"<box>(.*?)</box>", re.DOTALL)
_BOX_VALUES = re.compile(r"\[(\d+),(\d+),(\d+),(\d+)\]")
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_VLMEVALKIT_PREFIXES = (
    "The best answer is",
    "The correct answer is",
    "The answer is",
    "The answer",
    "The best option is",
    "The correct option is",
    "Best answer:",
    "Best option:",
)


def treevgr_letter(text: str) -> str:
    """TreeVGR's answer: the first ``<answer>(.*?)</answer>`` content (no DOTALL), stripped, upper-cased; else the
    whole text upper-cased."""
    match = _ANSWER.search(text)
    return (match.group(1) if match else text).strip().upper()


def vlmevalkit_letter(text: str) -> str:
    """VLMEvalKit's TreeBench letter: the ``<answer>`` content (else the text) upper-cased, answer phrases removed,
    "" for over 10 words without an A-E letter, else the first A-E letter ("" when none)."""
    match = _ANSWER.search(text)
    answer = (match.group(1) if match else text).strip().upper()
    for prefix in _VLMEVALKIT_PREFIXES:
        answer = answer.replace(prefix, "")
    if len(answer.split()) > 10 and not re.search(r"[ABCDE]", answer):
        return ""
    found = re.search(r"[ABCDE]", answer)
    return found.group(0) if found else ""


def treevgr_boxes(text: str) -> list[list[int]]:
    """Every valid ``<box>[x1,y1,x2,y2]</box>`` of ``text`` by TreeVGR's rule (integers, no spaces, x1<x2, y1<y2)."""
    out = []
    for inner in _BOX.findall(text):
        match = _BOX_VALUES.match(inner.strip())
        if match:
            x1, y1, x2, y2 = (int(v) for v in match.groups())
            if x1 < x2 and y1 < y2:
                out.append([x1, y1, x2, y2])
    return out


def treevgr_item_iou(predicted: Sequence[Sequence[float]], targets: Sequence[Sequence[float]]) -> float:
    """TreeVGR's item score: the mean over targets of the best IoU over predicted boxes; 0 without a box or a
    target."""
    if not predicted or not targets:
        return 0.0
    return sum(max(iou(p, t) for p in predicted) for t in targets) / len(targets)


def vlmevalkit_item_iou(predicted: Sequence[Sequence[float]], targets: Sequence[Sequence[float]]) -> float:
    """VLMEvalKit's item score: 0 without a box; 1 with boxes and no target; else TreeVGR's mean of best IoUs."""
    if not predicted:
        return 0.0
    if not targets:
        return 1.0
    return treevgr_item_iou(predicted, targets)


@dataclass(frozen=True)
class TreeBenchSpec(ZoomSpec):
    """TreeBench: TreeVGR accuracy and mIoU (headline), VLMEvalKit's as the labelled variant."""

    box_form: str = "xyxy"
    direct_suffix: str = TREEBENCH_INSTRUCTION

    def validate(
        self, raw: RawRecord, layout: str, root: Path, check_images: bool, problems: list[tuple[str, str]]
    ) -> list[BenchmarkItem]:
        fields = raw.record or {}
        question = self.text_field(fields, "question", problems)
        options_text = self.text_field(fields, "multi-choice options", problems)
        answer = self.text_field(fields, "answer", problems).upper()
        category = self.text_field(fields, "category", problems)
        options = parse_options(options_text) if options_text else {}
        if options_text and len(options) < 2:
            problems.append(("multi-choice options", f"expected 'A. x' lines, got {options_text[:60]!r}"))
        if answer and options and answer not in options:
            problems.append(("answer", f"{answer!r} is not one of the options {''.join(options)}"))
        raw_targets = fields.get("target_instances")
        values: Any = raw_targets
        if isinstance(raw_targets, str):
            try:
                values = ast.literal_eval(raw_targets.strip()) if raw_targets.strip() else []
            except (ValueError, SyntaxError):
                problems.append(
                    ("target_instances", f"expected a Python list of [x1, y1, x2, y2], got {raw_targets[:60]!r}")
                )
                values = []
        elif raw_targets is None:
            values = []
        image, size = self.image_of(raw, None, root, check_images, problems)
        notes: list[str] = []
        targets = self.target_boxes(values, "target_instances", size, problems, notes)
        if problems:
            return []
        extra = {
            "options": options,
            "options_text": options_text.strip(),
            "targets": targets,
            "embedded_image": raw.image,
            "index": fields.get("index"),
        }
        if notes:
            extra["box_notes"] = notes
        return [self.item(raw, image, question, answer, category, extra)]

    def question(self, item: BenchmarkItem) -> str:
        """TreeVGR's user text: the question, " Options:", then the file's option lines."""
        return f"{item.question} Options:\n{item.extra['options_text']}"

    def score_item(
        self, item: BenchmarkItem, prediction_text: str, *, judge_score: float | None = None
    ) -> dict[str, Any]:
        """Letters only (no trajectory: the boxes are then read from this text, in its own frame)."""
        return self._score(item, prediction_text, [prediction_text], None)

    def score_prediction(
        self, item: BenchmarkItem, prediction: dict[str, Any], *, judge_score: float | None = None
    ) -> dict[str, Any]:
        from ground_r1.evaluation.general import final_text

        record = self._score(
            item, final_text(prediction), list(prediction.get("turns") or []), prediction.get("trajectory")
        )
        if item.extra["targets"]:
            record["box_quality"] = box_quality_record(prediction_boxes(prediction), item.extra["targets"])
        record["protocol"] = prediction.get("protocol")
        return record

    def _score(self, item: BenchmarkItem, final: str, turns: list[str], trajectory: dict | None) -> dict[str, Any]:
        record = self._base_record(item, None)
        letter = treevgr_letter(final)
        whole = "\n".join(turns)
        think = "\n".join(_THINK.findall(whole)) if _THINK.search(whole) else whole
        boxes, think_boxes = treevgr_boxes(whole), treevgr_boxes(think)
        mapped, think_mapped = boxes, think_boxes
        if trajectory and trajectory.get("input_size") and trajectory.get("original_size"):
            # The frame the model writes boxes in (input pixels or the 0-1000 grid), as recorded with the prediction.
            frame, size_orig = frame_of_record(trajectory), tuple(trajectory["original_size"])
            mapped = [list(frame.to_original(b, size_orig)) for b in boxes]
            think_mapped = [list(frame.to_original(b, size_orig)) for b in think_boxes]
        targets = item.extra["targets"]
        vlm_letter = vlmevalkit_letter(final)
        record.update(
            extracted=letter,
            parsed=letter or None,
            correct=letter == item.answer,
            boxes=boxes,
            boxes_original=mapped,
            iou=treevgr_item_iou(mapped, targets),
            variants={"vlmevalkit": vlm_letter == item.answer},
            variant_iou={"vlmevalkit": vlmevalkit_item_iou(think_mapped, targets)},
        )
        return record

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        self._check_records(records)
        n = len(records)
        per_category: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            per_category.setdefault(r["category"], []).append(r)
        return {
            "accuracy": percent(sum(bool(r["correct"]) for r in records), n),
            "miou": percent(sum(r["iou"] for r in records), n),
            "n": n,
            "n_no_box": sum(not r["boxes"] for r in records),
            "per_category": {
                c: {"accuracy": percent(sum(bool(r["correct"]) for r in rs), len(rs)), "n": len(rs)}
                for c, rs in sorted(per_category.items())
            },
            "variants": {
                "vlmevalkit": {
                    "accuracy": percent(sum(bool(r["variants"]["vlmevalkit"]) for r in records), n),
                    "miou": percent(sum(r["variant_iou"]["vlmevalkit"] for r in records), n),
                }
            },
            "box_quality": box_quality_summary(records),
        }

    def estimate(self, records: list[dict[str, Any]], metric: str = "headline") -> Estimate:
        if metric == "miou":
            return mean_estimate([100.0 * r["iou"] for r in records])
        if metric == "variant:vlmevalkit_miou":
            return mean_estimate([100.0 * r["variant_iou"]["vlmevalkit"] for r in records])
        return super().estimate(records, metric)

    def summary_rows(self, metrics: dict[str, Any], scored: ScoredBenchmark, skipped: int = 0) -> list[SummaryRow]:
        from ground_r1.evaluation.benchmarks.zoom_rows import accuracy_rows, box_rows

        rule = "TreeVGR inference_treebench.py @ 4823ad8 (first <answer>, exact letter)"
        rows = accuracy_rows(self, metrics, scored, skipped, rule)
        rows.append(
            self.summary_row(
                scored,
                skipped,
                "mIoU",
                metrics["miou"],
                rule="TreeVGR inference_treebench.py @ 4823ad8 (every <box>, best box per target, no box 0)",
                notes=f"{metrics['n_no_box']} item(s) without a valid box; {BOX_FRAME_NOTE} (official: "
                "input-frame pixels as they are)",
                which="miou",
            )
        )
        variant = metrics["variants"]["vlmevalkit"]
        rows.append(
            self.summary_row(
                scored,
                skipped,
                "accuracy",
                variant["accuracy"],
                rule="VLMEvalKit TreeBench (Thyme copy b9285b7: extract_characters_regex)",
                variant=True,
                which="variant:vlmevalkit",
            )
        )
        rows.append(
            self.summary_row(
                scored,
                skipped,
                "mIoU",
                variant["miou"],
                rule="VLMEvalKit TreeBench (boxes in <think> only; printed there on a 0-1 scale, here x100)",
                variant=True,
                which="variant:vlmevalkit_miou",
            )
        )
        return rows + box_rows(self, metrics, scored, skipped, BOX_FRAME_NOTE)
