"""Synthetic zoom-in task: the embedded default dataset (the CPU demo trains on it).

Why it exists: Ground-R1 (SPEC §1) rewards answers only, so a task on which grounding *pays* must hold an
answer that is blended away in the model's resized view of the whole image but plain in a crop of the
original pixels (SPEC §2 "a real zoom-in"). Each scene holds several referents of distinct kinds, so the
*question* decides where to look: the policy must choose a region, not transfer one fixed crop.

The scene (all sizes in original pixels, every knob in `SyntheticConfig`):

- a canvas (448 x 448) with a dark background, optionally with per-pixel noise;
- K cards (3), placed without overlap and at least `min_gap` pixels apart. A card is a filled rectangle
  whose **fill colour is its kind** ("orange", "purple", "cyan", "magenta"): a large saturated region,
  which survives the resize to the model view (probe on the tiny model: a colour region is learnable);
- in the centre of each card, a white label holding the **detail**: a dot whose colour comes from a
  separate palette ("red", "green", "blue", "yellow"). The two palettes share no name and the dot sits on
  white, never on the card fill, so "the yellow dot in the orange card" is never ambiguous.

Question "What colour is the dot inside the {kind} card?", answer the dot's colour name, evidence box
`bboxs[0]` = the target card (used only to measure GIoU, never as a reward, SPEC §1/§3). With
`unique_details` (default) the K dots have K different colours, so reading the wrong card is wrong.

Why the dot is small (defaults 5-6 px). The tiny model sees a 112-px view (`demo.tiny`, max_pixels
112 x 112), so the 448 canvas shrinks 4x and a d-px dot covers d/4 view pixels: in that view the dot is
blended into its white label (the view pixel at its centre is 30-200 RGB units from the dot's colour, median
101), while 10-14 px dots (the earlier probe's 12 px) come through at exactly their colour. A crop of the card
(48-96 px) resized to 112 px magnifies 1.2-2.3x and shows the dot at its true colour. Blended is not erased:
`benchmarks/demo_learning/view_probe.py` rebuilds the view from the processor's own output (its resize is PIL
bicubic) and finds that the nearest of the 4 dot colours to the view pixel at a dot's centre is the dot's
colour for 95.2% of 600 held-out dots (96% of the asked dots of the benchmark's 100 held-out questions; 83.5%
under PIL's bilinear resize, the first measurement's 86%), and for 100% in a crop of the card. So a reader
that knows where the dot is can answer from the whole view; the crop makes it certain, and the tiny model
does not manage the former (its no-crop RL runs end at 0.21-0.26, below the majority answer's 0.28).
Smaller dots or a larger canvas per view pixel push the view figure down. `view_side` states the view the task is designed against; a config whose dot exceeds 1.5 view
pixels is accepted with a warning.

Records follow SPEC §6 (VisCoT flat records). `image` is a path **relative to the JSONL's folder**
(`images/train_000000.png`): a loader resolves it with the JSONL's folder as image root, so a dataset
folder can be moved or cached as a whole. No `input_width/height` (computed by the loader from the
processor, SPEC §2). `dataset` is "zoom_synthetic" (exact-match accuracy in the rewards registry).

Determinism: record i of a split is drawn from its own generator `record_rng(seed, split, i)`, so it does
not depend on how many records are written, and the same seed gives byte-identical JSONL and PNG files.

Also here, for a later instruct-model recipe (not the zoom questions): `make_grounding_example` ("Locate
the {kind} card ..." -> its box) and `make_crop_reading_example` (a native-resolution crop of one card ->
its dot colour). Both return `(PIL.Image, dict)` so a recipe can stream them.

CLI: ``python -m ground_r1.demo.synthetic OUT_DIR [--num_train N --num_eval M --seed S ...]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import hashlib
import json
import logging
import os
import shutil
import sys
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ground_r1 import paths

logger = logging.getLogger(__name__)

DATASET_NAME = "zoom_synthetic"
# Bump when the drawing or the record layout changes: it is part of the cache key of `ensure_default_dataset`.
GENERATOR_VERSION = 1
STAMP_NAME = "COMPLETE"

RGB = tuple[int, int, int]
Box = tuple[int, int, int, int]

# Card kinds: saturated fills, far apart in hue, none named like a detail colour.
KIND_PALETTE: dict[str, RGB] = {
    "orange": (255, 140, 0),
    "purple": (140, 60, 230),
    "cyan": (0, 210, 230),
    "magenta": (235, 0, 200),
    "gray": (150, 150, 150),
    "brown": (150, 90, 40),
}
# Detail (dot) colours: pairwise >= 175 RGB units apart (Euclidean) and >= 250 from the white label.
DETAIL_PALETTE: dict[str, RGB] = {
    "red": (220, 20, 20),
    "green": (20, 170, 40),
    "blue": (30, 60, 235),
    "yellow": (245, 210, 0),
    "black": (0, 0, 0),
}
LABEL_RGB: RGB = (255, 255, 255)
IMAGE_FORMATS = {"png": "PNG", "bmp": "BMP"}  # lossless only: a lossy codec would smear the detail
MAX_OPTIONS = 4  # letters A-D, what the letter handler reads (SPEC §3)
_OPTION_LETTERS = "ABCD"


@dataclass(frozen=True)
class SyntheticConfig:
    """Every knob of the zoom task. Sizes in original pixels; ranges are inclusive (min, max).

    Scene:
        canvas_width, canvas_height: the original image size.
        view_side: side of the model's view the task is designed against (tiny model: 112); only used to
            warn when the dot would be legible without zooming.
        num_referents: cards per scene (K); one is the question's target.
        card_size_range: card side; `square_cards=False` draws width and height independently.
        dot_size_range: diameter of the detail dot.
        min_gap: minimum distance between cards (and distractor dots).
        kinds / details: names from KIND_PALETTE / DETAIL_PALETTE (card kinds / dot colours).
        unique_details: the K dots of a scene get K different colours.
        background_rgb, background_noise: background colour and per-pixel uniform noise amplitude (0-255;
            noise makes PNGs much larger).
        num_distractor_dots: dots of detail colours scattered on the background, outside cards.
    Questions:
        multiple_choice: append the colour options as "\\nA. red\\nB. ..." and answer "<answer>B</answer>".
    Output:
        seed, num_records (per `write_zoom_dataset` call), image_format ("png" or "bmp").
    """

    seed: int = 0
    num_records: int = 64
    canvas_width: int = 448
    canvas_height: int = 448
    view_side: int = 112
    num_referents: int = 3
    card_size_range: tuple[int, int] = (48, 96)
    square_cards: bool = True
    dot_size_range: tuple[int, int] = (5, 6)
    min_gap: int = 8
    kinds: tuple[str, ...] = ("orange", "purple", "cyan", "magenta")
    details: tuple[str, ...] = ("red", "green", "blue", "yellow")
    unique_details: bool = True
    background_rgb: tuple[int, int, int] = (24, 26, 32)
    background_noise: int = 0
    num_distractor_dots: int = 0
    multiple_choice: bool = False
    image_format: str = "png"

    def __post_init__(self) -> None:
        # YAML and argparse hand lists: store tuples so the config stays hashable and its JSON stable.
        for name in ("card_size_range", "dot_size_range", "kinds", "details", "background_rgb"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        problems = self._problems()
        if problems:
            raise ValueError("invalid SyntheticConfig:\n  - " + "\n  - ".join(problems))
        view_dot = self.dot_size_range[1] * self.view_side / min(self.canvas_width, self.canvas_height)
        if view_dot > 1.5:
            logger.warning(
                "synthetic: a %d-px dot covers %.1f pixels of the %d-px view: its colour may be legible without "
                "zooming (keep dot_size_range[1] <= 1.5 * canvas / view_side)",
                self.dot_size_range[1],
                view_dot,
                self.view_side,
            )

    def _problems(self) -> list[str]:
        """Every problem at once, each saying what to set."""
        out: list[str] = []
        for name, valid in (("kinds", KIND_PALETTE), ("details", DETAIL_PALETTE)):
            for item in getattr(self, name):
                if item not in valid:
                    close = difflib.get_close_matches(str(item), list(valid), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    out.append(f"{name}: unknown name {item!r}{hint}; valid: {sorted(valid)}")
            if len(set(getattr(self, name))) != len(getattr(self, name)):
                out.append(f"{name}: names repeat in {getattr(self, name)}")
        for name in ("card_size_range", "dot_size_range"):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or not all(isinstance(v, int) for v in lo_hi) or not 0 < lo_hi[0] <= lo_hi[1]:
                out.append(f"{name}: need two integers 0 < min <= max, got {lo_hi}")
        for name in ("canvas_width", "canvas_height", "view_side", "num_referents"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                out.append(f"{name}: need a positive integer, got {getattr(self, name)!r}")
        for name in ("num_records", "min_gap", "num_distractor_dots"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                out.append(f"{name}: need a non-negative integer, got {getattr(self, name)!r}")
        if not 0 <= self.background_noise <= 255:
            out.append(f"background_noise: need 0-255, got {self.background_noise}")
        if len(self.background_rgb) != 3 or not all(0 <= v <= 255 for v in self.background_rgb):
            out.append(f"background_rgb: need three values 0-255, got {self.background_rgb}")
        if self.image_format not in IMAGE_FORMATS:
            out.append(f"image_format: {self.image_format!r} is not one of {sorted(IMAGE_FORMATS)} (lossless only)")
        if self.num_referents > len(self.kinds):
            out.append(
                f"num_referents={self.num_referents} exceeds the {len(self.kinds)} kinds: each kind "
                "appears once per scene so the question names one card; add kinds or lower num_referents"
            )
        if self.unique_details and self.num_referents > len(self.details):
            out.append(
                f"unique_details needs num_referents ({self.num_referents}) <= number of details "
                f"({len(self.details)}); add details or set unique_details=False"
            )
        if len(self.details) < 2:
            out.append("details: need at least two colours, or the answer is constant")
        if out:  # the geometry checks below assume well-typed ranges
            return out
        if self.card_size_range[0] < label_side(self.dot_size_range[1]) + 4:
            out.append(
                f"card_size_range[0]={self.card_size_range[0]} cannot hold the label of a "
                f"{self.dot_size_range[1]}-px dot: need >= {label_side(self.dot_size_range[1]) + 4}"
            )
        card = self.card_size_range[1] + self.min_gap
        if self.num_referents * card * card > 0.5 * self.canvas_width * self.canvas_height:
            out.append(
                f"{self.num_referents} cards of up to {self.card_size_range[1]} px (+{self.min_gap} gap) "
                f"cover over half of the {self.canvas_width}x{self.canvas_height} canvas: random placement "
                "would often fail; enlarge the canvas or shrink cards/num_referents"
            )
        return out


@dataclass(frozen=True)
class Referent:
    """One card. Boxes are [x1, y1, x2, y2) in original pixels: x2/y2 exclusive, as PIL's crop takes them."""

    kind: str
    box: Box
    detail: str
    dot_box: Box
    dot_center: tuple[int, int]  # a pixel inside the dot, painted in the detail colour


