"""The per-family test matrix (issue 20): every tiny family model through the codec, the rollout, the loss path and
evaluation. Qwen2.5-VL (the default family) runs through the rest of the suite; the matrix adds Qwen2-VL, Qwen3-VL
(16-px patches, deepstack, interleaved M-RoPE) and Qwen3.5 (Gated-DeltaNet layers, a template that opens <think>
and drops earlier reasoning). The cheap codec checks include Qwen2.5-VL as the reference."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from PIL import Image

from ground_r1.demo.scripted import ScriptedGenerator
from ground_r1.models.families import DEFAULT_FAMILY, FAMILIES
from ground_r1.models.loading import load_model, load_processor
from ground_r1.prompt import grounding_text
from ground_r1.rollout.conversation import ConversationCodec
from ground_r1.rollout.runner import Rollout, RolloutConfig, RolloutQuestion
from ground_r1.rollout.sampling import SamplingParams, TreePlan

FAMILY_NAMES = tuple(FAMILIES)
OTHER_FAMILIES = tuple(f for f in FAMILIES if f != DEFAULT_FAMILY)  # the default runs through the whole suite


PIXELS = dict(min_pixels=3136, max_pixels=12544)
# The released checkpoints' geometry and box convention, per family (docs/model_families.md).
EXPECTED = {
    "qwen2_vl": (14, "relative_1000"),
    "qwen2_5_vl": (14, "input_pixels"),
    "qwen3_vl": (16, "relative_1000"),
    "qwen3_5": (16, "relative_1000"),
}


@pytest.fixture(scope="module")
def loaded(family_model_dirs):
    cache: dict = {}

    def get(family: str):
        if family not in cache:
            folder = family_model_dirs(family)
            cache[family] = (folder, load_processor(folder, **PIXELS), load_model(folder, dtype="float32"))
        return cache[family]

    return get


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_codec_first_turn_and_crop_turn(loaded, family):
    """First turn: the family's system prompt (or none), Picture 1, the image expanded to grid/merge^2 tokens, the
    convention's size sentence. Crop turn: exactly the template's text after an assistant turn, Picture 2, and the
    generation prompt with its opening (Qwen3.5: "<think>\\n")."""
    _, processor, _ = loaded(family)
    codec = ConversationCodec(processor)
    patch, convention = EXPECTED[family]
    assert (codec.family.name, codec.patch_size, codec.coordinates) == (family, patch, convention)
    image = Image.new("RGB", (448, 336), (10, 200, 30))
    prompt = codec.encode_prompt("What colour?", image)
    grid = prompt.images[0].grid_thw.tolist()
    w, h = grid[2] * patch, grid[1] * patch
    assert prompt.images[0].size == (w, h) and w % (2 * patch) == 0 and h % (2 * patch) == 0
    assert prompt.ids.count(codec.image_token_id) == grid[0] * grid[1] * grid[2] // 4
    text = processor.tokenizer.decode(prompt.ids)
    system = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" if family.startswith("qwen2") else ""
    opening = "<think>\n" if family == "qwen3_5" else ""
    pads = "<|image_pad|>" * (grid[0] * grid[1] * grid[2] // 4)
    assert text == (
        f"{system}<|im_start|>user\nPicture 1: <|vision_start|>{pads}<|vision_end|>"
        f"{grounding_text('What colour?', w, h, convention)}<|im_end|>\n<|im_start|>assistant\n{opening}"
    )
    assert codec.turn_opening == opening

    crop = codec.encode_crop_turn("What colour?", (w, h), image.crop((0, 0, 100, 100)), num_images_before=1)
    crop_grid = crop.images[0].grid_thw.tolist()
    crop_pads = "<|image_pad|>" * (crop_grid[0] * crop_grid[1] * crop_grid[2] // 4)
    assert processor.tokenizer.decode(crop.ids) == (
        f"\n<|im_start|>user\nPicture 2: <|vision_start|>{crop_pads}<|vision_end|>"
        f"{grounding_text('What colour?', w, h, convention)}<|im_end|>\n<|im_start|>assistant\n{opening}"
    )
    third = codec.injected_turn_text("What colour?", w, h, num_images_before=2)
    assert "Picture 3: " in third and "Picture 2" not in third


def _scripted(call) -> str:
    if call.num_images == 1:
        return "<think> look closer </think> <box>[250,100,750,600]</box>"
    return "<think> it is clear </think> <answer> red </answer>"


@pytest.mark.parametrize("family", OTHER_FAMILIES)
def test_rollout_boxes_crops_and_mask_in_the_familys_frame(loaded, family):
    """Turn 1 writes [250,100,750,600] on the 0-1000 grid of a 640 x 480 image: the crop is (160, 48, 480, 288)
    (derived in test_family_registry), fed back as Picture 2; the loss mask is 1 on exactly the sampled tokens."""
    _, processor, model = loaded(family)
    codec = ConversationCodec(processor)
    generator = ScriptedGenerator(codec, _scripted, model=model)
    image = Image.new("RGB", (640, 480), (200, 20, 20))
    (t,) = Rollout(codec, generator, RolloutConfig(max_turns=3)).run(
        [RolloutQuestion("What colour?", image)], TreePlan(1, 1), SamplingParams(max_new_tokens=64)
    )
    assert t.finish_reason == "answer" and t.num_turns == 2 and len(t.images) == 2
    first = t.turns[0]
    assert first.box == (250, 100, 750, 600) and first.box_original == (160, 48, 480, 288)
    assert first.crop_window == (160, 48, 480, 288) and not first.crop_is_fallback
    assert t.to_record()["coordinates"] == "relative_1000"
    sampled = [tok for turn in t.turns for tok in turn.ids]
    assert sum(t.completion_mask) == len(sampled)
    assert [tok for tok, m in zip(t.completion_ids, t.completion_mask) if m] == sampled
    injected = processor.tokenizer.decode([tok for tok, m in zip(t.completion_ids, t.completion_mask) if not m])
    assert "Picture 2: " in injected and injected.count("<|vision_start|>") == 1
    assert [turn.text.startswith("<think>") for turn in t.turns] == [True, True]


@pytest.mark.parametrize("family", OTHER_FAMILIES)
def test_sampling_logprobs_match_the_loss_path(loaded, family, tmp_path):
    """Per family: generate's own log-probs of multi-round, left-padded trajectories equal the loss path's (fp32,
    1e-4); negative control: the attention mask dropped breaks the agreement (the comparison can fail)."""
    from ground_r1.config import GroundR1Config
    from ground_r1.rewards.registry import build_registry
    from ground_r1.rewards.trl_functions import format_reward, make_accuracy_reward
    from ground_r1.trainer.grpo_trainer import GroundR1Trainer

    folder, processor, _ = loaded(family)
    model = load_model(folder, dtype="float32")  # a fresh model: the trainer wraps its forward
    rows = []
    for i, size in enumerate([(448, 336), (300, 420)]):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", size, (40 * i, 120, 200)).save(path)
        rows.append(
            dict(
                image=str(path),
                problem="What colour is the dot" + " really" * (8 * i) + f" {i}?",
                solution="red",
                dataset="zoom_synthetic",
                bboxs=[[100.0, 100.0, 200.0, 180.0]],
                key=f"f.jsonl:{i + 1}",
            )
        )
    args = GroundR1Config(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=8,
        num_generations=4,
        num_first_round_samples=2,
        max_steps=1,
        max_turns=3,
        max_new_tokens_per_turn=24,
        max_completion_length=2048,
        beta=0.0,
        loss_type="grpo",
        remove_unused_columns=False,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        gradient_checkpointing=False,
        bf16=False,
        record_sampling_logprobs=True,
        temperature=1.0,
        **PIXELS,
    )
    trainer = GroundR1Trainer(
        model=model,
        reward_funcs=[format_reward, make_accuracy_reward(build_registry())],
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=processor,
    )
    assert trainer.loss_layout == "bucketed"  # CPU sdpa; never packed for Qwen3.5
    torch.manual_seed(3)
    trainer.model.train()
    batch = trainer._generate_and_score_completions([dict(r) for r in rows for _ in range(4)])
    assert max(t.num_turns for t in trainer.last_trajectories) >= 2  # multi-round: a random model rarely answers
    assert len({int(n) for n in batch["prompt_mask"].sum(1)}) > 1  # prompts of different lengths: real padding
    sampled = batch["completion_mask"] * batch["tool_mask"]

    def loss_path(prompt_mask, completion_mask):
        ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
        att = torch.cat([prompt_mask, completion_mask], dim=1)
        with torch.no_grad():
            logps, _, _ = trainer._get_per_token_logps_and_entropies(
                trainer.model,
                ids,
                att,
                batch["completion_ids"].size(1),
                pixel_values=batch["pixel_values"],
                image_grid_thw=batch["image_grid_thw"],
                num_images=batch["num_images"],
                mm_token_type_ids=(ids == trainer.codec.image_token_id).long() * att,
            )
        return ((logps - batch["sampling_per_token_logps"]).abs() * sampled).max().item()

    assert loss_path(batch["prompt_mask"], batch["completion_mask"]) < 1e-4
    assert loss_path(torch.ones_like(batch["prompt_mask"]), torch.ones_like(batch["completion_mask"])) > 1e-3

    # The loss-batch layouts (trainer/loss_batch.py) per family: bucketed == TRL's padded batch; packed == padded
    # where the family allows packing, and NOT equal for Qwen3.5 (why packing is switched off for it).
    def layout_gap(layout):
        trainer.loss_layout = layout
        gap = loss_path(batch["prompt_mask"], batch["completion_mask"])
        trainer.loss_layout = "bucketed"
        return gap

    assert layout_gap("padded") < 1e-4
    if trainer.codec.family.packed_loss_problem is None:
        assert layout_gap("packed") < 1e-4
    else:  # measured 9.0e-4 (seed 3): the linear-attention state of one trajectory leaks into the next
        assert layout_gap("packed") > 3e-4


@pytest.mark.parametrize("family", OTHER_FAMILIES)
def test_each_evaluation_protocol_on_a_few_items(loaded, family, tmp_path):
    """ground_r1 (box -> crop -> answer), ground_sft (two fixed turns) and refcoco (a 0-1000 box scored in the
    family's frame) with a scripted model; baseline with the real model's greedy turn."""
    from ground_r1.evaluation.inference import Engine, EvalItem, InferenceConfig, prediction_record
    from ground_r1.evaluation.refcoco import score_prediction

    _, processor, model = loaded(family)
    image = Image.new("RGB", (640, 480), (200, 20, 20))
    items = [
        EvalItem(key=f"k{i}", dataset="textvqa", question="What colour?", image="x.png", fields={"solution": "red"})
        for i in range(2)
    ]
    sampling = SamplingParams(do_sample=False, top_k=None, max_new_tokens=48)

    engine = Engine(model, processor, InferenceConfig(protocol="ground_r1", sampling=sampling, max_turns=3))
    engine.generator = ScriptedGenerator(engine.codec, _scripted, model=model)
    for t in engine.run_batch(items, [image, image]):
        assert [turn.crop_window for turn in t.turns] == [(160, 48, 480, 288), None]
        assert t.finish_reason == "answer" and prediction_record(items[0], t, engine.config, "")["answer"] == "red"

    engine = Engine(model, processor, InferenceConfig(protocol="ground_sft", sampling=sampling))
    engine.generator = ScriptedGenerator(
        engine.codec, lambda c: "[250,100,750,600]" if c.num_images == 1 else "red", model=model
    )
    (t,) = engine.run_batch(items[:1], [image])
    assert t.turns[0].crop_window == (160, 48, 480, 288) and t.turns[1].text.endswith("red")

    config = InferenceConfig(protocol="refcoco", sampling=sampling)
    engine = Engine(model, processor, config)
    engine.generator = ScriptedGenerator(engine.codec, lambda c: '{"bbox_2d": [250, 100, 750, 600]}', model=model)
    (t,) = engine.run_batch(items[:1], [image])
    record = {**prediction_record(items[0], t, config, ""), "gt_box": [160, 48, 400, 288]}
    row = score_prediction(record)
    assert row["box"] == pytest.approx([160.0, 48.0, 480.0, 288.0]) and row["hit"]

    engine = Engine(model, processor, InferenceConfig(protocol="baseline", sampling=sampling))
    (t,) = engine.run_batch(items[:1], [image])
    assert t.num_turns == 1 and 1 <= len(t.turns[0].ids) <= 48


@pytest.mark.parametrize("family", OTHER_FAMILIES)
def test_vision_feature_and_kv_reuse_sample_what_a_fresh_rollout_samples(loaded, family):
    """Greedy, two questions, a G1=2 x G2=2 tree over 3 rounds: features fed back from the per-rollout cache
    (Qwen3-VL: with its deepstack features) and the KV cache carried across rounds give the tokens and log-probs of
    re-encoding every image and prefilling every context each round."""
    from ground_r1.rollout.generation import HFGenerator

    _, processor, model = loaded(family)
    codec = ConversationCodec(processor)
    greedy = SamplingParams(do_sample=False, top_k=None, max_new_tokens=12)
    qs = [
        RolloutQuestion("What colour is the dot?", Image.new("RGB", (448, 336), (10, 200, 30))),
        RolloutQuestion("Which card is it really?", Image.new("RGB", (300, 420), (200, 40, 90))),
    ]

    def rollout(reuse):
        gen = HFGenerator(model.eval(), codec, reuse_vision_features=reuse, reuse_kv_cache=reuse)
        return Rollout(codec, gen, RolloutConfig(max_turns=3)).run(qs, TreePlan(2, 2), greedy), gen

    reused, gen = rollout(True)
    fresh, _ = rollout(False)
    assert gen.vision_stats.images_reused > 0  # the cache served images
    # The KV cache is carried across rounds for plain-attention caches; Qwen3.5's (linear-attention state beside
    # the attention layers) is not continued: reuse stays off by itself (rollout/kv_reuse.py).
    assert (gen.kv_reused_tokens > 0) == (family != "qwen3_5")
    assert [t.completion_ids for t in reused] == [t.completion_ids for t in fresh]
    for a, b in zip(reused, fresh):
        assert a.sampling_logps == pytest.approx(b.sampling_logps, abs=1e-5)
