"""Collapse alarms (trainer/alarms.py): each alarm fires on its scripted collapse (demo/scripted.py
`collapse_*`: healthy until step 5, then one signal goes) and not on the healthy policy; the firing is a named
warning, a line of alarms.jsonl, the report's line and a mark on curves.png; alarm_action: stop ends the run."""

from __future__ import annotations

import json
import logging

import pytest

from ground_r1.reporting.model_card import write_model_card
from ground_r1.trainer.alarms import ALARMS, AlarmSettings, read_events, report_line, scan

# -- the rule, on written histories -----------------------------------------------------------------------------------


def history(metric: str, values: list[float]) -> list[dict]:
    return [{"step": i + 1, "loss": 0.0, metric: v} for i, v in enumerate(values)]


def test_each_alarm_fires_where_its_window_mean_crosses_and_again_only_after_clearing():
    s = AlarmSettings(window=2)
    turns = scan(history("rollout/turns_mean", [2.0, 2.0, 1.2, 0.9, 1.0, 2.0, 2.0, 1.0, 1.0]), s)
    # window means: -, 2.0, 1.6, 1.05 (fires at step 4), 0.95, 1.5 (clears), 2.0, 1.5, 1.0 (fires again at 9)
    assert [(e.alarm, e.step, e.value, e.threshold) for e in turns] == [
        ("one_round_collapse", 4, 1.05, 1.1),
        ("one_round_collapse", 9, 1.0, 1.1),
    ]
    assert turns[0].message == (
        "ALARM one_round_collapse at step 4: turns per trajectory 1.050 over the last 2 "
        "steps <= 1.100: the policy answers without looking (SPEC §9's one-round collapse)"
    )
    # first window 60 -> fires below 30: step 5's mean is 30.0 (not below), step 6's 29.0
    length = scan(history("completions/mean_length", [60, 60, 40, 31, 29, 29]), s)
    assert [(e.alarm, e.step, e.value, e.threshold) for e in length] == [("length_collapse", 6, 29.0, 30.0)]
    zero = scan(history("frac_reward_zero_std", [0.5, 0.7, 0.9, 0.75]), s)
    assert [(e.alarm, e.step, e.value) for e in zero] == [("no_signal", 3, 0.8)]
    # best window so far 1.9 (steps 2-3); fires at <= 1.6: step 5 (1.55)
    fmt = scan(history("rewards/format_reward/mean", [1.0, 1.8, 2.0, 1.7, 1.4, 1.4]), s)
    assert [(e.alarm, e.step, e.value, e.threshold) for e in fmt] == [("format_drop", 5, 1.55, 1.6)]
    # lowest window 0.15 (steps 2-3); fires at >= 0.40: step 5 (0.45)
    nobox = scan(history("giou/no_box_rate", [0.4, 0.2, 0.1, 0.3, 0.6]), s)
    assert [(e.alarm, e.step, e.value, e.threshold) for e in nobox] == [("no_box_rise", 5, 0.45, 0.4)]


def test_a_step_logged_twice_across_a_resume_counts_once_and_eval_lines_are_ignored():
    records = history("rollout/turns_mean", [2.0, 1.0, 1.0])
    records.insert(2, {"step": 2, "loss": 0.0, "rollout/turns_mean": 1.0})  # the resumed run logs step 2 again
    records.append({"step": 3, "eval_rollout/turns_mean": 1.0})
    records.append({"step": 3, "train_runtime": 1.0, "rollout/turns_mean": 9.0})
    assert [(e.step, e.value) for e in scan(records, AlarmSettings(window=2))] == [(3, 1.0)]


def test_report_line_names_each_firing_or_says_none():
    assert report_line([], 200).startswith("Collapse alarms: none over 200 steps")
    events = scan(history("rollout/turns_mean", [2.0, 1.0, 1.0]), AlarmSettings(window=2))
    assert report_line(events) == (
        "Collapse alarms: `one_round_collapse` at step 3 (turns per trajectory 1.000, "
        "threshold 1.100) (alarms.jsonl; trainer/alarms.py)."
    )


def test_bad_alarm_settings_are_named(make_trainer):
    from ground_r1.config import GroundR1Config

    with pytest.raises(ValueError) as err:
        GroundR1Config(
            output_dir="x",
            per_device_train_batch_size=8,
            num_generations=8,
            remove_unused_columns=False,
            alarm_action="panic",
            alarm_window=0,
            alarm_length_ratio=1.5,
            use_cpu=True,
        )
    text = str(err.value)
    assert "alarm_action must be one of warn, stop, got 'panic'" in text
    assert "alarm_window must be >= 1, got 0" in text and "alarm_length_ratio must be in (0, 1), got 1.5" in text


# -- in training, with scripted policies -----------------------------------------------------------------------------

STEPS = 8
WINDOW = 3


def train_scripted(make_trainer, tmp_path, policy: str, **overrides):
    trainer = make_trainer(
        n_questions=2,
        scripted_policy=policy,
        max_steps=STEPS,
        alarm_window=WINDOW,
        output_dir=str(tmp_path / policy),
        **overrides,
    )
    trainer.train()
    return trainer


