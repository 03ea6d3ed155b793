"""Box quality of an evaluation's boxes against a benchmark's target boxes, per round (issue 18).

Where a benchmark annotates the evidence (V*'s ``bbox``, TreeBench's ``target_instances``), each round's box of a
prediction is compared with the targets, **in original-image pixels**: the rollout records every parsed box
mapped from the model's input frame (``Turn.box_original``: clamped to the input, then ``int(x * W / w)``, SPEC
§2); a turn without it (the baseline protocol parses no box) has its first box read by the same rule
(:func:`ground_r1.boxes.parse_turn_box`) and mapped the same way. Per round and item:

- ``iou_best`` / ``giou_best``: the best IoU / GIoU score (``(GIoU + 1) / 2``, SPEC §3) over the targets;
- ``iou_first`` / ``giou_first``: against the first target (V*'s first ``target_object``, the one the question
  names first);
- no box in a round that was played: counted in the round's no-box rate, left out of its means (a mean over
  boxes given, so the two numbers read together). Rounds an item never reached are not counted at all.

No peer reports this for V*; it measures where the crop loop looks, not whether the answer is right.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ground_r1.boxes import giou_score, iou, parse_turn_box
from ground_r1.models.families.coordinates import frame_of_record

__all__ = ["BOX_FRAME_NOTE", "box_quality_record", "box_quality_summary", "prediction_boxes"]

BOX_FRAME_NOTE = "boxes mapped from the model's frame (input pixels or 0-1000 grid) to original pixels (SPEC §2 int(x*W/w)) before IoU"


def prediction_boxes(prediction: Mapping[str, Any], box_parse: str = "tag_first") -> list[list[int] | None]:
    """Per assistant turn of a prediction record, its box in original pixels (None: no box in that turn)."""
    trajectory = prediction.get("trajectory") or {}
    turns = trajectory.get("turns") or []
    input_size = trajectory.get("input_size")
    original_size = trajectory.get("original_size")
    out: list[list[int] | None] = []
    for turn in turns:
        box = turn.get("box_original")
        if box is None and input_size and original_size:
            parsed = parse_turn_box(turn.get("text", ""), box_parse)
            if parsed is not None:
                box = list(frame_of_record(trajectory).to_original(parsed.box, tuple(original_size)))
        out.append(list(box) if box is not None else None)
    return out


def box_quality_record(boxes: Sequence[Sequence[float] | None], targets: Sequence[Sequence[float]]) -> list[dict]:
    """One entry per round: ``{"round", "box", "iou_best", "iou_first", "giou_best", "giou_first"}`` (the four
    scores None when the round has no box). ``targets`` are xyxy original pixels, at least one.

    Raises:
        ValueError: no target box.
    """
    if not targets:
        raise ValueError("box quality needs at least one target box")
    rounds = []
    for number, box in enumerate(boxes, start=1):
        entry: dict[str, Any] = {"round": number, "box": list(box) if box is not None else None}
        if box is None:
            entry.update(iou_best=None, iou_first=None, giou_best=None, giou_first=None)
        else:
            ious = [iou(box, t) for t in targets]
            gious = [giou_score(box, t) for t in targets]
            entry.update(iou_best=max(ious), iou_first=ious[0], giou_best=max(gious), giou_first=gious[0])
        rounds.append(entry)
    return rounds


def box_quality_summary(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per round over the records holding ``box_quality``: items that played the round, boxes given, the no-box
    rate (x100) and the mean of each score over the boxes given (x100; None when no box)."""
    by_round: dict[int, list[Mapping[str, Any]]] = {}
    for record in records:
        for entry in record.get("box_quality") or []:
            by_round.setdefault(int(entry["round"]), []).append(entry)
    rows = []
    for number in sorted(by_round):
        entries = by_round[number]
        boxed = [e for e in entries if e["box"] is not None]
        row: dict[str, Any] = {
            "round": number,
            "items": len(entries),
            "boxes": len(boxed),
            "no_box_rate": 100.0 * (len(entries) - len(boxed)) / len(entries),
        }
        for key in ("iou_best", "iou_first", "giou_best", "giou_first"):
            row[key] = 100.0 * sum(e[key] for e in boxed) / len(boxed) if boxed else None
        rows.append(row)
    return rows
