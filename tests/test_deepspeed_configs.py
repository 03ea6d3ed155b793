"""The shipped DeepSpeed JSONs and accelerate YAMLs are valid for the pinned stack, checked without launching.

DeepSpeed configs go through the same path a run takes (SPEC §5: ZeRO-3 without offload for the release):
the HF integration fills the "auto" values, then DeepSpeed's own `DeepSpeedConfig` parses the result.
Accelerate configs go through accelerate's own config loader and launch-argument resolution.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

# DeepSpeed picks its accelerator at first use; without a GPU it must be told "cpu" (ENVIRONMENT.md).
if not torch.cuda.is_available():
    os.environ.setdefault("DS_ACCELERATOR", "cpu")

from ground_r1 import paths  # noqa: E402
from ground_r1.distributed import (  # noqa: E402
    fill_deepspeed_auto_values,
    init_cpu_gloo_state,
    validate_deepspeed_config,
)

REPO = Path(__file__).resolve().parent.parent
DS_DIR = REPO / "configs" / "deepspeed"
ACCEL_DIR = REPO / "configs" / "accelerate"
DS_CONFIGS = sorted(DS_DIR.glob("*.json"))
ACCEL_CONFIGS = sorted(ACCEL_DIR.glob("*.yaml"))


def _load(name: str) -> dict:
    return json.loads((DS_DIR / name).read_text())


def _write(tmp_path: Path, config: dict, name: str = "bad.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(config, indent=2))
    return path


# -- DeepSpeed JSONs -----------------------------------------------------------------------------------------------


def test_the_four_deepspeed_configs_are_shipped():
    assert [p.name for p in DS_CONFIGS] == ["zero2.json", "zero3.json", "zero3_cpu.json", "zero3_offload.json"]


@pytest.mark.parametrize("path", DS_CONFIGS, ids=lambda p: p.name)
@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_shipped_deepspeed_config_validates(path: Path, bf16: bool):
    validate_deepspeed_config(path, train_batch_size_hint=8, gradient_accumulation_steps=2, bf16=bf16)


def test_auto_values_are_filled_from_training_arguments():
    filled = fill_deepspeed_auto_values(
        _load("zero3.json"), train_batch_size_hint=8, gradient_accumulation_steps=2, bf16=True, hidden_size=3584
    )
    assert filled["train_micro_batch_size_per_gpu"] == 8
    assert filled["gradient_accumulation_steps"] == 2
    assert filled["train_batch_size"] == 16  # world 1 (launch-free) * micro 8 * accumulation 2
    assert filled["gradient_clipping"] == 1.0  # TrainingArguments.max_grad_norm default
    assert filled["bf16"]["enabled"] is True
    assert filled["fp16"]["enabled"] is False
    zero = filled["zero_optimization"]
    assert zero["reduce_bucket_size"] == 12845056  # 3584 ** 2
    assert zero["stage3_prefetch_bucket_size"] == 11560550  # int(0.9 * 12845056) = int(11560550.4)
    assert zero["stage3_param_persistence_threshold"] == 35840  # 10 * 3584


def test_release_layout_of_the_configs():
    names = ("zero3.json", "zero3_offload.json", "zero3_cpu.json", "zero2.json")
    zero3, offload, cpu, zero2 = (_load(n) for n in names)
    # SPEC §5: ZeRO-3 without offload; checkpoints loadable with from_pretrained.
    assert zero3["zero_optimization"]["stage"] == 3
    assert "offload_optimizer" not in zero3["zero_optimization"]
    assert "offload_param" not in zero3["zero_optimization"]
    for config in (zero3, offload, cpu):
        assert config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert zero2["zero_optimization"]["stage"] == 2
    assert offload["zero_optimization"]["offload_optimizer"] == {"device": "cpu", "pin_memory": True}
    assert offload["zero_optimization"]["offload_param"] == {"device": "cpu", "pin_memory": True}
    # CPU under gloo: no overlapped communication, no half precision.
    assert cpu["zero_optimization"]["overlap_comm"] is False
    assert "bf16" not in cpu and "fp16" not in cpu
    # The Trainer owns the schedule (SPEC §5 linear decay) and, without offload, the AdamW optimizer.
    for config in (zero3, offload, cpu, zero2):
        assert "scheduler" not in config
    assert "optimizer" not in zero3 and "optimizer" not in zero2 and "optimizer" not in cpu


def test_unknown_key_inside_a_section_is_rejected_by_deepspeed(tmp_path):
    config = _load("zero3.json")
    config["zero_optimization"]["stage3_gather_fp16_weights_on_save"] = True  # not a DeepSpeed field
    path = _write(tmp_path, config, "typo_zero3.json")
    with pytest.raises(ValueError) as info:
        validate_deepspeed_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: DeepSpeed rejected this config: ValidationError")
    assert "stage3_gather_fp16_weights_on_save" in message
    assert "Extra inputs are not permitted" in message  # DeepSpeed's pydantic model, surfaced verbatim


def test_unknown_top_level_key_is_rejected_with_a_suggestion(tmp_path):
    config = _load("zero3.json")
    config["zero_optimisation"] = config.pop("zero_optimization")  # DeepSpeed alone would ignore it: no ZeRO
    path = _write(tmp_path, config)
    expected = r"top-level key\(s\) 'zero_optimisation' \(did you mean 'zero_optimization'\?\)"
    with pytest.raises(ValueError, match=expected):
        validate_deepspeed_config(path)


def test_auto_left_unfilled_is_named(tmp_path):
    config = _load("zero3.json")
    config["zero_optimization"]["stage3_max_live_parameters"] = "auto"  # the HF integration never fills this one
    path = _write(tmp_path, config)
    with pytest.raises(ValueError, match=r"zero_optimization\.stage3_max_live_parameters still 'auto'"):
        validate_deepspeed_config(path)


def test_value_that_contradicts_the_training_arguments_is_named(tmp_path):
    config = _load("zero3.json")
    config["gradient_clipping"] = 5.0  # the Trainer default max_grad_norm is 1.0: "auto" avoids this mismatch
    path = _write(tmp_path, config)
    with pytest.raises(ValueError, match=r"(?s)cannot fill.*gradient_clipping=5\.0 vs hf max_grad_norm=1\.0"):
        validate_deepspeed_config(path)


def test_bad_json_and_duplicate_keys_name_the_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "train_batch_size": "auto",\n  "zero_optimization": {"stage": 3,}\n}\n')
    with pytest.raises(ValueError, match=rf"^{broken}:3:\d+: not valid JSON"):
        validate_deepspeed_config(broken)
    duplicated = tmp_path / "dup.json"
    duplicated.write_text('{"zero_optimization": {"stage": 3}, "zero_optimization": {"stage": 2}}')
    with pytest.raises(ValueError, match=rf"^{duplicated}: key 'zero_optimization' appears twice"):
        validate_deepspeed_config(duplicated)


def test_validation_leaves_the_registered_hf_deepspeed_config_alone():
    from transformers.integrations import deepspeed as hf_ds

    registered = hf_ds.HfDeepSpeedConfig(_load("zero2.json"))  # what a live TrainingArguments would register
    try:
        validate_deepspeed_config(DS_DIR / "zero3.json")
        # Without the restore, the global weakref would point at the (freed) zero3 object: None / False here.
        assert hf_ds.deepspeed_config() is registered.config
        assert hf_ds.is_deepspeed_zero3_enabled() is False
    finally:
        hf_ds.unset_hf_deepspeed_config()


# -- accelerate YAMLs ----------------------------------------------------------------------------------------------

EXPECTED_ACCEL = {
    # name: (deepspeed JSON, num_machines, use_cpu)
    "cpu_zero3.yaml": ("configs/deepspeed/zero3_cpu.json", 1, True),
    "multi_node.yaml": ("configs/deepspeed/zero3.json", 2, False),
    "single_node.yaml": ("configs/deepspeed/zero3.json", 1, False),
}


def test_the_three_accelerate_configs_are_shipped():
    assert [p.name for p in ACCEL_CONFIGS] == sorted(EXPECTED_ACCEL)


@pytest.mark.parametrize("path", ACCEL_CONFIGS, ids=lambda p: p.name)
def test_accelerate_config_is_loadable_and_names_a_valid_deepspeed_config(path: Path, monkeypatch):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.utils import DeepSpeedPlugin

    raw = yaml.safe_load(path.read_text())
    for key in ("compute_environment", "distributed_type", "num_processes", "num_machines", "machine_rank"):
        assert key in raw, f"{path.name} lacks {key}"
    assert raw["compute_environment"] == "LOCAL_MACHINE"
    assert raw["distributed_type"] == "DEEPSPEED"
    ds_file, num_machines, use_cpu = EXPECTED_ACCEL[path.name]
    assert raw["deepspeed_config"]["deepspeed_config_file"] == ds_file
    assert raw["num_machines"] == num_machines
    assert raw["use_cpu"] is use_cpu

    # accelerate's own loader rejects keys it does not know.
    loaded = load_config_from_file(str(path))
    assert isinstance(loaded, ClusterConfig)
    # With deepspeed_config_file set, accelerate refuses precision/batch/ZeRO fields in the YAML (they would be
    # ignored); `accelerate launch` passes the YAML's deepspeed keys (+ mixed_precision if set) in this variable.
    fields = list(loaded.deepspeed_config) + (["mixed_precision"] if loaded.mixed_precision is not None else [])
    monkeypatch.setenv("ACCELERATE_CONFIG_DS_FIELDS", ",".join(fields).lower())
    DeepSpeedPlugin._deepspeed_config_checks(None)

    # Relative to the repository root, where the launchers cd before launching.
    validate_deepspeed_config(REPO / ds_file)


def _resolve_launch(argv: list[str]):
    """What `accelerate launch argv` would hand torchrun, computed without launching."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env

    args = launch_command_parser().parse_args(argv)
    args, defaults, mp_from_config = _validate_launch_command(args)
    assert args.use_deepspeed is True
    # As `launch_command` does before calling the DeepSpeed launcher:
    fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else [])
    args.deepspeed_fields_from_accelerate_config = ",".join(fields)
    cmd, env = prepare_deepspeed_cmd_env(args)
    return args, cmd, env


