"""Images: the model-input size (Qwen's smart_resize, SPEC §2) and loading an image file as RGB.

Coordinates in prompts, boxes and rewards are absolute pixels of the *resized model input* image, whose size
is Qwen2.5-VL's ``smart_resize`` of the original size: both sides multiples of 28, pixel count within
[min_pixels, max_pixels] (release: 3136 and 401,408). :func:`input_size` is that function with the arguments
in (width, height) order.

:func:`load_image` is on the training hot path (every rollout opens its image and crops from it), so it does
only what the model needs: EXIF orientation, one conversion to 8-bit RGB, a full decode (a truncated file
fails here, with its path, instead of deep inside the processor), and a clear :class:`ImageLoadError`.

What is a usable image (the policy data validation applies, so that nothing fails mid-run):

* **converted, valid**: grayscale (L, 1), gray+alpha (LA), RGBA, palette (P, with or without transparency),
  CMYK, YCbCr, 16-bit (I;16) and 32-bit/float (I, F) images become 8-bit RGB (transparency on white, 16-bit
  scaled by 1/257 instead of clipped); EXIF orientations are applied (5-8 swap width and height);
* **tiny, valid**: an image smaller than 28 px a side is kept as is; Qwen's ``smart_resize`` scales it *up*
  to ``min_pixels`` (10x10 -> a 56x56 input) exactly as the model's processor does, and its crops span the
  whole side (SPEC §2: widen to min(28, side));
* **bad** (:class:`ImageLoadError` with the path and the reason): missing, a directory, empty, not an image,
  truncated or corrupt pixel data, an aspect ratio above 200 (smart_resize refuses it; reported by
  :func:`input_size`), and more pixels than the decompression-bomb limit of :func:`max_image_pixels`
  (default 178,956,970: PIL's own *error* threshold, twice ``PIL.Image.MAX_IMAGE_PIXELS``), refused at the
  header, before decoding anything. PIL only warns between its 89,478,485 and that threshold; genuine dataset
  images live there (the VisCoT benchmark's 8400x11200 DUDE page, 94,080,000 pixels), so they are read and
  resized like any other, while a real bomb (a 20000x20000 header) still stops. ``--max_image_pixels`` on
  every CLI (:func:`set_max_image_pixels`) raises or lowers the limit; 0 removes it.

:func:`image_size` with ``verify=True`` is the cheap up-front check that validation runs on every record: the
header, and, for JPEG and PNG, whether the file is complete (its end marker / IEND chunk; a PNG is walked chunk
by chunk without inflating anything); only a file that fails that test, or a file of another format, is
decoded in full to get the decoder's verdict. What it cannot see without inflating the data: a PNG whose
chunks are all there but whose compressed stream is corrupt (or too short for the size its header claims);
such a file fails only later, when :func:`load_image` decodes it. Interrupted downloads and copies, the
common case, cut the chunk list and are caught.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from PIL import Image, ImageOps

DEFAULT_MIN_PIXELS = 3136  # 4 x 28 x 28: the release's (and Qwen's) minimum
DEFAULT_MAX_PIXELS = 401408  # 512 x 28 x 28: the release's max_pixels (SPEC §2)
# The release's (Qwen2.5-VL's) factor, patch 14 x merge 2: the records' input_width/height, which only the
# input_pixels convention uses (Ground SFT targets). The rollout reads each model's own from its processor
# (models.families); a relative_1000 family never uses these sizes.
PATCH_FACTOR = 28
# PIL's own error threshold (2 x its default MAX_IMAGE_PIXELS of 89,478,485): the decompression-bomb limit of
# dataset images. PIL's 1x warning level would refuse the release's genuine 8400x11200 VisCoT page.
DEFAULT_MAX_IMAGE_PIXELS = 178_956_970
_max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS

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
    try:
        h, w = _smart_resize()(int(height), int(width), factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    except OverflowError as exc:  # a size too large for a float (a corrupt record): a bad size, not a crash
        raise ValueError(f"image size {width!r}x{height!r} is too large ({exc})") from None
    return int(w), int(h)


def max_image_pixels() -> int | None:
    """The decompression-bomb limit of dataset images, in pixels (None: no limit)."""
    return _max_image_pixels


def set_max_image_pixels(limit: int | None) -> None:
    """Set the decompression-bomb limit of dataset images (``--max_image_pixels``); None or 0: no limit.

    The limit is ours, checked at the header (:func:`pixel_limit_reason`). PIL's own guard, which raises above
    twice ``PIL.Image.MAX_IMAGE_PIXELS``, is raised with it when needed so that it never refuses first.

    Raises:
        ValueError: a negative limit.
    """
    global _max_image_pixels
    if limit is not None and limit < 0:
        raise ValueError(f"max_image_pixels must be >= 0 (0: no limit), got {limit}")
    _max_image_pixels = limit or None
    pil = Image.MAX_IMAGE_PIXELS
    if _max_image_pixels is None:
        Image.MAX_IMAGE_PIXELS = None
    elif pil is not None and 2 * pil < _max_image_pixels:
        Image.MAX_IMAGE_PIXELS = math.ceil(_max_image_pixels / 2)


def add_max_image_pixels_argument(parser) -> None:
    """The ``--max_image_pixels`` flag of every CLI that reads dataset images (argparse parsers)."""
    parser.add_argument(
        "--max_image_pixels",
        type=int,
        default=DEFAULT_MAX_IMAGE_PIXELS,
        help="decompression-bomb limit of dataset images in pixels (default: PIL's own error threshold, "
        "178956970; genuine images up to it are read and resized; 0: no limit)",
    )


def pixel_limit_reason(width: int, height: int) -> str | None:
    """Why a ``width`` x ``height`` image is refused by the decompression-bomb guard, or None when it is not
    (:func:`max_image_pixels`, read at call time so a changed limit is honoured)."""
    limit = _max_image_pixels
    if limit is None or width * height <= limit:
        return None
    return (
        f"{width}x{height} = {width * height:,} pixels exceeds the decompression-bomb limit of {limit:,} pixels "
        "(--max_image_pixels); if the image is genuine, raise that limit (or downscale the file)"
    )


def _open(path: Path) -> Image.Image:
    """``Image.open`` without PIL's warning between its 1x and 2x levels: our own limit decides (module doc)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def _failure_reason(path: Path, exc: BaseException) -> str:
    """A readable reason for a failed open/decode; stat() is only paid on this (cold) path."""
    try:
        if isinstance(exc, FileNotFoundError) or not path.exists():
            return "file not found"
        if path.is_dir():
            return "is a directory, not an image file"
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
    except OSError as stat_error:  # e.g. a file name too long for the file system
        return f"cannot access the file ({stat_error.strerror or stat_error})"
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not a recognised image format (corrupt file or not an image)"
    if isinstance(exc, Image.DecompressionBombError):
        return (
            f"image too large for the decompression-bomb limit ({_max_image_pixels or 0:,} pixels, "
            f"--max_image_pixels): {exc} If the image is genuine, raise that limit"
        )
    return f"corrupt or truncated image data ({type(exc).__name__}: {exc})"


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks that can carry an EXIF orientation (eXIf, or XMP/"Raw profile" text) when written after the pixels.
_PNG_METADATA_CHUNKS = frozenset({b"eXIf", b"tEXt", b"zTXt", b"iTXt"})
_JPEG_END = b"\xff\xd9"


