"""Box primitives (SPEC §2 parsing and crop, §3 GIoU, §7 RefCOCO, §8 Ground SFT crop): exact values,
each derived in a comment."""

from __future__ import annotations

import math
import re
import time

import pytest
from PIL import Image

from ground_r1 import boxes
from ground_r1.boxes import (
    RELEASE_BOX_PATTERN,
    CropWindow,
    ParsedBox,
    best_giou_score,
    clamp_box,
    crop_image,
    crop_window,
    giou,
    giou_score,
    input_to_original,
    iou,
    original_to_input,
    parse_box,
    parse_box_release,
    parse_first_box_signed,
    parse_turn_box,
    widen_and_shift,
    xywh_to_xyxy,
)

# ------------------------------------------------------------------------------------------ parse_box


def test_release_pattern_is_the_release_text() -> None:
    # Pinned character for character (SPEC §2); other modules build on it (format reward).
    assert RELEASE_BOX_PATTERN == (r"\[\s*(\d+\.?\d*)\s*,\s*(\d+\.?\d*)\s*,\s*(\d+\.?\d*)\s*,\s*(\d+\.?\d*)\s*\]")


def test_box_tag_wins_over_an_earlier_list() -> None:
    # The release's rule would take the first list anywhere, [1,2,3,4]; ours looks inside <box> first.
    text = "<think>compare [1,2,3,4]</think> <box>[10, 20, 30.5, 40]</box>"
    assert parse_box(text) == ParsedBox(box=(10.0, 20.0, 30.5, 40.0), source="box_tag", raw="[10, 20, 30.5, 40]")
    assert parse_box_release(text) == (1.0, 2.0, 3.0, 4.0)


def test_release_regex_used_when_there_is_no_tag() -> None:
    parsed = parse_box("<think>look</think> the region [5, 6, 70, 80] holds it")
    assert parsed == ParsedBox(box=(5.0, 6.0, 70.0, 80.0), source="release_regex", raw="[5, 6, 70, 80]")


def test_negative_inside_tag_clamps_to_zero() -> None:
    # -5 -> 0 (ours); the release's regex cannot match a minus sign at all, so it finds nothing.
    text = "<think>t</think><box>[-5, 10.5, 100, 200]</box>"
    expected = ParsedBox(box=(0.0, 10.5, 100.0, 200.0), source="box_tag", raw="[-5, 10.5, 100, 200]")
    assert parse_box(text) == expected
    assert parse_box_release(text) is None


def test_release_rule_skips_a_list_with_a_negative_number() -> None:
    # No tag: [-1,2,3,4] does not match the release regex, so the next list wins.
    text = "first [-1, 2, 3, 4] then [5, 6, 7, 8]"
    assert parse_box(text) == ParsedBox(box=(5.0, 6.0, 7.0, 8.0), source="release_regex", raw="[5, 6, 7, 8]")
    assert parse_box_release(text) == (5.0, 6.0, 7.0, 8.0)


def test_inverted_corners_are_reordered() -> None:
    # (100, 200, 10, 20) -> x: min(100, 10)=10, max=100; y: min(200, 20)=20, max=200. The release keeps the
    # raw order (and later made a 28-px box around the midpoint).
    assert parse_box("<box>[100, 200, 10, 20]</box>").box == (10.0, 20.0, 100.0, 200.0)
    assert parse_box("[100, 20, 10, 200]").box == (10.0, 20.0, 100.0, 200.0)
    assert parse_box_release("[100, 200, 10, 20]") == (100.0, 200.0, 10.0, 20.0)


def test_negative_and_inverted_together() -> None:
    # [-5, 20, 8, 10]: -5 -> 0, then x (0, 8), y (10, 20).
    assert parse_box("[1,2,3,4] <box>[-5, 20, 8, 10]</box>").box == (0.0, 10.0, 8.0, 20.0)


