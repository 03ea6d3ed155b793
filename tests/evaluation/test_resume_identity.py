"""Resume never mixes settings (issue 22): every setting that changes a prediction is in the run's identity, both
evaluation CLIs compute it in one place, and a resume with any of them changed is refused with the key named."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ground_r1.evaluation.benchmarks import get_benchmark

from ground_r1.evaluation.identity import (
    COMMON_IDENTITY_KEYS,
    PROTOCOLS,
    RUN_CONFIG_NAME,
    InferenceConfig,
    check_identity,
    model_family,
)
from ground_r1.rollout.sampling import EVAL_GREEDY_SAMPLING

BASE = InferenceConfig(
    protocol="ground_r1",
    benchmark="viscot",
    benchmark_version="1",
    model="/m",
    model_family="qwen2_5_vl",
    dtype="float32",
    min_pixels=3136,
    max_pixels=12544,
)

# Another value for each identity key (the protocol's own keys included).
OTHER = {
    "benchmark": "refcoco",
    "benchmark_version": "2",
    "model": "/other",
    "model_family": "qwen3_vl",
    "dtype": "bfloat16",
    "min_pixels": 6272,
    "max_pixels": 25088,
    "sampling": dataclasses.replace(EVAL_GREEDY_SAMPLING, max_new_tokens=7),
    "max_turns": 3,
    "max_completion_length": 100,
    "min_crop_size": 56,
    "max_aspect_ratio": 50.0,
    "crop_fallback": "end",
    "box_parse": "release",
    "prompt_class": "simply_answer",
    "option_seed": 1,
    "coordinates": "relative_1000",
    "scripted_policy": "ground_until_limit",
}

CASES = [(name, key) for name, p in PROTOCOLS.items() for key in COMMON_IDENTITY_KEYS + p.settings if key != "protocol"]


def finished_run(folder: Path, config: InferenceConfig) -> None:
    check_identity(folder, config)
    (folder / "predictions.rank0.jsonl").write_text(json.dumps({"key": "f:1", "status": "ok"}) + "\n")


def test_every_protocol_names_its_own_settings_and_every_key_has_another_value_here():
    assert set(OTHER) == {k for _, k in CASES}  # a new identity key needs a case here
    assert PROTOCOLS["refcoco"].settings == ("sampling", "coordinates")
    assert PROTOCOLS["baseline"].settings == ("sampling", "prompt_class")
    assert PROTOCOLS["likelihood"].settings == ()  # it generates nothing: only the common keys


@pytest.mark.parametrize(("protocol", "key"), CASES, ids=[f"{p}-{k}" for p, k in CASES])
def test_a_resume_with_any_identity_setting_changed_is_refused_and_names_it(tmp_path, protocol, key):
    config = dataclasses.replace(BASE, protocol=protocol)
    finished_run(tmp_path, config)
    changed = dataclasses.replace(config, **{key: OTHER[key]})
    with pytest.raises(ValueError, match=rf"holds predictions made with other settings \({key}: ") as info:
        check_identity(tmp_path, changed)
    assert "use another --output_dir" in str(info.value)
    check_identity(tmp_path, config)  # the same settings resume


def test_a_protocol_change_is_refused_and_batch_size_or_sources_are_not_settings(tmp_path):
    finished_run(tmp_path, BASE)
    with pytest.raises(ValueError, match=r"protocol: 'ground_r1' -> 'ground_sft'"):
        check_identity(tmp_path, dataclasses.replace(BASE, protocol="ground_sft"))
    check_identity(tmp_path, dataclasses.replace(BASE, batch_size=1, settings_sources={"max_turns": "flag"}))


def test_a_setting_another_protocol_uses_does_not_block_a_resume(tmp_path):
    # A one-turn run generates no box and poses no turn budget: those flags cannot change its predictions.
    config = dataclasses.replace(BASE, protocol="baseline")
    finished_run(tmp_path, config)
    check_identity(tmp_path, dataclasses.replace(config, max_turns=2, box_parse="release", min_crop_size=56))


def test_a_likelihood_run_resumes_with_another_token_budget_it_never_uses(tmp_path):
    # Left alone at issue 22's first stop: the sampling was common to every protocol, so a changed --max_new_tokens
    # refused the resume of a run that generates nothing. A folder recorded then (sampling in its identity) resumes.
    config = dataclasses.replace(BASE, protocol="likelihood")
    finished_run(tmp_path, config)
    longer = dataclasses.replace(config.sampling, max_new_tokens=config.sampling.max_new_tokens * 2)
    check_identity(tmp_path, dataclasses.replace(config, sampling=longer))
    recorded = json.loads((tmp_path / RUN_CONFIG_NAME).read_text())
    recorded["sampling"] = {"max_new_tokens": 7}  # as written before: a setting the protocol does not use
    (tmp_path / RUN_CONFIG_NAME).write_text(json.dumps(recorded))
    check_identity(tmp_path, config)
    with pytest.raises(ValueError, match=r"protocol: 'likelihood' -> 'baseline'; sampling: \{'max_new_tokens': 7\}"):
        check_identity(tmp_path, dataclasses.replace(config, protocol="baseline"))


def test_recorded_settings_without_predictions_take_the_new_ones(tmp_path):
    check_identity(tmp_path, BASE)  # a run killed before its first batch finished
    check_identity(tmp_path, dataclasses.replace(BASE, max_pixels=25088))
    assert json.loads((tmp_path / RUN_CONFIG_NAME).read_text())["max_pixels"] == 25088


def test_a_run_recorded_before_the_full_identity_is_refused_naming_the_missing_keys(tmp_path):
    # main before issue 22 recorded neither the benchmark nor the model family nor the dtype.
    (tmp_path / RUN_CONFIG_NAME).write_text(
        json.dumps(
            {
                k: v
                for k, v in json.loads(json.dumps(BASE.identity())).items()
                if k not in ("benchmark", "model_family", "dtype")
            }
        )
    )
    (tmp_path / "predictions.jsonl").write_text(json.dumps({"key": "f:1", "status": "ok"}) + "\n")
    with pytest.raises(
        ValueError,
        match=r"other settings \(benchmark: None -> 'viscot'; dtype: None -> 'float32'; "
        r"model_family: None -> 'qwen2_5_vl'\)",
    ):
        check_identity(tmp_path, BASE)


def test_a_run_recorded_before_conventions_and_scripted_policies_resumes_while_both_are_unset(tmp_path):
    # main after issue 22, before issue 20, recorded neither key: every box was then in input pixels, every turn the
    # model's. Unset (the family's convention, no policy) they match; a checkpoint convention does not.
    config = dataclasses.replace(BASE, protocol="ground_sft")
    (tmp_path / RUN_CONFIG_NAME).write_text(
        json.dumps(
            {
                k: v
                for k, v in json.loads(json.dumps(config.identity())).items()
                if k not in ("coordinates", "scripted_policy")
            }
        )
    )
    (tmp_path / "predictions.jsonl").write_text(json.dumps({"key": "f:1", "status": "ok"}) + "\n")
    check_identity(tmp_path, config)
    with pytest.raises(ValueError, match=r"other settings \(coordinates: None -> 'relative_1000'\)"):
        check_identity(tmp_path, dataclasses.replace(config, coordinates="relative_1000"))


def test_an_unknown_convention_is_refused_naming_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown coordinate convention 'norm'; valid: 'input_pixels'"):
        dataclasses.replace(BASE, coordinates="norm")


def test_model_family_is_the_checkpoint_config_model_type(tmp_path, tiny_model_dir):
    assert model_family(tiny_model_dir) == "qwen2_5_vl"
    assert model_family(None) == ""
    (tmp_path / "config.json").write_text("{not json")
    assert model_family(tmp_path) == ""  # the loader reports an unreadable config when it loads the model


# Each flag that changes a prediction, another value for it, and the identity key it must change.
FLAGS = [
    ("--max_pixels", "25088", "max_pixels"),
    ("--min_pixels", "6272", "min_pixels"),
    ("--max_new_tokens", "7", "sampling"),
    ("--repetition_penalty", "1.2", "sampling"),
    ("--max_turns", "3", "max_turns"),
    ("--max_completion_length", "100", "max_completion_length"),
    ("--min_crop_size", "56", "min_crop_size"),
    ("--max_aspect_ratio", "50", "max_aspect_ratio"),
    ("--crop_fallback", "end", "crop_fallback"),
    ("--box_parse", "release", "box_parse"),
    ("--dtype", "bf16", "dtype"),
    ("--scripted_policy", "mixed_rounds", "scripted_policy"),
]
BASE_FLAGS = [
    "--max_pixels",
    "12544",
    "--min_pixels",
    "3136",
    "--max_new_tokens",
    "8",
    "--max_turns",
    "5",
    "--min_crop_size",
    "28",
    "--max_aspect_ratio",
    "200",
    "--crop_fallback",
    "full_image",
    "--box_parse",
    "tag_first",
    "--dtype",
    "fp32",
]


def _with(flags: list[str], flag: str, value: str) -> list[str]:
    out = list(flags)
    if flag in out:
        out[out.index(flag) + 1] = value
    else:
        out += [flag, value]
    return out


@pytest.mark.parametrize("cli", ["evaluate", "evaluate_general"])
@pytest.mark.parametrize(("flag", "value", "key"), FLAGS, ids=[f[0] for f in FLAGS])
def test_both_clis_put_every_prediction_flag_in_the_identity(cli, flag, value, key, tiny_model_dir):
    from ground_r1.cli import evaluate, evaluate_general

    module = evaluate if cli == "evaluate" else evaluate_general

    def identity(flags: list[str]) -> dict:
        args = module.build_parser().parse_args(
            ["--protocol", "ground_r1", "--output_dir", "o", "--model_path", str(tiny_model_dir), *flags]
        )
        spec = get_benchmark("viscot" if cli == "evaluate" else "MME")  # each CLI's default benchmark
        return json.loads(json.dumps(evaluate.inference_config(args, spec).identity()))

    before, after = identity(BASE_FLAGS), identity(_with(BASE_FLAGS, flag, value))
    assert before["model_family"] == "qwen2_5_vl" and before["model"] == str(Path(tiny_model_dir).resolve())
    assert sorted(k for k in before if before[k] != after[k]) == [key]


@pytest.mark.parametrize("cli", ["evaluate", "evaluate_general"])
def test_both_clis_put_the_checkpoints_box_convention_in_the_identity(cli, tmp_path, tiny_model_dir):
    # Not a flag: the convention comes from the checkpoint's rollout_settings.json (a file written with a model
    # family records it; one written before families leaves the family's default, None).
    from ground_r1.cli import evaluate, evaluate_general
    from ground_r1.config import GroundR1Config
    from ground_r1.rollout_settings import write_settings

    module = evaluate if cli == "evaluate" else evaluate_general
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text((Path(tiny_model_dir) / "config.json").read_text())
    training = GroundR1Config(
        output_dir=str(tmp_path / "o"),
        use_cpu=True,
        bf16=False,
        num_generations=4,
        per_device_train_batch_size=4,
        remove_unused_columns=False,
        report_to=[],
    )

    def identity(**recorded) -> dict:
        write_settings(checkpoint, training, **recorded)
        args = module.build_parser().parse_args(
            ["--protocol", "ground_r1", "--output_dir", "o", "--model_path", str(checkpoint), *BASE_FLAGS]
        )
        evaluate.apply_rollout_settings(args, demo_pixels=False, demo_tokens=False)
        spec = get_benchmark("viscot" if cli == "evaluate" else "MME")
        return json.loads(json.dumps(evaluate.inference_config(args, spec).identity()))

    before = identity(coordinates="input_pixels")  # no model_family: written before families
    after = identity(coordinates="relative_1000", model_family="qwen2_5_vl")
    assert before["coordinates"] is None and before["model_family"] == "qwen2_5_vl"
    assert sorted(k for k in before if before[k] != after[k]) == ["coordinates"]
    assert after["coordinates"] == "relative_1000"


def test_the_viscot_cli_names_the_benchmark_and_the_prompt_class(tiny_model_dir):
    from ground_r1.cli import evaluate

    def config(*flags: str) -> InferenceConfig:
        args = evaluate.build_parser().parse_args(
            ["--output_dir", "o", "--model_path", str(tiny_model_dir), *BASE_FLAGS, *flags]
        )
        (name,) = evaluate.benchmark_names(args.benchmarks, args.protocol)  # no --benchmarks: the eval/ launchers'
        return evaluate.inference_config(args, get_benchmark(name))

    assert config("--protocol", "refcoco").identity()["benchmark"] == "refcoco"
    baseline = config("--protocol", "baseline", "--prompt_class", "simply_answer").identity()
    assert (baseline["benchmark"], baseline["benchmark_version"], baseline["prompt_class"]) == (
        "viscot",
        "1",
        "simply_answer",
    )


def test_the_general_cli_names_each_benchmark_and_its_spec_version(tiny_model_dir):
    from ground_r1.cli import evaluate, evaluate_general

    args = evaluate_general.build_parser().parse_args(
        ["--protocol", "direct", "--output_dir", "o", "--model_path", str(tiny_model_dir), *BASE_FLAGS]
    )
    spec = get_benchmark("MME")
    ident = evaluate.inference_config(args, spec).identity()  # "direct": the one-turn baseline's other name
    assert (ident["benchmark"], ident["benchmark_version"], ident["protocol"]) == ("MME", spec.version, "baseline")


@pytest.mark.slow
def test_a_rerun_with_another_max_pixels_refuses_to_resume(tmp_path, tiny_model_dir, caplog):
    """The defect of issue 22, end to end through the VisCoT CLI: the second run must not append predictions made
    at another resolution to the first's."""
    from ground_r1.cli import evaluate

    out = tmp_path / "run"
    common = [
        "--protocol",
        "baseline",
        "--output_dir",
        str(out),
        "--model_path",
        str(tiny_model_dir),
        "--max_items",
        "1",
        "--max_new_tokens",
        "4",
        "--stages",
        "infer",
        "--no_progress",
    ]
    assert evaluate.main([*common, "--max_pixels", "12544"]) == 0
    before = (out / "predictions.jsonl").read_text()
    assert evaluate.main([*common, "--max_pixels", "25088"]) == 1
    assert "holds predictions made with other settings (max_pixels: 12544 -> 25088)" in caplog.text
    assert (out / "predictions.jsonl").read_text() == before
    assert sorted(p.name for p in out.glob("predictions*.jsonl")) == ["predictions.jsonl", "predictions.rank0.jsonl"]
    assert evaluate.main([*common, "--max_pixels", "12544"]) == 0  # the same settings resume (nothing left to do)


