"""VisCoT training/evaluation records (SPEC §6): schema, validation, loading, and the HF Dataset view.

One record per JSONL line (or one item of a ``.json`` list)::

    image (str, path)  problem (str)  solution (str)  dataset (str, sub-dataset: selects the reward)
    width, height (int, original size; read from the image header if absent)
    input_width, input_height (int, smart_resize size; computed if absent; the computed value wins, SPEC §2)
    bboxs ([[x1, y1, x2, y2], ...] evidence boxes in original pixels; may be absent or empty)
    split, problem_id (optional; problem_id repeats across sub-datasets, so it is never used as a key)

:func:`load_viscot_records` checks everything up front and reports *every* problem as ``file:line: field:
message`` in one :class:`RecordValidationError`, instead of crashing hours into training on the first bad
record (SPEC §10: "unknown dataset crashes"). With ``skip_bad_records`` it returns the good records and the
issues, which the caller writes with :func:`write_issues`.

Image checks (``check_images=True``) run :func:`ground_r1.data.images.image_size` with ``verify=True`` on
each image: the header (size, EXIF orientation, the decompression-bomb limit) and, for JPEG and PNG, whether
the file is complete (its end marker; a PNG's chunk list), without decoding the pixels; only a file that
fails that test, or of another format, is decoded in full. So a missing, empty, unrecognisable, truncated or
too large image is reported here, up front, instead of crashing the rollout hours later, while decoding every
image would cost minutes on the 400k-image training set. What the cheap check cannot see (a file complete
to its end marker whose compressed data is corrupt: libjpeg usually decodes such a JPEG to garbled pixels,
but not always) still fails later, in ``load_image``, when the rollout opens the image.

What a valid record is (every other case is an issue with ``file:line: field: message``):

* a JSON object with non-empty strings ``image``, ``problem``, ``solution`` (non-empty once its ``<answer>``
  tags are stripped: an empty ground truth can never be scored) and ``dataset`` (a known sub-dataset when
  ``known_datasets`` is given);
* with ``special_tokens`` given, ``problem`` and ``solution`` contain none of them (the processor would
  read such text as control tokens: a forged chat turn, or an image placeholder without an image, which
  stops the rollout);
* optional fields of the right type, sizes within the decompression-bomb limit;
* a usable image (see :mod:`ground_r1.data.images` for which modes, sizes and files are usable);
* evidence boxes are *not* a validity condition: they only measure the model's boxes (the GIoU metric; SPEC
  §3: no box labels in training). A usable box has four finite numbers with ``x2 > x1``, ``y2 > y1`` and
  overlaps the image (a box partly outside is kept as stored: the GIoU metric scores what is stored). An
  unusable one (inverted, outside the image, malformed; the release's VisCoT benchmark has ten) is dropped
  from ``bboxs`` and named in the record's ``box_issues`` (``"bboxs[0]: why"``) and in
  :attr:`LoadedRecords.box_notes`: the record is kept, its box metric is n/a when no usable box is left.

A line that is not valid UTF-8, not JSON, or nested too deeply is reported as that line's problem, never
raised.

Each returned record carries ``key`` = ``"<file name>:<line>"`` (unique within a file) and ``uid`` (first 16
hex digits of the SHA-1 of the record's text: identical lines share it), plus ``source_file`` and ``line``
(and ``box_issues`` when an evidence box was dropped).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import math
import os
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ground_r1.data.images import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    ImageLoadError,
    image_size,
    input_size,
    pixel_limit_reason,
)
from ground_r1.rollout.answer import strip_answer_tags

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

REQUIRED_STR_FIELDS = ("image", "problem", "solution", "dataset")
MAX_LISTED_ISSUES = 50
# How many leading path components resolve_image_path may strip from an absolute path it cannot find.
MAX_SUFFIX_ATTEMPTS = 12
SKIP_HINT = (
    "Fix these records, or pass --skip_bad_records to train on the rest (the skipped records and their "
    "reasons are written to skipped_records.jsonl in the output folder)."
)
SKIPPED_RECORDS_NAME = "skipped_records.jsonl"
BOX_ISSUES_NAME = "evidence_box_issues.jsonl"


@dataclass
class ValidationIssue:
    """One problem with one field of one record. ``unit`` is "line" for JSONL and "item" for a JSON list."""

    file: str
    line: int
    field: str
    message: str
    unit: str = "line"

    def __str__(self) -> str:
        where = f"{self.line}" if self.unit == "line" else f"{self.unit} {self.line}"
        return f"{self.file}:{where}: {self.field}: {self.message}"

    @property
    def key(self) -> str:
        """The record's key, as a loaded record would carry it: ``"<file name>:<line>"``."""
        return f"{Path(self.file).name}:{self.line}"


