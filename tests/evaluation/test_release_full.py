"""The release's whole evaluation files (shared/data/release-full, read in place), every record of every file,
through every loader, in the release's folder layout and in ours (issue 15).

Placeholder images (headers of the records' own sizes for VisCoT and RefCOCO, small PNGs for the general
benchmarks) are built once for the module by tests/evaluation/release_full.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from release_full import GENERAL, RECORDS, REFCOCO_FILE, VISCOT_FILE, VISCOT_PREFIX, build  # noqa: E402

from ground_r1.evaluation import general, inference, refcoco  # noqa: E402

# The VisCoT benchmark's records with an unusable evidence box (one inverted, nine outside the image): kept,
# their box metric n/a. Line 1831 is the 8400x11200 DUDE page, over PIL's warning level, read.
BAD_BOX_LINES = [729, 1804, 1819, 1837, 1854, 1870, 1899, 1905, 1926, 1947]
HUGE_PAGE_LINE = 1831
MMMU_PAST_OPTIONS = 28


@pytest.fixture(scope="module")
def layout(shared_dir, tmp_path_factory):
    return build(shared_dir / "data" / "release-full", tmp_path_factory.mktemp("release_full"))


@pytest.mark.parametrize("which", ["release", "ours"])
def test_every_general_file_is_read_whole_in_both_layouts(layout, which, caplog):
    # The release's layout (DATASET_ROOT = its JSONL folder, IMAGE_ROOT/{NAME}/ = its LVLM_benchmarks) used to
    # give "image not found" on every record, and MMMU_val's 28 answers past D stopped all eight benchmarks.
    if which == "release":
        read = general.read_benchmarks(GENERAL, layout.release_dir, image_root=layout.image_root)
    else:
        read = general.read_benchmarks(GENERAL, layout.ours)
    assert read.failed == {}
    assert {d.name: (d.records_read, len(d.items), d.skipped_records) for d in read.loaded} == {
        name: (RECORDS[name], RECORDS[name], 0) for name in GENERAL
    }
    by_name = {d.name: d for d in read.loaded}
    images = layout.image_root if which == "release" else layout.ours
    assert by_name["MME"].items[0].image == str(images / "MME" / "images/commonsense_reasoning/0001.png")
    assert by_name["SEED_Bench"].items[0].image == str(images / "SEED_Bench" / "1454426_2591111986.jpg")
    mmmu = by_name["MMMU_val"].items
    assert sum(bool(it.extra.get("answer_past_options")) for it in mmmu) == MMMU_PAST_OPTIONS
    assert (
        "MMMU_val: 28 row(s) have an answer letter past the options the file kept (EFI; first: MMMU_val.jsonl:32)"
        in caplog.text
    )


def test_the_viscot_benchmark_is_read_whole_with_its_bad_boxes_kept(layout):
    # It used to lose 11 of 1,950 records: ten evidence boxes (a metric only) and the 8400x11200 page (over PIL's
    # warning level, under its error threshold).
    read = inference.read_viscot_items(
        layout.release_dir / VISCOT_FILE,
        image_root=layout.viscot_images,
        path_prefix=VISCOT_PREFIX,
        max_items_per_dataset=0,
    )
    assert (read.records_read, len(read.items), read.loaded.skipped) == (RECORDS["VisCoT"], 1950, 0)
    assert sorted({n.line for n in read.loaded.box_notes}) == BAD_BOX_LINES
    by_line = {int(it.key.rsplit(":", 1)[1]): it for it in read.items}
    assert all(by_line[line].fields["bboxs"] == [] and by_line[line].fields["box_issues"] for line in BAD_BOX_LINES)
    assert by_line[729].fields["box_issues"] == [
        "bboxs[0]: empty or inverted box [868, 213, 859, 389]: need x2 > x1 and y2 > y1"
    ]
    assert (by_line[HUGE_PAGE_LINE].fields["width"], by_line[HUGE_PAGE_LINE].fields["height"]) == (8400, 11200)
    assert by_line[HUGE_PAGE_LINE].image == str(
        layout.viscot_images / "cot_image_data/dude" / Path(by_line[HUGE_PAGE_LINE].image).name
    )
    # The paper's protocol (150 per sub-dataset, the CLI's default) is the whole file: 13 x 150.
    assert len(inference.limit_per_dataset(read.items, 150, lambda it: it.dataset)) == 1950


def test_the_refcoco_subset_is_read_whole(layout):
    read = refcoco.read_refcoco_items(layout.release_dir / REFCOCO_FILE, image_root=layout.refcoco_images)
    assert (read.records_read, read.loaded.skipped) == (RECORDS["RefCOCO"], 0)
    assert len({it.fields["object_key"] for it in read.items}) == 8000 and len(read.items) == 20736


def test_mmmu_whole_file_scored_by_the_official_rules_with_its_rows_past_d(layout):
    # Issues 15 and 16 together: the 28 rows past D stay in the 900 and MMMU's official parser reads their letter
    # (as one more choice), the 53 open rows go to the official open rule, and the summary shows the 900-row
    # headline, the labelled 872-answerable-rows accuracy (the same rule) and the variant rows.
    read = general.read_benchmarks(["MMMU_val"], layout.release_dir, image_root=layout.image_root)
    (data,) = read.loaded
    spec = data.spec
    kinds = [it.extra["question_type"] for it in data.items]
    assert (len(data.items), kinds.count("open")) == (900, 53)
    # Every multiple-choice row answered "(X)" with its own answer letter, E/F/I included; every open row "zzz".
    records = [
        spec.score_item(it, f"({it.answer})" if kind == "multiple-choice" else "zzz")
        for it, kind in zip(data.items, kinds)
    ]
    assert sum(r["correct"] for r in records) == 847  # 900 - 53 open; the 28 past D are right
    assert sum(not r["answerable"] and r["correct"] for r in records) == MMMU_PAST_OPTIONS
    metrics = spec.aggregate(records)
    assert (metrics["n_answerable"], metrics["n_answer_past_options"]) == (872, MMMU_PAST_OPTIONS)
    assert metrics["accuracy"] == pytest.approx(100 * 847 / 900)
    assert metrics["accuracy_answerable"] == pytest.approx(100 * 819 / 872)
    rows = general.summary_rows(spec, metrics, general.ScoredBenchmark(records), skipped=data.skipped_records)
    assert [(r.metric, r.items, r.variant, r.rule == spec.rule) for r in rows] == [
        ("accuracy", 900, False, True),
        ("accuracy over the 872 answerable rows", 872, False, True),
        ("accuracy", 900, True, False),  # mmmu_official
        ("accuracy", 900, True, False),  # lenient
        ("accuracy", 900, True, False),  # release
    ]
    assert rows[0].notes.startswith("all rows, as the release: 28 whose answer is past the kept options")
    assert [r.rule.split(":")[0] for r in rows[2:]] == ["MMMU official answer file", "ours", "release"]
    markdown = general.render_summary_markdown(rows, "x")
    # Issue 17 on every row: the answerable-rows accuracy carries its own standard error, over its 872 rows (819
    # right: sqrt(0.9392 x 0.0608 / 871) = 0.0081 -> 0.8), the headline over the 900 and each variant row over theirs.
    assert (
        f"| MMMU_val | accuracy over the 872 answerable rows | {spec.rule} | 93.9 ± 0.8 | 872 | 0 | 0 | 0 |" in markdown
    )
    assert rows[1].se == pytest.approx(100 * (819 / 872 * 53 / 872 / 871) ** 0.5)
    assert rows[1].error_bar == "standard error of the mean over 872 items"
    assert all(
        r.se is not None and r.error_bar == "standard error of the mean over 900 items"
        for r in rows
        if r is not rows[1]
    )