@dataclass(frozen=True)
class _Structure:
    """What a cheap walk of a file's structure found: ``complete`` is True when the format's end marker is
    where it belongs, False when the file is visibly cut short, None when the format is not walked; for PNG,
    ``late_metadata`` says a metadata chunk follows the pixel data (PIL only reads it after a full decode)."""

    complete: bool | None
    late_metadata: bool = False


def _png_structure(path: Path) -> _Structure:
    """Walk the PNG chunk list (8-byte headers, data skipped: nothing is inflated) up to IEND."""
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if fh.read(8) != _PNG_SIGNATURE:
            return _Structure(complete=False)
        pos, seen_pixels, late = 8, False, False
        while True:
            header = fh.read(8)
            if len(header) < 8:
                return _Structure(complete=False, late_metadata=late)
            length, kind = struct.unpack(">I4s", header)
            if kind == b"IEND":
                return _Structure(complete=True, late_metadata=late)
            if kind == b"IDAT":
                seen_pixels = True
            elif seen_pixels and kind in _PNG_METADATA_CHUNKS:
                late = True
            pos += 12 + length  # header, data, CRC
            if pos > size:
                return _Structure(complete=False, late_metadata=late)
            fh.seek(pos)


def _jpeg_structure(path: Path) -> _Structure:
    """A complete JPEG ends with its EOI marker (FFD9), possibly followed by zero padding."""
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(max(0, size - 64))
        tail = fh.read().rstrip(b"\x00")
    return _Structure(complete=tail.endswith(_JPEG_END))


