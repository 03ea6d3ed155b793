"""GPU only (marker `gpu`, skipped without CUDA; benchmarks/gpu/run.sh runs them): in bf16, with sdpa and with
flash-attention when installed, the log-probs of sampling (generate, KV cache carried between rounds) agree with
the loss path's (our loss batch: bucketed with sdpa, padding-free packed with flash-attention varlen), and the
loss batch layouts agree with TRL's padded pass. bf16 tolerances, over the loss tokens; the random tiny model's
near-uniform distributions make every gap small, so the bounds are relative to what this check measured on CPU
in bf16 (sampling vs loss path: mean 1e-4, max 2e-3; the negative control, the attention mask dropped as in
the release's log-prob pass: mean 7e-4). GPU figures pending: no GPU was lent when this was written."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY_PIXELS, group_inputs, make_records

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

ATTENTION = ["sdpa", "flash_attention_2"]


def gpu_trainer(tiny_model_dir, tmp_path, attn: str):
    from transformers.utils import is_flash_attn_2_available

    from ground_r1.config import GroundR1Config
    from ground_r1.models.loading import load_model, load_processor
    from ground_r1.rewards.registry import build_registry
    from ground_r1.rewards.trl_functions import format_reward, make_accuracy_reward
    from ground_r1.trainer.grpo_trainer import GroundR1Trainer
    from datasets import Dataset

    if attn == "flash_attention_2" and not is_flash_attn_2_available():
        pytest.skip("flash-attn is not installed")
    processor = load_processor(tiny_model_dir, **TINY_PIXELS)
    model = load_model(tiny_model_dir, dtype=torch.bfloat16, attn_implementation=attn)
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
        bf16=True,
        gradient_checkpointing=False,
        record_sampling_logprobs=True,
        temperature=1.0,
        **TINY_PIXELS,
    )
    return GroundR1Trainer(
        model=model,
        reward_funcs=[format_reward, make_accuracy_reward(build_registry())],
        args=args,
        train_dataset=Dataset.from_list(make_records(tmp_path, 2)),
        processing_class=processor,
    )


def loss_path(trainer, batch, layout, attention=None):
    trainer.loss_layout = layout
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    att = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1) if attention is None else attention
    with torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model,
            ids,
            att,
            batch["completion_ids"].size(1),
            pixel_values=batch["pixel_values"],
            image_grid_thw=batch["image_grid_thw"],
            num_images=batch["num_images"],
            mm_token_type_ids=batch["mm_token_type_ids"],
        )
    return logps.float()


@pytest.mark.parametrize("attn", ATTENTION)
def test_bf16_sampling_logprobs_match_the_loss_path(tiny_model_dir, tmp_path, attn):
    trainer = gpu_trainer(tiny_model_dir, tmp_path, attn)
    assert trainer.loss_layout == ("packed" if attn == "flash_attention_2" else "bucketed")
    torch.manual_seed(3)
    trainer.model.train()
    batch = trainer._generate_and_score_completions(group_inputs(trainer, make_records(tmp_path, 2)))
    assert max(t.num_turns for t in trainer.last_trajectories) >= 2  # multi-round: the KV cache was carried
    mask = (batch["completion_mask"] * batch["tool_mask"]).bool()
    sampled = batch["sampling_per_token_logps"].float()
    ours = loss_path(trainer, batch, trainer.loss_layout)
    gap = (ours - sampled)[mask].abs()
    print(f"{attn}: bf16 sampling vs loss path: mean {gap.mean():.2e}, max {gap.max():.2e}")
    assert gap.mean().item() < 1e-3 and gap.max().item() < 2e-2
    # The layouts agree with TRL's padded pass in bf16 too.
    padded = loss_path(trainer, batch, "padded")
    assert (ours - padded)[mask].abs().mean().item() < 1e-3
    # Negative control: without the attention mask the padded rows see their padding.
    ones = torch.ones_like(torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1))
    broken = loss_path(trainer, batch, "padded", attention=ones)
    assert (broken - sampled)[mask].abs().mean().item() > 2 * gap.mean().item()
