"""ground_r1.data.records: loading the release's VisCoT file and reporting every bad record (SPEC §6, §2)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from PIL import Image

from ground_r1.data.records import (
    MAX_SUFFIX_ATTEMPTS,
    RecordValidationError,
    ValidationIssue,
    load_viscot_records,
    records_to_dataset,
    resolve_image_path,
    write_issues,
)

RELEASE_FILE = "visualCoT_eval_subset150_choice.sample.jsonl"
# Every image path of the release file starts with this (the authors' machine).
RELEASE_PREFIX = "/home/meng/data/Visual-CoT"
VISCOT_DATASETS = (
    "docvqa",
    "textcap",
    "textvqa",
    "dude",
    "sroie",
    "infographicsvqa",
    "flickr30k",
    "v7w",
    "gqa",
    "openimages",
    "vsr",
    "cub",
    "emotic",
)  # SPEC §6


@pytest.fixture(scope="session")
def release_file(release_format_dir: Path) -> Path:
    return release_format_dir / RELEASE_FILE


@pytest.fixture(scope="session")
def release_images(release_file: Path, tmp_path_factory) -> Path:
    """Placeholder images, at each record's stored size, where the release paths point below the prefix."""
    root = tmp_path_factory.mktemp("viscot_images")
    for line in release_file.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        assert rec["image"].startswith(RELEASE_PREFIX + "/")
        target = root / rec["image"][len(RELEASE_PREFIX) + 1 :]
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            Image.new("RGB", (rec["width"], rec["height"]), (90, 90, 90)).save(target)
    return root


