"""The run manifest: resolved configuration, git commit, package versions, and what sets the floating-point
results besides them (thread counts, CPU instruction set: :func:`numerics`) (OUTPUT_DIR/run_manifest.json).

Secrets never enter it (issue: API keys are never saved with checkpoints or configs), by two rules:

* a value under a credential-looking name (:func:`is_secret_name`: ``api_key``, ``hub_token``, ``token``,
  ``password``, ...), in the config sections or after such a flag on the command line, becomes ``"***"``;
  names that merely mention tokens (``max_new_tokens_per_turn``, ``pad_token``) are kept, so the recorded
  command still reproduces the run;
* every credential the process can see (:func:`environment_secrets`: the values of credential-looking
  environment variables, e.g. ``OPENAI_API_KEY``, ``HF_TOKEN``, ``WANDB_API_KEY``, and the content of the
  files their ``*_FILE`` variants name) is replaced by ``"***"`` wherever it appears in the manifest.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from ground_r1 import paths

PACKAGES = ("ground_r1", "torch", "transformers", "trl", "accelerate", "datasets", "deepspeed", "peft", "flash-attn")
MASK = "***"
# A word of the name (split on "_" / "-") that marks a credential whatever surrounds it.
_SECRET_WORDS = frozenset({"secret", "secrets", "password", "passwd", "credential", "credentials", "apikey"})
# "<word>_key" names that are credentials (api_key, access_key, ...); other keys (sort_key, ...) are not.
_KEY_PREFIXES = frozenset({"api", "access", "private", "secret", "auth", "client", "signing", "encryption"})
# "<word>_token" names that are tokenizer settings, not credentials (pad_token, eos_token, image_token, ...).
_TOKENIZER_WORDS = frozenset(
    {
        "pad",
        "eos",
        "bos",
        "unk",
        "sep",
        "cls",
        "mask",
        "image",
        "video",
        "vision",
        "audio",
        "start",
        "end",
        "special",
        "additional",
        "placeholder",
        "boi",
        "eoi",
    }
)
_MIN_SECRET_LENGTH = 6  # shorter environment values ("1", "true") would mask innocent text
_MAX_KEY_FILE_BYTES = 4096


def is_secret_name(name: object) -> bool:
    """Whether a config key, flag or environment variable name denotes a credential.

    ``api_key``, ``OPENAI_API_KEY``, ``--hub_token``, ``HF_TOKEN``, ``token``, ``password``, ``client_secret``:
    yes. ``max_new_tokens_per_turn``, ``pad_token``, ``include_num_input_tokens_seen``, ``sort_key``: no.
    """
    words = [w for w in re.split(r"[_\-\s.]+", str(name).lower()) if w]
    if not words:
        return False
    if any(w in _SECRET_WORDS for w in words):
        return True
    for i, word in enumerate(words):
        before = words[i - 1] if i > 0 else None
        if word == "key" and before in _KEY_PREFIXES:
            return True
        if word == "token" and i == len(words) - 1 and before not in _TOKENIZER_WORDS:
            return True
    return False


def scrub(value):
    """Replace values under secret-looking keys (:func:`is_secret_name`), recursively. Empty values, False and
    numbers are kept (they hold no credential and show that none was set)."""
    if isinstance(value, dict):
        return {k: (MASK if is_secret_name(k) and _value_is_set(v) else scrub(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


def _value_is_set(value) -> bool:
    return value not in (None, "", False) and not isinstance(value, (int, float))


def environment_secrets(environ=None) -> list[str]:
    """The credentials this process can see: values of environment variables with a credential-looking name,
    and the stripped content of the (small) files named by ``<NAME>_FILE`` variables (``OPENAI_API_KEY_FILE``).
    Longest first, so a key that contains another is masked whole."""
    environ = os.environ if environ is None else environ
    found: set[str] = set()
    for name, value in environ.items():
        if name.upper().endswith("_FILE") and is_secret_name(name[: -len("_FILE")]) and value:
            try:
                path = Path(value).expanduser()
                if path.is_file() and path.stat().st_size <= _MAX_KEY_FILE_BYTES:
                    value = path.read_text(encoding="utf-8", errors="replace")
                else:
                    continue
            except OSError:
                continue
        elif not is_secret_name(name):
            continue
        value = value.strip()
        if len(value) >= _MIN_SECRET_LENGTH:
            found.add(value)
    return sorted(found, key=len, reverse=True)


def redact_secrets(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def git_commit() -> str | None:
    root = paths.repo_root()
    if root is None:
        return None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        # Tracked files only: a benchmark writing its results into the checkout must not mark its own later runs dirty.
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def scrub_argv(argv: list[str]) -> list[str]:
    """Command-line values after secret-looking flags (`--hub_token X`, `--api_key=X`) become "***"; other
    flags (`--max_new_tokens_per_turn 16`) are kept as given."""
    out, hide_next = [], False
    for arg in argv:
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        secret = flag.startswith("-") and is_secret_name(flag.lstrip("-"))
        if secret and eq:
            out.append(flag + "=" + MASK)
        else:
            out.append(arg)
            hide_next = secret
    return out


def numerics() -> dict:
    """What decides a run's floating-point results beyond code, data and seed: torch's CPU kernels sum in an order
    set by the thread count and the instruction set they dispatch to (AVX2 / AVX512), so the same seed on another
    count or CPU drifts in the last bits from step 1, and a sampled token flips once the drift crosses a sampling
    boundary (issue 21: a seed that matched window for window to step 130, then ended 0.08 lower). Recorded so two
    runs that disagree can be told apart (docs/demo.md, "Reproducibility")."""
    import torch

    cpu = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), None)
    except OSError:
        pass
    return {
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "env_threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": cpu or platform.processor() or None,
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available()
        else [],
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }


def _as_dict(obj):
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if is_dataclass(obj):
        return asdict(obj)
    return dict(obj)


def write_manifest(output_dir: str | Path, argv: list[str], **sections) -> Path:
    """Write OUTPUT_DIR/run_manifest.json atomically: the command, git commit, platform, package versions and
    each ``sections`` object (a dataclass, a ``to_dict()`` object or a mapping), scrubbed of secrets (module
    docstring)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "created": datetime.now(timezone.utc).isoformat(),
        "command": [sys.executable, "-m", "ground_r1.cli.train_grpo", *scrub_argv(argv)],
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "numerics": numerics(),
        **{name: scrub(_as_dict(obj)) for name, obj in sections.items()},
    }
    text = redact_secrets(json.dumps(manifest, indent=2, default=str), environment_secrets())
    path = output_dir / "run_manifest.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)
    return path
