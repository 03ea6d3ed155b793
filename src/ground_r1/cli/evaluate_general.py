"""The general LVLM benchmarks' evaluation command: ``python -m ground_r1.cli.evaluate`` with ``--benchmarks all``.

    python -m ground_r1.cli.evaluate_general --protocol ground_r1 --model_path CKPT \\
        --dataset_root Ground-R1/eval_general_dataset/dataset --image_root /data/LVLM_benchmarks --output_dir out/general

An alias kept for the commands written before evaluation was one pipeline: every flag is the evaluation CLI's
(``--help`` lists them), ``--benchmarks`` defaults to ``all`` (SPEC §7's general set), and its old names still
work: ``--protocol direct`` is ``baseline``, the ``grade`` stage and ``--grade`` / ``--no-grade`` are the judge's,
and a ``score`` stage writes the summary too (the ``table`` stage of the one pipeline).
"""

from __future__ import annotations

import sys

from ground_r1.cli import evaluate

__all__ = ["build_parser", "main"]


def build_parser():
    return evaluate.build_parser(prog="python -m ground_r1.cli.evaluate_general", default_benchmarks="all")


def _old_stages(argv: list[str]) -> list[str]:
    """``--stages`` as this command meant it: its ``score`` stage wrote the summary (now the ``table`` stage)."""
    out = list(argv)
    for i, arg in enumerate(out):
        value = out[i + 1] if arg == "--stages" and i + 1 < len(out) else arg.partition("=")[2]
        if arg == "--stages" or arg.startswith("--stages="):
            names = [s.strip() for s in value.split(",") if s.strip()]
            if "score" in names and "table" not in names:
                names.append("table")
            if arg == "--stages":
                out[i + 1] = ",".join(names)
            else:
                out[i] = "--stages=" + ",".join(names)
    return out


def main(argv: list[str] | None = None) -> int:
    return evaluate.main(_old_stages(sys.argv[1:] if argv is None else argv), parser=build_parser())


if __name__ == "__main__":
    sys.exit(main())