def test_multi_node_launch_flags_reach_torchrun(monkeypatch):
    monkeypatch.chdir(REPO)
    args, cmd, env = _resolve_launch([
        "--config_file", "configs/accelerate/multi_node.yaml",
        "--num_processes", "8", "--num_machines", "2", "--machine_rank", "1",
        "--main_process_ip", "10.1.2.3", "--main_process_port", "29555",
        "--deepspeed_config_file", "configs/deepspeed/zero3.json",
        "-m", "ground_r1.cli.train_grpo", "--config", "configs/grpo/release.yaml",
    ])  # fmt: skip
    assert cmd is None  # "standard" launcher: torchrun on each node, no pdsh/hostfile
    assert (args.nproc_per_node, args.nnodes, args.node_rank) == ("4", "2", 1)  # 8 processes / 2 nodes
    assert (args.rdzv_backend, args.rdzv_endpoint) == ("static", "10.1.2.3:29555")  # every node meets rank 0
    assert env["ACCELERATE_USE_DEEPSPEED"] == "true"
    assert env["ACCELERATE_DEEPSPEED_CONFIG_FILE"] == "configs/deepspeed/zero3.json"


def test_cpu_launch_resolves_to_two_deepspeed_processes(monkeypatch):
    monkeypatch.chdir(REPO)
    args, cmd, env = _resolve_launch([
        "--config_file", "configs/accelerate/cpu_zero3.yaml", "--main_process_port", "0",
        "-m", "ground_r1.cli.train_grpo",
    ])  # fmt: skip
    assert cmd is None
    assert args.nproc_per_node == "2"
    assert env["ACCELERATE_DEEPSPEED_CONFIG_FILE"] == "configs/deepspeed/zero3_cpu.json"
    assert env["ACCELERATE_DEEPSPEED_ZERO3_INIT"] == "true"
    assert set(env["ACCELERATE_CONFIG_DS_FIELDS"].split(",")) == {"deepspeed_config_file", "zero3_init_flag"}


