"""RefCOCO/+/g grounding (SPEC §7): the released file format, per-item IoU, both Acc@0.5 protocols."""

from __future__ import annotations

import csv
import json

import pytest

from ground_r1.evaluation import refcoco

SAMPLE = "RefCOCO_eval_subset_1000.sample.jsonl"


def test_release_file_gives_one_item_per_expression(release_format_dir):
    path = release_format_dir / SAMPLE
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    items = refcoco.load_refcoco_items(path, image_root="/imgs")
    assert len(items) == sum(len(r["solution"]) for r in records)
    assert len({it.key for it in items}) == len(items)  # problem_id repeats across splits; keys do not
    # Line 3: RefCOCO/val, COCO xywh [462.94, 104.53, 108.56, 249.21] -> xyxy [462.94, 104.53, 571.50, 353.74].
    third = next(it for it in items if it.key == f"{SAMPLE}:3:1")
    assert (third.dataset, third.question, third.image) == (
        "RefCOCO/val",
        "second from rigth",
        "/imgs/RefCOCO/val/images/img_8369.png",
    )
    x, y, w, h = records[2]["bboxs"][0]
    assert third.fields["gt_box"] == [x, y, x + w, y + h]
    assert third.fields["gt_box"][2] == pytest.approx(571.50, abs=0.01)
    assert (third.fields["object_key"], third.fields["num_expressions"]) == (f"{SAMPLE}:3", 3)
    first_per_split = refcoco.load_refcoco_items(path, image_root="/imgs", max_objects_per_split=1)
    assert len({it.fields["object_key"] for it in first_per_split}) == 8  # 8 splits, one object each


def test_malformed_records_are_all_listed_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    good = {
        "image": "a.png",
        "width": 10,
        "height": 10,
        "bboxs": [[0, 0, 5, 5]],
        "dataset": "RefCOCO/val",
        "solution": ["x"],
    }
    bad.write_text(
        "\n".join(
            json.dumps(r) for r in [good, {**good, "bboxs": [[0, 0, -5, 5]]}, {**good, "solution": [], "width": 0}]
        )
        + "\n"
    )
    with pytest.raises(ValueError) as err:
        refcoco.load_refcoco_items(bad)
    message = str(err.value)
    assert "3 problem(s)" in message and "bad.jsonl:2: bboxs[0]: width and height must be > 0" in message
    assert "bad.jsonl:3: width" in message and "bad.jsonl:3: solution" in message


def prediction(key, object_key, text, gt_xywh, split="RefCOCO/val", input_size=(100, 100), original=(200, 200)):
    x, y, w, h = gt_xywh
    return {
        "key": key,
        "status": "ok",
        "dataset": split,
        "object_key": object_key,
        "turns": [text],
        "gt_box": [x, y, x + w, y + h],
        "trajectory": {"input_size": list(input_size), "original_size": list(original)},
    }


def test_box_is_rescaled_from_input_to_original_pixels():
    # Input 100x100 of a 200x200 original: x2. [10,10,50,50] -> (20,20,100,100) = the gt xywh [20,20,80,80].
    row = refcoco.score_prediction(
        prediction("a", "o", '[{"bbox_2d": [10, 10, 50, 50], "label": "dog"}]', [20, 20, 80, 80])
    )
    assert (row["box"], row["iou"], row["hit"]) == ([20, 20, 100, 100], 1.0, True)
    assert (row["box_release"], row["iou_release"], row["hit_release"]) == ([20, 20, 100, 100], 1.0, True)
    # Negatives are parsed (the release's non-negative regex would skip this list) and NOT clamped: (-10,0,100,100)
    # vs (0,0,100,100): IoU 10000 / 11000.
    row = refcoco.score_prediction(prediction("b", "o", "[-5, 0, 50, 50]", [0, 0, 100, 100]))
    assert (row["box"], row["iou"], row["hit"]) == ([-10, 0, 100, 100], pytest.approx(10 / 11), True)
    # IoU exactly 0.5 is a hit: (0,0,100,50) in original pixels vs (0,0,100,100): 5000 / 10000.
    row = refcoco.score_prediction(prediction("c", "o", "[0, 0, 50, 25]", [0, 0, 100, 100]))
    assert (row["iou"], row["hit"]) == (0.5, True)
    row = refcoco.score_prediction(prediction("d", "o", "I cannot tell", [0, 0, 100, 100]))
    assert (row["box"], row["iou"], row["hit"]) == (None, 0.0, False)
    assert (row["box_release"], row["hit_release"]) == (None, False)


