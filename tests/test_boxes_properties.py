"""Property tests of the box primitives (SPEC §2, §3): parsing never raises, crop windows always lie inside
the image with the minimum size, GIoU scores stay in [0, 1]."""

from __future__ import annotations

import math
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from ground_r1.boxes import (
    RELEASE_BOX_PATTERN,
    SAFE_RELEASE_BOX_PATTERN,
    best_giou_score,
    clamp_box,
    crop_window,
    giou_score,
    input_to_original,
    iou,
    order_corners,
    parse_box,
    parse_box_release,
    parse_first_box_signed,
)

EXAMPLES = settings(max_examples=200, deadline=None)

# Texts rich in the characters a box is made of, so the interesting paths are actually reached.
BOXY_TEXT = st.text(alphabet=st.sampled_from(list("[]0123456789.,-+ \n<>/boxnaif")), max_size=60)
ANY_TEXT = st.one_of(
    st.text(),
    st.binary().map(lambda raw: raw.decode("utf-8", errors="replace")),
    BOXY_TEXT,
    st.builds(lambda a, b: a + "<box>" + b + "</box>", st.text(max_size=20), BOXY_TEXT),
)

ANY_COORD = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-100.0, max_value=3000.0),
    st.integers(min_value=-(10**30), max_value=10**30),
)
SIDE = st.integers(min_value=1, max_value=5000)
MIN_SIZE = st.integers(min_value=1, max_value=64)


def _check_parsed(parsed) -> None:
    if parsed is None:
        return
    x1, y1, x2, y2 = parsed.box
    assert all(math.isfinite(v) and 0.0 <= v <= 1e6 for v in parsed.box)
    assert x1 <= x2 and y1 <= y2
    assert parsed.source in ("box_tag", "release_regex")
    assert parsed.raw.startswith("[") and parsed.raw.endswith("]")


@EXAMPLES
@given(ANY_TEXT)
def test_any_text_parses_without_raising(text: str) -> None:
    _check_parsed(parse_box(text))
    parse_box_release(text)
    parse_first_box_signed(text)


@EXAMPLES
@given(BOXY_TEXT)
def test_safe_pattern_matches_exactly_what_the_release_pattern_matches(text: str) -> None:
    # Short texts only: the release pattern itself backtracks catastrophically on long digit runs.
    assert re.findall(SAFE_RELEASE_BOX_PATTERN, text) == re.findall(RELEASE_BOX_PATTERN, text)


@EXAMPLES
@given(st.lists(ANY_COORD, min_size=4, max_size=4), SIDE, SIDE, SIDE, SIDE, MIN_SIZE)
def test_crop_window_is_inside_the_image_with_the_minimum_size(
    box: list, in_w: int, in_h: int, orig_w: int, orig_h: int, min_size: int
) -> None:
    window = crop_window(box, (in_w, in_h), (orig_w, orig_h), min_size=min_size)
    x1, y1, x2, y2 = window.box
    assert all(isinstance(v, int) for v in window.box)
    assert 0 <= x1 < x2 <= orig_w and 0 <= y1 < y2 <= orig_h
    assert x2 - x1 >= min(min_size, orig_w)
    assert y2 - y1 >= min(min_size, orig_h)
    if window.is_fallback:
        assert window.box == (0, 0, orig_w, orig_h)
    else:
        # A kept window contains the model's box, clamped and rescaled to original pixels.
        clamped = clamp_box(order_corners(box), in_w, in_h)
        rx1, ry1, rx2, ry2 = input_to_original(clamped, (in_w, in_h), (orig_w, orig_h))
        assert x1 <= rx1 and y1 <= ry1 and rx2 <= x2 and ry2 <= y2


@EXAMPLES
@given(ANY_TEXT, SIDE, SIDE, SIDE, SIDE)
def test_parse_then_crop_never_raises(text: str, in_w: int, in_h: int, orig_w: int, orig_h: int) -> None:
    parsed = parse_box(text)
    window = crop_window(parsed.box if parsed else None, (in_w, in_h), (orig_w, orig_h))
    assert window.is_fallback or parsed is not None


@EXAMPLES
@given(st.lists(ANY_COORD, min_size=4, max_size=4), st.lists(ANY_COORD, min_size=4, max_size=4))
def test_giou_score_and_iou_stay_in_range(a: list, b: list) -> None:
    score = giou_score(a, b)
    assert 0.0 <= score <= 1.0
    assert 0.0 <= iou(a, b) <= 1.0
    assert best_giou_score(a, [b, a]) >= score


@EXAMPLES
@given(st.lists(st.floats(min_value=-1000, max_value=1000), min_size=4, max_size=4))
def test_a_box_against_itself_scores_one_unless_degenerate(box: list) -> None:
    x1, y1, x2, y2 = box
    degenerate = not ((x2 - x1) * (y2 - y1) > 0 and x2 > x1 and y2 > y1)
    assert giou_score(box, box) == (0.0 if degenerate else 1.0)
