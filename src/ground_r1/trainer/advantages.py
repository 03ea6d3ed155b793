"""Group-relative advantages (SPEC §4).

Group = the N trajectories of one question (consecutive in the batch). A = (r - mean) / (std + 1e-4) with the
unbiased std, as the release (TRL's "group" scaling). A round-1 output shared by G2 trajectories receives the sum
of their per-token gradients in the loss: the tree's implicit credit assignment, nothing to do here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ADVANTAGE_EPS = 1e-4  # SPEC §4


@dataclass
class Advantages:
    advantages: torch.Tensor  # [B*N]
    group_std: torch.Tensor  # [B*N], the std of each trajectory's group
    zero_std: torch.Tensor  # [B*N] bool: the group's rewards are all equal (no learning signal)


def group_advantages(
    rewards: torch.Tensor, group_size: int, scale: str = "group", eps: float = ADVANTAGE_EPS
) -> Advantages:
    """Advantages of a flat reward vector whose consecutive blocks of `group_size` form groups.

    scale: "group" (divide by the group's std, SPEC §4), "batch" (by the std of the whole batch) or "none"
    (Dr. GRPO: centre only). NaN rewards (unscorable) are left out of the statistics and get advantage 0.
    """
    if rewards.dim() != 1 or rewards.numel() % group_size != 0:
        raise ValueError(
            f"rewards must be 1-D with a multiple of {group_size} entries, got shape {tuple(rewards.shape)}"
        )
    grouped = rewards.view(-1, group_size)
    valid = ~torch.isnan(grouped)
    count = valid.sum(dim=1, keepdim=True)
    mean = torch.where(valid, grouped, torch.zeros_like(grouped)).sum(dim=1, keepdim=True) / count.clamp(min=1)
    sq = torch.where(valid, (grouped - mean) ** 2, torch.zeros_like(grouped)).sum(dim=1, keepdim=True)
    std = torch.sqrt(sq / (count - 1).clamp(min=1))  # unbiased
    std = torch.where(count > 1, std, torch.zeros_like(std))
    centred = grouped - mean
    if scale == "group":
        adv = centred / (std + eps)
    elif scale == "batch":
        flat = rewards[~torch.isnan(rewards)]
        batch_std = flat.std() if flat.numel() > 1 else torch.tensor(0.0, device=rewards.device)
        adv = centred / (batch_std + eps)
    elif scale == "none":
        adv = centred
    else:
        raise ValueError(f"scale must be 'group', 'batch' or 'none', got {scale!r}")
    adv = torch.nan_to_num(adv, nan=0.0)
    group_std = std.expand_as(grouped).reshape(-1)
    return Advantages(
        advantages=adv.reshape(-1),
        group_std=group_std,
        zero_std=torch.isclose(group_std, torch.zeros_like(group_std)),
    )
