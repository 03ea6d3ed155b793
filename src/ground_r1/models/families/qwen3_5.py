"""Qwen3.5 (``model_type: qwen3_5``, and the MoE ``qwen3_5_moe``): natively multimodal, hybrid attention.

- Geometry: ViT patch 16, 2x2 merge (32-px multiples), Qwen3-VL's processor (read from the processor).
- Coordinates: relative, on a 0-1000 grid, as Qwen3-VL (Qwen3.5 is trained on the Qwen3-VL grounding recipe;
  third-party guides document "Qwen3-VL and 3.5 ... normalized to a 0-1000 range"). Check it on a real checkpoint
  before quoting a headline number: ``coordinates: input_pixels`` switches the convention without code changes.
- Chat template: Qwen3.5's own (TRL ``qwen3_5_think_chat_template``; ``qwen3_5_nothink_chat_template`` is the
  no-thinking flavour): no default system prompt, ``Picture k:`` with ``add_vision_id``; the generation prompt
  OPENS ``<think>`` and the template drops the reasoning of assistant turns before the last user turn (not
  prefix-preserving). How Ground-R1's ``<think>`` meets it: the generation prompt's ``<think>\n`` is the start of
  every turn's text (``rollout.conversation``); sampled turns are kept as ids, never re-rendered, so the model sees
  its whole trajectory. SFT renders through TRL's ``qwen3_5_think_training_chat_template`` (prefix-stable: every
  assistant turn as ``<think>\n\n</think>\n\n`` + content), whose supervised part of a turn follows the same
  ``<think>\n`` generation prompt the model meets in evaluation.
- Layers: Gated-DeltaNet linear-attention layers beside full-attention ones. Under left padding (generation) the
  linear layers zero the padded inputs, so the recurrent and conv states start from zero at the first real token,
  as in the right-padded loss pass: the log-prob consistency test holds. PACKING trajectories into one row would
  carry the recurrent state from one trajectory into the next (the CPU kernel takes no sequence boundaries), so
  the padding-free layout is off for this family (:attr:`packed_loss_problem`). The cache is not made of plain
  attention layers, so the rollout's KV reuse across rounds stays off by itself (``rollout.kv_reuse``).
- Vision tower ``model.visual``, projector ``visual.merger`` (no deepstack).
"""

from __future__ import annotations

from ground_r1.models.families.base import Geometry, ModelFamily
from ground_r1.models.families.coordinates import RELATIVE_1000


class Qwen3_5Family(ModelFamily):
    name = "qwen3_5"
    title = "Qwen3.5"
    model_classes = {"qwen3_5": "Qwen3_5ForConditionalGeneration", "qwen3_5_moe": "Qwen3_5MoeForConditionalGeneration"}
    processor_class_name = "Qwen3VLProcessor"
    coordinates = RELATIVE_1000
    coordinates_evidence = (
        "as Qwen3-VL (Qwen3.5 follows its grounding recipe; third-party guides: 0-1000); "
        "not verified on a released checkpoint here"
    )
    reference_geometry = Geometry(patch_size=16, merge_size=2)
    chat_template = "qwen3_5_think_chat_template"
    training_chat_template = "qwen3_5_think_training_chat_template"
    packed_loss_problem = (
        "its linear-attention (Gated-DeltaNet) layers would carry their recurrent state across "
        "the trajectories packed into one row"
    )


FAMILY = Qwen3_5Family()