def test_huge_value_rejects_the_candidate_and_the_next_one_is_tried() -> None:
    # 10,000,000 > MAX_COORDINATE (1e6): the tag's only list is rejected; the release rule then finds the
    # same list first (rejected again) and the second tag's list [1,2,3,4].
    text = "<box>[1, 2, 3, 10000000]</box> <box>[1,2,3,4]</box>"
    assert parse_box(text) == ParsedBox(box=(1.0, 2.0, 3.0, 4.0), source="release_regex", raw="[1,2,3,4]")
    # Exactly 1e6 is still accepted (the bound is inclusive).
    assert parse_box("<box>[0, 0, 1000000, 5]</box>").box == (0.0, 0.0, 1e6, 5.0)
    assert parse_box("<box>[1, 2, 3, 10000000]</box>") is None


def test_digit_string_too_long_for_a_float_is_rejected() -> None:
    # float("9" * 400) is inf: the candidate is invalid; parse_box_release returns it as the release did.
    text = f"[{'9' * 400}, 1, 2, 3]"
    assert parse_box(text) is None
    assert parse_box_release(text) == (math.inf, 1.0, 2.0, 3.0)


def test_nan_and_inf_words_never_match() -> None:
    assert parse_box("<box>[nan, 1, 2, 3]</box>") is None
    assert parse_box("<box>[inf, 1, 2, 3]</box> [1e3, 1, 2, 3]") is None
    # ... and do not hide a later valid list.
    assert parse_box("<box>[nan, 1, 2, 3]</box> [4, 5, 6, 7]").box == (4.0, 5.0, 6.0, 7.0)


def test_first_of_several_boxes_wins() -> None:
    text = "<box>[1,2,3,4]</box><box>[5,6,7,8]</box> [9,9,9,9]"
    assert parse_box(text).box == (1.0, 2.0, 3.0, 4.0)
    # Only the FIRST tag is looked into with the signed rule: the second tag's negative list is skipped by
    # the release rule, which then finds [9,9,9,9].
    text = "<box>no box here</box><box>[-1,2,3,4]</box> [9,9,9,9]"
    assert parse_box(text) == ParsedBox(box=(9.0, 9.0, 9.0, 9.0), source="release_regex", raw="[9,9,9,9]")


def test_tag_accepts_spaces_floats_sign_and_bare_dot() -> None:
    # "+3" -> 3, ".5" -> 0.5, "7." -> 7.0, newlines are whitespace.
    parsed = parse_box("<box>[ +3 ,\n.5,  7. , 12.25 ]</box>")
    assert parsed == ParsedBox(box=(3.0, 0.5, 7.0, 12.25), source="box_tag", raw="[ +3 ,\n.5,  7. , 12.25 ]")


def test_unclosed_tag_falls_back_to_the_release_rule() -> None:
    # A turn cut by the token limit: "<box>[1,2,3,4]" with no "</box>" is found by the release rule.
    assert parse_box("<think>t</think><box>[1,2,3,4]").source == "release_regex"
    assert parse_box("<think>t</think><box>[-1,2,3,4]") is None


def test_empty_and_malformed_texts() -> None:
    assert parse_box("") is None
    assert parse_box("<box></box>") is None
    assert parse_box("<box>[1, 2, 3]</box>") is None
    assert parse_box("[1,2,3,4,5]") is None  # five numbers is not a box
    assert parse_box("[1;2;3;4]") is None


@pytest.mark.parametrize("value", [None, 123, 1.5, b"[1,2,3,4]", ["[1,2,3,4]"], {"box": [1, 2, 3, 4]}])
def test_non_string_input_is_none(value: object) -> None:
    assert parse_box(value) is None
    assert parse_box_release(value) is None
    assert parse_first_box_signed(value) is None


def test_zero_area_box_is_still_parsed() -> None:
    # Parsing reports what the model wrote; the crop and the GIoU judge the box.
    assert parse_box("<box>[5, 5, 5, 5]</box>").box == (5.0, 5.0, 5.0, 5.0)


def test_pathological_digit_runs_parse_fast() -> None:
    # The release regex needs seconds for 4 x 50 digits with no closing bracket (catastrophic
    # backtracking); the safe equivalent used for matching is linear. 4 x 5,000 digits must stay fast.
    text = "<box>[" + ",".join(["1" * 5000] * 4) + " " + "[" + ",".join(["2" * 5000] * 4)
    start = time.perf_counter()
    assert parse_box(text) is None
    assert parse_box_release(text) is None
    assert parse_first_box_signed(text) is None
    assert time.perf_counter() - start < 1.0


