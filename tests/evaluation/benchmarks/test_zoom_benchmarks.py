"""The zoom-in benchmarks (issue 18): V*, HR-Bench, TreeBench readers, validation and scorers, on hand-made files
and on the real annotation copies of shared/data/thinking-with-images*/ (read in place)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from ground_r1.evaluation import general, pipeline
from ground_r1.evaluation.benchmarks import BenchmarkFileError, get_benchmark, list_benchmarks
from ground_r1.evaluation.benchmarks.hrbench import cycle_metrics
from ground_r1.evaluation.benchmarks.readers import read_tsv
from ground_r1.evaluation.benchmarks.treebench import (
    treevgr_boxes,
    treevgr_item_iou,
    treevgr_letter,
    vlmevalkit_item_iou,
    vlmevalkit_letter,
)
from ground_r1.evaluation.benchmarks.vstar import parse_lettered_text
from ground_r1.evaluation.benchmarks.zoom import shuffled_order, zoom_letter
from ground_r1.evaluation.box_quality import box_quality_record, box_quality_summary, prediction_boxes

FULL = "thinking-with-images-full"


def _jpeg_b64(size=(40, 30)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buffer, format="JPEG")
    return base64.b64encode(buffer.getvalue()).decode()


def _vstar_folder(root: Path, records: dict[str, dict], images: bool = True, size=(2000, 1500)) -> Path:
    for rel, record in records.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
        if images:
            Image.new("RGB", size, (90, 90, 90)).save(path.with_suffix(".jpg"))
    return root


GLOVE = {
    "target_object": ["glove"],
    "bbox": [[100, 200, 50, 40]],
    "question": "What is the material of the glove?",
    "options": [
        "The glove is made of rubber.",
        "The glove is made of cotton.",
        "The glove is made of kevlar.",
        "The glove is made of leather.",
    ],
}


# ----------------------------------------------------------------------------------------------- the registry


def test_zoom_benchmarks_are_their_own_suite() -> None:
    assert list_benchmarks("zoom") == ["vstar", "vstar_hf", "hrbench_4k", "hrbench_8k", "treebench"]
    assert "vstar" not in list_benchmarks()  # BENCHMARKS=all stays SPEC §7's set
    assert get_benchmark("HR-Bench-4K").name == "hrbench_4k" and get_benchmark("tree-bench").name == "treebench"


# ------------------------------------------------------------------------------------------ one letter rule


@pytest.mark.parametrize(("text", "letter"), [
    ("Based on the image, the answer is C.", "C"),   # lmms-eval 0.7.3's regex reads B (README §1)
    ("leather", "D"),                                 # lmms-eval reads A; the option's own text names D
    ("<answer>C</answer>", "C"),                      # lmms-eval reads None
    ("Definitely A", "A"),                            # lmms-eval reads D
    ("(B) cotton", "B"),
    ("I cannot tell", None),
])  # fmt: skip
def test_one_letter_rule_on_the_sentences_that_trip_lmms_eval(text: str, letter: str | None) -> None:
    options = {"A": "rubber", "B": "cotton", "C": "kevlar", "D": "leather"}
    assert zoom_letter(text, options) == letter


@pytest.mark.parametrize(("text", "letter"), [
    ("Based on the image, the answer is C.", "B"), ("leather", "A"), ("<answer>C</answer>", None),
    ("Definitely A", "D"), ("(B) cotton", "B"), ("The answer is C", "C"),
])  # fmt: skip
def test_lmms_eval_variant_keeps_its_quirks(text: str, letter: str | None) -> None:
    from ground_r1.evaluation.benchmarks.vstar import lmms_eval_vstar_letter

    assert lmms_eval_vstar_letter(text) == letter  # the README's checked outputs of lmms-eval 0.7.3


# ------------------------------------------------------------------------------------------------------- V*


def test_vstar_options_are_shuffled_by_a_recorded_seed(tmp_path) -> None:
    root = _vstar_folder(tmp_path, {"direct_attributes/sa_1.json": GLOVE})
    spec = get_benchmark("vstar")
    (item,) = spec.load(root, root)
    order = shuffled_order(4, 0, "direct_attributes/sa_1.json")
    assert sorted(order) == [0, 1, 2, 3] and item.extra["option_order"] == order and item.extra["option_seed"] == 0
    assert item.answer == "ABCD"[order.index(0)]  # the gold (file option 0) is wherever the permutation put it
    assert item.extra["options"][item.answer] == "The glove is made of rubber."
    assert spec.question(item).splitlines()[0] == "What is the material of the glove?"
    assert spec.question(item).splitlines()[1] == f"(A) {GLOVE['options'][order[0]]}"
    assert shuffled_order(4, 0, "direct_attributes/sa_1.json") == order  # the same on a resumed run
    assert [shuffled_order(4, s, "k") for s in range(6)] != [shuffled_order(4, 0, "k")] * 6  # the seed matters
    right = spec.score_item(item, f"<answer>{item.answer}</answer>")
    assert right["correct"] and right["option_order"] == order and right["option_seed"] == 0
    by_text = spec.score_item(item, "<answer>The glove is made of rubber.</answer>")
    assert by_text["parsed"] == item.answer and by_text["correct"]


def test_vstar_real_annotations_all_191_load_with_boxes_unchecked(shared_dir, tmp_path) -> None:
    records = json.loads((shared_dir / "data" / FULL / "vstar_bench.annotations.json").read_text())
    root = _vstar_folder(tmp_path, records, images=False)
    items = get_benchmark("vstar").load(root, root, check_images=False)
    assert len(items) == 191
    assert sum(it.category == "direct_attributes" for it in items) == 115
    assert sum(len(it.extra["targets"]) == 2 for it in items) == 54
    glove = next(it for it in items if it.key == "direct_attributes/sa_4690.json")
    assert glove.extra["targets"] == [[564.0, 142.0, 719.0, 299.0]]  # xywh [564, 142, 155, 157] -> xyxy


def test_vstar_box_outside_an_opened_image_is_noted_not_rejected(tmp_path) -> None:
    far = dict(GLOVE, bbox=[[1900, 1400, 300, 300]])
    root = _vstar_folder(tmp_path, {"direct_attributes/sa_1.json": far}, size=(2000, 1500))
    (item,) = get_benchmark("vstar").load(root, root)
    assert item.extra["box_notes"] == ["bbox[0] [1900, 1400, 300, 300] lies outside the 2000x1500 image"]


def test_vstar_bad_records_are_named_and_the_rest_run(tmp_path) -> None:
    root = _vstar_folder(tmp_path, {
        "direct_attributes/sa_1.json": GLOVE,
        "direct_attributes/sa_2.json": dict(GLOVE, bbox=[[10, 10, 0, 5]]),
        "relative_position/sa_3.json": dict(GLOVE, options=["only one"]),
    })  # fmt: skip
    (root / "relative_position" / "sa_4.json").write_text("{not json")
    result = get_benchmark("vstar").read(root, root)
    assert [it.key for it in result.items] == ["direct_attributes/sa_1.json"]
    problems = sorted(str(p).split(": ", 1)[1] for p in result.skipped)
    assert problems[0] == "bbox[0]: empty or inverted box [10, 10, 0, 5] (xywh)"
    assert any(p.startswith("json: invalid JSON") for p in problems)
    assert any(p.startswith("options: expected at least two option sentences") for p in problems)
    with pytest.raises(BenchmarkFileError, match="sa_2.json:1: bbox"):
        get_benchmark("vstar").load(root, root)


def test_vstar_hf_test_questions_are_the_labelled_second_input(tmp_path) -> None:
    text = (
        "What is the material of the glove?\n(A) rubber\n(B) cotton\n(C) kevlar\n(D) leather\n"
        "Answer with the option's letter from the given choices directly."
    )
    assert parse_lettered_text(text) == (
        "What is the material of the glove?",
        {"A": "rubber", "B": "cotton", "C": "kevlar", "D": "leather"},
    )
    (tmp_path / "direct_attributes").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "direct_attributes" / "sa_4690.jpg")
    (tmp_path / "test_questions.jsonl").write_text(
        json.dumps(
            {
                "image": "direct_attributes/sa_4690.jpg",
                "text": text,
                "category": "direct_attributes",
                "question_id": "0",
                "label": "A",
            }
        )
        + "\n"
    )
    spec = get_benchmark("vstar_hf")
    file, images = general.locate_benchmark(spec, tmp_path)
    assert file == tmp_path / "test_questions.jsonl"
    (item,) = spec.load(file, images)
    assert item.answer == "A" and item.extra["input"].startswith("test_questions.jsonl")
    assert spec.score_item(item, "leather")["parsed"] == "D"
    rows = spec.summary_rows(
        spec.aggregate([spec.score_item(item, "A")]), general.ScoredBenchmark([spec.score_item(item, "A")])
    )
    assert rows[0].rule.endswith("options as lettered in test_questions.jsonl")


# ------------------------------------------------------------------------------------------------- HR-Bench


def test_hrbench_zoomeye_record_unfolds_to_four_rows_with_inferred_cycles(shared_dir, tmp_path) -> None:
    source = shared_dir / "data" / FULL / "hr-bench_4k.zoomeye.jsonl"
    (tmp_path / source.name).symlink_to(source)
    spec = get_benchmark("hrbench_4k")
    items = spec.load(tmp_path / source.name, tmp_path, check_images=False)
    assert len(items) == 800 and sum(it.category == "single" for it in items) == 400
    first = items[:4]
    assert [it.extra["index"] for it in first] == [0, 1, 2, 3]
    assert [it.extra["cycle_category"] for it in first] == ["0", "1", "2", "3"]
    assert all(it.extra["cycle_category_inferred"] for it in first)
    assert [it.answer for it in first] == ["A", "B", "C", "D"]
    assert {it.extra["options"][it.answer] for it in first} == {"27B"}  # one gold text at each letter once
    assert first[0].image == str(tmp_path / "image/0.jpg")
    assert spec.question(first[1]) == (
        "Question: What is the number displayed above the entrance where the woman "
        "is standing?\nOptions:\nA. 27E\nB. 27B\nC. 37B\nD. 27D\nPlease select the "
        "correct answer from the options above. \n"
    )
    assert len(spec.first_items(items, 3)) == 12  # --max_items counts questions, each with its 4 rotations


def test_hrbench_average_over_cycle_groups_is_not_circular_eval() -> None:
    def rec(cycle, category, correct):
        return {"cycle_category": cycle, "category": category, "correct": correct}

    # group 0: single 2/2, cross 0/1 -> all 2/3; group 1: single 1/2, cross 1/1 -> all 2/3
    records = [
        rec("0", "single", True),
        rec("0", "single", True),
        rec("0", "cross", False),
        rec("1", "single", True),
        rec("1", "single", False),
        rec("1", "cross", True),
    ]
    metrics = cycle_metrics(records)
    assert metrics["per_cycle"]["0"] == pytest.approx({"all": 200 / 3, "n": 3, "single": 100.0, "cross": 0.0})
    assert metrics["avg"] == pytest.approx({"all": 200 / 3, "single": 75.0, "cross": 50.0})
    # unequal groups: the mean of group accuracies (100 and 0 -> 50), not the pooled 3/4 = 75
    uneven = [rec("0", "single", True), rec("0", "single", True), rec("0", "single", True), rec("1", "cross", False)]
    assert cycle_metrics(uneven)["avg"]["all"] == 50.0
    # CircularEval would need all 4 rotations right (0/1 here); HR-Bench scores each row: 3 of 4 -> 75
    four = [rec(str(j), "single", j != 2) for j in range(4)]
    assert cycle_metrics(four)["avg"]["all"] == 75.0


def _hr_tsv(path: Path, rows: list[list[str]]) -> Path:
    header = ["index", "question", "answer", "category", "A", "B", "C", "D", "cycle_category", "image"]
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


def test_hrbench_tsv_images_are_checked_by_header_and_decoded_only_when_asked(tmp_path) -> None:
    image = _jpeg_b64()
    rows = [
        ["0", "What color?", "A", "single", "green", "red", "blue", "black", "0", image],
        ["1", "What color?", "B", "single", "red", "green", "blue", "black", "1", "0"],  # a reference to row 0
        ["2", "What color?", "C", "cross", "red", "blue", "green", "black", "2", "bm90IGFuIGltYWdl"],
        ["3", "What color?", "E", "cross", "red", "blue", "black", "green", "3", image],
    ]
    tsv = _hr_tsv(tmp_path / "hr_bench_4k.tsv", rows)
    raws = read_tsv(tsv)
    assert [r.line for r in raws] == [2, 3, 4, 5] and "image" not in raws[0].record
    assert raws[1].image.reference == "0" and raws[1].image.row == 0
    spec = get_benchmark("hrbench_4k")
    result = spec.read(tsv, tmp_path)
    assert [it.key for it in result.items] == ["hr_bench_4k.tsv:2", "hr_bench_4k.tsv:3"]
    why = {p.line: f"{p.field}: {p.message}" for p in result.skipped}
    assert why[4].startswith("image: base64 that is no JPEG/PNG/GIF/BMP/WebP image")
    assert why[5] == "answer: 'E' is not one of the options ABCD"
    target = Path(result.items[0].image)
    assert target == tmp_path / "images" / "hr_bench_4k" / "0.jpg" and not target.exists()  # not decoded yet
    assert spec.prepare_images(result.items) == 1  # rows 0 and 1 share one file
    assert Image.open(target).size == (40, 30) and result.items[1].image == str(target)
    assert spec.prepare_images(result.items) == 0  # a resumed run decodes nothing


def test_hrbench_parquet_twin_reads_like_the_tsv(tmp_path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    raw = base64.b64decode(_jpeg_b64())
    table = pa.table(
        {
            "index": [0, 1],
            "question": ["Q?", "Q?"],
            "answer": ["A", "B"],
            "category": ["single"] * 2,
            "A": ["x", "y"],
            "B": ["y", "x"],
            "C": ["z", "z"],
            "D": ["w", "w"],
            "cycle_category": [0, 1],
            "image": [{"bytes": raw, "path": None}, {"bytes": raw, "path": None}],
        }
    )
    pq.write_table(table, tmp_path / "hr_bench_8k.parquet")
    spec = get_benchmark("hrbench_8k")
    file, images = general.locate_benchmark(spec, tmp_path)
    items = spec.load(file, images)
    assert [it.answer for it in items] == ["A", "B"] and [it.extra["cycle_category"] for it in items] == ["0", "1"]
    assert spec.prepare_images(items) == 2 and Image.open(items[1].image).size == (40, 30)


def test_hrbench_scores_rows_and_labels_the_vlmevalkit_variant(tmp_path) -> None:
    tsv = _hr_tsv(tmp_path / "hr_bench_4k.tsv", [
        ["0", "Q?", "A", "single", "red", "green", "blue", "black", "0", _jpeg_b64()],
        ["1", "Q?", "B", "cross", "green", "red", "blue", "black", "1", "0"]])  # fmt: skip
    spec = get_benchmark("hrbench_4k")
    a, b = spec.load(tsv, tmp_path)
    records = [spec.score_item(a, "The answer is A"), spec.score_item(b, "red")]
    assert [r["correct"] for r in records] == [True, True]
    assert [r["variants"]["vlmevalkit"] for r in records] == [True, True]
    records[1] = spec.score_item(b, "I think it is red, not green")  # our rule: two option texts -> unread
    metrics = spec.aggregate(records)
    assert metrics["avg"]["all"] == 50.0 and metrics["avg"]["single"] == 100.0 and metrics["avg"]["cross"] == 0.0
    rows = spec.summary_rows(metrics, general.ScoredBenchmark(records))
    assert [r.metric for r in rows] == [
        "accuracy (avg over cycles)",
        "single (avg over cycles)",
        "cross (avg over cycles)",
        "accuracy (avg over cycles)",
        "accuracy (avg over cycles)",
    ]
    assert rows[4].score is None and rows[4].notes.startswith("NOT JUDGED")  # the official judge: no endpoint
    assert "mean over 2 cycle_category group(s)" in rows[0].rule and "LLM judge (its own row" in rows[0].rule
    assert rows[3].variant and rows[3].rule.startswith("VLMEvalKit can_infer")


# ------------------------------------------------------------------------------------------------ TreeBench


def test_treevgr_miou_with_extra_and_missing_boxes() -> None:
    t1, t2 = [0, 0, 10, 10], [20, 20, 30, 30]
    # one exact box for t1, one box on half of t2 (IoU 50/100), one stray box that costs nothing
    assert treevgr_item_iou([[0, 0, 10, 10], [20, 20, 30, 25], [90, 90, 99, 99]], [t1, t2]) == pytest.approx(
        (1.0 + 0.5) / 2
    )
    assert treevgr_item_iou([[0, 0, 10, 10]], [t1, t2]) == 0.5  # missing box for t2 -> 0 for that target
    assert treevgr_item_iou([[0, 0, 30, 30]], [t1, t2]) == pytest.approx(100 / 900)  # one box serves both
    assert treevgr_item_iou([], [t1]) == 0.0 and treevgr_item_iou([t1], []) == 0.0
    assert vlmevalkit_item_iou([t1], []) == 1.0 and vlmevalkit_item_iou([], [t1]) == 0.0


def test_treevgr_box_and_letter_rules() -> None:
    text = (
        "<think>see <box>[1,2,30,40]</box> and <box>[5, 5, 9, 9]</box> <box>[9,9,3,3]</box></think> "
        "<box>[0,0,8,8]</box><answer> b </answer><answer>C</answer>"
    )
    assert treevgr_boxes(text) == [[1, 2, 30, 40], [0, 0, 8, 8]]  # spaces and inverted boxes dropped
    assert treevgr_letter(text) == "B"
    assert treevgr_letter("<answer>A.</answer>") == "A."  # exact: scored wrong
    assert treevgr_letter("no tags: c") == "NO TAGS: C"
    assert vlmevalkit_letter("<answer>(C)</answer>") == "C"
    # upper-cased before the regex (as read), so any word with A-E gives its letter; "" only without one
    assert vlmevalkit_letter("<answer>the one on the left</answer>") == "E"
    assert vlmevalkit_letter("<answer>1 2 3 4 5 6 7 8 9 10 11</answer>") == ""


def _treebench_tsv(path: Path) -> Path:
    header = ["index", "question", "multi-choice options", "answer", "category", "target_instances", "image"]
    image = _jpeg_b64((100, 80))
    rows = [
        [
            "0",
            "Which is red?",
            '"A. the cup\nB. the box"',
            "A",
            "Perception/Attributes",
            "[[10, 10, 50, 40], [60, 10, 90, 40]]",
            image,
        ],
        ["1", "Which is left?", '"A. cup\nB. box"', "B", "Reasoning/Ordering", "[[0, 0, 20, 20]]", "0"],
        ["2", "Bad?", '"A. x\nB. y"', "A", "Reasoning/Ordering", "[[5, 5, 2, 2]]", image],
    ]
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


def test_treebench_reads_its_tsv_and_scores_the_whole_trajectory(tmp_path) -> None:
    tsv = _treebench_tsv(tmp_path / "TreeBench.tsv")
    spec = get_benchmark("treebench")
    result = spec.read(tsv, tmp_path)
    assert len(result.items) == 2
    # line 6: each row's quoted options span two physical lines
    assert [str(p) for p in result.skipped] == [
        f"{tsv}:6: target_instances[0]: empty or inverted box [5, 5, 2, 2] (xyxy)"
    ]
    item = result.items[0]
    assert item.extra["targets"] == [[10.0, 10.0, 50.0, 40.0], [60.0, 10.0, 90.0, 40.0]]
    assert spec.question(item) == "Which is red? Options:\nA. the cup\nB. the box"
    assert spec.direct_prompt(item).endswith("between <answer> and </answer>.")
    # input frame 50x40 of the 100x80 original: [5,5,25,20] -> [10,10,50,40] exactly on target 1
    prediction = {
        "protocol": "ground_r1",
        "turns": ["<think>look</think><box>[5,5,25,20]</box>", "<think>ok</think><answer>A</answer>"],
        "trajectory": {
            "input_size": [50, 40],
            "original_size": [100, 80],
            "turns": [
                {"text": "<box>[5,5,25,20]</box>", "box_original": [10, 10, 50, 40]},
                {"text": "<answer>A</answer>", "box_original": None},
            ],
        },
    }
    record = spec.score_prediction(item, prediction)
    assert record["correct"] and record["boxes"] == [[5, 5, 25, 20]] and record["boxes_original"] == [[10, 10, 50, 40]]
    assert record["iou"] == 0.5  # target 1 exact, target 2 missed
    assert record["variant_iou"]["vlmevalkit"] == 0.0  # VLMEvalKit reads boxes inside <think> only
    assert record["box_quality"][0]["iou_best"] == 1.0 and record["box_quality"][1]["box"] is None
    metrics = spec.aggregate([record])
    assert metrics["accuracy"] == 100.0 and metrics["miou"] == 50.0
    rows = spec.summary_rows(metrics, general.ScoredBenchmark([record]))
    assert [(r.metric, r.score, r.variant) for r in rows[:4]] == [
        ("accuracy", 100.0, False),
        ("mIoU", 50.0, False),
        ("accuracy", 100.0, True),
        ("mIoU", 0.0, True),
    ]
    assert "original pixels" in rows[1].notes and rows[4].metric == "box IoU, round 1 (best target)"


# ---------------------------------------------------------------------------------------------- box quality


def test_box_quality_per_round_best_and_first_target() -> None:
    targets = [[0, 0, 10, 10], [100, 100, 110, 120]]
    rounds = box_quality_record([[100, 100, 110, 110], None], targets)
    assert rounds[0]["iou_first"] == 0.0 and rounds[0]["iou_best"] == 0.5  # half of target 2
    assert rounds[0]["giou_best"] == pytest.approx(0.75)  # GIoU 0.5 (enclosing = union) -> (0.5 + 1) / 2
    assert rounds[1] == {
        "round": 2,
        "box": None,
        "iou_best": None,
        "iou_first": None,
        "giou_best": None,
        "giou_first": None,
    }
    summary = box_quality_summary(
        [{"box_quality": rounds}, {"box_quality": box_quality_record([[0, 0, 10, 10]], targets)}]
    )
    assert summary[0]["items"] == 2 and summary[0]["boxes"] == 2 and summary[0]["iou_best"] == 75.0
    assert summary[0]["iou_first"] == 50.0 and summary[1] == {
        "round": 2,
        "items": 1,
        "boxes": 0,
        "no_box_rate": 100.0,
        "iou_best": None,
        "iou_first": None,
        "giou_best": None,
        "giou_first": None,
    }


def test_prediction_boxes_maps_a_direct_turn_from_the_input_frame() -> None:
    prediction = {
        "trajectory": {
            "input_size": [56, 28],
            "original_size": [560, 280],
            "turns": [{"text": "The object is at <box>[28,0,56,14]</box>"}],
        }
    }
    assert prediction_boxes(prediction) == [[280, 0, 560, 140]]


def test_boxes_of_a_0_1000_family_are_mapped_from_the_grid_not_the_input_pixels(tmp_path) -> None:
    # A Qwen3-VL prediction records its convention: [500,0,1000,500] is the right half, top half of the original,
    # whatever the resized input's size (here 56x28: read as input pixels it would be clamped to the whole image).
    trajectory = {
        "coordinates": "relative_1000",
        "input_size": [56, 28],
        "original_size": [560, 280],
        "turns": [{"text": "The object is at <box>[500,0,1000,500]</box>"}],
    }
    assert prediction_boxes({"trajectory": trajectory}) == [[280, 0, 560, 140]]
    tsv = _treebench_tsv(tmp_path / "TreeBench.tsv")
    item = get_benchmark("treebench").read(tsv, tmp_path).items[0]  # target 1: [10,10,50,40] of a 100x80 original
    prediction = {
        "protocol": "ground_r1",
        "turns": ["<box>[100,125,500,500]</box>", "<answer>A</answer>"],
        "trajectory": {"coordinates": "relative_1000", "input_size": [50, 40], "original_size": [100, 80]},
    }
    record = get_benchmark("treebench").score_prediction(item, prediction)
    assert record["boxes_original"] == [[10, 10, 50, 40]] and record["iou"] == 0.5


def test_hrbench_official_judge_through_the_judge_client(tmp_path, fake_chat_server) -> None:
    from ground_r1.evaluation.benchmarks.hrbench import hrbench_judge_messages, parse_hrbench_judgement
    from ground_r1.evaluation.judge import JudgeConfig, load_judgments

    assert parse_hrbench_judgement(" Yes, it does.") == 1.0 and parse_hrbench_judgement("no") == 0.0
    assert parse_hrbench_judgement("Sure: yes") == 0.0  # the official rule reads only the start
    (text,) = hrbench_judge_messages("What color?", {"A": "red", "B": "green"}, "B", "green")
    assert text["content"] == (
        "You are a helpful and precise assistant for checking the quality of the answer. Please answer in only yes "
        "or no. Given the following question: What color?\nOptions:\nA. red\nB. green\nPlease select the correct "
        "answer from the options above. \n, the correct answer is: B. green. Does the following answer correctly "
        "answers the question, answer:green?"
    )
    image = _jpeg_b64()
    tsv = _hr_tsv(tmp_path / "hr_bench_4k.tsv", [
        ["0", "Q?", "A", "single", "red", "green", "blue", "black", "0", image],
        ["1", "Q?", "B", "cross", "green", "red", "blue", "black", "1", "0"],
        ["2", "Q?", "C", "cross", "green", "blue", "red", "black", "2", "0"]])  # fmt: skip
    (data,) = general.load_benchmarks(["hrbench_4k"], tsv.parent)
    texts = {data.items[0].key: "A", data.items[1].key: "it is red", data.items[2].key: "no idea"}
    predictions = {k: {"key": k, "status": "ok", "turns": [t]} for k, t in texts.items()}

    def policy(request, n):
        content = request.user_content
        if content.endswith("answer:no idea?"):
            return ("status", 500)  # a grading that fails: left out and counted, never 0
        return ("reply", "Yes" if content.endswith("answer:A?") else "No.")

    fake_chat_server.set_policy(policy)
    config = JudgeConfig(
        model="judge-x", base_url=fake_chat_server.base_url, max_tokens=3, backoff_base=0.0, max_retries=0
    )
    report = pipeline.judge_benchmark(data.spec, data, predictions, tmp_path / "grades.jsonl", config)
    assert report.ok == 2 and {r.body["temperature"] for r in fake_chat_server.chat_requests} == {0.2}
    scored = general.score_benchmark(data, predictions, load_judgments(tmp_path / "grades.jsonl"))
    metrics = data.spec.aggregate(scored.records)
    assert metrics["n_judged"] == 2 and metrics["judge"]["avg"]["all"] == 50.0  # cycle 0: 100, cycle 1: 0
    judge_row = general.summary_rows(data.spec, metrics, scored)[-1]
    assert judge_row.rule.startswith("HR-Bench official LLM judge (yes/no; grader judge-x")
    assert (judge_row.items, judge_row.left_out) == (2, 1) and "1 judgment(s) failed" in judge_row.notes
