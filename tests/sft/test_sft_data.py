"""SFT data preparation (SPEC §8): box targets in input pixels, crops on disk, idempotent reruns, bad records.

The hand-checked record (conftest): a 1120 x 560 image, evidence box bboxs[0] = [1105, 101, 1115, 112].

Input size with min_pixels 3136, max_pixels 156800 (Qwen's smart_resize): rounding both sides to multiples of
28 keeps 1120 x 560 = 627,200 px > 156,800, so beta = sqrt(627200 / 156800) = 2 and each side becomes
floor(side / 2 / 28) * 28: width 560, height 280 (exactly half).

Adjusted box (28-px minimum, shifted inside, boxes.widen_and_shift):
  x: [1105, 1115] is 10 wide; s = (28 - 10) // 2 = 9 -> [1096, 1124]; 1124 > 1120, shift left 4 -> [1092, 1120]
  y: [101, 112] is 11 high; s = (28 - 11) // 2 = 8 -> [93, 120] = 27, +1 at the far end -> [93, 121]
  -> crop box (1092, 93, 1120, 121), 28 x 28.
Target in input pixels (x 0.5, y 0.5, rounded half up): 546, 46.5 -> 47, 560, 60.5 -> 61 -> "[546,47,560,61]".
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from ground_r1.cli import prepare_sft_data as cli
from ground_r1.data.records import RecordValidationError, load_viscot_records
from ground_r1.prompt import ground_sft_answer_text, ground_sft_box_text
from ground_r1.sft.data import (
    ensure_crop,
    format_box,
    ground_box_target,
    load_sft_examples,
    prepare_sft_data,
    read_sft_metadata,
)

from .sft_helpers import EVIDENCE_BOX, QUESTION, record, write_gradient_image, write_records

MIN_PIXELS, MAX_PIXELS = 3136, 156800


def _prepare(records_file, out, **kw):
    return prepare_sft_data(
        records_file,
        out,
        image_root=records_file.parent,
        min_pixels=MIN_PIXELS,
        max_pixels=MAX_PIXELS,
        progress=False,
        **kw,
    )


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_box_target_is_the_adjusted_box_in_input_pixels(records_file):
    (rec,) = load_viscot_records(
        records_file, image_root=records_file.parent, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS
    ).records
    assert (rec["input_width"], rec["input_height"]) == (560, 280)  # module docstring
    crop_box, target = ground_box_target(rec)
    assert crop_box == (1092, 93, 1120, 121)
    assert target == (546, 47, 560, 61)
    assert format_box(target) == "[546,47,560,61]"


def test_prepare_writes_both_sets_in_the_documented_format(records_file, tmp_path):
    out = tmp_path / "sft"
    report = _prepare(records_file, out)
    assert (report.num_examples, report.crops_written, report.crops_reused) == (1, 1, 0)
    (ground,) = _lines(out / "ground.jsonl")
    (vanilla,) = _lines(out / "vanilla.jsonl")
    image = str(records_file.parent / "images" / "page.png")

    assert ground["id"] == vanilla["id"] == "records.jsonl:1"
    assert ground["kind"] == "ground" and ground["dataset"] == "gqa"
    assert ground["images"][0] == image and ground["images"][1].startswith("crops/")
    assert ground["messages"] == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": ground_sft_box_text(QUESTION)}]},
        {"role": "assistant", "content": [{"type": "text", "text": "[546,47,560,61]"}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": ground_sft_answer_text(QUESTION)}]},
        # "<answer>B</answer>" with its tags stripped
        {"role": "assistant", "content": [{"type": "text", "text": "B"}]},
    ]
    assert ground["meta"]["evidence_box"] == [float(v) for v in EVIDENCE_BOX]
    assert ground["meta"]["crop_box"] == [1092, 93, 1120, 121]
    assert ground["meta"]["box_target"] == [546, 47, 560, 61]
    assert (ground["meta"]["input_width"], ground["meta"]["input_height"]) == (560, 280)

    assert vanilla["kind"] == "vanilla" and vanilla["images"] == [image]
    assert vanilla["messages"] == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]},
        {"role": "assistant", "content": [{"type": "text", "text": "B"}]},
    ]
    meta = read_sft_metadata(out)
    assert (meta["min_pixels"], meta["max_pixels"], meta["min_crop_size"], meta["num_examples"]) == (
        MIN_PIXELS,
        MAX_PIXELS,
        28,
        1,
    )

    # The crop on disk is exactly the original's pixels inside the crop box (a real zoom-in, no padding).
    crop = Image.open(out / ground["images"][1])
    assert crop.size == (28, 28)
    original = np.asarray(Image.open(image))
    np.testing.assert_array_equal(np.asarray(crop), original[93:121, 1092:1120])

    # Reading it back resolves the relative crop path against the JSONL's folder.
    (loaded,) = load_sft_examples(out / "ground.jsonl")
    assert loaded["images"] == [image, str(out / ground["images"][1])]


@pytest.mark.parametrize(
    "box, expected",
    [
        # 3 x 3 in the top-left corner: s = 12 -> [-12, 15] = 27 -> [-12, 16] -> shifted right 12 -> [0, 28]
        ([0, 0, 3, 3], [0, 0, 28, 28]),
        # 3 x 3 in the bottom-right corner: x [1105, 1133] shifted left 13 -> [1092, 1120]; y [545, 573] -> [532, 560]
        ([1117, 557, 1120, 560], [1092, 532, 1120, 560]),
        # 4 x 4 in the middle: s = 12 -> [488, 516] and [188, 216], nothing to shift
        ([500, 200, 504, 204], [488, 188, 516, 216]),
        # already larger than 28 px: kept as is
        ([100, 50, 300, 90], [100, 50, 300, 90]),
    ],
)
def test_crops_keep_the_28px_minimum_and_stay_inside_the_image(tmp_path, box, expected):
    write_gradient_image(tmp_path / "images" / "page.png")
    records = write_records(tmp_path / "r.jsonl", [record(bboxs=[box])])
    out = tmp_path / "sft"
    _prepare(records, out)
    (ground,) = _lines(out / "ground.jsonl")
    assert ground["meta"]["crop_box"] == expected
    x1, y1, x2, y2 = expected
    assert 0 <= x1 and x2 <= 1120 and 0 <= y1 and y2 <= 560
    assert x2 - x1 >= 28 and y2 - y1 >= 28
    crop = np.asarray(Image.open(out / ground["images"][1]))
    original = np.asarray(Image.open(tmp_path / "images" / "page.png"))
    np.testing.assert_array_equal(crop, original[y1:y2, x1:x2])


def test_rerun_reuses_crops_and_writes_identical_files(records_file, tmp_path):
    out = tmp_path / "sft"
    _prepare(records_file, out)
    crop = next((out / "crops").iterdir())
    before = {p.name: p.read_bytes() for p in out.glob("*.json*")}
    mtime = crop.stat().st_mtime_ns

    again = _prepare(records_file, out)
    assert (again.crops_written, again.crops_reused) == (0, 1)
    assert crop.stat().st_mtime_ns == mtime  # not rewritten
    assert {p.name: p.read_bytes() for p in out.glob("*.json*")} == before
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temporary files left

    # A changed source image gets a new crop (the key holds its size and mtime), never the stale one.
    image = records_file.parent / "images" / "page.png"
    Image.new("RGB", (1120, 560), (9, 9, 9)).save(image)
    os.utime(image, ns=(mtime + 10**9, mtime + 10**9))
    third = _prepare(records_file, out)
    assert (third.crops_written, third.crops_reused) == (1, 0)
    (ground,) = _lines(out / "ground.jsonl")
    assert (out / ground["images"][1]).name != crop.name
    assert np.asarray(Image.open(out / ground["images"][1])).max() == 9


def test_a_damaged_crop_is_rewritten(records_file, tmp_path):
    out = tmp_path / "sft"
    (rec,) = load_viscot_records(records_file, image_root=records_file.parent).records
    path, written = ensure_crop(rec["image"], (1092, 93, 1120, 121), out)
    assert written
    path.write_bytes(b"")  # e.g. a disk-full leftover from another tool
    path2, written2 = ensure_crop(rec["image"], (1092, 93, 1120, 121), out)
    assert (path2, written2) == (path, True)
    assert Image.open(path).size == (28, 28)


def _bad_records_file(tmp_path):
    write_gradient_image(tmp_path / "images" / "page.png")
    truncated = tmp_path / "images" / "truncated.png"
    write_gradient_image(truncated)
    truncated.write_bytes(truncated.read_bytes()[:2000])  # header intact, pixel data cut
    return write_records(
        tmp_path / "records.jsonl",
        [
            record(),  # line 1: good
            '{"image": "images/page.png", "problem"',  # line 2: invalid JSON (loader)
            record(bboxs=[]),  # line 3: no evidence box (Ground SFT)
            record(image="images/missing.png"),  # line 4: image file not found (loader)
            record(image="images/truncated.png"),  # line 5: image does not decode (crop)
            record(bboxs=[[30, 20, 2, 2]]),  # line 6: inverted box: kept by the loader (a metric
        ],  # there), bad here (the Ground SFT target)
    )


def test_bad_records_are_reported_by_file_and_line(tmp_path):
    records = _bad_records_file(tmp_path)
    out = tmp_path / "sft"
    with pytest.raises(RecordValidationError) as err:
        _prepare(records, out)
    text = str(err.value)
    for line, field in ((2, "json"), (3, "bboxs"), (4, "image"), (5, "image")):
        assert f"{records}:{line}: {field}:" in text
    assert (
        f"{records}:6: bboxs[0]: empty or inverted box [30, 20, 2, 2]: need x2 > x1 and y2 > y1 (Ground SFT "
        "trains on bboxs[0])"
    ) in text
    assert "--skip_bad_records" in text
    assert not (out / "ground.jsonl").exists() and not (out / "vanilla.jsonl").exists()


def test_skip_bad_records_keeps_the_good_ones_in_both_sets(tmp_path):
    records = _bad_records_file(tmp_path)
    out = tmp_path / "sft"
    report = _prepare(records, out, skip_bad_records=True)
    assert report.num_examples == 1
    assert [ex["id"] for ex in _lines(out / "ground.jsonl")] == ["records.jsonl:1"]
    assert [ex["id"] for ex in _lines(out / "vanilla.jsonl")] == ["records.jsonl:1"]
    skipped = _lines(out / "skipped_records.jsonl")
    assert sorted({s["line"] for s in skipped}) == [2, 3, 4, 5, 6]
    assert all(s["file"] == str(records) for s in skipped)


def test_cli_fails_with_file_and_line_and_writes_nothing(tmp_path, capsys):
    records = _bad_records_file(tmp_path)
    out = tmp_path / "sft"
    code = cli.main(
        ["--data_path", str(records), "--output_dir", str(out), "--max_pixels", str(MAX_PIXELS), "--no_progress"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert f"{records}:2: json:" in err and f"{records}:3: bboxs:" in err
    assert not (out / "ground.jsonl").exists()


def test_cli_reads_pixel_bounds_from_the_preset_and_flags_win(records_file, tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text("min_pixels: 3136\nmax_pixels: 12544\n")
    assert (
        cli.main(
            [
                "--data_path",
                str(records_file),
                "--output_dir",
                str(tmp_path / "a"),
                "--config",
                str(preset),
                "--no_progress",
            ]
        )
        == 0
    )
    assert read_sft_metadata(tmp_path / "a")["max_pixels"] == 12544
    assert (
        cli.main(
            [
                "--data_path",
                str(records_file),
                "--output_dir",
                str(tmp_path / "b"),
                "--config",
                str(preset),
                "--max_pixels",
                str(MAX_PIXELS),
                "--no_progress",
            ]
        )
        == 0
    )
    (ground,) = _lines(tmp_path / "b" / "ground.jsonl")
    assert ground["messages"][1]["content"][0]["text"] == "[546,47,560,61]"


def test_reading_sft_data_reports_every_bad_line(tmp_path):
    good = {
        "id": "a:1",
        "images": ["x.png"],
        "messages": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "a"}]},
        ],
    }
    two_paths = dict(good, images=["x.png", "y.png"])
    no_answer = dict(good, messages=good["messages"][:1])
    path = write_records(tmp_path / "ground.jsonl", [good, two_paths, no_answer, "{oops"])
    with pytest.raises(RecordValidationError) as err:
        load_sft_examples(path)
    text = str(err.value)
    assert f"{path}:2: images: 2 path(s) for 1 image item(s)" in text
    assert f"{path}:3: messages: no assistant turn" in text
    assert f"{path}:4: json:" in text
    assert f"{path}:1:" not in text
