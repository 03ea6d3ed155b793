"""The rollout settings a checkpoint carries, so that evaluation sees the world as training did (issue 17).

A policy trained at a 112-px view, 48 tokens and 3 turns per trajectory and evaluated at 448 px and 512 tokens is
shown images and budgets it never met (its turns come out as digit strings). So every folder a GRPO run saves (the
final folder and each ``checkpoint-N``) holds ``rollout_settings.json``:

    {"coordinates": "input_pixels", "model_family": "qwen2_5_vl",
     "settings": {"max_turns": 3, "max_new_tokens_per_turn": 48, ...},
     "eval_max_new_tokens_per_turn": null, "eval_repetition_penalty": 1.05, "written_by": "ground_r1 ..."}

``settings`` holds the values of :data:`ROLLOUT_KEYS` (the one list of rollout settings; the CLIs map their flags
onto it with :data:`EVAL_FLAGS`); ``coordinates`` names the frame the model writes its boxes in (``input_pixels``,
absolute pixels of the smart-resized input image, SPEC §2; ``relative_1000``, the 0-1000 grid of Qwen2-VL /
Qwen3-VL / Qwen3.5; ``ground_r1.models.families.coordinates``): evaluation maps boxes in the convention training
used. ``model_family`` (absent in files written before families) must match the checkpoint's config.json. Evaluation reads the file and uses each value unless a flag sets it
(:func:`resolve_eval_settings`), and says where each value came from.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping

logger = logging.getLogger(__name__)

SETTINGS_NAME = "rollout_settings.json"
COORDINATES = "input_pixels"  # files written before families: boxes in absolute pixels of the input (SPEC §2)

# The rollout settings that decide what a policy sees and may write (GroundR1Config field names), and the rules
# training read its turns with (issue 16): ``box_parse``, how a turn's box is read (it decides the crop), and
# ``letter_rule``, the option-letter rule the accuracy reward used (it decides what VisCoT's rule column scores).
ROLLOUT_KEYS = (
    "max_turns",
    "max_new_tokens_per_turn",
    "max_completion_length",
    "min_pixels",
    "max_pixels",
    "min_crop_size",
    "max_aspect_ratio",
    "crop_fallback",
    "box_parse",
    "letter_rule",
)

# Evaluation's values when neither a checkpoint nor a flag gives one (SPEC §2, the release's settings; issue 16's
# default rules).
EVAL_DEFAULTS: dict[str, Any] = {
    "max_turns": 5,
    "max_new_tokens_per_turn": 512,
    "max_completion_length": None,
    "min_pixels": 3136,
    "max_pixels": 401408,
    "min_crop_size": 28,
    "max_aspect_ratio": 200.0,
    "crop_fallback": "full_image",
    "box_parse": "tag_first",
    "letter_rule": "spec",
}

# Evaluation CLI flag (argparse dest) -> rollout key (``--letter_rule``: the VisCoT CLI only; the general
# benchmarks score by their references' rules).
EVAL_FLAGS: dict[str, str] = {
    "max_turns": "max_turns",
    "max_new_tokens": "max_new_tokens_per_turn",
    "max_completion_length": "max_completion_length",
    "min_pixels": "min_pixels",
    "max_pixels": "max_pixels",
    "min_crop_size": "min_crop_size",
    "max_aspect_ratio": "max_aspect_ratio",
    "crop_fallback": "crop_fallback",
    "box_parse": "box_parse",
    "letter_rule": "letter_rule",
}


class RolloutSettingsError(ValueError):
    """A checkpoint's rollout_settings.json cannot be used (the message names the file and the field)."""


def settings_of(config: Any) -> dict[str, Any]:
    """The :data:`ROLLOUT_KEYS` values of a GroundR1Config (or of any object or mapping holding them)."""
    get = config.get if isinstance(config, Mapping) else lambda k: getattr(config, k)
    return {key: get(key) for key in ROLLOUT_KEYS}


