"""Vision features reused within one rollout (SPEC §10): exact, counted, scoped to the rollout, off in the loss."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from ground_r1.models.loading import load_model, load_processor
from ground_r1.rollout.conversation import ConversationCodec
from ground_r1.rollout.generation import GenerationRequest, HFGenerator
from ground_r1.rollout.runner import Rollout, RolloutConfig, RolloutQuestion
from ground_r1.rollout.sampling import SamplingParams, TreePlan
from ground_r1.rollout.vision_cache import VisionFeatureCache, find_vision_core

TINY_PIXELS = dict(min_pixels=3136, max_pixels=12544)
# Greedy and short: a random model never writes <answer> in 4 tokens, so every trajectory goes to max_turns
# (each turn is cut by the limit, no box parses, the full image is fed back as the "crop": SPEC §2 fallback).
GREEDY = SamplingParams(do_sample=False, repetition_penalty=1.0, max_new_tokens=4)
# 448x336 -> a 112x84 view: grid 1x6x8 = 48 patch rows; its full-image "crop" is the same size, 48 rows.
ROWS = 48


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model runs fastest on one thread; two contend with the other processes of a 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    return load_processor(tiny_model_dir, **TINY_PIXELS)


@pytest.fixture(scope="module")
def codec(processor):
    return ConversationCodec(processor)


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return load_model(tiny_model_dir).eval()


class TowerCounter:
    """Counts vision-tower calls and the patch rows they encode, split by grad mode."""

    def __init__(self, model):
        self.calls, self.rows, self.grad_rows = 0, 0, 0
        self.handle = model.model.visual.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        self.calls += 1
        if torch.is_grad_enabled():
            self.grad_rows += args[0].shape[0]
        else:
            self.rows += args[0].shape[0]

    def remove(self):
        self.handle.remove()


def questions():
    return [
        RolloutQuestion("What colour is the dot?", Image.new("RGB", (448, 336), (10, 200, 30))),
        RolloutQuestion("Which card is it really?", Image.new("RGB", (300, 420), (200, 40, 90))),
    ]


def run(model, codec, qs, plan, max_turns, reuse):
    # The KV cache is not carried between rounds here: each round feeds every image of its contexts, which is
    # what these tests count (tests/rollout/test_kv_reuse.py covers the carried cache).
    gen = HFGenerator(model, codec, record_logprobs=True, reuse_vision_features=reuse, reuse_kv_cache=False)
    rollout = Rollout(codec, gen, RolloutConfig(max_turns=max_turns))
    return rollout.run(qs, plan, GREEDY), rollout, gen


def test_reuse_gives_the_same_tokens_and_logprobs_as_reencoding(model, codec):
    # Two questions of different image sizes, a tree (G1=2 x G2=2) and 3 rounds: every batch mixes cached and
    # new images, and the cache encodes them in other groupings than the uncached path does.
    reused, rollout, gen = run(model, codec, questions(), TreePlan(2, 2), 3, reuse=True)
    fresh, _, _ = run(model, codec, questions(), TreePlan(2, 2), 3, reuse=False)
    assert rollout.rounds_run == 3 and gen.vision_stats.images_reused > 0  # reuse really happened
    assert [t.completion_ids for t in reused] == [t.completion_ids for t in fresh]
    assert [t.sampling_logps for t in reused] == [t.sampling_logps for t in fresh]  # bit-equal on CPU


def test_the_vision_tower_encodes_each_image_once_per_rollout(model, codec):
    q = questions()[:1]
    counter = TowerCounter(model)
    try:
        _, rollout, gen = run(model, codec, q, TreePlan(2, 2), 2, reuse=True)
        with_cache = (counter.calls, counter.rows)
        counter.calls = counter.rows = 0
        run(model, codec, q, TreePlan(2, 2), 2, reuse=False)
        without = (counter.calls, counter.rows)
    finally:
        counter.remove()
    assert rollout.rounds_run == 2
    # With the cache: round 1 has 2 rows sharing the original (encoded once: 48 rows); round 2 has 4 rows
    # [original, crop of branch b] (the original is cached, the 2 branch crops are new: 2 x 48 rows).
    assert with_cache == (2, ROWS + 2 * ROWS)
    assert (gen.vision_stats.images_encoded, gen.vision_stats.images_reused) == (3, 1 + 6)  # 2+8 occurrences
    assert gen.vision_stats.rows_reused == 7 * ROWS
    # Without: round 1 encodes 2 x 48, round 2 encodes 4 rows x 2 images x 48.
    assert without == (2, 2 * ROWS + 8 * ROWS)


def test_the_cache_lives_for_one_rollout_and_the_loss_forward_still_encodes(model, codec):
    q = questions()[:1]
    gen = HFGenerator(model, codec, record_logprobs=False)
    rollout = Rollout(codec, gen, RolloutConfig(max_turns=2))
    first = rollout.run(q, TreePlan(1, 1), GREEDY)
    encoded_after_one = gen.vision_stats.images_encoded
    rollout.run(q, TreePlan(1, 1), GREEDY)
    # Nothing carries over between rollouts: the second encodes its 2 images (original, crop) again.
    assert encoded_after_one == 2 and gen.vision_stats.images_encoded == 4
    assert gen.vision_cache is None  # dropped at the end of the rollout
    assert "get_image_features" not in vars(model.model)  # the model is never patched
    # A forward outside generation (the loss's) encodes from pixel_values as always.
    t = first[0]
    counter = TowerCounter(model)
    try:
        ids = torch.tensor([t.context_ids()])
        with torch.no_grad():
            model(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                mm_token_type_ids=(ids == codec.image_token_id).long(),
                pixel_values=torch.cat([i.pixel_values for i in t.images]),
                image_grid_thw=torch.stack([i.grid_thw for i in t.images]),
            )
    finally:
        counter.remove()
    assert (counter.calls, counter.rows) == (1, 2 * ROWS)


def test_no_reuse_when_zero3_parameters_are_not_gathered(model, codec):
    # synced_gpus: every rank must run the tower in every call (collective gathers), so the cache stays off.
    gen = HFGenerator(model, codec, synced_gpus=True)
    with gen.rollout_scope():
        assert gen.vision_cache is None
    plain = HFGenerator(model, codec)
    with plain.rollout_scope():
        assert isinstance(plain.vision_cache, VisionFeatureCache)


class EngineLike(torch.nn.Module):
    """What a DeepSpeed engine or DDP looks like from outside: the model registered as `.module`."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def test_the_vision_core_is_found_through_wrappers(model):
    from peft import LoraConfig, get_peft_model

    assert find_vision_core(model) is model.model
    assert find_vision_core(EngineLike(model)) is model.model
    assert find_vision_core(torch.nn.Linear(2, 2)) is None
    cache = VisionFeatureCache()
    assert cache.features(torch.nn.Linear(2, 2), []) is None  # no door for features: the generator re-encodes

    lora = get_peft_model(load_model_copy(model), LoraConfig(r=2, target_modules=["q_proj"]))
    assert find_vision_core(lora) is lora.get_base_model().model


