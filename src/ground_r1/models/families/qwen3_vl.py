"""Qwen3-VL (``model_type: qwen3_vl``, and the MoE ``qwen3_vl_moe``).

- Geometry: ViT patch 16, 2x2 merge: input sides are multiples of 32 (read from the processor; a 28-px constant
  would misplace every box and crop).
- Coordinates: relative, on a 0-1000 grid. Evidence: Qwen3-VL's cookbooks (2D grounding: "Qwen3-VL uses relative
  coordinates ... 0-1000", outputs rescaled with ``x / 1000 * width``); ms-swift's Qwen3VLTemplate inherits
  ``norm_bbox = 'norm1000'`` from its Qwen2-VL template.
- Chat template (TRL ``qwen3_vl_chat_template``, the Instruct one): no default system prompt, ``Picture k:`` only
  with ``add_vision_id``, prefix-preserving, no reasoning block (the Thinking checkpoints' template opens
  ``<think>`` in the generation prompt: the codec then treats it as Qwen3.5's, ``rollout.conversation``).
- Forward: interleaved M-RoPE (``mrope_interleaved``) computed by the model's own ``get_rope_index``; the vision
  tower also returns DEEPSTACK features (added to the first LM layers' hidden states at image positions), so
  precomputed image features must carry them (:meth:`image_features`).
- Vision tower ``model.visual``; projector ``visual.merger`` and the deepstack mergers
  ``visual.deepstack_merger_list``.
"""

from __future__ import annotations

from ground_r1.models.families.base import Geometry, ImageFeatures, ModelFamily
from ground_r1.models.families.coordinates import RELATIVE_1000


class Qwen3VLFamily(ModelFamily):
    name = "qwen3_vl"
    title = "Qwen3-VL"
    model_classes = {
        "qwen3_vl": "Qwen3VLForConditionalGeneration",
        "qwen3_vl_moe": "Qwen3VLMoeForConditionalGeneration",
    }
    processor_class_name = "Qwen3VLProcessor"
    coordinates = RELATIVE_1000
    coordinates_evidence = (
        "Qwen3-VL cookbooks (2D grounding: relative coordinates 0-1000); ms-swift "
        "Qwen3VLTemplate inherits norm_bbox 'norm1000'"
    )
    reference_geometry = Geometry(patch_size=16, merge_size=2)
    chat_template = "qwen3_vl_chat_template"
    projector_prefixes = ("merger.", "deepstack_merger_list.")

    def image_features(self, vision_core, pixel_values, grid_thw) -> list[ImageFeatures]:
        out = vision_core.get_image_features(pixel_values, grid_thw, return_dict=True)
        layers = list(out.deepstack_features or [])
        return [
            ImageFeatures(pooled, tuple(layer[i] for layer in layers)) for i, pooled in enumerate(out.pooler_output)
        ]

    def encoder_outputs(self, features: list[ImageFeatures]):
        from transformers.models.qwen3_vl.modeling_qwen3_vl import BaseModelOutputWithDeepstackFeatures

        depth = len(features[0].deepstack) if features else 0
        return BaseModelOutputWithDeepstackFeatures(
            pooler_output=tuple(f.pooled for f in features),
            deepstack_features=[tuple(f.deepstack[k] for f in features) for k in range(depth)],
        )


FAMILY = Qwen3VLFamily()
