"""The tiny instruct recipe (ground_r1.models.instruct_recipe): its examples, config and a smoke build."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from ground_r1.boxes import parse_box
from ground_r1.data.synthetic import generate_scene, record_rng, zoom_question
from ground_r1.models import instruct_recipe as recipe


def _cfg(**overrides):
    stages = [recipe.Stage("s", 2, 3, (48, 96))]
    return recipe.RecipeConfig(stages=stages, **overrides)


def test_grounding_example_boxes_one_card_in_the_input_frame_with_per_kind_aux_targets():
    cfg, stage = _cfg(), recipe.Stage("s", 1, 3, (48, 96))
    ex = recipe.make_example(record_rng(5, "t", 0), stage, cfg, "grounding")
    _, scene = generate_scene(record_rng(5, "t", 0), recipe.scene_config(stage, cfg, 0))
    text = ex.messages[1]["content"][0]["text"]
    kind = text.split(" the ")[1].split(" card")[0]
    ref = next(r for r in scene.referents if r.kind == kind)
    # 448 canvas -> 112 view: every coordinate / 4, rounded half up.
    expected = [int(np.floor(v / 4 + 0.5)) for v in ref.box]
    assert parse_box(text).box == tuple(float(v) for v in expected) and list(ex.target_box) == expected
    assert ex.messages[0]["content"][1]["text"] == f"Locate the {kind} card in this image and output the bbox coordinates."
    # aux: one row per kind of the config; present rows hold the quadrant and the normalised box.
    aux = ex.aux[0]  # the one image's scene targets
    row = aux[cfg.kinds.index(kind)]
    cx, cy = (ref.box[0] + ref.box[2]) / 2 / 448, (ref.box[1] + ref.box[3]) / 2 / 448
    assert row[0] == 1.0 and row[1] == int(cx >= 0.5) + 2 * int(cy >= 0.5)
    assert row[2:] == pytest.approx([v / 448 for v in ref.box])
    assert aux[:, 0].sum() == 3 and ex.aux_detail == [None]  # three cards, three kinds present


def test_crop_reading_example_is_a_card_crop_answered_with_its_dot_colour():
    cfg, stage = _cfg(crop_margin_range=(0.0, 0.0)), recipe.Stage("s", 1, 3, (48, 96))
    ex = recipe.make_example(record_rng(1, "t", 7), stage, cfg, "crop_reading")
    _, scene = generate_scene(record_rng(1, "t", 7), recipe.scene_config(stage, cfg, 0))
    sizes = {(r.box[2] - r.box[0], r.box[3] - r.box[1]): r.detail for r in scene.referents}
    assert ex.image.size in sizes  # no margin: exactly one card
    assert ex.messages[1]["content"][0]["text"] == f"<think> the dot </think><answer>{sizes[ex.image.size]}</answer>"
    assert ex.aux == [None] and ex.aux_detail == [recipe.DETAIL_NAMES.index(sizes[ex.image.size])]


def test_the_recipe_never_shows_the_zoom_question_or_the_grounding_prompt():
    cfg, stage = _cfg(), recipe.Stage("s", 1, 3, (48, 96))
    prompts = {recipe.make_example(record_rng(0, "t", i), stage, cfg, task).messages[0]["content"][1]["text"]
               for i in range(40) for task in ("grounding", "crop_reading")}
    assert not any(p == zoom_question(k) for p in prompts for k in cfg.kinds)
    assert not any("Based on the original image" in p for p in prompts)


def test_chat_example_is_two_independent_tasks_with_per_image_targets(tiny_model_dir):
    from ground_r1.models.loading import load_processor

    cfg, stage = _cfg(), recipe.Stage("s", 1, 3, (48, 96))
    ex = recipe.make_chat_example(record_rng(2, "t", 0), stage, cfg)
    assert [m["role"] for m in ex.messages] == ["user", "assistant", "user", "assistant"]
    assert ex.messages[1]["content"][0]["text"].endswith("</box>")
    assert ex.messages[3]["content"][0]["text"].startswith("<think> the dot </think><answer>")
    assert ex.aux[0] is not None and ex.aux[1] is None and ex.aux_detail[0] is None and ex.aux_detail[1] is not None
    # Both assistant turns are supervised, with their <|im_end|>; two images reach the batch (Picture 1, 2).
    processor = load_processor(tiny_model_dir, min_pixels=12544, max_pixels=12544)
    batch = recipe._collate(processor, [ex])
    supervised = processor.tokenizer.decode(batch["input_ids"][0][batch["labels"][0] != -100])
    assert supervised == (ex.messages[1]["content"][0]["text"] + "<|im_end|>" + ex.messages[3]["content"][0]["text"]
                          + "<|im_end|>")
    assert batch["image_grid_thw"].tolist() == [[1, 8, 8], [1, 8, 8]]


def test_a_snapshot_resumes_only_under_a_config_identical_for_the_steps_already_trained():
    def conf(*stages, lr=3e-3):
        return {"learning_rate": lr, "stages": [dict(name=n, steps=k, num_referents=1, card_size_range=[48, 96],
                                                      **extra) for n, k, extra in stages]}

    old = conf(("a", 100, {}), ("b", 100, {}))
    assert recipe._resumable(old, conf(("a", 100, {}), ("b", 100, {"template_fraction": 0.5})), 100)  # b not begun
    assert not recipe._resumable(old, conf(("a", 100, {}), ("b", 100, {"template_fraction": 0.5})), 150)
    assert not recipe._resumable(old, conf(("a", 100, {}), ("b", 100, {}), lr=1e-3), 50)  # the schedule changed
    assert not recipe._resumable(old, conf(("a", 100, {}), ("b", 150, {})), 50)  # total steps: the schedule too
    # The stage holding the snapshot may be cut to what it trained, and a new stage take the rest.
    assert recipe._resumable(old, conf(("a", 100, {}), ("b", 30, {}), ("c", 70, {"chat_fraction": 0.4})), 130)
    assert not recipe._resumable(old, conf(("a", 100, {}), ("b", 20, {}), ("c", 80, {})), 130)


def test_config_rejects_unknown_keys_and_an_empty_curriculum(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"learning_rte": 1e-3, "stages": []}))
    with pytest.raises(ValueError, match=r"unknown keys \['learning_rte'\]"):
        recipe.RecipeConfig.from_yaml(bad)
    bad.write_text(yaml.safe_dump({"stages": []}))
    with pytest.raises(ValueError, match="'stages' is empty"):
        recipe.RecipeConfig.from_yaml(bad)
    shipped = recipe.RecipeConfig.from_yaml(recipe.paths.repo_root() / "configs" / "sft" / "tiny_instruct.yaml")
    assert shipped.stages[-1].num_referents == 3 and shipped.stages[-1].card_size_range == (48, 96)
    assert shipped.stages[-1].chat_fraction > 0 and shipped.stages[-1].template_fraction > 0


@pytest.mark.slow
def test_smoke_build_saves_a_plain_qwen_checkpoint_with_recipe_log_and_eval(tmp_path):
    from safetensors import safe_open
    from transformers import Qwen2_5_VLForConditionalGeneration

    cfg = _cfg(batch_size=4, aux_steps=2, warmup_steps=1, eval_every=0, eval_size=4, log_every=1,
               grounding_fraction=1.0)  # every row grounds: the aux loss is on at both steps
    final = recipe.train(cfg, tmp_path / "base")
    out = tmp_path / "base"
    assert final["passed_gate"] is False and final["size"] == 4  # two steps cannot ground
    assert json.loads((out / "eval.json").read_text())["grounding_iou50"] == final["grounding_iou50"]
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2] and all(e["aux_loss"] > 0 for e in log)
    assert yaml.safe_load((out / "recipe.yaml").read_text())["stages"][0]["card_size_range"] == [48, 96]
    with safe_open(str(out / "model.safetensors"), "pt") as fh:
        assert not any("aux" in k for k in fh.keys())  # the head is discarded
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(out)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert not list(tmp_path.glob("*.partial-*")) and not (tmp_path / "base.work").exists()  # staging is gone


@pytest.mark.slow
def test_a_killed_build_resumes_from_its_snapshot_and_ends_identical(tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file

    cfg = _cfg(batch_size=2, aux_steps=4, warmup_steps=1, eval_every=2, eval_size=2, log_every=1)
    cfg.stages = [recipe.Stage("s", 4, 3, (48, 96))]  # the target distribution: no extra per-stage evaluation
    torch.set_num_threads(1)
    recipe.train(cfg, tmp_path / "unbroken")

    real = recipe._collate  # called once per training step (evaluation does not use it)
    calls = {"n": 0}

    def dies_in_step_three(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed during step 3")
        return real(*args, **kwargs)

    monkeypatch.setattr(recipe, "_collate", dies_in_step_three)
    with pytest.raises(KeyboardInterrupt):
        recipe.train(cfg, tmp_path / "broken")
    work = tmp_path / "broken.work"
    assert (work / "snapshot.pt").is_file() and (work / "latest" / "config.json").is_file()
    assert not (tmp_path / "broken").exists()  # nothing that looks complete
    monkeypatch.setattr(recipe, "_collate", real)
    recipe.train(cfg, tmp_path / "broken")  # resumes at step 2
    assert not work.exists()
    a = load_file(str(tmp_path / "unbroken" / "model.safetensors"))
    b = load_file(str(tmp_path / "broken" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log_a = (tmp_path / "unbroken" / "train_log.jsonl").read_text().splitlines()
    log_b = (tmp_path / "broken" / "train_log.jsonl").read_text().splitlines()
    strip = lambda lines: [{k: v for k, v in json.loads(x).items() if k != "elapsed_s"} for x in lines]  # noqa: E731
    assert strip(log_a) == strip(log_b)
