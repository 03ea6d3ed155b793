"""Builders for the bad-input tests (issue 9, part 1): every bad image kind, every bad record kind, in ONE
JSONL with good records, plus the one trainer run that both tests/data/test_bad_inputs.py and
tests/test_secrets_and_safety.py inspect (a training run is the expensive part: it is run once per session).

Each image kind is made with PIL in a temporary folder; each record says what the loader must decide:
``expected=None`` (valid: it loads) or ``{field: reason substring}`` (bad: reported with ``file:line: field``);
a valid record may carry ``box_note`` (an unusable evidence box, dropped and named: the box is only a metric).
The policy per kind (which are converted and which are bad) is the one documented in
``ground_r1.data.images`` and ``ground_r1.data.records``.
"""

from __future__ import annotations

import functools
import json
import os
import struct
import subprocess
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
DATA_FILE = "bad_and_good.jsonl"

# Distinctive fake secrets put in the environment of the training run (tests/test_secrets_and_safety.py greps
# every file it produces for them). None is a real credential.
SECRET_ENV = {
    "OPENAI_API_KEY": "sk-h9a-env-OPENAI-4f1c9e",
    "HF_TOKEN": "hf_h9aEnvHubToken7d2b",
    "WANDB_API_KEY": "h9a-env-wandb-0a93c1",
}
SECRET_IN_FILE = "sk-h9a-file-OPENAI-b83e27"


# ----------------------------------------------------------------------------------------------- images


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that *claims* width x height (8-bit gray) but holds ~100 bytes of pixel data: the decompression-bomb
    shape (a 20000x20000 header costs 400 MB to decode). Opening it must not decode or allocate anything."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 100))
        + _png_chunk(b"IEND", b"")
    )
    return path


def _noise(size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _truncated(path: Path, image: Image.Image) -> Path:
    """Save, then keep the first half of the bytes (an interrupted download)."""
    image.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _exif_rotated(path: Path) -> Path:
    # 40x20 stored, white stripe on its left 10 columns, EXIF orientation 6 ("rotate 90 CW to display"):
    # displayed 20x40 with the stripe along the top.
    im = Image.new("RGB", (40, 20), (0, 0, 0))
    im.paste((255, 255, 255), (0, 0, 10, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(path, exif=exif, quality=95)
    return path


def _la(path: Path) -> Path:
    im = Image.new("LA", (64, 48), (0, 0))  # fully transparent
    im.paste((100, 255), (32, 0, 64, 48))  # right half opaque gray 100
    im.save(path)
    return path


def _rgba(path: Path) -> Path:
    im = Image.new("RGBA", (64, 48), (0, 0, 0, 0))
    im.paste((10, 20, 30, 255), (0, 24, 64, 48))  # bottom half opaque
    im.save(path)
    return path


def _palette(path: Path) -> Path:
    im = Image.new("P", (64, 48), 0)
    im.putpalette([200, 0, 0, 0, 0, 200] + [0] * 762)
    im.paste(1, (0, 0, 32, 48))  # left half index 1 (blue); right half index 0, made transparent
    im.save(path, transparency=0)
    return path


# name -> builder(path). Valid kinds first, then bad ones.
IMAGE_BUILDERS: dict[str, Callable[[Path], Any]] = {
    "rgb.jpg": lambda p: Image.new("RGB", (64, 48), (120, 60, 30)).save(p, quality=95),
    "gray_L.png": lambda p: Image.new("L", (64, 48), 77).save(p),
    "gray_alpha_LA.png": _la,
    "rgba.png": _rgba,
    "palette_transparent.png": _palette,
    "cmyk.jpg": lambda p: Image.new("CMYK", (64, 48), (0, 255, 0, 0)).save(p, quality=95),
    "gray16.png": lambda p: Image.fromarray(np.full((48, 64), 40000, dtype=np.uint16)).save(p),
    "exif6.jpg": _exif_rotated,
    "tiny.png": lambda p: Image.new("RGB", (10, 10), (1, 2, 3)).save(p),
    # bad
    "corrupt.jpg": lambda p: p.write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8))),
    "truncated.png": lambda p: _truncated(p, _noise((64, 64))),
    "truncated.jpg": lambda p: _truncated(p, _noise((64, 64))),
    "empty.jpg": lambda p: p.write_bytes(b""),
    "bomb.png": lambda p: png_header_only(p, 20000, 20000),  # > 2 x MAX_IMAGE_PIXELS: PIL raises itself
    "big.png": lambda p: png_header_only(p, 10000, 9000),  # 90M px: PIL warns, under our limit (not in a record)
    "thin.png": lambda p: Image.new("RGB", (300, 1)).save(p),  # aspect ratio 300 > 200: smart_resize refuses
    "a_directory.png": lambda p: p.mkdir(),
}


