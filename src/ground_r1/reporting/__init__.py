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


def write_alarm_section(output_dir):
    """The run report's alarm line (trainer/alarms.py `report_line`) as the last section of OUTPUT_DIR/README.md,
    replacing an earlier one (rebuilding the report never repeats it)."""
    from pathlib import Path

    from ground_r1.reporting.curves import read_metrics
    from ground_r1.trainer.alarms import read_events, report_line

    out = Path(output_dir)
    card = out / "README.md"
    text = card.read_text(encoding="utf-8") if card.is_file() else ""
    text = text.split("\n" + ALARM_SECTION)[0].split(ALARM_SECTION)[0].rstrip()
    steps = len(read_metrics(out / "metrics.jsonl")) if (out / "metrics.jsonl").is_file() else None
    line = report_line(read_events(out), steps)
    card.write_text((text + "\n\n" if text else "") + f"{ALARM_SECTION}\n\n{line}\n", encoding="utf-8")
    return card
