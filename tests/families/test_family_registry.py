"""The model-family registry (ground_r1.models.families): the family is read from config.json's model_type, never
from the folder name; geometry is read from the processor and checked against the model; the coordinate frames.

Evidence for each family's default convention is in docs/model_families.md; this file pins behaviour."""

from __future__ import annotations

import json
import shutil

import pytest

from ground_r1.boxes import giou, giou_score
from ground_r1.evaluation.refcoco import score_prediction
from ground_r1.models.families import (
    FAMILIES,
    FamilyError,
    family_of_checkpoint,
    family_of_processor,
    get_family,
)
from ground_r1.models.families.coordinates import (
    INPUT_PIXELS,
    RELATIVE_1000,
    CoordinateError,
    box_frame,
    frame_of_record,
)
from ground_r1.prompt import grounding_text


def test_every_model_type_maps_to_its_family_and_an_unknown_one_lists_the_known():
    assert {f.name: f.coordinates for f in FAMILIES.values()} == {
        "qwen2_vl": RELATIVE_1000,
        "qwen2_5_vl": INPUT_PIXELS,
        "qwen3_vl": RELATIVE_1000,
        "qwen3_5": RELATIVE_1000,
    }
    assert get_family("qwen3_vl_moe").name == "qwen3_vl" and get_family("qwen3_5_moe").name == "qwen3_5"
    with pytest.raises(FamilyError, match=r"unknown model family or model_type 'llava'; known: qwen2_vl \(Qwen2-VL"):
        get_family("llava")


def test_the_family_comes_from_config_json_not_from_a_misleading_folder_name(tmp_path, family_model_dirs):
    """A tiny Qwen3-VL in a folder named like a Qwen2.5-VL checkpoint loads as Qwen3-VL: 16-px patches, 0-1000 boxes."""
    from ground_r1.models.loading import load_processor

    folder = tmp_path / "Qwen2.5-VL-7B-Instruct"
    shutil.copytree(family_model_dirs("qwen3_vl"), folder)
    assert family_of_checkpoint(folder).name == "qwen3_vl"
    processor = load_processor(folder, min_pixels=3136, max_pixels=12544)
    assert family_of_processor(processor).name == "qwen3_vl"
    assert processor.image_processor.patch_size == 16 and type(processor).__name__ == "GroundR1Qwen3VLProcessor"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(FamilyError, match=rf"{bad / 'config.json'}: unknown model family or model_type 'llava'"):
        family_of_checkpoint(bad)


def test_geometry_is_read_from_the_processor_and_checked_against_the_model(family_model_dirs):
    from transformers import AutoConfig

    from ground_r1.models.loading import load_processor

    folder = family_model_dirs("qwen3_vl")
    processor = load_processor(folder, min_pixels=3136, max_pixels=12544)
    config = AutoConfig.from_pretrained(folder)
    family = get_family("qwen3_vl")
    geometry = family.geometry(processor, config)
    assert (geometry.patch_size, geometry.merge_size, geometry.factor) == (16, 2, 32)
    processor.image_processor.patch_size = 14  # a preprocessor_config.json of another checkpoint
    with pytest.raises(
        FamilyError,
        match=r"Qwen3-VL: the processor and the model's vision config disagree "
        r"\(patch_size: processor 14, model 16\)",
    ):
        family.geometry(processor, config)


def test_the_prompt_names_the_grid_for_a_relative_family_and_the_pixel_size_for_qwen2_5_vl():
    pixels = grounding_text("Q", 448, 336, INPUT_PIXELS)
    grid = grounding_text("Q", 448, 336, RELATIVE_1000)
    assert "The size of the image: Width:448, Height:336." in pixels and "0-1000" not in pixels
    assert "Width:" not in grid and "on a 0-1000 scale: [0,0,1000,1000] is the whole image" in grid
    assert grounding_text("Q", 448, 336) == pixels  # the release's text is the default
    with pytest.raises(CoordinateError, match=r"coordinates: unknown coordinate convention 'norm'"):
        grounding_text("Q", 448, 336, "norm")


