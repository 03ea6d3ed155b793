"""The rollout settings a checkpoint carries and how evaluation uses them (ground_r1.rollout_settings, issue 17)."""

from __future__ import annotations

import dataclasses

import json
import logging

import pytest

from ground_r1.evaluation.benchmarks import get_benchmark

from ground_r1.config import GroundR1Config
from ground_r1.rollout_settings import (
    EVAL_FLAGS,
    ROLLOUT_KEYS,
    SETTINGS_NAME,
    RolloutSettingsError,
    read_settings,
    resolve_eval_settings,
    write_settings,
)

TINY = dict(
    max_turns=3,
    max_new_tokens_per_turn=48,
    max_completion_length=1024,
    min_pixels=12544,
    max_pixels=12544,
    min_crop_size=28,
    max_aspect_ratio=200.0,
    crop_fallback="full_image",
    box_parse="tag_first",
    letter_rule="spec",
)


def config(**overrides) -> GroundR1Config:
    return GroundR1Config(
        output_dir="/tmp/unused",
        use_cpu=True,
        bf16=False,
        num_generations=4,
        per_device_train_batch_size=4,
        remove_unused_columns=False,
        report_to=[],
        **{**TINY, **overrides},
    )


def test_the_one_list_is_shared_by_the_controls_cli_and_the_evaluation_flags():
    from ground_r1.cli import evaluate_controls

    assert evaluate_controls.ROLLOUT_KEYS is ROLLOUT_KEYS
    assert sorted(EVAL_FLAGS.values()) == sorted(ROLLOUT_KEYS)


def test_written_settings_read_back_as_trained(tmp_path):
    write_settings(tmp_path, config())
    content = json.loads((tmp_path / SETTINGS_NAME).read_text())
    assert content["coordinates"] == "input_pixels" and content["settings"] == TINY
    assert read_settings(tmp_path) == TINY
    # An evaluation per-turn budget set for training's own evaluation is the one evaluation uses.
    write_settings(tmp_path, config(eval_max_new_tokens_per_turn=96))
    assert read_settings(tmp_path)["max_new_tokens_per_turn"] == 96
    assert read_settings(tmp_path / "elsewhere") is None and read_settings("Qwen/Qwen2.5-VL-7B-Instruct") is None


def test_a_settings_file_of_another_convention_or_with_unknown_keys_is_refused_by_name(tmp_path):
    (tmp_path / SETTINGS_NAME).write_text(json.dumps({"coordinates": "normalized_0_1000", "settings": TINY}))
    with pytest.raises(RolloutSettingsError, match=rf"{SETTINGS_NAME}: coordinates: 'normalized_0_1000'"):
        read_settings(tmp_path)
    (tmp_path / SETTINGS_NAME).write_text(json.dumps({"coordinates": "input_pixels", "settings": {"max_turn": 3}}))
    with pytest.raises(RolloutSettingsError, match=r"settings: unknown key\(s\) \['max_turn'\]"):
        read_settings(tmp_path)


def test_a_flag_wins_over_the_checkpoint_which_wins_over_the_demo_and_the_defaults():
    flags = {k: None for k in ROLLOUT_KEYS} | {"max_turns": 2}
    values, sources = resolve_eval_settings(
        flags, {"max_turns": 3, "max_pixels": 12544}, {"max_new_tokens_per_turn": 32}
    )
    assert (values["max_turns"], sources["max_turns"]) == (2, "flag")
    assert (values["max_pixels"], sources["max_pixels"]) == (12544, "checkpoint")
    assert (values["max_new_tokens_per_turn"], sources["max_new_tokens_per_turn"]) == (32, "demo default")
    assert (values["min_pixels"], sources["min_pixels"]) == (3136, "default")


