"""curves.png and trajectories.html from a run's logs (ground_r1.reporting)."""

from __future__ import annotations

import json

from PIL import Image

from ground_r1.reporting import CURVE_PANELS, read_metrics, render_gallery, write_report


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_read_metrics_keeps_training_steps_and_the_last_record_of_a_relogged_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _write_jsonl(
        path,
        [
            {"step": 1, "rewards/format_reward/mean": 0.5},
            {"step": 2, "rewards/format_reward/mean": 0.7},
            {"step": 2, "eval_rewards/accuracy_reward/mean": 0.1},  # an eval line: not a training step
            {"step": 2, "rewards/format_reward/mean": 0.9},  # step 2 again after a resume: this one wins
            {"step": 3, "train_runtime": 12.0},  # the summary line
        ],
    )
    steps = read_metrics(path)
    assert list(steps) == [1, 2]
    assert steps[2]["rewards/format_reward/mean"] == 0.9


def test_write_report_writes_the_five_panel_figure_and_the_gallery(tmp_path):
    _write_jsonl(
        tmp_path / "metrics.jsonl",
        [
            {
                "step": s,
                "rewards/format_reward/mean": s / 10,
                "rewards/accuracy_reward/mean": s / 20,
                "completions/mean_length": 30 + s,
                "giou/score": 0.4,
                "rollout/turns_mean": 2.0,
            }
            for s in range(1, 11)
        ],
    )
    Image.new("RGB", (448, 448), (20, 20, 20)).save(tmp_path / "scene.png")
    entry = {
        "step": 1,
        "key": "k:1",
        "image": "scene.png",
        "problem": "What <b>?",
        "solution": "red",
        "bboxs": [[10, 10, 100, 100]],
        "branch": 0,
        "finish_reason": "answer",
        "turns": [
            {
                "text": "<think> look </think><box>[1,2,30,40]</box>",
                "box": [4, 8, 120, 160],
                "crop": [4, 8, 120, 160],
                "crop_is_fallback": False,
                "hit_token_limit": False,
            },
            {
                "text": "<think> ok </think><answer>red</answer>",
                "box": None,
                "crop": None,
                "crop_is_fallback": False,
                "hit_token_limit": False,
            },
        ],
        "rewards": {"format_reward": 2.0, "accuracy_reward": 1.0},
        "advantage": 0.5,
    }
    _write_jsonl(tmp_path / "trajectories.jsonl", [entry, {**entry, "branch": 1}])
    written = write_report(tmp_path)
    assert set(written) == {"curves", "gallery"}
    with Image.open(written["curves"]) as png:
        width, height = png.size
    assert width > height * len(CURVE_PANELS) / 2  # one row of panels
    page = written["gallery"].read_text()
    assert page.count("<h2>step 1</h2>") == 1
    assert page.count("class='traj'") == 2  # both trajectories of the question
    assert "What &lt;b&gt;?" in page  # model and data text is escaped
    assert "&lt;think&gt; look &lt;/think&gt;&lt;box&gt;[1,2,30,40]&lt;/box&gt;" in page
    assert page.count("data:image/png;base64,") == 1 + 2  # the annotated original + one crop per trajectory


def test_gallery_keeps_the_last_logging_of_a_step_and_reports_a_missing_image(tmp_path):
    base = {
        "step": 4,
        "image": "missing.png",
        "problem": "q",
        "solution": "a",
        "bboxs": [],
        "branch": 0,
        "finish_reason": "max_turns",
        "turns": [],
        "rewards": {"format_reward": None},
        "advantage": None,
    }
    _write_jsonl(
        tmp_path / "trajectories.jsonl",
        [
            {**base, "key": "first-run"},
            {**base, "key": "first-run"},
            {**base, "key": "resumed-run"},  # the step was logged again after a resume: only this group stays
        ],
    )
    page = render_gallery(tmp_path / "trajectories.jsonl", tmp_path / "g.html").read_text()
    assert "resumed-run" in page and "first-run" not in page
    assert page.count("class='traj'") == 1
    assert "image unavailable" in page and "missing.png" in page
    assert "format_reward=n/a" in page


