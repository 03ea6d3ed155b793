"""trajectories.jsonl: one question's trajectories per logged step, exactly as the rollout produced them."""

from __future__ import annotations

import json

from tests.trainer.conftest import group_inputs, make_records


def _run_step(trainer, tmp_path):
    trainer.model.train()
    return trainer._generate_and_score_completions(group_inputs(trainer, make_records(tmp_path, 2)))


def test_first_question_trajectories_are_logged_with_boxes_crops_and_rewards(make_trainer, tmp_path):
    trainer = make_trainer(
        n_questions=2, per_device_train_batch_size=8, trajectory_log_steps=5, scripted_policy="mixed_rounds"
    )
    _run_step(trainer, tmp_path)  # global_step 0 -> this rollout trains step 1: logged
    lines = [json.loads(x) for x in (tmp_path / "out" / "trajectories.jsonl").read_text().splitlines()]
    # N=4 trajectories of question 0 only (question 1 is not logged).
    assert len(lines) == 4
    assert {e["key"] for e in lines} == {"f.jsonl:1"} and {e["step"] for e in lines} == {1}
    assert [e["branch"] for e in lines] == [0, 0, 1, 1]  # G1=2 x G2=2, branch-major
    # mixed_rounds: round-1 row r finishes in round (r % 3) + 1. Question 0 owns round-1 rows 0 and 1:
    # branch 0 answers at once (1 turn), branch 1 grounds once then answers (2 turns).
    assert [len(e["turns"]) for e in lines] == [1, 1, 2, 2]
    grounding = lines[2]["turns"][0]
    # Row 1's box [4,4,44,44] in the 112x84 view of the 448x336 image (scale 4) -> [16,16,176,176] original.
    assert grounding["box"] == [16, 16, 176, 176]
    assert grounding["crop"] == [16, 16, 176, 176] and grounding["crop_is_fallback"] is False
    assert lines[0]["turns"][0]["box"] is None and lines[0]["turns"][0]["crop"] is None
    # Rewards as the trainer computed them: answer "red" is right; format 2.0 = every turn well formed.
    assert all(e["rewards"]["accuracy_reward"] == 1.0 for e in lines)
    assert [e["rewards"]["format_reward"] for e in lines] == [2.0, 2.0, 2.0, 2.0]
    assert all(e["advantage"] == 0.0 for e in lines)  # equal rewards in the group


def test_nothing_is_logged_off_schedule_or_when_disabled(make_trainer, tmp_path):
    trainer = make_trainer(n_questions=1, trajectory_log_steps=5, scripted_policy="answer_at_once")
    trainer.state.global_step = 1  # this rollout trains step 2: not 1, not a multiple of 5
    _run_step(trainer, tmp_path)
    assert not (tmp_path / "out" / "trajectories.jsonl").exists()
    trainer.state.global_step = 4  # step 5: logged
    _run_step(trainer, tmp_path)
    assert (tmp_path / "out" / "trajectories.jsonl").read_text().count("\n") == 4

    off = make_trainer(n_questions=1, output_dir=str(tmp_path / "off"), scripted_policy="answer_at_once")
    _run_step(off, tmp_path)
    assert not (tmp_path / "off" / "trajectories.jsonl").exists()
