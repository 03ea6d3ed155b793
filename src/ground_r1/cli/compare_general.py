"""One table across general-evaluation runs (``OUTPUT_DIR`` s of ``ground_r1.cli.evaluate --benchmarks ...``), a row per
run with its protocol and ``max_turns``, e.g. the crop loop with 6 and with 12 rounds (issue 18).

    python -m ground_r1.cli.compare_general outputs/eval_general/turns6 outputs/eval_general/turns12 \\
        --output outputs/eval_general/turns.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ground_r1.evaluation.settings_table import read_run, render_settings_markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ground_r1.cli.compare_general", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    parser.add_argument("runs", nargs="+", help="OUTPUT_DIR of each run (holding summary.csv)")
    parser.add_argument("--output", default=None, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    try:
        rows = [row for run in args.runs for row in read_run(run)]
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    table = render_settings_markdown(rows)
    if args.output:
        Path(args.output).write_text(table, encoding="utf-8")
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
