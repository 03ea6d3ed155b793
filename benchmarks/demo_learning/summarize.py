"""Summarise benchmarks/demo_learning results: held-out greedy metrics before/after RL with the spread over seeds.

    python benchmarks/demo_learning/summarize.py OUT
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

METRICS = ("accuracy", "giou_score", "format", "turns_mean", "answered_frac")
# Training curves: window means of each run's metrics.jsonl (the per-step values are noisy: 4 questions a step).
CURVE = (("accuracy", "rewards/accuracy_reward/mean"), ("format", "rewards/format_reward/mean"),
         ("giou", "giou/score"), ("turns", "rollout/turns_mean"), ("crop fallback", "rollout/crop_fallback_rate"),
         ("zero-std groups", "frac_reward_zero_std"))
CURVE_WINDOW = 25


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text())["results"] if path.is_file() else None


def _cell(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def _curve(path: Path) -> list[list[str]]:
    """Rows ``[first-last step, mean of each CURVE key]`` over consecutive windows; a key missing from a step (no
    box that step: no GIoU) is left out of that window's mean."""
    if not path.is_file():
        return []
    steps = [row for row in map(json.loads, path.read_text().splitlines()) if CURVE[0][1] in row]
    rows = []
    for start in range(0, len(steps), CURVE_WINDOW):
        window = steps[start:start + CURVE_WINDOW]
        cells = [f"{window[0]['step']}-{window[-1]['step']}"]
        for _, key in CURVE:
            values = [r[key] for r in window if r.get(key) is not None]
            cells.append(f"{statistics.fmean(values):.3f}" if values else "-")
        rows.append(cells)
    return rows


def main(out: str) -> int:
    root = Path(out)
    base = _load(root / "base_eval.json")
    seeds = sorted(p for p in root.glob("seed*") if p.is_dir())
    rows: list[tuple[str, dict[str, list[float]]]] = []

    def add(label: str, results: list[dict | None], condition: str) -> None:
        found = [r[condition] for r in results if r and condition in r]
        if found:
            rows.append((label, {m: [f.get(m) for f in found] for m in METRICS}))

    if base:
        add("base (before RL), grounded", [base], "grounded")
        add("base, no-crop view", [base], "no_crop")
        add("base, ground-truth crop (upper bound)", [base], "gt_crop")
        add("random box (GIoU only)", [base], "random_box")
    grounded = [_load(s / "grounded_eval.json") for s in seeds]
    add("after RL, grounded", grounded, "grounded")
    add("after RL, evaluated without crops", grounded, "no_crop")
    add("after RL, ground-truth crop (upper bound)", grounded, "gt_crop")
    add("no-crop RL run (control)", [_load(s / "no_crop_eval.json") for s in seeds], "no_crop")

    print(f"# demo_learning: {len(seeds)} seed(s) ({', '.join(s.name for s in seeds)}); mean ± std [min, max]\n")
    print("| condition | " + " | ".join(METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    for label, values in rows:
        print(f"| {label} | " + " | ".join(_cell(values[m]) for m in METRICS) + " |")
    for seed in seeds:
        curve = _curve(seed / "grounded" / "metrics.jsonl")
        if curve:
            print(f"\n{seed.name}/grounded training, {CURVE_WINDOW}-step means of metrics.jsonl:\n")
            print("| steps | " + " | ".join(name for name, _ in CURVE) + " |")
            print("|---|" + "---|" * len(CURVE))
            for row in curve:
                print("| " + " | ".join(row) + " |")
    timings = root / "timings.txt"
    if timings.is_file():
        print("\nRun times:\n\n" + "".join(f"    {line}" for line in timings.read_text().splitlines(True)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/demo_learning/results"))