class RecordValidationError(ValueError):
    """All the problems found in a records file, listed (the first MAX_LISTED_ISSUES) in the message."""

    def __init__(self, issues: list[ValidationIssue], hint: str = SKIP_HINT) -> None:
        self.issues = list(issues)
        bad = {(i.file, i.line) for i in self.issues}
        lines = [f"{len(self.issues)} problem(s) in {len(bad)} record(s):"]
        lines += [f"  {issue}" for issue in self.issues[:MAX_LISTED_ISSUES]]
        if len(self.issues) > MAX_LISTED_ISSUES:
            lines.append(f"  ... and {len(self.issues) - MAX_LISTED_ISSUES} more")
        lines.append(hint)
        super().__init__("\n".join(lines))


@dataclass
class LoadedRecords:
    """What :func:`load_viscot_records` returns: valid records, the issues found, how many records were
    skipped, and ``box_notes``: the unusable evidence boxes of *kept* records (a metric n/a, not a bad record)."""

    records: list[dict[str, Any]]
    issues: list[ValidationIssue] = field(default_factory=list)
    skipped: int = 0
    box_notes: list[ValidationIssue] = field(default_factory=list)

    @property
    def records_with_box_issues(self) -> int:
        """Kept records that lost at least one evidence box."""
        return len({(n.file, n.line) for n in self.box_notes})


def _exists(path: Path) -> bool:
    """``path.exists()`` that answers False instead of raising (a name too long for the file system)."""
    try:
        return path.exists()
    except OSError:
        return False


def _split_prefix(path: str, prefix: str) -> str | None:
    """The rest of ``path`` after ``prefix`` if the prefix matches whole path components, else None."""
    prefix = prefix.rstrip("/\\")
    if not prefix:
        return None
    if path == prefix:
        return ""
    if path.startswith(prefix) and path[len(prefix)] in "/\\":
        return path[len(prefix) + 1 :].lstrip("/\\")
    return None


def resolve_image_path(
    path: str | os.PathLike[str],
    image_root: str | os.PathLike[str] | None,
    path_prefix: str | None = None,
) -> Path:
    """Where the image of a record is on this machine.

    The release's files carry absolute paths from the authors' machine (``/home/meng/data/...``), so:

    1. ``path_prefix`` given and ``path`` starts with it (whole components): the prefix is replaced by
       ``image_root``.
    2. ``path`` relative: ``image_root / path`` (relative to the working directory without an image_root).
    3. ``path`` absolute and existing, or no ``image_root``: returned as is.
    4. ``path`` absolute, missing, ``image_root`` given: try ``image_root / suffix`` for suffixes of ``path``
       with 0, 1, 2, ... leading components stripped (longest suffix first, at most MAX_SUFFIX_ATTEMPTS tries),
       and return the first that exists. ``/home/meng/data/Visual-CoT/cot_image_data/vsr/x.jpg`` with
       image_root ``/data/viscot`` finds ``/data/viscot/cot_image_data/vsr/x.jpg`` or
       ``/data/viscot/vsr/x.jpg``. If none exists, the original path is returned (and reported missing by
       the caller).
    """
    raw = os.fspath(path)
    root = Path(image_root).expanduser() if image_root is not None else None
    if path_prefix:
        rest = _split_prefix(raw, path_prefix)
        if rest is not None:
            if root is None:
                raise ValueError(f"path_prefix {path_prefix!r} is replaced by image_root, so image_root is needed")
            return (root / rest).absolute()
    p = Path(raw).expanduser()
    if not p.is_absolute():
        return ((root / p) if root is not None else p).absolute()
    if root is None or _exists(p):
        return p
    parts = p.parts[1:]  # without the anchor ("/" or "C:\\")
    for k in range(min(len(parts), MAX_SUFFIX_ATTEMPTS)):
        candidate = root.joinpath(*parts[k:])
        if _exists(candidate):
            return candidate.absolute()
    return p


