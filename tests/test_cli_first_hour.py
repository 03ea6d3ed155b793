"""A newcomer's first hour with the CLIs (issue 17): strict flags and YAML keys, a readable --help, one name for
the item limit, a missing local MODEL_PATH named before anything loads, trackers checked before any work."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

from ground_r1 import paths
from ground_r1.cli import train_grpo

REPO = paths.repo_root()
CPU = ["--use_cpu", "true", "--bf16", "false"]


# ------------------------------------------------------------------------------------------ prefix matching


def test_a_prefix_of_a_training_flag_is_rejected_naming_the_flag(capsys):
    """Before: `--learning_rat 1e-5` was taken for --learning_rate and a run started."""
    with pytest.raises(SystemExit) as exc:
        train_grpo.parse_args([*CPU, "--learning_rat", "1e-5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized argument(s): --learning_rat (did you mean --learning_rate?)" in err
    script_args, training_args, _ = train_grpo.parse_args([*CPU, "--learning_rate", "1e-5", "--max-turns", "2"])
    assert training_args.learning_rate == 1e-5 and training_args.max_turns == 2  # whole names, either spelling


def test_an_unknown_yaml_key_names_the_file_and_the_closest_key(tmp_path, capsys):
    preset = tmp_path / "mine.yaml"
    preset.write_text("use_cpu: true\nbf16: false\nlearning_rat: 1.0e-5\n")
    with pytest.raises(SystemExit) as exc:
        train_grpo.parse_args(["--config", str(preset)])
    assert exc.value.code == 2
    assert f"{preset}: unknown key(s): learning_rat (did you mean learning_rate?)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_grpo.parse_args(["--config", str(tmp_path / "none.yaml")])
    assert f"--config {tmp_path / 'none.yaml'}: no such file" in capsys.readouterr().err


def test_evaluation_flags_do_not_match_prefixes_either(capsys):
    from ground_r1.cli import evaluate, evaluate_general

    for parser in (evaluate.build_parser(), evaluate_general.build_parser()):
        with pytest.raises(SystemExit):
            parser.parse_args(["--protocol", "ground_r1", "--output_dir", "x", "--max_turn", "3"])
        assert "unrecognized arguments: --max_turn 3" in capsys.readouterr().err


def _parser_calls(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("ArgumentParser", "TrlParser", "HfArgumentParser"):
                yield node


def test_every_parser_of_the_project_is_built_without_prefix_matching():
    files = [*(REPO / "src").rglob("*.py"), *(REPO / "benchmarks").rglob("*.py")]
    calls = [(f, node) for f in files for node in _parser_calls(f)]
    assert len(calls) >= 13
    loose = [
        f"{f.relative_to(REPO)}:{node.lineno}"
        for f, node in calls
        if not any(
            k.arg == "allow_abbrev" and isinstance(k.value, ast.Constant) and k.value.value is False
            for k in node.keywords
        )
    ]
    assert loose == []


# ----------------------------------------------------------------------------------------------------- help


def test_training_help_puts_the_description_config_and_the_method_first_and_keeps_trl_reachable():
    """Before: 1,485 lines, no description, --config absent, the method's options at the end."""
    parser = train_grpo.build_parser()
    text = parser.format_help()
    lines = text.splitlines()
    assert lines[0].startswith("usage: python -m ground_r1.cli.train_grpo [--config YAML]")
    assert lines[2].startswith("Ground-R1 GRPO training: the model proposes an evidence box")
    order = [
        text.index(s)
        for s in (
            "--config YAML",
            "--help_all",
            "Ground-R1 method",
            "--num_first_round_samples",
            "--heldout_eval_steps",
            "--data_path",
            "--model_name_or_path",
            "--learning_rate",
        )
    ]
    assert order == sorted(order)
    assert "--adam_beta1" not in text and "--help_all lists them" in text
    assert len(lines) < 400
    full = parser._format(full=True)
    assert full.index("--num_first_round_samples") < full.index("--adam_beta1")
    assert "--num-first-round-samples" not in text  # each option once, its underscore spelling


