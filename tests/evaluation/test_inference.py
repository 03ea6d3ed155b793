"""Evaluation inference (SPEC §7, §8): prompts, chat encoding, the four protocols, batching, sharding.

Protocol mechanics are shown with a scripted generate function (exact turns, so boxes and crops are known);
the tiny random model shows that batched greedy generation equals one-at-a-time and that two processes
(torchrun, gloo) produce the same merged predictions as one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ground_r1 import prompt
from ground_r1.evaluation import inference
from ground_r1.evaluation.inference import EvalItem, Engine, InferenceConfig
from ground_r1.rollout.generation import GeneratedTurn
from ground_r1.rollout.sampling import EVAL_GREEDY_SAMPLING

TINY_PIXELS = dict(min_pixels=3136, max_pixels=12544)  # a 448x448 image -> 112x112 input (grid 8x8, 16 tokens)


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    from ground_r1.models.loading import load_processor

    return load_processor(tiny_model_dir, **TINY_PIXELS)


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from ground_r1.models.loading import load_model

    return load_model(tiny_model_dir).eval()


def gradient(size=(448, 448)) -> Image.Image:
    """A non-uniform image, so a crop's pixels differ from the full image's."""
    w, h = size
    xs, ys = np.meshgrid(np.arange(w) * 255 // w, np.arange(h) * 255 // h)
    return Image.fromarray(np.stack([xs, ys, np.full_like(xs, 80)], axis=-1).astype(np.uint8))


class Scripted:
    """A GenerateFn answering each request with the next text of its item's script (the item is recognised by
    the question inside the request). Records every call."""

    def __init__(self, codec, scripts: dict[str, list[str]]):
        self.codec, self.scripts, self.calls = codec, scripts, []
        self.served: dict[str, int] = {}

    def __call__(self, requests, sampling, max_new_tokens):
        self.calls.append((len(requests), sampling, max_new_tokens, requests))
        out = []
        for request in requests:
            context = self.codec.tokenizer.decode(request.ids)
            question = next(q for q in self.scripts if q in context)
            n = self.served.get(question, 0)
            self.served[question] = n + 1
            ids = self.codec.tokenizer(self.scripts[question][n], add_special_tokens=False)["input_ids"]
            out.append(GeneratedTurn(ids=ids + [self.codec.eos_token_id]))
        return out


def scripted_engine(processor, protocol: str, scripts: dict[str, list[str]], **config) -> tuple[Engine, Scripted]:
    engine = Engine(None, processor, InferenceConfig(protocol=protocol, **config))
    engine.generator = Scripted(engine.codec, scripts)
    return engine, engine.generator


# ------------------------------------------------------------------------------------------------ prompts


def test_prompt_strings_are_the_spec_wording():
    # SPEC §8 (two turns), SPEC §7 (RefCOCO and the simply_answer baseline), exactly.
    assert prompt.ground_sft_box_text("Q?") == (
        "Q?\n Please only provide the bounding box coordinate of the region that can help you answer the question "
        "better. Following [x1,y1,x2,y2] format."
    )
    assert prompt.ground_sft_answer_text("Q?") == (
        "Q?\n You can see the original image and the cropped image based on the bounding box you provided earlier. "
        "By referring to the original image and the image cropped from your previous bounding box, please try to "
        "give your final answer of the question."
    )
    assert prompt.refcoco_text("left dog") == (
        "Locate left dog in this image and output the bbox coordinates in JSON format."
    )
    assert prompt.baseline_text("Q?", "only_question") == "Q?"
    assert prompt.baseline_text("Q?", "simply_answer") == "Please only give the final answer of the Question:Q?"
    assert prompt.baseline_text("Q {x}?", "basic_grpo") == (
        "Q {x}? Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
    )
    with pytest.raises(ValueError, match="valid: only_question, simply_answer, basic_grpo"):
        prompt.baseline_text("Q?", "simple_answer")


def test_default_decoding_is_explicit_greedy_with_penalty_105():
    config = InferenceConfig(protocol="baseline")
    assert (config.sampling.do_sample, config.sampling.repetition_penalty) == (False, 1.05)
    with pytest.raises(ValueError, match="unknown protocol 'groundr1'"):
        InferenceConfig(protocol="groundr1")


def test_limit_per_dataset_keeps_the_first_n_of_each_in_file_order():
    rows = [("a", 1), ("b", 2), ("a", 3), ("a", 4), ("b", 5)]
    assert inference.limit_per_dataset(rows, 2, lambda r: r[0]) == [("a", 1), ("b", 2), ("a", 3), ("b", 5)]
    assert inference.limit_per_dataset(rows, 0, lambda r: r[0]) == rows


# ------------------------------------------------------------------------------------------ chat encoding


def test_chat_request_numbers_pictures_and_expands_each_image(processor):
    engine = Engine(None, processor, InferenceConfig(protocol="ground_sft"))
    codec = engine.codec
    big, small = codec.encode_images([gradient((448, 448)), gradient((56, 56))])
    messages = [inference._user("first"), inference._assistant("[1,2,3,4]"), inference._user("second")]
    request = inference.chat_request(codec, messages, [big, small])
    text = codec.tokenizer.decode(request.ids)
    # add_vision_id=True: the second image of the conversation is "Picture 2" (SPEC §2).
    assert "Picture 1: <|vision_start|>" in text and "Picture 2: <|vision_start|>" in text
    assert text.endswith("second<|im_end|>\n<|im_start|>assistant\n")
    # 448x448 -> 112x112 input -> grid 8x8 -> 64 patches / (2x2 merge) = 16 tokens; 56x56 -> grid 4x4 -> 4 tokens.
    assert request.ids.count(codec.image_token_id) == 16 + 4
    assert request.images == [big, small]


# ------------------------------------------------------------------------------------------- protocols


def test_baseline_is_one_batched_turn_with_the_prompt_class(processor):
    items = [EvalItem("f:1", "docvqa", "What is A?", "-"), EvalItem("f:2", "gqa", "What is B?", "-")]
    engine, gen = scripted_engine(
        processor, "baseline", {"What is A?": ["<answer>a</answer>"], "What is B?": ["b"]}, prompt_class="simply_answer"
    )
    trajectories = engine.run_batch(items, [gradient(), gradient()])
    assert len(gen.calls) == 1 and gen.calls[0][0] == 2  # both items in one generate call
    n, sampling, max_new, requests = gen.calls[0]
    assert sampling == EVAL_GREEDY_SAMPLING and max_new == EVAL_GREEDY_SAMPLING.max_new_tokens
    assert "Please only give the final answer of the Question:What is A?" in processor.tokenizer.decode(requests[0].ids)
    assert [t.turn_texts for t in trajectories] == [["<answer>a</answer>"], ["b"]]
    record = inference.prediction_record(items[0], trajectories[0], engine.config, engine.prompt_text(items[0]))
    assert (record["answer"], record["prompt_class"], record["trajectory"]["input_size"]) == (
        "a",
        "simply_answer",
        [112, 112],
    )


def test_ground_sft_crops_around_the_turn1_box_and_asks_turn2(processor):
    q = "What colour is the dot?"
    engine, gen = scripted_engine(processor, "ground_sft", {q: ["[10,20,50,60]", "red"]})
    image = gradient()
    (trajectory,) = engine.run_batch([EvalItem("f:1", "vsr", q, "-")], [image])
    first, second = trajectory.turns
    # Input 112x112 of a 448x448 original: x4. (10,20,50,60) -> (40,80,200,240), 160 px a side >= 28: no widening.
    assert first.box == (10.0, 20.0, 50.0, 60.0) and first.box_original == (40, 80, 200, 240)
    assert first.crop_window == (40, 80, 200, 240) and not first.crop_is_fallback
    assert second.text == "red"
    turn2 = gen.calls[1][3][0]
    context = processor.tokenizer.decode(turn2.ids)
    assert prompt.ground_sft_box_text(q) in context and prompt.ground_sft_answer_text(q) in context
    assert "[10,20,50,60]<|im_end|>" in context and "Picture 2:" in context
    # The second image is the crop of the ORIGINAL image (a real zoom-in), encoded by the processor.
    (expected,) = engine.codec.encode_images([image.crop((40, 80, 200, 240))])
    assert torch.equal(turn2.images[1].pixel_values, expected.pixel_values)


def test_ground_sft_without_a_box_feeds_the_full_image(processor):
    engine, _ = scripted_engine(processor, "ground_sft", {"Q?": ["no idea", "blue"]})
    (trajectory,) = engine.run_batch([EvalItem("f:1", "vsr", "Q?", "-")], [gradient()])
    assert trajectory.turns[0].box is None
    assert trajectory.turns[0].crop_window == (0, 0, 448, 448) and trajectory.turns[0].crop_is_fallback


def test_box_parse_reaches_both_protocols_and_both_clis(processor):
    # box_parse (SPEC §2) travels from either evaluation CLI into InferenceConfig, the ground_sft crop and the
    # ground_r1 rollout; it is part of a run's identity (a resume with the other rule is refused).
    from ground_r1.cli import evaluate, evaluate_general
    from ground_r1.evaluation.benchmarks import get_benchmark

    args = evaluate.build_parser().parse_args(
        [
            "--protocol",
            "ground_sft",
            "--output_dir",
            "o",
            "--box_parse",
            "release",
            "--model_path",
            "m",
            "--max_new_tokens",
            "8",
        ]
    )
    assert evaluate.inference_config(args, get_benchmark("viscot")).box_parse == "release"
    args = evaluate_general.build_parser().parse_args(
        [
            "--protocol",
            "ground_r1",
            "--output_dir",
            "o",
            "--box_parse",
            "release",
            "--model_path",
            "m",
            "--max_new_tokens",
            "8",
        ]
    )
    assert evaluate.inference_config(args, get_benchmark("MME")).box_parse == "release"
    assert InferenceConfig(protocol="ground_r1", box_parse="release").identity()["box_parse"] == "release"
    assert InferenceConfig(protocol="ground_r1").identity()["box_parse"] == "tag_first"  # recorded even as default
    assert "box_parse" not in InferenceConfig(protocol="baseline").identity()  # a one-turn run parses no box
    turn1 = "[1,1,5,5] then <box>[10,20,50,60]</box>"
    engine, _ = scripted_engine(processor, "ground_sft", {"Q?": [turn1, "red"]}, box_parse="release")
    (trajectory,) = engine.run_batch([EvalItem("f:1", "vsr", "Q?", "-")], [gradient()])
    # Input 112x112 of 448x448: (1,1,5,5) -> (4,4,20,20), widened to 28 px: (0,0,28,28) after the shift inside.
    assert trajectory.turns[0].box == (1.0, 1.0, 5.0, 5.0) and trajectory.turns[0].crop_window == (0, 0, 28, 28)
    engine, _ = scripted_engine(processor, "ground_r1", {"Q?": [turn1, "<answer>red</answer>"]}, box_parse="release")
    (trajectory,) = engine.run_batch([EvalItem("f:1", "vsr", "Q?", "-")], [gradient()])
    assert trajectory.turns[0].box_source == "release_regex" and trajectory.turns[0].crop_window == (0, 0, 28, 28)


def test_ground_r1_uses_the_rollout_and_generates_only_unfinished_items(processor):
    scripts = {
        "Which A?": ["<think>look</think> <box>[10,20,50,60]</box>", "<think>ok</think> <answer>red</answer>"],
        "Which B?": ["<think>easy</think> <answer>blue</answer>"],
    }
    engine, gen = scripted_engine(processor, "ground_r1", scripts)
    items = [EvalItem("f:1", "gqa", "Which A?", "-"), EvalItem("f:2", "gqa", "Which B?", "-")]
    a, b = engine.run_batch(items, [gradient(), gradient()])
    assert [c[0] for c in gen.calls] == [2, 1]  # round 2 generates only the item still grounding
    assert (a.num_turns, a.finish_reason, b.num_turns) == (2, "answer", 1)
    assert a.turns[0].crop_window == (40, 80, 200, 240)
    context = processor.tokenizer.decode(gen.calls[0][3][0].ids)
    assert prompt.grounding_text("Which A?", 112, 112) in context  # the SPEC §2 template with the input size
    record = inference.prediction_record(items[0], a, engine.config, engine.prompt_text(items[0], a.input_size))
    assert record["turns"] == scripts["Which A?"] and record["answer"] == "red"
    assert record["trajectory"]["turns"][0]["box_original"] == [40, 80, 200, 240]
    assert record["prompt"] == prompt.grounding_text("Which A?", 112, 112)


# ----------------------------------------------------------------------------------- the tiny model


def synthetic_items(n: int) -> list[EvalItem]:
    from ground_r1.demo.synthetic import ensure_default_dataset

    return inference.load_viscot_items(ensure_default_dataset() / "eval.jsonl", max_items_per_dataset=n, **TINY_PIXELS)


@pytest.mark.parametrize("protocol", ["baseline", "ground_sft", "ground_r1"])
def test_batched_greedy_equals_one_at_a_time(tmp_path, model, processor, protocol):
    items = synthetic_items(3)
    sampling = dataclasses.replace(EVAL_GREEDY_SAMPLING, max_new_tokens=4)
    texts = {}
    for batch_size in (1, 3):
        config = InferenceConfig(protocol=protocol, sampling=sampling, batch_size=batch_size, max_turns=2)
        out = tmp_path / f"b{batch_size}"
        inference.run_inference(
            items,
            lambda: Engine(model, processor, config),  # noqa: B023 - called now
            out,
            config,
            progress=False,
        )
        texts[batch_size] = inference.finish(out, items).read_text()
    assert texts[1] == texts[3]  # left padding + attention mask + M-RoPE positions: batch-invariant
    records = [json.loads(line) for line in texts[1].splitlines()]
    assert [r["key"] for r in records] == ["eval.jsonl:1", "eval.jsonl:2", "eval.jsonl:3"]
    assert all(r["sampling"]["repetition_penalty"] == 1.05 and not r["sampling"]["do_sample"] for r in records)


def test_shards_are_stable_and_resume_refuses_other_settings(tmp_path, model, processor):
    items = synthetic_items(3)
    config = InferenceConfig(protocol="baseline", sampling=dataclasses.replace(EVAL_GREEDY_SAMPLING, max_new_tokens=4))
    summary = inference.run_inference(
        items, lambda: Engine(model, processor, config), tmp_path, config, rank=1, world_size=2, progress=False
    )
    # Rank 1 of 2 owns items[1::2] = item 2 only.
    assert (summary.assigned, summary.written) == (1, 1)
    lines = (tmp_path / "predictions.rank1.jsonl").read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["eval.jsonl:2"]
    other = dataclasses.replace(config, prompt_class="basic_grpo")
    with pytest.raises(ValueError, match="prompt_class: 'only_question' -> 'basic_grpo'"):
        inference.run_inference(items, lambda: None, tmp_path, other, progress=False)


@pytest.mark.slow
def test_two_processes_merge_to_the_single_process_predictions(tmp_path):
    """torchrun with 2 CPU processes (gloo): each writes its shard, rank 0 merges; equals a 1-process run."""
    common = [
        "--protocol",
        "baseline",
        "--stages",
        "infer",
        "--max_new_tokens",
        "6",
        "--batch_size",
        "2",
        "--max_items_per_dataset",
        "5",
        "--no_progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run(
        [sys.executable, "-m", "ground_r1.cli.evaluate", *common, "--output_dir", str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    double = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "ground_r1.cli.evaluate",
            *common,
            "--output_dir",
            str(tmp_path / "two"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert double.returncode == 0, double.stderr[-3000:]
    shard_keys = [
        [json.loads(line)["key"] for line in (tmp_path / "two" / f"predictions.rank{r}.jsonl").read_text().splitlines()]
        for r in (0, 1)
    ]
    assert shard_keys == [["eval.jsonl:1", "eval.jsonl:3", "eval.jsonl:5"], ["eval.jsonl:2", "eval.jsonl:4"]]
    assert (tmp_path / "two" / "predictions.jsonl").read_text() == (tmp_path / "one" / "predictions.jsonl").read_text()
