"""Distributed-run helpers: the gloo state for multi-process CPU runs, and a launch-free DeepSpeed config check.

The shipped DeepSpeed configs (configs/deepspeed/) leave every value the HF Trainer owns as "auto" (batch sizes,
gradient accumulation, gradient clipping, bf16/fp16, hidden-size based bucket sizes), so the preset YAML is the one
place those numbers live (SPEC §5: per-device batch, grad accum 1, max_grad_norm 5, bf16). zero2.json and zero3.json
carry no "optimizer" or "scheduler" section on purpose: the Trainer then builds AdamW with weight decay 0 and the
linear decay of SPEC §5 itself; a DeepSpeed "scheduler" section would silently replace that schedule.
zero3_offload.json names an AdamW optimizer because DeepSpeed refuses a client optimizer under ZeRO-Offload (it
swaps in its CPU Adam); the learning-rate schedule still comes from the Trainer.

Why a validator: DeepSpeed reads the JSON only after the processes have started and the model is loaded, and it
silently ignores unknown top-level keys (a typo such as "zero_optimisation" trains without ZeRO). Checking through
DeepSpeed's own config classes at test time catches both without launching anything.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import json
import logging
import os
import types
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Qwen2.5-VL-7B's text hidden size (SPEC §5 model): the HF integration sizes the ZeRO buckets from it.
DEFAULT_HIDDEN_SIZE = 3584

# Top-level keys DeepSpeed reads outside `DeepSpeedConfig.__init__` on a single process (sequence parallelism is
# read only once torch.distributed is up), so the read-tracking check below must not call them unknown.
_KEYS_READ_OUTSIDE_CONFIG = frozenset({"sequence_parallel_size"})


# -- end of a multi-process run -----------------------------------------------------------------------------------


def finish_distributed() -> None:
    """Every rank waits for rank 0's final writes, then the process group is torn down. Without it a rank that
    finished first exited while rank 0 still wrote the model."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def exit_process(code: int) -> None:
    """End a training CLI with ``code``. Under a multi-process launch (``WORLD_SIZE`` > 1) the process ends with
    ``os._exit`` after flushing logs and streams, skipping the interpreter teardown: there a native thread of the
    communication stack can still be joinable and C++ aborts ("terminate called without an active exception",
    SIGABRT) after every result is written, so a finished run exited non-zero (measured: a 2-process ZeRO-3/gloo
    CPU run, rank 1, after "total time", with finish_distributed already done). Single-process runs exit normally."""
    import sys

    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


# -- multi-process CPU ---------------------------------------------------------------------------------------------


def init_cpu_gloo_state() -> bool:
    """Create `accelerate.PartialState(backend="gloo")` when this is one of several processes on a machine without
    CUDA; return whether it was created here.

    Why (ENVIRONMENT.md, "DeepSpeed ZeRO-3 on CPU"): under `accelerate launch` with DeepSpeed on CPU, the state
    the training arguments build on their own asks DeepSpeed for its CPU communication backend (oneCCL, absent),
    and accelerate then reports one process so the batch check fails. The state must exist before the training
    arguments are built, and they must reuse it: set `accelerator_config={"use_configured_state": True}` when
    this returns True. Single-process runs and GPU runs are left alone (returns False).

    Raises:
        ValueError: WORLD_SIZE is set but is not an integer.
        RuntimeError: a PartialState already exists with another backend (it was built before this call, e.g.
            by creating the training arguments first).
    """
    raw = os.environ.get("WORLD_SIZE", "1")
    try:
        world_size = int(raw)
    except ValueError:
        raise ValueError(
            f"WORLD_SIZE={raw!r} is not an integer; it is set by the launcher (accelerate/torchrun)"
        ) from None
    if world_size <= 1:
        return False

    import torch

    if torch.cuda.is_available():
        return False

    from accelerate import PartialState

    if PartialState._shared_state:  # already configured in this process
        backend = PartialState().backend
        if backend != "gloo":
            raise RuntimeError(
                f"an accelerate PartialState already exists with backend {backend!r}, but a multi-process CPU run "
                "needs gloo: call ground_r1.distributed.init_cpu_gloo_state() before building the training arguments"
            )
        return False
    state = PartialState(backend="gloo")
    logger.info(
        "multi-process CPU run: accelerate state on gloo, process %d of %d", state.process_index, state.num_processes
    )
    return True


# -- DeepSpeed config validation -----------------------------------------------------------------------------------