def test_safe_pattern_agrees_with_the_release_pattern_on_examples() -> None:
    texts = ["[1,2,3,4]", "[1., 2.5 ,3,4 ]", "[1.2.3,4,5,6] [7,8,9,10]", "[01,2,3,4]", "[1,2,3,4.]"]
    for text in texts:
        assert re.findall(boxes.SAFE_RELEASE_BOX_PATTERN, text) == re.findall(RELEASE_BOX_PATTERN, text)


# ------------------------------------------------------------------------------------ RefCOCO parse


def test_signed_parse_allows_negatives_and_json() -> None:
    # Qwen2.5-VL's JSON grounding answer: the first list of four numbers is the bbox_2d.
    text = '```json\n[{"bbox_2d": [-3, 12, 140.5, 260], "label": "the cat"}]\n```'
    assert parse_first_box_signed(text) == (-3.0, 12.0, 140.5, 260.0)
    # No re-ordering (the IoU of an inverted box is 0), first match wins.
    assert parse_first_box_signed("[30, 40, 10, 20] [1, 2, 3, 4]") == (30.0, 40.0, 10.0, 20.0)
    assert parse_first_box_signed("no box") is None
    # A non-finite candidate is skipped.
    assert parse_first_box_signed(f"[-{'9' * 400}, 0, 1, 1] [1, 2, 3, 4]") == (1.0, 2.0, 3.0, 4.0)


def test_xywh_to_xyxy() -> None:
    # COCO (x, y, w, h) = (10.5, 20, 30, 40) -> (10.5, 20, 40.5, 60).
    assert xywh_to_xyxy([10.5, 20, 30, 40]) == (10.5, 20.0, 40.5, 60.0)


# ------------------------------------------------------------------------------------------- frames


def test_clamp_box() -> None:
    assert clamp_box((-5, 10, 500, 400), 448, 336) == (0.0, 10.0, 448.0, 336.0)
    assert clamp_box((math.inf, -math.inf, 1, 2), 448, 336) == (448.0, 0.0, 1.0, 2.0)
    with pytest.raises(ValueError, match="NaN"):
        clamp_box((math.nan, 0, 1, 1), 10, 10)


def test_input_to_original_truncates() -> None:
    # Input 448x336 of an original 1000x750 (scale 1000/448 = 750/336 = 2.232...):
    #   x1 = int(100 * 1000 / 448)   = int(223.21) = 223
    #   y1 = int(50 * 750 / 336)     = int(111.61) = 111
    #   x2 = int(300.5 * 1000 / 448) = int(670.76) = 670
    #   y2 = int(200 * 750 / 336)    = int(446.43) = 446
    assert input_to_original((100, 50, 300.5, 200), (448, 336), (1000, 750)) == (223, 111, 670, 446)


def test_input_to_original_clamps_to_the_input_first() -> None:
    # (400, 300, 500, 400) clamps to (400, 300, 448, 336):
    #   int(400 * 1000 / 448) = int(892.86) = 892; int(300 * 750 / 336) = int(669.64) = 669; 1000; 750.
    assert input_to_original((400, 300, 500, 400), (448, 336), (1000, 750)) == (892, 669, 1000, 750)
    assert input_to_original((-20, -1, 10, 10), (448, 336), (1000, 750)) == (0, 0, 22, 22)


def test_input_to_original_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="input_size"):
        input_to_original((0, 0, 1, 1), (0, 336), (1000, 750))
    with pytest.raises(ValueError, match="original_size"):
        input_to_original((0, 0, 1, 1), (448, 336), (1000.5, 750))


def test_original_to_input_rounds_half_up() -> None:
    # The inverse of the truncation example: (223, 111, 670, 446) * 0.448:
    #   223 * 448 / 1000 = 99.904 -> 100; 111 * 336 / 750 = 49.728 -> 50;
    #   670 * 0.448 = 300.16 -> 300;    446 * 0.448 = 199.808 -> 200.
    assert original_to_input((223, 111, 670, 446), (1000, 750), (448, 336)) == (100, 50, 300, 200)
    # 1000 -> 500: x = 5 -> 2.5 -> 3 (half up; Python's round would give 2), 7 -> 3.5 -> 4.
    assert original_to_input((5, 7, 9, 11), (1000, 1000), (500, 500)) == (3, 4, 5, 6)
    # Clamped to the original first: 2000 -> 1000 -> 500.
    assert original_to_input((-10, 0, 2000, 10), (1000, 1000), (500, 500)) == (0, 0, 500, 5)