def make_images(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, build in IMAGE_BUILDERS.items():
        build(root / name)
    return root


# ---------------------------------------------------------------------------------------------- records


@dataclass
class Case:
    """One line of the JSONL: a record (dict) or raw text, and what the loader must decide about it."""

    name: str
    line: Any
    expected: dict[str, str] | None = None  # None: valid; else field -> reason substring
    image_check: Callable[[Image.Image], None] | None = None  # for valid records: what load_image must return
    box_note: dict[str, str] | None = None  # valid records: field -> reason substring of each dropped box


def _rec(image: str, **over: Any) -> dict:
    rec = {
        "image": image,
        "problem": "What is written?",
        "solution": "the answer",
        "dataset": "docvqa",
        "bboxs": [[2, 2, 30, 20]],
    }
    rec.update(over)
    return rec


def _px(image: Image.Image, xy: tuple[int, int]) -> tuple[int, int, int]:
    return image.getpixel(xy)


def _close(actual: tuple[int, ...], expected: tuple[int, ...], tol: int = 2) -> bool:
    return all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))


def _check_rgb(im):  # JPEG of a flat colour: within 2 of what was saved
    assert (im.mode, im.size) == ("RGB", (64, 48)) and _close(_px(im, (5, 5)), (120, 60, 30))


def _check_gray(im):
    assert (im.mode, im.size, _px(im, (63, 47))) == ("RGB", (64, 48), (77, 77, 77))


def _check_la(im):  # transparent left half -> white; opaque right half -> its gray
    assert (im.mode, im.size) == ("RGB", (64, 48))
    assert (_px(im, (0, 0)), _px(im, (40, 10))) == ((255, 255, 255), (100, 100, 100))


def _check_rgba(im):
    assert (im.mode, im.size) == ("RGB", (64, 48))
    assert (_px(im, (5, 5)), _px(im, (5, 30))) == ((255, 255, 255), (10, 20, 30))


def _check_palette(im):  # index 1 = (0, 0, 200); index 0 transparent -> white
    assert (im.mode, im.size) == ("RGB", (64, 48))
    assert (_px(im, (5, 5)), _px(im, (50, 5))) == ((0, 0, 200), (255, 255, 255))


def _check_cmyk(im):  # PIL's CMYK -> RGB: R = 255 - C - K, G = 255 - M - K, B = 255 - Y - K -> magenta
    assert (im.mode, im.size) == ("RGB", (64, 48)) and _close(_px(im, (30, 30)), (255, 0, 255))


def _check_gray16(im):  # 40000 / 257 = 155.6 -> 156 (PIL's own convert clips 16-bit to 255: a white image)
    assert (im.mode, im.size, _px(im, (0, 0))) == ("RGB", (64, 48), (156, 156, 156))


def _check_exif6(im):  # 40x20 rotated 90 CW -> 20x40, the left stripe is now at the top
    assert (im.mode, im.size) == ("RGB", (20, 40))
    assert _px(im, (10, 2))[0] > 200 and _px(im, (10, 37))[0] < 50


def _check_tiny(im):
    assert (im.mode, im.size, _px(im, (9, 9))) == ("RGB", (10, 10), (1, 2, 3))


NOT_FOUND = "image file not found"
UNKNOWN = "unknown sub-dataset"