def _load_json_strict(path: Path) -> dict[str, Any]:
    """JSON object from `path`; duplicate keys are an error (json.load would keep the last one silently)."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise ValueError(f"{path}: key {key!r} appears twice in one object; keep one")
            seen[key] = value
        return seen

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the DeepSpeed config ({exc.strerror}); check the path") from exc
    try:
        loaded = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from exc
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a DeepSpeed config is a JSON object, got {type(loaded).__name__}")
    return loaded


def _training_args_like(
    *, train_batch_size_hint: int, gradient_accumulation_steps: int, bf16: bool
) -> types.SimpleNamespace:
    """The attributes `HfTrainerDeepSpeedConfig` reads from `TrainingArguments`, at the Trainer's own defaults.

    Built from the dataclass defaults rather than an instance: constructing `TrainingArguments` sets up the
    process state (and, with a DeepSpeed config, the distributed backend), which a check must not do. World
    size is 1 because `DeepSpeedConfig` without torch.distributed checks the batch product against one process.
    """
    from transformers import TrainingArguments

    fields = dataclasses.fields(TrainingArguments)
    defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
    args = types.SimpleNamespace(**defaults)
    args.world_size = 1
    args.per_device_train_batch_size = train_batch_size_hint
    args.gradient_accumulation_steps = gradient_accumulation_steps
    args.bf16 = bf16
    args.get_warmup_steps = functools.partial(TrainingArguments.get_warmup_steps, args)
    return args


def _auto_paths(node: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every value still equal to "auto"."""
    if isinstance(node, dict):
        return [p for key, value in node.items() for p in _auto_paths(value, f"{prefix}{key}.")]
    return [prefix[:-1]] if node == "auto" else []


def fill_deepspeed_auto_values(
    config: dict[str, Any],
    *,
    train_batch_size_hint: int = 1,
    gradient_accumulation_steps: int = 1,
    bf16: bool = False,
    hidden_size: int = DEFAULT_HIDDEN_SIZE,
    num_training_steps: int = 100,
) -> dict[str, Any]:
    """A copy of `config` with its "auto" values filled exactly as the HF Trainer fills them.

    Runs `HfTrainerDeepSpeedConfig.trainer_config_process` (batch sizes, clipping, precision, optimizer params)
    and `trainer_config_finalize` (bucket sizes from `hidden_size`, scheduler steps) on Trainer-default arguments,
    with `train_batch_size_hint` as the per-process micro-batch (TRL counts completions) and world size 1, so
    `train_batch_size` becomes `train_batch_size_hint * gradient_accumulation_steps`.

    Raises:
        ValueError: a non-"auto" value disagrees with the training arguments (the HF integration's mismatch error).
    """
    from transformers.integrations import deepspeed as hf_ds

    args = _training_args_like(
        train_batch_size_hint=train_batch_size_hint, gradient_accumulation_steps=gradient_accumulation_steps, bf16=bf16
    )
    model = types.SimpleNamespace(config=types.SimpleNamespace(hidden_size=hidden_size))
    # HfDeepSpeedConfig registers itself as the process-wide config (is_deepspeed_zero3_enabled() reads it, and
    # from_pretrained then builds models under zero.Init): restore whatever was registered before.
    previous = hf_ds._hf_deepspeed_config_weak_ref
    try:
        hf_config = hf_ds.HfTrainerDeepSpeedConfig(copy.deepcopy(config))
        hf_config.trainer_config_process(args)
        hf_config.trainer_config_finalize(args, model, num_training_steps)
        return hf_config.config
    finally:
        hf_ds._hf_deepspeed_config_weak_ref = previous


