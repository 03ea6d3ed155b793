"""V*'s official likelihood scoring (issue 18): the mean option-token loss and the lowest-loss choice, on logits
whose losses are computed by hand, then once on the tiny model."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from ground_r1.evaluation.likelihood import choose_option, mean_token_loss, option_losses


def test_mean_token_loss_on_hand_computed_logits() -> None:
    # vocab 3; ids = [prompt 2, option 0, option 1]; position 0 predicts ids[1], position 1 predicts ids[2].
    # softmax([ln 2, 0, 0]) = [1/2, 1/4, 1/4] -> CE(token 0) = ln 2; softmax([0, 0, 0]) -> CE(token 1) = ln 3
    logits = torch.tensor([[math.log(2), 0.0, 0.0], [0.0, 0.0, 0.0], [9.0, 9.0, 9.0]])
    assert mean_token_loss(logits, [2, 0, 1], 1) == pytest.approx((math.log(2) + math.log(3)) / 2)
    assert mean_token_loss(logits, [2, 0, 1], 2) == pytest.approx(math.log(3))  # only the last token
    with pytest.raises(ValueError, match="no option token"):
        mean_token_loss(logits, [2, 0, 1], 3)


def test_lowest_mean_loss_wins_and_ties_go_to_the_earliest() -> None:
    # option 0: losses ln 2 and ln 3 (mean 0.896); option 1: one token at ln 2 (0.693) -> option 1 wins,
    # although its summed loss equals option 0's first token: the mean, not the sum, decides
    losses = [(math.log(2) + math.log(3)) / 2, math.log(2)]
    assert choose_option(losses) == 1
    assert choose_option([0.5, 0.5, 0.7]) == 0
    with pytest.raises(ValueError, match="non-finite"):
        choose_option([0.1, float("nan")])


def test_option_losses_on_the_tiny_model(tiny) -> None:
    from ground_r1.rollout.conversation import ConversationCodec

    model, processor = tiny
    codec = ConversationCodec(processor, add_vision_id=True)
    image = Image.new("RGB", (112, 84), (200, 30, 30))
    losses = option_losses(model, codec, image, "What color is the square?", ["It is red.", "It is blue.", "red"])
    assert len(losses) == 3 and all(math.isfinite(x) and x > 0 for x in losses)
    assert losses[0] != losses[1]
    again = option_losses(model, codec, image, "What color is the square?", ["It is blue."])
    assert again[0] == pytest.approx(losses[1], rel=1e-5)  # each option scored on its own
