"""The benchmark-only `release_style_*` rollout options: they add the release's costs, never change the turns."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from ground_r1.models.loading import load_processor
from ground_r1.rollout.conversation import ConversationCodec
from ground_r1.rollout.generation import GeneratedTurn, GenerationRequest
from ground_r1.rollout.runner import Rollout, RolloutConfig, RolloutQuestion
from ground_r1.rollout.sampling import SamplingParams, TreePlan

ANSWER = "<think> it is clear </think> <answer> red </answer>"
GROUND = "<think> look closer </think> <box>[8,4,48,44]</box>"


@pytest.fixture(scope="module")
def codec(tiny_model_dir):
    return ConversationCodec(load_processor(tiny_model_dir, min_pixels=3136, max_pixels=12544))


class ByTrajectory:
    """Trajectory at `slot` of its group answers in round slot % 3 + 1 (grounds before): finishes in rounds 1-3.
    Records every call's rows and each (key, round)'s context."""

    def __init__(self, codec):
        self.codec = codec
        self.rows_per_call: list[int] = []
        self.contexts: dict[tuple, list[int]] = {}
        self.images: dict[tuple, list] = {}

    def __call__(self, requests: list[GenerationRequest], sampling, max_new_tokens):
        self.rows_per_call.append(len(requests))
        out = []
        for r in requests:
            round_index = len(r.images)
            self.contexts.setdefault((r.key, round_index), list(r.ids))
            self.images.setdefault((r.key, round_index), list(r.images))
            text = ANSWER if round_index >= r.key[1] % 3 + 1 else GROUND
            ids = self.codec.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.codec.eos_token_id]
            out.append(GeneratedTurn(ids=ids))
        return out


def questions():
    return [
        RolloutQuestion("What colour is the dot?", Image.new("RGB", (448, 336), (10, 200, 30))),
        RolloutQuestion("Which card?", Image.new("RGB", (300, 420), (200, 40, 90))),
    ]


def run(codec, **options):
    gen = ByTrajectory(codec)
    trajectories = Rollout(codec, gen, RolloutConfig(max_turns=3, **options)).run(
        questions(), TreePlan(2, 2), SamplingParams()
    )
    return trajectories, gen


def test_regenerate_all_runs_every_trajectory_every_round_and_keeps_the_same_turns(codec):
    ours, ours_gen = run(codec)
    release, release_gen = run(codec, release_style_regenerate_all=True)
    # Slots 0,1 (branch 0) answer in round 1, slot 3 in round 2, slot 2 in round 3 (per question).
    assert [t.num_turns for t in ours] == [1, 1, 3, 2] * 2
    # Ours: round 1 = 2 questions x G1 rows, then only the unfinished (slots 2,3 / slot 2) of both questions.
    assert ours_gen.rows_per_call == [4, 4, 2]
    # Release: every round after the first regenerates all 2 x N = 8 trajectories.
    assert release_gen.rows_per_call == [4, 8, 8]
    assert [(t.completion_ids, t.completion_mask, t.turn_texts) for t in release] == [
        (t.completion_ids, t.completion_mask, t.turn_texts) for t in ours
    ]


def test_retokenize_rebuilds_the_same_context_from_text_and_reprocesses_every_image(codec):
    ours, ours_gen = run(codec)
    release, release_gen = run(codec, release_style_retokenize=True)
    assert [t.completion_ids for t in release] == [t.completion_ids for t in ours]
    assert set(release_gen.contexts) == set(ours_gen.contexts)
    # These turns survive decode + re-tokenize unchanged, so the re-rendered conversation (template, Picture k
    # labels, image pads) must equal the token-level context ours builds: the re-rendering is the real one.
    for key, ids in ours_gen.contexts.items():
        assert release_gen.contexts[key] == ids, key
    # The images are processed again every round (new objects), with the same pixels.
    key = ((0, 2), 3)  # question 0, slot 2, round 3: original + 2 crops
    for fresh, kept in zip(release_gen.images[key], ours_gen.images[key]):
        assert fresh is not kept and torch.equal(fresh.pixel_values, kept.pixel_values)
    assert len(release_gen.images[key]) == 3
