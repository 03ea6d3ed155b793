"""What a model family is to this project: :class:`ModelFamily` (one subclass instance per family module).

A family owns, for the checkpoints whose ``config.json`` names one of its ``model_types``:

- the transformers classes (model, processor) and how the CPU processor is assembled without a video processor;
- geometry: patch, merge and temporal patch size, READ from the processor and checked against the model's vision
  config (:meth:`ModelFamily.geometry`); the released checkpoints' values are only a reference for docs and the
  tiny builder (``reference_geometry``), never a default;
- the default box coordinate convention (``coordinates``: :mod:`.coordinates`);
- the vision tower and projector to freeze (SPEC §5);
- forward specifics: the image features a precomputed-feature call needs (Qwen3-VL's deepstack features), and
  whether the loss pass may pack trajectories into one row (``packed_loss_problem``);
- the chat template to fall back on when a checkpoint ships none (a name in ``trl.chat_template_utils``);
- RefCOCO: the family's native free-form box syntax, if it has one besides ``[x1,y1,x2,y2]``.

Nothing here imports torch or transformers at module import: the registry is read by CLIs before they load any
model.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

logger = logging.getLogger(__name__)


class FamilyError(ValueError):
    """A checkpoint, processor or model that does not fit its family (the message says what and where)."""


@dataclass(frozen=True)
class Geometry:
    """Image geometry of a processor: input sides are multiples of ``factor = patch_size * merge_size``; one LM image
    token covers ``factor x factor`` input pixels."""

    patch_size: int
    merge_size: int
    temporal_patch_size: int = 2

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    @property
    def pixels_per_token(self) -> int:
        return self.factor * self.factor


def _positive_int(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, (list, tuple)) and len(set(value)) == 1:  # patch_size may be given per axis
        value = value[0]
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 1 and number == value else None


@dataclass(frozen=True)
class ImageFeatures:
    """One image's vision-tower output as the LM consumes it: ``[tokens, hidden]`` features, plus Qwen3-VL's
    deepstack features (one ``[tokens, hidden]`` tensor per deepstack layer; empty for other families)."""

    pooled: Any
    deepstack: tuple = ()


class ModelFamily:
    """A model family (subclassed once per family module; see the module docstring)."""

    name: ClassVar[str]  # the canonical config model_type
    title: ClassVar[str]  # for people: "Qwen2.5-VL"
    model_classes: ClassVar[dict[str, str]]  # config model_type -> transformers ForConditionalGeneration class
    processor_class_name: ClassVar[str]
    coordinates: ClassVar[str]  # the default coordinate convention (a name of coordinates.CONVENTIONS)
    coordinates_evidence: ClassVar[str]  # where the default comes from (docs/model_families.md repeats it)
    reference_geometry: ClassVar[Geometry]  # the released checkpoints' (docs, tiny builder); never a default
    chat_template: ClassVar[str]  # trl.chat_template_utils name used when a checkpoint ships no template
    # SFT renders with this trl.chat_template_utils template when the stock one is not prefix-stable (None: the
    # checkpoint's own template)
    training_chat_template: ClassVar[Optional[str]] = None
    projector_prefixes: ClassVar[tuple[str, ...]] = ("merger.",)  # names under the vision tower = the projector
    packed_loss_problem: ClassVar[Optional[str]] = None  # why padding-free packing is not exact (None: it is)
    native_box_pattern: ClassVar[Optional[str]] = None  # RefCOCO: a free-form box syntax besides [x1,y1,x2,y2]

    # -- identity ----------------------------------------------------------------------------------------------------
    @property
    def model_types(self) -> tuple[str, ...]:
        return tuple(self.model_classes)

    def __repr__(self) -> str:
        return f"<model family {self.name} ({self.title})>"

    # -- transformers classes ----------------------------------------------------------------------------------------
    def model_class(self, model_type: Optional[str] = None):
        """The ``...ForConditionalGeneration`` class of ``model_type`` (default: the family's own)."""
        import transformers

        return getattr(transformers, self.model_classes[model_type or self.name])

    def image_processor_class(self):
        """The PIL image processor every family here uses (Qwen2-VL's; patch, merge and temporal patch size come
        from the checkpoint's preprocessor_config.json: Qwen3-VL's says 16). PIL, not the torchvision one: no
        torchvision on CPU machines (ENVIRONMENT.md)."""
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        return Qwen2VLImageProcessorPil

    def processor_class(self):
        """The family's processor class, accepting ``video_processor=None`` (no torchvision on CPU machines,
        ENVIRONMENT.md) and saving its parts one by one."""
        return _cpu_processor_class(self.processor_class_name)

    # -- geometry ----------------------------------------------------------------------------------------------------
    def geometry(self, processor, model_config: Any = None) -> Geometry:
        """Patch, merge and temporal patch size read from ``processor.image_processor`` and, when a model config is
        given, checked against its vision config (a checkpoint whose processor and tower disagree would feed the
        tower patches of the wrong size).

        Raises:
            FamilyError: a size is missing or not a positive integer, or processor and model disagree.
        """
        image_processor = getattr(processor, "image_processor", None)
        values = {}
        for key in ("patch_size", "merge_size", "temporal_patch_size"):
            value = _positive_int(getattr(image_processor, key, None))
            if value is None:
                raise FamilyError(
                    f"{self.title}: the image processor ({type(image_processor).__name__}) has no usable {key} "
                    f"(got {getattr(image_processor, key, None)!r}); it must come from the checkpoint's "
                    "preprocessor_config.json"
                )
            values[key] = value
        geometry = Geometry(values["patch_size"], values["merge_size"], values["temporal_patch_size"])
        vision = getattr(model_config, "vision_config", None) if model_config is not None else None
        if vision is not None:
            expected = {
                "patch_size": getattr(vision, "patch_size", None),
                "merge_size": getattr(vision, "spatial_merge_size", None),
                "temporal_patch_size": getattr(vision, "temporal_patch_size", None),
            }
            wrong = [
                f"{k}: processor {values[k]}, model {v}"
                for k, v in expected.items()
                if v is not None and _positive_int(v) != values[k]
            ]
            if wrong:
                raise FamilyError(
                    f"{self.title}: the processor and the model's vision config disagree ("
                    + "; ".join(wrong)
                    + "); the checkpoint's preprocessor_config.json does not "
                    "belong to its weights"
                )
        return geometry

    def check_model(self, model, processor=None) -> None:
        """The model is of this family (its config's model_type), and the processor's geometry fits it.

        Raises:
            FamilyError: another family's model, or processor and model disagree on geometry.
        """
        config = getattr(model, "config", None)
        model_type = getattr(config, "model_type", None)
        if model_type not in self.model_classes:
            raise FamilyError(
                f"the model's config says model_type={model_type!r}, but the processor belongs to the "
                f"{self.title} family ({', '.join(self.model_types)}); load both from one checkpoint"
            )
        if processor is not None:
            self.geometry(processor, config)

    # -- vision tower (SPEC §5) --------------------------------------------------------------------------------------
    def vision_tower(self, model):
        """The vision encoder module (``model.model.visual`` in transformers 5, for every family here)."""
        inner = getattr(model, "model", model)
        visual = getattr(inner, "visual", None)
        if visual is None:
            visual = getattr(model, "visual", None)
        if visual is None:
            raise FamilyError(
                f"{type(model).__name__} has no vision tower (`.model.visual`) for the {self.title} family"
            )
        return visual

    def is_projector(self, name: str) -> bool:
        """Whether a parameter name under the vision tower belongs to the projector (the patch merger)."""
        return name.startswith(self.projector_prefixes)

    # -- forward specifics -------------------------------------------------------------------------------------------
    def image_features(self, vision_core, pixel_values, grid_thw) -> list[ImageFeatures]:
        """Per-image features of one vision-tower call (``vision_core``: the module owning ``visual`` and
        ``get_image_features``), to be fed back later as precomputed features (rollout/vision_cache.py)."""
        out = vision_core.get_image_features(pixel_values, grid_thw, return_dict=True)
        return [ImageFeatures(pooled) for pooled in out.pooler_output]

    def encoder_outputs(self, features: list[ImageFeatures]):
        """The ``mm_encoder_outputs["image"]`` value a forward takes in place of ``pixel_values``."""
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        return BaseModelOutputWithPooling(pooler_output=tuple(f.pooled for f in features))

    # -- evaluation --------------------------------------------------------------------------------------------------
    def parse_native_box(self, text: object) -> Optional[tuple[float, float, float, float]]:
        """RefCOCO: the first box written in the family's native free-form syntax (None: none, or no such syntax)."""
        if self.native_box_pattern is None or not isinstance(text, str):
            return None
        match = re.search(self.native_box_pattern, text)
        if match is None:
            return None
        x1, y1, x2, y2 = (float(v) for v in match.groups())
        return (x1, y1, x2, y2)


@functools.lru_cache(maxsize=None)
def _cpu_processor_class(base_name: str):
    import transformers

    base = getattr(transformers, base_name)

    def check_argument_for_proper_class(self, argument_name, argument):
        if argument_name == "video_processor" and argument is None:
            return type(None)
        return base.check_argument_for_proper_class(self, argument_name, argument)

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        from ground_r1.models.loading import save_processor

        save_processor(self, save_directory)
        return []

    doc = (
        f"{base_name} that accepts ``video_processor=None`` (no torchvision on CPU machines) and saves its parts "
        "one by one. Behaviour on images and text is the stock processor's."
    )
    return type(
        f"GroundR1{base_name}",
        (base,),
        {
            "__doc__": doc,
            "__module__": __name__,
            "check_argument_for_proper_class": check_argument_for_proper_class,
            "save_pretrained": save_pretrained,
        },
    )
