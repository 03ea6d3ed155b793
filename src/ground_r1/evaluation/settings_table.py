"""One table across general-evaluation runs made with different rollout settings (issue 18: more rounds at test
time than in training, e.g. Mini-o3's 6 in training and 12 in evaluation).

Each run (one ``OUTPUT_DIR`` of ``ground_r1.cli.evaluate --benchmarks ...``) holds ``summary.csv`` and, per benchmark,
``inference_config.json`` (the settings the predictions were made with). :func:`read_run` joins them;
:func:`render_settings_markdown` prints one row per (benchmark, metric, rule) and run, with the protocol and
``max_turns`` of the run beside the number, so a setting's effect reads down a column.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["read_run", "render_settings_markdown"]


def read_run(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a run's ``summary.csv``, each with the run's folder, protocol and ``max_turns`` (None when the
    benchmark's folder has no ``inference_config.json``).

    Raises:
        FileNotFoundError: no ``summary.csv`` in ``run_dir`` (the score stage has not run there).
    """
    root = Path(run_dir)
    path = root / "summary.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the table stage of ground_r1.cli.evaluate (--benchmarks) there")
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            config_path = root / row["benchmark"] / "inference_config.json"
            config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
            rows.append(
                {**row, "run": str(root), "protocol": config.get("protocol"), "max_turns": config.get("max_turns")}
            )
    return rows


def render_settings_markdown(rows: list[dict[str, Any]]) -> str:
    """A Markdown table, one row per (benchmark, metric, rule, variant) and run, ordered by ``max_turns``."""

    def order(row: dict[str, Any]) -> tuple:
        turns = row["max_turns"] if isinstance(row["max_turns"], int) else -1
        return row["benchmark"], row["metric"], row["variant"], row["rule"], str(row["protocol"]), turns, row["run"]

    lines = [
        "| Benchmark | Metric | Rule | Protocol | max_turns | Score ± SE | Items | Run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(rows, key=order):
        score = f"{float(row['score']):.1f}" if row["score"] else "n/a"
        score += f" ± {float(row['se']):.1f}" if row.get("se") else " ± n/a"
        rule = ("variant: " if row["variant"] == "yes" else "") + row["rule"]
        crop_loop = row["protocol"] in ("ground_r1", "ground_r1_likelihood")
        turns = str(row["max_turns"]) if crop_loop else "n/a"  # one turn otherwise
        lines.append(
            f"| {row['benchmark']} | {row['metric']} | {rule} | {row['protocol']} | {turns} | {score} | "
            f"{row['items']} | {row['run']} |"
        )
    return "\n".join(lines) + "\n"
