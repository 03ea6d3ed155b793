"""Run reports written after training: `curves.png` (the paper's training-figure panels) and the trajectory
gallery `trajectories.html`. `python -m ground_r1.reporting OUTPUT_DIR` rebuilds both from the run's logs."""

from ground_r1.reporting.curves import CURVE_PANELS, plot_curves, read_metrics
from ground_r1.reporting.gallery import render_gallery

__all__ = ["CURVE_PANELS", "plot_curves", "read_metrics", "render_gallery", "write_alarm_section", "write_report"]


def write_report(output_dir, image_root=None) -> dict:
    """Both artifacts for a run folder; returns {name: path} of what was written."""
    from pathlib import Path

    out = Path(output_dir)
    written = {}
    if (out / "metrics.jsonl").is_file():
        written["curves"] = plot_curves(out / "metrics.jsonl", out / "curves.png")
    if (out / "metrics.jsonl").is_file():
        written["alarms"] = write_alarm_section(out)
    if (out / "trajectories.jsonl").is_file():
        written["gallery"] = render_gallery(out / "trajectories.jsonl", out / "trajectories.html", image_root=image_root)
    return written


ALARM_SECTION = "## Collapse alarms"
REFINE_WINDOW = 20  # training steps the refinement line averages over (the run's last ones)


def refinement_line(output_dir) -> str:
    """Iterative refinement (rewards/giou.py `refinement_metrics`): how often the policy boxed twice and how the
    second box's GIoU compared with the first, over the run's last training steps and, once written, on the
    held-out questions (heldout_eval.json, greedy)."""
    import json
    import statistics
    from pathlib import Path

    from ground_r1.reporting.curves import read_metrics

    out = Path(output_dir)
    parts = []
    steps = list(read_metrics(out / "metrics.jsonl").values())[-REFINE_WINDOW:] if (out / "metrics.jsonl").is_file() else []

    def mean(key):
        values = [r[key] for r in steps if isinstance(r.get(key), (int, float))]
        return statistics.fmean(values) if values else None

    twice, better, gain = mean("giou/refine_twice_frac"), mean("giou/refine_improved_frac"), mean("giou/refine_gain")
    if twice is not None:
        parts.append(f"training (last {len(steps)} steps, sampled): {twice:.1%} of trajectories box twice"
                     + (f"; the second box scores above the first in {better:.1%} of them, mean GIoU-score change "
                        f"{gain:+.3f}" if better is not None else ""))
    heldout = out / "heldout_eval.json"
    if heldout.is_file():
        g = (json.loads(heldout.read_text()).get("results") or {}).get("grounded") or {}
        if g.get("refine_twice_frac") is not None:
            parts.append(f"held-out (greedy): {g['refine_twice_frac']:.1%} box twice"
                         + (f", second box better in {g['refine_improved_frac']:.1%}, mean change "
                            f"{g['refine_gain']:+.3f}" if g.get("refine_improved_frac") is not None else ""))
    return "Iterative refinement: " + ("; ".join(parts) if parts else "not measured (no grounding turn)") + "."


def write_alarm_section(output_dir):
    """The run report's learning-signal lines, the collapse alarms (trainer/alarms.py `report_line`) and the
    iterative refinement (`refinement_line`), as the last section of OUTPUT_DIR/README.md, replacing an earlier one
    (rebuilding the report never repeats it)."""
    from pathlib import Path

    from ground_r1.reporting.curves import read_metrics
    from ground_r1.trainer.alarms import read_events, report_line

    out = Path(output_dir)
    card = out / "README.md"
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    text = text.split("\n" + ALARM_SECTION)[0].split(ALARM_SECTION)[0].rstrip()
    steps = len(read_metrics(out / "metrics.jsonl")) if (out / "metrics.jsonl").is_file() else None
    lines = [report_line(read_events(out), steps), "", refinement_line(out)]
    card.write_text((text + "\n\n" if text else "") + f"{ALARM_SECTION}\n\n" + "\n".join(lines) + "\n",
                    encoding="utf-8")
    return card
