"""Box primitives shared by the rollout, the rewards, the SFT data and the evaluation (SPEC §2, §3, §7, §8).

A box is ``(x1, y1, x2, y2)`` in absolute pixels. Two frames exist: the *input* frame (the smart-resized
image the model sees; the coordinates the model writes, SPEC §2) and the *original* frame (the
full-resolution image that crops are cut from and that the data's evidence boxes use).

What lives here, in the order the rollout uses it:

* parsing a box out of a model turn: :func:`parse_box` (ours), :func:`parse_box_release` (the release's
  exact rule), :func:`parse_turn_box` (either, by the ``box_parse`` config value),
  :func:`parse_first_box_signed` (the RefCOCO rule, SPEC §7);
* frames: :func:`clamp_box`, :func:`input_to_original` (truncation, as the release),
  :func:`original_to_input` (rounding, for SFT targets), :func:`xywh_to_xyxy` (COCO boxes);
* the crop: :func:`widen_and_shift` (28-px minimum, shifted inside the image, never padded),
  :func:`crop_window` (the release's crop path with every malformed case defined), :func:`crop_image`;
* overlap: :func:`iou`, :func:`giou`, :func:`giou_score` (the GIoU metric of SPEC §3), :func:`best_giou_score`.

Regex safety: the release's box regex, ``\\d+\\.?\\d*`` four times, backtracks catastrophically on long digit
runs (``"[" + ",".join(["1" * 50] * 4)`` with no closing bracket takes seconds, 100 digits minutes): a
sampled turn could stall a training step. Matching here uses :data:`SAFE_RELEASE_BOX_PATTERN`, which accepts
exactly the same strings with the same groups (``\\d+\\.?\\d*`` and ``\\d+(?:\\.\\d*)?`` are one language, and
each number is delimited by a non-digit) but backtracks linearly; a property test pins the equivalence.
:data:`RELEASE_BOX_PATTERN` keeps the release's text for reference and documentation.
"""

from __future__ import annotations

import logging
import math
import operator
import re
from dataclasses import dataclass
from numbers import Real
from typing import TYPE_CHECKING, Literal, Optional, Sequence

if TYPE_CHECKING:  # PIL is only needed by crop_image; keep `import ground_r1.boxes` light.
    from PIL import Image

logger = logging.getLogger(__name__)

Box = tuple[float, float, float, float]
IntBox = tuple[int, int, int, int]
BoxLike = Sequence[float]

# The release's box regex, character for character (SPEC §2): four non-negative numbers in brackets.
RELEASE_BOX_PATTERN = r"\[\s*(\d+\.?\d*)\s*,\s*(\d+\.?\d*)\s*,\s*(\d+\.?\d*)\s*,\s*(\d+\.?\d*)\s*\]"

# The same language and groups as RELEASE_BOX_PATTERN, without its catastrophic backtracking (module doc).
_UNSIGNED = r"(\d+(?:\.\d*)?)"
SAFE_RELEASE_BOX_PATTERN = r"\[\s*" + r"\s*,\s*".join([_UNSIGNED] * 4) + r"\s*\]"

# The RefCOCO evaluation rule of the release (SPEC §7): as above with an optional leading minus.
_SIGNED = r"(-?\d+(?:\.\d*)?)"
SIGNED_BOX_PATTERN = r"\[\s*" + r"\s*,\s*".join([_SIGNED] * 4) + r"\s*\]"

# Inside our <box> tag: a sign (+/-) and a bare leading dot (".5") are accepted too. No exponents, no
# "nan"/"inf" words: a list holding them does not match at all.
_TAG_NUMBER = r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))"
TAG_BOX_PATTERN = r"\[\s*" + r"\s*,\s*".join([_TAG_NUMBER] * 4) + r"\s*\]"

