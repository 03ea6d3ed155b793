"""Fixtures for trainer tests: a GroundR1Trainer on the tiny model with a small handmade dataset."""

from __future__ import annotations

import pytest
from datasets import Dataset
from PIL import Image

from ground_r1.config import GroundR1Config
from ground_r1.models.loading import load_model, load_processor
from ground_r1.rewards.registry import build_registry
from ground_r1.rewards.trl_functions import format_reward, make_accuracy_reward
from ground_r1.trainer.grpo_trainer import GroundR1Trainer

TINY_PIXELS = dict(min_pixels=3136, max_pixels=12544)


SIZES = [(448, 336), (300, 420), (448, 448), (200, 150)]


def make_records(tmp_path, n: int = 2) -> list[dict]:
    """n questions; record 0 is 448x336 (112-px view 112x84, grid 1x6x8, so crops are real zoom-ins); the
    others differ in image size and question length, so batches hold prompts of different lengths."""
    rows = []
    for i in range(n):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", SIZES[i % len(SIZES)], (40 * i, 120, 200)).save(path)
        rows.append(
            dict(
                image=str(path),
                problem="What colour is the dot" + " really" * i + f" {i}?",
                solution="red",
                dataset="zoom_synthetic",
                bboxs=[[100.0, 100.0, 200.0, 180.0]],
                key=f"f.jsonl:{i + 1}",
            )
        )
    return rows


@pytest.fixture
def make_trainer(tiny_model_dir, tmp_path):
    def factory(n_questions=1, **overrides):
        processor = load_processor(tiny_model_dir, **TINY_PIXELS)
        model = load_model(tiny_model_dir)
        settings = dict(
            output_dir=str(tmp_path / "out"),
            per_device_train_batch_size=4,
            num_generations=4,
            num_first_round_samples=2,
            max_steps=1,
            max_turns=3,
            max_new_tokens_per_turn=64,
            max_completion_length=2048,
            beta=0.0,
            loss_type="grpo",
            learning_rate=1e-3,
            remove_unused_columns=False,
            logging_steps=1,
            report_to=[],
            save_strategy="no",
            use_cpu=True,
            gradient_checkpointing=False,
            bf16=False,
            **TINY_PIXELS,
        )
        settings.update(overrides)
        args = GroundR1Config(**settings)
        ds = Dataset.from_list(make_records(tmp_path, n_questions))
        return GroundR1Trainer(
            model=model,
            reward_funcs=[format_reward, make_accuracy_reward(build_registry())],
            args=args,
            train_dataset=ds,
            processing_class=processor,
        )

    return factory


def group_inputs(trainer, records: list[dict]) -> list[dict]:
    """The local batch as TRL hands it over: each question repeated num_generations times."""
    return [dict(r) for r in records for _ in range(trainer.num_generations)]
