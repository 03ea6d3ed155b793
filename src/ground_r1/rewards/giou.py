"""GIoU score of the self-chosen grounding boxes: a logged METRIC, never a reward (SPEC §1, §3).

For each trajectory and each grounding round r (1-based, the assistant turns that are not the final answer
turn), the parsed box is scored with ``(GIoU(pred, gt) + 1) / 2`` (:func:`ground_r1.boxes.giou_score`,
degenerate -> 0) against the record's first evidence box ``bboxs[0]``, and, as a second metric, against the
best-matching evidence box (:func:`ground_r1.boxes.best_giou_score`).

The caller passes each box already rescaled to original pixels and clamped, *before* the 28-px min-size
widening of the crop (SPEC §3), so the metric measures what the model chose, not the crop fix-up.

Output keys (all floats; a key whose mean would be over nothing is left out rather than logged as NaN):

* ``giou/score``: mean score against ``bboxs[0]`` over every scored box (all trajectories, all rounds);
* ``giou/score_best``: mean of the best score over all evidence boxes, same boxes;
* ``giou/round_{r}``: mean score against ``bboxs[0]`` of the round-r boxes, for each round r that has one;
* ``giou/no_box_rate``: grounding turns without a parsed box / all grounding turns (every trajectory,
  with or without evidence boxes: it describes the model's output, not the data); absent with no turns;
* ``giou/num_boxes``: the number of scored boxes (always present);
* ``giou/no_gt``: the number of trajectories whose record has no evidence box (always present): their
  boxes count in the no-box rate but in no score.

Iterative refinement (the paper: boxing again to refine the region emerges in RL), `refinement_metrics`: over the
trajectories whose first two grounding rounds both hold a box (and whose record has an evidence box), how the
second box scores against the first (both against ``bboxs[0]``):

* ``giou/refine_twice_frac``: such trajectories / trajectories with an evidence box (how often it boxes twice);
* ``giou/refine_improved_frac``, ``giou/refine_worsened_frac``: among them, second score above / below the first
  (the rest repeat a box of the same score);
* ``giou/refine_gain``: mean of (second score - first score) among them (how much).

Absent (not NaN) when no trajectory boxes twice, except ``refine_twice_frac``.

Trajectories are counted as given: with tree sampling a shared round-1 turn appears once per trajectory
that shares it (G2 times), which is also how it is weighted in the loss (SPEC §4).
"""

from __future__ import annotations

from typing import Optional, Sequence

from ground_r1.boxes import best_giou_score, giou_score

BoxLike = Sequence[float]


def giou_metrics(
    turn_boxes: Sequence[Sequence[Optional[BoxLike]]],
    gt_boxes: Sequence[Sequence[BoxLike]],
    prefix: str = "giou/",
) -> dict[str, float]:
    """GIoU metrics of a batch of trajectories (SPEC §3).

    Args:
        turn_boxes: per trajectory, one entry per grounding round (in order, round 1 first): the parsed box
            in original pixels, or ``None`` when the turn held no box. The final answer turn is not listed.
        gt_boxes: per trajectory, the record's evidence boxes ``bboxs`` (xyxy, original pixels); may be empty.
        prefix: metric-name prefix (the keys above use the default ``"giou/"``).

    Raises:
        ValueError: the two lists differ in length.
    """
    if len(turn_boxes) != len(gt_boxes):
        raise ValueError(
            f"giou_metrics: {len(turn_boxes)} trajectories of boxes but {len(gt_boxes)} lists of evidence "
            "boxes; pass one gt list per trajectory (repeat a record's bboxs for each trajectory of its group)"
        )
    scores: list[float] = []
    best_scores: list[float] = []
    by_round: dict[int, list[float]] = {}
    num_turns = num_no_box = num_no_gt = 0
    for boxes, gts in zip(turn_boxes, gt_boxes):
        if len(gts) == 0:
            num_no_gt += 1
        for round_index, box in enumerate(boxes, start=1):
            num_turns += 1
            if box is None:
                num_no_box += 1
                continue
            if len(gts) == 0:
                continue
            score = giou_score(box, gts[0])
            scores.append(score)
            best_scores.append(best_giou_score(box, gts))
            by_round.setdefault(round_index, []).append(score)

    metrics: dict[str, float] = {
        f"{prefix}num_boxes": float(len(scores)),
        f"{prefix}no_gt": float(num_no_gt),
    }
    if num_turns:
        metrics[f"{prefix}no_box_rate"] = num_no_box / num_turns
    if scores:
        metrics[f"{prefix}score"] = sum(scores) / len(scores)
        metrics[f"{prefix}score_best"] = sum(best_scores) / len(best_scores)
    for round_index in sorted(by_round):
        round_scores = by_round[round_index]
        metrics[f"{prefix}round_{round_index}"] = sum(round_scores) / len(round_scores)
    return metrics


def refinement_metrics(
    turn_boxes: Sequence[Sequence[Optional[BoxLike]]],
    gt_boxes: Sequence[Sequence[BoxLike]],
    prefix: str = "giou/",
) -> dict[str, float]:
    """Second box against first box (module doc), same arguments as `giou_metrics`."""
    if len(turn_boxes) != len(gt_boxes):
        raise ValueError(
            f"refinement_metrics: {len(turn_boxes)} trajectories of boxes but {len(gt_boxes)} lists of evidence boxes"
        )
    with_gt = gains = 0
    deltas: list[float] = []
    for boxes, gts in zip(turn_boxes, gt_boxes):
        if len(gts) == 0:
            continue
        with_gt += 1
        if len(boxes) >= 2 and boxes[0] is not None and boxes[1] is not None:
            deltas.append(giou_score(boxes[1], gts[0]) - giou_score(boxes[0], gts[0]))
    if not with_gt:
        return {}
    out = {f"{prefix}refine_twice_frac": len(deltas) / with_gt}
    if deltas:
        eps = 1e-9
        gains = sum(d > eps for d in deltas)
        out[f"{prefix}refine_improved_frac"] = gains / len(deltas)
        out[f"{prefix}refine_worsened_frac"] = sum(d < -eps for d in deltas) / len(deltas)
        out[f"{prefix}refine_gain"] = sum(deltas) / len(deltas)
    return out