_RELEASE_BOX_RE = re.compile(SAFE_RELEASE_BOX_PATTERN)
_SIGNED_BOX_RE = re.compile(SIGNED_BOX_PATTERN)
_TAG_BOX_RE = re.compile(TAG_BOX_PATTERN)

BOX_OPEN, BOX_CLOSE = "<box>", "</box>"

# A coordinate beyond this magnitude is absurd for any image a VLM sees (smart_resize caps inputs far below
# it): such a candidate is rejected and the next candidate is tried (parse_box).
MAX_COORDINATE = 1e6

# Release values (SPEC §2): crops are widened to at least 28 px a side, and boxes with an aspect ratio of
# 200 or more are rejected (smart_resize refuses such images).
MIN_CROP_SIZE = 28
MAX_ASPECT_RATIO = 200.0

SOURCE_BOX_TAG = "box_tag"
SOURCE_RELEASE_REGEX = "release_regex"
FALLBACKS = ("full_image", "none")


# ---------------------------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class ParsedBox:
    """A box parsed from a model turn.

    Attributes:
        box: ``(x1, y1, x2, y2)``. From :func:`parse_box`: ``x1 <= x2`` and ``y1 <= y2``, every value finite, in
            ``[0, 1e6]``. From ``parse_turn_box(..., "release")``: the numbers exactly as written (maybe inverted,
            maybe ``inf`` for an absurd digit run), as the release read them; the crop orders and checks them.
        source: ``"box_tag"`` (found inside the first ``<box>...</box>``) or ``"release_regex"`` (the
            release's rule anywhere in the turn).
        raw: the matched text, e.g. ``"[10, 20, 30, 40]"``.
    """

    box: Box
    source: Literal["box_tag", "release_regex"]
    raw: str