def write_settings(
    folder: str | os.PathLike[str], config: Any, coordinates: str = COORDINATES, model_family: str | None = None
) -> Path:
    """Write ``folder/rollout_settings.json`` (atomically) from a GroundR1Config, the box convention training
    used and the model family (the trainer's codec's)."""
    from ground_r1 import __version__

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    content = {
        "coordinates": coordinates,
        **({"model_family": model_family} if model_family else {}),
        "settings": settings_of(config),
        "eval_max_new_tokens_per_turn": getattr(config, "eval_max_new_tokens_per_turn", None),
        "eval_repetition_penalty": getattr(config, "eval_repetition_penalty", None),
        "written_by": f"ground_r1 {__version__} GRPO training",
    }
    path = folder / SETTINGS_NAME
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_settings(model_path: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """The checkpoint's settings as evaluation uses them (rollout keys, the evaluation per-turn budget applied),
    or None when ``model_path`` is not a local folder holding the file (a hub id, a base model).

    Raises:
        RolloutSettingsError: the file is not JSON, names another coordinate convention, or holds a key or value
            evaluation cannot use (file and field named).
    """
    if model_path is None:
        return None
    path = Path(model_path).expanduser() / SETTINGS_NAME
    if not path.is_file():
        return None
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RolloutSettingsError(
            f"{path}: not readable as JSON ({exc}); delete it to evaluate with flags only"
        ) from None
    if not isinstance(content, dict) or not isinstance(content.get("settings"), dict):
        raise RolloutSettingsError(f"{path}: expected an object with a 'settings' object")
    from ground_r1.models.families import FamilyError, family_of_checkpoint
    from ground_r1.models.families.coordinates import CONVENTIONS

    if content.get("coordinates") not in CONVENTIONS:
        raise RolloutSettingsError(
            f"{path}: coordinates: {content.get('coordinates')!r}; expected one of {', '.join(CONVENTIONS)}"
        )
    recorded_family = content.get("model_family")
    if recorded_family is not None:
        try:
            family = family_of_checkpoint(model_path).name
        except FamilyError as exc:
            raise RolloutSettingsError(f"{path}: model_family {recorded_family!r} cannot be checked: {exc}") from None
        if family != recorded_family:
            raise RolloutSettingsError(
                f"{path}: model_family: {recorded_family!r}, but the checkpoint's config.json is {family!r}; the "
                "settings belong to another model"
            )
    settings = content["settings"]
    unknown = sorted(set(settings) - set(ROLLOUT_KEYS))
    if unknown:
        raise RolloutSettingsError(f"{path}: settings: unknown key(s) {unknown}; known: {', '.join(ROLLOUT_KEYS)}")
    out = {k: settings[k] for k in ROLLOUT_KEYS if k in settings}
    if content.get("eval_max_new_tokens_per_turn"):
        out["max_new_tokens_per_turn"] = content["eval_max_new_tokens_per_turn"]
    return out


def checkpoint_coordinates(model_path: str | os.PathLike[str] | None) -> str | None:
    """The box convention a checkpoint was trained in, when its settings file records its model family (files
    written before families: None, i.e. the family's default, which was ``input_pixels`` for every one of them).
    The file is checked by :func:`read_settings` first.

    Raises:
        RolloutSettingsError: as :func:`read_settings`.
    """
    if read_settings(model_path) is None:
        return None
    content = json.loads((Path(model_path).expanduser() / SETTINGS_NAME).read_text(encoding="utf-8"))
    return content["coordinates"] if content.get("model_family") else None


def preset_settings(config_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The :data:`ROLLOUT_KEYS` values a GRPO preset YAML sets (others left out)."""
    import yaml

    raw = yaml.safe_load(Path(config_path).read_text(encoding="utf-8")) or {}
    return {k: raw[k] for k in ROLLOUT_KEYS if k in raw}


def resolve_eval_settings(
    flags: Mapping[str, Any],
    checkpoint: Mapping[str, Any] | None,
    fallback: Mapping[str, Any] | None = None,
    keys: tuple[str, ...] = ROLLOUT_KEYS,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Each rollout key's value and its source: a flag that was given (``flags``, None = not given) wins, then the
    checkpoint's settings, then ``fallback`` (e.g. the demo model's budgets), then :data:`EVAL_DEFAULTS`.
    ``keys``: the keys the calling CLI has flags for (default all).

    Returns ``(values, sources)``, sources being "flag", "checkpoint", "demo default" / "default".
    """
    values, sources = {}, {}
    fallback = fallback or {}
    for key in keys:
        if flags.get(key) is not None:
            values[key], sources[key] = flags[key], "flag"
        elif checkpoint is not None and key in checkpoint:
            values[key], sources[key] = checkpoint[key], "checkpoint"
        elif key in fallback:
            values[key], sources[key] = fallback[key], "demo default"
        else:
            values[key], sources[key] = EVAL_DEFAULTS[key], "default"
    return values, sources


def describe(values: Mapping[str, Any], sources: Mapping[str, str], model_path: str | None = None) -> str:
    """One header line: ``max_turns=3 (checkpoint), max_new_tokens_per_turn=48 (checkpoint), ...``."""
    parts = ", ".join(f"{k}={values[k]} ({sources[k]})" for k in ROLLOUT_KEYS if k in values)
    origin = (
        f"; 'checkpoint' = {Path(model_path) / SETTINGS_NAME}, the settings the model was trained with"
        if model_path and "checkpoint" in sources.values()
        else ""
    )
    return f"rollout settings: {parts}{origin}"


def run_header(run_dir: str | os.PathLike[str]) -> str | None:
    """The table header line of an evaluation run: its rollout settings and where they came from, read from the
    run's ``inference_config.json`` (None when the run has none)."""
    path = Path(run_dir) / "inference_config.json"
    if not path.is_file():
        return None
    recorded = json.loads(path.read_text(encoding="utf-8"))
    notes = recorded.get("notes") or {}
    sources = notes.get("settings_sources") or {}
    config = notes.get("settings") or recorded  # every setting (the identity holds only those the protocol uses)
    values = {
        "max_turns": config.get("max_turns"),
        "max_new_tokens_per_turn": (config.get("sampling") or {}).get("max_new_tokens"),
        "max_completion_length": config.get("max_completion_length"),
        "min_pixels": config.get("min_pixels"),
        "max_pixels": config.get("max_pixels"),
        "min_crop_size": config.get("min_crop_size"),
        "max_aspect_ratio": config.get("max_aspect_ratio"),
        "crop_fallback": config.get("crop_fallback"),
    }
    if config.get("protocol") in (
        "ground_r1",
        "ground_sft",
    ):  # runs recorded before box_parse was recorded: the default
        values["box_parse"] = config.get("box_parse", EVAL_DEFAULTS["box_parse"])
    by_source: dict[str, list[str]] = {}
    for key, value in values.items():
        if value is not None or key in sources:
            by_source.setdefault(sources.get(key, "recorded"), []).append(f"{key}={value}")
    names = {
        "checkpoint": f"from the checkpoint's {SETTINGS_NAME} (as trained)",
        "flag": "from flags",
        "default": "SPEC §2 defaults",
        "demo default": "demo defaults",
        "recorded": "as recorded",
    }
    parts = [f"{names.get(src, src)}: {', '.join(items)}" for src, items in by_source.items()]
    if config.get("coordinates"):  # the box convention training used, from the checkpoint (None: the family's)
        parts.append(f"box convention {config['coordinates']} (the checkpoint's)")
    model = str(config.get("model"))
    if config.get("scripted_policy"):  # tests only: a scripted run's table is never taken for the model's
        model += f" (scripted policy {config['scripted_policy']})"
    return f"Rollout settings ({config.get('protocol')} protocol, model {model}): " + "; ".join(parts)