def test_evaluate_uses_a_checkpoints_settings_unless_a_flag_says_otherwise_and_says_so(tmp_path, caplog):
    """Before: a trained checkpoint was evaluated at 448 px and 512 tokens per turn, its accuracy 0.0."""
    from ground_r1.cli import evaluate

    model = tmp_path / "outputs" / "grpo"
    write_settings(model, config())
    caplog.set_level(logging.INFO)
    args = evaluate.build_parser().parse_args(
        ["--protocol", "ground_r1", "--model_path", str(model), "--output_dir", str(tmp_path / "e")]
    )
    evaluate.apply_demo_defaults(args)
    assert (args.max_pixels, args.min_pixels, args.max_new_tokens, args.max_turns, args.max_completion_length) == (
        12544,
        12544,
        48,
        3,
        1024,
    )
    assert "max_pixels=12544 (checkpoint)" in caplog.text and str(model / SETTINGS_NAME) in caplog.text
    config_used = evaluate.inference_config(args, get_benchmark("viscot"))
    assert (config_used.sampling.max_new_tokens, config_used.max_turns, config_used.crop_fallback) == (
        48,
        3,
        "full_image",
    )
    assert config_used.settings_sources["max_pixels"] == "checkpoint"
    flagged = evaluate.build_parser().parse_args(
        [
            "--protocol",
            "ground_r1",
            "--model_path",
            str(model),
            "--output_dir",
            str(tmp_path / "e"),
            "--max_new_tokens",
            "64",
        ]
    )
    evaluate.apply_demo_defaults(flagged)
    assert (flagged.max_new_tokens, flagged.settings_sources["max_new_tokens_per_turn"], flagged.max_pixels) == (
        64,
        "flag",
        12544,
    )
    ignored = evaluate.build_parser().parse_args(
        [
            "--protocol",
            "ground_r1",
            "--model_path",
            str(model),
            "--output_dir",
            str(tmp_path / "e"),
            "--no-checkpoint_settings",
        ]
    )
    evaluate.apply_demo_defaults(ignored)  # the settings file ignored; the built-in set: the demo's token budget
    assert (ignored.max_pixels, ignored.max_new_tokens, ignored.max_turns) == (401408, 32, 5)
    given = evaluate.build_parser().parse_args(
        ["--protocol", "ground_r1", "--model_path", str(model), "--output_dir", "e", "--data_path", "v.jsonl"]
    )
    given.checkpoint_settings = False
    evaluate.apply_demo_defaults(given)  # a model and data given, no settings: SPEC §2's
    assert (given.max_pixels, given.max_new_tokens, given.max_turns) == (401408, 512, 5)


def test_the_general_benchmarks_use_the_checkpoints_settings_too(tmp_path):
    from ground_r1.cli import evaluate, evaluate_general

    model = tmp_path / "ckpt"
    write_settings(model, config())
    args = evaluate_general.build_parser().parse_args(
        ["--protocol", "ground_r1", "--model_path", str(model), "--output_dir", str(tmp_path / "g")]
    )
    evaluate.apply_demo_defaults(args)
    assert (args.max_pixels, args.max_new_tokens, args.max_turns) == (12544, 48, 3)
    base = evaluate_general.build_parser().parse_args(
        ["--protocol", "ground_r1", "--model_path", str(tmp_path), "--output_dir", str(tmp_path / "g")]
    )
    evaluate.apply_demo_defaults(base)  # no settings file, built-in demo set: demo budget
    assert (base.max_pixels, base.max_new_tokens, base.max_turns) == (401408, 32, 5)


def test_the_controls_cli_prefers_the_checkpoints_settings_to_the_demo_preset(tmp_path):
    from ground_r1.cli.evaluate_controls import choose_settings

    write_settings(tmp_path, config(max_turns=2))
    settings, source = choose_settings(None, str(tmp_path))
    assert settings["max_turns"] == 2 and "rollout_settings.json" in source
    preset, source = choose_settings(None, str(tmp_path / "x"))  # no settings file: the demo preset
    assert preset["max_turns"] == 3 and "tiny_cpu.yaml" in source