# --------------------------------------------------------------------------------------------- crop


def test_widen_a_small_box_near_the_right_edge_shifts_inside() -> None:
    # Image 1000x750, box x [985, 995] (10 px), y [100, 110] (10 px):
    #   s = (28 - 10) // 2 = 9 -> x [976, 1004], y [91, 119] (28 px each);
    #   x ends 4 px past the image: shift left by 4 -> [972, 1000]. The release would crop to 1004 (black pad).
    assert widen_and_shift((985, 100, 995, 110), (1000, 750)) == (972, 91, 1000, 119)


def test_widen_odd_gap_and_left_edge() -> None:
    # Width 5 at x [2, 7]: s = (28 - 5) // 2 = 11 -> [-9, 18] = 27 px -> +1 at the far end -> [-9, 19];
    # shift right by 9 -> [0, 28]. Height 40 >= 28: unchanged.
    assert widen_and_shift((2, 10, 7, 50), (1000, 750)) == (0, 10, 28, 50)


def test_widen_keeps_large_boxes_and_rounds_floats_outward() -> None:
    assert widen_and_shift((100, 100, 300, 200), (1000, 750)) == (100, 100, 300, 200)
    # floor(10.7) = 10, ceil(60.2) = 61; height [20.5, 80.9] -> [20, 81].
    assert widen_and_shift((10.7, 20.5, 60.2, 80.9), (1000, 750)) == (10, 20, 61, 81)


def test_widen_on_an_image_smaller_than_28_px_spans_the_side() -> None:
    # Image 20x10: x target min(28, 20) = 20, y target min(28, 10) = 10: the whole image.
    #   x [5, 8]: s = (20 - 3) // 2 = 8 -> [-3, 16] (19) -> [-3, 17] -> shift -> [0, 20].
    #   y [2, 4]: s = (10 - 2) // 2 = 4 -> [-2, 8] -> shift -> [0, 10].
    assert widen_and_shift((5, 2, 8, 4), (20, 10)) == (0, 0, 20, 10)
    # Only one side short: image 1000x10 -> y spans [0, 10], x widened normally:
    #   x [500, 510]: s = 9 -> [491, 519].
    assert widen_and_shift((500, 2, 510, 4), (1000, 10)) == (491, 0, 519, 10)


def test_widen_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="min_size"):
        widen_and_shift((0, 0, 1, 1), (10, 10), min_size=0)
    with pytest.raises(ValueError, match="NaN"):
        widen_and_shift((math.nan, 0, 1, 1), (10, 10))


def test_crop_window_release_path() -> None:
    # Input 448x336 of 1000x750: (100, 50, 300.5, 200) -> original (223, 111, 670, 446) (see the truncation
    # test); both sides >= 28, ratio 447/335 < 200: the window is the rescaled box.
    assert crop_window((100, 50, 300.5, 200), (448, 336), (1000, 750)) == CropWindow((223, 111, 670, 446), False)


def test_crop_window_small_box_is_widened_and_shifted() -> None:
    # Input 500x375 of 1000x750 (scale exactly 2): (492.5, 50, 497.5, 55) -> (985, 100, 995, 110) -> the
    # widening example above -> (972, 91, 1000, 119).
    assert crop_window((492.5, 50, 497.5, 55), (500, 375), (1000, 750)) == CropWindow((972, 91, 1000, 119), False)


def test_crop_window_inverted_box_is_reordered() -> None:
    # (300.5, 200, 100, 50) is the box of test_crop_window_release_path with its corners swapped.
    assert crop_window((300.5, 200, 100, 50), (448, 336), (1000, 750)) == CropWindow((223, 111, 670, 446), False)


