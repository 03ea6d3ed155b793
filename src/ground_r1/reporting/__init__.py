"""Run reports written after training: `curves.png` (the paper's training-figure panels), the trajectory
gallery `trajectories.html` and the model card `README.md`. `python -m ground_r1.reporting OUTPUT_DIR` rebuilds
them from the run's logs."""

from ground_r1.reporting.curves import CURVE_PANELS, plot_curves, read_metrics
from ground_r1.reporting.gallery import render_gallery

__all__ = ["CURVE_PANELS", "plot_curves", "read_metrics", "render_gallery", "write_report"]


def write_report(output_dir, image_root=None) -> dict:
    """The run's report (curves, gallery, model card with its alarm and refinement lines); returns {name: path}
    of what was written."""
    from pathlib import Path

    out = Path(output_dir)
    written = {}
    if (out / "metrics.jsonl").is_file():
        written["curves"] = plot_curves(out / "metrics.jsonl", out / "curves.png")
    if (out / "trajectories.jsonl").is_file():
        written["gallery"] = render_gallery(
            out / "trajectories.jsonl", out / "trajectories.html", image_root=image_root
        )
    if (out / "run_manifest.json").is_file():
        from ground_r1.reporting.model_card import write_model_card

        written["model card"] = write_model_card(out)
    return written
