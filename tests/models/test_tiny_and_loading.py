"""The tiny offline Qwen2.5-VL loads through ground_r1.models.loading like the real 7B, renders a multi-image
chat, trains (forward with loss) and samples (batched generate)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from ground_r1.demo import tiny
from ground_r1.models import loading
from ground_r1.prompt import crop_turn_message, first_turn_messages


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    return loading.load_processor(tiny_model_dir, min_pixels=3136, max_pixels=12544)


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return loading.load_model(tiny_model_dir)


def _two_image_chat(processor):
    msgs = first_turn_messages("What colour is the dot?", 112, 112)
    msgs.append(
        {"role": "assistant", "content": [{"type": "text", "text": "<think> x </think> <box>[1,2,30,40]</box>"}]}
    )
    msgs.append(crop_turn_message("What colour is the dot?", 112, 112))
    return processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, add_vision_id=True)


def test_tokenizer_carries_every_qwen_special_token(processor):
    tok = processor.tokenizer
    for token, _special in tiny.QWEN_ADDED_TOKENS:
        ids = tok(token, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, f"{token} must be one token, got {ids}"
        assert tok.decode(ids) == token
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"


def test_chat_template_numbers_pictures_across_turns(processor):
    text = _two_image_chat(processor)
    # add_vision_id: "Picture k: " counted over the whole conversation (SPEC §2), the crop turn continues it.
    assert text.startswith(
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nPicture 1: <|vision_start|><|image_pad|><|vision_end|>Question: What colour is the dot?\n"
    )
    assert "<|im_start|>user\nPicture 2: <|vision_start|><|image_pad|><|vision_end|>Question:" in text
    assert text.endswith("<|im_start|>assistant\n")


def test_processor_expands_image_tokens_per_grid(processor):
    text = _two_image_chat(processor)
    images = [Image.new("RGB", (448, 448), (255, 0, 0)), Image.new("RGB", (60, 80), (0, 255, 0))]
    enc = processor(text=[text], images=images, return_tensors="pt")
    # max_pixels 12544 = 112*112: a 448x448 image resizes to 112x112 -> grid (t,h,w) = (1, 8, 8); a 60x80 (w x h)
    # image -> 56x84 w x h
    # (multiples of 28 nearest, within [3136, 12544]) -> grid (1, 84/14, 56/14) = (1, 6, 4).
    assert enc["image_grid_thw"].tolist() == [[1, 8, 8], [1, 6, 4]]
    # pixel rows = sum t*h*w = 64 + 24; image tokens = rows / merge^2 = 22.
    assert enc["pixel_values"].shape[0] == 88
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((enc["input_ids"] == image_pad).sum()) == 22
    assert "mm_token_type_ids" in enc  # M-RoPE needs them (ENVIRONMENT.md)


def test_forward_with_loss_and_batched_sampled_generate(processor, model):
    text = _two_image_chat(processor)
    images = [Image.new("RGB", (448, 448), (255, 0, 0)), Image.new("RGB", (60, 80), (0, 255, 0))]
    enc = processor(text=[text, text], images=images + images, return_tensors="pt", padding=True)
    out = model(**enc, labels=enc["input_ids"])
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.lm_head.weight.grad is not None
    model.zero_grad()
    torch.manual_seed(0)
    gen = model.generate(**enc, do_sample=True, temperature=1.0, top_k=50, top_p=1.0, max_new_tokens=8)
    assert gen.shape[0] == 2 and gen.shape[1] <= enc["input_ids"].shape[1] + 8
    assert gen.shape[1] > enc["input_ids"].shape[1]


def test_attention_and_dtype_choice_on_cpu():
    assert loading.choose_attention("auto") == "sdpa"
    assert loading.resolve_dtype("auto") == torch.float32
    with pytest.raises(ImportError, match="flash-attn is not installed"):
        loading.choose_attention("flash_attention_2")


def test_freeze_vision_tower(tiny_model_dir):
    m = loading.load_model(tiny_model_dir, freeze_vision=True)
    visual = loading.vision_tower(m)
    assert all(not p.requires_grad for p in visual.parameters())
    assert all(p.requires_grad for p in m.lm_head.parameters())


def test_frozen_parameters_are_counted_at_full_size_when_zero3_partitioned_them(tiny_model_dir):
    """Before: "froze 0 vision parameters" under ZeRO-3, each partitioned parameter holding 0 elements locally."""
    import torch

    m = loading.load_model(tiny_model_dir)
    visual = loading.vision_tower(m)
    full = sum(p.numel() for p in visual.parameters())
    for p in visual.parameters():  # what deepspeed.zero.Init leaves on a rank: an empty tensor and ds_numel
        p.ds_numel = p.numel()
        p.data = torch.empty(0)
    assert loading.freeze_vision_tower(m) == full > 0


def test_checkpoint_generation_config_is_recorded_not_applied(model):
    # The tiny checkpoint copies the real Instruct one: near-greedy. It is recorded for the log only.
    rec = model.ground_r1_checkpoint_generation
    assert (rec.temperature, rec.top_k) == (0.1, 1)


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        h.update((folder / name).read_bytes())
    return h.hexdigest()


def test_build_is_deterministic_for_a_seed(tmp_path, tiny_model_dir):
    again = tiny.build_tiny_model(tmp_path / "again", seed=0)
    assert _digest(again) == _digest(Path(tiny_model_dir))
    other = tiny.build_tiny_model(tmp_path / "other", seed=1)
    assert _digest(other) != _digest(Path(tiny_model_dir))
    assert json.loads((again / "ground_r1_tiny.json").read_text())["seed"] == 0