@dataclass(frozen=True)
class SceneInfo:
    width: int
    height: int
    referents: tuple[Referent, ...]
    target: int  # index into referents
    distractor_dots: tuple[tuple[str, Box], ...] = ()

    @property
    def target_referent(self) -> Referent:
        return self.referents[self.target]


def label_side(dot_size: int) -> int:
    """Side of the white label around a dot: the dot plus a margin of one dot on each side."""
    return 3 * dot_size


def record_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of record `index` of `split`: independent of how many records are written.

    The split name enters through a CRC32 (stable across Python runs, unlike `hash`)."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(zlib.crc32(split.encode()), index)))


def _gap_overlap(a: Box, b: Box, gap: int) -> bool:
    """True when a and b, each grown by `gap`, intersect (half-open boxes)."""
    return not (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1])


def _place(
    rng: np.random.Generator,
    sizes: Sequence[tuple[int, int]],
    width: int,
    height: int,
    gap: int,
    taken: Sequence[Box] = (),
    attempts: int = 200,
) -> list[Box] | None:
    """Rejection-sample non-overlapping boxes of the given sizes; None when a box finds no room."""
    placed: list[Box] = list(taken)
    for w, h in sizes:
        for _ in range(attempts):
            x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            box = (x, y, x + w, y + h)
            if not any(_gap_overlap(box, other, gap) for other in placed):
                placed.append(box)
                break
        else:
            return None
    return placed[len(taken) :]