def test_crop_window_aspect_ratio_200_is_rejected() -> None:
    # Input 600x400 of 6000x4000 (scale 10). (0, 100, 560, 101) -> original (0, 1000, 5600, 1010):
    # width 5600, height 10 widened to 28: 5600 / 28 = 200.0 >= 200 -> rejected -> full image.
    full = CropWindow((0, 0, 6000, 4000), True)
    assert crop_window((0, 100, 560, 101), (600, 400), (6000, 4000)) == full
    # One input pixel narrower: 5590 / 28 = 199.6 < 200 -> kept; y [1000, 1010] widens by s = 9 -> [991, 1019].
    assert crop_window((0, 100, 559, 101), (600, 400), (6000, 4000)) == CropWindow((0, 991, 5590, 1019), False)
    # The threshold is a parameter: 5590 / 28 = 199.6 >= 150 -> rejected.
    assert crop_window((0, 100, 559, 101), (600, 400), (6000, 4000), max_aspect_ratio=150) == full


@pytest.mark.parametrize(
    "box",
    [
        None,
        (math.nan, 0, 10, 10),
        (0, 0, math.inf, 10),
        ("1", 2, 3, 4),
        (1, 2, 3),
    ],
)
def test_crop_window_invalid_box_falls_back_to_the_full_image(box: object) -> None:
    assert crop_window(box, (448, 336), (1000, 750)) == CropWindow((0, 0, 1000, 750), True)
    assert crop_window(box, (448, 336), (1000, 750), fallback="none") is None


@pytest.mark.parametrize(
    ("box", "window"),
    [
        # Entirely right of / below the 448x336 input: clamps to the point (448, 336) -> original (1000, 750);
        # widened by 14 each side to [986, 1014] x [736, 764], shifted inside -> [972, 1000] x [722, 750].
        ((500, 400, 600, 500), (972, 722, 1000, 750)),
        # Zero width: x 10 -> int(22.3) = 22 widens to [8, 36]; y [10, 50] -> [22, 111] is already 89 px high.
        ((10, 10, 10, 50), (8, 22, 36, 111)),
        # A point inside: (224, 168) -> (500, 375), widened to [486, 514] x [361, 389].
        ((224, 168, 224, 168), (486, 361, 514, 389)),
        # Entirely left of / above the input: clamps to (0, 0, 0, 0), widened to [-14, 14], shifted to [0, 28].
        ((-50, -50, -1, -1), (0, 0, 28, 28)),
    ],
)
def test_crop_window_zero_area_box_is_widened_to_the_minimum_crop(box: tuple, window: tuple) -> None:
    # SPEC §2: a box of zero area after clamping is widened to the 28-px minimum and shifted inside the image, as
    # the release did; only an unparsed box or an aspect ratio >= 200 gets the full image.
    assert crop_window(box, (448, 336), (1000, 750)) == CropWindow(window, False)
    assert crop_window(box, (448, 336), (1000, 750), fallback="none") == CropWindow(window, False)


def test_crop_window_partly_outside_box_is_clamped() -> None:
    # (-20, 300, 50, 400) clamps to (0, 300, 50, 336) -> original (0, 669, int(111.6) = 111, 750).
    assert crop_window((-20, 300, 50, 400), (448, 336), (1000, 750)) == CropWindow((0, 669, 111, 750), False)


def test_crop_window_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="full_image, none"):
        crop_window((0, 0, 10, 10), (448, 336), (1000, 750), fallback="black")
    with pytest.raises(ValueError, match="original_size"):
        crop_window((0, 0, 10, 10), (448, 336), (1000, 0))
    with pytest.raises(ValueError, match="max_aspect_ratio"):
        crop_window((0, 0, 10, 10), (448, 336), (1000, 750), max_aspect_ratio=1)


def test_crop_image_cuts_the_window_from_the_original() -> None:
    # A 100x80 image whose pixel (x, y) holds (x, y, 0): the crop's top-left pixel is the window's corner.
    image = Image.new("RGB", (100, 80))
    image.putdata([(x, y, 0) for y in range(80) for x in range(100)])
    window = crop_window((45, 30, 47, 32), (100, 80), (100, 80))
    # 2-px box: s = 13 -> x [32, 60], y [17, 45].
    assert window == CropWindow((32, 17, 60, 45), False)
    crop = crop_image(image, window)
    assert crop.size == (28, 28)
    assert crop.getpixel((0, 0)) == (32, 17, 0)
    assert crop.getpixel((27, 27)) == (59, 44, 0)