def test_evaluate_help_says_the_token_budget_evaluation_really_uses():
    """Issue 17: the help said '32 for the demo model or set' although the VisCoT CLI used 512 with the built-in set.
    One pipeline, one rule (tests/test_rollout_settings.py runs it): the demo model or the built-in set -> 32."""
    from ground_r1.cli import evaluate, evaluate_general

    for parser in (evaluate.build_parser(), evaluate_general.build_parser()):
        text = " ".join(parser.format_help().split())
        assert (
            "new tokens per turn (default: the checkpoint's rollout_settings.json, else 512, SPEC §2; 32 for the "
            "demo model or the built-in demo set)"
        ) in text


# ------------------------------------------------------------------------------------------- --max_items


def test_one_flag_name_for_the_item_limit_with_the_old_name_kept():
    from ground_r1.cli import evaluate, evaluate_general

    base = ["--protocol", "ground_r1", "--output_dir", "x"]
    for flag in ("--max_items", "--max_items_per_dataset"):
        assert evaluate.build_parser().parse_args([*base, flag, "7"]).max_items == 7
        assert evaluate_general.build_parser().parse_args([*base, flag, "7"]).max_items == 7
    from ground_r1.evaluation.benchmarks import get_benchmark

    args = evaluate.build_parser().parse_args([*base, "--model_path", str(REPO), "--data_path", "v.jsonl"])
    viscot, refcoco = get_benchmark("viscot"), get_benchmark("refcoco")
    assert evaluate.read_options(args).max_items is None  # not given: the benchmark's own default
    assert (viscot.default_max_items, refcoco.default_max_items) == (150, 0)  # SPEC §7: 150 per sub-dataset; all
    assert (viscot.demo_max_items, refcoco.demo_max_items) == (8, 4)  # the built-in set: the demo's size


# ------------------------------------------------------------------------------------------- MODEL_PATH


@pytest.mark.parametrize(
    "path", ["/no/such/model", "./outputs/missing", "../missing", "~/missing-model", "outputs/runs/missing"]
)
def test_a_missing_local_model_path_is_named(path):
    from ground_r1.models.loading import ModelPathError, check_model_path, looks_local

    assert looks_local(path)
    with pytest.raises(ModelPathError, match=f"MODEL_PATH {path}: no such folder"):
        check_model_path(path)


def test_a_hub_id_is_left_to_the_hub_and_a_folder_without_config_is_named(tmp_path):
    from ground_r1.models.loading import ModelPathError, check_model_path, looks_local

    assert not looks_local("Qwen/Qwen2.5-VL-7B-Instruct")
    check_model_path("Qwen/Qwen2.5-VL-7B-Instruct")
    with pytest.raises(ModelPathError, match="not a model folder"):
        check_model_path(tmp_path)


