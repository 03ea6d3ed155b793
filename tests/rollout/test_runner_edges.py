"""Rollout edge cases with a scripted policy: vision tokens sampled anyway, the total budget, the no-crop control."""

from __future__ import annotations

import pytest
from PIL import Image

from ground_r1.models.loading import load_processor
from ground_r1.rollout.conversation import ConversationCodec
from ground_r1.rollout.runner import Rollout, RolloutConfig, RolloutQuestion
from ground_r1.rollout.sampling import SamplingParams, TreePlan
from ground_r1.demo.scripted import ScriptedGenerator, ground_until_limit


@pytest.fixture(scope="module")
def codec(tiny_model_dir):
    return ConversationCodec(load_processor(tiny_model_dir, min_pixels=3136, max_pixels=12544))


def question():
    return RolloutQuestion("What colour?", Image.new("RGB", (448, 336), (10, 200, 30)))


def test_a_sampled_vision_token_is_replaced_masked_and_ends_the_trajectory(codec):
    gen = ScriptedGenerator(codec, lambda call: "<think> a <|image_pad|> b </think> <box>[1,1,40,40]</box>")
    t = Rollout(codec, gen, RolloutConfig(max_turns=3)).run([question()], TreePlan(1, 1), SamplingParams())[0]
    assert t.finish_reason == "vision_token" and t.num_turns == 1
    assert codec.image_token_id not in t.completion_ids  # would desynchronise image features in the loss
    assert sum(t.completion_mask) == 0  # the whole turn is left out of the loss
    assert len(t.images) == 1  # no crop was fed back


def test_the_total_budget_ends_a_trajectory_and_is_never_exceeded(codec):
    gen = ScriptedGenerator(codec, ground_until_limit)
    cfg = RolloutConfig(max_turns=5, max_completion_length=300)
    trajectories = Rollout(codec, gen, cfg).run([question()], TreePlan(1, 2), SamplingParams(max_new_tokens=64))
    for t in trajectories:
        assert t.finish_reason == "budget"
        assert len(t.completion_ids) <= 300
        assert t.num_turns < 5


def test_no_crop_control_feeds_the_original_image_back(codec):
    gen = ScriptedGenerator(codec, ground_until_limit)
    cropped = Rollout(codec, gen, RolloutConfig(max_turns=2)).run([question()], TreePlan(1, 1), SamplingParams())[0]
    uncropped = Rollout(codec, gen, RolloutConfig(max_turns=2, no_crop=True)).run(
        [question()], TreePlan(1, 1), SamplingParams()
    )[0]
    # The original 448x336 becomes a 112x84 view (grid 1x6x8); the crop of a 40x40 box is smaller.
    assert uncropped.images[1].grid_thw.tolist() == uncropped.images[0].grid_thw.tolist() == [1, 6, 8]
    assert cropped.images[1].grid_thw.tolist() != [1, 6, 8]
    assert cropped.turns[0].crop_window is not None and not cropped.turns[0].crop_is_fallback


def test_box_parse_release_reaches_the_crop(codec):
    # box_parse (SPEC §2): the same turn crops where <box> says under ours, and around the first list under the
    # release's rule. Input 112x84 of a 448x336 original (scale 4).
    turn = "<think>[2, 2, 10, 10] is a guess</think> <box>[50,40,80,70]</box>"
    gen = ScriptedGenerator(codec, lambda call: turn)
    runs = {
        rule: Rollout(codec, gen, RolloutConfig(max_turns=2, box_parse=rule)).run(
            [question()], TreePlan(1, 1), SamplingParams()
        )[0]
        for rule in ("tag_first", "release")
    }
    ours, release = runs["tag_first"].turns[0], runs["release"].turns[0]
    assert (ours.box, ours.box_source, ours.crop_window) == ((50.0, 40.0, 80.0, 70.0), "box_tag", (200, 160, 320, 280))
    assert (release.box, release.box_source) == ((2.0, 2.0, 10.0, 10.0), "release_regex")
    assert release.crop_window == (8, 8, 40, 40) and not release.crop_is_fallback
    with pytest.raises(ValueError, match="box_parse must be one of tag_first, release, got 'tags'"):
        RolloutConfig(box_parse="tags")


def test_a_round_is_one_generate_call_and_each_turn_is_cut_to_its_own_budget(codec):
    calls = []
    turns = {0: [7, 8, 9, 10, 11], 2: [7, 8, 9, 10, 11], 3: [21, codec.eos_token_id]}

    def generate(requests, sampling, max_new_tokens):
        calls.append((len(requests), max_new_tokens))
        from ground_r1.rollout.generation import GeneratedTurn

        # Row i's sample up to the call's limit: rows 0 and 2 never stop, row 3 stops after 2 tokens.
        return [
            GeneratedTurn(
                ids=list(turns[r.key[1]][:max_new_tokens]),
                logps=[-0.5] * len(turns[r.key[1]][:max_new_tokens]),
                hit_token_limit=r.key[1] != 3,
            )
            for r in requests
        ]

    from ground_r1.rollout.generation import GenerationRequest

    requests = [GenerationRequest([1, 2], [], (0, k)) for k in range(4)]
    out = Rollout(codec, generate)._generate(requests, SamplingParams(), budgets=[5, 0, 3, 4])
    # One call for the three rows with budget left, run to the largest budget (5), not one call per budget.
    assert calls == [(3, 5)]
    assert (out[0].ids, out[0].hit_token_limit) == ([7, 8, 9, 10, 11], True)
    assert (out[1].ids, out[1].hit_token_limit) == ([], True)  # no budget left: no row in the call
    # Row 2's budget is 3: its first 3 tokens, cut by the limit, as a call with max_new_tokens=3 returns them.
    assert (out[2].ids, out[2].logps, out[2].hit_token_limit) == ([7, 8, 9], [-0.5] * 3, True)
    assert (out[3].ids, out[3].hit_token_limit) == ([21, codec.eos_token_id], False)  # stopped within its budget
