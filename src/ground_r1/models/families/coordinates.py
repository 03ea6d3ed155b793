"""Box coordinate conventions: the frame a model writes its boxes in, and the prompt sentence that names it.

Two conventions exist among the families this project trains (what each family's default is, and the evidence for
it, is in ``docs/model_families.md``):

- ``input_pixels``: absolute pixels of the *resized model input* image (Qwen2.5-VL, SPEC §2). The frame is the
  input size (smart_resize of the original, multiples of patch x merge); the prompt gives that size.
- ``relative_1000``: relative coordinates on a 0-1000 grid, whatever the image size (Qwen2-VL, Qwen3-VL,
  Qwen3.5). The frame is 1000 x 1000; the prompt says so instead of giving the image size.

Every mapping between a box the model wrote and the original image goes through :class:`BoxFrame`, so the
rollout's crops, the GIoU metric, RefCOCO and the SFT targets use one convention: ``x_orig = x * W / frame_w``
(truncated for crops, SPEC §2; float for RefCOCO), ``x_frame = x_orig * frame_w / W`` (rounded half up for SFT
targets). For ``input_pixels`` that is exactly the release's rescaling (``ground_r1.boxes.input_to_original``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from ground_r1.boxes import (
    MAX_ASPECT_RATIO,
    MIN_CROP_SIZE,
    Box,
    BoxLike,
    CropWindow,
    IntBox,
    crop_window,
    input_to_original,
    original_to_input,
)

INPUT_PIXELS = "input_pixels"
RELATIVE_1000 = "relative_1000"
RELATIVE_GRID = 1000  # the relative grid's extent: (0, 0) top-left, (1000, 1000) bottom-right
CONVENTIONS: dict[str, str] = {
    INPUT_PIXELS: "absolute pixels of the model's resized input image (Qwen2.5-VL, SPEC §2)",
    RELATIVE_1000: "relative coordinates on a 0-1000 grid (Qwen2-VL, Qwen3-VL, Qwen3.5)",
}

# The release's size sentence (SPEC §2, part 2 of the template), reproduced exactly.
_INPUT_PIXELS_SENTENCE = (
    "The size of the image: Width:{input_width}, Height:{input_height}. The bounding box you provided should not "
    "exceed the image width and height."
)
# Ours, for a 0-1000 family: the grid in place of a pixel size it does not use (the release's sentence would ask a
# relative-coordinate model for pixels of an image size it never grounds in).
_RELATIVE_1000_SENTENCE = (
    "The coordinates of the bounding box are relative to the image, on a 0-1000 scale: [0,0,1000,1000] is the "
    "whole image. The bounding box you provided should not exceed 1000."
)


class CoordinateError(ValueError):
    """An unknown coordinate convention (the message lists the valid names)."""


def check_convention(name: object, where: str = "coordinates") -> str:
    """``name`` when it is a known convention.

    Raises:
        CoordinateError: anything else, naming ``where`` and the valid conventions.
    """
    if name not in CONVENTIONS:
        valid = "; ".join(f"{k!r} ({v})" for k, v in CONVENTIONS.items())
        raise CoordinateError(f"{where}: unknown coordinate convention {name!r}; valid: {valid}")
    return str(name)


def size_sentence(convention: str, input_width: int, input_height: int) -> str:
    """The grounding prompt's sentence about where boxes live (SPEC §2 part 2 for ``input_pixels``)."""
    if check_convention(convention) == INPUT_PIXELS:
        return _INPUT_PIXELS_SENTENCE.replace("{input_width}", str(int(input_width))).replace(
            "{input_height}", str(int(input_height))
        )
    return _RELATIVE_1000_SENTENCE


@dataclass(frozen=True)
class BoxFrame:
    """The frame a model's boxes are written in: its convention and its size ``(width, height)`` (the resized input
    size for ``input_pixels``, ``(1000, 1000)`` for ``relative_1000``)."""

    convention: str
    size: tuple[int, int]

    def to_original(self, box: BoxLike, original_size: tuple[int, int]) -> IntBox:
        """Clamp to the frame, rescale to original pixels by truncation (SPEC §2; the GIoU metric's box)."""
        return input_to_original(box, self.size, original_size)

    def to_original_unclamped(self, box: Sequence[float], original_size: tuple[int, int]) -> Box:
        """Rescale to original pixels in float, not clamped (the RefCOCO headline rule, SPEC §7)."""
        (fw, fh), (ow, oh) = self.size, original_size
        x1, y1, x2, y2 = (float(v) for v in box)
        return (x1 * ow / fw, y1 * oh / fh, x2 * ow / fw, y2 * oh / fh)

    def to_original_release(self, box: Sequence[float], original_size: tuple[int, int]) -> Optional[IntBox]:
        """The release's RefCOCO rescaling (``int(x / frame_w * W)``, truncation, unclamped; ``None`` for an empty or
        inverted box), in this frame."""
        (fw, fh), (ow, oh) = self.size, original_size
        x1, y1, x2, y2 = box
        if x1 >= x2 or y1 >= y2:
            return None
        return (int(x1 / fw * ow), int(y1 / fh * oh), int(x2 / fw * ow), int(y2 / fh * oh))

    def from_original(self, box: BoxLike, original_size: tuple[int, int]) -> IntBox:
        """Original pixels -> this frame, rounded half up (Ground SFT targets, SPEC §8; the ground-truth-crop
        control's box)."""
        return original_to_input(box, original_size, self.size)

    def crop_window(
        self,
        box: Optional[BoxLike],
        original_size: tuple[int, int],
        *,
        min_size: int = MIN_CROP_SIZE,
        max_aspect_ratio: float = MAX_ASPECT_RATIO,
        fallback: str = "full_image",
    ) -> Optional[CropWindow]:
        """The crop of the original image for a box written in this frame (SPEC §2 crop rules,
        :func:`ground_r1.boxes.crop_window`); ``min_size`` is in original pixels, whatever the frame."""
        return crop_window(
            box, self.size, original_size, min_size=min_size, max_aspect_ratio=max_aspect_ratio, fallback=fallback
        )


def box_frame(convention: str, input_size: tuple[int, int]) -> BoxFrame:
    """The frame of ``convention`` for an image whose resized model input is ``input_size`` (width, height)."""
    if check_convention(convention) == INPUT_PIXELS:
        return BoxFrame(INPUT_PIXELS, (int(input_size[0]), int(input_size[1])))
    return BoxFrame(RELATIVE_1000, (RELATIVE_GRID, RELATIVE_GRID))


def frame_of_record(trajectory: dict) -> BoxFrame:
    """The box frame of a stored trajectory record (``Trajectory.to_record``); records written before conventions
    were recorded are ``input_pixels`` in their ``input_size``."""
    convention = trajectory.get("coordinates") or INPUT_PIXELS
    return box_frame(convention, tuple(trajectory["input_size"]))


__all__ = [
    "BoxFrame",
    "CONVENTIONS",
    "CoordinateError",
    "INPUT_PIXELS",
    "RELATIVE_1000",
    "RELATIVE_GRID",
    "box_frame",
    "check_convention",
    "frame_of_record",
    "size_sentence",
]
