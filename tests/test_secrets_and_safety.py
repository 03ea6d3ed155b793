"""Secrets and safety (issue 9, part 5).

1. API keys come only from the environment or a file and never reach a log, a config saved with a checkpoint,
   or any output: a short training run (the bad-input run of tests/data, shared: one training per session)
   and a judged evaluation through the fake judge server run with distinctive fake keys, then EVERY file they
   produce and their captured stdout/stderr are searched for the keys.
2. Nothing evaluates text as code (no ``eval``/``exec``/unsafe deserialisation anywhere in src/, so not on
   model output either), and ``trust_remote_code`` is off unless asked.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ground_r1 import paths

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS / "data"))
sys.path.insert(0, str(TESTS / "evaluation"))
from bad_inputs import SECRET_ENV, SECRET_IN_FILE, train_with_skip_bad_records  # noqa: E402
from fake_chat_server import FakeChatServer, RecordedRequest  # noqa: E402

REPO = paths.repo_root()
SRC = REPO / "src" / "ground_r1"
ALL_TRAINING_SECRETS = [*SECRET_ENV.values(), SECRET_IN_FILE]


def files_holding(roots: list[Path], secrets: list[str]) -> list[tuple[str, str]]:
    """(file, secret) for every file under ``roots`` (any depth, binary files too) that contains a secret."""
    needles = [(s, s.encode("utf-8")) for s in secrets]
    hits = []
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                hits += [(str(path), s) for s, raw in needles if raw in data]
    return hits


def test_the_search_finds_a_planted_secret_anywhere(tmp_path):
    # The check below can fail: a key in a nested binary file (a pickled config, a checkpoint) is found.
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "training_args.bin").write_bytes(b"\x80\x04" + SECRET_IN_FILE.encode() + b"\x00")
    (tmp_path / "clean.json").write_text("{}")
    assert files_holding([tmp_path], ALL_TRAINING_SECRETS) == [
        (str(tmp_path / "a" / "b" / "training_args.bin"), SECRET_IN_FILE)
    ]


# --------------------------------------------------------------------------------------------------------
# 1. End to end


@pytest.mark.slow
def test_training_never_writes_or_logs_a_secret(tmp_path_factory):
    run = train_with_skip_bad_records(tmp_path_factory)  # OPENAI_API_KEY, HF_TOKEN, WANDB_API_KEY, a key file
    assert run.proc.returncode == 0, run.proc.stderr[-4000:]
    out = run.output_dir
    # What is searched holds what would leak: the manifest (config + command), the checkpoint's pickled
    # training args, trainer state, weights, metrics, logs.
    for name in (
        "run_manifest.json",
        "checkpoint-1/training_args.bin",
        "checkpoint-1/trainer_state.json",
        "model.safetensors",
        "metrics.jsonl",
        "skipped_records.jsonl",
    ):
        assert (out / name).is_file(), name
    assert files_holding([out], ALL_TRAINING_SECRETS) == []
    assert all(secret not in run.proc.stdout + run.proc.stderr for secret in ALL_TRAINING_SECRETS)
    # The manifest still records the command faithfully (flags that only mention tokens are not masked).
    command = json.loads((out / "run_manifest.json").read_text())["command"]
    assert command[command.index("--max_new_tokens_per_turn") + 1] == "16"


def _echo(request: RecordedRequest, n: int) -> tuple:
    # A hostile endpoint: every reply echoes the Authorization header (with the key) after a valid score.
    return ("reply", "score: 0.5 you sent " + request.headers.get("authorization", ""))


@pytest.mark.slow
def test_judged_evaluation_with_a_key_file_never_writes_or_logs_it(tmp_path):
    key = "sk-h9a-eval-keyfile-5c0d71"
    key_file = tmp_path / "secrets" / "judge.key"
    key_file.parent.mkdir()
    key_file.write_text(key + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    with FakeChatServer(policy=_echo) as server:
        env.update(
            OPENAI_BASE_URL=server.base_url,
            OPENAI_API_KEY_FILE=str(key_file),
            OPENAI_MODEL="judge-test",
            NUM_GPUS="1",
            OMP_NUM_THREADS="1",
            OUTPUT_DIR="out",
        )
        proc = subprocess.run(
            ["bash", str(REPO / "eval" / "multi_baseline.sh"), "--no_progress"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        requests = server.chat_requests
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    # The key was read from the file and sent, in the Authorization header only.
    assert requests and {r.headers["authorization"] for r in requests} == {f"Bearer {key}"}
    assert all(key not in json.dumps(r.body) for r in requests)
    out = tmp_path / "out"
    assert (out / "table.md").is_file()
    assert files_holding([out], [key]) == [] and key not in proc.stdout + proc.stderr
    # The echo reached the outputs, redacted: the hostile path was exercised, not skipped.
    echoed = [p for p in out.rglob("*") if p.is_file() and "you sent Bearer ***" in p.read_text(errors="replace")]
    assert echoed


# --------------------------------------------------------------------------------------------------------
# The run manifest (configs saved with checkpoints)


def test_secret_names():
    from ground_r1.run_manifest import is_secret_name

    secret = [
        "api_key",
        "OPENAI_API_KEY",
        "hub_token",
        "HF_TOKEN",
        "token",
        "password",
        "client_secret",
        "WANDB_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "push_to_hub_token",
        "--hub-token",
    ]
    innocent = [
        "max_new_tokens_per_turn",
        "pad_token",
        "include_num_input_tokens_seen",
        "sort_key",
        "max_tokens",
        "tokenizer_name_or_path",
        "image_token",
        "num_tokens",
        "hub_model_id",
        "eval_max_new_tokens_per_turn",
    ]
    assert [n for n in secret if not is_secret_name(n)] == []
    assert [n for n in innocent if is_secret_name(n)] == []


def test_manifest_masks_secret_fields_flags_and_any_secret_in_the_environment(tmp_path, monkeypatch):
    from ground_r1.run_manifest import environment_secrets, write_manifest

    key_file = tmp_path / "key.txt"
    key_file.write_text(SECRET_IN_FILE + "\n")
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPENAI_API_KEY_FILE", str(key_file))
    monkeypatch.setenv("GROUND_R1_INNOCENT", "innocent-value-123")
    found = environment_secrets()
    assert set(ALL_TRAINING_SECRETS) <= set(found) and "innocent-value-123" not in found
    argv = ["--max_new_tokens_per_turn", "16", "--hub_token", "hf_cli_token_abc", "--api_key=sk-cli-xyz"]
    section = {
        "hub_token": "hf_section_token_def",
        "pad_token": "<|endoftext|>",
        "max_new_tokens_per_turn": 16,
        "note": f"innocent key name, secret value {SECRET_ENV['OPENAI_API_KEY']}",
        "nested": {"password": "p4ssw0rd!", "hub_token": None},
        "path": "innocent-value-123",
    }
    text = write_manifest(tmp_path / "out", argv, training_args=section).read_text()
    for leaked in [*ALL_TRAINING_SECRETS, "hf_cli_token_abc", "sk-cli-xyz", "hf_section_token_def", "p4ssw0rd!"]:
        assert leaked not in text, leaked
    manifest = json.loads(text)
    assert manifest["command"][-5:] == ["--max_new_tokens_per_turn", "16", "--hub_token", "***", "--api_key=***"]
    assert manifest["training_args"] == {
        "hub_token": "***",
        "pad_token": "<|endoftext|>",
        "max_new_tokens_per_turn": 16,
        "note": "innocent key name, secret value ***",
        "nested": {"password": "***", "hub_token": None},
        "path": "innocent-value-123",
    }


# --------------------------------------------------------------------------------------------------------
# 2. Static: nothing runs text as code; no remote code unless asked


def _sources() -> list[tuple[Path, ast.AST]]:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 40  # the whole package, not an empty glob
    return [(f, ast.parse(f.read_text(encoding="utf-8"), filename=str(f))) for f in files]


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(REPO)}:{node.lineno}"


# Calls that run text as code or deserialise arbitrary objects.
FORBIDDEN_CALLS = {
    "eval",
    "exec",
    "compile",
    "__import__",
    "pickle.load",
    "pickle.loads",
    "marshal.load",
    "marshal.loads",
    "yaml.unsafe_load",
    "yaml.full_load",
    "dill.load",
    "dill.loads",
    "os.system",
    "os.popen",
    "shelve.open",
}


def _unsafe_calls() -> list[tuple[str, str]]:
    """(file:line, what) for every call that runs text as code or deserialises arbitrary objects."""
    problems = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _dotted(node.func)
            keywords = {k.arg: k.value for k in node.keywords}
            if name in FORBIDDEN_CALLS:
                problems.append((_where(path, node), f"{name}(...)"))
            elif name == "yaml.load" and "Loader" not in keywords:
                problems.append((_where(path, node), "yaml.load without a safe Loader"))
            elif name == "torch.load" and not (
                isinstance(keywords.get("weights_only"), ast.Constant) and keywords["weights_only"].value is True
            ):
                problems.append((_where(path, node), "torch.load without weights_only=True"))
            shell = keywords.get("shell")
            if isinstance(shell, ast.Constant) and shell.value is True:
                problems.append((_where(path, node), f"{name}(..., shell=True)"))
    return problems


def test_nothing_in_src_runs_text_as_code_or_unpickles():
    assert [f"{where}: {what}" for where, what in _unsafe_calls()] == []


def test_trust_remote_code_is_never_switched_on_in_src():
    problems = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                if isinstance(node.value, ast.Constant) and node.value.value is not False:
                    problems.append(f"{_where(path, node.value)}: trust_remote_code={node.value.value!r}")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.args + node.args.kwonlyargs
                defaults = (
                    [None] * (len(node.args.args) - len(node.args.defaults))
                    + list(node.args.defaults)
                    + list(node.args.kw_defaults)
                )
                for arg, default in zip(args, defaults):
                    if arg.arg == "trust_remote_code" and not (
                        isinstance(default, ast.Constant) and default.value is False
                    ):
                        problems.append(
                            f"{_where(path, node)}: {node.name}(trust_remote_code=...) must default to False"
                        )
    assert problems == []


def test_the_environment_is_only_read_by_name():
    # A credential can only leak from the environment through code that takes it whole (dumps, logs, wandb
    # configs, a copy passed on). Reading, setting or testing one named variable is the only use allowed.
    problems = []
    for path, tree in _sources():
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        for node in ast.walk(tree):
            if _dotted(node) != "os.environ":
                continue
            parent = parents.get(node)
            by_name = (
                isinstance(parent, ast.Subscript)  # os.environ[NAME]
                or (isinstance(parent, ast.Attribute) and parent.attr in ("get", "setdefault", "pop"))
                or (isinstance(parent, ast.Compare) and node in parent.comparators)  # NAME in os.environ
            )
            if not by_name and path.name != "run_manifest.py":  # run_manifest scans it to MASK secrets
                problems.append(f"{_where(path, node)}: os.environ used other than by one variable's name")
    assert problems == []


class _Stop(Exception):
    pass


@pytest.mark.parametrize("asked", [None, True])
def test_load_processor_and_load_model_pass_trust_remote_code_only_when_asked(monkeypatch, asked):
    import transformers

    from ground_r1.models import loading

    seen = {}

    def record(name):
        def from_pretrained(*args, **kwargs):
            seen[name] = kwargs.get("trust_remote_code")
            raise _Stop

        return from_pretrained

    def config_from_pretrained(*args, **kwargs):  # the family is read from the config first (models.families)
        seen.setdefault("config", []).append(kwargs.get("trust_remote_code"))
        return transformers.Qwen2_5_VLConfig()

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", config_from_pretrained)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", record("tokenizer"))
    monkeypatch.setattr(transformers.Qwen2_5_VLForConditionalGeneration, "from_pretrained", record("model"))
    kwargs = {} if asked is None else {"trust_remote_code": True}
    with pytest.raises(_Stop):
        loading.load_processor("some/model", **kwargs)
    with pytest.raises(_Stop):
        loading.load_model("some/model", attn_implementation="sdpa", dtype="float32", **kwargs)
    expected = asked is True  # default: False, passed explicitly
    assert seen == {"config": [expected, expected], "tokenizer": expected, "model": expected}


def test_the_trainer_cli_defaults_to_no_remote_code():
    from ground_r1.cli.train_grpo import parse_args

    config = str(REPO / "configs" / "grpo" / "tiny_cpu.yaml")
    _, training_args, model_args = parse_args(["--config", config, "--output_dir", "unused"])
    # TRL 1.16 keeps the flag on the training config (GRPOConfig), not on ModelConfig.
    assert training_args.trust_remote_code is False and not hasattr(model_args, "trust_remote_code")


def test_manifest_records_what_sets_the_floating_point_results(tmp_path, monkeypatch):
    """Issue 21: a seed that did not reproduce could not be traced because nothing said which thread count or CPU
    kernels ran it. The manifest says so now."""
    import torch

    from ground_r1.run_manifest import write_manifest

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        manifest = json.loads(write_manifest(tmp_path, []).read_text())
    finally:
        torch.set_num_threads(previous)
    n = manifest["numerics"]
    assert n["torch_threads"] == 1
    assert n["env_threads"] == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": None}
    assert n["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and n["cpu_capability"]
    assert n["deterministic_algorithms"] is torch.are_deterministic_algorithms_enabled()
    assert isinstance(n["cuda_devices"], list) and isinstance(n["torch_interop_threads"], int)
