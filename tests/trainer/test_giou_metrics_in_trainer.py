"""(g) The GIoU metrics a training step logs equal hand-computed values for scripted boxes (SPEC §3)."""

from __future__ import annotations

import pytest

from test_loss_inputs import run_step


def test_step_logs_hand_computed_giou(make_trainer, tmp_path):
    trainer = make_trainer()  # 1 question (record 0: 448x336 -> model view 112x84, scale 4), N=4, G1=2
    run_step(trainer, tmp_path)
    m = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    # gt = bboxs[0] = [100,100,200,180] (area 100*80 = 8000).
    # Round 1, branch 0: <box>[10,10,50,50]</box> -> original [40,40,200,200] (x*448/112 = x*4): area 25600,
    #   contains gt -> IoU = 8000/25600 = 0.3125; enclosing box = pred, so GIoU = IoU; score (0.3125+1)/2 = 0.65625.
    # Round 1, branch 1: [17,10,57,50] -> [68,40,228,200]: area 25600, contains gt -> same score 0.65625.
    # Round 2 (rows 1 and 3 ground again): [20,20,70,60] -> [80,80,280,240]: area 32000, contains gt ->
    #   IoU 0.25 -> score 0.625. Rows 0 and 2 answer (no box, and an answer turn is not a grounding round).
    assert m["giou/round_1"] == pytest.approx(0.65625)
    assert m["giou/round_2"] == pytest.approx(0.625)
    # Mean over the 4 round-1 boxes (one per trajectory) and 2 round-2 boxes.
    assert m["giou/score"] == pytest.approx((4 * 0.65625 + 2 * 0.625) / 6)
    assert m["giou/num_boxes"] == 6
    assert m["giou/no_box_rate"] == 0.0
    # Turns: trajectories 0 and 2 answer in round 2 (2 turns), 1 and 3 in round 3.
    assert m["rollout/turns_mean"] == pytest.approx(2.5)
    assert m["rollout/answered_frac"] == 1.0
    # Every trajectory answered "red" correctly with well-formed turns: reward 2 + 1, zero std.
    assert m["rewards/format_reward/mean"] == pytest.approx(2.0)
    assert m["rewards/accuracy_reward/mean"] == pytest.approx(1.0)
    assert m["frac_reward_zero_std"] == 1.0
