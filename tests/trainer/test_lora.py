"""LoRA through TRL's peft_config, with the KL term: the reference is the base model with adapters disabled."""

from __future__ import annotations

import torch
from datasets import Dataset
from peft import LoraConfig

from ground_r1.config import GroundR1Config
from ground_r1.models.loading import load_model, load_processor
from ground_r1.rewards.trl_functions import format_reward
from ground_r1.trainer.grpo_trainer import GroundR1Trainer
from conftest import TINY_PIXELS, make_records
from test_loss_inputs import grounding_then_answer
from ground_r1.demo.scripted import ScriptedGenerator


def test_lora_step_with_kl_trains_only_the_adapters(tiny_model_dir, tmp_path):
    args = GroundR1Config(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_generations=4,
        num_first_round_samples=2,
        max_steps=1,
        max_turns=3,
        max_new_tokens_per_turn=64,
        max_completion_length=2048,
        beta=0.04,
        loss_type="grpo",
        learning_rate=1e-2,
        remove_unused_columns=False,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        **TINY_PIXELS,
    )
    trainer = GroundR1Trainer(
        model=load_model(tiny_model_dir),
        reward_funcs=[format_reward],
        args=args,
        train_dataset=Dataset.from_list(make_records(tmp_path, 1)),
        processing_class=load_processor(tiny_model_dir, **TINY_PIXELS),
        peft_config=LoraConfig(r=4, target_modules=["q_proj", "v_proj"]),
    )
    # Branch 1's first turn is malformed ("no format"), branch 0's is well formed: format rewards differ within
    # the group, so advantages and the adapter gradients are non-zero.
    trainer._make_generator = lambda model: ScriptedGenerator(
        trainer.codec, lambda c: grounding_then_answer(c) if c.row % 2 == 0 or c.num_images > 1 else "no format"
    )
    frozen = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" not in n}
    trainer.train()
    assert trainer.ref_model is None  # no separate reference model is held: adapters are disabled instead
    for n, p in trainer.model.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, frozen[n]), n  # the base weights are untouched
    assert any(h.get("kl") is not None for h in trainer.state.log_history)
