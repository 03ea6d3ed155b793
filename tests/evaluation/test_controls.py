"""Held-out controls (ground_r1.evaluation.controls): random-box GIoU, the oracle first turn, conditions."""

from __future__ import annotations

import pytest
from PIL import Image

from ground_r1.evaluation.controls import (
    OracleFirstTurn,
    evaluate_controls,
    evidence_box_text,
    fixed_box_giou,
    majority_answer,
    random_box_giou,
)
from ground_r1.models.loading import load_model, load_processor
from ground_r1.rewards.registry import build_registry
from ground_r1.rollout.conversation import ConversationCodec
from ground_r1.rollout.generation import GenerationRequest
from ground_r1.rollout.runner import RolloutConfig
from ground_r1.rollout.sampling import EVAL_GREEDY_SAMPLING


def test_random_box_giou_matches_its_expectation_for_a_whole_image_evidence_box():
    # GT = the whole image: the enclosing box is the GT, so GIoU = IoU = (|dx|/W)(|dy|/H). For two uniform
    # draws E|dx| = W/3, independent axes: E[IoU] = 1/9, score = (1/9 + 1) / 2 = 5/9.
    records = [{"bboxs": [[0, 0, 200, 100]]}] * 4000
    assert random_box_giou(records, [(200, 100)] * 4000, seed=3) == pytest.approx(5 / 9, abs=0.01)
    assert random_box_giou(records[:10], [(200, 100)] * 10, seed=3) == random_box_giou(
        records[:10], [(200, 100)] * 10, seed=3
    )


def test_evidence_box_text_is_a_well_formed_grounding_turn_in_the_input_frame():
    # 448 original -> 112 input: every coordinate / 4, rounded half up (SPEC §8 targets).
    text = evidence_box_text({"bboxs": [[10, 20, 102, 446]]}, (112, 112), (448, 448))
    assert text == "[3,5,26,112]"


def test_the_oracle_turn_is_the_models_own_words_with_the_evidence_box():
    from ground_r1.evaluation.controls import with_evidence_box

    box = "[3,5,26,112]"
    assert with_evidence_box("<think> the cyan card </think><box>[40,41,60,62]</box>", box) == (
        "<think> the cyan card </think><box>[3,5,26,112]</box>"
    )
    # Whatever follows the box (a second box, an answer) is dropped: round 1 must end on the box.
    assert with_evidence_box("<think> a </think><box>[1,2]</box><answer>red</answer>", box) == (
        "<think> a </think><box>[3,5,26,112]</box>"
    )
    # No box: the reasoning stays, the box is appended; no reasoning either: a minimal one.
    assert (
        with_evidence_box("<think> look </think><answer>red</answer>", box)
        == "<think> look </think><box>[3,5,26,112]</box>"
    )
    assert with_evidence_box("red", box) == "<think> the evidence </think><box>[3,5,26,112]</box>"


