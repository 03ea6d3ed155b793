"""What the zoom-in benchmarks share (V* Bench, HR-Bench, TreeBench; issue 18): reading, options, letters, boxes.

- **Reading.** A spec names its layouts (:attr:`ZoomSpec.layouts`: file or folder names tried in
  ``DATASET_ROOT``, each with its reader in :data:`.readers.READERS`); :meth:`BenchmarkSpec.read` runs the reader
  of the file's layout (:meth:`ZoomSpec.layout_of`), then the spec's one validation (:meth:`ZoomSpec.validate`) on
  every record, before any inference. Problems are
  ``file:line: field: why``; a record with any is skipped, as for every other benchmark. Images are checked by
  header (a file: :func:`ground_r1.data.images.image_size`; an embedded image: its first bytes), never decoded.
  A target box is checked for shape (4 finite numbers, positive width and height) but **never against an image
  size the loader has not read**: V*'s annotations carry no size. When the header was read (``check_images``),
  a box outside the image is noted on the item (``box_notes``), not rejected.
- **Options.** Where a benchmark fixes the gold at one position (V*: always the first), the options shown are
  permuted by ``random.Random(f"{option_seed}:{key}")``: seeded per item, so a resumed or sharded run shows the
  same order, and every record carries ``option_order`` and the seed (DeepEyes' first release left every
  answer at A: issue 18).
- **Letters.** One rule reads the letter of a generated answer: :func:`extract_choice_letter` (answer span, then
  the precedence of :mod:`.parsing`; options' texts count), documented in docs/metrics.md.
- **Boxes.** :meth:`ZoomSpec.score_prediction` adds the per-round box quality (:mod:`..box_quality`) when the
  item has target boxes.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

from ground_r1.evaluation.benchmarks.embedded_images import EmbeddedImage, materialize_images
from ground_r1.evaluation.benchmarks.parsing import extract_answer_span, extract_choice_letter
from ground_r1.evaluation.benchmarks.readers import VSTAR_FOLDERS, RawRecord
from ground_r1.evaluation.benchmarks.spec import BenchmarkItem, BenchmarkSpec, _ItemProblems, _unreadable

logger = logging.getLogger(__name__)

__all__ = ["ZoomSpec", "check_box", "letter_options", "shuffled_order", "zoom_letter"]

LETTERS = "ABCDEFGHIJ"
LETTER_RULE = "ours: one letter rule (answer span; cue, label, lone letter or option text; docs/metrics.md)"


def shuffled_order(n: int, seed: int, key: str) -> list[int]:
    """The order the ``n`` options of item ``key`` are shown in (a permutation of ``range(n)``), seeded per item."""
    order = list(range(n))
    random.Random(f"{seed}:{key}").shuffle(order)
    return order


def letter_options(texts: list[str]) -> dict[str, str]:
    """``{"A": texts[0], "B": texts[1], ...}``."""
    return {LETTERS[i]: text for i, text in enumerate(texts)}


def zoom_letter(text: str, options: Mapping[str, str]) -> str | None:
    """The letter a generated answer picks, by the one rule of the zoom-in benchmarks (module doc)."""
    return extract_choice_letter(text, "".join(options), dict(options))


def check_box(value: Any, form: str) -> tuple[list[float] | None, str | None]:
    """A target box as xyxy floats from ``form`` ("xywh" or "xyxy"), or ``(None, why)``; no image size needed."""
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return None, "expected [x, y, w, h]" if form == "xywh" else "expected [x1, y1, x2, y2]"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return None, f"expected 4 finite numbers, got {list(value)!r}"
    x, y, a, b = (float(v) for v in value)
    box = [x, y, x + a, y + b] if form == "xywh" else [x, y, a, b]
    if not (box[2] > box[0] and box[3] > box[1]):
        return None, f"empty or inverted box {list(value)!r} ({form})"
    return box, None


@dataclass(frozen=True)
class ZoomSpec(BenchmarkSpec):
    """Base of the zoom-in benchmark specs.

    Attributes:
        layouts: ``(name in DATASET_ROOT, layout)`` tried in order (layout: a key of :data:`.readers.READERS`);
            ``DATASET_ROOT`` itself is tried first (the V* folder, or a file given directly).
        box_form: how the file writes target boxes ("xywh" V*, "xyxy" TreeBench; "" none).
    """

    suite: str = "zoom"
    layouts: tuple[tuple[str, str], ...] = ()
    box_form: str = ""

    required_fields: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------------ locating and reading

    def _layout_at(self, path: Path) -> str | None:
        """The layout ``path`` is in, by its name (None when none of ``layouts`` fits)."""
        kinds = {lay for _, lay in self.layouts}
        if path.is_dir():
            return (
                "vstar_folder"
                if ("vstar_folder" in kinds and any((path / f).is_dir() for f in VSTAR_FOLDERS))
                else None
            )
        for name, layout in self.layouts:
            if path.name == name:
                return layout
        suffix = {".tsv": "tsv", ".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl"}.get(path.suffix)
        return suffix if suffix in kinds else None

    def layout_of(self, file: Path) -> str:
        """The layout of ``file`` by its name among :attr:`layouts` (the spec's own :attr:`layout` otherwise)."""
        return self._layout_at(file) or self.layout

    def locate(self, dataset_root: Path, image_root: Path | None) -> tuple[Path, Path]:
        """(file or folder to read, image root): ``DATASET_ROOT`` itself when it is in one of the layouts, else the
        first of ``layouts`` found in it, or in ``DATASET_ROOT/{name}/``. Images resolve against the file's folder
        unless ``image_root`` is given.

        Raises:
            FileNotFoundError: nothing found (the names tried are listed).
        """
        root = Path(dataset_root).expanduser()
        tried = []
        for folder in (root, root / self.name):
            if self._layout_at(folder) is not None:
                return folder, Path(image_root).expanduser() if image_root else folder
            for name, _ in self.layouts:
                candidate = folder / name
                tried.append(str(candidate))
                if candidate.exists() and self._layout_at(candidate) is not None:
                    base = candidate if candidate.is_dir() else candidate.parent
                    return candidate, Path(image_root).expanduser() if image_root else base
        raise FileNotFoundError(
            f"{self.name}: no benchmark file under {root}: tried {', '.join(tried)} (point "
            f"DATASET_ROOT at the benchmark's folder, or leave {self.name} out of BENCHMARKS)"
        )

    def resolve_file(self, path: str | Path) -> Path:
        path = Path(path).expanduser()
        if self._layout_at(path) is not None and path.exists():
            return path
        return self.locate(path, None)[0]

    def _build_items(self, raw: RawRecord, layout: str, root: Path, check_images: bool) -> list[BenchmarkItem]:
        problems: list[tuple[str, str]] = []
        built = self.validate(raw, layout, root, check_images, problems)
        if problems:
            raise _ItemProblems(problems)
        return built

    def validate(
        self, raw: RawRecord, layout: str, root: Path, check_images: bool, problems: list[tuple[str, str]]
    ) -> list[BenchmarkItem]:
        """The items of one record (HR-Bench's ZoomEye record unfolds to 4); appends ``(field, why)`` problems."""
        raise NotImplementedError(f"{type(self).__name__} must define validate")

    def item(
        self, raw: RawRecord, image: Any, question: str, answer: str, category: str, extra: dict, rotation: str = ""
    ) -> BenchmarkItem:
        """The item of ``raw`` keyed by its file name and line (``rotation``: ``#j`` of an unfolded record)."""
        key = f"{Path(raw.file).name}:{raw.line}{rotation}"
        return BenchmarkItem(key, self.name, image, question, answer, category, extra, raw.file, raw.line)

    # ------------------------------------------------------------------ validation helpers

    @staticmethod
    def text_field(fields: Mapping[str, Any], name: str, problems: list[tuple[str, str]]) -> str:
        value = fields.get(name)
        if name not in fields:
            problems.append((name, "missing field"))
            return ""
        if not isinstance(value, str) or not value.strip():
            problems.append((name, f"expected a non-empty string, got {value!r}"))
            return ""
        return value.strip()

    def image_of(
        self,
        raw: RawRecord,
        relative: Any,
        root: Path,
        check: bool,
        problems: list[tuple[str, str]],
        cache: Path | None = None,
    ) -> tuple[str, tuple[int, int] | None]:
        """(image path, size when its header was read) of a record: a file of the layout (``raw.image``), a path
        relative to ``root`` (``relative``), or an embedded image, whose file is ``cache/<index><ext>`` (written
        before inference by :meth:`prepare_images`)."""
        from ground_r1.data.images import ImageLoadError, image_size

        if isinstance(raw.image, EmbeddedImage):
            embedded = raw.image
            if embedded.problem is not None:
                problems.append(("image", embedded.problem))
                return "", None
            source = Path(raw.file)
            folder = cache or source.parent / "images" / source.stem
            return str(folder / f"{embedded.row}{embedded.suffix or '.jpg'}"), None
        if isinstance(raw.image, Path):
            path = raw.image
        elif isinstance(relative, str) and relative.strip():
            path = root / relative.strip()
        else:
            problems.append(("image", f"expected an image path, got {relative!r}"))
            return "", None
        if not check:
            return str(path), None
        if not path.is_file():
            problems.append(("image", f"image not found: {path}"))
            return str(path), None
        why = _unreadable(path)
        if why is not None:
            problems.append(("image", why))
            return str(path), None
        try:
            return str(path), image_size(path)
        except ImageLoadError as exc:  # pragma: no cover - _unreadable read the same header
            problems.append(("image", str(exc)))
            return str(path), None

    def target_boxes(
        self,
        values: Any,
        field_name: str,
        size: tuple[int, int] | None,
        problems: list[tuple[str, str]],
        notes: list[str],
    ) -> list[list[float]]:
        """Every target box as xyxy (``box_form`` of the file); a box outside a *read* image size is noted only."""
        if not isinstance(values, (list, tuple)):
            problems.append((field_name, f"expected a list of boxes, got {values!r}"))
            return []
        boxes = []
        for number, value in enumerate(values):
            box, why = check_box(value, self.box_form)
            if box is None:
                problems.append((f"{field_name}[{number}]", why or "bad box"))
                continue
            if size is not None and (box[0] < 0 or box[1] < 0 or box[2] > size[0] or box[3] > size[1]):
                notes.append(f"{field_name}[{number}] {list(value)} lies outside the {size[0]}x{size[1]} image")
            boxes.append(box)
        return boxes

    # ------------------------------------------------------------------ images

    def prepare_images(self, items: list[BenchmarkItem]) -> int:
        """Write the embedded images of ``items`` to their files (one pass per data file; files already written
        are kept, so a resumed run decodes nothing); returns how many were written."""
        wanted = [(it.extra["embedded_image"], Path(str(it.image))) for it in items if "embedded_image" in it.extra]
        if not wanted:
            return 0
        written = materialize_images(wanted)
        if written:
            logger.info("%s: decoded %d embedded image(s) into %s", self.name, written, Path(wanted[0][1]).parent)
        return written

    # ------------------------------------------------------------------ prompts and letters

    @staticmethod
    def options_block(options: Mapping[str, str], style: str = "dot") -> str:
        """``A. text`` lines (VLMEvalKit, TreeBench) or ``(A) text`` lines (V* ``test_questions``)."""
        return "\n".join(f"({k}) {v}" if style == "paren" else f"{k}. {v}" for k, v in options.items())

    @staticmethod
    def first_answer(text: str) -> str:
        """The extracted answer span of a final turn (SPEC §3)."""
        return extract_answer_span(text)

    def parse_answer(self, text: str, options: Mapping[str, str] | None = None) -> str | None:
        return zoom_letter(text, options or {})
