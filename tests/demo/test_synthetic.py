"""The synthetic zoom-in task (ground_r1.demo.synthetic): determinism, SPEC §6 records, scene geometry, and
the property the task exists for: the detail is blended away in the model's full view but intact in a crop."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ground_r1.demo import synthetic as syn

SPEC6_FIELDS = {"image", "width", "height", "bboxs", "dataset", "split", "problem", "solution", "problem_id"}


def _digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under folder, keyed by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _read(jsonl: Path) -> list[dict]:
    return [json.loads(line) for line in jsonl.read_text().splitlines()]


def _scenes(cfg: syn.SyntheticConfig, n: int, split: str = "train"):
    return [syn.generate_scene(syn.record_rng(cfg.seed, split, i), cfg) for i in range(n)]


def _rgb(image: Image.Image, xy: tuple[int, int]) -> tuple[int, int, int]:
    return tuple(image.convert("RGB").getpixel(xy))


# ---------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    cfg = syn.SyntheticConfig(seed=7, num_records=5)
    syn.write_zoom_dataset(tmp_path / "a", cfg)
    syn.write_zoom_dataset(tmp_path / "b", cfg)
    syn.write_zoom_dataset(tmp_path / "c", dataclasses.replace(cfg, seed=8))
    a, b, c = (_digest(tmp_path / x) for x in "abc")
    assert len(a) == 6  # 5 images + train.jsonl
    assert a == b
    assert a.keys() == c.keys()
    # a different seed changes the JSONL and every image (different card layouts)
    assert all(a[k] != c[k] for k in a)


def test_record_does_not_depend_on_how_many_are_written(tmp_path):
    cfg = syn.SyntheticConfig(seed=3, num_records=2)
    short = _read(syn.write_zoom_dataset(tmp_path / "short", cfg))
    long = _read(syn.write_zoom_dataset(tmp_path / "long", dataclasses.replace(cfg, num_records=4)))
    assert long[:2] == short
    assert (
        _digest(tmp_path / "short")["images/train_000001.png"] == _digest(tmp_path / "long")["images/train_000001.png"]
    )


def test_train_and_eval_splits_draw_different_scenes():
    cfg = syn.SyntheticConfig()
    train = [s.referents for _, s in _scenes(cfg, 3, "train")]
    evals = [s.referents for _, s in _scenes(cfg, 3, "eval")]
    assert all(t != e for t, e in zip(train, evals))


# ---------------------------------------------------------------- records (SPEC §6)


def test_records_have_spec6_fields_and_match_their_scene(tmp_path):
    cfg = syn.SyntheticConfig(seed=11, num_records=6)
    jsonl = syn.write_zoom_dataset(tmp_path, cfg, split="eval")
    assert jsonl == tmp_path / "eval.jsonl"
    records = _read(jsonl)
    assert len(records) == 6
    for index, rec in enumerate(records):
        assert set(rec) == SPEC6_FIELDS
        assert rec["image"] == f"images/eval_{index:06d}.png"  # relative to the JSONL's folder
        assert (rec["dataset"], rec["split"], rec["problem_id"]) == ("zoom_synthetic", "eval", index)
        assert (rec["width"], rec["height"]) == (448, 448)
        image = Image.open(tmp_path / rec["image"])
        assert image.size == (rec["width"], rec["height"])
        _, scene = syn.generate_scene(syn.record_rng(11, "eval", index), cfg)
        target = scene.target_referent
        assert rec["bboxs"] == [list(target.box)]
        assert rec["problem"] == f"What colour is the dot inside the {target.kind} card?"
        # exactly one card of the named kind, so the question picks one card
        assert [r.kind for r in scene.referents].count(target.kind) == 1
        assert rec["solution"] == target.detail
        # the answer is the colour actually drawn, read back from the written PNG
        assert _rgb(image, target.dot_center) == syn.DETAIL_PALETTE[rec["solution"]]


def test_multiple_choice_options_and_letter_answer(tmp_path):
    cfg = syn.SyntheticConfig(seed=5, num_records=8, multiple_choice=True)
    for index, rec in enumerate(_read(syn.write_zoom_dataset(tmp_path, cfg))):
        _, scene = syn.generate_scene(syn.record_rng(5, "train", index), cfg)
        lines = rec["problem"].split("\n")
        assert lines[0] == f"What colour is the dot inside the {scene.target_referent.kind} card?"
        options = dict(re.fullmatch(r"([A-D])\. (\w+)", line).groups() for line in lines[1:])
        # 4 details configured -> 4 options A-D, each palette colour once
        assert sorted(options) == ["A", "B", "C", "D"]
        assert sorted(options.values()) == sorted(cfg.details)
        letter = re.fullmatch(r"<answer>([A-D])</answer>", rec["solution"]).group(1)
        assert options[letter] == scene.target_referent.detail
        assert rec["dataset"] == "zoom_synthetic"


def test_answers_cover_every_colour_and_kind():
    """The target draw is not stuck on one kind or colour (a constant answer would teach nothing)."""
    scenes = [s for _, s in _scenes(syn.SyntheticConfig(seed=2), 40)]
    assert {s.target_referent.detail for s in scenes} == {"red", "green", "blue", "yellow"}
    assert {s.target_referent.kind for s in scenes} == {"orange", "purple", "cyan", "magenta"}


# ---------------------------------------------------------------- scene geometry


@pytest.mark.parametrize("square", [True, False])
def test_cards_inside_canvas_apart_and_hold_their_dot(square):
    cfg = syn.SyntheticConfig(seed=1, num_referents=4, square_cards=square, num_distractor_dots=5)
    for image, scene in _scenes(cfg, 25):
        boxes = [r.box for r in scene.referents] + [b for _, b in scene.distractor_dots]
        assert len(scene.referents) == 4 and len(scene.distractor_dots) == 5
        for x1, y1, x2, y2 in boxes:
            assert 0 <= x1 < x2 <= 448 and 0 <= y1 < y2 <= 448
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                # separated by at least min_gap (8) along x or along y
                assert a[2] + 8 <= b[0] or b[2] + 8 <= a[0] or a[3] + 8 <= b[1] or b[3] + 8 <= a[1]
        for r in scene.referents:
            x1, y1, x2, y2 = r.box
            assert 48 <= x2 - x1 <= 96 and 48 <= y2 - y1 <= 96
            if square:
                assert x2 - x1 == y2 - y1
            dx1, dy1, dx2, dy2 = r.dot_box
            assert x1 < dx1 and dx2 < x2 and y1 < dy1 and dy2 < y2  # the dot lies inside the card
            assert 5 <= dx2 - dx1 <= 6
            assert dx1 <= r.dot_center[0] < dx2 and dy1 <= r.dot_center[1] < dy2
            assert _rgb(image, r.dot_center) == syn.DETAIL_PALETTE[r.detail]
            assert _rgb(image, (x1, y1)) == syn.KIND_PALETTE[r.kind]  # card corner: the kind's fill
        assert len({r.kind for r in scene.referents}) == 4
        assert len({r.detail for r in scene.referents}) == 4  # unique_details
        for name, (dx1, dy1, dx2, dy2) in scene.distractor_dots:
            assert _rgb(image, ((dx1 + dx2 - 1) // 2, (dy1 + dy2 - 1) // 2)) == syn.DETAIL_PALETTE[name]


def test_repeat_details_allowed_when_not_unique():
    # 3 cards, 4 colours drawn independently: P(all distinct) = 4*3*2/64 = 0.375 per scene, so 20 scenes hold
    # a repeat; with unique_details none may
    unique = [s for _, s in _scenes(syn.SyntheticConfig(seed=4), 20)]
    free = [s for _, s in _scenes(syn.SyntheticConfig(seed=4, unique_details=False), 20)]
    assert all(len({r.detail for r in s.referents}) == 3 for s in unique)
    assert any(len({r.detail for r in s.referents}) < 3 for s in free)


def _background(image: Image.Image, scene: syn.SceneInfo) -> np.ndarray:
    """The pixels outside every card, [N, 3]."""
    mask = np.ones((scene.height, scene.width), dtype=bool)
    for x1, y1, x2, y2 in (r.box for r in scene.referents):
        mask[y1:y2, x1:x2] = False
    return np.asarray(image).astype(int)[mask]


def test_background_noise_stays_within_its_amplitude():
    base = np.array([24, 26, 32])
    noisy = _background(*syn.generate_scene(syn.record_rng(0, "train", 0), syn.SyntheticConfig(background_noise=10)))
    assert (np.abs(noisy - base) <= 10).all()
    assert noisy.min() < 24 and noisy.max() > 32  # noisy, not flat
    flat = _background(*syn.generate_scene(syn.record_rng(0, "train", 0), syn.SyntheticConfig()))
    assert (flat == base).all()


# ---------------------------------------------------------------- the zoom property


def _view(image: Image.Image, side: int = 112) -> np.ndarray:
    return np.asarray(image.resize((side, side), Image.BILINEAR)).astype(float)


def _full_view_and_crop_distances(cfg: syn.SyntheticConfig, n: int) -> tuple[list[float], list[float]]:
    """For every dot: RGB distance to its true colour of (1) the full-view pixel over its centre after the
    448 -> 112 resize, (2) the pixel over its centre in the card crop resized to 112 x 112."""
    full, crop = [], []
    for image, scene in _scenes(cfg, n):
        view = _view(image)
        for r in scene.referents:
            true = np.array(syn.DETAIL_PALETTE[r.detail], dtype=float)
            cx, cy = r.dot_center
            full.append(float(np.linalg.norm(view[cy * 112 // 448, cx * 112 // 448] - true)))
            x1, y1, x2, y2 = r.box
            cview = _view(image.crop(r.box))
            crop.append(float(np.linalg.norm(cview[(cy - y1) * 112 // (y2 - y1), (cx - x1) * 112 // (x2 - x1)] - true)))
    return full, crop


def test_default_dot_is_blended_in_full_view_but_intact_in_the_crop():
    full, crop = _full_view_and_crop_distances(syn.SyntheticConfig(seed=9), 12)
    # dot colours lie 259-334 units from the white label; measured on 600 dots the full-view centre pixel
    # is >= 71 units from the true colour; in the crop it is the colour itself (up to rounding)
    assert min(full) >= 50
    assert max(crop) <= 10


def test_large_dot_is_legible_without_zoom_and_warns(caplog):
    """The same measurement flags a 12-px dot (the earlier probe's size): proof the check above can fail."""
    with caplog.at_level(logging.WARNING, logger="ground_r1.demo.synthetic"):
        cfg = syn.SyntheticConfig(seed=9, dot_size_range=(12, 12))
    assert "legible without zooming" in caplog.text
    full, crop = _full_view_and_crop_distances(cfg, 12)
    assert max(full) <= 15 and max(crop) <= 10  # vs >= 50 for the default 5-6 px dots


# ---------------------------------------------------------------- pretraining examples


def test_grounding_example_boxes_the_named_card():
    cfg = syn.SyntheticConfig()
    for i in range(6):
        image, ex = syn.make_grounding_example(syn.record_rng(0, "ground", i), cfg)
        _, scene = syn.generate_scene(syn.record_rng(0, "ground", i), cfg)  # same draw order: same scene
        (ref,) = [r for r in scene.referents if r.kind == ex["kind"]]
        assert (
            ex["problem"] == f"Locate the {ref.kind} card in this image and output the bbox coordinates in JSON format."
        )
        assert ex["bbox"] == list(ref.box)
        assert json.loads(ex["solution"]) == ex["bbox"]
        x1, y1, x2, y2 = ex["bbox"]
        assert _rgb(image, (x1, y1)) == _rgb(image, (x2 - 1, y2 - 1)) == syn.KIND_PALETTE[ref.kind]
        assert (ex["width"], ex["height"], ex["task"]) == (448, 448, "grounding")


def test_crop_reading_example_is_a_native_crop_holding_the_card():
    cfg = syn.SyntheticConfig()
    for i in range(6):
        crop, ex = syn.make_crop_reading_example(syn.record_rng(0, "read", i), cfg)
        full, scene = syn.generate_scene(syn.record_rng(0, "read", i), cfg)
        (ref,) = [r for r in scene.referents if r.kind == ex["kind"]]
        cx1, cy1, cx2, cy2 = ex["crop_box"]
        assert crop.size == (cx2 - cx1, cy2 - cy1)
        x1, y1, x2, y2 = ref.box
        assert cx1 <= x1 and cy1 <= y1 and x2 <= cx2 and y2 <= cy2
        # margins are at most 25% of the card side on each side (rounded)
        assert x1 - cx1 <= round(0.25 * (x2 - x1)) and cy2 - y2 <= round(0.25 * (y2 - y1))
        assert np.array_equal(np.asarray(crop), np.asarray(full.crop(ex["crop_box"])))  # native pixels
        assert ex["solution"] == ref.detail
        assert _rgb(crop, (ref.dot_center[0] - cx1, ref.dot_center[1] - cy1)) == syn.DETAIL_PALETTE[ref.detail]


# ---------------------------------------------------------------- config checks


def test_config_lists_every_problem_with_hints():
    with pytest.raises(ValueError) as err:
        syn.SyntheticConfig(kinds=("orang", "purple"), num_referents=3, image_format="jpg")
    text = str(err.value)
    assert "unknown name 'orang' (did you mean 'orange'?)" in text
    assert "num_referents=3 exceeds the 2 kinds" in text
    assert "image_format: 'jpg'" in text


def test_config_refuses_crowded_canvas_and_cards_too_small_for_the_label():
    with pytest.raises(ValueError, match="cover over half"):
        syn.SyntheticConfig(canvas_width=200, canvas_height=200)
    # label of a 6-px dot is 18 px, plus 4 px of card around it -> cards need >= 22 px
    with pytest.raises(ValueError, match=r"need >= 22"):
        syn.SyntheticConfig(card_size_range=(20, 40))


def test_lists_become_tuples():
    cfg = syn.SyntheticConfig(kinds=["cyan", "orange", "gray"], card_size_range=[50, 60])
    assert cfg.kinds == ("cyan", "orange", "gray") and cfg.card_size_range == (50, 60)
    hash(cfg)


# ---------------------------------------------------------------- cached default dataset


def test_ensure_default_dataset_builds_once_and_reuses(tmp_path, monkeypatch):
    monkeypatch.setenv("GROUND_R1_CACHE", str(tmp_path))
    folder = syn.ensure_default_dataset(num_train=3, num_eval=2)
    assert folder.parent == tmp_path / "synthetic"
    assert (folder / "COMPLETE").is_file()
    assert len(_read(folder / "train.jsonl")) == 3 and len(_read(folder / "eval.jsonl")) == 2
    assert [p.name for p in (tmp_path / "synthetic").iterdir()] == [folder.name]  # no temp folder left behind

    def fail(*args, **kwargs):
        raise AssertionError("rebuilt a complete dataset")

    monkeypatch.setattr(syn, "write_zoom_dataset", fail)
    assert syn.ensure_default_dataset(num_train=3, num_eval=2) == folder


def test_ensure_default_dataset_rebuilds_a_folder_without_stamp(tmp_path):
    cfg = syn.SyntheticConfig(seed=1)
    folder = tmp_path / syn.config_hash(cfg, 2, 1)
    folder.mkdir()
    (folder / "train.jsonl").write_text("half written")
    assert syn.ensure_default_dataset(tmp_path, num_train=2, num_eval=1, cfg=cfg) == folder
    assert len(_read(folder / "train.jsonl")) == 2
    assert (folder / "COMPLETE").is_file()


def test_config_hash_follows_knobs_and_sizes_not_num_records():
    cfg = syn.SyntheticConfig()
    h = syn.config_hash(cfg, 10, 2)
    assert syn.config_hash(dataclasses.replace(cfg, num_records=999), 10, 2) == h
    assert syn.config_hash(dataclasses.replace(cfg, seed=1), 10, 2) != h
    assert syn.config_hash(cfg, 11, 2) != h


# ---------------------------------------------------------------- CLI


def test_cli_writes_both_splits(tmp_path):
    out = tmp_path / "ds"
    rc = syn.main(
        [
            str(out),
            "--num_train",
            "3",
            "--num_eval",
            "2",
            "--seed",
            "4",
            "--multiple_choice",
            "--num_referents",
            "2",
            "--dot_size",
            "4",
            "5",
        ]
    )
    assert rc == 0
    train, evals = _read(out / "train.jsonl"), _read(out / "eval.jsonl")
    assert (len(train), len(evals)) == (3, 2)
    assert all(r["solution"].startswith("<answer>") for r in train + evals)
    _, scene = syn.generate_scene(
        syn.record_rng(4, "train", 0),
        syn.SyntheticConfig(seed=4, num_referents=2, dot_size_range=(4, 5), multiple_choice=True),
    )
    assert len(scene.referents) == 2 and train[0]["bboxs"] == [list(scene.target_referent.box)]


def test_cli_rejects_bad_config(tmp_path, caplog):
    assert syn.main([str(tmp_path), "--kinds", "orange", "pruple", "--num_referents", "2"]) == 2
    assert "did you mean 'purple'" in caplog.text
    assert not (tmp_path / "train.jsonl").exists()


def test_cli_module_help():
    run = subprocess.run(
        [sys.executable, "-m", "ground_r1.demo.synthetic", "--help"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0
    assert "out_dir" in run.stdout and "--num_train" in run.stdout


def test_records_load_with_the_viscot_loader(tmp_path):
    """Integration with data.records: the JSONL's folder is the image root of the relative `image` paths."""
    from ground_r1.data.records import load_viscot_records

    jsonl = syn.write_zoom_dataset(tmp_path, syn.SyntheticConfig(num_records=3))
    loaded = load_viscot_records(jsonl, image_root=tmp_path)
    assert loaded.issues == [] and len(loaded.records) == 3
    assert loaded.records[2]["image"] == str(tmp_path / "images/train_000002.png")
