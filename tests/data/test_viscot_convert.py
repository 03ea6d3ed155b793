"""ground_r1.data.viscot + cli.prepare_viscot: upstream Visual-CoT items -> flat records (SPEC §6)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from ground_r1.cli import prepare_viscot
from ground_r1.data.records import load_viscot_records
from ground_r1.data.viscot import convert_viscot

BOX_REQUEST = " Please provide the bounding box coordinate of the region that can help you answer the question better."


@pytest.fixture(scope="session")
def upstream_file(shared_dir: Path) -> Path:
    return shared_dir / "data" / "viscot-original-format" / "benchmark.sample.json"


@pytest.fixture(scope="session")
def upstream_items(upstream_file: Path) -> list[dict]:
    return json.loads(upstream_file.read_text(encoding="utf-8"))


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# Values read by eye from benchmark.sample.json (index: question, answer, box after ###, dataset, question_id).
EXPECTED = {
    0: ("Does the bird in the picture have blue breast and dagger bill?", "No", [141, 87, 397, 298], "cub", 7),
    2: ("What is the name of the Dealer ?", "A. C. Monk", [74, 398, 404, 1118], "docvqa", 0),
    5: ("What is the company name?b", "go2INTERCEPT", [349, 433, 805, 534], "dude", 1),  # the "?b" is upstream's
    17: (
        "What is the address in the invoice shown in the picture?",
        "NO 290, JALAN AIR PANAS, SETAPAK, 53200, KUALA LUMPUR.",
        [45, 412, 663, 734],
        "sroie",
        1,
    ),
    18: (
        "What brand of perfume is displayed in front of the yellow box?",
        "LANCOME",
        [227, 501, 423, 549],
        "textcap",
        0,
    ),
    22: ("What is behind the bench?", "Foliage.", [2, 0, 390, 282], "v7w", 0),
}
EXPECTED_IMAGES = {
    0: "cot/cub/001.Black_footed_Albatross/Black_Footed_Albatross_0016_796067.jpg",
    2: "cot/docvqa/xjpn0081_4.png",
    18: "cot/textvqa/de16e970e8c0adbe.jpg",  # textcap questions use textvqa images
}


def test_convert_upstream_sample(upstream_file, upstream_items, tmp_path):
    out = tmp_path / "viscot.jsonl"
    report = convert_viscot(upstream_file, out, progress=False)
    assert (report.total, report.count, report.bad, report.written) == (26, 26, [], True)
    assert report.without_size == 26  # no image_root: no sizes
    recs = _read(out)
    assert len(recs) == 26

    for index, (question, answer, box, dataset, qid) in EXPECTED.items():
        rec = recs[index]
        assert (rec["problem"], rec["solution"], rec["bboxs"], rec["dataset"], rec["problem_id"], rec["split"]) == (
            question,
            answer,
            [box],
            dataset,
            qid,
            "val",
        )
    for index, image in EXPECTED_IMAGES.items():
        assert recs[index]["image"] == image
    assert list(recs[0]) == ["image", "bboxs", "dataset", "split", "problem", "solution", "problem_id"]

    # Structurally, for all 26: the question is the human text between "<image>\n" and the box request, the
    # answer the 4th turn, the box the '###' part, and nothing of the prompt scaffolding survives.
    for item, rec in zip(upstream_items, recs):
        human = item["conversations"][0]["value"]
        assert human == "<image>\n" + rec["problem"] + BOX_REQUEST
        assert rec["solution"] == item["conversations"][3]["value"]
        path, box = item["image"][1].split("###")
        assert rec["image"] == path == item["image"][0]
        assert rec["bboxs"] == [json.loads(box)]
        assert rec["problem_id"] == item["question_id"]
        assert (rec["dataset"], rec["split"]) == (item["dataset"], item["split"])
        assert "<image>" not in rec["problem"] and "bounding box" not in rec["problem"]


def test_conversion_matches_the_release_records(upstream_file, release_format_dir, tmp_path):
    """The authors' own flat file holds the same 26 items: ours must agree with it field by field, except the
    gqa/openimages items that the release rewrote as multiple choice ("choice" in its name)."""
    out = tmp_path / "viscot.jsonl"
    convert_viscot(upstream_file, out, progress=False)
    ours = {(r["dataset"], r["problem_id"]): r for r in _read(out)}
    theirs = _read(release_format_dir / "visualCoT_eval_subset150_choice.sample.jsonl")
    assert len(ours) == 26 and len(theirs) == 26
    compared = 0
    for rel in theirs:
        rec = ours[(rel["dataset"], rel["problem_id"])]
        assert rec["bboxs"] == rel["bboxs"]
        assert rel["image"].endswith(rec["image"].removeprefix("cot/"))
        if rel["dataset"] in ("gqa", "openimages"):
            assert rel["solution"].startswith("<answer>")
            continue
        assert (rec["problem"], rec["solution"], rec["split"]) == (rel["problem"], rel["solution"], rel["split"])
        compared += 1
    assert compared == 22


def test_sizes_read_from_images_and_records_load(upstream_file, upstream_items, release_format_dir, tmp_path):
    # Placeholder images at the true sizes, which the release's flat file records (keyed by file name).
    release = _read(release_format_dir / "visualCoT_eval_subset150_choice.sample.jsonl")
    true_size = {Path(r["image"]).name: (r["width"], r["height"]) for r in release}
    root = tmp_path / "root"
    sizes = {}
    for item in upstream_items:
        path = root / item["image"][0]
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():  # vsr and sroie share an image between two items
            Image.new("RGB", true_size[path.name]).save(path)
            sizes[item["image"][0]] = true_size[path.name]
    # One EXIF-rotated image: its size is given after rotation, as load_image will return it.
    rotated = root / upstream_items[2]["image"][0]
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (2000, 1500)).save(rotated, exif=exif)
    sizes[upstream_items[2]["image"][0]] = (1500, 2000)

    out = tmp_path / "viscot.jsonl"
    report = convert_viscot(upstream_file, out, image_root=root, progress=False)
    assert (report.count, report.without_size) == (26, 0)
    recs = _read(out)
    for rec in recs:
        assert (rec["width"], rec["height"]) == sizes[rec["image"]]
    assert list(recs[0])[:3] == ["image", "width", "height"]

    loaded = load_viscot_records(out, image_root=root)
    assert len(loaded.records) == 26 and loaded.records[2]["image"] == str(rotated)
    # 1500x2000: beta = sqrt(3,000,000 / 401,408) = 2.7338; 1500/2.7338/28 = 19.6 -> 532; 2000/2.7338/28 = 26.1
    # -> 728.
    assert (loaded.records[2]["input_width"], loaded.records[2]["input_height"]) == (532, 728)


def _bad_items(upstream_items: list[dict]) -> list:
    good = upstream_items[0]
    no_answer = json.loads(json.dumps(good))
    no_answer["conversations"] = no_answer["conversations"][:2]
    bad_box = json.loads(json.dumps(good))
    bad_box["image"][1] = bad_box["image"][0] + "###[1, 2, 3]"
    no_dataset = {k: v for k, v in good.items() if k != "dataset"}
    return [good, no_answer, bad_box, no_dataset, "text", upstream_items[1]]


def test_bad_items_reported_and_nothing_written(upstream_items, tmp_path):
    src = tmp_path / "in.json"
    src.write_text(json.dumps(_bad_items(upstream_items)))
    out = tmp_path / "out.jsonl"
    report = convert_viscot(src, out, progress=False)
    assert (report.total, report.count, report.written, out.exists()) == (6, 2, False, False)
    assert [str(i) for i in report.bad] == [
        f"{src}:item 2: conversations: expected human question, gpt box, human crop, gpt answer; "
        "got roles ['human', 'gpt']",
        f"{src}:item 3: image: box after '###' must be 4 finite numbers [x1, y1, x2, y2], got '[1, 2, 3]'",
        f"{src}:item 4: dataset: missing required field",
        f"{src}:item 5: record: expected a JSON object, got str",
    ]
    skipped = convert_viscot(src, out, progress=False, skip_bad_records=True)
    assert (skipped.count, skipped.written, len(skipped.bad)) == (2, True, 4)
    assert [r["problem_id"] for r in _read(out)] == [7, 15]


def test_jsonl_input(upstream_items, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(upstream_items[3]) + "\n\n{broken\n" + json.dumps(upstream_items[4]) + "\n")
    out = tmp_path / "out.jsonl"
    report = convert_viscot(src, out, progress=False, skip_bad_records=True)
    assert [(i.line, i.field, i.unit) for i in report.bad] == [(3, "json", "line")]
    assert [(r["dataset"], r["solution"]) for r in _read(out)] == [("docvqa", "31"), ("dude", "2016-04-01")]


def test_cli_exit_codes(upstream_items, tmp_path, capsys):
    src = tmp_path / "in.json"
    src.write_text(json.dumps(_bad_items(upstream_items)))
    out = tmp_path / "out.jsonl"
    assert prepare_viscot.main(["--input", str(src), "--output", str(out), "--no_progress"]) == 1
    err = capsys.readouterr().err
    assert f"{src}:item 4: dataset: missing required field" in err and "--skip_bad_records" in err
    assert not out.exists()

    argv = ["--input", str(src), "--output", str(out), "--no_progress", "--skip_bad_records"]
    assert prepare_viscot.main(argv) == 0
    assert len(_read(out)) == 2
    skipped = _read(Path(f"{out}.skipped.jsonl"))
    assert [(r["line"], r["field"]) for r in skipped] == [
        (2, "conversations"),
        (3, "image"),
        (4, "dataset"),
        (5, "record"),
    ]

    assert prepare_viscot.main(["--input", str(tmp_path / "absent.json"), "--output", str(out)]) == 1
    assert "not found" in capsys.readouterr().err


def test_cli_help_runs_as_module():
    result = subprocess.run(
        [sys.executable, "-m", "ground_r1.cli.prepare_viscot", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "--image_root" in result.stdout and "--skip_bad_records" in result.stdout
