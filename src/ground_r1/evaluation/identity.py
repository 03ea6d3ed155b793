"""What a prediction depends on: the protocols, the settings of a run, and the identity a resumed run must share.

A killed evaluation resumes at the item where it stopped by appending to the predictions it left
(:mod:`ground_r1.evaluation.predictions`). That is only sound when the new predictions are made exactly as the old
ones: a rerun with another ``--max_pixels`` would otherwise append predictions made at a second resolution to the
first's, and the table would average both. So every setting that changes a prediction is in
:meth:`InferenceConfig.identity`, computed here and nowhere else (both evaluation CLIs build their config with
:func:`inference_config`), and :func:`check_identity` refuses a run whose identity differs from the one recorded in
the folder, naming each differing key with its recorded and its new value.

The identity holds, for every protocol (:data:`COMMON_IDENTITY_KEYS`): the benchmark and its spec's version
(prompts, item fields and parsing change with it), the seed of the order a benchmark shows its options in (V*'s
folder: the prompt changes with it), the protocol, the model, its family (the model config's ``model_type``: the
family owns the image geometry and the default box convention), the weights' dtype, the pixel limits and the
scripted policy a test or demo put in the model's place (``--scripted_policy``; None for every real run, so its
predictions are never mixed with, or taken for, a model's); and the settings the protocol itself uses
(:data:`PROTOCOLS`): the sampling (the per-turn token budget included) of every protocol that generates (V*'s
``likelihood`` scores options and generates nothing), the prompt class of a one-turn run, the turn budget, crop and
box rules of the grounding protocols, and the box convention (``coordinates``) of every protocol that reads or
records a box. A recorded setting the protocol does not use is not compared (the protocol is). ``coordinates`` is the checkpoint's recorded convention (its ``rollout_settings.json``)
or None, the family's default: the family is in the identity, so None names one convention, and folders recorded
before conventions existed (every box then in input pixels) resume. What changes
only a score is not in it (the VisCoT rule column's ``letter_rule``, a judge or grader model): the score stages are
recomputed from the predictions on every run, and each score row records its rule. ``batch_size`` is not in it
either: batches are left-padded and generated greedily (tested equal across batch sizes).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ground_r1.boxes import BOX_PARSE_RULES
from ground_r1.rollout.sampling import EVAL_GREEDY_SAMPLING, SamplingParams

logger = logging.getLogger(__name__)

__all__ = [
    "COMMON_IDENTITY_KEYS",
    "PROTOCOLS",
    "RUN_CONFIG_NAME",
    "InferenceConfig",
    "Protocol",
    "check_identity",
    "inference_config",
    "model_family",
    "protocol",
]

RUN_CONFIG_NAME = "inference_config.json"
NOTES_KEY = "notes"  # recorded beside the identity (where each setting came from, every setting), never compared


@dataclass(frozen=True)
class Protocol:
    """How the model is asked (SPEC §7, §8): ``turns`` says what it sees; ``settings`` are the
    :class:`InferenceConfig` fields its predictions depend on beyond :data:`COMMON_IDENTITY_KEYS`."""

    name: str
    turns: str
    settings: tuple[str, ...]


# What the multi-round rollout's predictions depend on (ground_r1, and the crop loop before V*'s option scoring).
ROLLOUT_SETTINGS = (
    "sampling",
    "max_turns",
    "max_completion_length",
    "min_crop_size",
    "max_aspect_ratio",
    "crop_fallback",
    "box_parse",
    "coordinates",
)

# The protocols of evaluation, one vocabulary for every benchmark (a spec says which it supports,
# BenchmarkSpec.supported_protocols). "baseline" is the one-turn protocol (the release's word; its prompt is the
# benchmark's direct prompt, formatted by the prompt class); "direct", its name in the general benchmarks' CLI until
# they shared one pipeline, is accepted for it (PROTOCOL_ALIASES) and never recorded.
PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            "ground_r1",
            "the multi-round rollout of training (SPEC §2): box -> crop of the original image -> "
            "next round, up to max_turns assistant turns",
            ROLLOUT_SETTINGS,
        ),
        Protocol(
            "baseline",
            "one turn: [image, prompt] with a prompt class of ground_r1.prompt.BASELINE_TEMPLATES",
            ("sampling", "prompt_class"),
        ),
        Protocol(
            "ground_sft",
            "the fixed two turns of SPEC §8: ask for a box, then answer from the crop around it",
            ("sampling", "min_crop_size", "box_parse", "coordinates"),
        ),
        # The prompt does not name a convention, but the record does and its box is scored in it (refcoco.py).
        Protocol("refcoco", "one turn: Qwen's grounding prompt per referring expression", ("sampling", "coordinates")),
        Protocol(
            "likelihood",
            "no generation: [image, question] then each option as the reply, the option with the "
            "lowest mean token loss chosen (V*'s official rule, ground_r1.evaluation.likelihood)",
            (),
        ),
        Protocol(
            "ground_r1_likelihood",
            "the ground_r1 rollout, then each option in place of its last turn, scored "
            "given the final context (the original image and every crop)",
            ROLLOUT_SETTINGS,
        ),
    )
}

PROTOCOL_ALIASES = {"direct": "baseline"}
# The option-likelihood protocols (V*'s official scoring, evaluation/likelihood.py) and the engine each one runs
# first: "likelihood" generates nothing (the one-turn protocol's processor and pixel limits); "ground_r1_likelihood"
# runs the crop loop (its rollout settings). Their predictions' identity is their own protocol's.
LIKELIHOOD_PROTOCOLS = ("likelihood", "ground_r1_likelihood")
_ENGINE_PROTOCOL = {"likelihood": "baseline", "ground_r1_likelihood": "ground_r1"}


def canonical_protocol(name: str) -> str:
    """The protocol ``name`` stands for (``direct`` -> ``baseline``).

    Raises:
        ValueError: an unknown name (the valid ones are listed).
    """
    name = PROTOCOL_ALIASES.get(name, name)
    protocol(name)
    return name


def engine_protocol(name: str) -> str:
    """The protocol of the inference engine running protocol ``name`` (a likelihood protocol's generation, else
    itself).

    Raises:
        ValueError: an unknown name (the valid ones are listed).
    """
    name = canonical_protocol(name)
    return _ENGINE_PROTOCOL.get(name, name)


# Every protocol's predictions depend on these.
COMMON_IDENTITY_KEYS = (
    "benchmark",
    "benchmark_version",
    "option_seed",
    "protocol",
    "model",
    "model_family",
    "dtype",
    "min_pixels",
    "max_pixels",
    "scripted_policy",
)


def protocol(name: str) -> Protocol:
    """The protocol called ``name``.

    Raises:
        ValueError: an unknown name (the valid ones are listed).
    """
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; valid: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


@dataclass(frozen=True)
class InferenceConfig:
    """How predictions are made: everything :meth:`identity` holds, ``batch_size`` and where each setting came
    from (neither changes a prediction)."""

    protocol: str
    benchmark: str = ""  # the benchmark's name (viscot, refcoco, a general benchmark's spec name)
    benchmark_version: str = ""  # its version: bumped when its prompts, item fields or parsing change
    option_seed: int | None = None  # the seed of the per-item option order (V*: the prompt shows options shuffled)
    model: str = ""  # the checkpoint evaluated (a local folder absolute, so a resume from elsewhere matches)
    model_family: str = ""  # the model config's model_type (:func:`model_family`)
    dtype: str = ""  # the weights' dtype as loaded ("float32", "bfloat16"; "" when not recorded)
    prompt_class: str = "only_question"  # baseline only
    sampling: SamplingParams = EVAL_GREEDY_SAMPLING  # max_new_tokens is the per-turn budget (SPEC §2)
    max_turns: int = 5  # ground_r1 (SPEC §2: 5 assistant turns)
    max_completion_length: int | None = None  # ground_r1 total budget; None: per-turn budgets only
    min_crop_size: int = 28  # ground_r1 / ground_sft crops (SPEC §2, §8)
    max_aspect_ratio: float = 200.0  # ground_r1: boxes at or above this aspect ratio are rejected (SPEC §2)
    crop_fallback: str = "full_image"  # ground_r1: no valid box -> the full image (release) or "end"
    min_pixels: int | None = None  # the processor's pixel limits (None: the processor's own)
    max_pixels: int | None = None
    box_parse: str = "tag_first"  # ground_r1 / ground_sft box rule (SPEC §2): "tag_first" (ours) or "release"
    # The box convention (models.families.coordinates.CONVENTIONS); None: the model family's default.
    coordinates: str | None = None
    scripted_policy: str | None = None  # tests only: a scripted policy writes the turns (ground_r1.demo.scripted)
    batch_size: int = 8
    # Where each rollout setting came from ("flag", "checkpoint", "default"): recorded, not part of the identity.
    settings_sources: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        from ground_r1.prompt import baseline_text

        protocol(self.protocol)  # raises on an unknown protocol, listing the valid ones
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.box_parse not in BOX_PARSE_RULES:
            raise ValueError(f"box_parse must be one of {', '.join(BOX_PARSE_RULES)}, got {self.box_parse!r}")
        baseline_text("", self.prompt_class)  # raises on an unknown prompt class, listing the valid ones
        if self.coordinates is not None:
            from ground_r1.models.families.coordinates import check_convention

            check_convention(self.coordinates)  # raises on an unknown convention, listing the valid ones

    def identity(self) -> dict[str, Any]:
        """Every setting that changes this run's predictions (module docstring): the common keys and the
        protocol's own, JSON-ready. A resumed run must have the same."""
        values = asdict(self)
        return {key: values[key] for key in COMMON_IDENTITY_KEYS + PROTOCOLS[self.protocol].settings}

    def notes(self) -> dict[str, Any]:
        """Recorded beside the identity, never compared: every setting of the run (the table header prints the
        rollout settings, those its protocol does not use included) and where each came from."""
        values = json.loads(json.dumps(asdict(self)))
        values.pop("settings_sources")
        values.pop("batch_size")
        return {
            "settings": values,
            **({"settings_sources": dict(self.settings_sources)} if self.settings_sources else {}),
        }