def test_a_0_1000_box_from_text_to_crop_to_giou_to_a_refcoco_hit_hand_derived():
    """One box of a relative family, every mapping derived by hand.

    Original 640 x 480, the model writes [250,100,750,600] on the 0-1000 grid (its input size plays no part):
      to original, truncated (crop / GIoU, SPEC §2): x 250*640/1000 = 160, 750*640/1000 = 480;
                                                  y 100*480/1000 = 48, 600*480/1000 = 288  -> (160, 48, 480, 288)
      crop window: 320 x 240, above the 28-px minimum, aspect 1.33 < 200           -> (160, 48, 480, 288)
      GIoU with the evidence box (160, 48, 400, 288): intersection 240*240 = 57600, union 320*240 = 76800, the
        enclosing box is the union's, so GIoU = IoU = 0.75; the SPEC §3 metric (GIoU + 1) / 2 = 0.875
      RefCOCO (float, unclamped): the same box; IoU 0.75 >= 0.5 -> a hit; the release rule agrees (int division).
    Under input_pixels with a 112 x 84 input the same text is clamped to the input and means another box."""
    frame = box_frame(RELATIVE_1000, (128, 96))
    assert frame.size == (1000, 1000)
    assert frame.to_original((250, 100, 750, 600), (640, 480)) == (160, 48, 480, 288)
    window = frame.crop_window((250, 100, 750, 600), (640, 480))
    assert (window.box, window.is_fallback) == ((160, 48, 480, 288), False)
    assert giou((160, 48, 480, 288), (160, 48, 400, 288)) == pytest.approx(0.75)
    assert giou_score((160, 48, 480, 288), (160, 48, 400, 288)) == pytest.approx(0.875)  # (GIoU + 1) / 2
    prediction = {
        "key": "k",
        "dataset": "refcoco_val",
        "status": "ok",
        "gt_box": [160, 48, 400, 288],
        "turns": ['{"bbox_2d": [250, 100, 750, 600], "label": "cat"}'],
        "trajectory": {"input_size": [128, 96], "original_size": [640, 480], "coordinates": RELATIVE_1000},
    }
    row = score_prediction(prediction)
    assert row["box"] == pytest.approx([160.0, 48.0, 480.0, 288.0]) and row["iou"] == pytest.approx(0.75)
    assert row["hit"] and row["hit_release"] and row["box_release"] == [160, 48, 480, 288]
    # The same record without its convention is read as the input-pixel frame of older runs: a different box.
    legacy = score_prediction({**prediction, "trajectory": {"input_size": [128, 96], "original_size": [640, 480]}})
    assert legacy["box"] == pytest.approx([1250.0, 500.0, 3750.0, 3000.0]) and not legacy["hit"]
    assert frame_of_record({"input_size": [128, 96]}).convention == INPUT_PIXELS


def test_a_checkpoint_records_its_convention_and_family_and_evaluation_checks_them(tmp_path, family_model_dirs):
    from ground_r1.config import GroundR1Config
    from ground_r1.rollout_settings import (
        SETTINGS_NAME,
        RolloutSettingsError,
        checkpoint_coordinates,
        read_settings,
        write_settings,
    )

    config = GroundR1Config(
        output_dir=str(tmp_path / "o"),
        use_cpu=True,
        bf16=False,
        num_generations=4,
        per_device_train_batch_size=4,
        remove_unused_columns=False,
        report_to=[],
    )
    folder = tmp_path / "ckpt"
    shutil.copytree(family_model_dirs("qwen3_vl"), folder)
    write_settings(folder, config, coordinates=RELATIVE_1000, model_family="qwen3_vl")
    assert read_settings(folder) is not None and checkpoint_coordinates(folder) == RELATIVE_1000
    content = json.loads((folder / SETTINGS_NAME).read_text())
    (folder / SETTINGS_NAME).write_text(json.dumps({**content, "model_family": "qwen2_5_vl"}))
    with pytest.raises(
        RolloutSettingsError,
        match=r"model_family: 'qwen2_5_vl', but the checkpoint's config.json "
        r"is 'qwen3_vl'",
    ):
        read_settings(folder)
    # A settings file written before families (no model_family) leaves the family's default in force.
    (folder / SETTINGS_NAME).write_text(json.dumps({k: v for k, v in content.items() if k != "model_family"}))
    assert checkpoint_coordinates(folder) is None
    with pytest.raises(ValueError, match=r"coordinates must be one of input_pixels, relative_1000 or unset"):
        GroundR1Config(
            output_dir=str(tmp_path / "o"),
            use_cpu=True,
            bf16=False,
            num_generations=4,
            per_device_train_batch_size=4,
            remove_unused_columns=False,
            report_to=[],
            coordinates="norm",
        )


def test_refcoco_reads_qwen2_vls_native_box_syntax_only_for_its_family():
    """Qwen2-VL grounds as <|box_start|>(x1,y1),(x2,y2)<|box_end|>; decoded without special tokens the pair syntax is
    left, read on the 0-1000 grid: (250,100),(750,600) on 640 x 480 -> (160, 48, 480, 288) as above."""
    prediction = {
        "key": "k",
        "dataset": "refcoco_val",
        "status": "ok",
        "gt_box": [160, 48, 400, 288],
        "turns": ["the cat(250,100),(750,600)"],
        "trajectory": {
            "input_size": [112, 84],
            "original_size": [640, 480],
            "coordinates": RELATIVE_1000,
            "model_family": "qwen2_vl",
        },
    }
    row = score_prediction(prediction)
    assert row["box"] == pytest.approx([160.0, 48.0, 480.0, 288.0]) and row["hit"]
    other = {**prediction, "trajectory": {**prediction["trajectory"], "model_family": "qwen3_vl"}}
    assert score_prediction(other)["box"] is None and not score_prediction(other)["hit"]  # not Qwen3-VL's syntax