def _img(path: Path, size=(100, 80)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(path)
    return path


def _good(image: str, **over) -> dict:
    rec = {"image": image, "problem": "What?", "solution": "That.", "dataset": "docvqa", "bboxs": [[10, 10, 50, 40]]}
    rec.update(over)
    return rec


def _write_jsonl(path: Path, lines: list) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------------------
# The real release file


def test_release_sample_loads(release_file, release_images):
    loaded = load_viscot_records(
        release_file, image_root=release_images, path_prefix=RELEASE_PREFIX, known_datasets=VISCOT_DATASETS
    )
    recs = loaded.records
    assert (len(recs), loaded.skipped, loaded.issues) == (26, 0, [])
    # problem_id repeats across sub-datasets (0 appears 9 times in the sample) but keys and uids are unique.
    assert sum(r["problem_id"] == 0 for r in recs) == 9
    assert len({r["key"] for r in recs}) == 26
    assert len({r["uid"] for r in recs}) == 26
    assert [r["key"] for r in recs[:2]] == [f"{RELEASE_FILE}:1", f"{RELEASE_FILE}:2"]
    assert all(len(r["uid"]) == 16 for r in recs)

    first = recs[0]  # line 1: flickr30k 500x333, bboxs [[303, 96, 486, 289]]
    assert first["image"] == str(release_images / "cot_image_data/flickr30k/1021439420.jpg")
    assert (first["width"], first["height"]) == (500, 333)
    # smart_resize: round(500/28)=18 -> 504, round(333/28)=12 -> 336; 169,344 px within [3136, 401408].
    assert (first["input_width"], first["input_height"]) == (504, 336)
    assert first["bboxs"] == [[303.0, 96.0, 486.0, 289.0]]
    assert all(isinstance(v, float) for v in first["bboxs"][0])
    assert (first["dataset"], first["split"], first["problem_id"], first["line"]) == ("flickr30k", "val", 2, 1)
    assert first["solution"] == "The person in the green jacket is sitting on the floor and reading a piece of paper."

    docvqa = recs[8]  # line 9: docvqa 1695x2200
    # beta = sqrt(1695*2200 / 401408) = 3.0479; floor(1695/3.0479/28)=19 -> 532; floor(2200/3.0479/28)=25 -> 700.
    assert (docvqa["dataset"], docvqa["input_width"], docvqa["input_height"]) == ("docvqa", 532, 700)
    # Every input size is a multiple of 28 within the release's pixel bounds.
    for r in recs:
        assert r["input_width"] % 28 == 0 and r["input_height"] % 28 == 0
        assert 3136 <= r["input_width"] * r["input_height"] <= 401408
        assert len(r["bboxs"]) == 1
    gqa = recs[20]  # line 21: multiple choice, options appended to the problem
    assert gqa["solution"] == "<answer>C</answer>" and "\nC. Window" in gqa["problem"]


def test_release_sample_absolute_paths_found_by_suffix(release_file, release_images):
    # Without path_prefix, the authors' absolute paths are found by stripping leading components:
    # /home/meng/data/Visual-CoT/cot_image_data/vsr/x.jpg -> <root>/cot_image_data/vsr/x.jpg.
    loaded = load_viscot_records(release_file, image_root=release_images, limit=5)
    assert len(loaded.records) == 5
    assert loaded.records[4]["image"] == str(release_images / "cot_image_data/vsr/000000287427.jpg")


def test_release_sample_without_image_check_uses_stored_sizes(release_file):
    loaded = load_viscot_records(release_file, check_images=False)
    assert len(loaded.records) == 26
    # Not rewritten: the path is kept (it only exists on the authors' machine).
    assert loaded.records[0]["image"] == "/home/meng/data/Visual-CoT/cot_image_data/flickr30k/1021439420.jpg"
    assert (loaded.records[0]["input_width"], loaded.records[0]["input_height"]) == (504, 336)


def test_release_sample_to_dataset(release_file):
    recs = load_viscot_records(release_file, check_images=False).records
    ds = records_to_dataset(recs)
    assert len(ds) == 26
    assert ds[0]["bboxs"] == [[303.0, 96.0, 486.0, 289.0]]
    assert ds.features["problem_id"].dtype == "int64"
    assert ds[25]["key"] == f"{RELEASE_FILE}:26"


# ---------------------------------------------------------------------------------------------------------
# Sizes


def test_size_read_from_image_when_absent(tmp_path):
    _img(tmp_path / "a.png", (1000, 750))
    f = _write_jsonl(tmp_path / "r.jsonl", [_good("a.png")])
    rec = load_viscot_records(f, image_root=tmp_path).records[0]
    # 1000x750 -> (728, 532): see test_input_size_is_smart_resize_in_width_height_order.
    assert (rec["width"], rec["height"], rec["input_width"], rec["input_height"]) == (1000, 750, 728, 532)


def test_stored_input_size_loses_to_computed_with_one_warning(tmp_path, caplog):
    _img(tmp_path / "a.png", (1000, 750))
    stale = _good("a.png", width=1000, height=750, input_width=1008, input_height=756)
    agree = _good("a.png", width=1000, height=750, input_width=728, input_height=532)
    f = _write_jsonl(tmp_path / "r.jsonl", [stale, stale, agree])
    with caplog.at_level(logging.WARNING, logger="ground_r1.data.records"):
        recs = load_viscot_records(f, image_root=tmp_path).records
    assert [(r["input_width"], r["input_height"]) for r in recs] == [(728, 532)] * 3
    warnings = [r.getMessage() for r in caplog.records if "input_width/input_height" in r.getMessage()]
    assert len(warnings) == 1 and ": 2 record(s)" in warnings[0]


def test_pixel_bounds_are_applied(tmp_path):
    _img(tmp_path / "a.png", (1000, 750))
    f = _write_jsonl(tmp_path / "r.jsonl", [_good("a.png")])
    rec = load_viscot_records(f, image_root=tmp_path, min_pixels=784, max_pixels=3136).records[0]
    assert (rec["input_width"], rec["input_height"]) == (56, 28)


def test_image_size_wins_over_stored_size(tmp_path, caplog):
    _img(tmp_path / "a.png", (200, 100))
    f = _write_jsonl(tmp_path / "r.jsonl", [_good("a.png", width=100, height=50)])
    with caplog.at_level(logging.WARNING, logger="ground_r1.data.records"):
        rec = load_viscot_records(f, image_root=tmp_path).records[0]
    assert (rec["width"], rec["height"]) == (200, 100)
    assert any("differ from their image file" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------------------------------
# Bad records: each class is reported as file:line: field: message


def _issues(path: Path, **kw) -> list[ValidationIssue]:
    with pytest.raises(RecordValidationError) as err:
        load_viscot_records(path, **kw)
    for issue in err.value.issues:
        assert str(issue) in str(err.value)
    return err.value.issues


def test_invalid_json_line(tmp_path):
    _img(tmp_path / "a.png")
    f = _write_jsonl(tmp_path / "r.jsonl", [_good("a.png"), '{"image": "a.png", "problem": '])
    (issue,) = _issues(f, image_root=tmp_path)
    assert (issue.line, issue.field) == (2, "json")
    assert str(issue).startswith(f"{f}:2: json: invalid JSON (")


def test_an_unterminated_string_reads_once_at_its_column(tmp_path):
    """Before: "invalid JSON (Unterminated string starting at at column 13)"."""
    _img(tmp_path / "a.png")
    f = _write_jsonl(tmp_path / "r.jsonl", ['{"image": "a.png'])
    (issue,) = _issues(f, image_root=tmp_path)
    assert str(issue) == f"{f}:1: json: invalid JSON (Unterminated string starting at column 11)"


def test_not_an_object(tmp_path):
    f = _write_jsonl(tmp_path / "r.jsonl", ["[1, 2]"])
    (issue,) = _issues(f)
    assert str(issue) == f"{f}:1: record: expected a JSON object, got list"


def test_missing_field(tmp_path):
    _img(tmp_path / "a.png")
    rec = _good("a.png")
    del rec["solution"]
    f = _write_jsonl(tmp_path / "r.jsonl", [rec])
    (issue,) = _issues(f, image_root=tmp_path)
    assert str(issue) == f"{f}:1: solution: missing required field"


def test_wrong_types(tmp_path):
    _img(tmp_path / "a.png")
    f = _write_jsonl(tmp_path / "r.jsonl", [_good("a.png", problem=5, width="wide", split=3)])
    issues = _issues(f, image_root=tmp_path)
    assert [str(i) for i in issues] == [
        f"{f}:1: problem: expected a string, got int",
        f"{f}:1: split: expected a string, got int",
        f"{f}:1: width: expected a positive integer, got 'wide'",
    ]


def test_upstream_format_gets_a_conversion_hint(tmp_path):
    item = {"image": ["cot/x.jpg", "cot/x.jpg###[1, 2, 3, 4]"], "conversations": [], "dataset": "cub"}
    f = _write_jsonl(tmp_path / "r.jsonl", [item])
    issues = _issues(f, check_images=False)
    image_issue = next(i for i in issues if i.field == "image")
    assert "python -m ground_r1.cli.prepare_viscot" in image_issue.message


def test_missing_image(tmp_path):
    f = _write_jsonl(tmp_path / "r.jsonl", [_good("/elsewhere/b.png")])
    (issue,) = _issues(f, image_root=tmp_path)
    assert issue.field == "image"
    assert str(issue).startswith(f"{f}:1: image: image file not found: '/elsewhere/b.png'")


def test_corrupt_and_empty_image(tmp_path):
    (tmp_path / "junk.jpg").write_bytes(b"garbage" * 20)
    (tmp_path / "empty.jpg").write_bytes(b"")
    f = _write_jsonl(tmp_path / "r.jsonl", [_good("junk.jpg"), _good("empty.jpg")])
    issues = _issues(f, image_root=tmp_path)
    assert [str(i) for i in issues] == [
        f"{f}:1: image: unreadable image '{tmp_path / 'junk.jpg'}': not a recognised image format "
        "(corrupt file or not an image)",
        f"{f}:2: image: unreadable image '{tmp_path / 'empty.jpg'}': empty file (0 bytes)",
    ]


@pytest.mark.parametrize(
    ("boxes", "field", "message"),
    [
        ([[1, 2, 3]], "bboxs[0]", "expected 4 finite numbers [x1, y1, x2, y2], got [1, 2, 3]"),
        (
            [[10, 10, 50, 40], [0, "a", 5, 5]],
            "bboxs[1]",
            'expected 4 finite numbers [x1, y1, x2, y2], got [0, "a", 5, 5]',
        ),
        ([[0, 0, float("nan"), 5]], "bboxs[0]", "expected 4 finite numbers [x1, y1, x2, y2], got [0, 0, NaN, 5]"),
        ([[50, 10, 20, 40]], "bboxs[0]", "empty or inverted box [50, 10, 20, 40]: need x2 > x1 and y2 > y1"),
        ([[10, 40, 50, 40]], "bboxs[0]", "empty or inverted box [10, 40, 50, 40]: need x2 > x1 and y2 > y1"),
        ([[100, 0, 150, 20]], "bboxs[0]", "box [100, 0, 150, 20] lies entirely outside the 100x80 image"),
        ([[-30, -30, 0, 10]], "bboxs[0]", "box [-30, -30, 0, 10] lies entirely outside the 100x80 image"),
        ("10,10,50,40", "bboxs", "expected a list of [x1, y1, x2, y2] boxes, got str"),
    ],
)
def test_bad_boxes_are_dropped_and_named_and_the_record_kept(tmp_path, boxes, field, message):
    # The evidence box only measures the model's boxes (SPEC §3): an unusable one is a metric n/a, not a bad
    # record (issue 15); a usable box beside it stays.
    _img(tmp_path / "a.png", (100, 80))
    f = _write_jsonl(tmp_path / "r.jsonl", [_good("a.png", bboxs=boxes)])
    loaded = load_viscot_records(f, image_root=tmp_path)
    (note,) = loaded.box_notes
    assert str(note) == f"{f}:1: {field}: {message}"
    (record,) = loaded.records
    assert record["box_issues"] == [f"{field}: {message}"]
    assert record["bboxs"] == ([[10.0, 10.0, 50.0, 40.0]] if field == "bboxs[1]" else [])


def test_partly_outside_and_empty_boxes_are_fine(tmp_path):
    _img(tmp_path / "a.png", (100, 80))
    f = _write_jsonl(
        tmp_path / "r.jsonl",
        [_good("a.png", bboxs=[[-5, 0, 120, 30.5]]), _good("a.png", bboxs=[]), _good("a.png", bboxs=None)],
    )
    recs = load_viscot_records(f, image_root=tmp_path).records
    assert [r["bboxs"] for r in recs] == [[[-5.0, 0.0, 120.0, 30.5]], [], []]
    ds = records_to_dataset(recs)
    assert ds["bboxs"] == [[[-5.0, 0.0, 120.0, 30.5]], [], []]


def test_unknown_dataset_did_you_mean(tmp_path):
    _img(tmp_path / "a.png")
    f = _write_jsonl(
        tmp_path / "r.jsonl",
        [_good("a.png", dataset="DocVQA"), _good("a.png", dataset="textvq"), _good("a.png", dataset="zzz")],
    )
    known = ["docvqa", "textvqa", "gqa"]
    issues = _issues(f, image_root=tmp_path, known_datasets=known)
    assert [str(i) for i in issues] == [
        f"{f}:1: dataset: unknown sub-dataset 'DocVQA'; did you mean 'docvqa'? Known: docvqa, gqa, textvqa",
        f"{f}:2: dataset: unknown sub-dataset 'textvq'; did you mean 'textvqa'? Known: docvqa, gqa, textvqa",
        f"{f}:3: dataset: unknown sub-dataset 'zzz' Known: docvqa, gqa, textvqa",
    ]
    # Without known_datasets (evaluation, conversion) any name is accepted.
    assert len(load_viscot_records(f, image_root=tmp_path).records) == 3


def _mixed_file(tmp_path: Path) -> Path:
    _img(tmp_path / "a.png", (100, 80))
    (tmp_path / "junk.jpg").write_bytes(b"garbage")
    no_problem = _good("a.png")
    del no_problem["problem"]
    return _write_jsonl(
        tmp_path / "r.jsonl",
        [
            _good("a.png"),  # 1 ok
            "{not json",  # 2
            no_problem,  # 3
            "",  # 4 blank: skipped silently
            _good("missing.png"),  # 5
            _good("junk.jpg"),  # 6
            _good("a.png", bboxs=[[5, 5, 1, 1]], dataset="gqa"),  # 7
            _good("a.png", dataset="docvq"),  # 8
            _good("a.png", problem_id=4),  # 9 ok
        ],
    )


def test_all_issues_reported_at_once(tmp_path):
    f = _mixed_file(tmp_path)
    with pytest.raises(RecordValidationError) as err:
        load_viscot_records(f, image_root=tmp_path, known_datasets=["docvqa", "gqa"])
    issues = err.value.issues
    assert [(i.line, i.field) for i in issues] == [
        (2, "json"),
        (3, "problem"),
        (5, "image"),
        (6, "image"),
        (8, "dataset"),
    ]  # line 7's inverted box is no problem of the record: it is dropped and named (a box note)
    message = str(err.value)
    assert message.startswith("5 problem(s) in 5 record(s):\n")
    assert "--skip_bad_records" in message
    assert f"{f}:8: dataset: unknown sub-dataset 'docvq'; did you mean 'docvqa'?" in message


def test_skip_bad_records_returns_the_good_ones(tmp_path):
    f = _mixed_file(tmp_path)
    loaded = load_viscot_records(f, image_root=tmp_path, known_datasets=["docvqa", "gqa"], skip_bad_records=True)
    assert loaded.skipped == 5
    assert [r["line"] for r in loaded.records] == [1, 7, 9]
    assert [r["key"] for r in loaded.records] == ["r.jsonl:1", "r.jsonl:7", "r.jsonl:9"]
    assert len(loaded.issues) == 5
    assert [(n.line, n.field) for n in loaded.box_notes] == [(7, "bboxs[0]")]
    out = write_issues(loaded.issues, tmp_path / "out" / "skipped.jsonl")
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in rows] == [(i.line, i.field) for i in loaded.issues]
    assert rows[0]["text"] == str(loaded.issues[0])


def test_issue_list_is_capped_in_the_message(tmp_path):
    f = _write_jsonl(tmp_path / "r.jsonl", ["nope"] * 60)
    with pytest.raises(RecordValidationError) as err:
        load_viscot_records(f)
    assert len(err.value.issues) == 60
    assert "\n  ... and 10 more\n" in str(err.value)
    assert str(err.value).count(": json: invalid JSON") == 50


def test_limit_reads_only_the_first_records(tmp_path):
    _img(tmp_path / "a.png")
    f = _write_jsonl(tmp_path / "r.jsonl", [_good("a.png"), _good("a.png", problem="B"), "broken"])
    loaded = load_viscot_records(f, image_root=tmp_path, limit=2)
    assert [r["problem"] for r in loaded.records] == ["What?", "B"]


def test_check_images_false_needs_stored_size(tmp_path):
    f = _write_jsonl(tmp_path / "r.jsonl", [_good("nowhere.png")])
    issues = _issues(f, check_images=False)
    assert [str(i) for i in issues] == [
        f"{f}:1: width: missing, and check_images=False forbids reading it from the image",
        f"{f}:1: height: missing, and check_images=False forbids reading it from the image",
    ]


def test_json_list_file_reports_items(tmp_path):
    _img(tmp_path / "a.png")
    f = tmp_path / "r.json"
    f.write_text(json.dumps([_good("a.png"), _good("a.png", solution=None)]))
    with pytest.raises(RecordValidationError) as err:
        load_viscot_records(f, image_root=tmp_path)
    assert [str(i) for i in err.value.issues] == [f"{f}:item 2: solution: expected a string, got null"]
    good = load_viscot_records(f, image_root=tmp_path, skip_bad_records=True).records
    assert [r["key"] for r in good] == ["r.json:1"]


def test_identical_lines_share_uid_not_key(tmp_path):
    _img(tmp_path / "a.png")
    f = _write_jsonl(tmp_path / "r.jsonl", [_good("a.png"), _good("a.png")])
    a, b = load_viscot_records(f, image_root=tmp_path).records
    assert a["uid"] == b["uid"] and a["key"] != b["key"]


def test_records_to_dataset_mixed_ids_and_extra_fields(tmp_path):
    _img(tmp_path / "a.png")
    f = _write_jsonl(
        tmp_path / "r.jsonl",
        [_good("a.png", problem_id=3, note={"x": 1}), _good("a.png", problem_id="q7", note=[1, "a"])],
    )
    ds = records_to_dataset(load_viscot_records(f, image_root=tmp_path).records)
    assert ds["problem_id"] == ["3", "q7"]
    assert ds["note"] == ['{"x": 1}', '[1, "a"]']  # untypeable by Arrow: stored as JSON text


# ---------------------------------------------------------------------------------------------------------
# Path resolution


def test_resolve_prefix_relative_and_absolute(tmp_path):
    root = tmp_path / "imgs"
    assert resolve_image_path("/home/meng/data/x/y.jpg", root, "/home/meng/data") == root / "x/y.jpg"
    assert resolve_image_path("/home/meng/data/x/y.jpg", root, "/home/meng/data/") == root / "x/y.jpg"
    # The prefix matches whole components only: /home/meng/data2 is not under /home/meng/data.
    assert resolve_image_path("/home/meng/data2/y.jpg", None, "/home/meng/data") == Path("/home/meng/data2/y.jpg")
    assert resolve_image_path("cot/a.jpg", root) == root / "cot/a.jpg"
    existing = _img(tmp_path / "abs.png")
    assert resolve_image_path(existing, root) == existing
    with pytest.raises(ValueError, match="image_root"):
        resolve_image_path("/home/meng/data/x.jpg", None, "/home/meng/data")


def test_resolve_suffix_search(tmp_path):
    root = tmp_path / "imgs"
    found = _img(root / "vsr" / "1.jpg")
    # Strips home, meng, data, Visual-CoT, cot_image_data (5 components) before vsr/1.jpg exists.
    assert resolve_image_path("/home/meng/data/Visual-CoT/cot_image_data/vsr/1.jpg", root) == found
    missing = "/home/meng/data/Visual-CoT/cot_image_data/vsr/2.jpg"
    assert resolve_image_path(missing, root) == Path(missing)
    # Capped: a match deeper than MAX_SUFFIX_ATTEMPTS stripped components is not searched for.
    deep = "/" + "/".join(f"d{i}" for i in range(MAX_SUFFIX_ATTEMPTS + 1)) + "/vsr/1.jpg"
    assert resolve_image_path(deep, root) == Path(deep)


def test_broken_json_list_file_is_an_error(tmp_path):
    f = tmp_path / "r.json"
    f.write_text('[{"image": "a.png"},\n  {oops}]')
    with pytest.raises(ValueError, match=r"r\.json:2: invalid JSON"):
        load_viscot_records(f)
    f.write_text('{"image": "a.png"}')
    with pytest.raises(ValueError, match="must hold a list of records, found dict"):
        load_viscot_records(f)


def test_path_prefix_needs_image_root(release_file):
    with pytest.raises(ValueError, match="image_root is needed"):
        load_viscot_records(release_file, path_prefix=RELEASE_PREFIX)