def cases() -> list[Case]:
    """Every line of the file, in order (line k of the file is cases()[k-1])."""
    return [
        # -- valid: every unusual image mode is converted to RGB (SPEC §2: the model sees RGB)
        Case("rgb", _rec("rgb.jpg"), image_check=_check_rgb),
        Case("gray L", _rec("gray_L.png", dataset="textvqa"), image_check=_check_gray),
        Case("gray+alpha LA", _rec("gray_alpha_LA.png", dataset="vsr", solution="yes"), image_check=_check_la),
        Case(
            "RGBA",
            _rec("rgba.png", dataset="gqa", solution="<answer>B</answer>", problem="Which?\nA. one\nB. two"),
            image_check=_check_rgba,
        ),
        Case(
            "palette + transparency",
            _rec("palette_transparent.png", dataset="cub", solution="no"),
            image_check=_check_palette,
        ),
        Case("CMYK JPEG", _rec("cmyk.jpg", dataset="flickr30k", solution="a magenta square"), image_check=_check_cmyk),
        Case("16-bit gray", _rec("gray16.png", dataset="sroie"), image_check=_check_gray16),
        Case("EXIF orientation 6", _rec("exif6.jpg", bboxs=[[0, 0, 20, 10]]), image_check=_check_exif6),
        Case("tiny 10x10 (upscaled by smart_resize)", _rec("tiny.png", bboxs=[[1, 1, 9, 9]]), image_check=_check_tiny),
        Case(
            "box partly outside (kept as stored)", _rec("rgb.jpg", bboxs=[[-5, 0, 100, 30.5]]), image_check=_check_rgb
        ),
        # -- bad images
        Case("corrupt bytes", _rec("corrupt.jpg"), {"image": "not a recognised image format"}),
        Case("truncated PNG", _rec("truncated.png"), {"image": "corrupt or truncated image data"}),
        Case("truncated JPEG", _rec("truncated.jpg"), {"image": "corrupt or truncated image data"}),
        Case("zero-byte file", _rec("empty.jpg"), {"image": "empty file (0 bytes)"}),
        Case("20000x20000 header (bomb)", _rec("bomb.png"), {"image": "decompression-bomb limit"}),
        Case("aspect ratio 300", _rec("thin.png", bboxs=[]), {"image": "aspect ratio must be smaller than 200"}),
        Case("missing file", _rec("no_such_image.jpg"), {"image": NOT_FOUND}),
        Case("a directory", _rec("a_directory.png"), {"image": "is a directory"}),
        # -- bad records
        Case(
            "missing problem",
            {k: v for k, v in _rec("rgb.jpg").items() if k != "problem"},
            {"problem": "missing required field"},
        ),
        Case(
            "missing image",
            {k: v for k, v in _rec("rgb.jpg").items() if k != "image"},
            {"image": "missing required field"},
        ),
        Case("problem is a number", _rec("rgb.jpg", problem=42), {"problem": "expected a string, got int"}),
        Case("empty answer", _rec("rgb.jpg", solution="<answer> </answer>"), {"solution": "empty answer"}),
        Case("width is a string", _rec("rgb.jpg", width="wide"), {"width": "expected a positive integer"}),
        # -- unusable evidence boxes: the record is kept (the box only measures the model's boxes), the box named
        Case(
            "bboxs is a string",
            _rec("rgb.jpg", bboxs="2,2,30,20"),
            image_check=_check_rgb,
            box_note={"bboxs": "expected a list of"},
        ),
        Case(
            "box of 3 numbers",
            _rec("rgb.jpg", bboxs=[[1, 2, 3]]),
            image_check=_check_rgb,
            box_note={"bboxs[0]": "expected 4 finite numbers"},
        ),
        Case(
            "box with NaN",
            _rec("rgb.jpg", bboxs=[[0, 0, float("nan"), 5]]),
            image_check=_check_rgb,
            box_note={"bboxs[0]": "got [0, 0, NaN, 5]"},
        ),
        Case(
            "box outside the image",
            _rec("rgb.jpg", bboxs=[[100, 0, 150, 20]]),
            image_check=_check_rgb,
            box_note={"bboxs[0]": "lies entirely outside the 64x48 image"},
        ),
        Case(
            "inverted box",
            _rec("rgb.jpg", bboxs=[[30, 20, 2, 2]]),
            image_check=_check_rgb,
            box_note={"bboxs[0]": "empty or inverted box"},
        ),
        Case("unknown dataset", _rec("rgb.jpg", dataset="DocVQA"), {"dataset": "did you mean 'docvqa'?"}),
        Case("no rule (emotic) in training", _rec("rgb.jpg", dataset="emotic"), {"dataset": UNKNOWN}),
        Case("invalid JSON", '{"image": "rgb.jpg", "problem": ', {"json": "invalid JSON"}),
        Case("not an object", "[1, 2, 3]", {"record": "expected a JSON object, got list"}),
        Case("not UTF-8", b'{"image": "rgb.jpg", "problem": "caf\xe9"}', {"json": "not valid UTF-8"}),
        Case("nested too deeply", "[" * 100_000 + "]" * 100_000, {"json": "nested too deeply"}),
        # -- valid again, after the bad ones (the loader goes on)
        Case("no evidence box", _rec("gray_L.png", bboxs=[]), image_check=_check_gray),
    ]