def _draw_dot(draw: ImageDraw.ImageDraw, cx: int, cy: int, d: int, rgb: RGB) -> Box:
    """A solid (not antialiased) disc of diameter d whose pixel (cx, cy) is painted; returns its box."""
    x0, y0 = cx - d // 2, cy - d // 2
    draw.ellipse([x0, y0, x0 + d - 1, y0 + d - 1], fill=rgb)
    return (x0, y0, x0 + d, y0 + d)


def generate_scene(rng: np.random.Generator, cfg: SyntheticConfig) -> tuple[Image.Image, SceneInfo]:
    """Draw one scene (see the module docstring). Deterministic in the state of `rng`.

    Raises:
        RuntimeError: the cards found no room after repeated tries (the config check admits layouts that
            cover up to half the canvas; denser ones are refused there).
    """
    w_c, h_c = cfg.canvas_width, cfg.canvas_height
    pixels = np.empty((h_c, w_c, 3), dtype=np.int16)
    pixels[:] = cfg.background_rgb
    if cfg.background_noise:
        pixels += rng.integers(-cfg.background_noise, cfg.background_noise + 1, size=pixels.shape, dtype=np.int16)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)

    k = cfg.num_referents
    lo, hi = cfg.card_size_range
    sizes = []
    for _ in range(k):
        w = int(rng.integers(lo, hi + 1))
        sizes.append((w, w if cfg.square_cards else int(rng.integers(lo, hi + 1))))
    for _ in range(50):
        boxes = _place(rng, sizes, w_c, h_c, cfg.min_gap)
        if boxes is not None:
            break
    else:
        raise RuntimeError(
            f"could not place {k} cards of sizes {sizes} on a {w_c}x{h_c} canvas with gap "
            f"{cfg.min_gap}: enlarge canvas_width/height or shrink card_size_range/num_referents"
        )

    kinds = [cfg.kinds[i] for i in rng.permutation(len(cfg.kinds))[:k]]
    if cfg.unique_details:
        details = [cfg.details[i] for i in rng.permutation(len(cfg.details))[:k]]
    else:
        details = [cfg.details[int(i)] for i in rng.integers(0, len(cfg.details), size=k)]
    target = int(rng.integers(0, k))

    referents = []
    for box, kind, detail in zip(boxes, kinds, details):
        d = int(rng.integers(cfg.dot_size_range[0], cfg.dot_size_range[1] + 1))
        draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=KIND_PALETTE[kind])
        cx, cy = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
        s = label_side(d)
        draw.rectangle([cx - s // 2, cy - s // 2, cx - s // 2 + s - 1, cy - s // 2 + s - 1], fill=LABEL_RGB)
        dot_box = _draw_dot(draw, cx, cy, d, DETAIL_PALETTE[detail])
        referents.append(Referent(kind=kind, box=box, detail=detail, dot_box=dot_box, dot_center=(cx, cy)))

    distractors: list[tuple[str, Box]] = []
    if cfg.num_distractor_dots:
        dot_sizes = [
            int(rng.integers(cfg.dot_size_range[0], cfg.dot_size_range[1] + 1)) for _ in range(cfg.num_distractor_dots)
        ]
        spots = _place(rng, [(d, d) for d in dot_sizes], w_c, h_c, cfg.min_gap, taken=boxes)
        if spots is None:
            raise RuntimeError(f"no room for {cfg.num_distractor_dots} distractor dots: lower num_distractor_dots")
        for spot, d in zip(spots, dot_sizes):
            name = cfg.details[int(rng.integers(0, len(cfg.details)))]
            distractors.append((name, _draw_dot(draw, spot[0] + d // 2, spot[1] + d // 2, d, DETAIL_PALETTE[name])))

    return image, SceneInfo(
        width=w_c, height=h_c, referents=tuple(referents), target=target, distractor_dots=tuple(distractors)
    )


def zoom_question(kind: str) -> str:
    return f"What colour is the dot inside the {kind} card?"


def make_zoom_example(rng: np.random.Generator, cfg: SyntheticConfig) -> tuple[Image.Image, dict]:
    """One zoom question: (image, the SPEC §6 fields width/height/bboxs/dataset/problem/solution).

    The writer adds `image`, `split` and `problem_id`. The scene is drawn first, so
    `generate_scene(record_rng(...), cfg)` reproduces the scene of a written record."""
    image, scene = generate_scene(rng, cfg)
    target = scene.target_referent
    problem, solution = zoom_question(target.kind), target.detail
    if cfg.multiple_choice:
        others = [c for c in cfg.details if c != target.detail]
        chosen = [others[i] for i in rng.permutation(len(others))[: MAX_OPTIONS - 1]] + [target.detail]
        options = [chosen[i] for i in rng.permutation(len(chosen))]
        problem += "".join(f"\n{letter}. {name}" for letter, name in zip(_OPTION_LETTERS, options))
        solution = f"<answer>{_OPTION_LETTERS[options.index(target.detail)]}</answer>"
    fields = {
        "width": scene.width,
        "height": scene.height,
        "bboxs": [list(target.box)],
        "dataset": DATASET_NAME,
        "problem": problem,
        "solution": solution,
    }
    return image, fields


def make_grounding_example(rng: np.random.Generator, cfg: SyntheticConfig) -> tuple[Image.Image, dict]:
    """Grounding pretraining item: "Locate the {kind} card ..." -> that card's box.

    The prompt is the RefCOCO one of SPEC §7. `bbox`/`solution` are in ORIGINAL pixels; a recipe that
    trains on them converts to the processor's input coordinates (SPEC §2)."""
    image, scene = generate_scene(rng, cfg)
    ref = scene.referents[int(rng.integers(0, len(scene.referents)))]
    return image, {
        "task": "grounding",
        "problem": f"Locate the {ref.kind} card in this image and output the bbox coordinates in JSON format.",
        "solution": "[" + ",".join(str(v) for v in ref.box) + "]",
        "bbox": list(ref.box),
        "kind": ref.kind,
        "width": scene.width,
        "height": scene.height,
    }


def make_crop_reading_example(
    rng: np.random.Generator, cfg: SyntheticConfig, margin_range: tuple[float, float] = (0.0, 0.25)
) -> tuple[Image.Image, dict]:
    """Perception pretraining item: a native-resolution crop of one card -> its dot colour.

    The crop is the card box grown on each side by a random fraction of its size in `margin_range`,
    clamped to the canvas: what a roughly right grounding box would show (SPEC §2 crop)."""
    image, scene = generate_scene(rng, cfg)
    ref = scene.referents[int(rng.integers(0, len(scene.referents)))]
    x1, y1, x2, y2 = ref.box
    mx = int(round(float(rng.uniform(*margin_range)) * (x2 - x1)))
    my = int(round(float(rng.uniform(*margin_range)) * (y2 - y1)))
    crop_box = (max(0, x1 - mx), max(0, y1 - my), min(scene.width, x2 + mx), min(scene.height, y2 + my))
    return image.crop(crop_box), {
        "task": "crop_reading",
        "problem": "What colour is the dot in this image?",
        "solution": ref.detail,
        "crop_box": list(crop_box),
        "kind": ref.kind,
    }


def write_zoom_dataset(out_dir: str | os.PathLike, cfg: SyntheticConfig, split: str = "train") -> Path:
    """Write `cfg.num_records` zoom records: `out_dir/{split}.jsonl` and `out_dir/images/{split}_NNNNNN.ext`.

    `image` in each record is relative to `out_dir` (the loader's image root). Returns the JSONL path."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    jsonl = out / f"{split}.jsonl"
    ext = cfg.image_format
    with jsonl.open("w", encoding="utf-8", newline="\n") as fh:
        for index in range(cfg.num_records):
            image, fields = make_zoom_example(record_rng(cfg.seed, split, index), cfg)
            rel = f"images/{split}_{index:06d}.{ext}"
            image.save(out / rel, format=IMAGE_FORMATS[ext])
            record = {"image": rel, **fields, "split": split, "problem_id": index}
            fh.write(json.dumps(record) + "\n")
    logger.info("synthetic: wrote %d %s records to %s", cfg.num_records, split, jsonl)
    return jsonl


def config_hash(cfg: SyntheticConfig, num_train: int, num_eval: int) -> str:
    """Cache key: every knob but num_records, the split sizes, and GENERATOR_VERSION."""
    knobs = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "num_records"}
    payload = json.dumps(
        {"knobs": knobs, "num_train": num_train, "num_eval": num_eval, "version": GENERATOR_VERSION}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def ensure_default_dataset(
    root: str | os.PathLike | None = None,
    num_train: int = 1000,
    num_eval: int = 100,
    cfg: SyntheticConfig | None = None,
) -> Path:
    """The default dataset folder (train.jsonl, eval.jsonl, images/), built once and reused.

    Lives in `root` (default `paths.cache_dir()/"synthetic"`) under `<config hash>`. It is built in a
    private temporary folder, the stamp file is written last, and the folder is renamed into place, so
    concurrent callers (several ranks) never read a half-written dataset; a folder without the stamp
    (an interrupted older build) is deleted and rebuilt."""
    cfg = cfg or SyntheticConfig()
    base = Path(root) if root is not None else paths.cache_dir() / "synthetic"
    final = base / config_hash(cfg, num_train, num_eval)
    if (final / STAMP_NAME).is_file():
        return final
    if final.exists():
        logger.warning("synthetic: %s has no %s stamp (interrupted build): rebuilding it", final, STAMP_NAME)
        shutil.rmtree(final, ignore_errors=True)
    tmp = base / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        write_zoom_dataset(tmp, dataclasses.replace(cfg, num_records=num_train), "train")
        write_zoom_dataset(tmp, dataclasses.replace(cfg, num_records=num_eval), "eval")
        knobs = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "num_records"}
        (tmp / "config.json").write_text(
            json.dumps(
                {"knobs": knobs, "num_train": num_train, "num_eval": num_eval, "version": GENERATOR_VERSION}, indent=2
            )
            + "\n"
        )
        (tmp / STAMP_NAME).write_text("complete\n")
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / STAMP_NAME).is_file():  # not a concurrent winner: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def build_parser() -> argparse.ArgumentParser:
    d = SyntheticConfig()
    p = argparse.ArgumentParser(
        prog="python -m ground_r1.demo.synthetic",
        description="Write the synthetic zoom-in dataset (train.jsonl, eval.jsonl, images/) to OUT_DIR.",
        allow_abbrev=False,
    )
    p.add_argument("out_dir", help="folder to write; image paths in the JSONL are relative to it")
    p.add_argument("--num_train", type=int, default=1000, help="train records (default 1000)")
    p.add_argument("--num_eval", type=int, default=100, help="eval records (default 100)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--canvas", type=int, default=d.canvas_width, help="canvas side in pixels")
    p.add_argument("--view_side", type=int, default=d.view_side, help="model view side the task targets")
    p.add_argument("--num_referents", type=int, default=d.num_referents, help="cards per scene")
    p.add_argument("--card_size", type=int, nargs=2, default=list(d.card_size_range), metavar=("MIN", "MAX"))
    p.add_argument("--dot_size", type=int, nargs=2, default=list(d.dot_size_range), metavar=("MIN", "MAX"))
    p.add_argument("--kinds", nargs="+", default=list(d.kinds), help=f"card kinds from {sorted(KIND_PALETTE)}")
    p.add_argument("--details", nargs="+", default=list(d.details), help=f"dot colours from {sorted(DETAIL_PALETTE)}")
    p.add_argument("--background_noise", type=int, default=d.background_noise, help="noise amplitude 0-255")
    p.add_argument("--distractor_dots", type=int, default=d.num_distractor_dots)
    p.add_argument("--repeat_details", action="store_true", help="allow two cards of a scene the same dot colour")
    p.add_argument("--multiple_choice", action="store_true", help="append A-D colour options")
    p.add_argument("--image_format", choices=sorted(IMAGE_FORMATS), default=d.image_format)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = SyntheticConfig(
            seed=args.seed,
            canvas_width=args.canvas,
            canvas_height=args.canvas,
            view_side=args.view_side,
            num_referents=args.num_referents,
            card_size_range=tuple(args.card_size),
            dot_size_range=tuple(args.dot_size),
            kinds=tuple(args.kinds),
            details=tuple(args.details),
            unique_details=not args.repeat_details,
            background_noise=args.background_noise,
            num_distractor_dots=args.distractor_dots,
            multiple_choice=args.multiple_choice,
            image_format=args.image_format,
        )
    except ValueError as err:
        logger.error("%s", err)
        return 2
    for split, n in (("train", args.num_train), ("eval", args.num_eval)):
        write_zoom_dataset(args.out_dir, dataclasses.replace(cfg, num_records=n), split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
