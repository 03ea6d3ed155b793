"""Images: the model-input size (Qwen's smart_resize, SPEC §2) and loading an image file as RGB.

Coordinates in prompts, boxes and rewards are absolute pixels of the *resized model input* image, whose size
is Qwen2.5-VL's ``smart_resize`` of the original size: both sides multiples of 28, pixel count within
[min_pixels, max_pixels] (release: 3136 and 401,408). :func:`input_size` is that function with the arguments
in (width, height) order.

:func:`load_image` is on the training hot path (every rollout opens its image and crops from it), so it does
only what the model needs: EXIF orientation, one conversion to 8-bit RGB, a full decode (a truncated file
fails here, with its path, instead of deep inside the processor), and a clear :class:`ImageLoadError`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Callable

from PIL import Image, ImageOps

DEFAULT_MIN_PIXELS = 3136  # 4 x 28 x 28: the release's (and Qwen's) minimum
DEFAULT_MAX_PIXELS = 401408  # 512 x 28 x 28: the release's max_pixels (SPEC §2)
PATCH_FACTOR = 28  # ViT patch 14 x spatial merge 2: input sides are multiples of 28

# EXIF orientations 5..8 rotate by 90/270 degrees: width and height swap after exif_transpose.
_EXIF_ORIENTATION_TAG = 0x0112
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_WHITE = (255, 255, 255)


class ImageLoadError(OSError):
    """An image file that cannot be used: missing, empty, not an image, corrupt or truncated.

    Subclasses OSError so code that already catches PIL's I/O errors catches it too; ``path`` and ``reason``
    are kept as attributes for per-record reports.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot load image '{self.path}': {reason}")

    def __reduce__(self):  # keep it picklable (dataloader workers) despite the two-argument constructor
        return (type(self), (self.path, self.reason))


@lru_cache(maxsize=1)
def _smart_resize() -> Callable[..., tuple[int, int]]:
    # Imported lazily: importing transformers takes seconds, and CLIs such as prepare_viscot --help or the
    # record loader without images should not pay for it. transformers ships smart_resize itself
    # (qwen-vl-utils would pull torchvision, see ENVIRONMENT.md).
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    return smart_resize


def input_size(
    width: int,
    height: int,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    factor: int = PATCH_FACTOR,
) -> tuple[int, int]:
    """(input_width, input_height) that Qwen2.5-VL's processor resizes a ``width`` x ``height`` image to.

    Raises ValueError for non-positive sizes, ``min_pixels > max_pixels``, or an aspect ratio above 200
    (which Qwen's processor refuses).
    """
    if isinstance(width, bool) or isinstance(height, bool) or int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"image size must be positive integers, got width={width!r}, height={height!r}")
    if min_pixels > max_pixels:
        raise ValueError(f"min_pixels ({min_pixels}) must not exceed max_pixels ({max_pixels})")
    # Qwen's smart_resize takes and returns (height, width).
    h, w = _smart_resize()(int(height), int(width), factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    return int(w), int(h)


def _failure_reason(path: Path, exc: BaseException) -> str:
    """A readable reason for a failed open/decode; stat() is only paid on this (cold) path."""
    if isinstance(exc, FileNotFoundError) or not path.exists():
        return "file not found"
    if path.is_dir():
        return "is a directory, not an image file"
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
    except OSError:
        pass
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not a recognised image format (corrupt file or not an image)"
    if isinstance(exc, Image.DecompressionBombError):
        return f"image too large for PIL's decompression-bomb limit: {exc}"
    return f"corrupt or truncated image data ({type(exc).__name__}: {exc})"


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) of the image *as load_image returns it*, from the file header only (no decode).

    EXIF orientations 5-8 swap the two sides, exactly as :func:`load_image` does, so a record's size read
    here matches the pixels the model sees. A header that parses does not prove the pixel data is intact:
    truncation is caught later by :func:`load_image`, which decodes fully.
    """
    p = Path(path)
    try:
        with Image.open(p) as im:
            width, height = im.size
            orientation = im.getexif().get(_EXIF_ORIENTATION_TAG)
    except Exception as exc:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError... on bad files
        raise ImageLoadError(p, _failure_reason(p, exc)) from exc
    if orientation in _SWAPPING_ORIENTATIONS:
        width, height = height, width
    return int(width), int(height)


def _to_8bit_gray(im: Image.Image) -> Image.Image:
    """I;16*, I and F images as 8-bit 'L'. PIL's own convert clips them to 0..255 (a 16-bit image turns
    almost white), so scale instead: 16-bit by 1/257; I/F by their range (<=255: as is, <=65535: as 16-bit,
    otherwise min-max)."""
    import numpy as np

    arr = np.asarray(im, dtype=np.float64)
    if im.mode.startswith("I;16"):
        arr = arr / 257.0
    else:
        lo, hi = float(arr.min()), float(arr.max())
        if lo >= 0.0 and hi <= 255.0:
            pass
        elif lo >= 0.0 and hi <= 65535.0:
            arr = arr / 257.0
        else:
            arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode == "RGB":
        return im
    if mode == "P" and "transparency" in im.info:
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent pixels become white (as a viewer would show them), not black garbage.
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if mode.startswith("I") or mode == "F":
        return _to_8bit_gray(im).convert("RGB")
    return im.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open ``path`` as a fully decoded 8-bit RGB image, EXIF orientation applied.

    Grayscale, palette, CMYK, 16-bit and float images are converted; transparency is composited on white.
    Raises :class:`ImageLoadError` (with the path and the reason) for a missing, empty, unrecognised, corrupt
    or truncated file. (If some code sets ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True`` globally, PIL pads
    truncated files silently and this check cannot see them.)
    """
    p = Path(path)
    try:
        with Image.open(p) as im:
            im.load()  # full decode now: a truncated file raises here, not in the processor
            ImageOps.exif_transpose(im, in_place=True)
            out = _to_rgb(im)  # decoded pixels stay valid after the file is closed
    except Exception as exc:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError... on bad files
        raise ImageLoadError(p, _failure_reason(p, exc)) from exc
    return out