@dataclass
class BadData:
    root: Path  # image folder (image_root)
    path: Path  # the JSONL
    cases: list[Case] = field(default_factory=list)

    @property
    def bad_lines(self) -> dict[int, dict[str, str]]:
        return {i: c.expected for i, c in enumerate(self.cases, start=1) if c.expected is not None}

    @property
    def box_note_lines(self) -> dict[int, dict[str, str]]:
        return {i: c.box_note for i, c in enumerate(self.cases, start=1) if c.box_note is not None}

    @property
    def good_lines(self) -> list[int]:
        return [i for i, c in enumerate(self.cases, start=1) if c.expected is None]

    def key(self, line: int) -> str:
        return f"{self.path.name}:{line}"


def write_bad_data(root: Path) -> BadData:
    """The images and the one JSONL (a line per case) under ``root``."""
    make_images(root / "images")
    all_cases = cases()
    path = root / DATA_FILE
    with path.open("wb") as fh:
        for case in all_cases:
            line = case.line
            if isinstance(line, dict):
                line = json.dumps(line)  # NaN is written as the bare token NaN, which json.loads reads back
            fh.write((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n")
    return BadData(root=root / "images", path=path, cases=all_cases)


def training_known_datasets() -> list[str]:
    """What the trainer passes as known_datasets: the registry's names that have a rule (cli/train_grpo.py)."""
    from ground_r1.rewards.registry import DEFAULT_REGISTRY

    return [d for d in DEFAULT_REGISTRY.known_datasets() if DEFAULT_REGISTRY.has_rule(d)]


# ---------------------------------------------------------------------------------------- the trainer run


def small_run_args(data: BadData) -> list[str]:
    """The tiny CPU preset made small: N = 2 trajectories (G1 = 1), every good record in one step (per-device
    batch = 2 x good records, so each converted image kind goes through a rollout), 2 turns of 16 tokens."""
    return [
        "--num_generations",
        "2",
        "--num_first_round_samples",
        "1",
        "--per_device_train_batch_size",
        str(2 * len(data.good_lines)),
        "--max_turns",
        "2",
        "--max_new_tokens_per_turn",
        "16",
        "--max_completion_length",
        "512",
        "--save_steps",
        "1",
    ]


def launch_training(
    data: BadData, output_dir: Path, cwd: Path, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``scripts/run_grpo_video.sh`` (the pattern of tests/launchers/test_train_launcher.py) on the bad-data
    file, one step of the tiny CPU preset."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "CONFIG": str(REPO / "configs" / "grpo" / "tiny_cpu.yaml"),
        "MAX_STEPS": "1",
        "DATA_PATH": str(data.path),
        "IMAGE_ROOT": str(data.root),
        "OUTPUT_DIR": str(output_dir),
        **(extra_env or {}),
    }
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "run_grpo_video.sh"), *small_run_args(data), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@dataclass
class TrainRun:
    data: BadData
    output_dir: Path
    key_file: Path
    proc: subprocess.CompletedProcess


@functools.lru_cache(maxsize=1)
def _train_once(base: str) -> TrainRun:
    base_dir = Path(base)
    data = write_bad_data(base_dir / "data")
    key_file = base_dir / "secrets" / "openai_key.txt"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(SECRET_IN_FILE + "\n")
    out = base_dir / "run"
    # question_reward_log writes the key of every record a step trained on: the test checks all good ones were.
    proc = launch_training(
        data,
        out,
        base_dir,
        "--skip_bad_records",
        "true",
        "--question_reward_log",
        "true",
        extra_env={**SECRET_ENV, "OPENAI_API_KEY_FILE": str(key_file)},
    )
    return TrainRun(data=data, output_dir=out, key_file=key_file, proc=proc)


def train_with_skip_bad_records(tmp_path_factory) -> TrainRun:
    """The trainer launcher on the bad-data file with ``--skip_bad_records``, fake secrets in its environment:
    run once per test session (tests/data/test_bad_inputs.py and tests/test_secrets_and_safety.py share it)."""
    return _train_once(str(tmp_path_factory.getbasetemp() / "bad_inputs_train"))