class _ReadTrackingDict(dict):
    """A dict that records which keys are looked up, so unknown top-level keys can be found from DeepSpeed's reads.

    `DeepSpeedConfig` shallow-copies its input (`copy.copy` keeps this class and shares `_read`) and looks keys up
    with `get`, `[]`, `in` and `in .keys()`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self._read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self._read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self._read.add(key)
        return super().__contains__(key)

    def keys(self) -> _TrackedKeys:  # type: ignore[override]
        return _TrackedKeys(self)


class _TrackedKeys:
    def __init__(self, owner: _ReadTrackingDict) -> None:
        self._owner = owner

    def __contains__(self, key: object) -> bool:
        return key in self._owner

    def __iter__(self):
        return iter(dict.keys(self._owner))

    def __len__(self) -> int:
        return len(self._owner)


def _run_deepspeed_config(filled: dict[str, Any]) -> set[str]:
    """Construct `deepspeed.runtime.config.DeepSpeedConfig` on `filled`; return the top-level keys it read."""
    from deepspeed.runtime.config import DeepSpeedConfig

    tracked = _ReadTrackingDict(filled)
    DeepSpeedConfig(tracked)
    return tracked._read


@functools.lru_cache(maxsize=1)
def _keys_deepspeed_reads() -> frozenset[str]:
    """Top-level keys DeepSpeed looks up when it parses a minimal config, plus the few read elsewhere; empty when
    the tracking does not see DeepSpeed's reads (the key check is then skipped rather than guessed)."""
    minimal = {"train_batch_size": 1, "train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1}
    read = _run_deepspeed_config(minimal)
    if "train_micro_batch_size_per_gpu" not in read:
        logger.debug("DeepSpeedConfig did not read through the tracked dict; top-level key check skipped")
        return frozenset()
    return frozenset(read | _KEYS_READ_OUTSIDE_CONFIG)


def validate_deepspeed_config(
    path: str | os.PathLike[str],
    *,
    train_batch_size_hint: int = 1,
    gradient_accumulation_steps: int = 1,
    bf16: bool = False,
    hidden_size: int = DEFAULT_HIDDEN_SIZE,
) -> None:
    """Check a DeepSpeed JSON the way a launch would read it, without launching.

    Fills the "auto" values through the HF integration (`fill_deepspeed_auto_values`), then builds DeepSpeed's
    own `DeepSpeedConfig`, which rejects unknown keys inside its sections (zero_optimization, bf16, ...), bad
    types and inconsistent batch sizes. Two checks DeepSpeed does not make are added: no "auto" may survive the
    filling (the HF integration fills only the keys it knows; DeepSpeed would get the string), and every
    top-level key must be one DeepSpeed reads (it ignores the others silently). Importing deepspeed picks its
    accelerator: set DS_ACCELERATOR=cpu on machines without a GPU.

    Raises:
        ValueError: naming `path` and what is wrong (DeepSpeed's own message when DeepSpeed rejects it).
        ImportError: deepspeed is not installed.
    """
    path = Path(path)
    config = _load_json_strict(path)
    try:
        import deepspeed  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "validating a DeepSpeed config needs deepspeed (pinned in ../shared/ENVIRONMENT.md: "
            "DS_BUILD_OPS=0 pip install deepspeed==0.19.8)"
        ) from exc
    from deepspeed.runtime.config import DeepSpeedConfigError

    try:
        filled = fill_deepspeed_auto_values(
            config,
            train_batch_size_hint=train_batch_size_hint,
            gradient_accumulation_steps=gradient_accumulation_steps,
            bf16=bf16,
            hidden_size=hidden_size,
        )
    except ValueError as exc:
        raise ValueError(f"{path}: the HF integration cannot fill this config: {exc}") from exc

    known = _keys_deepspeed_reads()
    # Keys a minimal config does not make DeepSpeed read; confirmed unknown below unless this config's parse reads
    # them (some reads are conditional). "auto" under them is their problem, not a separate one.
    candidates = set(filled) - known if known else set()
    _raise_on_auto(path, [p for p in _auto_paths(filled) if p.split(".")[0] not in candidates])

    try:
        read = _run_deepspeed_config(filled)
    except (AssertionError, ValueError, TypeError, KeyError, DeepSpeedConfigError) as exc:
        raise ValueError(f"{path}: DeepSpeed rejected this config: {type(exc).__name__}: {exc}") from exc

    _raise_on_auto(path, [p for p in _auto_paths(filled) if p.split(".")[0] in candidates & read])
    unknown = sorted(candidates - read)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(
            f"{path}: top-level key(s) {', '.join(hints)} are not DeepSpeed config keys; DeepSpeed would ignore "
            "them silently. Fix or remove them (keys: https://www.deepspeed.ai/docs/config-json/)"
        )


def _raise_on_auto(path: Path, left: list[str]) -> None:
    if left:
        raise ValueError(
            f"{path}: {', '.join(left)} still 'auto' after the HF integration filled the config; it only fills "
            "batch sizes, gradient_clipping, fp16/bf16.enabled, optimizer/scheduler params and the hidden-size "
            "bucket sizes: write a number for the others"
        )
