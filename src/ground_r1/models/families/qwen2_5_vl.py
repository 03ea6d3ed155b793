"""Qwen2.5-VL (``model_type: qwen2_5_vl``): the paper's and the release's family (SPEC §1, §2).

- Geometry: ViT patch 14, 2x2 merge: input sides are multiples of 28 (read from the processor).
- Coordinates: absolute pixels of the resized input image (SPEC §2). Evidence: the Qwen2.5-VL technical report
  (grounding "based on the actual dimensions of the input images, using absolute coordinates"); Qwen's cookbook
  rescales outputs with ``image_grid_thw * 14``; ms-swift's Qwen2.5-VL template sets ``norm_bbox = 'none'``
  (``swift/llm/template/template/qwen.py``) while its Qwen2-VL and Qwen3-VL templates normalise to 1000.
- Chat template: the stock one (TRL ``qwen2_5_vl_chat_template``): default system prompt, ``Picture k:`` with
  ``add_vision_id``; prefix-preserving, no reasoning block.
- Vision tower ``model.visual``, projector ``visual.merger``.
"""

from __future__ import annotations

from ground_r1.models.families.base import Geometry, ModelFamily
from ground_r1.models.families.coordinates import INPUT_PIXELS


class Qwen2_5_VLFamily(ModelFamily):
    name = "qwen2_5_vl"
    title = "Qwen2.5-VL"
    model_classes = {"qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration"}
    processor_class_name = "Qwen2_5_VLProcessor"
    coordinates = INPUT_PIXELS
    coordinates_evidence = (
        "Qwen2.5-VL technical report (absolute coordinates of the input image); ms-swift "
        "Qwen2_5VLTemplate.norm_bbox = 'none'"
    )
    reference_geometry = Geometry(patch_size=14, merge_size=2)
    chat_template = "qwen2_5_vl_chat_template"


FAMILY = Qwen2_5_VLFamily()
