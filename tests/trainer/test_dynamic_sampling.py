"""Dynamic sampling (trainer/dynamic_sampling.py): flat groups never reach the loss, the batch is refilled from
a stream of its own, the shortfall is trained on and logged, and a resumed run draws the same refills."""

from __future__ import annotations

import json
import re

import pytest
import torch

from ground_r1.demo.scripted import ScriptedCall, ScriptedGenerator
from ground_r1.trainer.dynamic_sampling import (
    RefillStream,
    flat_groups,
    keep_all,
    load_state,
    refill_questions,
    save_state,
    select_groups,
)
from conftest import group_inputs, make_records


# -- the pieces ----------------------------------------------------------------------------------------------------


def test_refill_stream_is_a_seeded_pass_order_split_between_ranks_and_resumable(tmp_path):
    a = RefillStream(size=5, seed=3)
    first_pass = [a.at(i) for i in range(5)]
    assert sorted(first_pass) == [0, 1, 2, 3, 4]  # a permutation of the training set
    assert [a.at(i) for i in range(5, 10)] != first_pass  # each pass has its own order
    assert RefillStream(size=5, seed=4).at(0) != a.at(0) or RefillStream(5, 4).at(1) != a.at(1)
    # Two ranks taking 2 questions each: rank r gets the r-th block, both advance the cursor by 4.
    r0, r1 = RefillStream(5, 3), RefillStream(5, 3)
    assert r0.take(2, rank=0, world=2) == first_pass[0:2] and r1.take(2, rank=1, world=2) == first_pass[2:4]
    assert r0.cursor == r1.cursor == 4
    assert r0.take(2, 0, 2) == [first_pass[4], r0.at(5)]
    save_state(r0, tmp_path)
    resumed = RefillStream(5, 3)
    assert load_state(resumed, tmp_path) and resumed.cursor == 8
    assert not load_state(RefillStream(5, 3), tmp_path / "elsewhere")  # no state: a warning, cursor 0
    with pytest.raises(ValueError, match="non-empty training set"):
        RefillStream(size=0, seed=0)


def test_flat_groups_are_the_zero_std_groups_of_the_advantages():
    rewards = torch.tensor(
        [
            1.0,
            1.0,
            1.0,
            1.0,
            0.0,
            1.0,
            0.0,
            0.0,
            float("nan"),
            2.0,
            float("nan"),
            float("nan"),
            2.0,
            2.0,
            float("nan"),
            2.0,
        ]
    )
    assert flat_groups(rewards, 4) == [True, False, True, True]


def test_selection_keeps_the_first_informative_groups_per_rank_in_rolled_order():
    # rollout 0: rank 0 has groups [flat, ok], rank 1 [ok, ok]; rollout 1 (refill): rank 0 [ok, ok], rank 1 [ok, flat]
    flat = [[[True, False], [False, False]], [[False, False], [False, True]]]
    sel = select_groups(flat, target=2)
    assert sel.kept == [[(0, 1), (1, 0)], [(0, 0), (0, 1)]]
    assert (sel.groups_rolled, sel.groups_dropped, sel.groups_kept, sel.groups_surplus, sel.shortfall) == (
        8,
        2,
        4,
        2,
        0,
    )
    short = select_groups([[[True, True], [True, False]]], target=2)
    assert short.kept == [[], [(0, 1)]] and short.shortfall == 3
    everything = keep_all(3, world=2)
    assert everything.kept == [[(0, 0), (0, 1), (0, 2)]] * 2 and everything.groups_dropped == 0


@pytest.mark.parametrize(
    "kept_per_rank,kept,rolled,expected",
    [
        ([4, 4], 8, 8, 0),  # nobody short
        ([2, 4], 6, 8, 3),  # short 2, 6 of 8 kept so far -> ceil(2 * 8 / 6) = 3
        ([1, 4], 5, 8, 4),  # ceil(3 * 8 / 5) = 5, capped at the 4 questions of a generation batch
        ([0, 0], 0, 8, 4),  # nothing kept yet: a whole generation batch
        ([3, 4], 7, 7, 1),  # every group kept so far: just the shortfall
        ([3, 4], 7, 8, 2),  # ceil(1 * 8 / 7)
    ],
)
def test_refill_size_follows_the_keep_rate_and_is_capped(kept_per_rank, kept, rolled, expected):
    assert refill_questions(kept_per_rank, target=4, kept=kept, rolled=rolled) == expected


