"""Convert a downloaded Visual-CoT file (upstream format) into Ground-R1 records JSONL (SPEC §6).

    python -m ground_r1.cli.prepare_viscot --input viscot_benchmark.json --output data/viscot_val.jsonl \\
        --image_root /data/Visual-CoT

Exits 1 (writing nothing) when some items cannot be converted, listing each by line/item number, field and
reason; ``--skip_bad_records`` writes the good ones and the bad list to ``<output>.skipped.jsonl``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ground_r1.data.records import write_issues
from ground_r1.data.viscot import convert_viscot


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ground_r1.cli.prepare_viscot",
        description="Convert the upstream Visual-CoT format (image: [path, 'path###[x1,y1,x2,y2]'], "
        "conversations) into Ground-R1 records (one JSON object per line).",
        allow_abbrev=False,
    )
    parser.add_argument("--input", required=True, help="upstream Visual-CoT file: a JSON list or JSONL")
    parser.add_argument("--output", required=True, help="records JSONL to write")
    parser.add_argument(
        "--image_root",
        default=None,
        help="folder the upstream relative image paths (e.g. cot/docvqa/x.png) live under; used to read "
        "width/height from the images (records whose image is not found are written without them)",
    )
    parser.add_argument(
        "--skip_bad_records",
        action="store_true",
        help="write the convertible items and list the others in <output>.skipped.jsonl instead of failing",
    )
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = convert_viscot(
            args.input,
            args.output,
            image_root=args.image_root,
            progress=not args.no_progress,
            skip_bad_records=args.skip_bad_records,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if report.bad and not args.skip_bad_records:
        print(report.summary(), file=sys.stderr)
        print("Nothing written. Fix these items, or pass --skip_bad_records to convert the rest.", file=sys.stderr)
        return 1
    print(report.summary())
    if report.bad:
        skipped = write_issues(report.bad, f"{args.output}.skipped.jsonl")
        print(f"skipped items listed in {skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
