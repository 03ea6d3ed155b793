"""Summarise benchmarks/demo_learning results: held-out greedy metrics before/after RL with the spread over seeds.

    python benchmarks/demo_learning/summarize.py OUT              # one variant's folder (what run.sh writes)
    python benchmarks/demo_learning/summarize.py --variants ROOT  # one row per variant folder under ROOT

Headline: the gain of the grounded run over the no-crop RL control of the same seed (the control reaches what a
colour prior and the 112-px view allow), beside the model-free baselines of the same questions (the most common
answer; boxes chosen without looking: whole image, centred box, random box).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))

METRICS = ("accuracy", "giou_score", "format", "turns_mean", "answered_frac")
REFINE = ("refine_twice_frac", "refine_improved_frac", "refine_gain")
# Training curves: window means of each run's metrics.jsonl (the per-step values are noisy: 4 questions a step).
CURVE = (
    ("accuracy", "rewards/accuracy_reward/mean"),
    ("format", "rewards/format_reward/mean"),
    ("giou", "giou/score"),
    ("turns", "rollout/turns_mean"),
    ("crop fallback", "rollout/crop_fallback_rate"),
    ("zero-std groups", "frac_reward_zero_std"),
    ("kept groups", "dynamic_sampling/groups_kept"),
    ("refills", "dynamic_sampling/refills"),
)
CURVE_WINDOW = 25


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text())["results"] if path.is_file() else None


def _stats(values: list[float | None]) -> tuple[float, float | None, float, float] | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    sd = statistics.stdev(values) if len(values) > 1 else None
    return statistics.fmean(values), sd, min(values), max(values)


def _cell(values: list[float | None]) -> str:
    s = _stats(values)
    if s is None:
        return "-"
    mean, sd, lo, hi = s
    if sd is None:
        return f"{mean:.3f}"
    return f"{mean:.3f} ± {sd:.3f} [{lo:.3f}, {hi:.3f}]"


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _curve(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows ``[first-last step, mean of each CURVE key]`` over consecutive windows; a key missing from a
    step (no box that step: no GIoU) is left out of that window's mean; keys never logged are left out."""
    steps = [row for row in _read_jsonl(path) if CURVE[0][1] in row]
    keys = [(name, key) for name, key in CURVE if any(key in r for r in steps)]
    rows = []
    for start in range(0, len(steps), CURVE_WINDOW):
        window = steps[start : start + CURVE_WINDOW]
        cells = [f"{window[0]['step']}-{window[-1]['step']}"]
        for _, key in keys:
            values = [r[key] for r in window if isinstance(r.get(key), (int, float))]
            cells.append(f"{statistics.fmean(values):.3f}" if values else "-")
        rows.append(cells)
    return [name for name, _ in keys], rows


def _alarms(run: Path) -> str:
    """The collapse alarms (trainer/alarms.py, default thresholds) replayed over a run's metrics.jsonl."""
    from ground_r1.trainer.alarms import scan

    records = _read_jsonl(run / "metrics.jsonl")
    if not records:
        return "-"
    events = scan(records)
    return ", ".join(f"{e.alarm} @ {e.step}" for e in events) if events else "none"


def _seeds(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("seed*") if p.is_dir())


def _gains(root: Path) -> list[float]:
    """Per seed with both runs evaluated: grounded accuracy - the no-crop RL control's accuracy."""
    out = []
    for seed in _seeds(root):
        g, c = _load(seed / "grounded_eval.json"), _load(seed / "no_crop_eval.json")
        if g and c and "grounded" in g and "no_crop" in c:
            out.append(g["grounded"]["accuracy"] - c["no_crop"]["accuracy"])
    return out