def _no_loading(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("something was loaded before the configuration was checked")

    monkeypatch.setattr(train_grpo, "build_processor", refuse)
    monkeypatch.setattr(train_grpo, "build_model", refuse)
    monkeypatch.setattr(train_grpo, "load_datasets", refuse)


def test_training_with_a_missing_model_folder_exits_1_naming_it_before_loading(tmp_path, monkeypatch, capsys):
    """Before: a 76-line traceback calling it an invalid hub repo id, after the data was read."""
    _no_loading(monkeypatch)
    missing = tmp_path / "outputs" / "grpo"
    assert train_grpo.main([*CPU, "--model_name_or_path", str(missing), "--output_dir", str(tmp_path / "o")]) == 1
    assert f"MODEL_PATH {missing}: no such folder" in capsys.readouterr().err


def test_evaluation_with_a_missing_model_folder_exits_1_naming_it(tmp_path, caplog):
    from ground_r1.cli import evaluate, evaluate_general

    caplog.set_level(logging.ERROR)
    missing = str(tmp_path / "ckpt")
    assert evaluate.main(["--protocol", "ground_r1", "--model_path", missing, "--output_dir", str(tmp_path / "e")]) == 1
    assert (
        evaluate_general.main(["--protocol", "ground_r1", "--model_path", missing, "--output_dir", str(tmp_path / "g")])
        == 1
    )
    assert caplog.text.count(f"MODEL_PATH {missing}: no such folder") == 2


# ------------------------------------------------------------------------------------------------ trackers


def test_a_tracker_that_cannot_start_fails_before_any_work_with_the_install_command(tmp_path, monkeypatch, capsys):
    """Before: `--report_to wandb` crashed after the model had loaded (wandb not installed)."""
    import importlib.util

    from ground_r1 import trackers

    real = importlib.util.find_spec
    monkeypatch.setattr(
        trackers.importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("wandb", "tensorboard") else real(name, *a),
    )
    with pytest.raises(trackers.TrackerError, match=r"wandb is not installed: pip install wandb==0\.31\.0"):
        trackers.check_trackers(["wandb"])
    with pytest.raises(trackers.TrackerError, match=r"tensorboard is not installed: pip install tensorboard==2\.21\.0"):
        trackers.check_trackers("tensorboard")
    _no_loading(monkeypatch)
    assert train_grpo.main([*CPU, "--report_to", "wandb", "--output_dir", str(tmp_path / "o")]) == 1
    assert "--report_to wandb: wandb is not installed: pip install wandb==0.31.0" in capsys.readouterr().err


def test_wandb_online_without_a_key_says_how_to_log_in_or_log_offline(tmp_path):
    from ground_r1 import trackers

    env = {"NETRC": str(tmp_path / "netrc")}
    with pytest.raises(trackers.TrackerError, match="WANDB_MODE=offline"):
        trackers.check_trackers(["wandb"], environ=env)
    assert trackers.check_trackers(["wandb", "tensorboard"], environ={**env, "WANDB_MODE": "offline"}) == [
        "wandb",
        "tensorboard",
    ]
    assert trackers.check_trackers(["wandb"], environ={**env, "WANDB_API_KEY": "k" * 40}) == ["wandb"]
    assert trackers.check_trackers(["none"]) == [] and trackers.check_trackers(None) == []


def test_wandb_logs_into_the_run_folder_unless_told_otherwise(tmp_path):
    from ground_r1 import trackers

    env: dict = {}
    trackers.tracker_environment(["wandb"], tmp_path / "run", environ=env)
    assert env == {"WANDB_DIR": str((tmp_path / "run").resolve()), "WANDB_PROJECT": "ground-r1"}
    env = {"WANDB_DIR": "/elsewhere", "WANDB_PROJECT": "mine"}
    assert trackers.tracker_environment(["wandb"], tmp_path / "run", environ=env) == {}
    assert trackers.tracker_environment(["tensorboard"], tmp_path / "run", environ={}) == {}


def test_the_multi_process_hint_names_the_run_not_a_placeholder(tmp_path):
    script_args, training_args, _ = train_grpo.parse_args(
        [*CPU, "--output_dir", str(tmp_path / "run"), "--heldout_eval_questions", "64"]
    )
    hint = train_grpo.multi_process_hint(training_args, script_args)
    assert "<" not in hint
    assert hint == (
        f"python -m ground_r1.cli.evaluate_controls --model_path {tmp_path / 'run'} --max_questions 64 "
        f"--output {tmp_path / 'run' / 'heldout_eval.json'}"
    )


def test_the_held_out_summary_survives_a_held_out_set_without_evidence_boxes(tmp_path, caplog):
    """Issue 15's gt_crop sits out questions without a usable evidence box; with none left its result holds no
    accuracy, and issue 17's end-of-training line must still be written (it indexed the accuracy and crashed)."""
    import json
    from types import SimpleNamespace

    results = {
        "grounded": {"accuracy": 0.5, "accuracy_se": 0.1, "giou_score": 0.4},
        "no_crop": {"accuracy": 0.25},
        "gt_crop": {"questions": 0},
        "random_box": {"giou_score": 0.2},
    }
    evaluation = SimpleNamespace(records=[{}] * 4, run=lambda model, processor, conditions: results)
    trainer = SimpleNamespace(accelerator=SimpleNamespace(unwrap_model=lambda m: m), model=None, processing_class=None)
    caplog.set_level(logging.INFO)
    train_grpo.heldout_controls(trainer, evaluation, SimpleNamespace(output_dir=str(tmp_path)), base={})
    assert "accuracy 0.500 ± 0.100 (no-crop 0.250, ground-truth crop nan, majority answer nan)" in caplog.text
    assert json.loads((tmp_path / "heldout_eval.json").read_text())["results"]["gt_crop"] == {"questions": 0}
