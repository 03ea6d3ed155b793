"""Do two runs agree step for step? Compares two runs' metrics.jsonl (timing keys left out) and, when both have
one, their trajectory galleries (trajectories.jsonl: every sampled turn's text of the logged question).

    .venv/bin/python benchmarks/demo_learning/compare_runs.py RUN_A RUN_B

Prints the number of steps whose every metric logged by both is bit-identical, and the first step and keys that
differ (keys only one run logs, e.g. metrics added since, are listed and set aside). A run
is reproducible when a rerun from a fresh clone agrees at every step (docs/demo.md, "Reproducibility").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TIMING = {"step_time", "train_runtime", "train_samples_per_second", "train_steps_per_second", "epoch", "total_flos"}


def _steps(path: Path) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            if "train_runtime" not in record:
                out[int(record["step"])] = {k: v for k, v in record.items() if k not in TIMING}
    return out


def _gallery(path: Path) -> dict[int, list]:
    out: dict[int, list] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                e = json.loads(line)
                out.setdefault(int(e["step"]), []).append([t["text"] for t in e["turns"]])
    return out


def compare(a: Path, b: Path) -> tuple[int, int | None, list[str], list[str]]:
    """(steps compared, first differing step or None, the keys that differ there, the keys only one run logs).

    Keys logged by one run only (a metric added to the code since the other run) are set aside, not counted as a
    difference: the runs agree when every metric both log is bit-identical."""
    x, y = _steps(a / "metrics.jsonl"), _steps(b / "metrics.jsonl")
    common = sorted(set(x) & set(y))
    one_sided = sorted({k for s in common for k in set(x[s]) ^ set(y[s])})
    for step in common:
        keys = sorted(k for k in set(x[step]) & set(y[step]) if x[step][k] != y[step][k])
        if keys:
            return len(common), step, keys, one_sided
    return len(common), None, [], one_sided


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    a, b = Path(argv[0]), Path(argv[1])
    steps, first, keys, one_sided = compare(a, b)
    if one_sided:
        print(f"metrics.jsonl: {len(one_sided)} key(s) logged by one run only, not compared: " + ", ".join(one_sided))
    if first is None:
        print(f"metrics.jsonl: identical at every one of the {steps} common steps")
    else:
        print(
            f"metrics.jsonl: identical through step {first - 1}; step {first} differs in {len(keys)} key(s): "
            + ", ".join(keys[:8])
            + (" ..." if len(keys) > 8 else "")
        )
    ga, gb = _gallery(a / "trajectories.jsonl"), _gallery(b / "trajectories.jsonl")
    shared = sorted(set(ga) & set(gb))
    if shared:
        same = [s for s in shared if ga[s] == gb[s]]
        differ = [s for s in shared if ga[s] != gb[s]]
        print(
            f"trajectories.jsonl: {len(same)} of {len(shared)} logged steps identical"
            + (f"; first differing step {differ[0]}" if differ else "")
        )
    return 0 if first is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
