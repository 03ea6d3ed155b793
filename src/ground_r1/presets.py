"""What a training preset needs of the machine, checked before any work (README "Exit codes").

The release presets (``configs/grpo/{release,paper}.yaml``, ``configs/sft/{ground,vanilla}.yaml``) train in
bf16 mixed precision, which transformers refuses without a CUDA GPU ("Your setup doesn't support bf16/gpu"),
and only after the launcher has picked the preset because ``MODEL_PATH`` or ``DATA_PATH`` was set. On a CPU
machine that message hides the real question (is the data there? is the model right?). :func:`check_preset_for_machine`
reads the preset and the command-line overrides *before* the training arguments are built and refuses a
GPU-only setting with the preset's name, why it needs a GPU, and the setting that runs on CPU.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

# Settings that need a CUDA device, and why (transformers' TrainingArguments checks them at construction).
GPU_ONLY_SETTINGS: dict[str, str] = {
    "bf16": "bf16 mixed precision runs on a CUDA GPU (transformers refuses it on CPU)",
    "fp16": "fp16 mixed precision needs a CUDA GPU (transformers refuses it on CPU)",
    "bf16_full_eval": "bf16 evaluation runs on a CUDA GPU (transformers refuses it on CPU)",
    "fp16_full_eval": "fp16 evaluation needs a CUDA GPU (transformers refuses it on CPU)",
    "tf32": "TF32 matmuls exist on Ampere+ CUDA GPUs only",
}
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


class PresetMachineError(RuntimeError):
    """A preset or flag asks for something this machine does not have (a configuration error: exit 1)."""


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def _flag_value(argv: Sequence[str], name: str, boolean: bool = True) -> tuple[bool, Any]:
    """(given, value) of ``--name`` on a command line in TRL's conventions: ``--name v``, ``--name=v``, or, for
    a ``boolean`` flag, a bare ``--name`` (True). The last occurrence wins, as in argparse."""
    found, value = False, None
    for i, token in enumerate(argv):
        if token == f"--{name}":
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if boolean:
                found, value = True, (nxt if nxt is not None and _as_bool(nxt) is not None else True)
            else:
                found, value = True, nxt
        elif token.startswith(f"--{name}="):
            found, value = True, token.split("=", 1)[1]
    return found, value


def _preset(argv: Sequence[str]) -> tuple[str | None, dict[str, Any]]:
    given, path = _flag_value(argv, "config", boolean=False)
    if not given or not isinstance(path, str):
        return None, {}
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise PresetMachineError(f"preset not found: --config {path} ({exc.strerror or exc})") from None
    return path, data if isinstance(data, dict) else {}


def _display(path: str) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return path


def gpu_only_settings(argv: Sequence[str]) -> tuple[str | None, list[tuple[str, str]]]:
    """(preset path, [(setting, where it is set)]) of the GPU-only settings a command line turns on."""
    path, preset = _preset(argv)
    found = []
    for name in GPU_ONLY_SETTINGS:
        given, value = _flag_value(argv, name)
        if given:
            if _as_bool(value):
                found.append((name, f"--{name} {value}".replace(" True", "")))
        elif _as_bool(preset.get(name)):
            found.append((name, f"{_display(path)}: {name}: true"))
    _, use_cpu = _flag_value(argv, "use_cpu")
    if _as_bool(use_cpu) or _as_bool(preset.get("use_cpu")):
        found = [(n, w) for n, w in found if n not in ("bf16", "bf16_full_eval")]  # CPU bf16 autocast was asked for
    return path, found


def check_preset_for_machine(
    argv: Sequence[str],
    *,
    launcher: str,
    cpu_preset: str,
    has_gpu: Callable[[], bool] | None = None,
) -> None:
    """Refuse, before any work, a command line whose preset or flags need a GPU on a machine without one.

    ``launcher``: the command to show in the fix (``bash scripts/run_grpo_video.sh``); ``cpu_preset``: the CPU
    preset to name (``configs/grpo/tiny_cpu.yaml``); ``has_gpu``: the machine check (default: CUDA visible).

    Raises:
        PresetMachineError: naming the preset, each GPU-only setting, why it needs a GPU, and what runs on CPU.
    """
    path, found = gpu_only_settings(argv)
    if not found:
        return
    if has_gpu is None:
        import torch

        def has_gpu() -> bool:
            return torch.cuda.is_available()

    if has_gpu():
        return
    preset = f"the preset {_display(path)}" if path else "the command line"
    settings = "; ".join(f"{where} ({GPU_ONLY_SETTINGS[name]})" for name, where in found)
    overrides = " ".join(f"--{name} false" for name, _ in found)
    raise PresetMachineError(
        f"{preset} needs a GPU and this machine has none (no CUDA device visible): {settings}. To run on CPU, "
        f"add `{overrides}` (`{launcher} {overrides}`: the preset's other settings are kept), or use the CPU "
        f"preset CONFIG={cpu_preset}"
    )