def test_the_table_header_names_each_settings_source(tmp_path):
    from ground_r1.evaluation.identity import InferenceConfig, check_identity
    from ground_r1.rollout_settings import run_header

    cfg = InferenceConfig(
        protocol="ground_r1",
        model="/m",
        max_turns=3,
        min_pixels=12544,
        max_pixels=12544,
        settings_sources={
            "max_turns": "checkpoint",
            "min_pixels": "checkpoint",
            "max_pixels": "checkpoint",
            "max_new_tokens_per_turn": "flag",
        },
    )
    check_identity(tmp_path, cfg)
    header = run_header(tmp_path)
    assert header.startswith(
        "Rollout settings (ground_r1 protocol, model /m): from the checkpoint's "
        "rollout_settings.json (as trained): max_turns=3, min_pixels=12544, max_pixels=12544"
    )
    assert "from flags: max_new_tokens_per_turn=512" in header
    assert "box convention" not in header  # none recorded: the family's own
    # The sources are notes: a resume with the same settings from other sources is the same run.
    (tmp_path / "predictions.jsonl").write_text('{"key": "a", "status": "ok"}\n')
    check_identity(tmp_path, dataclasses.replace(cfg, settings_sources={}))
    qwen3 = tmp_path / "qwen3"
    check_identity(qwen3, dataclasses.replace(cfg, coordinates="relative_1000"))
    assert run_header(qwen3).endswith("; box convention relative_1000 (the checkpoint's)")


def test_the_box_and_letter_rules_training_used_reach_evaluation_unless_a_flag_says_otherwise(tmp_path, caplog):
    """Issues 16 + 17: a run trained with the release's box rule and letter rule (the release preset) carries both in
    rollout_settings.json; evaluation crops with that box rule and scores the rule column with that letter rule,
    each from the checkpoint unless its flag is given, and says where each came from."""
    from ground_r1.cli import evaluate, evaluate_general

    model = tmp_path / "release-run"
    write_settings(model, config(box_parse="release", letter_rule="release"))
    assert read_settings(model)["box_parse"] == "release" and read_settings(model)["letter_rule"] == "release"
    caplog.set_level(logging.INFO)
    base = ["--protocol", "ground_r1", "--model_path", str(model), "--output_dir", str(tmp_path / "e")]
    args = evaluate.build_parser().parse_args(base)
    evaluate.apply_demo_defaults(args)
    assert (args.box_parse, args.letter_rule) == ("release", "release")
    assert (args.settings_sources["box_parse"], args.settings_sources["letter_rule"]) == ("checkpoint", "checkpoint")
    assert "box_parse=release (checkpoint)" in caplog.text and "letter_rule=release (checkpoint)" in caplog.text
    used = evaluate.inference_config(args, get_benchmark("viscot"))
    assert used.box_parse == "release" and used.identity()["box_parse"] == "release"
    flagged = evaluate.build_parser().parse_args([*base, "--box_parse", "tag_first", "--letter_rule", "spec"])
    evaluate.apply_demo_defaults(flagged)
    assert (flagged.box_parse, flagged.letter_rule, flagged.settings_sources["box_parse"]) == (
        "tag_first",
        "spec",
        "flag",
    )
    ignored = evaluate.build_parser().parse_args([*base, "--no-checkpoint_settings"])
    evaluate.apply_demo_defaults(ignored)
    assert (ignored.box_parse, ignored.letter_rule) == ("tag_first", "spec")  # the defaults
    # A score stage run alone (no inference, so no resolution there) scores with the checkpoint's letter rule too.
    alone = evaluate.build_parser().parse_args([*base, "--stages", "score"])
    assert evaluate.letter_rule(alone) == "release"
    # The general benchmarks take the box rule (their rollout crops with it); their scorers are the references', so
    # the letter rule is not resolved for them nor in their header.
    general_args = evaluate_general.build_parser().parse_args(
        ["--protocol", "ground_r1", "--model_path", str(model), "--output_dir", str(tmp_path / "g")]
    )
    caplog.clear()
    evaluate.apply_demo_defaults(general_args)
    assert general_args.box_parse == "release" and general_args.letter_rule is None  # no general spec uses it
    assert "box_parse=release (checkpoint)" in caplog.text and "letter_rule=" not in caplog.text