def test_the_report_says_how_often_and_how_much_the_second_box_improves(tmp_path):
    from ground_r1.reporting.model_card import refinement_line

    _write_jsonl(
        tmp_path / "metrics.jsonl",
        [
            {
                "step": s,
                "giou/refine_twice_frac": 0.1 * (s % 2),
                "giou/refine_improved_frac": 0.5,
                "giou/refine_gain": 0.02,
            }
            for s in range(1, 31)
        ],
    )  # the last 20 steps: twice 0.05 on average
    (tmp_path / "heldout_eval.json").write_text(
        json.dumps(
            {"results": {"grounded": {"refine_twice_frac": 0.08, "refine_improved_frac": 0.375, "refine_gain": 0.008}}}
        )
    )
    assert refinement_line(tmp_path) == (
        "Iterative refinement: training (last 20 steps, sampled): 5.0% of trajectories box twice; the second box "
        "scores above the first in 50.0% of them, mean GIoU-score change +0.020; held-out (greedy): 8.0% box twice, "
        "second box better in 37.5%, mean change +0.008."
    )


# ------------------------------------------------------------------------------- issue 17: what a reader needs


def _heldout_run(tmp_path, max_turns=3):
    _write_jsonl(
        tmp_path / "metrics.jsonl",
        [
            {"step": 0, "heldout/accuracy": 0.2, "heldout/giou_score": 0.43},
            *(
                {
                    "step": s,
                    "rewards/format_reward/mean": 1.5,
                    "rewards/accuracy_reward/mean": 0.3,
                    "completions/mean_length": 50,
                    "giou/score": 0.4,
                    "rollout/turns_mean": 2.5,
                    **({"heldout/accuracy": 0.3, "heldout/giou_score": 0.5} if s % 5 == 0 else {}),
                }
                for s in range(1, 21)
            ),
        ],
    )
    (tmp_path / "heldout_eval.json").write_text(
        json.dumps(
            {
                "questions": 64,
                "base": {"accuracy": 0.2, "giou_score": 0.43},
                "results": {
                    "grounded": {"accuracy": 0.45, "giou_score": 0.55},
                    "no_crop": {"accuracy": 0.25, "giou_score": 0.55},
                    "gt_crop": {"accuracy": 0.9, "giou_score": 0.97},
                    "random_box": {"giou_score": 0.27},
                },
            }
        )
    )
    (tmp_path / "rollout_settings.json").write_text(
        json.dumps({"coordinates": "input_pixels", "settings": {"max_turns": max_turns}})
    )


def test_curves_say_how_they_are_smoothed_fix_ranges_and_draw_the_heldout_references(tmp_path):
    from ground_r1.reporting.curves import curves_figure

    _heldout_run(tmp_path)
    fig = curves_figure(tmp_path / "metrics.jsonl")
    axes = {ax.get_title(): ax for ax in fig.axes}
    assert "trailing moving average over 1 step(s)" in fig._suptitle.get_text()
    assert axes["format reward"].get_ylim() == (0.0, 2.05)
    assert axes["accuracy reward"].get_ylim() == (0.0, 1.02)
    assert axes["GIoU score (evidence box, not a reward)"].get_ylim() == (0.0, 1.02)
    assert axes["turns per trajectory"].get_ylim() == (0.9, 3.1)  # [1, max_turns] of the run's settings
    labels = [line.get_label() for line in axes["accuracy reward"].get_lines()]
    assert labels == [
        "per step (training)",
        "moving average, 1 steps",
        "held-out, greedy",
        "base before RL: 0.20",
        "no crop (lower bound): 0.25",
        "ground-truth crop (upper bound): 0.90",
    ]
    held = axes["accuracy reward"].get_lines()[2]
    assert list(held.get_xdata()) == [0, 5, 10, 15, 20] and list(held.get_ydata()) == [0.2, 0.3, 0.3, 0.3, 0.3]
    giou_labels = [line.get_label() for line in axes["GIoU score (evidence box, not a reward)"].get_lines()]
    assert giou_labels[3:] == ["base before RL: 0.43", "ground-truth crop (upper bound): 0.97", "random box: 0.27"]


