"""Group advantages (SPEC §4), values derived by hand."""

from __future__ import annotations

import math

import pytest
import torch

from ground_r1.trainer.advantages import group_advantages


def test_group_advantages_hand_computed():
    # Group 1: rewards [3, 1, 1, 1]: mean 1.5; deviations [1.5, -.5, -.5, -.5]; unbiased var = (2.25 + 3*.25)/3 = 1,
    # std 1 -> A = dev / (1 + 1e-4). Group 2: all 2.0 -> std 0 -> A = 0 (no signal), flagged zero_std.
    rewards = torch.tensor([3.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    out = group_advantages(rewards, 4)
    expected = [1.5 / 1.0001, -0.5 / 1.0001, -0.5 / 1.0001, -0.5 / 1.0001, 0, 0, 0, 0]
    assert out.advantages.tolist() == pytest.approx(expected, abs=1e-7)
    assert out.zero_std.tolist() == [False] * 4 + [True] * 4
    assert out.group_std.tolist() == pytest.approx([1, 1, 1, 1, 0, 0, 0, 0])


def test_two_element_groups_and_scaling_variants():
    # [0, 2]: mean 1, unbiased std sqrt(((1)^2 + (1)^2) / 1) = sqrt(2).
    rewards = torch.tensor([0.0, 2.0])
    assert group_advantages(rewards, 2).advantages.tolist() == pytest.approx(
        [-1 / (math.sqrt(2) + 1e-4), 1 / (math.sqrt(2) + 1e-4)]
    )
    assert group_advantages(rewards, 2, scale="none").advantages.tolist() == [-1.0, 1.0]


def test_unscorable_rewards_are_left_out_and_get_zero_advantage():
    # NaN is excluded: group [1, 3, nan, nan] has mean 2, unbiased std sqrt(2).
    rewards = torch.tensor([1.0, 3.0, float("nan"), float("nan")])
    adv = group_advantages(rewards, 4).advantages.tolist()
    s = math.sqrt(2) + 1e-4
    assert adv == pytest.approx([-1 / s, 1 / s, 0.0, 0.0])


def test_bad_shape_is_rejected():
    with pytest.raises(ValueError, match="multiple of 4"):
        group_advantages(torch.zeros(6), 4)