def model_family(model_path: str | os.PathLike[str] | None) -> str:
    """The family of a checkpoint: its config's ``model_type`` (``qwen2_5_vl``), read from the local folder's
    ``config.json``, else through transformers (a hub id, from its cache); "" when none can be read (the model
    loader then reports why, with its context)."""
    if not model_path:
        return ""
    config_file = Path(model_path).expanduser() / "config.json"
    try:
        if config_file.is_file():
            return str(json.loads(config_file.read_text(encoding="utf-8")).get("model_type", ""))
        from transformers import AutoConfig

        return str(AutoConfig.from_pretrained(str(model_path)).model_type)
    except Exception as exc:  # noqa: BLE001 - the loader raises this with its context when it loads the model
        logger.warning("cannot read the model type of %s (%s): the identity records no model family", model_path, exc)
        return ""


def inference_config(
    args: Any,
    *,
    protocol: str,
    benchmark: str = "",
    benchmark_version: str = "",
    option_seed: int | None = None,
    prompt_class: str = "only_question",
) -> InferenceConfig:
    """The config of an evaluation run from its CLI arguments (the flags both evaluation CLIs share), the one
    place an evaluation CLI turns flags into the settings its predictions depend on."""
    import dataclasses

    from ground_r1.models.loading import resolve_dtype

    sampling = dataclasses.replace(
        EVAL_GREEDY_SAMPLING, max_new_tokens=args.max_new_tokens, repetition_penalty=args.repetition_penalty
    )
    local = Path(args.model_path)  # a local folder is recorded absolute, so a resume from elsewhere matches
    model = str(local.resolve()) if local.exists() else str(args.model_path)
    dtype = str(resolve_dtype(getattr(args, "dtype", "auto"))).removeprefix("torch.")
    return InferenceConfig(
        protocol=protocol,
        benchmark=benchmark,
        benchmark_version=benchmark_version,
        option_seed=option_seed,
        model=model,
        model_family=model_family(args.model_path),
        dtype=dtype,
        prompt_class=prompt_class,
        sampling=sampling,
        max_turns=args.max_turns,
        max_completion_length=args.max_completion_length,
        min_crop_size=args.min_crop_size,
        max_aspect_ratio=args.max_aspect_ratio,
        crop_fallback=args.crop_fallback,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        box_parse=args.box_parse,
        coordinates=getattr(args, "coordinates", None),  # the checkpoint's (apply_rollout_settings)
        scripted_policy=getattr(args, "scripted_policy", None),
        batch_size=args.batch_size,
        settings_sources=dict(getattr(args, "settings_sources", {}) or {}),
    )