def _structure(path: Path, image_format: str | None) -> _Structure:
    if image_format == "PNG":
        return _png_structure(path)
    if image_format == "JPEG":
        return _jpeg_structure(path)
    return _Structure(complete=None)


def image_size(path: str | os.PathLike[str], *, verify: bool = False) -> tuple[int, int]:
    """(width, height) of the image *as load_image returns it*, without decoding its pixels.

    EXIF orientations 5-8 swap the two sides, exactly as :func:`load_image` does, so a record's size read
    here matches the pixels the model sees. Images above :func:`max_image_pixels` are refused (module
    docstring).

    ``verify=False``: the header only; a header that parses does not prove the pixel data is intact.
    ``verify=True`` (data validation): also proves the file will decode, cheaply: a JPEG must end with its
    end marker and a PNG must hold its chunks up to IEND (a walk of the chunk headers); a file that fails
    this, or of another format, is decoded in full and the decoder's verdict is final (a JPEG with data after
    its end marker decodes fine and passes). If some code sets ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True``
    globally, PIL pads truncated files silently and no check can see them.

    Raises:
        ImageLoadError: missing, empty, unrecognised, too large, or (``verify``) truncated or corrupt.
    """
    p = Path(path)
    try:
        with _open(p) as im:
            width, height = im.size
            too_large = pixel_limit_reason(width, height)
            if too_large is not None:
                raise ImageLoadError(p, too_large)
            structure = _structure(p, im.format)
            if verify and structure.complete is not True:
                im.load()  # the decoder's verdict: raises on truncated or corrupt pixel data
            if im.format == "PNG" and not structure.late_metadata:
                # PIL's PNG getexif() decodes the whole image to look for an eXIf chunk after the pixels;
                # none is there, so the base class reads the orientation from the chunks already parsed.
                exif = Image.Image.getexif(im)
            else:
                exif = im.getexif()
            orientation = exif.get(_EXIF_ORIENTATION_TAG)
    except ImageLoadError:
        raise
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
    Raises :class:`ImageLoadError` (with the path and the reason) for a missing, empty, unrecognised, corrupt,
    truncated or too large (:func:`max_image_pixels`) file. (If some code sets
    ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True`` globally, PIL pads truncated files silently and this check
    cannot see them.)
    """
    p = Path(path)
    try:
        with _open(p) as im:
            too_large = pixel_limit_reason(*im.size)
            if too_large is not None:  # refuse before decoding (module docstring): no hang, no OOM
                raise ImageLoadError(p, too_large)
            im.load()  # full decode now: a truncated file raises here, not in the processor
            ImageOps.exif_transpose(im, in_place=True)
            out = _to_rgb(im)  # decoded pixels stay valid after the file is closed
    except ImageLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError... on bad files
        raise ImageLoadError(p, _failure_reason(p, exc)) from exc
    return out