def test_gallery_says_how_many_logged_steps_it_shows_and_labels_both_frames(tmp_path):
    Image.new("RGB", (448, 448), (20, 20, 20)).save(tmp_path / "scene.png")
    entries = [
        {
            "step": s,
            "key": "k:1",
            "image": "scene.png",
            "problem": "q",
            "solution": "red",
            "bboxs": [],
            "branch": 0,
            "finish_reason": "answer",
            "input_size": [112, 112],
            "original_size": [448, 448],
            "turns": [
                {
                    "text": "<box>[1,2,30,40]</box>",
                    "box": [4, 8, 120, 160],
                    "crop": [4, 8, 120, 160],
                    "crop_is_fallback": False,
                    "hit_token_limit": False,
                }
            ],
            "rewards": {"format_reward": 2.0},
            "advantage": 0.0,
        }
        for s in [1, *range(10, 201, 10)]
    ]
    _write_jsonl(tmp_path / "trajectories.jsonl", entries)
    page = render_gallery(tmp_path / "trajectories.jsonl", tmp_path / "t.html").read_text()
    assert "Shows 12 of the 21 logged steps (1, 20, 40, 50, 70, 90, 110, 130, 150, 160, 180, 200)" in page
    assert "model input frame 112x112 px, original 448x448 px" in page
    assert "turn 1 (boxes in the input frame): &lt;box&gt;[1,2,30,40]&lt;/box&gt;" in page
    assert "crop window (original pixels) [4, 8, 120, 160]" in page
    assert "box in original pixels: [4, 8, 120, 160]" in page
    few = render_gallery(tmp_path / "trajectories.jsonl", tmp_path / "t2.html", max_steps_shown=50).read_text()
    assert "Shows all 21 logged step(s)." in few


def test_model_card_says_what_was_trained_on_what_with_which_preset_and_its_heldout_figures(tmp_path):
    from ground_r1.reporting.model_card import write_model_card

    _heldout_run(tmp_path)
    (tmp_path / "run_manifest.json").write_text(
        json.dumps(
            {
                "command": ["python", "-m", "ground_r1.cli.train_grpo", "--config", "configs/grpo/release.yaml"],
                "git_commit": "abc123",
                "packages": {"trl": "1.16.0", "transformers": "5.23.0"},
                "model_args": {"model_name_or_path": "Qwen/Qwen2.5-VL-7B-Instruct"},
                "script_args": {"data_path": "/data/viscot_train.jsonl", "image_root": "/data/viscot"},
                "training_args": {
                    "max_steps": 20,
                    "num_generations": 8,
                    "num_first_round_samples": 2,
                    "loss_type": "grpo",
                    "beta": 0.0,
                    "learning_rate": 1e-6,
                    "seed": 0,
                },
            }
        )
    )
    card = write_model_card(tmp_path).read_text()
    assert "fine-tuned version of [None]" not in card
    assert "base_model: Qwen/Qwen2.5-VL-7B-Instruct" in card
    assert "- base model: `Qwen/Qwen2.5-VL-7B-Instruct`" in card
    assert "- training data: `/data/viscot_train.jsonl` (images under `/data/viscot`)" in card
    assert "- preset: `configs/grpo/release.yaml`" in card
    assert "- steps: 20 logged of max_steps 20" in card and "learning rate 1.00e-06" in card
    assert "| base model before RL, grounded | 0.200 | 0.430 |" in card
    assert "| grounded (the method) | 0.450 | 0.550 |" in card
    assert "| no crop (lower bound) | 0.250 | 0.550 |" in card
    assert "| random box (GIoU only) | - | 0.270 |" in card
    # the learning-signal section: the collapse alarms (trainer/alarms.py, none here) and iterative refinement
    assert (
        "## Learning signal\n\nCollapse alarms: none over 20 steps (trainer/alarms.py: turns, length, zero-std "
        "share, format, no-box rate).\n\nIterative refinement: not measured (no grounding turn).\n"
    ) in card
    (tmp_path / "alarms.jsonl").write_text(
        json.dumps(
            {
                "alarm": "one_round_collapse",
                "step": 12,
                "metric": "rollout/turns_mean",
                "value": 1.05,
                "threshold": 1.1,
                "window": 20,
                "message": "ALARM one_round_collapse at step 12: ...",
            }
        )
        + "\n"
    )
    card = write_model_card(tmp_path).read_text()
    assert (
        "Collapse alarms: `one_round_collapse` at step 12 (turns per trajectory 1.050, threshold 1.100) "
        "(alarms.jsonl; trainer/alarms.py)."
    ) in card