# -- in the trainer ---------------------------------------------------------------------------------------------------

QUESTION = re.compile(r"dot(?: really)* (\d+)\?")


def question_policy(tokenizer, informative):
    """Question i (make_records: "... dot{ really x i} i?") gets a group with reward spread when informative(i)
    (the two first-round branches answer well-formed / malformed), else every trajectory answers alike."""

    def policy(call: ScriptedCall) -> str:
        i = int(QUESTION.findall(tokenizer.decode(call.context_ids))[0])
        if call.num_images == 1:
            return f"<think> look at {i} </think> <box>[10,10,60,60]</box>"
        if informative(i) and call.row % 2 == 1:
            return "<think> it is red <answer> red </answer>"
        return "<think> it is red </think> <answer> red </answer>"

    return policy


def scripted(trainer, informative):
    policy = question_policy(trainer.processing_class.tokenizer, informative)
    trainer._make_generator = lambda model: ScriptedGenerator(trainer.codec, policy)


def question_of(trainer, inputs, row) -> int:
    tok = trainer.processing_class.tokenizer
    return int(QUESTION.findall(tok.decode(inputs["prompt_ids"][row]))[0])


def test_flat_groups_never_reach_the_loss_and_the_batch_is_refilled(make_trainer, tmp_path):
    # 8 questions; only question 0 is flat. The step's batch is questions 0 and 1 (2 x N=4 completions).
    trainer = make_trainer(n_questions=8, per_device_train_batch_size=8, dynamic_sampling=True)
    scripted(trainer, informative=lambda i: i != 0)
    records = make_records(tmp_path, 8)
    trainer.model.train()
    out = trainer._generate_and_score_completions(group_inputs(trainer, records[:2]))

    # The refill: the stream's first questions, as many as ceil(short 1 x rolled 2 / kept 1) = 2.
    stream = RefillStream(size=8, seed=trainer.args.seed)
    refill = stream.take(2, rank=0, world=1)
    informative_refill = [i for i in refill if i != 0]
    expected = [1, informative_refill[0]]  # the main batch's informative group first, then the refill's
    rows = [question_of(trainer, out, r) for r in range(out["prompt_ids"].size(0))]
    assert rows == [q for q in expected for _ in range(4)]  # question 0 is nowhere in the loss inputs
    loss_mask = out["completion_mask"] * out["tool_mask"]
    assert (loss_mask.sum(dim=1) > 0).all() and (out["advantages"] != 0).all()
    assert out["num_items_in_batch"].item() == loss_mask.sum().item()
    sel = trainer.last_selection
    assert (sel.groups_rolled, sel.groups_dropped, sel.groups_kept, sel.shortfall) == (4, 1 + (0 in refill), 2, 0)
    assert trainer.refill_stream.cursor == 2
    metrics = trainer._metrics["train"]
    assert metrics["dynamic_sampling/refills"] == [1.0] and metrics["dynamic_sampling/groups_kept"] == [2.0]
    assert metrics["dynamic_sampling/refill_questions"] == [2.0] and metrics["dynamic_sampling/shortfall"] == [0.0]
    # frac_reward_zero_std describes everything rolled: the dropped groups over the groups rolled.
    assert metrics["frac_reward_zero_std"] == [sel.groups_dropped / 4]


def test_without_an_informative_group_the_step_trains_on_nothing_and_logs_the_shortfall(make_trainer, tmp_path):
    trainer = make_trainer(
        n_questions=4, per_device_train_batch_size=8, dynamic_sampling=True, dynamic_sampling_max_refills=2
    )
    scripted(trainer, informative=lambda i: False)
    trainer.model.train()
    out = trainer._generate_and_score_completions(group_inputs(trainer, make_records(tmp_path, 4)[:2]))
    # Two refills of a whole generation batch each (nothing kept: the keep rate says nothing), then one
    # placeholder row: a rolled trajectory whose loss mask is zero.
    assert trainer.refill_stream.cursor == 4 and trainer.last_placeholder_rows == 1
    assert out["prompt_ids"].size(0) == 1 and int((out["completion_mask"] * out["tool_mask"]).sum()) == 0
    assert out["advantages"].tolist() == [0.0] and out["num_items_in_batch"].item() == 0
    metrics = trainer._metrics["train"]
    assert metrics["dynamic_sampling/shortfall"] == [2.0] and metrics["dynamic_sampling/refills"] == [2.0]
    assert metrics["dynamic_sampling/groups_dropped"] == [6.0] and metrics["dynamic_sampling/placeholder_rows"] == [1.0]
    assert metrics["frac_reward_zero_std"] == [1.0]


