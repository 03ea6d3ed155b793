"""Build the SFT ablation sets (SPEC §8) from a VisCoT records JSONL: ``vanilla.jsonl``, ``ground.jsonl``, crops.

    python -m ground_r1.cli.prepare_sft_data --data_path viscot_train.jsonl --output_dir outputs/sft_data \\
        --image_root /data/Visual-CoT [--image_path_prefix /home/meng/data/Visual-CoT] [--config configs/sft/ground.yaml]

Without ``--data_path`` it prepares the built-in synthetic zoom data. The min/max pixels that define the input
frame of the Ground SFT box targets come from ``--min_pixels/--max_pixels``, else from the ``--config`` preset
(its ``min_pixels``/``max_pixels`` keys), else the release's 3136 / 401408. Train with the same values.
Rerunning is cheap: crops already cut are reused (see ``ground_r1.sft.data``).

Exits 1 (no JSONL written) when records are bad, listing each as ``file:line: field: message``;
``--skip_bad_records`` writes the good ones and lists the bad ones in ``<output_dir>/skipped_records.jsonl``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ground_r1.data.images import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    add_max_image_pixels_argument,
    set_max_image_pixels,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ground_r1.cli.prepare_sft_data",
        description="Build Vanilla SFT and Ground SFT data (SPEC §8) from VisCoT records.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--data_path", default=None, help="VisCoT records JSONL (default: the built-in synthetic zoom data)"
    )
    parser.add_argument(
        "--output_dir", required=True, help="folder for vanilla.jsonl, ground.jsonl, crops/, sft_data.json"
    )
    parser.add_argument(
        "--image_root",
        default=None,
        help="folder relative image paths resolve against (default: the data file's folder)",
    )
    parser.add_argument(
        "--image_path_prefix", default=None, help="prefix of the records' absolute image paths to replace by image_root"
    )
    parser.add_argument("--config", default=None, help="SFT preset YAML to read min_pixels/max_pixels from")
    parser.add_argument(
        "--min_pixels",
        type=int,
        default=None,
        help=f"image processor min_pixels (default: the preset's, else {DEFAULT_MIN_PIXELS})",
    )
    parser.add_argument(
        "--max_pixels",
        type=int,
        default=None,
        help=f"image processor max_pixels (default: the preset's, else {DEFAULT_MAX_PIXELS})",
    )
    parser.add_argument(
        "--min_crop_size",
        type=int,
        default=28,
        help="crops are widened to at least this many pixels a side (SPEC §8: 28)",
    )
    parser.add_argument(
        "--coordinates",
        choices=("input_pixels", "relative_1000"),
        default=None,
        help="box convention of the Ground SFT targets (default: the family of --model_path, else "
        "input_pixels, Qwen2.5-VL's); relative_1000 for Qwen2-VL / Qwen3-VL / Qwen3.5",
    )
    parser.add_argument(
        "--model_path",
        default=None,
        help="the checkpoint the data is for: its config.json model_type gives the default --coordinates",
    )
    parser.add_argument("--max_records", type=int, default=None, help="only the first N records")
    parser.add_argument("--skip_bad_records", action="store_true", help="skip bad records instead of failing")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    add_max_image_pixels_argument(parser)
    return parser


def pixel_bounds(args: argparse.Namespace) -> tuple[int, int]:
    """(min_pixels, max_pixels): the flags, else the preset's keys, else the release's values."""
    preset: dict = {}
    if args.config:
        import yaml

        with open(args.config, encoding="utf-8") as fh:
            preset = yaml.safe_load(fh) or {}
    min_pixels = args.min_pixels if args.min_pixels is not None else int(preset.get("min_pixels", DEFAULT_MIN_PIXELS))
    max_pixels = args.max_pixels if args.max_pixels is not None else int(preset.get("max_pixels", DEFAULT_MAX_PIXELS))
    return min_pixels, max_pixels


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from ground_r1.data.records import RecordValidationError
    from ground_r1.sft.data import prepare_sft_data

    data_path, image_root = args.data_path, args.image_root
    if data_path is None:
        from ground_r1.demo.synthetic import ensure_default_dataset

        folder = ensure_default_dataset()
        data_path = str(folder / "train.jsonl")
        print(f"no --data_path: preparing the built-in synthetic zoom data ({data_path})")
    if image_root is None:
        image_root = str(Path(data_path).absolute().parent)
    try:
        set_max_image_pixels(args.max_image_pixels)
        min_pixels, max_pixels = pixel_bounds(args)
        coordinates = args.coordinates
        if coordinates is None:
            from ground_r1.models.families import family_of_checkpoint

            coordinates = family_of_checkpoint(args.model_path).coordinates if args.model_path else "input_pixels"
        report = prepare_sft_data(
            data_path,
            args.output_dir,
            image_root=image_root,
            path_prefix=args.image_path_prefix,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
            min_crop_size=args.min_crop_size,
            skip_bad_records=args.skip_bad_records,
            max_records=args.max_records,
            progress=not args.no_progress,
            coordinates=coordinates,
        )
    except RecordValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("No SFT data written.", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    print(
        f"min_pixels={min_pixels} max_pixels={max_pixels}, boxes in {coordinates}: train Ground SFT with the same values"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
