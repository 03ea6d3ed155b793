"""GIoU metric (SPEC §3): (GIoU + 1) / 2 per grounding round, against bboxs[0] and the best gt; no-box rate."""

from __future__ import annotations

import pytest

from ground_r1.rewards.giou import giou_metrics

GT0 = [0, 0, 10, 10]
GT1 = [20, 0, 30, 10]

# Hand-computed scores against GT0 (area 100):
#   [0,0,10,10]: GIoU 1                                   -> 1.0
#   [0,0,10,5]:  IoU 50/100 = 0.5, enclosing = union = 100 -> GIoU 0.5  -> 0.75
#   [20,0,30,10]: IoU 0, enclosing [0,0,30,10] = 300, union 200 -> GIoU -100/300 -> (2/3)/2 = 1/3
# Against GT1: [0,0,10,5]: IoU 0, enclosing 300, union 150 -> GIoU -0.5 -> 0.25; [20,0,30,10] -> 1.0.


def test_per_round_scores_with_no_box_turns_and_no_gt():
    turn_boxes = [
        [[0, 0, 10, 5], None, [20, 0, 30, 10]],  # rounds 1-3, round 2 without a box
        [[0, 0, 10, 10]],  # round 1 only
        [None],  # no box, no gt
        [[0, 0, 5, 5]],  # a box, but the record has no gt
    ]
    gt_boxes = [[GT0, GT1], [GT0], [], []]
    metrics = giou_metrics(turn_boxes, gt_boxes)
    assert set(metrics) == {
        "giou/score",
        "giou/score_best",
        "giou/round_1",
        "giou/round_3",
        "giou/no_box_rate",
        "giou/num_boxes",
        "giou/no_gt",
    }  # fmt: skip  (no giou/round_2: its only turn had no box)
    # Scored boxes vs GT0: 0.75 (T1 r1), 1/3 (T1 r3), 1.0 (T2 r1).
    assert metrics["giou/num_boxes"] == 3.0
    assert metrics["giou/score"] == pytest.approx((0.75 + 1 / 3 + 1.0) / 3)
    # Best over gts: max(0.75, 0.25) = 0.75, max(1/3, 1.0) = 1.0, 1.0.
    assert metrics["giou/score_best"] == pytest.approx((0.75 + 1.0 + 1.0) / 3)
    assert metrics["giou/round_1"] == pytest.approx((0.75 + 1.0) / 2)
    assert metrics["giou/round_3"] == pytest.approx(1 / 3)
    # 6 grounding turns in all (3 + 1 + 1 + 1), 2 without a box (T1 r2, T3 r1).
    assert metrics["giou/no_box_rate"] == pytest.approx(2 / 6)
    assert metrics["giou/no_gt"] == 2.0


def test_degenerate_box_scores_zero_and_is_averaged_in():
    # A zero-width box is a parsed box: it scores 0 (SPEC §3) and counts in the mean: (0 + 1) / 2.
    metrics = giou_metrics([[[5, 5, 5, 9]], [[0, 0, 10, 10]]], [[GT0], [GT0]])
    assert metrics["giou/score"] == pytest.approx(0.5)
    assert metrics["giou/round_1"] == pytest.approx(0.5)
    assert metrics["giou/no_box_rate"] == 0.0


def test_nothing_scored_leaves_means_out():
    # Only no-box turns: no score keys (no NaN logged), a no-box rate of 1.
    assert giou_metrics([[None, None]], [[GT0]]) == {
        "giou/num_boxes": 0.0,
        "giou/no_gt": 0.0,
        "giou/no_box_rate": 1.0,
    }
    # A direct answer (no grounding turn at all): no turns, so no rate either.
    assert giou_metrics([[]], [[GT0]]) == {"giou/num_boxes": 0.0, "giou/no_gt": 0.0}
    assert giou_metrics([], []) == {"giou/num_boxes": 0.0, "giou/no_gt": 0.0}


def test_prefix_and_length_mismatch():
    metrics = giou_metrics([[[0, 0, 10, 10]]], [[GT0]], prefix="eval/giou/")
    assert metrics["eval/giou/score"] == 1.0
    with pytest.raises(ValueError, match="2 trajectories"):
        giou_metrics([[None], [None]], [[GT0]])


def test_refinement_compares_the_second_box_with_the_first_of_trajectories_that_box_twice():
    from ground_r1.rewards.giou import refinement_metrics

    turn_boxes = [
        [[0, 0, 10, 5], [0, 0, 10, 10]],  # 0.75 -> 1.0: improved by 0.25
        [[0, 0, 10, 10], [20, 0, 30, 10]],  # 1.0 -> 1/3: worse by 2/3
        [[0, 0, 10, 5], [0, 0, 10, 5], [0, 0, 10, 10]],  # the same box again (only rounds 1 and 2 count)
        [None, [0, 0, 10, 10]],  # no first box: does not box twice
        [[0, 0, 10, 10]],  # boxes once
        [[0, 0, 10, 10], [0, 0, 10, 5]],  # no evidence box: left out entirely
    ]
    gts = [[GT0]] * 5 + [[]]
    out = refinement_metrics(turn_boxes, gts)
    assert out["giou/refine_twice_frac"] == pytest.approx(3 / 5)
    assert out["giou/refine_improved_frac"] == pytest.approx(1 / 3)
    assert out["giou/refine_worsened_frac"] == pytest.approx(1 / 3)
    assert out["giou/refine_gain"] == pytest.approx((0.25 - 2 / 3 + 0.0) / 3)
    # nobody boxes twice: only the share is reported; no evidence box at all: nothing
    assert refinement_metrics([[[0, 0, 10, 10]]], [[GT0]], prefix="") == {"refine_twice_frac": 0.0}
    assert refinement_metrics([[[0, 0, 1, 1], [0, 0, 2, 2]]], [[]]) == {}
    with pytest.raises(ValueError, match="2 trajectories of boxes but 1 lists"):
        refinement_metrics([[], []], [[]])