# -- init_cpu_gloo_state -------------------------------------------------------------------------------------------


@pytest.fixture
def clean_partial_state():
    """Run with no accelerate state, and put back whatever state the session had."""
    from accelerate import PartialState

    saved = dict(PartialState._shared_state)
    PartialState._shared_state.clear()
    yield PartialState
    PartialState._shared_state.clear()
    PartialState._shared_state.update(saved)


def test_single_process_creates_no_state(clean_partial_state, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_cpu_gloo_state() is False
    assert clean_partial_state._shared_state == {}
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert init_cpu_gloo_state() is False
    assert clean_partial_state._shared_state == {}


def test_state_built_before_it_with_another_backend_is_an_error(clean_partial_state, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    if torch.cuda.is_available():
        pytest.skip("the gloo state is for machines without CUDA")
    clean_partial_state()  # single process: backend None, as if the training args had been built first
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="backend None.*before building the training arguments"):
        init_cpu_gloo_state()


def test_bad_world_size_is_named(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match=r"WORLD_SIZE='two' is not an integer"):
        init_cpu_gloo_state()


_CHILD = r"""
import json
import os
from ground_r1.distributed import init_cpu_gloo_state

created = init_cpu_gloo_state()
import torch, torch.distributed as dist
from transformers import TrainingArguments

args = TrainingArguments(output_dir="{out}", report_to=[], per_device_train_batch_size=1,
                         accelerator_config={{"use_configured_state": created}})
x = torch.tensor([float(args.process_index + 1)])
dist.all_reduce(x)
zero = args.deepspeed_plugin.deepspeed_config["zero_optimization"]
line = "RESULT " + json.dumps({{"created": created, "world": args.world_size, "rank": args.process_index,
      "type": str(args.distributed_state.distributed_type), "sum": x.item(), "stage": zero["stage"],
      "overlap": zero["overlap_comm"]}}) + "\n"
os.write(1, line.encode())  # one write(2) per rank: print's text and newline could interleave with the other rank's
dist.barrier()  # both ranks done before either tears gloo down (a peer gone mid-teardown aborts: SIGABRT)
dist.destroy_process_group()
os._exit(0)  # the result is written; skip interpreter teardown (a joinable library thread aborted it under load)
"""


@pytest.mark.slow
def test_two_cpu_processes_under_accelerate_launch(tmp_path):
    # The real path: accelerate launch + cpu_zero3.yaml -> torchrun -> DeepSpeed comm on gloo. The first run on
    # a machine JIT-builds DeepSpeed's shm comm op (30-90 s); it is cached where the launchers cache it.
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(out=tmp_path / "out"))
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1",
               TORCH_EXTENSIONS_DIR=str(paths.cache_dir() / "torch_extensions"))  # fmt: skip
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "configs/accelerate/cpu_zero3.yaml",
         "--main_process_port", "0", str(script)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = sorted(
        (json.loads(line[len("RESULT ") :]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")),
        key=lambda r: r["rank"],
    )
    expected = {"created": True, "world": 2, "type": "DistributedType.DEEPSPEED", "sum": 3.0,  # 1 + 2 over gloo
                "stage": 3, "overlap": False}  # fmt: skip
    assert results == [{**expected, "rank": 0}, {**expected, "rank": 1}]