def _parse_json(text: str) -> tuple[Any, str | None]:
    """(object, None) or (None, why the text is not a usable JSON value)."""
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})"
    except RecursionError:
        return None, "invalid JSON (nested too deeply to parse)"


def _iter_raw(path: Path) -> Iterator[tuple[int, str, Any, str | None]]:
    """(line-or-item number, text for the uid, parsed object or None, JSON error or None); blank lines skipped.

    A ``.json`` file is one JSON list (numbered items); anything else is JSONL (numbered lines, split on
    ``\\n``), read as bytes so that a line which is not valid UTF-8 is reported as that line's problem; a
    UTF-8 byte-order mark at the start of the file is ignored.
    """
    if path.suffix.lower() == ".json":
        # A .json file that does not parse as a whole has no records to skip: that is an error, not an issue.
        try:
            with path.open(encoding="utf-8-sig") as fh:
                items = json.load(fh)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{path}:{exc.lineno}: invalid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno}); a .json records file is "
                "one JSON list (use .jsonl for one record per line)"
            ) from exc
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{path}: not valid UTF-8 (byte {exc.start}: {exc.reason}); save the file as UTF-8"
            ) from None
        except RecursionError:
            raise ValueError(f"{path}: JSON nested too deeply to parse") from None
        if not isinstance(items, list):
            raise ValueError(f"{path}: a .json records file must hold a list of records, found {type(items).__name__}")
        for i, item in enumerate(items, start=1):
            yield i, json.dumps(item, sort_keys=True, ensure_ascii=False), item, None
        return
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                text = raw.decode("utf-8", errors="replace").strip()
                yield lineno, text, None, f"not valid UTF-8 (byte {exc.start + 1} of the line: {exc.reason})"
                continue
            if not text:
                continue
            obj, error = _parse_json(text)
            yield lineno, text, obj, error


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _as_int(value: Any) -> int | None:
    """An int from an int or an integral float (JSON may write 500.0); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _is_number(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _suggest(name: str, known: Collection[str]) -> str:
    lowered = {k.lower(): k for k in known}
    if name.lower() in lowered:
        return f"; did you mean '{lowered[name.lower()]}'?"
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean '{lowered[close[0]]}'?" if close else ""


class _Checker:
    """Validates and normalizes the records of one file, collecting issues instead of raising."""

    def __init__(
        self,
        file: str,
        unit: str,
        *,
        image_root: str | os.PathLike[str] | None,
        path_prefix: str | None,
        min_pixels: int,
        max_pixels: int,
        known_datasets: Collection[str] | None,
        check_images: bool,
        special_tokens: Collection[str] = (),
    ) -> None:
        self.file, self.unit = file, unit
        self.file_name = Path(file).name
        self.image_root, self.path_prefix = image_root, path_prefix
        self.min_pixels, self.max_pixels = min_pixels, max_pixels
        self.known = frozenset(known_datasets) if known_datasets is not None else None
        self.known_listed = ", ".join(sorted(self.known)) if self.known is not None else ""
        self.check_images = check_images
        self.special_tokens = tuple(t for t in special_tokens if t)
        self.input_size_overridden = 0
        self.size_from_image = 0
        self.issues: list[ValidationIssue] = []
        self.box_notes: list[ValidationIssue] = []

    def _issue(self, line: int, field_name: str, message: str) -> None:
        self.issues.append(ValidationIssue(self.file, line, field_name, message, self.unit))

    def check(self, line: int, text: str, obj: Any, json_error: str | None) -> dict[str, Any] | None:
        before = len(self.issues)
        if json_error is not None:
            self._issue(line, "json", json_error)
            return None
        if not isinstance(obj, dict):
            self._issue(line, "record", f"expected a JSON object, got {_type_name(obj)}")
            return None
        rec = dict(obj)

        for name in REQUIRED_STR_FIELDS:
            if name not in obj:
                self._issue(line, name, "missing required field")
            elif not isinstance(obj[name], str):
                extra = ""
                if name == "image" and "conversations" in obj:
                    extra = (
                        " (this looks like the upstream Visual-CoT format: convert it first with "
                        "`python -m ground_r1.cli.prepare_viscot`)"
                    )
                self._issue(line, name, f"expected a string, got {_type_name(obj[name])}{extra}")
            elif not obj[name].strip():
                self._issue(line, name, "must not be empty")
            elif name == "solution" and not strip_answer_tags(obj[name]):
                self._issue(line, name, f"empty answer {obj[name]!r}: a ground truth is needed to score the answer")
            elif name in ("problem", "solution") and self.special_tokens:
                found = [t for t in self.special_tokens if t in obj[name]]
                if found:
                    self._issue(
                        line,
                        name,
                        f"contains the tokenizer's special token(s) {', '.join(found)}: the processor would read them "
                        "as control tokens (a forged chat turn, or an image placeholder without an image); remove them",
                    )

        dataset = obj.get("dataset")
        if self.known is not None and isinstance(dataset, str) and dataset.strip() and dataset not in self.known:
            self._issue(
                line,
                "dataset",
                f"unknown sub-dataset '{dataset}'{_suggest(dataset, self.known)} Known: {self.known_listed}",
            )

        if obj.get("split") is not None and not isinstance(obj["split"], str):
            self._issue(line, "split", f"expected a string, got {_type_name(obj['split'])}")
        pid = obj.get("problem_id")
        if pid is not None and (isinstance(pid, bool) or not isinstance(pid, (int, str))):
            self._issue(line, "problem_id", f"expected an integer or a string, got {_type_name(pid)}")

        sizes: dict[str, int | None] = {}
        for name in ("width", "height", "input_width", "input_height"):
            value = obj.get(name)
            sizes[name] = None
            if value is None:
                continue
            as_int = _as_int(value)
            if as_int is None or as_int <= 0:
                self._issue(line, name, f"expected a positive integer, got {value!r}")
            else:
                sizes[name] = as_int

        width, height = sizes["width"], sizes["height"]
        image = obj.get("image")
        if isinstance(image, str) and image.strip():
            try:
                resolved = resolve_image_path(image, self.image_root, self.path_prefix)
            except ValueError as exc:  # e.g. an embedded NUL byte in the path
                self._issue(line, "image", f"unusable path {image!r}: {exc}")
                resolved = None
            if resolved is not None:
                rec["image"] = str(resolved)
                if self.check_images:
                    width, height = self._check_image(line, image, resolved, width, height)
        if not self.check_images:
            for name, value in (("width", width), ("height", height)):
                if value is None and name not in obj:
                    self._issue(line, name, "missing, and check_images=False forbids reading it from the image")

        too_large = pixel_limit_reason(width, height) if width is not None and height is not None else None
        if too_large is not None:  # stored sizes (check_images=False); a file's own size was checked on read
            self._issue(line, "image", too_large)
        elif width is not None and height is not None:
            try:
                in_w, in_h = input_size(width, height, self.min_pixels, self.max_pixels)
            except ValueError as exc:
                self._issue(line, "image", f"size {width}x{height} cannot be fed to Qwen2.5-VL: {exc}")
            else:
                stored = (sizes["input_width"], sizes["input_height"])
                if stored != (None, None) and stored != (in_w, in_h):
                    self.input_size_overridden += 1
                rec["input_width"], rec["input_height"] = in_w, in_h
            rec["width"], rec["height"] = width, height

        notes_before = len(self.box_notes)
        rec["bboxs"] = self._check_boxes(line, obj.get("bboxs"), width, height)

        if len(self.issues) > before:
            del self.box_notes[notes_before:]  # the record is skipped: its issues say why
            return None
        if len(self.box_notes) > notes_before:
            rec["box_issues"] = [f"{n.field}: {n.message}" for n in self.box_notes[notes_before:]]
        rec.setdefault("split", None)
        rec.setdefault("problem_id", None)
        rec["key"] = f"{self.file_name}:{line}"
        rec["uid"] = hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]
        rec["source_file"] = self.file
        rec["line"] = line
        return rec

    def _check_image(
        self, line: int, raw: str, resolved: Path, width: int | None, height: int | None
    ) -> tuple[int | None, int | None]:
        """The image check of the module docstring; returns the size to use (the file's size wins over a stored
        one that differs)."""
        try:
            actual = image_size(resolved, verify=True)
        except ImageLoadError as exc:
            if exc.reason == "file not found":
                where = f"'{resolved}'" if str(resolved) == raw else f"'{resolved}' (from '{raw}')"
                hint = (
                    "set image_root (and path_prefix for the release's absolute paths) to your image folder"
                    if self.image_root is None
                    else "check image_root / path_prefix"
                )
                self._issue(line, "image", f"image file not found: {where}; {hint}")
            else:
                self._issue(line, "image", f"unreadable image '{resolved}': {exc.reason}")
            return width, height
        if (width, height) != (None, None) and (width, height) != actual:
            self.size_from_image += 1
        return actual

    def _box_note(self, line: int, field_name: str, message: str) -> None:
        self.box_notes.append(ValidationIssue(self.file, line, field_name, message, self.unit))

    def _check_boxes(self, line: int, boxes: Any, width: int | None, height: int | None) -> list[list[float]]:
        """The usable evidence boxes; each unusable one becomes a box note (module docstring), not an issue."""
        if boxes is None:
            return []
        if not isinstance(boxes, list):
            self._box_note(line, "bboxs", f"expected a list of [x1, y1, x2, y2] boxes, got {_type_name(boxes)}")
            return []
        out: list[list[float]] = []
        for i, box in enumerate(boxes):
            name = f"bboxs[{i}]"
            if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
                self._box_note(line, name, f"expected 4 finite numbers [x1, y1, x2, y2], got {json.dumps(box)}")
                continue
            x1, y1, x2, y2 = (float(v) for v in box)
            if x2 <= x1 or y2 <= y1:
                self._box_note(line, name, f"empty or inverted box {json.dumps(box)}: need x2 > x1 and y2 > y1")
                continue
            if width is not None and height is not None and (x1 >= width or y1 >= height or x2 <= 0 or y2 <= 0):
                self._box_note(line, name, f"box {json.dumps(box)} lies entirely outside the {width}x{height} image")
                continue
            out.append([x1, y1, x2, y2])
        return out

    def log_summary(self) -> None:
        if self.box_notes:
            records = len({n.line for n in self.box_notes})
            logger.warning(
                "%s: %d record(s) kept with %d unusable evidence box(es) dropped (first: %s); their box metric "
                "(GIoU) uses the usable boxes left, n/a when none is left",
                self.file,
                records,
                len(self.box_notes),
                self.box_notes[0],
            )
        if self.input_size_overridden:
            logger.warning(
                "%s: %d record(s) carry input_width/input_height that differ from smart_resize(min_pixels=%d, "
                "max_pixels=%d); the computed size is used (SPEC §2).",
                self.file,
                self.input_size_overridden,
                self.min_pixels,
                self.max_pixels,
            )
        if self.size_from_image:
            logger.warning(
                "%s: %d record(s) carry width/height that differ from their image file (after EXIF orientation); "
                "the file's size is used. Their boxes are kept as stored, so box metrics (GIoU) may be off.",
                self.file,
                self.size_from_image,
            )


def load_viscot_records(
    path: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    path_prefix: str | None = None,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    known_datasets: Collection[str] | None = None,
    check_images: bool = True,
    special_tokens: Collection[str] = (),
    skip_bad_records: bool = False,
    limit: int | None = None,
    progress: bool = False,
    hint: str = SKIP_HINT,
) -> LoadedRecords:
    """Load and validate a VisCoT records file (JSONL, or a ``.json`` list), reporting every problem at once.

    ``known_datasets``: when given (training: the reward registry's names), an unknown ``dataset`` is an
    issue with a "did you mean". ``check_images``: resolve and open each image header (see the module
    docstring); without it images are not touched and width/height must be in the records.
    ``special_tokens``: strings that ``problem`` and ``solution`` must not contain (training and evaluation:
    the processor's ``tokenizer.all_special_tokens``; the module docstring says why). ``limit``: only
    the first ``limit`` non-blank records are read (and validated). Raises :class:`RecordValidationError`
    listing every issue (and ``hint``, what to do) unless ``skip_bad_records``, in which case the bad records
    are left out and counted. Unusable evidence boxes never make a record bad (module docstring).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"records file not found: '{p}'")
    if path_prefix and image_root is None:
        raise ValueError(f"path_prefix {path_prefix!r} is replaced by image_root, so image_root is needed too")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    checker = _Checker(
        str(p),
        "item" if p.suffix.lower() == ".json" else "line",
        image_root=image_root,
        path_prefix=path_prefix,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        known_datasets=known_datasets,
        check_images=check_images,
        special_tokens=special_tokens,
    )
    raw: Iterator[tuple[int, str, Any, str | None]] = _iter_raw(p)
    if progress:
        from tqdm.auto import tqdm

        raw = tqdm(raw, desc=f"checking {p.name}", unit="rec")
    records: list[dict[str, Any]] = []
    seen = skipped = 0
    for line, text, obj, json_error in raw:
        if limit is not None and seen >= limit:
            break
        seen += 1
        rec = checker.check(line, text, obj, json_error)
        if rec is None:
            skipped += 1
        else:
            records.append(rec)
    checker.log_summary()
    if checker.issues and not skip_bad_records:
        raise RecordValidationError(checker.issues, hint)
    if skipped:
        logger.warning("%s: skipped %d bad record(s) of %d (skip_bad_records)", p, skipped, seen)
    return LoadedRecords(records=records, issues=checker.issues, skipped=skipped, box_notes=checker.box_notes)


def write_issues(
    issues: list[ValidationIssue],
    path: str | os.PathLike[str],
    *,
    extra: dict[str, Any] | None = None,
    append: bool = False,
) -> Path:
    """Write the issues as JSONL, one object per issue: file, line, unit, field, message, ``key`` (the
    record's ``"<file name>:<line>"``, as loaded records carry it) and ``text`` (the printed form), plus the
    ``extra`` fields (e.g. the benchmark). A record with several problems has several lines;
    ``{row["key"] for row in rows}`` is the set of skipped records. ``append`` adds to an existing file."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a" if append else "w", encoding="utf-8") as fh:
        for issue in issues:
            row = {**asdict(issue), "key": issue.key, "text": str(issue), **(extra or {})}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_COLUMN_TYPES = {
    "image": "string",
    "problem": "string",
    "solution": "string",
    "dataset": "string",
    "split": "string",
    "width": "int64",
    "height": "int64",
    "input_width": "int64",
    "input_height": "int64",
    "key": "string",
    "uid": "string",
    "source_file": "string",
    "line": "int64",
}


def records_to_dataset(records: list[dict[str, Any]]) -> datasets.Dataset:
    """The records as a ``datasets.Dataset`` with a fixed schema: ``bboxs`` is a list of lists of float64
    (empty lists allowed), ``problem_id`` int64 if every id is an integer that fits in 64 bits, else string.
    Extra fields are kept when Arrow can type them, otherwise stored as JSON strings."""
    import datasets

    features: dict[str, Any] = {name: datasets.Value(dtype) for name, dtype in _COLUMN_TYPES.items()}
    features["bboxs"] = datasets.List(datasets.List(datasets.Value("float64")))
    columns: dict[str, list[Any]] = {name: [r.get(name) for r in records] for name in features}
    columns["bboxs"] = [[[float(v) for v in box] for box in (r.get("bboxs") or [])] for r in records]

    ids = [r.get("problem_id") for r in records]
    if all(
        i is None or (isinstance(i, int) and not isinstance(i, bool) and _INT64_MIN <= i <= _INT64_MAX) for i in ids
    ):
        features["problem_id"] = datasets.Value("int64")
        columns["problem_id"] = ids
    else:
        features["problem_id"] = datasets.Value("string")
        columns["problem_id"] = [None if i is None else str(i) for i in ids]

    extras = sorted({k for r in records for k in r} - set(features))
    for name in extras:
        values = [r.get(name) for r in records]
        try:
            inferred = datasets.Dataset.from_dict({name: values}).features[name]
        except (TypeError, ValueError, OverflowError) as exc:  # pyarrow's errors subclass these
            logger.info("records_to_dataset: field %r stored as JSON strings (%s)", name, exc)
            inferred = datasets.Value("string")
            values = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
        features[name] = inferred
        columns[name] = values
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))
