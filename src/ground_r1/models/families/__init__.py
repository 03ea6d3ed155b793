"""Model families: one module per family, chosen from the checkpoint's ``config.json`` ``model_type``, never from
its name (DESIGN.md "A model family is one module"; a test keeps family-specific names out of the rest of the code).

    family_of_checkpoint("/models/Qwen3-VL-8B-Instruct")   # reads config.json: model_type "qwen3_vl"
    family.geometry(processor, model.config)              # patch / merge size read from the processor, checked
    box_frame(codec.coordinates, input_size)              # the frame boxes are written in (coordinates.py)

Families: ``qwen2_vl`` (Qwen2-VL), ``qwen2_5_vl`` (Qwen2.5-VL, the paper's), ``qwen3_vl`` (Qwen3-VL, dense and
MoE), ``qwen3_5`` (Qwen3.5, dense and MoE). A new family is one new module with a :class:`ModelFamily` subclass,
registered in :data:`FAMILIES`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ground_r1.models.families.base import FamilyError, Geometry, ImageFeatures, ModelFamily
from ground_r1.models.families.qwen2_5_vl import FAMILY as QWEN2_5_VL
from ground_r1.models.families.qwen2_vl import FAMILY as QWEN2_VL
from ground_r1.models.families.qwen3_5 import FAMILY as QWEN3_5
from ground_r1.models.families.qwen3_vl import FAMILY as QWEN3_VL

FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (QWEN2_VL, QWEN2_5_VL, QWEN3_VL, QWEN3_5)}
_BY_MODEL_TYPE: dict[str, ModelFamily] = {t: f for f in FAMILIES.values() for t in f.model_types}
# The paper's family, and the embedded default model's (the tiny offline Qwen2.5-VL).
DEFAULT_FAMILY = QWEN2_5_VL.name
# Where a processor built by this project records its family (models.loading.load_processor, the tiny builder).
PROCESSOR_ATTRIBUTE = "ground_r1_family"


def get_family(name: str) -> ModelFamily:
    """The family of a family name or of any config ``model_type`` it serves.

    Raises:
        FamilyError: an unknown name (the known families and model types are listed).
    """
    family = FAMILIES.get(name) or _BY_MODEL_TYPE.get(name)
    if family is None:
        known = ", ".join(f"{f.name} ({f.title}: model_type {'/'.join(f.model_types)})" for f in FAMILIES.values())
        raise FamilyError(f"unknown model family or model_type {name!r}; known: {known}")
    return family


def family_of_config(config: Any, where: str = "the model config") -> ModelFamily:
    """The family of a transformers config (or a ``config.json`` dict), from its ``model_type``."""
    model_type = config.get("model_type") if isinstance(config, dict) else getattr(config, "model_type", None)
    if not model_type:
        raise FamilyError(f"{where}: no model_type; cannot tell the model family")
    try:
        return get_family(str(model_type))
    except FamilyError as exc:
        raise FamilyError(f"{where}: {exc}") from None


def family_of_checkpoint(model_path: str | os.PathLike[str], *, trust_remote_code: bool = False) -> ModelFamily:
    """The family of a checkpoint: its ``config.json`` ``model_type`` (a local folder is read directly; a hub id goes
    through ``AutoConfig``). The folder's name plays no part."""
    config_file = Path(model_path).expanduser() / "config.json"
    if config_file.is_file():
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise FamilyError(f"{config_file}: not readable as JSON ({exc})") from None
        return family_of_config(config, where=str(config_file))
    from transformers import AutoConfig

    return family_of_config(
        AutoConfig.from_pretrained(str(model_path), trust_remote_code=trust_remote_code), where=f"{model_path} (config)"
    )


def family_of_model(model: Any) -> ModelFamily:
    """The family of a loaded model (through PEFT / DDP / DeepSpeed wrappers), from its config's ``model_type``."""
    for candidate in (
        model,
        getattr(model, "module", None),
        getattr(getattr(model, "base_model", None), "model", None),
    ):
        config = getattr(candidate, "config", None)
        if config is not None and getattr(config, "model_type", None):
            return family_of_config(config, where=f"{type(candidate).__name__}.config")
    raise FamilyError(f"{type(model).__name__} has no config with a model_type; cannot tell its family")


def attach_family(processor: Any, family: ModelFamily) -> Any:
    """Record ``family`` on a processor (what :func:`family_of_processor` reads back)."""
    setattr(processor, PROCESSOR_ATTRIBUTE, family.name)
    return processor


def family_of_processor(processor: Any) -> ModelFamily:
    """The family a processor was loaded for (recorded by ``models.loading.load_processor`` and the tiny builder).
    A processor made elsewhere is recognised by its class where one class serves one family.

    Raises:
        FamilyError: a processor with no recorded family whose class serves several (Qwen3VLProcessor serves
            Qwen3-VL and Qwen3.5) or none.
    """
    name = getattr(processor, PROCESSOR_ATTRIBUTE, None)
    if name:
        return get_family(name)
    classes = {c.__name__ for c in type(processor).__mro__}
    matches = [f for f in FAMILIES.values() if f.processor_class_name in classes]
    if len(matches) == 1:
        return matches[0]
    raise FamilyError(
        f"cannot tell the model family of a {type(processor).__name__} ("
        + (f"it serves {', '.join(f.title for f in matches)}" if matches else "no family uses it")
        + "); load it with ground_r1.models.loading.load_processor(MODEL_PATH), which reads config.json"
    )


__all__ = [
    "DEFAULT_FAMILY",
    "FAMILIES",
    "FamilyError",
    "Geometry",
    "ImageFeatures",
    "ModelFamily",
    "PROCESSOR_ATTRIBUTE",
    "attach_family",
    "family_of_checkpoint",
    "family_of_config",
    "family_of_model",
    "family_of_processor",
    "get_family",
]