def order_corners(box: BoxLike) -> Box:
    """``(min x, min y, max x, max y)``: an inverted box gets its corners re-ordered (our departure from the
    release, SPEC §2). Meant for NaN-free boxes (``min``/``max`` do not order NaN)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def _candidate(values: Sequence[str], allow_negative: bool) -> Optional[Box]:
    """Four matched number strings -> an ordered box, or None when a value is non-finite or absurd."""
    numbers = [float(v) for v in values]  # a digit string never raises; a huge one becomes inf
    if not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for v in numbers):
        return None
    if allow_negative:
        numbers = [max(v, 0.0) for v in numbers]  # negatives clamp to 0 (SPEC §2, ours)
    return order_corners(numbers)


def parse_box(text: object) -> Optional[ParsedBox]:
    """Parse the grounding box of one assistant turn (ours, SPEC §2). Never raises.

    Rule, candidates tried in this order, the first valid one wins:

    1. every ``[a, b, c, d]`` list inside the FIRST ``<box>...</box>`` (closed tag; exact lowercase tags),
       numbers may carry a sign or be written ``.5``; negative values clamp to 0;
    2. every ``[a, b, c, d]`` of non-negative numbers anywhere in the turn (the release's rule), in order of
       appearance: a list holding a negative number does not match and is skipped, as in the release.

    A candidate is invalid, and the next one is tried, when a value is not finite (a digit string too long
    for a float) or its magnitude exceeds ``MAX_COORDINATE`` (1e6). Words like ``nan``/``inf`` and exponents
    never match a number. No valid candidate, an empty string or a non-``str`` input -> ``None``.

    Departures from the release (documented, SPEC §2): the ``<box>`` tag is looked into first; inside it
    negatives are accepted and clamp to 0; an inverted box (``x1 > x2`` or ``y1 > y2``) has its corners
    re-ordered, where the release turned it into a 28-px box around its midpoint. A zero-area box is still a
    parsed box (the crop widens it to the minimum size, the GIoU scores it 0).

    Example: ``parse_box("[1,2,3,4] <box>[-5, 20, 8, 10]</box>")`` -> box ``(0, 10, 8, 20)`` from the tag.
    """
    if not isinstance(text, str) or not text:
        return None
    start = text.find(BOX_OPEN)
    if start >= 0:
        end = text.find(BOX_CLOSE, start + len(BOX_OPEN))
        if end >= 0:
            inside = text[start + len(BOX_OPEN) : end]
            for match in _TAG_BOX_RE.finditer(inside):
                box = _candidate(match.groups(), allow_negative=True)
                if box is not None:
                    return ParsedBox(box=box, source=SOURCE_BOX_TAG, raw=match.group(0))
    for match in _RELEASE_BOX_RE.finditer(text):
        box = _candidate(match.groups(), allow_negative=False)
        if box is not None:
            return ParsedBox(box=box, source=SOURCE_RELEASE_REGEX, raw=match.group(0))
    return None


def parse_box_release(text: object) -> Optional[Box]:
    """The release's exact rule alone (SPEC §2), for fidelity presets and tests: the first match of
    :data:`RELEASE_BOX_PATTERN` anywhere in the text, as floats, exactly as written (no re-ordering, no
    clamping, no magnitude check: a digit string too long for a float gives ``inf``, as ``float()`` does in
    the release). ``None`` when nothing matches or the input is not a ``str``. Never raises."""
    if not isinstance(text, str):
        return None
    match = _RELEASE_BOX_RE.search(text)
    if match is None:
        return None
    x1, y1, x2, y2 = (float(v) for v in match.groups())
    return (x1, y1, x2, y2)


BOX_PARSE_RULES = ("tag_first", "release")


def parse_turn_box(text: object, rule: str = "tag_first") -> Optional[ParsedBox]:
    """The box of one assistant turn under the configured rule (config key ``box_parse``, SPEC §2).

    ``"tag_first"`` (ours, the default): :func:`parse_box`. ``"release"``: the release's rule alone
    (:func:`parse_box_release`): the first ``[a,b,c,d]`` of non-negative numbers anywhere in the turn, values as
    written (source ``"release_regex"``). The crop treats both the same way afterwards (corners ordered, clamped,
    widened). Never raises for any text.

    Raises:
        ValueError: an unknown ``rule`` (the valid names are listed).
    """
    if rule == "tag_first":
        return parse_box(text)
    if rule != "release":
        raise ValueError(f"unknown box_parse rule {rule!r}; valid: {', '.join(BOX_PARSE_RULES)}")
    if not isinstance(text, str):
        return None
    match = _RELEASE_BOX_RE.search(text)
    if match is None:
        return None
    box = parse_box_release(match.group(0))
    return ParsedBox(box=box, source=SOURCE_RELEASE_REGEX, raw=match.group(0)) if box is not None else None


def parse_first_box_signed(text: object) -> Optional[Box]:
    """The RefCOCO evaluation rule (SPEC §7): the first ``[a, b, c, d]`` of numbers, negatives allowed,
    anywhere in the text, as floats exactly as written (no re-ordering, no clamping: the IoU of an inverted
    box is 0). JSON such as ``[{"bbox_2d": [12, -3, 140.5, 260], "label": "cat"}]`` parses, since its box is
    the first list of four numbers. A candidate with a non-finite value (a digit string too long for a
    float) is skipped. ``None`` when nothing matches or the input is not a ``str``. Never raises."""
    if not isinstance(text, str):
        return None
    for match in _SIGNED_BOX_RE.finditer(text):
        x1, y1, x2, y2 = (float(v) for v in match.groups())
        if all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            return (x1, y1, x2, y2)
    return None


# ----------------------------------------------------------------------------------------------- frames


def _finite_box(box: object) -> Optional[Box]:
    """Four finite numbers -> a float box; anything else -> None (never raises). Numbers are anything
    ``float()`` takes except text and bools (so numpy scalars and 0-d tensors pass, ``"12"`` does not)."""
    try:
        values = tuple(box)  # type: ignore[arg-type]
    except TypeError:
        return None
    if len(values) != 4:
        return None
    floats = []
    for value in values:
        if isinstance(value, (str, bytes, bytearray, bool)):
            return None
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):  # not a number, or an int too large for a float
            return None
        if not math.isfinite(number):
            return None
        floats.append(number)
    return (floats[0], floats[1], floats[2], floats[3])


def _positive_int(value: object) -> Optional[int]:
    """An integer >= 1 (an int, a numpy/torch integer, or a float with an integral value), else None."""
    if isinstance(value, bool):
        return None
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        if not isinstance(value, Real) or not math.isfinite(float(value)) or not float(value).is_integer():
            return None
        number = int(value)
    return number if number >= 1 else None


def _check_size(size: object, name: str) -> tuple[int, int]:
    """An image size ``(width, height)`` of positive integers, or a ValueError saying what is wrong."""
    try:
        width, height = size  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (width, height), got {size!r}") from None
    checked_w, checked_h = _positive_int(width), _positive_int(height)
    if checked_w is None or checked_h is None:
        raise ValueError(f"{name} must be two positive integers (width, height), got {size!r}")
    return checked_w, checked_h


def _check_box_not_nan(box: BoxLike, name: str) -> Box:
    values = tuple(float(v) for v in box)
    if len(values) != 4:
        raise ValueError(f"{name} must have 4 values (x1, y1, x2, y2), got {box!r}")
    if any(math.isnan(v) for v in values):
        raise ValueError(f"{name} holds NaN: {box!r}; check for a finite box first (crop_window does)")
    return values  # type: ignore[return-value]


def clamp_box(box: BoxLike, width: float, height: float) -> Box:
    """Clamp each coordinate into ``[0, width]`` / ``[0, height]``; the corner order is kept (see
    :func:`order_corners`). ``±inf`` clamps to the edges.

    Raises:
        ValueError: a value is NaN (it has no place to clamp to).
    """
    x1, y1, x2, y2 = _check_box_not_nan(box, "box")
    return (
        min(max(x1, 0.0), float(width)),
        min(max(y1, 0.0), float(height)),
        min(max(x2, 0.0), float(width)),
        min(max(y2, 0.0), float(height)),
    )


def input_to_original(box: BoxLike, input_size: tuple[int, int], original_size: tuple[int, int]) -> IntBox:
    """Model-input pixels -> original pixels, as the release did (SPEC §2): clamp to the input size, then
    ``int(x * W_orig / input_width)`` (truncation toward 0, i.e. floor since clamped values are >= 0).

    The release wrote ``int(x / input_width * W_orig)``; multiplying first is exact for integer inputs
    (one rounding), so the two agree except where the release's float rounding fell just below an integer.

    Example: input 448x336 of an original 1000x750, x = 100 -> int(100000 / 448) = int(223.2) = 223.

    Raises:
        ValueError: a size is not two positive integers, or the box holds NaN.
    """
    in_w, in_h = _check_size(input_size, "input_size")
    orig_w, orig_h = _check_size(original_size, "original_size")
    x1, y1, x2, y2 = clamp_box(box, in_w, in_h)
    return (
        int(x1 * orig_w / in_w),
        int(y1 * orig_h / in_h),
        int(x2 * orig_w / in_w),
        int(y2 * orig_h / in_h),
    )


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def original_to_input(box: BoxLike, original_size: tuple[int, int], input_size: tuple[int, int]) -> IntBox:
    """Original pixels -> model-input pixels, rounded half up (not Python's half-to-even ``round``), after
    clamping to the original size: the integer targets of Ground SFT (SPEC §8) and the input-frame view of a
    RefCOCO box (SPEC §7). Example: original 1000 -> input 500, x = 5 -> 2.5 -> 3.

    Raises:
        ValueError: a size is not two positive integers, or the box holds NaN.
    """
    orig_w, orig_h = _check_size(original_size, "original_size")
    in_w, in_h = _check_size(input_size, "input_size")
    x1, y1, x2, y2 = clamp_box(box, orig_w, orig_h)
    return (
        _round_half_up(x1 * in_w / orig_w),
        _round_half_up(y1 * in_h / orig_h),
        _round_half_up(x2 * in_w / orig_w),
        _round_half_up(y2 * in_h / orig_h),
    )


def xywh_to_xyxy(box: BoxLike) -> Box:
    """COCO ``(x, y, width, height)`` -> ``(x1, y1, x2, y2)`` (the RefCOCO files' ``bboxs``, SPEC §7)."""
    x, y, w, h = (float(v) for v in box)
    return (x, y, x + w, y + h)


# ------------------------------------------------------------------------------------------------- crop


def _widen_axis(lo: int, hi: int, size: int, min_size: int) -> tuple[int, int]:
    """One axis of :func:`widen_and_shift`; expects ``0 <= lo <= hi <= size``."""
    target = min(min_size, size)
    if hi - lo < target:
        # The release's widening: s on each side, one more pixel at the far end when the gap is odd.
        s = (target - (hi - lo)) // 2
        lo, hi = lo - s, hi + s
        if hi - lo < target:
            hi += 1
    # Shift (never pad) the window back inside the image: its width is <= size, so one shift suffices.
    if lo < 0:
        lo, hi = 0, hi - lo
    if hi > size:
        lo, hi = lo - (hi - size), size
    return lo, hi


def widen_and_shift(box: BoxLike, image_size: tuple[int, int], min_size: int = MIN_CROP_SIZE) -> IntBox:
    """Widen a box to at least ``min_size`` pixels a side around its centre, then shift it inside the image
    (SPEC §2, §8). The box is first ordered, clamped to the image and rounded outward to whole pixels.

    The widening is the release's (``s = (min_size - w) // 2`` each side, +1 at the far end when odd); the
    release then cropped outside the image, which PIL pads with black: we shift the window inside instead.
    An image side shorter than ``min_size`` gives a window spanning that whole side.

    Example: a 10-px box ``x in [985, 995]`` of a 1000-px-wide image widens to [976, 1004] and shifts to
    [972, 1000].

    Raises:
        ValueError: the image size is not two positive integers, ``min_size < 1``, or the box holds NaN.
    """
    width, height = _check_size(image_size, "image_size")
    checked_min = _positive_int(min_size)
    if checked_min is None:
        raise ValueError(f"min_size must be a positive integer, got {min_size!r}")
    min_size = checked_min
    x1, y1, x2, y2 = clamp_box(order_corners(_check_box_not_nan(box, "box")), width, height)
    x_lo, x_hi = _widen_axis(math.floor(x1), math.ceil(x2), width, min_size)
    y_lo, y_hi = _widen_axis(math.floor(y1), math.ceil(y2), height, min_size)
    return (x_lo, y_lo, x_hi, y_hi)


@dataclass(frozen=True)
class CropWindow:
    """Where to crop the original image.

    Attributes:
        box: ``(x1, y1, x2, y2)`` in original pixels, inside the image, each side >= min(28, image side).
        is_fallback: True when the full image was used because there was no valid box (SPEC §2).
    """

    box: IntBox
    is_fallback: bool


def _valid_window(
    box_in_input: object,
    input_size: tuple[int, int],
    original_size: tuple[int, int],
    min_size: int,
    max_aspect_ratio: float,
) -> tuple[Optional[IntBox], str]:
    """The crop window of a box, or ``(None, why)`` when the box is not valid."""
    box = _finite_box(box_in_input)
    if box is None:
        return None, "not four finite numbers"
    x1, y1, x2, y2 = clamp_box(order_corners(box), *input_size)
    # A box of zero area after clamping (a point, a line, a box past the right or bottom edge) is widened to the
    # minimum crop like any small box and shifted inside the image, as the release did (SPEC §2).
    orig = input_to_original((x1, y1, x2, y2), input_size, original_size)
    # The release measured the aspect ratio after widening, on the widened box in original pixels (SPEC §2
    # lists "widen" before "reject"): a side shorter than min_size counts as min_size. Truncation can leave a
    # side of 0 original pixels (an input larger than its original); it widens like any short side.
    wide_w = max(orig[2] - orig[0], min_size)
    wide_h = max(orig[3] - orig[1], min_size)
    if max(wide_w, wide_h) / min(wide_w, wide_h) >= max_aspect_ratio:
        return None, f"aspect ratio {max(wide_w, wide_h) / min(wide_w, wide_h):.1f} >= {max_aspect_ratio}"
    return widen_and_shift(orig, original_size, min_size), ""


def crop_window(
    box_in_input: Optional[BoxLike],
    input_size: tuple[int, int],
    original_size: tuple[int, int],
    min_size: int = MIN_CROP_SIZE,
    max_aspect_ratio: float = MAX_ASPECT_RATIO,
    fallback: str = "full_image",
) -> Optional[CropWindow]:
    """The crop of the original image for a box the model wrote in input pixels (SPEC §2).

    The release's path: order the corners (ours) and clamp to the input size; rescale to original pixels
    by truncation (:func:`input_to_original`); reject an aspect ratio >= ``max_aspect_ratio`` measured on
    the box widened to ``min_size`` (as the release did, after widening); widen to ``min_size`` a side and
    shift inside the image (:func:`widen_and_shift`).

    A box of zero area after clamping (a point, a line, a box entirely right of or below the input image) is
    widened to ``min_size`` a side and shifted inside the image like any small box, as the release did (SPEC §2).

    Invalid boxes, the only ones that get the fallback (SPEC §2: no box parsed, or an aspect ratio >= 200):
    ``None``; anything that is not four finite real numbers (NaN, inf, strings); the aspect-ratio rejection.
    For those, ``fallback="full_image"`` (the release's, the faithful default) returns the whole
    image with ``is_fallback=True``; ``fallback="none"`` returns ``None``.

    Raises (only for wrong arguments, never for any box):
        ValueError: an unknown ``fallback``, a size that is not two positive integers, ``min_size < 1``, or
            ``max_aspect_ratio <= 1``.
    """
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown crop fallback {fallback!r}; valid names: {', '.join(FALLBACKS)}")
    input_size = _check_size(input_size, "input_size")
    original_size = _check_size(original_size, "original_size")
    checked_min = _positive_int(min_size)
    if checked_min is None:
        raise ValueError(f"min_size must be a positive integer, got {min_size!r}")
    min_size = checked_min
    if not (isinstance(max_aspect_ratio, Real) and max_aspect_ratio > 1):
        raise ValueError(f"max_aspect_ratio must be a number > 1, got {max_aspect_ratio!r}")

    window, why = _valid_window(box_in_input, input_size, original_size, min_size, max_aspect_ratio)
    if window is not None:
        return CropWindow(box=window, is_fallback=False)
    logger.debug("no valid crop box (%s): %r; fallback %s", why, box_in_input, fallback)
    if fallback == "none":
        return None
    return CropWindow(box=(0, 0, original_size[0], original_size[1]), is_fallback=True)


def crop_image(image: "Image.Image", window: CropWindow) -> "Image.Image":
    """Cut ``window`` out of the original full-resolution image (a real zoom-in, SPEC §2).

    Raises:
        ValueError: the window does not lie inside this image (PIL would pad it with black; a window made
            by :func:`crop_window` for this image's size always lies inside).
    """
    x1, y1, x2, y2 = window.box
    width, height = image.size
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise ValueError(
            f"crop window {window.box} does not lie inside the {width}x{height} image; build it with "
            "crop_window(..., original_size=image.size)"
        )
    return image.crop((x1, y1, x2, y2))


# ---------------------------------------------------------------------------------------------- overlap


def _area_box(box: object) -> Optional[tuple[Box, float]]:
    """A box and its area, or None when degenerate: non-finite values, or an area that is not a finite
    positive number (zero or negative width/height, inverted corners, overflow)."""
    values = _finite_box(box)
    if values is None:
        return None
    x1, y1, x2, y2 = values
    area = (x2 - x1) * (y2 - y1)
    if not (x2 > x1 and y2 > y1 and math.isfinite(area) and area > 0):
        return None
    return values, area


def iou(a: BoxLike, b: BoxLike) -> float:
    """Intersection over union in [0, 1]; 0.0 when either box is degenerate (zero/negative area, inverted,
    non-finite)."""
    pa, pb = _area_box(a), _area_box(b)
    if pa is None or pb is None:
        return 0.0
    (ax1, ay1, ax2, ay2), area_a = pa
    (bx1, by1, bx2, by2), area_b = pb
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = area_a + area_b - inter
    if not (math.isfinite(union) and union > 0):
        return 0.0
    return min(1.0, max(0.0, inter / union))


def giou(a: BoxLike, b: BoxLike) -> float:
    """Generalized IoU in [-1, 1]: ``IoU - (C - U) / C``, C the smallest box enclosing both, U the union.
    A degenerate box (see :func:`iou`) gives -1.0, the minimum, so its :func:`giou_score` is 0."""
    pa, pb = _area_box(a), _area_box(b)
    if pa is None or pb is None:
        return -1.0
    (ax1, ay1, ax2, ay2), area_a = pa
    (bx1, by1, bx2, by2), area_b = pb
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = area_a + area_b - inter
    enclosing = (max(ax2, bx2) - min(ax1, bx1)) * (max(ay2, by2) - min(ay1, by1))
    if not (math.isfinite(union) and math.isfinite(enclosing) and union > 0 and enclosing > 0):
        return -1.0
    value = inter / union - (enclosing - union) / enclosing
    return min(1.0, max(-1.0, value))


def giou_score(pred: BoxLike, gt: BoxLike) -> float:
    """The GIoU metric of SPEC §3: ``(GIoU(pred, gt) + 1) / 2`` in [0, 1]; a degenerate box scores 0.

    Both boxes in the same frame (original pixels; the prediction rescaled and clamped, before min-size
    widening). Inverted corners are degenerate here: :func:`parse_box` has already re-ordered them."""
    return (giou(pred, gt) + 1.0) / 2.0


def best_giou_score(pred: BoxLike, gts: Sequence[BoxLike]) -> float:
    """The best :func:`giou_score` of ``pred`` over all evidence boxes (the second metric of SPEC §3).

    Raises:
        ValueError: ``gts`` is empty (there is nothing to score against; leave such records out).
    """
    if len(gts) == 0:
        raise ValueError("best_giou_score: no ground-truth boxes to score against; skip records without bboxs")
    return max(giou_score(pred, gt) for gt in gts)


__all__ = [
    "BOX_CLOSE",
    "BOX_OPEN",
    "BOX_PARSE_RULES",
    "Box",
    "CropWindow",
    "FALLBACKS",
    "IntBox",
    "MAX_ASPECT_RATIO",
    "MAX_COORDINATE",
    "MIN_CROP_SIZE",
    "ParsedBox",
    "RELEASE_BOX_PATTERN",
    "SAFE_RELEASE_BOX_PATTERN",
    "SIGNED_BOX_PATTERN",
    "SOURCE_BOX_TAG",
    "SOURCE_RELEASE_REGEX",
    "TAG_BOX_PATTERN",
    "best_giou_score",
    "clamp_box",
    "crop_image",
    "crop_window",
    "giou",
    "giou_score",
    "input_to_original",
    "iou",
    "order_corners",
    "original_to_input",
    "parse_box",
    "parse_box_release",
    "parse_first_box_signed",
    "parse_turn_box",
    "widen_and_shift",
    "xywh_to_xyxy",
]
