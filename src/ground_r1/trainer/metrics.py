"""Rollout metrics of one step (names defined in docs/metrics.md).

rollout/turns_mean ("refine times"), rollout/turns_{k}_frac, rollout/answered_frac, rollout/finish_{reason}_frac,
rollout/crop_fallback_rate, rollout/sampled_tokens_mean, rollout/completion_tokens_mean,
rollout/hit_token_limit_rate, giou/* (SPEC §3: score per round, best-match score, no-box rate).
Collapse alarms (SPEC §9): turns_mean falling to 1 and sampled_tokens_mean shrinking, with
frac_reward_zero_std rising, are the visible signs of the one-round collapse of the public reproduction.
"""

from __future__ import annotations

from collections import Counter
from statistics import fmean
from typing import Sequence

from ground_r1.rewards.giou import giou_metrics
from ground_r1.rollout.trajectory import Trajectory


def grounding_boxes(t: Trajectory) -> list:
    """Per grounding round (every turn but a final answer turn): the box in original pixels, or None."""
    turns = t.turns[:-1] if t.turns and t.turns[-1].is_answer else t.turns
    return [turn.box_original for turn in turns]


def rollout_metrics(trajectories: Sequence[Trajectory], gt_boxes: Sequence[Sequence]) -> dict[str, float]:
    if not trajectories:
        return {}
    out: dict[str, float] = {}
    turns = [t.num_turns for t in trajectories]
    out["rollout/turns_mean"] = fmean(turns)
    out["rollout/turns_max"] = float(max(turns))
    for k, count in sorted(Counter(turns).items()):
        out[f"rollout/turns_{k}_frac"] = count / len(turns)
    reasons = Counter(t.finish_reason for t in trajectories)
    for reason, count in sorted(reasons.items(), key=lambda kv: str(kv[0])):
        out[f"rollout/finish_{reason}_frac"] = count / len(trajectories)
    out["rollout/answered_frac"] = reasons.get("answer", 0) / len(trajectories)
    all_turns = [turn for t in trajectories for turn in t.turns]
    crops = [turn for turn in all_turns if turn.crop_window is not None]
    out["rollout/crop_fallback_rate"] = (sum(c.crop_is_fallback for c in crops) / len(crops)) if crops else 0.0
    out["rollout/hit_token_limit_rate"] = sum(turn.hit_token_limit for turn in all_turns) / max(len(all_turns), 1)
    out["rollout/sampled_tokens_mean"] = fmean(t.num_sampled_tokens for t in trajectories)
    out["rollout/completion_tokens_mean"] = fmean(len(t.completion_ids) for t in trajectories)
    out["rollout/images_mean"] = fmean(len(t.images) for t in trajectories)
    out.update(giou_metrics([grounding_boxes(t) for t in trajectories], list(gt_boxes)))
    return out
