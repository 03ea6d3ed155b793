"""Prefix KV reuse across rounds (rollout/kv_reuse.py): a round continued from the previous round's cache samples
the same turns with the same log-probs as a fresh prefill of the whole context (1e-5, CPU float32), while only
the new part of each context is prefilled. Trajectories end in rounds 1, 2 and 3, first turns are shared by
forks, and turns of different lengths leave pad tokens in the cache that must not be attended to.

Negative control: the same continued call with its masked gap unmasked gives other log-probs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import LogitsProcessor, LogitsProcessorList

from ground_r1.models.loading import load_model, load_processor
from ground_r1.rollout import kv_reuse
from ground_r1.rollout.conversation import ConversationCodec
from ground_r1.rollout.generation import HFGenerator
from ground_r1.rollout.runner import Rollout, RolloutConfig, RolloutQuestion
from ground_r1.rollout.sampling import SamplingParams, TreePlan
from ground_r1.demo.scripted import ScriptedCall, mixed_rounds


@pytest.fixture(scope="module")
def codec(tiny_model_dir):
    return ConversationCodec(load_processor(tiny_model_dir, min_pixels=3136, max_pixels=12544))


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return load_model(tiny_model_dir, attn_implementation="sdpa").eval()


class Forced(LogitsProcessor):
    """Row r emits targets[r] then the pad token (what generate appends after a row stopped anyway)."""

    def __init__(self, targets, width, fill):
        self.targets, self.width, self.fill = targets, width, fill

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.width
        chosen = torch.tensor([t[step] if step < len(t) else self.fill for t in self.targets]).unsqueeze(1)
        return torch.full_like(scores, float("-inf")).scatter_(1, chosen, 0.0)


def forcing(codec):
    """`mixed_rounds` text for the trajectory (its slot) and round (images in its context), padded with a
    slot-dependent number of words so that turns in one call end at different steps."""

    def make(requests, width):
        targets = []
        for r in requests:
            slot = r.key[1]
            text = mixed_rounds(ScriptedCall(0, slot, len(r.images), []))
            text = text.replace("<think>", "<think>" + " look" * (2 * slot + len(r.images)), 1)
            targets.append(codec.tokenizer(text, add_special_tokens=False)["input_ids"] + [codec.eos_token_id])
        return {"logits_processor": LogitsProcessorList([Forced(targets, width, codec.pad_token_id)])}

    return make


def questions():
    return [
        RolloutQuestion("What colour is the dot?", Image.new("RGB", (448, 336), (10, 200, 30))),
        RolloutQuestion("Which card is it really?", Image.new("RGB", (300, 420), (200, 40, 90))),
    ]


def rollout(model, codec, reuse: bool):
    gen = HFGenerator(model, codec, record_logprobs=True, reuse_kv_cache=reuse, extra_generate_kwargs=forcing(codec))
    prefill = []
    hook = model.register_forward_pre_hook(
        lambda m, args, kwargs: (
            prefill.append(kwargs["input_ids"].numel())
            if kwargs.get("input_ids") is not None and kwargs["input_ids"].shape[1] > 1
            else None
        ),
        with_kwargs=True,
    )
    try:
        torch.manual_seed(0)
        trajectories = Rollout(codec, gen, RolloutConfig(max_turns=3)).run(
            questions(), TreePlan(2, 2), SamplingParams(do_sample=True, temperature=1.0, top_k=0, max_new_tokens=40)
        )
    finally:
        hook.remove()
    return trajectories, gen, prefill


def test_continued_rounds_sample_what_a_fresh_prefill_samples(model, codec):
    fresh, _, fresh_prefill = rollout(model, codec, reuse=False)
    reused, gen, reused_prefill = rollout(model, codec, reuse=True)
    assert {t.num_turns for t in reused} == {1, 2, 3}  # ends in rounds 1, 2 and 3
    assert [t.completion_ids for t in reused] == [t.completion_ids for t in fresh]
    gap = max(abs(a - b) for x, y in zip(reused, fresh) for a, b in zip(x.sampling_logps, y.sampling_logps))
    assert gap < 1e-5
    # Rounds 2 and 3 ran only their new tokens through the model: the contexts' earlier tokens came from the
    # previous round's cache (round 1, with nothing cached, prefills the same in both).
    assert gen.kv_reused_tokens > gen.kv_prefilled_tokens > 0
    assert reused_prefill[0] == fresh_prefill[0] and len(reused_prefill) == len(fresh_prefill) == 3
    assert sum(reused_prefill[1:]) < 0.6 * sum(fresh_prefill[1:])


def test_negative_control_an_unmasked_gap_changes_the_logprobs(model, codec, monkeypatch):
    fresh, _, _ = rollout(model, codec, reuse=False)
    original = kv_reuse.PrefixKVStore.continue_batch

    def unmasked(self, *args, **kwargs):
        batch = original(self, *args, **kwargs)
        if batch is not None:
            batch.attention_mask = torch.ones_like(batch.attention_mask)  # pads and generate's tail attended
        return batch

    monkeypatch.setattr(kv_reuse.PrefixKVStore, "continue_batch", unmasked)
    broken, _, _ = rollout(model, codec, reuse=True)
    gap = max(abs(a - b) for x, y in zip(broken, fresh) for a, b in zip(x.sampling_logps, y.sampling_logps))
    assert gap > 1e-3


def test_common_prefix_and_image_runs():
    a = np.array([1, 2, 3, 4])
    assert kv_reuse._common_prefix(a, np.array([1, 2, 9])) == 2
    assert kv_reuse._common_prefix(a, np.array([1, 2, 3, 4, 5])) == 4
    assert kv_reuse._common_prefix(a, np.array([7])) == 0
    assert kv_reuse._images_in([5, 9, 9, 9, 6, 1, 9, 9, 2], image_token_id=9) == 2
