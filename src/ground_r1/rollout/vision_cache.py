"""Vision features computed once per rollout (SPEC §10: the release re-encoded every image in every round).

Within one rollout the same image reaches the vision tower again and again: a question's original image is in
the context of its g1 round-1 rows and of every later round of its N trajectories; a crop made after round 1
is shared by the g2 trajectories forked from it and stays in their contexts for every later round. Qwen2.5-VL
encodes each image on its own (full-attention blocks use per-image ``cu_seqlens``, window blocks stay inside
an image), so an image's features do not depend on the other images of the batch, and features computed once
can be fed back: the tokens and log-probs are the same as with re-encoding (bit-equal on CPU, a test pins it,
greedy; on a GPU equal up to the rounding any change of batch composition gives, GEMM kernels being picked by
shape).

How, without patching the model: the model code has a door for precomputed features. ``Qwen2_5_VLModel.forward``
takes ``mm_encoder_outputs={"image": BaseModelOutputWithPooling(pooler_output=per-image features)}`` in place
of ``pixel_values`` (transformers 5), and ``generate`` forwards it at prefill only, as it does pixel_values.
The generator asks this cache for the features of a call's images, in order; the cache runs the vision tower
once on the images it has not seen in this rollout and returns every image's features.

Keys: the identity of the :class:`~ground_r1.rollout.conversation.EncodedImage` objects the rollout supplies.
The rollout shares one object between every trajectory that holds the image (forks copy the image list, not
the images), so same object = same pixels by construction; no tensor is hashed on the hot path. The cache holds
a reference to every keyed object, so an ``id`` cannot be recycled while it lives.

Scope: one cache per rollout (``HFGenerator.rollout_scope``), dropped at the rollout's end, so memory does not
grow across steps; nothing else sees it: TRL's loss forward passes ``pixel_values`` as usual.

Families: what one image's features are, and how they are fed back, is the model family's
(``ModelFamily.image_features`` / ``encoder_outputs``): Qwen3-VL's tower also returns deepstack features (added to
the first LM layers at image positions), which are cached and fed back with the pooled ones.

Where it stays off (the generator falls back to ``pixel_values``): a model with no Qwen2.5-VL-style core (a
``visual`` child, ``get_image_features`` and an ``mm_encoder_outputs`` argument) or of no known family, and ZeRO-3 without gathered
parameters (``synced_gpus``): there every rank must run the tower in lock-step, and a rank whose images are
all cached would skip the collective parameter gathers the others wait on.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Sequence

import torch

from ground_r1.models.families import FamilyError, ImageFeatures, ModelFamily, family_of_model
from ground_r1.rollout.conversation import EncodedImage

logger = logging.getLogger(__name__)


def find_vision_core(model: torch.nn.Module) -> torch.nn.Module | None:
    """The module that owns the vision tower and accepts precomputed features (``Qwen2_5_VLModel``), found
    through any wrapper that registers the model as a child (DeepSpeed engine, DDP, PEFT), or None."""
    for module in model.modules():
        if "visual" not in module._modules or not callable(getattr(module, "get_image_features", None)):
            continue
        try:
            params = inspect.signature(module.forward).parameters
        except (TypeError, ValueError):
            return None
        return module if "mm_encoder_outputs" in params else None
    return None


@dataclass
class VisionReuseStats:
    """Counts over the generate calls of a rollout (or summed over rollouts). Rows are patch rows
    (``grid_thw.prod()``), what the vision tower's cost grows with."""

    tower_calls: int = 0  # vision-tower forward calls made by the cache
    images_encoded: int = 0
    images_reused: int = 0  # image occurrences served from the cache (or deduplicated within a call)
    rows_encoded: int = 0
    rows_reused: int = 0

    def add(self, other: "VisionReuseStats") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class VisionFeatureCache:
    """Per-rollout image features keyed by EncodedImage identity (see the module docstring)."""

    def __init__(self) -> None:
        self._store: dict[int, tuple[EncodedImage, ImageFeatures]] = {}
        self._model_id: int | None = None
        self._core: torch.nn.Module | None = None
        self._family: ModelFamily | None = None
        self.stats = VisionReuseStats()

    def __len__(self) -> int:
        return len(self._store)

    def _core_of(self, model: torch.nn.Module) -> torch.nn.Module | None:
        if self._model_id != id(model):
            # A different model object: never serve features computed by another one.
            self._store.clear()
            self._model_id = id(model)
            self._core = find_vision_core(model)
            try:
                self._family = family_of_model(model)
            except FamilyError:
                self._core = None
            if self._core is None:
                logger.warning(
                    "%s has no Qwen2.5-VL-style vision core accepting mm_encoder_outputs: images are re-encoded "
                    "in every round",
                    type(model).__name__,
                )
        return self._core

    def usable(self, model: torch.nn.Module) -> bool:
        """Whether `features` can serve this model (it has a vision core that takes precomputed features)."""
        return self._core_of(model) is not None

    def features(self, model: torch.nn.Module, images: Sequence[EncodedImage]) -> tuple[torch.Tensor, ...] | None:
        """Per-image pooled features ``[tokens_i, hidden]`` of `images` in order (see :meth:`image_features`)."""
        feats = self.image_features(model, images)
        return None if feats is None else tuple(f.pooled for f in feats)

    def encoder_outputs(self, model: torch.nn.Module, images: Sequence[EncodedImage]):
        """The ``mm_encoder_outputs["image"]`` value of `images` for ``model``'s family (None: no door)."""
        feats = self.image_features(model, images)
        return None if feats is None else self._family.encoder_outputs(list(feats))

    @torch.no_grad()
    def image_features(
        self, model: torch.nn.Module, images: Sequence[EncodedImage]
    ) -> tuple[ImageFeatures, ...] | None:
        """Per-image features of `images` in order (the family's: pooled, plus Qwen3-VL's deepstack), encoding in
        one vision-tower call only the images this cache has not seen. None when the model has no door for
        precomputed features."""
        core = self._core_of(model)
        if core is None:
            return None
        todo: dict[int, EncodedImage] = {}
        for img in images:
            key = id(img)
            if key not in self._store and key not in todo:
                todo[key] = img
        if todo:
            new = list(todo.values())
            device = next(core.parameters()).device
            pixel_values = torch.cat([img.pixel_values for img in new], dim=0).to(device)
            grid_thw = torch.stack([img.grid_thw for img in new], dim=0).to(device)
            out = self._family.image_features(core, pixel_values, grid_thw)
            if len(out) != len(new):
                raise RuntimeError(f"the vision tower returned {len(out)} feature blocks for {len(new)} images")
            for img, feats in zip(new, out):
                self._store[id(img)] = (img, feats)
            self.stats.tower_calls += 1
        encoded_rows = sum(img.num_rows for img in todo.values())
        self.stats.images_encoded += len(todo)
        self.stats.images_reused += len(images) - len(todo)
        self.stats.rows_encoded += encoded_rows
        self.stats.rows_reused += sum(img.num_rows for img in images) - encoded_rows
        return tuple(self._store[id(img)][1] for img in images)

    def clear(self) -> None:
        self._store.clear()
