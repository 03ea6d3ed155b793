"""Ground SFT per family (SPEC §8, issue 20): targets written in the family's box convention, a few training steps
on each tiny family model, the tower frozen and the projector (Qwen3-VL: with its deepstack mergers) trained."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ground_r1.models.families import DEFAULT_FAMILY, FAMILIES, get_family
from ground_r1.sft.data import prepare_sft_data
from ground_r1.sft.train import GroundR1SFTConfig, SFTScriptArguments, build_trainer

from sft.sft_helpers import TINY_MAX_PIXELS, TINY_MIN_PIXELS, record, write_gradient_image, write_records

OTHER_FAMILIES = tuple(f for f in FAMILIES if f != DEFAULT_FAMILY)  # the default runs through the whole suite


@pytest.fixture(scope="module")
def relative_sft_dir(tmp_path_factory):
    """One record of the 1120 x 560 page with its evidence box at (500, 200, 700, 260), prepared on the 0-1000 grid."""
    root = tmp_path_factory.mktemp("sft_relative")
    write_gradient_image(root / "images" / "page.png")
    records = write_records(root / "records.jsonl", [record(bboxs=[[500, 200, 700, 260]], solution="B")] * 2)
    prepare_sft_data(
        records,
        root / "sft",
        image_root=root,
        min_pixels=TINY_MIN_PIXELS,
        max_pixels=TINY_MAX_PIXELS,
        progress=False,
        coordinates="relative_1000",
    )
    return root / "sft"


def test_ground_sft_targets_are_written_on_the_0_1000_grid(relative_sft_dir):
    """200 x 60 box, no widening: x 500*1000/1120 = 446.4 -> 446, 700*1000/1120 = 625; y 200*1000/560 = 357.1 ->
    357, 260*1000/560 = 464.3 -> 464 (rounded half up, as the input-pixel targets)."""
    example = json.loads((relative_sft_dir / "ground.jsonl").read_text().splitlines()[0])
    assert example["messages"][1]["content"][0]["text"] == "[446,357,625,464]"
    assert json.loads((relative_sft_dir / "sft_data.json").read_text())["coordinates"] == "relative_1000"
    with pytest.raises(ValueError, match=r"prepare_sft_data\(coordinates=...\): unknown coordinate convention 'px'"):
        prepare_sft_data(relative_sft_dir / "missing.jsonl", relative_sft_dir / "x", coordinates="px")


@pytest.mark.parametrize("family", OTHER_FAMILIES)
def test_ground_sft_trains_each_family_with_the_tower_frozen_and_the_projector_learning(
    family, family_model_dirs, relative_sft_dir, tmp_path
):
    config = GroundR1SFTConfig(
        output_dir=str(tmp_path / "out"),
        bf16=False,
        min_pixels=TINY_MIN_PIXELS,
        max_pixels=TINY_MAX_PIXELS,
        per_device_train_batch_size=2,
        max_steps=2,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        seed=0,
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    args = SFTScriptArguments(
        sft_kind="ground", model_name_or_path=str(family_model_dirs(family)), sft_data_dir=str(relative_sft_dir)
    )
    trainer = build_trainer(args, config)
    fam = get_family(family)
    visual = {
        n[len("model.visual.") :]: p for n, p in trainer.model.named_parameters() if n.startswith("model.visual.")
    }
    projector = {n for n in visual if fam.is_projector(n)}
    assert projector and all(visual[n].requires_grad for n in projector)
    assert not any(p.requires_grad for n, p in visual.items() if n not in projector)
    if family == "qwen3_vl":
        assert any(n.startswith("deepstack_merger_list.") for n in projector)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(math.isfinite(v) and v > 0 for v in losses)
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert {f"model.visual.{n}" for n in projector} & changed and "lm_head.weight" in changed
    assert not changed & {f"model.visual.{n}" for n in visual if n not in projector}