@pytest.mark.parametrize(
    "policy,alarm",
    [
        ("collapse_one_round", "one_round_collapse"),
        ("collapse_length", "length_collapse"),
        ("collapse_no_signal", "no_signal"),
        ("collapse_format", "format_drop"),
        ("collapse_no_box", "no_box_rise"),
    ],
)
def test_a_scripted_collapse_raises_its_alarm(make_trainer, tmp_path, caplog, policy, alarm):
    with caplog.at_level(logging.WARNING, logger="ground_r1.trainer.grpo_trainer"):
        trainer = train_scripted(make_trainer, tmp_path, policy)
    fired = [e for e in trainer.alarm_events if e.alarm == alarm]
    assert fired, [e.alarm for e in trainer.alarm_events]
    # The collapse starts at step 5; the window of 3 steps crosses by step 7 at the latest.
    assert 5 <= fired[0].step <= 7
    assert any(r.getMessage().startswith(f"ALARM {alarm} at step {fired[0].step}:") for r in caplog.records)
    assert (fired[0].alarm, fired[0].step) in {(e.alarm, e.step) for e in read_events(tmp_path / policy)}
    assert trainer.state.global_step == STEPS and not trainer.stopped_by_alarm  # warn: the run goes on


def test_the_healthy_scripted_policy_raises_no_alarm(make_trainer, tmp_path):
    trainer = train_scripted(make_trainer, tmp_path, "varied_by_branch")
    assert trainer.alarm_events == [] and not (tmp_path / "varied_by_branch" / "alarms.jsonl").exists()
    # every signal was watched: each alarm's metric was logged at every step
    logged = [r for r in trainer.state.log_history if "loss" in r]
    assert len(logged) == STEPS and all(a.metric in r for a in ALARMS for r in logged)


def test_alarm_action_stop_saves_the_step_and_ends_the_run(make_trainer, tmp_path):
    trainer = train_scripted(make_trainer, tmp_path, "collapse_one_round", alarm_action="stop", save_strategy="no")
    step = trainer.alarm_events[0].step
    assert trainer.stopped_by_alarm and trainer.state.global_step == step < STEPS
    assert (tmp_path / "collapse_one_round" / f"checkpoint-{step}" / "COMPLETE").is_file()


def test_the_report_and_curves_show_the_alarms(make_trainer, tmp_path):
    from ground_r1.reporting import write_report

    trainer = train_scripted(make_trainer, tmp_path, "collapse_one_round")
    out = tmp_path / "collapse_one_round"
    for record in trainer.state.log_history:  # what MetricsJsonlCallback writes in a CLI run
        with open(out / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")
    written = write_report(out)
    write_model_card(out)  # the CLI's run writes run_manifest.json, which write_report needs for the card
    card = (out / "README.md").read_text()
    step = next(e.step for e in trainer.alarm_events if e.alarm == "one_round_collapse")
    assert "## Learning signal\n\nCollapse alarms: `length_collapse` at step" in card  # answers shrink too
    assert f"`one_round_collapse` at step {step} (turns per trajectory 1.000, threshold 1.100)" in card
    write_model_card(out)  # rebuilding the report replaces the section, never repeats it
    assert (out / "README.md").read_text().count("## Learning signal") == 1
    assert written["curves"].stat().st_size > 10_000
    from ground_r1.reporting.curves import plot_curves

    # The figure with the marks differs from the same figure without alarms.jsonl.
    (out / "alarms.jsonl").rename(out / "alarms.off")
    plain = plot_curves(out / "metrics.jsonl", out / "plain.png")
    assert plain.read_bytes() != written["curves"].read_bytes()


def test_the_training_cli_exits_3_when_an_alarm_stops_the_run(tiny_model_dir, tmp_path):
    from ground_r1 import paths
    from ground_r1.cli.train_grpo import main
    from ground_r1.trainer.alarms import STOPPED_EXIT_CODE

    out = tmp_path / "stopped"
    code = main(
        [
            "--config",
            str(paths.repo_root() / "configs" / "grpo" / "tiny_cpu.yaml"),
            "--model_name_or_path",
            str(tiny_model_dir),
            "--output_dir",
            str(out),
            "--scripted_policy",
            "collapse_one_round",
            "--alarm_action",
            "stop",
            "--alarm_window",
            "3",
            "--max_steps",
            str(STEPS),
            "--num_generations",
            "4",
            "--per_device_train_batch_size",
            "4",
            "--max_turns",
            "2",
            "--max_new_tokens_per_turn",
            "64",
            "--heldout_eval_questions",
            "0",
            "--trajectory_log_steps",
            "0",
        ]
    )
    assert code == STOPPED_EXIT_CODE == 3
    events = read_events(out)
    stop_step = events[0].step
    assert (out / f"checkpoint-{stop_step}" / "COMPLETE").is_file() and not (out / f"checkpoint-{STEPS}").exists()
    card = (out / "README.md").read_text()
    assert "## Learning signal" in card and f"at step {stop_step}" in card
