"""Qwen2-VL (``model_type: qwen2_vl``).

- Geometry: ViT patch 14, 2x2 merge (28-px multiples), like Qwen2.5-VL (read from the processor).
- Coordinates: relative, on a 0-1000 grid. Evidence: the Qwen2-VL report (boxes "normalized within [0, 1000)",
  written ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>``); ms-swift's Qwen2VLTemplate keeps the template default
  ``norm_bbox = 'norm1000'`` (only its Qwen2.5-VL subclass switches to absolute). Ground-R1 asks every family for
  ``[x1,y1,x2,y2]`` inside ``<box>``; for RefCOCO the native pair syntax is read too (:attr:`native_box_pattern`;
  ``<|box_start|>`` is a special token, so the decoded text holds ``(x1,y1),(x2,y2)``).
- Chat template: Qwen2-VL-Instruct ships the same template text as Qwen2.5-VL (default system prompt,
  ``Picture k:``); TRL has no separate Qwen2-VL template, so ``qwen2_5_vl_chat_template`` is the fallback.
- M-RoPE without Qwen2.5-VL's temporal scaling; vision tower ``model.visual``, projector ``visual.merger``.
"""

from __future__ import annotations

from ground_r1.models.families.base import Geometry, ModelFamily
from ground_r1.models.families.coordinates import RELATIVE_1000

_NUMBER = r"\s*(\d+(?:\.\d*)?)\s*"


class Qwen2VLFamily(ModelFamily):
    name = "qwen2_vl"
    title = "Qwen2-VL"
    model_classes = {"qwen2_vl": "Qwen2VLForConditionalGeneration"}
    processor_class_name = "Qwen2VLProcessor"
    coordinates = RELATIVE_1000
    coordinates_evidence = (
        "Qwen2-VL report (boxes normalised to [0, 1000), <|box_start|>(x1,y1),(x2,y2)"
        "<|box_end|>); ms-swift Qwen2VLTemplate norm_bbox 'norm1000'"
    )
    reference_geometry = Geometry(patch_size=14, merge_size=2)
    chat_template = "qwen2_5_vl_chat_template"
    # (x1,y1),(x2,y2): Qwen2-VL's grounding output once <|box_start|>/<|box_end|> are decoded away.
    native_box_pattern = r"\(" + _NUMBER + "," + _NUMBER + r"\)\s*,\s*\(" + _NUMBER + "," + _NUMBER + r"\)"


FAMILY = Qwen2VLFamily()
