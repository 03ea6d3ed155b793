"""`curves.png`: the panels of the paper's training figure (format reward, accuracy reward, response length,
GIoU score; SPEC §9) plus turns per trajectory, from `metrics.jsonl`.

Each panel plots the per-step value (thin) and a trailing moving average (thick; the window is printed in the
figure's title). Panels whose metric has a range use it as fixed y limits (format [0, 2], accuracy and GIoU
[0, 1], turns [1, max_turns]), so runs compare at a glance. Held-out figures (greedy, held-out questions: not the
training reward of sampled rollouts) are drawn over them when the run has them: the `heldout/*` points logged
before step 1 and during training, and from `heldout_eval.json` horizontal reference lines: the base model before
RL, the trained policy without crops (lower bound) and with the ground-truth crop (upper bound), the random-box and
whole-image-box GIoU and the majority answer's accuracy. Collapse alarms (the run's alarms.jsonl) are red dashed
lines, named in the title. After a resume a step can be logged twice (the killed run logged it, the resumed run
logged it again): the last record of a step wins.
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
# Fixed y limits of the metrics that have a range (turns: [1, max_turns], from the run's settings).
Y_LIMITS: dict[str, tuple[float, float]] = {
    "rewards/format_reward/mean": (0.0, 2.05),
    "rewards/accuracy_reward/mean": (0.0, 1.02),
    "giou/score": (0.0, 1.02),
}
# Panel -> (held-out metric logged during training, heldout_eval.json field).
HELDOUT_OVERLAY = {
    "rewards/accuracy_reward/mean": ("heldout/accuracy", "accuracy"),
    "giou/score": ("heldout/giou_score", "giou_score"),
}
# heldout_eval.json reference lines: (condition, label, colour, line style, fields it is drawn for). The no-crop
# GIoU equals the grounded one by design (first box only), so it is drawn for accuracy only.
REFERENCE_LINES = (
    ("base", "base before RL", "tab:gray", ":", ("accuracy", "giou_score")),
    ("no_crop", "no crop (lower bound)", "tab:red", "--", ("accuracy",)),
    ("gt_crop", "ground-truth crop (upper bound)", "tab:green", "--", ("accuracy", "giou_score")),
    ("random_box", "random box", "tab:purple", ":", ("giou_score",)),
    ("majority_answer", "majority answer", "tab:orange", "-.", ("accuracy",)),
    ("whole_image_box", "whole-image box", "tab:orange", "-.", ("giou_score",)),
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


def _references(heldout: dict | None, field: str) -> list[tuple[str, str, str, float]]:
    """(label, colour, style, value) of each reference line the run's heldout_eval.json gives for ``field``."""
    if not heldout:
        return []
    results = dict(heldout.get("results") or {})
    if isinstance(heldout.get("base"), dict):
        results["base"] = heldout["base"]
    out = []
    for condition, label, colour, style, fields in REFERENCE_LINES:
        if field not in fields:
            continue
        value = (results.get(condition) or {}).get(field)
        if isinstance(value, (int, float)) and math.isfinite(value):
            out.append((label, colour, style, float(value)))
    return out


def _max_turns(run_dir: Path) -> int | None:
    settings = run_dir / "rollout_settings.json"
    try:
        return int(json.loads(settings.read_text())["settings"]["max_turns"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def plot_curves(
    metrics_path: str | Path, out_path: str | Path, window: int | None = None, heldout_path: str | Path | None = None
) -> Path:
    """Write the figure (:func:`curves_figure`) to ``out_path``."""
    import matplotlib.pyplot as plt

    fig = curves_figure(metrics_path, window, heldout_path)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=90)
    plt.close(fig)
    return out_path


def curves_figure(metrics_path: str | Path, window: int | None = None, heldout_path: str | Path | None = None):
    """The matplotlib figure; a metric never logged gets an empty panel saying so (never a silent omission).
    ``heldout_path`` defaults to the run folder's heldout_eval.json (used when present)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics_path = Path(metrics_path)
    steps = read_metrics(metrics_path)
    heldout_file = Path(heldout_path) if heldout_path else metrics_path.parent / "heldout_eval.json"
    heldout = json.loads(heldout_file.read_text()) if heldout_file.is_file() else None
    max_turns = _max_turns(metrics_path.parent)
    train_steps = [s for s, r in steps.items() if any(key in r for key, _ in CURVE_PANELS)]
    w = window or max(1, len(train_steps) // 20)
    fig, axes = plt.subplots(1, len(CURVE_PANELS), figsize=(4 * len(CURVE_PANELS), 4.6))
    for ax, (key, title) in zip(axes, CURVE_PANELS):
        points = [
            (s, float(r[key]))
            for s, r in steps.items()
            if isinstance(r.get(key), (int, float)) and math.isfinite(float(r[key]))
        ]
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        limits = Y_LIMITS.get(key) or ((0.9, max_turns + 0.1) if key == "rollout/turns_mean" and max_turns else None)
        if limits:
            ax.set_ylim(*limits)
        if not points:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
            continue
        xs, ys = zip(*points)
        ax.plot(xs, ys, color="tab:blue", alpha=0.3, linewidth=0.8, label="per step (training)")
        ax.plot(xs, _moving_average(list(ys), w), color="tab:blue", linewidth=2, label=f"moving average, {w} steps")
        if key in HELDOUT_OVERLAY:
            logged, field = HELDOUT_OVERLAY[key]
            held = [(s, float(r[logged])) for s, r in steps.items() if isinstance(r.get(logged), (int, float))]
            if held:
                hx, hy = zip(*held)
                ax.plot(hx, hy, "o-", color="black", markersize=4, linewidth=1, label="held-out, greedy")
            for label, colour, style, value in _references(heldout, field):
                ax.axhline(value, color=colour, linestyle=style, linewidth=1.2, label=f"{label}: {value:.2f}")
            ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
        ax.grid(alpha=0.3)
    note = (
        f"thin: per-step value; thick: trailing moving average over {w} step(s). Black points: held-out greedy "
        "figures (held-out questions); lines: heldout_eval.json references."
    )
    alarms = _mark_alarms(axes, metrics_path.parent)
    fig.suptitle(note + alarms, fontsize=8, color="tab:red" if alarms else "black")
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


def _mark_alarms(axes, run_dir: Path) -> str:
    """Collapse alarms (trainer/alarms.py, the run's alarms.jsonl): a red dashed line at each firing on every
    panel, named on the panel of its metric (or the first panel when the figure has none). Returns the title's
    alarm line ("" without alarms)."""
    from ground_r1.trainer.alarms import read_events

    events = read_events(run_dir)
    if not events:
        return ""
    panels = {key: ax for ax, (key, _) in zip(axes, CURVE_PANELS)}
    for event in events:
        for ax in axes:
            ax.axvline(event.step, color="tab:red", linestyle="--", linewidth=1)
        target = panels.get(event.metric, axes[0])
        target.annotate(
            event.alarm,
            xy=(event.step, 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=7,
            color="tab:red",
        )
    return "\nCOLLAPSE ALARMS (red dashed lines; alarms.jsonl): " + ", ".join(f"{e.alarm} @ {e.step}" for e in events)
