"""`curves.png`: the panels of the paper's training figure (format reward, accuracy reward, response length,
GIoU score; SPEC §9) plus turns per trajectory, from `metrics.jsonl`.

Each panel plots the per-step value (thin) and a moving average (thick). After a resume a step can be logged
twice (the killed run logged it, the resumed run logged it again): the last record of a step wins.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

# (metric key in metrics.jsonl, panel title)
CURVE_PANELS: tuple[tuple[str, str], ...] = (
    ("rewards/format_reward/mean", "format reward"),
    ("rewards/accuracy_reward/mean", "accuracy reward"),
    ("completions/mean_length", "response length (sampled tokens)"),
    ("giou/score", "GIoU score (evidence box, not a reward)"),
    ("rollout/turns_mean", "turns per trajectory"),
)


def read_metrics(path: str | Path) -> dict[int, dict]:
    """Training-step records of metrics.jsonl by step (eval and summary lines left out; last one wins)."""
    steps: dict[int, dict] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            record = json.loads(line)
            if "train_runtime" in record or any(k.startswith("eval_") for k in record):
                continue
            steps[int(record["step"])] = record
    return dict(sorted(steps.items()))


def _moving_average(values: list[float], window: int) -> list[float]:
    out, acc, buf = [], 0.0, []
    for v in values:
        buf.append(v)
        acc += v
        if len(buf) > window:
            acc -= buf.pop(0)
        out.append(acc / len(buf))
    return out


def plot_curves(metrics_path: str | Path, out_path: str | Path, window: int | None = None) -> Path:
    """Write the figure; a metric never logged gets an empty panel saying so (never a silent omission)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = read_metrics(metrics_path)
    fig, axes = plt.subplots(1, len(CURVE_PANELS), figsize=(4 * len(CURVE_PANELS), 3.2))
    for ax, (key, title) in zip(axes, CURVE_PANELS):
        points = [(s, float(r[key])) for s, r in steps.items()
                  if isinstance(r.get(key), (int, float)) and math.isfinite(float(r[key]))]
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        if not points:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
            continue
        xs, ys = zip(*points)
        w = window or max(1, len(xs) // 20)
        ax.plot(xs, ys, color="tab:blue", alpha=0.3, linewidth=0.8)
        ax.plot(xs, _moving_average(list(ys), w), color="tab:blue", linewidth=2)
        ax.grid(alpha=0.3)
    _mark_alarms(fig, axes, Path(metrics_path).parent)
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=90)
    plt.close(fig)
    return out_path


def _mark_alarms(fig, axes, run_dir: Path) -> None:
    """Collapse alarms (trainer/alarms.py, the run's alarms.jsonl): a red dashed line at each firing on every
    panel, named on the panel of its metric (or the first panel when the figure has none), and in the title."""
    from ground_r1.trainer.alarms import read_events

    events = read_events(run_dir)
    if not events:
        return
    panels = {key: ax for ax, (key, _) in zip(axes, CURVE_PANELS)}
    for event in events:
        for ax in axes:
            ax.axvline(event.step, color="tab:red", linestyle="--", linewidth=1)
        target = panels.get(event.metric, axes[0])
        target.annotate(event.alarm, xy=(event.step, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                        va="top", ha="right", fontsize=7, color="tab:red")
    fig.suptitle("collapse alarms: " + ", ".join(f"{e.alarm} @ {e.step}" for e in events), color="tab:red",
                 fontsize=9)