def test_without_dynamic_sampling_flat_groups_stay_in_the_batch(make_trainer, tmp_path):
    trainer = make_trainer(n_questions=2, per_device_train_batch_size=8)
    scripted(trainer, informative=lambda i: i != 0)
    trainer.model.train()
    out = trainer._generate_and_score_completions(group_inputs(trainer, make_records(tmp_path, 2)))
    assert [question_of(trainer, out, r) for r in range(8)] == [0] * 4 + [1] * 4
    assert trainer.refill_stream is None and "dynamic_sampling/refills" not in trainer._metrics["train"]


def test_mask_truncated_completions_leaves_trajectories_that_never_answered_out_of_the_loss(make_trainer, tmp_path):
    trainer = make_trainer(n_questions=1, mask_truncated_completions=True, max_turns=2)

    def policy(call: ScriptedCall) -> str:  # rows 1 and 3 of round 2 box again: they end at the turn cap
        if call.num_images == 1 or call.row % 2 == 1:
            return "<think> look </think> <box>[10,10,60,60]</box>"
        return "<think> it is red </think> <answer> red </answer>"

    trainer._make_generator = lambda model: ScriptedGenerator(trainer.codec, policy)
    trainer.model.train()
    out = trainer._generate_and_score_completions(group_inputs(trainer, make_records(tmp_path, 1)))
    reasons = [t.finish_reason for t in trainer.last_trajectories]
    assert reasons == ["answer", "max_turns", "answer", "max_turns"]
    trained = (out["completion_mask"] * out["tool_mask"]).sum(dim=1)
    assert [bool(x) for x in trained] == [True, False, True, False]
    assert out["advantages"][1] < 0  # still in its group's advantage (as TRL does): only the loss drops it
    assert trainer._metrics["train"]["rollout/masked_truncated_frac"] == [0.5]


def questions_rolled(path) -> dict[int, list[tuple[int, str, bool]]]:
    out: dict[int, list] = {}
    for line in path.read_text().splitlines():
        e = json.loads(line)
        out.setdefault(e["step"], []).append((e["rollout"], e["key"], e["kept"], e["rewards"]))
    return out


def test_a_resumed_run_draws_the_same_refills_as_the_unbroken_run(make_trainer, tmp_path):
    """4 steps with a checkpoint at step 2, and the same run resumed from it: every step rolls and keeps the same
    questions (main batch and refills) with the same rewards, and the refill cursor continues where it was."""
    common = dict(
        n_questions=8,
        per_device_train_batch_size=8,
        dynamic_sampling=True,
        max_steps=4,
        save_strategy="steps",
        save_steps=2,
        question_reward_log=True,
    )
    informative = lambda i: i % 4 == 3  # noqa: E731 (most groups are flat: refills at most steps)

    unbroken = make_trainer(output_dir=str(tmp_path / "unbroken"), **common)
    scripted(unbroken, informative)
    unbroken.train()
    resumed = make_trainer(output_dir=str(tmp_path / "resumed"), **common)
    scripted(resumed, informative)
    resumed.train(resume_from_checkpoint=str(tmp_path / "unbroken" / "checkpoint-2"))

    a = questions_rolled(tmp_path / "unbroken" / "question_rewards.jsonl")
    b = questions_rolled(tmp_path / "resumed" / "question_rewards.jsonl")
    assert sorted(a) == [0, 1, 2, 3] and sorted(b) == [2, 3]  # question log steps are 0-based (before the step)
    assert any(rollout > 0 for step in (2, 3) for rollout, *_ in a[step])  # refills happened after the resume
    assert b[2] == a[2] and b[3] == a[3]
    saved = json.loads((tmp_path / "unbroken" / "checkpoint-2" / "dynamic_sampling.json").read_text())
    assert saved["refill_cursor"] == sum(1 for s in (0, 1) for rollout, *_ in a[s] if rollout > 0)
    assert resumed.refill_stream.cursor == unbroken.refill_stream.cursor