def test_crop_image_refuses_a_window_outside_the_image() -> None:
    with pytest.raises(ValueError, match="does not lie inside"):
        crop_image(Image.new("RGB", (50, 50)), CropWindow((30, 30, 60, 60), False))


# ------------------------------------------------------------------------------------------ overlap


def test_iou_and_giou_overlapping() -> None:
    # a = (0,0,10,10), b = (5,5,15,15): intersection 5x5 = 25, union 100 + 100 - 25 = 175, IoU = 1/7;
    # enclosing 15x15 = 225; GIoU = 1/7 - (225 - 175)/225 = 1/7 - 2/9 = -5/63; score = (1 - 5/63)/2 = 29/63.
    a, b = (0, 0, 10, 10), (5, 5, 15, 15)
    assert iou(a, b) == pytest.approx(1 / 7, abs=1e-12)
    assert giou(a, b) == pytest.approx(-5 / 63, abs=1e-12)
    assert giou_score(a, b) == pytest.approx(29 / 63, abs=1e-12)


def test_giou_disjoint_is_negative() -> None:
    # a = (0,0,10,10), b = (20,0,30,10): IoU 0, union 200, enclosing 30x10 = 300:
    # GIoU = 0 - 100/300 = -1/3; score = (1 - 1/3)/2 = 1/3.
    a, b = (0, 0, 10, 10), (20, 0, 30, 10)
    assert iou(a, b) == 0.0
    assert giou(a, b) == pytest.approx(-1 / 3, abs=1e-12)
    assert giou_score(a, b) == pytest.approx(1 / 3, abs=1e-12)


def test_identical_boxes() -> None:
    assert iou((1, 2, 30, 40), (1, 2, 30, 40)) == 1.0
    assert giou((1, 2, 30, 40), (1, 2, 30, 40)) == 1.0
    assert giou_score((1, 2, 30, 40), (1, 2, 30, 40)) == 1.0


@pytest.mark.parametrize(
    "degenerate",
    [(5, 5, 5, 10), (5, 5, 10, 5), (10, 10, 0, 0), (math.nan, 0, 10, 10), (0, 0, math.inf, 10)],
)
def test_degenerate_box_scores_zero(degenerate: tuple) -> None:
    gt = (0, 0, 10, 10)
    assert giou_score(degenerate, gt) == 0.0
    assert giou_score(gt, degenerate) == 0.0
    assert iou(degenerate, gt) == 0.0


def test_best_giou_score_takes_the_max() -> None:
    # Against (20,0,30,10): 1/3 (disjoint example); against (0,0,10,10) itself: 1.
    pred = (0, 0, 10, 10)
    assert best_giou_score(pred, [(20, 0, 30, 10), (0, 0, 10, 10)]) == 1.0
    assert best_giou_score(pred, [(20, 0, 30, 10), (5, 5, 15, 15)]) == pytest.approx(29 / 63, abs=1e-12)
    with pytest.raises(ValueError, match="no ground-truth boxes"):
        best_giou_score(pred, [])


def test_parse_turn_box_follows_the_configured_rule() -> None:
    # box_parse (SPEC §2): ours looks inside <box> first; the release's rule takes the first non-negative list anywhere.
    text = "I compare [1, 2, 3, 4] first. <box>[40,30,10,20]</box>"
    ours = parse_turn_box(text, "tag_first")
    assert ours == ParsedBox((10.0, 20.0, 40.0, 30.0), "box_tag", "[40,30,10,20]")  # corners re-ordered
    release = parse_turn_box(text, "release")
    assert release == ParsedBox((1.0, 2.0, 3.0, 4.0), "release_regex", "[1, 2, 3, 4]")
    # The release rule keeps values as written (an inverted box stays inverted) and skips negative lists.
    assert parse_turn_box("<box>[-5,0,9,9]</box> [8,9,2,3]", "release").box == (8.0, 9.0, 2.0, 3.0)
    assert parse_turn_box("<box>[-5,0,9,9]</box>", "release") is None
    assert parse_turn_box("<box>[-5,0,9,9]</box>", "tag_first").box == (0.0, 0.0, 9.0, 9.0)
    assert parse_turn_box(None, "release") is None
    with pytest.raises(ValueError, match="unknown box_parse rule 'tag'; valid: tag_first, release"):
        parse_turn_box(text, "tag")