def load_model_copy(model):
    import copy

    return copy.deepcopy(model)


def test_reuse_through_a_peft_model_is_exact(model, codec):
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(load_model_copy(model), LoraConfig(r=2, target_modules=["q_proj"])).eval()
    q = questions()[:1]
    reused, _, gen = run(lora, codec, q, TreePlan(1, 1), 2, reuse=True)
    fresh, _, _ = run(lora, codec, q, TreePlan(1, 1), 2, reuse=False)
    assert gen.vision_stats.images_reused == 1  # round 2 served the original from the cache
    assert [t.completion_ids for t in reused] == [t.completion_ids for t in fresh]


def test_images_of_a_call_map_to_their_features_in_order(model, codec):
    # Two distinct images and a repeat: features come back per occurrence, in request order, and equal what
    # the tower gives for each image alone.
    a = codec.encode_images([Image.new("RGB", (448, 336), (10, 200, 30))])[0]
    b = codec.encode_images([Image.new("RGB", (300, 420), (200, 40, 90))])[0]
    cache = VisionFeatureCache()
    feats = cache.features(model, [a, b, a])
    alone_b = model.model.get_image_features(b.pixel_values, b.grid_thw[None], return_dict=True).pooler_output[0]
    assert feats[0] is feats[2]
    assert feats[0].shape == (ROWS // 4, model.config.text_config.hidden_size)  # 2x2 merge: 12 tokens
    assert torch.equal(feats[1], alone_b.detach())
    assert (cache.stats.tower_calls, cache.stats.images_encoded, cache.stats.images_reused) == (1, 2, 1)
    cache.features(model, [b])
    assert cache.stats.tower_calls == 1  # all cached: no tower call
    assert len(cache) == 2


def test_a_request_key_follows_the_trajectory(codec):
    # Round 1 rows carry (question, first trajectory of the branch); later rows (question, trajectory index).
    seen: list[tuple] = []

    def generate(requests: list[GenerationRequest], sampling, max_new_tokens):
        from ground_r1.rollout.generation import GeneratedTurn

        seen.append(tuple(r.key for r in requests))
        text = "<think> a </think> <box>[1,1,40,40]</box>"
        return [
            GeneratedTurn(ids=codec.tokenizer(text, add_special_tokens=False)["input_ids"] + [codec.eos_token_id])
            for _ in requests
        ]

    Rollout(codec, generate, RolloutConfig(max_turns=2)).run(questions(), TreePlan(2, 2), GREEDY)
    assert seen[0] == ((0, 0), (0, 2), (1, 0), (1, 2))
    assert seen[1] == ((0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3))


def test_in_a_training_step_only_the_rollout_reuses_and_the_loss_encodes_every_image(tiny_model_dir, tmp_path):
    from datasets import Dataset

    from ground_r1.config import GroundR1Config
    from ground_r1.rewards.trl_functions import format_reward
    from ground_r1.trainer.grpo_trainer import GroundR1Trainer

    path = tmp_path / "img.png"
    Image.new("RGB", (448, 336), (10, 200, 30)).save(path)
    data = Dataset.from_list(
        [
            dict(
                image=str(path),
                problem="What colour?",
                solution="red",
                dataset="zoom_synthetic",
                bboxs=[[1.0, 1.0, 50.0, 50.0]],
                key="f.jsonl:1",
            )
        ]
    )
    args = GroundR1Config(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_generations=4,
        num_first_round_samples=2,
        max_steps=1,
        max_turns=2,
        max_new_tokens_per_turn=4,
        max_completion_length=2048,
        beta=0.0,
        loss_type="grpo",
        remove_unused_columns=False,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        **TINY_PIXELS,
    )
    model = load_model(tiny_model_dir)
    trainer = GroundR1Trainer(
        model=model,
        reward_funcs=[format_reward],
        args=args,
        train_dataset=data,
        processing_class=load_processor(tiny_model_dir, **TINY_PIXELS),
    )
    counter = TowerCounter(model)
    try:
        trainer.train()
    finally:
        counter.remove()
    trajectories = trainer.last_trajectories
    assert max(t.num_turns for t in trajectories) == 2  # a second round ran (4 sampled tokens never answer)
    unique = {id(img): img.num_rows for t in trajectories for img in t.images}
    # The rollout (no grad) encoded each distinct image once; the loss forward (grad) encoded every image of
    # every trajectory from pixel_values, as without the cache.
    assert counter.rows == sum(unique.values())
    assert counter.grad_rows == sum(img.num_rows for t in trajectories for img in t.images)
    assert counter.grad_rows > counter.rows
