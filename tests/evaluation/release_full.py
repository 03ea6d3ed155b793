"""Placeholder image trees for the release's whole evaluation files (shared/data/release-full, read in place).

The release keeps the general benchmarks' JSONL files in its repository's ``eval_general_dataset/dataset/`` and
reads each benchmark's images from ``LVLM_benchmarks/{NAME}/`` (the downloaded zip). :func:`build` makes, under
``root``:

- ``LVLM_benchmarks/{NAME}/...``: one placeholder per ``Image`` of each general benchmark file (the release's
  layout: ``DATASET_ROOT`` = the release-full folder itself, ``IMAGE_ROOT`` = this folder);
- ``ours/``: our layout, ``{NAME}.jsonl`` (a link to the release file) beside ``{NAME}/`` (a link to the images);
- ``Visual-CoT/...``: the VisCoT benchmark's images at the records' own sizes, under the authors' path with its
  prefix ``/home/meng/data/Visual-CoT`` replaced by this folder (``IMAGE_PATH_PREFIX``);
- ``refcoco/RefCOCO*/...``: the RefCOCO subset's images.

``decodable=False`` writes PNG headers of the right size with an empty pixel stream (the loaders read headers
only: cheap, for tests); ``decodable=True`` writes real 1-bit PNGs of that size (for end-to-end inference).

    python tests/evaluation/release_full.py /tmp/release_layout --decodable
"""

from __future__ import annotations

import json
import os
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

GENERAL = ("MME", "POPE", "SEED_Bench", "MMBench_en_dev", "MMMU_val", "MME_RealWorld_Lite", "RealworldQA", "MMVet")
VISCOT_FILE = "visualCoT_eval_subset150_choice.jsonl"
REFCOCO_FILE = "RefCOCO_eval_subset_1000.jsonl"
VISCOT_PREFIX = "/home/meng/data/Visual-CoT"
RECORDS = {
    "MME": 2374,
    "POPE": 9000,
    "SEED_Bench": 14233,
    "MMBench_en_dev": 4329,
    "MMMU_val": 900,
    "MME_RealWorld_Lite": 1919,
    "RealworldQA": 765,
    "MMVet": 218,
    "VisCoT": 1950,
    "RefCOCO": 8000,
}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header(width: int, height: int) -> bytes:
    """A complete PNG chunk list (IHDR, a tiny IDAT, IEND) claiming ``width`` x ``height``: its header and end
    read as any PNG's; its pixels do not decode (they are not there)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 8))
        + _chunk(b"IEND", b"")
    )


def _small_png() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _records(path: Path):
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


@dataclass(frozen=True)
class Layout:
    release_dir: Path  # the release's JSONL files (read in place)
    image_root: Path  # LVLM_benchmarks: IMAGE_ROOT/{NAME}/
    ours: Path  # our layout: {NAME}.jsonl + {NAME}/
    viscot_images: Path  # IMAGE_ROOT of the VisCoT benchmark (IMAGE_PATH_PREFIX = VISCOT_PREFIX)
    refcoco_images: Path


def build(release_dir: Path, root: Path, *, decodable: bool = False) -> Layout:
    """The trees of the module docstring under ``root`` (idempotent: existing files are kept)."""
    small = _small_png()
    lvlm, ours = root / "LVLM_benchmarks", root / "ours"
    for name in GENERAL:
        for record in _records(release_dir / f"{name}.jsonl"):
            for rel in record["Image"] if isinstance(record["Image"], list) else [record["Image"]]:
                path = lvlm / name / rel
                _write(path if path.suffix else path.with_name(path.name + ".jpg"), small)
        ours.mkdir(parents=True, exist_ok=True)
        for link, target in ((ours / f"{name}.jsonl", release_dir / f"{name}.jsonl"), (ours / name, lvlm / name)):
            if not link.is_symlink():
                link.symlink_to(target)
    viscot = root / "Visual-CoT"
    sizes: dict[str, tuple[int, int]] = {}
    for record in _records(release_dir / VISCOT_FILE):
        size = (record["width"], record["height"])
        assert sizes.setdefault(record["image"], size) == size, record["image"]
        path = viscot / os.path.relpath(record["image"], VISCOT_PREFIX)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            if decodable:
                Image.new("1", size, 1).save(path, format="PNG")
            else:
                path.write_bytes(png_header(*size))
    refcoco = root / "refcoco"
    for record in _records(release_dir / REFCOCO_FILE):
        _write(refcoco / record["image"], small if decodable else png_header(record["width"], record["height"]))
    return Layout(release_dir, lvlm, ours, viscot, refcoco)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    from ground_r1 import paths

    shared = paths.shared_dir()
    layout = build(shared / "data" / "release-full", Path(sys.argv[1]), decodable="--decodable" in sys.argv)
    print(layout)
