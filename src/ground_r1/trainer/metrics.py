"""Rollout metrics of one step (names defined in docs/metrics.md).

rollout/turns_mean ("refine times"), rollout/turns_{k}_frac, rollout/answered_frac, rollout/finish_{reason}_frac,
rollout/crop_fallback_rate, rollout/sampled_tokens_mean, rollout/completion_tokens_mean,
rollout/hit_token_limit_rate, giou/* (SPEC §3: score per round, best-match score, no-box rate; giou/refine_*: second box against the first).
Collapse alarms (SPEC §9): turns_mean falling to 1 and sampled_tokens_mean shrinking, with
frac_reward_zero_std rising, are the visible signs of the one-round collapse of the public reproduction.
"""

from __future__ import annotations

from collections import Counter
from statistics import fmean
from typing import Sequence

from ground_r1.rewards.giou import giou_metrics, refinement_metrics
from ground_r1.rollout.trajectory import Trajectory


def grounding_boxes(t: Trajectory) -> list:
    """Per grounding round (every turn but a final answer turn): the box in original pixels, or None."""
    turns = t.turns[:-1] if t.turns and t.turns[-1].is_answer else t.turns
    return [turn.box_original for turn in turns]


def trajectory_stats(t: Trajectory, gt_boxes: Sequence) -> dict:
    """What the step metrics need of one trajectory: small and picklable, so ranks can gather them."""
    return {
        "turns": t.num_turns,
        "finish_reason": t.finish_reason,
        "sampled_tokens": t.num_sampled_tokens,
        "completion_tokens": len(t.completion_ids),
        "images": len(t.images),
        "crops": [(turn.crop_window is not None, turn.crop_is_fallback) for turn in t.turns],
        "hit_token_limit": [turn.hit_token_limit for turn in t.turns],
        "grounding_boxes": grounding_boxes(t),
        "gt_boxes": [list(b) for b in gt_boxes],
    }


def aggregate_rollout_stats(stats: Sequence[dict]) -> dict[str, float]:
    """Step metrics over the stats of every trajectory (of every rank)."""
    if not stats:
        return {}
    out: dict[str, float] = {}
    n = len(stats)
    turns = [s["turns"] for s in stats]
    out["rollout/turns_mean"] = fmean(turns)
    out["rollout/turns_max"] = float(max(turns))
    for k, count in sorted(Counter(turns).items()):
        out[f"rollout/turns_{k}_frac"] = count / n
    reasons = Counter(s["finish_reason"] for s in stats)
    for reason, count in sorted(reasons.items(), key=lambda kv: str(kv[0])):
        out[f"rollout/finish_{reason}_frac"] = count / n
    out["rollout/answered_frac"] = reasons.get("answer", 0) / n
    crops = [fallback for s in stats for made, fallback in s["crops"] if made]
    out["rollout/crop_fallback_rate"] = (sum(crops) / len(crops)) if crops else 0.0
    limits = [hit for s in stats for hit in s["hit_token_limit"]]
    out["rollout/hit_token_limit_rate"] = sum(limits) / max(len(limits), 1)
    out["rollout/sampled_tokens_mean"] = fmean(s["sampled_tokens"] for s in stats)
    out["rollout/completion_tokens_mean"] = fmean(s["completion_tokens"] for s in stats)
    out["rollout/images_mean"] = fmean(s["images"] for s in stats)
    boxes, gts = [s["grounding_boxes"] for s in stats], [s["gt_boxes"] for s in stats]
    out.update(giou_metrics(boxes, gts))
    out.update(refinement_metrics(boxes, gts))
    return out