def summary(root: Path) -> str:
    base = _load(root / "base_eval.json")
    seeds = _seeds(root)
    lines = [f"# demo_learning: {len(seeds)} seed(s) ({', '.join(s.name for s in seeds)}); mean ± std [min, max]", ""]
    args = root / "variant_args.txt"
    if args.is_file():
        lines += [f"Training arguments beyond the preset: `{args.read_text().strip()}`", ""]
    grounded = [_load(s / "grounded_eval.json") for s in seeds]
    control = [_load(s / "no_crop_eval.json") for s in seeds]
    gains = _gains(root)
    if gains:
        lines += [
            f"**Gain of the grounded run over the no-crop RL control** (same seed, held-out accuracy): "
            f"{_cell(gains)} over {len(gains)} seed(s).",
            "",
        ]

    rows: list[tuple[str, dict[str, list]]] = []

    def add(label: str, results: list[dict | None], condition: str) -> None:
        found = [r[condition] for r in results if r and condition in r]
        if found:
            rows.append((label, {m: [f.get(m) for f in found] for m in METRICS + REFINE}))

    if base:
        add("base (before RL), grounded", [base], "grounded")
        add("base, no-crop view", [base], "no_crop")
        add("base, ground-truth crop (upper bound)", [base], "gt_crop")
        add("majority answer (accuracy only; no model)", [base], "majority_answer")
        add("whole-image box (GIoU only; no model)", [base], "whole_image_box")
        add("centred box, half the image (GIoU only; no model)", [base], "centre_box")
        add("random box (GIoU only; no model)", [base], "random_box")
    add("after RL, grounded", grounded, "grounded")
    add("after RL, evaluated without crops", grounded, "no_crop")
    add("after RL, ground-truth crop (upper bound)", grounded, "gt_crop")
    add("no-crop RL run (control)", control, "no_crop")

    lines += ["| condition | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for label, values in rows:
        lines.append(f"| {label} | " + " | ".join(_cell(values[m]) for m in METRICS) + " |")
    refine_rows = [(label, v) for label, v in rows if any(x is not None for x in v["refine_twice_frac"])]
    if refine_rows:
        lines += [
            "",
            "Iterative refinement (greedy, held-out): trajectories whose first two grounding turns both "
            "hold a box, and how the second box's GIoU score compares with the first's:",
            "",
            "| condition | boxes twice | second box better | mean gain (second - first) |",
            "|---|---|---|---|",
        ]
        for label, v in refine_rows:
            lines.append(f"| {label} | " + " | ".join(_cell(v[m]) for m in REFINE) + " |")
    lines += [
        "",
        "Collapse alarms (trainer/alarms.py, default thresholds, replayed over each run's metrics.jsonl):",
        "",
    ]
    for seed in seeds:
        for run in ("grounded", "no_crop"):
            if (seed / run / "metrics.jsonl").is_file():
                lines.append(f"- {seed.name}/{run}: {_alarms(seed / run)}")
    for seed in seeds:
        header, curve = _curve(seed / "grounded" / "metrics.jsonl")
        if curve:
            lines += [
                "",
                f"{seed.name}/grounded training, {CURVE_WINDOW}-step means of metrics.jsonl:",
                "",
                "| steps | " + " | ".join(header) + " |",
                "|---|" + "---|" * len(header),
            ]
            lines += ["| " + " | ".join(row) + " |" for row in curve]
    timings = root / "timings.txt"
    if timings.is_file():
        lines += ["", "Run times:", ""] + [f"    {line}" for line in timings.read_text().splitlines()]
    return "\n".join(lines)


def _run_seconds(root: Path) -> list[float]:
    out = []
    for line in (root / "timings.txt").read_text().splitlines() if (root / "timings.txt").is_file() else []:
        if "/grounded:" in line:
            out.append(float(line.split("/grounded:")[1].split(" s")[0]))
    return out


def variants(root: Path) -> str:
    """One row per variant folder (a folder holding seed*/): held-out accuracy of the grounded runs, the no-crop
    control, the gain, GIoU, refinement, training seconds per grounded run."""
    lines = [
        "| variant | seeds | accuracy | every seed | no-crop RL control | gain over control | GIoU | boxes twice | "
        "second box better | s per grounded run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and _seeds(p)):
        seeds = _seeds(folder)
        g = [(_load(s / "grounded_eval.json") or {}).get("grounded") for s in seeds]
        g = [x for x in g if x]
        c = [(_load(s / "no_crop_eval.json") or {}).get("no_crop") for s in seeds]
        c = [x for x in c if x]
        acc = [x["accuracy"] for x in g]
        seconds = _run_seconds(folder)
        lines.append(
            " | ".join(
                [
                    f"| {folder.name}",
                    str(len(g)),
                    _cell(acc),
                    ", ".join(f"{a:.2f}" for a in acc),
                    _cell([x["accuracy"] for x in c]) if c else "not run",
                    _cell(_gains(folder)) if c else "-",
                    _cell([x.get("giou_score") for x in g]),
                    _cell([x.get("refine_twice_frac") for x in g]),
                    _cell([x.get("refine_improved_frac") for x in g]),
                    f"{statistics.fmean(seconds):.0f}" if seconds else "-",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--variants":
        print(variants(Path(argv[1] if len(argv) > 1 else "benchmarks/demo_learning/results")))
        return 0
    print(summary(Path(argv[0] if argv else "benchmarks/demo_learning/results/default")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
