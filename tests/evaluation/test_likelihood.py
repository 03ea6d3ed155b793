"""V*'s official likelihood scoring (issue 18): the mean option-token loss and the lowest-loss choice, on logits
whose losses are computed by hand, then once on the tiny model."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from PIL import Image

from ground_r1.evaluation.likelihood import choose_option, mean_token_loss, option_losses


def test_mean_token_loss_on_hand_computed_logits() -> None:
    # vocab 3; ids = [prompt 2, option 0, option 1]; position 0 predicts ids[1], position 1 predicts ids[2].
    # softmax([ln 2, 0, 0]) = [1/2, 1/4, 1/4] -> CE(token 0) = ln 2; softmax([0, 0, 0]) -> CE(token 1) = ln 3
    logits = torch.tensor([[math.log(2), 0.0, 0.0], [0.0, 0.0, 0.0], [9.0, 9.0, 9.0]])
    assert mean_token_loss(logits, [2, 0, 1], 1) == pytest.approx((math.log(2) + math.log(3)) / 2)
    assert mean_token_loss(logits, [2, 0, 1], 2) == pytest.approx(math.log(3))  # only the last token
    with pytest.raises(ValueError, match="no option token"):
        mean_token_loss(logits, [2, 0, 1], 3)


def test_lowest_mean_loss_wins_and_ties_go_to_the_earliest() -> None:
    # option 0: losses ln 2 and ln 3 (mean 0.896); option 1: one token at ln 2 (0.693) -> option 1 wins,
    # although its summed loss equals option 0's first token: the mean, not the sum, decides
    losses = [(math.log(2) + math.log(3)) / 2, math.log(2)]
    assert choose_option(losses) == 1
    assert choose_option([0.5, 0.5, 0.7]) == 0
    with pytest.raises(ValueError, match="non-finite"):
        choose_option([0.1, float("nan")])


def test_option_losses_on_the_tiny_model(tiny) -> None:
    from ground_r1.rollout.conversation import ConversationCodec

    model, processor = tiny
    codec = ConversationCodec(processor, add_vision_id=True)
    image = Image.new("RGB", (112, 84), (200, 30, 30))
    losses = option_losses(model, codec, image, "What color is the square?", ["It is red.", "It is blue.", "red"])
    assert len(losses) == 3 and all(math.isfinite(x) and x > 0 for x in losses)
    assert losses[0] != losses[1]
    again = option_losses(model, codec, image, "What color is the square?", ["It is blue."])
    assert again[0] == pytest.approx(losses[1], rel=1e-5)  # each option scored on its own


def _vstar(tmp_path):
    import json

    from ground_r1.evaluation.benchmarks import get_benchmark

    record = {
        "target_object": ["flag"],
        "bbox": [[4, 4, 20, 20]],
        "question": "Is the flag red or white?",
        "options": ["The flag is white.", "The flag is red.", "The flag is blue."],
    }
    for name in ("sa_1", "sa_2"):
        path = tmp_path / "direct_attributes" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
        Image.new("RGB", (64, 48), (200, 200, 200)).save(path.with_suffix(".jpg"))
    spec = get_benchmark("vstar")
    return spec, spec.load(tmp_path, tmp_path)


def test_likelihood_scores_the_file_order_whatever_the_shown_order(tmp_path) -> None:
    spec, items = _vstar(tmp_path)
    question, options, gold = spec.likelihood_options(items[0])
    assert question == "Is the flag red or white?" and gold == 0
    assert options == ["The flag is white.", "The flag is red.", "The flag is blue."]  # un-shuffled
    right = spec.score_prediction(items[0], {"protocol": "likelihood", "chosen": 0, "option_losses": [1.0, 2.0, 3.0]})
    wrong = spec.score_prediction(items[0], {"protocol": "likelihood", "chosen": 2, "option_losses": [3.0, 2.0, 1.0]})
    assert right["correct"] and not wrong["correct"] and wrong["parsed"] == "The flag is blue."
    from ground_r1.evaluation.general import ScoredBenchmark

    rows = spec.summary_rows(spec.aggregate([right, wrong]), ScoredBenchmark([right, wrong]))
    assert rows[0].score == 50.0 and rows[0].rule.startswith("V* official likelihood")


def test_run_likelihood_writes_resumable_records(tmp_path, tiny) -> None:
    from ground_r1.evaluation.identity import InferenceConfig
    from ground_r1.evaluation.likelihood import run_likelihood
    from ground_r1.evaluation.predictions import load_predictions, merge_predictions

    spec, items = _vstar(tmp_path / "data")
    model, processor = tiny
    out = tmp_path / "out"
    config = InferenceConfig(
        protocol="likelihood",
        benchmark=spec.name,
        benchmark_version=spec.version,
        option_seed=spec.option_seed,
        model="tiny",
    )
    assert run_likelihood(spec, items[:1], model, processor, out, config) == 1
    assert run_likelihood(spec, items, model, processor, out, config) == 1  # only the item left
    merge_predictions(out, [it.key for it in items])
    records = load_predictions(out)
    assert [r["key"] for r in records] == [it.key for it in items]
    assert all(len(r["option_losses"]) == 3 and r["chosen"] == choose_option(r["option_losses"]) for r in records)
    with pytest.raises(ValueError, match=r"other settings \(model: 'tiny' -> 'other'\)"):
        run_likelihood(spec, items, model, processor, out, dataclasses.replace(config, model="other"))
    with pytest.raises(ValueError, match=r"other settings \(option_seed: 0 -> 1\)"):
        run_likelihood(spec, items, model, processor, out, dataclasses.replace(config, option_seed=1))


def test_likelihood_protocol_refuses_a_benchmark_without_it() -> None:
    from ground_r1.cli import evaluate, evaluate_general
    from ground_r1.evaluation.benchmarks import get_benchmark

    args = evaluate_general.build_parser().parse_args(["--protocol", "likelihood", "--output_dir", "x"])
    with pytest.raises(ValueError, match="MME has no likelihood scoring: use baseline or ground_r1 or ground_sft"):
        evaluate.check_configuration(args, [get_benchmark("vstar"), get_benchmark("MME")])


def test_final_context_drops_the_last_turn_and_its_end_token() -> None:
    from ground_r1.evaluation.likelihood import final_context
    from ground_r1.rollout.trajectory import Trajectory, Turn

    eos = 99
    # prompt [1, 2]; turn 1 [5, 6, eos]; injected crop turn [7, 8]; turn 2 [9, eos]
    t = Trajectory(
        0,
        0,
        [1, 2],
        (28, 28),
        (56, 56),
        completion_ids=[5, 6, eos, 7, 8, 9, eos],
        turns=[Turn("a", [5, 6, eos]), Turn("b", [9, eos])],
    )
    assert final_context(t, eos) == [1, 2, 5, 6, eos, 7, 8]
    # a last turn cut by the token limit: its eos was injected after it, and goes too
    cut = Trajectory(
        0,
        0,
        [1, 2],
        (28, 28),
        (56, 56),
        completion_ids=[5, 6, eos, 7, 8, 9, 10, eos],
        turns=[Turn("a", [5, 6, eos]), Turn("b", [9, 10], hit_token_limit=True)],
    )
    assert final_context(cut, eos) == [1, 2, 5, 6, eos, 7, 8]


def test_likelihood_after_the_crop_loop_keeps_the_trajectory(tmp_path, tiny) -> None:
    from ground_r1.demo.scripted import ScriptedGenerator
    from ground_r1.evaluation.inference import Engine, InferenceConfig
    from ground_r1.evaluation.likelihood import run_likelihood
    from ground_r1.evaluation.predictions import load_predictions, merge_predictions

    spec, items = _vstar(tmp_path / "data")
    model, processor = tiny
    engine = Engine(model, processor, InferenceConfig(protocol="ground_r1", max_turns=2))
    engine.generator = ScriptedGenerator(engine.codec, lambda call: "<think>x</think> <box>[4,4,20,20]</box>")
    out = tmp_path / "out"
    config = InferenceConfig(protocol="ground_r1_likelihood", max_turns=2, scripted_policy="test")
    assert run_likelihood(spec, items[:1], model, processor, out, config, rollout=engine) == 1
    merge_predictions(out, [items[0].key])
    (record,) = load_predictions(out)
    assert record["after"] == "ground_r1" and record["trajectory"]["num_turns"] == 2
    assert len(record["option_losses"]) == 3 and all(math.isfinite(x) for x in record["option_losses"])
    scored = spec.score_prediction(items[0], record)
    assert [r["box"] is not None for r in scored["box_quality"]] == [True, True]