def check_identity(output_dir: str | os.PathLike[str], config: InferenceConfig) -> None:
    """Refuse to add predictions to a folder holding predictions made with other settings; record the settings
    otherwise (every process writes the same content atomically, so concurrent first writes are harmless). A
    folder whose recorded settings have no predictions yet (a run killed before its first batch) takes the new
    ones.

    Raises:
        ValueError: ``output_dir`` holds predictions made with different settings; each differing key is named
            with its recorded and its new value.
    """
    from ground_r1.evaluation.predictions import prediction_files

    out = Path(output_dir)
    path = out / RUN_CONFIG_NAME
    current = json.loads(json.dumps(config.identity()))
    if path.is_file() and prediction_files(out):
        earlier = json.loads(path.read_text(encoding="utf-8"))
        earlier.pop(NOTES_KEY, None)
        # The current protocol's keys (the protocol among them): a recorded setting it does not use cannot change
        # its predictions (a likelihood folder recorded when every protocol's identity held the sampling resumes).
        diff = sorted(k for k in current if earlier.get(k) != current.get(k))
        if diff:
            detail = "; ".join(f"{k}: {earlier.get(k)!r} -> {current.get(k)!r}" for k in diff)
            raise ValueError(
                f"{out} holds predictions made with other settings ({detail}); use another --output_dir, "
                "or remove its predictions to start over"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    notes = config.notes()
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps({**current, NOTES_KEY: notes}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def run_label(run_dir: str | os.PathLike[str], fallback: str) -> str:
    """A run's name in a table: its recorded protocol (and prompt class), ``fallback`` when it has no record."""
    config_file = Path(run_dir) / RUN_CONFIG_NAME
    if not config_file.is_file():
        return fallback
    config = json.loads(config_file.read_text(encoding="utf-8"))
    return config["protocol"] + (f"[{config['prompt_class']}]" if config.get("prompt_class") else "")
