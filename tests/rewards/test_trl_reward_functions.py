"""TRL-signature wrappers of the format and accuracy rewards."""

from __future__ import annotations

import inspect

import pytest

from ground_r1.rewards.registry import DEFAULT_REGISTRY, UnknownDatasetError, UnknownHandlerError, build_registry
from ground_r1.rewards.trl_functions import (
    REWARD_FUNCTIONS,
    accuracy_reward,
    completion_turns,
    format_reward,
    load_reward_function,
    make_accuracy_reward,
)

GROUND = "<think>small text</think><box>[1,2,30,40]</box>"
ANSWER = "<think>it says C</think><answer>C</answer>"

# What TRL 1.16's GRPOTrainer._calculate_rewards passes besides the columns.
TRL_EXTRAS = {"completion_ids": [[1], [2]], "trainer_state": None, "log_extra": None, "log_metric": None}


def test_format_reward_with_turns_and_trl_kwargs():
    turns = [[GROUND, ANSWER], [GROUND, "<think>x</think><box> [1,2,3,4]</box>", ANSWER]]
    rewards = format_reward(prompts=["p", "p"], completions=["c1", "c2"], turns=turns, **TRL_EXTRAS)
    # 2/2 well formed -> 2.0; 2/3 -> 4/3.
    assert rewards == [2.0, pytest.approx(4 / 3)]


def test_format_reward_without_turns_uses_completions():
    conversational = [
        {"role": "assistant", "content": GROUND},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "crop"}]},
        {"role": "assistant", "content": [{"type": "text", "text": ANSWER}]},
    ]
    # A string is one turn (an answer turn -> 2.0); the conversation has 2 assistant turns, both good.
    assert format_reward(prompts=["p", "p"], completions=[ANSWER, conversational]) == [2.0, 2.0]
    assert completion_turns(conversational) == [GROUND, ANSWER]
    with pytest.raises(TypeError, match="string or a list of chat messages"):
        completion_turns(42)


def test_accuracy_reward_final_turn_and_na():
    rewards = accuracy_reward(
        prompts=["p"] * 3,
        completions=["", "", ""],
        turns=[[GROUND, ANSWER], [ANSWER], ["<think>t</think><answer>joy</answer>"]],
        solution=["<answer>C</answer>", "<answer>B</answer>", "joy"],
        dataset=["gqa", "openimages", "emotic"],
        **{**TRL_EXTRAS, "completion_ids": [[1], [2], [3]]},
    )
    # C == C -> 1.0; C != B -> 0.0; emotic has no rule -> None (TRL turns it into NaN).
    assert rewards == [1.0, 0.0, None]


def test_accuracy_reward_unanswered_trajectory_scores_zero():
    # Cut at the turn limit: the last turn is a grounding turn whose reasoning contains "no" ("not").
    cut = "<think>I am not sure yet</think><box>[1,2,30,40]</box>"
    kwargs = dict(prompts=["p"], completions=[""], turns=[[GROUND, cut]], solution=["No"], dataset=["vsr"])
    assert accuracy_reward(**kwargs) == [0.0]
    # Scoring the last turn as it is (evaluation's literal rule) would pay the substring 0.6.
    assert make_accuracy_reward(build_registry(), require_answer=False)(**kwargs) == [0.6]
    # An unknown dataset still raises even when unanswered.
    with pytest.raises(UnknownDatasetError):
        accuracy_reward(**{**kwargs, "dataset": ["vssr"]})


def test_accuracy_reward_needs_columns():
    with pytest.raises(ValueError, match="'solution'"):
        accuracy_reward(prompts=["p"], completions=[ANSWER], dataset=["gqa"])
    with pytest.raises(ValueError, match="has 2 values for 1 completions"):
        accuracy_reward(prompts=["p"], completions=[ANSWER], solution=["C", "D"], dataset=["gqa"])
    with pytest.raises(ValueError, match="turn lists"):
        format_reward(prompts=["p"], completions=[ANSWER], turns=[[ANSWER], [ANSWER]])


def test_reward_function_signature_matches_trl_call():
    # TRL calls reward_func(prompts=..., completions=..., completion_ids=..., **columns): keyword-only use.
    for make in REWARD_FUNCTIONS.values():
        func = make(DEFAULT_REGISTRY)
        params = inspect.signature(func).parameters
        assert list(params)[:2] == ["prompts", "completions"]
        assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def test_load_reward_function():
    assert load_reward_function("format") is format_reward
    # "accuracy" is built with the run's accuracy registry: its letter rule and default handler (no special case
    # in the training CLI).
    default = load_reward_function("accuracy")
    assert default(prompts=["p"], completions=["<answer>B</answer>"], solution=["B"], dataset=["gqa"]) == [1.0]
    with pytest.raises(UnknownDatasetError):
        default(prompts=["p"], completions=["<answer>x</answer>"], solution=["x"], dataset=["mydata"])
    lenient = load_reward_function("accuracy", build_registry(default_handler="exact_match"))
    assert lenient(prompts=["p"], completions=["<answer>x</answer>"], solution=["x"], dataset=["mydata"]) == [1.0]
    assert load_reward_function("ground_r1.rewards.trl_functions:format_reward") is format_reward
    assert load_reward_function("ground_r1.rewards.trl_functions.accuracy_reward") is accuracy_reward
    with pytest.raises(UnknownHandlerError) as info:
        load_reward_function("formt")
    assert "Did you mean 'format'" in str(info.value)
    with pytest.raises(UnknownHandlerError, match="not callable"):
        load_reward_function("ground_r1.rewards.trl_functions:REWARD_FUNCTIONS")
