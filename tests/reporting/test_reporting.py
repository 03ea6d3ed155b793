"""curves.png and trajectories.html from a run's logs (ground_r1.reporting)."""

from __future__ import annotations

import json

from PIL import Image

from ground_r1.reporting import CURVE_PANELS, read_metrics, render_gallery, write_report


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_read_metrics_keeps_training_steps_and_the_last_record_of_a_relogged_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _write_jsonl(path, [
        {"step": 1, "rewards/format_reward/mean": 0.5},
        {"step": 2, "rewards/format_reward/mean": 0.7},
        {"step": 2, "eval_rewards/accuracy_reward/mean": 0.1},  # an eval line: not a training step
        {"step": 2, "rewards/format_reward/mean": 0.9},  # step 2 again after a resume: this one wins
        {"step": 3, "train_runtime": 12.0},  # the summary line
    ])
    steps = read_metrics(path)
    assert list(steps) == [1, 2]
    assert steps[2]["rewards/format_reward/mean"] == 0.9


def test_write_report_writes_the_five_panel_figure_and_the_gallery(tmp_path):
    _write_jsonl(tmp_path / "metrics.jsonl", [
        {"step": s, "rewards/format_reward/mean": s / 10, "rewards/accuracy_reward/mean": s / 20,
         "completions/mean_length": 30 + s, "giou/score": 0.4, "rollout/turns_mean": 2.0} for s in range(1, 11)
    ])
    Image.new("RGB", (448, 448), (20, 20, 20)).save(tmp_path / "scene.png")
    entry = {"step": 1, "key": "k:1", "image": "scene.png", "problem": "What <b>?", "solution": "red",
             "bboxs": [[10, 10, 100, 100]], "branch": 0, "finish_reason": "answer",
             "turns": [{"text": "<think> look </think><box>[1,2,30,40]</box>", "box": [4, 8, 120, 160],
                        "crop": [4, 8, 120, 160], "crop_is_fallback": False, "hit_token_limit": False},
                       {"text": "<think> ok </think><answer>red</answer>", "box": None, "crop": None,
                        "crop_is_fallback": False, "hit_token_limit": False}],
             "rewards": {"format_reward": 2.0, "accuracy_reward": 1.0}, "advantage": 0.5}
    _write_jsonl(tmp_path / "trajectories.jsonl", [entry, {**entry, "branch": 1}])
    written = write_report(tmp_path)
    assert set(written) == {"curves", "gallery", "alarms"}
    # the report's alarm line (trainer/alarms.py), in the run folder's README.md
    assert written["alarms"].read_text().endswith("## Collapse alarms\n\nCollapse alarms: none over 10 steps "
                                                  "(trainer/alarms.py: turns, length, zero-std share, format, "
                                                  "no-box rate).\n\nIterative refinement: not measured (no "
                                                  "grounding turn).\n")
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
    base = {"step": 4, "image": "missing.png", "problem": "q", "solution": "a", "bboxs": [], "branch": 0,
            "finish_reason": "max_turns", "turns": [], "rewards": {"format_reward": None}, "advantage": None}
    _write_jsonl(tmp_path / "trajectories.jsonl", [
        {**base, "key": "first-run"}, {**base, "key": "first-run"},
        {**base, "key": "resumed-run"},  # the step was logged again after a resume: only this group stays
    ])
    page = render_gallery(tmp_path / "trajectories.jsonl", tmp_path / "g.html").read_text()
    assert "resumed-run" in page and "first-run" not in page
    assert page.count("class='traj'") == 1
    assert "image unavailable" in page and "missing.png" in page
    assert "format_reward=n/a" in page


def test_the_report_says_how_often_and_how_much_the_second_box_improves(tmp_path):
    from ground_r1.reporting import refinement_line

    _write_jsonl(tmp_path / "metrics.jsonl", [
        {"step": s, "giou/refine_twice_frac": 0.1 * (s % 2), "giou/refine_improved_frac": 0.5, "giou/refine_gain": 0.02}
        for s in range(1, 31)])  # the last 20 steps: twice 0.05 on average
    (tmp_path / "heldout_eval.json").write_text(json.dumps({"results": {"grounded": {
        "refine_twice_frac": 0.08, "refine_improved_frac": 0.375, "refine_gain": 0.008}}}))
    assert refinement_line(tmp_path) == (
        "Iterative refinement: training (last 20 steps, sampled): 5.0% of trajectories box twice; the second box "
        "scores above the first in 50.0% of them, mean GIoU-score change +0.020; held-out (greedy): 8.0% box twice, "
        "second box better in 37.5%, mean change +0.008.")
