"""The tiny instruct recipe (ground_r1.demo.instruct_recipe): its examples, config and a smoke build."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from ground_r1.boxes import parse_box
from ground_r1.demo.synthetic import generate_scene, record_rng, zoom_question
from ground_r1.demo import instruct_heads as heads
from ground_r1.demo import instruct_recipe as recipe


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
    assert (
        ex.messages[0]["content"][1]["text"] == f"Locate the {kind} card in this image and output the bbox coordinates."
    )
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
    prompts = {
        recipe.make_example(record_rng(0, "t", i), stage, cfg, task).messages[0]["content"][1]["text"]
        for i in range(40)
        for task in ("grounding", "crop_reading")
    }
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
    assert supervised == (
        ex.messages[1]["content"][0]["text"] + "<|im_end|>" + ex.messages[3]["content"][0]["text"] + "<|im_end|>"
    )
    assert batch["image_grid_thw"].tolist() == [[1, 8, 8], [1, 8, 8]]


def test_a_snapshot_resumes_only_under_a_config_identical_for_the_steps_already_trained():
    def conf(*stages, lr=3e-3):
        return {
            "learning_rate": lr,
            "stages": [
                dict(name=n, steps=k, num_referents=1, card_size_range=[48, 96], **extra) for n, k, extra in stages
            ],
        }

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

    cfg = _cfg(
        batch_size=4,
        aux_steps=2,
        warmup_steps=1,
        eval_every=0,
        eval_size=4,
        log_every=1,
        grounding_fraction=1.0,
        aux_token_weight=1.0,
        aux_lm_box_weight=10.0,
        aux_lm_kind_weight=1.0,
    )  # every row grounds: every head's loss is on at both steps
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


def test_token_targets_label_each_merged_cell_with_the_card_covering_most_of_it():
    from types import SimpleNamespace as NS

    # 448 canvas seen at 112x112: 4x4 LM tokens, each a 28-px view cell = 112 original px.
    cards = [
        NS(kind="cyan", box=(120, 10, 200, 90)),  # inside cell (row 0, col 1)
        NS(kind="orange", box=(200, 230, 260, 300)),  # straddles cols 1|2 of row 2: 24 vs 36 px wide
        NS(kind="purple", box=(300, 390, 310, 440)),
    ]  # 10x50 card: only cell (3, 2)
    scene = NS(width=448, height=448, referents=cards)
    kinds = ("orange", "purple", "cyan", "magenta")
    out = recipe.token_targets(scene, (112, 112), kinds)
    assert out.shape == (16, 5)
    classes = out[:, 0].reshape(4, 4)
    expected = np.zeros((4, 4))
    expected[0, 1] = 1 + kinds.index("cyan")
    expected[2, 1] = expected[2, 2] = 1 + kinds.index("orange")  # both halves hold >= 10% of the card
    expected[3, 2] = 1 + kinds.index("purple")
    assert (classes == expected).all()
    assert out[1, 1:] == pytest.approx([120 / 448, 10 / 448, 200 / 448, 90 / 448])
    assert out[9, 1:] == pytest.approx(out[10, 1:]) and out[0, 1:].tolist() == [0, 0, 0, 0]
    # A sliver under min_cover is background: the orange card with 5% of its width in col 1.
    scene.referents = [NS(kind="orange", box=(221, 230, 281, 300))]  # 3 of 60 px left of x=224
    assert recipe.token_targets(scene, (112, 112), kinds)[:, 0].reshape(4, 4)[2].tolist() == [0, 0, 1, 0]


def test_scene_images_carry_token_targets_and_crops_do_not():
    cfg, stage = _cfg(), recipe.Stage("s", 1, 3, (48, 96))
    ground = recipe.make_example(record_rng(2, "t", 0), stage, cfg, "grounding")
    read = recipe.make_example(record_rng(2, "t", 1), stage, cfg, "crop_reading")
    assert ground.aux_tokens[0].shape == (16, 5) and set(ground.aux_tokens[0][:, 0]) >= {0.0}
    assert (ground.aux_tokens[0][:, 0] > 0).sum() >= 3  # three cards, each covers at least one cell
    assert read.aux_tokens == [None]


@pytest.mark.slow
def test_a_vision_only_stage_trains_the_tower_through_the_heads_and_leaves_the_lm_as_initialised(tmp_path):
    from safetensors.torch import load_file

    from ground_r1.demo.tiny import build_tiny_model

    cfg = _cfg(batch_size=4, aux_steps=0, warmup_steps=1, eval_every=0, eval_size=2, log_every=1, aux_token_weight=1.0)
    cfg.stages = [recipe.Stage("vision", 2, 3, (48, 96), vision_only=True)]
    recipe.train(cfg, tmp_path / "base")
    trained = load_file(str(tmp_path / "base" / "model.safetensors"))
    init = load_file(str(build_tiny_model(tmp_path / "init", seed=cfg.seed) / "model.safetensors"))
    assert trained.keys() == init.keys()
    moved = {k for k in init if not np.array_equal(trained[k].numpy(), init[k].numpy())}
    assert moved and all(".visual." in k or k.startswith("visual.") for k in moved)  # the tower (and merger) only
    assert any("merger" in k for k in moved) and any("patch_embed" in k for k in moved)
    log = [json.loads(x) for x in (tmp_path / "base" / "train_log.jsonl").read_text().splitlines()]
    assert [(e["stage"], e["lm_loss"]) for e in log] == [("vision", 0.0), ("vision", 0.0)]
    assert all(e["aux_loss"] > 0 for e in log)  # aux_steps 0: a vision-only stage trains the heads regardless


def test_the_lm_box_head_reads_the_answers_box_opening_token_not_the_prompts_format_example(tiny_model_dir):
    from ground_r1.models.loading import load_processor

    cfg = _cfg(crop_margin_range=(0.0, 0.0))
    stage = recipe.Stage("s", 1, 3, (48, 96), template_fraction=1.0)  # the Ground-R1 prompt: "<box>[" in it too
    ground = recipe.make_example(record_rng(3, "t", 0), stage, cfg, "grounding")
    chat = recipe.make_chat_example(record_rng(3, "t", 1), stage, cfg)
    processor = load_processor(tiny_model_dir, min_pixels=12544, max_pixels=12544)
    batch = recipe._collate(processor, [ground, chat])
    box_open = processor.tokenizer.convert_tokens_to_ids(">[")
    assert (batch["input_ids"][0] == box_open).sum() == 2  # the prompt's format example and the answer
    pos = heads.box_open_positions(batch["input_ids"], batch["labels"], box_open).tolist()
    assert [row for row, _ in pos] == [0, 1]  # one per row: each row's (first) answer box
    (_, col), _ = pos
    first_digit = processor.tokenizer.decode(batch["input_ids"][0][col + 1 : col + 2])
    assert first_digit == str(ground.target_box[0])[0] and ground.target_frame == (112, 112)


def test_coordinate_slots_name_the_coordinate_each_digit_position_writes(tiny_model_dir):
    from ground_r1.models.loading import load_processor

    tok = load_processor(tiny_model_dir).tokenizer
    ids = tok("<box>[104,5,67,89]</box>", return_tensors="pt")["input_ids"][0]
    col = int((ids == tok.convert_tokens_to_ids(">[")).nonzero()[0])
    digits = {tok.convert_tokens_to_ids(str(d)) for d in range(10)}
    slots = heads.coordinate_slots(ids, col, tok.convert_tokens_to_ids(","), digits)
    # The position *before* each digit predicts it: '>[' -> '1', '1' -> '0', '0' -> '4', ',' -> '5', ...
    written = [(tok.decode(ids[p + 1 : p + 2]), c) for p, c in slots]
    assert written == [("1", 0), ("0", 0), ("4", 0), ("5", 1), ("6", 2), ("7", 2), ("8", 3), ("9", 3)]
    assert slots[0][0] == col


def test_head_diagnostics_measure_each_hop_in_view_pixels(tiny_model_dir):
    import torch

    from ground_r1.models.loading import load_model, load_processor

    cfg = _cfg()
    processor = load_processor(tiny_model_dir, min_pixels=12544, max_pixels=12544)
    model = load_model(tiny_model_dir).eval()
    head = heads.AuxHead(model.config.text_config.hidden_size, len(cfg.kinds), 4, seed=0)
    with torch.no_grad():  # constant heads: every box predicted at 0, every kind predicted as kinds[0]
        for layer in (head.token, head.lm_box, head.lm_kind):
            layer.weight.zero_(), layer.bias.zero_()
        head.lm_kind.bias[0] = 1.0
    out = recipe.head_diagnostics(model, processor, head, cfg, size=6, seed=4)
    examples = [
        recipe.make_example(record_rng(4, "heldout-heads", i), recipe.target_stage(cfg), cfg, "grounding")
        for i in range(6)
    ]
    tokens = np.concatenate([ex.aux_tokens[0] for ex in examples])
    assert out["token_box_mae_px"] == pytest.approx(np.abs(tokens[tokens[:, 0] > 0, 1:]).mean() * 112, rel=1e-5)
    assert out["lm_box_mae_px"] == pytest.approx(np.mean([ex.target_box for ex in examples]), rel=1e-5)
    assert out["lm_kind_accuracy"] == pytest.approx(np.mean([ex.target_kind == 0 for ex in examples]))


def test_held_out_evaluation_renders_prompts_as_training_and_the_rollout_do(tiny_model_dir):
    from ground_r1.models.loading import load_model, load_processor

    processor = load_processor(tiny_model_dir, min_pixels=12544, max_pixels=12544)
    model = load_model(tiny_model_dir).eval()
    seen: list[str] = []
    real = type(processor).__call__

    class Spy(type(processor)):
        def __call__(self, *args, text=None, **kwargs):
            seen.extend(text)
            return real(self, *args, text=text, **kwargs)

    processor.__class__ = Spy
    recipe.evaluate(model, processor, _cfg(), size=1, seed=0)
    # "Picture 1:" as encode_example (training) and the rollout's codec render it (SPEC §2 add_vision_id).
    assert len(seen) == 2 and all("Picture 1: <|vision_start|>" in t for t in seen)


def test_batches_by_length_hold_one_kind_of_row(tmp_path, monkeypatch):
    cfg = _cfg(batch_size=6, warmup_steps=1, eval_every=0, eval_size=1, log_every=100, batch_by_length=True)
    cfg.stages = [recipe.Stage("s", 12, 3, (48, 96), template_fraction=0.5, chat_fraction=0.3)]
    real, batches = recipe._collate, []

    def spy(processor, examples):
        batches.append(
            [(ex.task, "Based on the original image" in ex.messages[0]["content"][1]["text"]) for ex in examples]
        )
        return real(processor, examples)

    monkeypatch.setattr(recipe, "_collate", spy)
    recipe.train(cfg, tmp_path / "base")
    assert len(batches) == 12
    kinds = [({task == "chat" for task, _ in b}, {t for _, t in b}) for b in batches]
    assert all(len(chat) == 1 and len(template) == 1 for chat, template in kinds)  # one kind of row per batch
    assert {(c.pop(), t.pop()) for c, t in kinds} >= {(False, False), (False, True)}  # both prompt kinds occur


def test_a_forced_template_reaches_every_turn():
    cfg, stage = _cfg(), recipe.Stage("s", 1, 3, (48, 96), template_fraction=0.5)
    for template in (True, False):
        chat = recipe.make_chat_example(record_rng(0, "t", 1), stage, cfg, template)
        single = recipe.make_example(record_rng(0, "t", 2), stage, cfg, "grounding", template)
        prompts = [m["content"][1]["text"] for m in chat.messages + single.messages if m["role"] == "user"]
        assert len(prompts) == 3 and all(("Based on the original image" in p) == template for p in prompts)


def test_named_reading_asks_about_the_pictured_card_by_its_kind_and_never_with_the_zoom_question():
    cfg = _cfg(crop_margin_range=(0.0, 0.0))
    stage = recipe.Stage("s", 1, 3, (48, 96), named_reading_fraction=1.0)
    seen = set()
    for i in range(30):
        ex = recipe.make_example(record_rng(3, "t", i), stage, cfg, "crop_reading", template=False)
        _, scene = generate_scene(record_rng(3, "t", i), recipe.scene_config(stage, cfg, 0))
        ref = next(r for r in scene.referents if (r.box[2] - r.box[0], r.box[3] - r.box[1]) == ex.image.size)
        prompt = ex.messages[0]["content"][1]["text"]
        template = next(q for q in recipe.NAMED_READING_QUESTIONS if q.format(kind=ref.kind) == prompt)
        seen.add(template)
        assert prompt != zoom_question(ref.kind) and ex.answer.endswith(f"<answer>{ref.detail}</answer>")
        wrapped = recipe.make_example(record_rng(3, "t", i), stage, cfg, "crop_reading", template=True)
        assert f"Question: {prompt}" in wrapped.messages[0]["content"][1]["text"]  # the instruction wraps it
    assert seen == set(recipe.NAMED_READING_QUESTIONS)
    # Off (the default), the stream is the old one: the plain reading prompt, the same crop.
    plain = recipe.make_example(record_rng(3, "t", 0), recipe.Stage("s", 1, 3, (48, 96)), cfg, "crop_reading")
    assert plain.messages[0]["content"][1]["text"] == recipe.CROP_READING_PROMPT


def test_continue_from_resolves_next_to_its_yaml_round_trips_inline_and_scales_both_phases(tmp_path):
    phase1 = {
        "seed": 3,
        "learning_rate": 1e-3,
        "stages": [{"name": "a", "steps": 100, "num_referents": 1, "card_size_range": [48, 96]}],
    }
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "phase1.yaml").write_text(yaml.safe_dump(phase1))
    phase2 = tmp_path / "phase2.yaml"
    phase2.write_text(
        yaml.safe_dump(
            {
                "continue_from": "sub/phase1.yaml",
                "stages": [
                    {
                        "name": "b",
                        "steps": 40,
                        "num_referents": 3,
                        "card_size_range": [48, 96],
                        "named_reading_fraction": 0.5,
                    }
                ],
            }
        )
    )
    cfg = recipe.RecipeConfig.from_yaml(phase2)
    assert cfg.continue_from.learning_rate == 1e-3 and cfg.continue_from.stages[0].name == "a"
    assert cfg.stages[0].named_reading_fraction == 0.5
    # A build writes the phase it continued from inline: its recipe.yaml alone rebuilds both.
    written = tmp_path / "recipe.yaml"
    written.write_text(yaml.safe_dump(recipe._config_dict(cfg)))
    assert recipe.RecipeConfig.from_yaml(written) == cfg
    small = cfg.scaled(0.1).with_seed(7)
    assert [s.steps for s in small.stages] == [4] and [s.steps for s in small.continue_from.stages] == [10]
    assert small.seed == small.continue_from.seed == 7
    phase2.write_text(yaml.safe_dump({"continue_from": "missing.yaml", "stages": phase1["stages"]}))
    with pytest.raises(ValueError, match=r"phase2.yaml: continue_from: no recipe at .*missing.yaml"):
        recipe.RecipeConfig.from_yaml(phase2)


def test_a_finished_build_of_the_continued_recipe_is_reused_and_any_other_is_rebuilt(tmp_path, monkeypatch):
    parent = _cfg(seed=4)
    built = []
    monkeypatch.setattr(recipe, "train", lambda cfg, out: built.append((cfg, out)))
    done = tmp_path / "continue_from"
    done.mkdir()
    (done / "eval.json").write_text("{}")
    record = recipe._config_dict(parent)
    del record["continue_from"]  # written before the key existed: still the same recipe
    for stage in record["stages"]:
        del stage["named_reading_fraction"]
    (done / "recipe.yaml").write_text(yaml.safe_dump(record))
    assert recipe._build_continued_from(parent, done) == done and built == []
    assert recipe._build_continued_from(_cfg(seed=5), done) == done and built == [(_cfg(seed=5), done)]


def test_an_older_snapshot_without_the_later_keys_still_resumes():
    new = recipe._config_dict(_cfg())
    old = {k: v for k, v in new.items() if k != "continue_from"}
    old["stages"] = [{k: v for k, v in s.items() if k != "named_reading_fraction"} for s in new["stages"]]
    assert recipe._resumable(old, new, 1)
    assert not recipe._resumable(old, {**new, "continue_from": recipe._config_dict(_cfg(seed=9))}, 1)


@pytest.mark.slow
def test_a_two_phase_build_starts_phase_two_from_phase_one_and_keeps_its_record(tmp_path):
    from safetensors.torch import load_file

    phase1 = _cfg(batch_size=2, aux_steps=1, warmup_steps=1, eval_every=0, eval_size=2, log_every=1)
    phase2 = _cfg(
        batch_size=2,
        aux_steps=0,
        warmup_steps=1,
        eval_every=0,
        eval_size=2,
        log_every=1,
        learning_rate=0.0,
        continue_from=phase1,
    )  # lr 0: phase 2 must end on phase 1's weights
    phase2.stages = [recipe.Stage("b", 1, 3, (48, 96), named_reading_fraction=1.0)]
    recipe.train(phase1, tmp_path / "alone")
    recipe.train(phase2, tmp_path / "both")
    out = tmp_path / "both"
    a, b = load_file(str(tmp_path / "alone" / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    strip = lambda path: [  # noqa: E731
        {k: v for k, v in json.loads(x).items() if k != "elapsed_s"} for x in path.read_text().splitlines()
    ]
    assert strip(out / "continued_from" / "train_log.jsonl") == strip(tmp_path / "alone" / "train_log.jsonl")
    assert json.loads((out / "continued_from" / "eval.json").read_text()).keys() >= {"grounding_iou50"}
    assert yaml.safe_load((out / "recipe.yaml").read_text())["continue_from"]["aux_steps"] == 1
    assert not (tmp_path / "both.work").exists()


def test_open_reading_asks_the_generic_question_on_the_whole_scene_and_answers_a_box_or_a_guess_half_and_half():
    cfg = _cfg()
    stage = recipe.Stage("s", 1, 3, (48, 96), open_reading_fraction=1.0)
    answers = {"box": 0, "guess": 0}
    for i in range(60):
        ex = recipe.make_example(record_rng(6, "t", i), stage, cfg, "crop_reading")
        assert ex.task == "open_reading" and ex.image.size == (448, 448)  # the scene, not a crop
        prompt = ex.messages[0]["content"][1]["text"]
        assert prompt.startswith(f"Question: {recipe.TEMPLATE_READING_QUESTION}\n")  # the instruction, no kind named
        rng = record_rng(6, "t", i)
        rng.random()  # the draw that chose the open reading
        _, scene = generate_scene(rng, recipe.scene_config(stage, cfg, 0))
        parsed = parse_box(ex.answer)
        if parsed is not None:  # a look closer: one of the scene's cards, named in the think
            boxes = {tuple(float(int(np.floor(v / 4 + 0.5))) for v in r.box): r.kind for r in scene.referents}
            assert parsed.box in boxes and f"the {boxes[parsed.box]} card" in ex.answer
            answers["box"] += 1
        else:  # a guess among the scene's dots
            assert any(ex.answer == recipe.crop_reading_answer(r.detail) for r in scene.referents)
            answers["guess"] += 1
        assert ex.aux[0] is not None and ex.target_box is None  # scene targets; not a grounding evaluation item
    assert 20 <= answers["box"] <= 40
    # Grounding rows, and a chat's second turn, stay as they are.
    assert recipe.make_example(record_rng(6, "t", 0), stage, cfg, "grounding").task == "grounding"
    chat = recipe.make_chat_example(record_rng(6, "t", 1), stage, cfg)
    assert chat.images[1].size != (448, 448) and chat.answer.startswith("<think> the dot </think><answer>")
