"""Pins the TRL 1.16 methods GroundR1Trainer overrides or calls, and the config checks of __post_init__."""

from __future__ import annotations

import inspect

import pytest
import trl
from trl import GRPOTrainer

from ground_r1.config import GroundR1Config

# Signatures of the TRL / transformers methods the subclass overrides or relies on. A TRL upgrade that changes one
# of them must fail here, not silently mis-train.
PINNED = {
    "_generate_and_score_completions": "(self, inputs: list[dict[str, torch.Tensor | typing.Any]]) -> dict[str, torch.Tensor | typing.Any]",
    "_compute_loss": "(self, model, inputs)",
    "_calculate_rewards": "(self, inputs, prompts, completions, completion_ids_list)",
    "_get_per_token_logps_and_entropies": (
        "(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None, compute_entropy=False, "
        "compute_aux_loss=False, pixel_values=None, image_grid_thw=None, num_images=None, pixel_attention_mask=None, "
        "spatial_shapes=None, num_tiles=None, image_sizes=None, token_type_ids=None, mm_token_type_ids=None, "
        "image_position_ids=None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]"
    ),
    "_save_checkpoint": "(self, model, trial)",
}


def test_trl_version_is_the_pinned_one():
    assert trl.__version__ == "1.16.0"


@pytest.mark.parametrize("name", sorted(PINNED))
def test_overridden_trl_signatures_are_unchanged(name):
    assert str(inspect.signature(getattr(GRPOTrainer, name))) == PINNED[name]


def _config(**overrides):
    base = dict(output_dir="/tmp/unused", per_device_train_batch_size=8, num_generations=8, use_cpu=True, bf16=False,
                remove_unused_columns=False, report_to=[])
    base.update(overrides)
    return GroundR1Config(**base)


def test_config_errors_say_what_to_set():
    with pytest.raises(ValueError) as err:
        _config(per_device_train_batch_size=12, num_first_round_samples=3)
    msg = str(err.value)
    assert "num_generations (8) must be a multiple of num_first_round_samples (3)" in msg
    assert "per_device_train_batch_size (12) must be a multiple of num_generations (8)" in msg
    assert "Set per_device_train_batch_size: 8" in msg  # every problem listed at once, with what to set


def test_vllm_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="use_vllm=True is not supported yet"):
        _config(use_vllm=True)


def test_release_preset_sets_every_trl_default_that_differs(tmp_path):
    from trl import ModelConfig, TrlParser

    from ground_r1 import paths
    from ground_r1.config import GroundR1ScriptArguments

    parser = TrlParser((GroundR1ScriptArguments, GroundR1Config, ModelConfig))
    release = paths.repo_root() / "configs" / "grpo" / "release.yaml"
    script, args, _ = parser.parse_args_and_config(
        ["--config", str(release), "--output_dir", str(tmp_path), "--use_cpu", "true", "--bf16", "false"])
    # TRL 1.16 defaults: beta 0, loss dapo, num_generations 8 counted per device in completions (ENVIRONMENT.md).
    assert (args.beta, args.loss_type, args.num_generations, args.num_first_round_samples) == (0.04, "grpo", 8, 2)
    assert (args.temperature, args.top_k, args.top_p, args.repetition_penalty) == (1.0, 50, 1.0, 1.0)
    assert (args.learning_rate, args.max_grad_norm, args.weight_decay, args.save_steps) == (1e-6, 5.0, 0.0, 50)
    assert (args.max_new_tokens_per_turn, args.max_turns, args.max_pixels, args.min_pixels) == (512, 5, 401408, 3136)
    assert args.freeze_vision_tower and args.freeze_projector and args.gradient_checkpointing
    assert (script.max_train_questions, script.lr_schedule_span) == (8000, "epoch")
    # The release's rules as named choices (SPEC §2, §3): its box parse reaches the rollout, its letter rule the reward.
    assert (args.box_parse, args.letter_rule) == ("release", "release")
    from ground_r1.cli.train_grpo import build_reward_functions
    from ground_r1.trainer.grpo_trainer import rollout_config_from

    assert rollout_config_from(args).box_parse == "release"
    _, registry = build_reward_functions(args)
    assert registry.letter_rule == "release"

    paper = paths.repo_root() / "configs" / "grpo" / "paper.yaml"
    _, pargs, _ = parser.parse_args_and_config(
        ["--config", str(paper), "--output_dir", str(tmp_path), "--use_cpu", "true", "--bf16", "false"])
    assert (pargs.num_first_round_samples, pargs.num_generations, pargs.beta) == (4, 8, 0.0)


def test_box_parse_and_letter_rule_are_checked():
    assert (_config().box_parse, _config().letter_rule) == ("tag_first", "spec")
    with pytest.raises(ValueError) as err:
        _config(box_parse="first", letter_rule="loose")
    assert "box_parse must be one of tag_first, release, got 'first'" in str(err.value)
    assert "letter_rule must be one of spec, release, got 'loose'" in str(err.value)