def test_standard_and_any_expression_protocols_differ_on_a_hand_made_case():
    rows = [
        refcoco.score_prediction(p)
        for p in [
            prediction("A:0", "A", "[10, 10, 50, 50]", [20, 20, 80, 80]),  # hit
            prediction("A:1", "A", "[60, 60, 90, 90]", [20, 20, 80, 80]),  # miss (no overlap)
            prediction("B:0", "B", "[0, 0, 50, 50]", [0, 0, 100, 100]),  # hit
            prediction("C:0", "C", "no box here", [0, 0, 100, 100]),  # miss, no box
        ]
    ] + [{"key": "C:1", "dataset": "RefCOCO/val", "status": "error", "object_key": "C", "hit": None, "box": None}]
    (result,) = refcoco.accuracy_by_split(rows).values()
    # Standard: 2 hits of 4 scored expressions = 50.0. Any expression: objects A (any hit), B (hit), C (none) = 2/3;
    # the release's int() boxes agree on these integral boxes.
    assert (result.expressions, result.objects, result.standard, result.any_expression) == (
        4,
        3,
        0.5,
        pytest.approx(2 / 3),
    )
    assert (result.release, result.no_box, result.failures) == (pytest.approx(2 / 3), 1, 1)
    assert result.per_expression == {"A:0": True, "A:1": False, "B:0": True, "C:0": False}
    md = refcoco.render_markdown({"RefCOCO/val": result}, "ground_r1")
    assert md.splitlines()[0] == "## RefCOCO grounding (ground_r1), Acc@0.5 x100 (boxes rescaled in float, not clamped)"
    header = md.splitlines()[2]
    assert (
        header.index("standard (per expression)")
        < header.index("any expression (object hit by any")
        < header.index("release (any expression, int() boxes)")
    )
    # Error bars: hits 1, 1, 0, 0 over expressions -> s 0.577 / sqrt(4) = 28.9; objects 1, 1, 0 (any expression,
    # and the release's rule alike) -> 0.577 / sqrt(3) = 33.3.
    assert "| RefCOCO/val | 4 | 3 | 50.0 ± 28.9 | 66.7 ± 33.3 | 66.7 ± 33.3 | 1 | 1 |" in md
    lines = refcoco.render_csv({"RefCOCO/val": result}).splitlines()
    assert next(csv.reader([lines[0]]))[3:9] == [
        refcoco.PROTOCOL_LABELS["standard"],
        "standard_se",
        refcoco.PROTOCOL_LABELS["any_expression"],
        "any_expression_se",
        refcoco.PROTOCOL_LABELS["release"],
        "release_se",
    ]
    assert lines[1] == "RefCOCO/val,4,3,50.00,28.87,66.67,33.33,66.67,33.33,1,1"


def test_splits_are_listed_in_the_paper_order():
    result = refcoco.SplitResult(1, 1, 1.0, 1.0, 0, 0)
    md = refcoco.render_markdown(
        {"zzz/val": result, "RefCOCOg/test": result, "RefCOCO/testB": result, "RefCOCO/val": result}
    )
    rows = [line.split(" | ")[0][2:] for line in md.splitlines() if line.startswith("| ") and "split" not in line]
    assert rows == ["RefCOCO/val", "RefCOCO/testB", "RefCOCOg/test", "zzz/val"]


def test_synthetic_refcoco_file_is_in_the_release_format(tmp_path):
    path = refcoco.write_synthetic_refcoco(tmp_path, num_objects=2)
    items = refcoco.load_refcoco_items(path)
    assert [it.key for it in items] == [f"{path.name}:{n}:{j}" for n in (1, 2) for j in (0, 1)]
    record = json.loads(path.read_text().splitlines()[0])
    x, y, w, h = record["bboxs"][0]
    assert items[0].fields["gt_box"] == [x, y, x + w, y + h] and w > 0 and h > 0
    assert items[0].question.startswith("the ") and items[0].question.endswith(" card")
    assert (tmp_path / record["image"]).is_file()


def test_refcoco_box_outside_the_image_is_scored_unclamped(shared_dir):
    # The release file's first object: RefCOCO/testB, 500x375, gt xywh (0, 0, 248.6, 288.2). The model saw a 1000x750
    # input and wrote a box reaching 500 input px left of the image: (-250, 0, 248.6, 288.2) in original pixels.
    path = shared_dir / "data" / "release-full" / "RefCOCO_eval_subset_1000.jsonl"
    items = refcoco.load_refcoco_items(path, max_objects_per_split=1)
    item = next(it for it in items if it.key == f"{path.name}:1:0")
    assert (item.fields["width"], item.fields["height"]) == (500, 375)
    pred = {
        "key": item.key,
        "status": "ok",
        "dataset": item.dataset,
        "object_key": item.fields["object_key"],
        "turns": ["[-500, 0, 497.2, 576.4]"],
        "gt_box": item.fields["gt_box"],
        "trajectory": {"input_size": [1000, 750], "original_size": [500, 375]},
    }
    row = refcoco.score_prediction(pred)
    # Unclamped float: intersection 248.6 x 288.2 over a union of about twice that -> IoU 0.4986, a miss. Clamped to
    # the image (what this scorer did) the box became (0, 0, 248, 288): IoU 0.997, a hit.
    assert row["box"] == pytest.approx([-250.0, 0.0, 248.6, 288.2])
    assert row["iou"] == pytest.approx(0.49860, abs=1e-5) and row["hit"] is False
    # The release variant truncates with int() (toward zero) and does not clamp either: (-250, 0, 248, 288).
    assert row["box_release"] == [-250, 0, 248, 288]
    assert row["iou_release"] == pytest.approx(0.49722, abs=1e-5) and row["hit_release"] is False
    # The clamp stays where crops and GIoU need it (boxes.input_to_original).
    from ground_r1.boxes import input_to_original

    assert input_to_original((-500, 0, 497.2, 576.4), (1000, 750), (500, 375)) == (0, 0, 248, 288)
