"""Per-item VisCoT scores: the judge's score and the rule-based score side by side (SPEC §3, §7).

One row per prediction (``scores.jsonl``)::

    {"key", "dataset", "status": "ok"|"error", "rule_score": float|null, "letter_rule": "spec"|"release",
     "judge_score": float|null, "judge_status": "ok"|"failed"|"unparseable"|"missing"|"not_judged",
     "box_score": float|null, "box_status": "ok"|"no_box"|"no_evidence_box"|"bad_evidence_box"|"no_grounding"}

- ``rule_score``: the training accuracy handler of the record's ``dataset`` applied to the final turn
  (:func:`ground_r1.rewards.accuracy_score`); ``null`` (shown "n/a") when no rule applies: emotic, or a name
  with no handler (evaluation never fails on a dataset name; SPEC §3).
- ``letter_rule``: which option-letter rule scored v7w/gqa/openimages letters (the registry's, from the same
  ``letter_rule`` config value as training), so the table can say which rule made its rule column.
- ``judge_status``: the judge record's status; ``missing`` when the judge ran but this key has no record (a
  run stopped early), ``not_judged`` when nothing was judged at all. Only ``ok`` carries a score: a failure is
  never a score (SPEC §7), tables exclude and count it.
- ``box_score``: the box metric, the GIoU score ``(GIoU + 1) / 2`` (SPEC §3, the training metric) of the
  model's first box (turn 1, original pixels) against the record's first usable evidence box. ``box_status``
  says why there is none: ``no_box`` (the model's first turn gave no box; counted, as ``giou/no_box_rate`` in
  training), ``bad_evidence_box`` (the record's evidence box is unusable: n/a, counted; the question itself is
  evaluated), ``no_evidence_box`` (the record has none), ``no_grounding`` (a protocol without boxes, or an error).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from ground_r1.boxes import giou_score
from ground_r1.evaluation.judge import JudgeItem, judge_inputs_from_prediction
from ground_r1.rewards import DEFAULT_REGISTRY, AccuracyRegistry, accuracy_score

SCORES_NAME = "scores.jsonl"
JUDGE_FAILURES = ("failed", "unparseable", "missing")


def final_turn(prediction: Mapping[str, Any]) -> str:
    turns = prediction.get("turns") or []
    return turns[-1] if turns else ""


def rule_score(prediction: Mapping[str, Any], registry: AccuracyRegistry = DEFAULT_REGISTRY) -> float | None:
    """The SPEC §3 accuracy of a prediction's final turn, or None when its dataset has no rule (n/a)."""
    dataset = str(prediction.get("dataset", ""))
    if not registry.has_rule(dataset):
        return None
    return accuracy_score(final_turn(prediction), str(prediction.get("solution", "")), dataset, registry)


BOX_STATUSES = ("ok", "no_box", "bad_evidence_box", "no_evidence_box", "no_grounding")


def box_score(prediction: Mapping[str, Any]) -> tuple[float | None, str]:
    """(box metric, box status) of one prediction (module docstring)."""
    turns = (prediction.get("trajectory") or {}).get("turns") or []
    if prediction.get("status") != "ok" or prediction.get("protocol") not in ("ground_r1", "ground_sft"):
        return None, "no_grounding"
    evidence = prediction.get("bboxs") or []
    if not evidence:
        return None, "bad_evidence_box" if prediction.get("box_issues") else "no_evidence_box"
    first = turns[0] if turns else {}
    answered_at_once = len(turns) == 1 and first.get("is_answer")
    box = None if answered_at_once else first.get("box_original")
    if box is None:
        return None, "no_box"
    return giou_score(box, evidence[0]), "ok"


def judge_items(predictions: Iterable[Mapping[str, Any]]) -> list[JudgeItem]:
    """What the judge sees of each successful prediction (SPEC §7: extracted answer, ground truth without
    tags), keyed by the prediction key."""
    items = []
    for pred in predictions:
        if pred.get("status") != "ok":
            continue
        question, ground_truth, answer = judge_inputs_from_prediction(pred)
        items.append(JudgeItem(key=str(pred["key"]), question=question, ground_truth=ground_truth, answer=answer))
    return items


def score_row(
    prediction: Mapping[str, Any],
    judgments: Mapping[str, Mapping[str, Any]] | None,
    registry: AccuracyRegistry = DEFAULT_REGISTRY,
) -> dict[str, Any]:
    """The score row of one prediction; ``judgments`` is None when nothing was judged."""
    key = str(prediction["key"])
    row: dict[str, Any] = {
        "key": key,
        "dataset": prediction.get("dataset"),
        "status": prediction.get("status"),
        "letter_rule": registry.letter_rule,
    }
    row["box_score"], row["box_status"] = box_score(prediction)
    if prediction.get("status") != "ok":
        row.update(rule_score=None, judge_score=None, judge_status="not_judged" if judgments is None else "missing")
        return row
    row["rule_score"] = rule_score(prediction, registry)
    if judgments is None:
        row.update(judge_score=None, judge_status="not_judged")
        return row
    judged = judgments.get(key)
    if judged is None:
        row.update(judge_score=None, judge_status="missing")
    else:
        ok = judged.get("status") == "ok"
        row.update(judge_score=float(judged["score"]) if ok else None, judge_status=judged.get("status"))
    return row


def score_predictions(
    predictions: Iterable[Mapping[str, Any]],
    judgments: Mapping[str, Mapping[str, Any]] | None,
    registry: AccuracyRegistry = DEFAULT_REGISTRY,
) -> list[dict[str, Any]]:
    return [score_row(p, judgments, registry) for p in predictions]


def write_scores(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write the rows as JSONL, atomically (the score stage is cheap and always recomputed)."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, target)
    return target


def load_scores(
    path: str | os.PathLike[str], required: tuple[str, ...] = ("key", "dataset", "judge_status")
) -> list[dict[str, Any]]:
    """Rows of a scores file (``scores.jsonl``; ``refcoco_scores.jsonl`` with ``required`` of its own).

    Raises:
        FileNotFoundError: the file does not exist (run the 'score' stage first).
        ValueError: a line is not a score row (named as file:line).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no scores file {p}: run the 'score' stage first")
    rows = []
    for number, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}:{number}: not a JSON line ({exc.msg})") from None
        if not isinstance(row, dict) or not set(required) <= set(row):
            raise ValueError(f"{p}:{number}: not a score row (needs {', '.join(required)})")
        rows.append(row)
    return rows