def test_oracle_rewrites_the_models_round_one_box_and_defers_later_rounds(tiny_model_dir):
    from ground_r1.rollout.generation import GeneratedTurn

    codec = ConversationCodec(load_processor(tiny_model_dir, min_pixels=3136, max_pixels=12544))
    deferred = []
    own = ["<think> the cyan card </think><box>[9,9,20,20]</box>", "<think> hm </think><answer>red</answer>"]

    def model_fn(requests, sampling, max_new_tokens):
        deferred.append(len(requests))
        if len(requests) == 2:
            return [GeneratedTurn(ids=codec.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in own]
        return ["model"] * len(requests)

    oracle = OracleFirstTurn(codec, model_fn, ["[1,2,3,4]", "[5,6,7,8]"])
    image = Image.new("RGB", (64, 64))
    enc = codec.encode_prompt("q", image)
    first = oracle([GenerationRequest(enc.ids, enc.images)] * 2, EVAL_GREEDY_SAMPLING, 16)
    assert [codec.tokenizer.decode(t.ids, skip_special_tokens=True) for t in first] == [
        "<think> the cyan card </think><box>[1,2,3,4]</box>",
        "<think> hm </think><box>[5,6,7,8]</box>",
    ]
    assert all(t.ids[-1] == codec.eos_token_id for t in first) and deferred == [2]
    later = oracle([GenerationRequest(enc.ids, enc.images * 2)], EVAL_GREEDY_SAMPLING, 16)  # two images: round 2
    assert later == ["model"] and deferred == [2, 1]


def test_conditions_run_the_training_rollout_and_unknown_ones_are_refused(tiny_model_dir, tmp_path):
    processor = load_processor(tiny_model_dir, min_pixels=3136, max_pixels=12544)
    model = load_model(tiny_model_dir).eval()
    Image.new("RGB", (448, 448), (200, 40, 40)).save(tmp_path / "a.png")
    records = [
        {
            "image": str(tmp_path / "a.png"),
            "problem": "What colour?",
            "solution": "red",
            "dataset": "zoom_synthetic",
            "bboxs": [[40, 80, 200, 240]],
        }
    ] * 2
    images = [Image.open(tmp_path / "a.png").convert("RGB")] * 2
    config = RolloutConfig(max_turns=2, max_completion_length=1024)
    sampling = EVAL_GREEDY_SAMPLING.__class__(do_sample=False, max_new_tokens=8)
    out = evaluate_controls(
        model,
        processor,
        records,
        images,
        build_registry(),
        config,
        conditions=["gt_crop", "random_box"],
        sampling=sampling,
    )
    assert set(out) == {"gt_crop", "random_box"}
    # The oracle's box is the evidence box (448 -> 112 exactly divides these coordinates): GIoU score 1.
    assert out["gt_crop"]["giou_score"] == pytest.approx(1.0)
    assert out["gt_crop"]["no_box_rate"] == 0.0 and out["gt_crop"]["questions"] == 2
    assert 0.0 <= out["random_box"]["giou_score"] <= 1.0
    with pytest.raises(
        ValueError,
        match="unknown control condition.*valid: grounded, no_crop, gt_crop, random_box, "
        "whole_image_box, centre_box, majority_answer",
    ):
        evaluate_controls(model, processor, records, images, build_registry(), config, conditions=["oracle"])


def test_json_safe_turns_nan_into_null_at_any_depth():
    from ground_r1.evaluation.controls import json_safe

    assert json_safe({"a": {"giou_score": float("nan"), "accuracy": 0.5}, "n": 3}) == {
        "a": {"giou_score": None, "accuracy": 0.5},
        "n": 3,
    }


def test_records_without_a_usable_evidence_box_sit_out_the_oracle_crop_only(tiny_model_dir, tmp_path):
    # Issue 15: a record whose evidence box was unusable is kept (bboxs emptied, box_issues named); the held-out
    # controls that end every training run must not index its missing box.
    processor = load_processor(tiny_model_dir, min_pixels=3136, max_pixels=12544)
    model = load_model(tiny_model_dir).eval()
    Image.new("RGB", (448, 448), (200, 40, 40)).save(tmp_path / "a.png")
    good = {
        "image": str(tmp_path / "a.png"),
        "problem": "What colour?",
        "solution": "red",
        "dataset": "zoom_synthetic",
        "bboxs": [[40, 80, 200, 240]],
    }
    records = [good, {**good, "bboxs": [], "box_issues": ["bboxs[0]: empty or inverted box [9, 9, 1, 1]"]}]
    images = [Image.open(tmp_path / "a.png").convert("RGB")] * 2
    sampling = EVAL_GREEDY_SAMPLING.__class__(do_sample=False, max_new_tokens=4)
    out = evaluate_controls(
        model,
        processor,
        records,
        images,
        build_registry(),
        RolloutConfig(max_turns=2),
        conditions=["grounded", "gt_crop"],
        sampling=sampling,
    )
    assert (out["grounded"]["questions"], out["gt_crop"]["questions"]) == (2, 1)
    assert out["gt_crop"]["giou_score"] == pytest.approx(1.0)
    assert evaluate_controls(
        model,
        processor,
        records[1:],
        images[1:],
        build_registry(),
        RolloutConfig(max_turns=2),
        conditions=["gt_crop"],
        sampling=sampling,
    ) == {"gt_crop": {"questions": 0}}


def test_boxes_and_answers_chosen_without_looking():
    # 448 x 448 image, evidence box [0, 0, 112, 112] (area 12,544).
    records = [{"bboxs": [[0, 0, 112, 112]]}, {"bboxs": []}]
    sizes = [(448, 448)] * 2
    # whole image: IoU 12544 / 200704 = 1/16, the enclosing box is the union: GIoU 1/16 -> (1/16 + 1) / 2
    assert fixed_box_giou(records, sizes, "whole") == pytest.approx((1 / 16 + 1) / 2)
    # centred half box [112, 112, 336, 336]: touches the evidence box at one corner, IoU 0; union 12544 + 50176,
    # enclosing [0, 0, 336, 336] = 112896: GIoU -(112896 - 62720) / 112896 -> (1 - 0.4444) / 2
    assert fixed_box_giou(records, sizes, "centre") == pytest.approx((1 - 50176 / 112896) / 2)
    rows = [{"problem": "q", "solution": s, "dataset": "zoom_synthetic"} for s in ("red", "blue", "red", "green")]
    out = majority_answer(rows, build_registry())
    # scores [1, 0, 1, 0]: sample standard deviation sqrt(1/3), standard error sqrt(1/3) / 2
    assert out == {"accuracy": 0.5, "accuracy_se": pytest.approx((1 / 3) ** 0.5 / 2), "answer": "red", "questions": 4}
    tie = majority_answer(rows[1:2] + rows[3:], build_registry())  # blue and green once each: sorted first wins
    assert tie["answer"] == "blue" and tie["accuracy"] == 0.5
