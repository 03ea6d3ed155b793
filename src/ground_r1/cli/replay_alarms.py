"""Replay the collapse alarms (ground_r1.trainer.alarms) over a finished or running run's metrics.jsonl."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from ground_r1.trainer.alarms import AlarmSettings, metric_series, report_line, scan


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m ground_r1.cli.replay_alarms RUN_DIR_OR_METRICS_JSONL [--window W]`: replay the alarms (default
    thresholds) over a run's metrics.jsonl and print each firing."""
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m ground_r1.cli.replay_alarms", description=main.__doc__, allow_abbrev=False
    )
    p.add_argument("run", help="a run folder (its metrics.jsonl) or a metrics.jsonl file")
    defaults = AlarmSettings()
    for name in ("window", "min_turns", "length_ratio", "max_zero_std", "format_drop", "no_box_rise"):
        p.add_argument(f"--{name}", type=type(getattr(defaults, name)), default=getattr(defaults, name))
    args = p.parse_args(argv)
    path = Path(args.run)
    path = path / "metrics.jsonl" if path.is_dir() else path
    if not path.is_file():
        print(f"{path}: no such metrics.jsonl", file=sys.stderr)
        return 1
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    settings = AlarmSettings(**{k: getattr(args, k) for k in asdict(defaults)})
    events = scan(records, settings)
    for event in events:
        print(event.message)
    print(report_line(events, len(metric_series(records, "loss")) or None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
