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


# What the loss batch borrows from TRL's fused head (trainer/completion_head.py) and from transformers
# (trainer/grpo_trainer.py `_rope_positions`), besides the GRPOTrainer methods above.
BORROWED = {
    "trl.kernels.chunked_logprob.ChunkedLogProbFunction.forward": (
        "(ctx, hidden: 'torch.Tensor', weight: 'torch.Tensor', bias: 'torch.Tensor | None', targets: 'torch.Tensor', "
        "temperature: 'float', chunk_size: 'int', final_logit_softcapping: 'float | None' = None, logit_scale: "
        "'float' = 1.0, outputs: 'tuple[str, ...]' = ('entropy', 'log_sum_sq_probs', 'mean_logits', 'is_top1')) -> "
        "'tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]'"
    ),
    "trl.trainer.utils.maybe_gather_lm_head_ctx": "(*params: torch.nn.parameter.Parameter)",
    "trl.trainer.utils.add_fused_lm_head": (
        "(model: transformers.modeling_utils.PreTrainedModel, temperature: float = 1.0, cast_lm_head_to_fp32: bool = "
        "False, outputs: tuple[str, ...] = ('log_probs',)) -> None"
    ),
    "transformers.models.qwen2_5_vl.modeling_qwen2_5_vl.Qwen2_5_VLModel.get_rope_index": (
        "(self, input_ids: torch.LongTensor, mm_token_type_ids: torch.IntTensor, image_grid_thw: torch.LongTensor | "
        "None = None, video_grid_thw: torch.LongTensor | None = None, second_per_grid_ts: torch.Tensor | None = None, "
        "attention_mask: torch.Tensor | None = None, **kwargs) -> tuple[torch.Tensor, torch.Tensor]"
    ),
}


def _resolve(dotted: str):
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def test_trl_version_is_the_pinned_one():
    assert trl.__version__ == "1.16.0"


@pytest.mark.parametrize("name", sorted(PINNED))
def test_overridden_trl_signatures_are_unchanged(name):
    assert str(inspect.signature(getattr(GRPOTrainer, name))) == PINNED[name]


@pytest.mark.parametrize("dotted", sorted(BORROWED))
def test_borrowed_signatures_are_unchanged(dotted):
    assert str(inspect.signature(_resolve(dotted))) == BORROWED[dotted]


def test_borrowed_trl_attributes_are_there():
    """The scored head calls TRL's kernel with TRL's chunk size, and reads the trainer attributes TRL's own head
    is built from (`temperature`, `args.cast_lm_head_to_fp32`); the fused forward keeps its `fused_lm_head` flag."""
    from trl.trainer import utils

    assert utils._CHUNKED_LOGPROB_CHUNK_SIZE == 32768
    assert "self.temperature = args.temperature" in inspect.getsource(GRPOTrainer.__init__)
    assert "cast_lm_head_to_fp32=args.cast_lm_head_to_fp32" in inspect.getsource(GRPOTrainer.__init__)
    assert "fused_lm_head=False" in inspect.getsource(utils.add_fused_lm_head)
    assert 'backbone_attr = "base_model"' in inspect.getsource(utils.add_fused_lm_head)
    # benchmarks/perf/bench_rollout.py shares one frozen reference among its loops by standing in for the loader
    # TRL builds the reference with.
    assert "self.ref_model = create_model_from_path(" in inspect.getsource(GRPOTrainer.__init__)


def _config(**overrides):
    base = dict(
        output_dir="/tmp/unused",
        per_device_train_batch_size=8,
        num_generations=8,
        use_cpu=True,
        bf16=False,
        remove_unused_columns=False,
        report_to=[],
    )
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
        ["--config", str(release), "--output_dir", str(tmp_path), "--use_cpu", "true", "--bf16", "false"]
    )
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
        ["--config", str(paper), "--output_dir", str(tmp_path), "--use_cpu", "true", "--bf16", "false"]
    )
    assert (pargs.num_first_round_samples, pargs.num_generations, pargs.beta) == (4, 8, 0.0)


def test_box_parse_and_letter_rule_are_checked():
    assert (_config().box_parse, _config().letter_rule) == ("tag_first", "spec")
    with pytest.raises(ValueError) as err:
        _config(box_parse="first", letter_rule="loose")
    assert "box_parse must be one of tag_first, release, got 'first'" in str(err.value)
    assert "letter_rule must be one of spec, release, got 'loose'" in str(err.value)


def test_each_ground_r1_config_field_is_documented_once_in_its_help():
    # Issue 22: six of 25 fields were missing from the docstring that repeated the helps; now the help is the one place.
    import dataclasses

    from trl import GRPOConfig

    from ground_r1.config import GroundR1Config

    ours = [
        f for f in dataclasses.fields(GroundR1Config) if f.name not in {g.name for g in dataclasses.fields(GRPOConfig)}
    ]
    assert len(ours) == 41  # with issue 20's coordinates and issue 21's learning-signal fields
    undocumented = [f.name for f in ours if len(f.metadata.get("help", "")) < 20]
    assert not undocumented, f"fields without a help: {undocumented}"
    named_in_docstring = [f.name for f in ours if f.name in (GroundR1Config.__doc__ or "")]
    assert not named_in_docstring, f"documented twice (docstring and help): {named_in_docstring}"