def test_every_setting_is_recorded_beside_the_identity_and_the_table_header_reads_it(tmp_path):
    # A one-turn run's identity leaves the turn budget out, but its table header prints every rollout setting, as
    # it did before the identity was narrowed to what each protocol uses.
    from ground_r1.rollout_settings import run_header

    config = dataclasses.replace(BASE, protocol="baseline", settings_sources={"max_pixels": "flag"})
    check_identity(tmp_path, config)
    recorded = json.loads((tmp_path / RUN_CONFIG_NAME).read_text())
    assert "max_turns" not in recorded and recorded["notes"]["settings"]["max_turns"] == 5
    assert recorded["notes"]["settings_sources"] == {"max_pixels": "flag"}
    assert run_header(tmp_path) == (
        "Rollout settings (baseline protocol, model /m): as recorded: max_turns=5, "
        "max_new_tokens_per_turn=512, min_pixels=3136, min_crop_size=28, "
        "max_aspect_ratio=200.0, crop_fallback=full_image; from flags: max_pixels=12544"
    )


def test_a_scripted_runs_table_header_names_the_policy(tmp_path):
    from ground_r1.rollout_settings import run_header

    check_identity(tmp_path, dataclasses.replace(BASE, scripted_policy="mixed_rounds"))
    assert run_header(tmp_path).startswith(
        "Rollout settings (ground_r1 protocol, model /m (scripted policy mixed_rounds)): "
    )
