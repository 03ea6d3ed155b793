"""SFT ablation data (SPEC §8): Vanilla SFT and Ground SFT examples built from VisCoT records, one JSONL format.

**Vanilla SFT**: one image, the question -> the ground-truth answer (``<answer>`` tags stripped).
**Ground SFT**: images [original, crop of the evidence box], two turns (SPEC §8)::

    user      [original image] ground_sft_box_text(question)
    assistant [x1,y1,x2,y2]                 # the ADJUSTED evidence box in input-image pixels, integers
    user      [crop image]     ground_sft_answer_text(question)
    assistant answer

The evidence box is the record's ``bboxs[0]`` (original pixels). It is widened to at least 28 px a side and
shifted inside the image (:func:`ground_r1.boxes.widen_and_shift`, the crop rule of SPEC §2); that adjusted box
is both the crop cut from the original full-resolution image and, converted to the model-input frame
(:func:`ground_r1.boxes.original_to_input`: Qwen's smart_resize size for the configured min/max pixels,
rounded half up), the turn-1 target. The model thus learns to write exactly the box whose crop it then sees.
The target is written in the model family's coordinate convention (``coordinates``: ``input_pixels`` for
Qwen2.5-VL, as above; ``relative_1000`` for Qwen2-VL / Qwen3-VL / Qwen3.5: the box on the 0-1000 grid, rounded
half up; ``ground_r1.models.families.coordinates``), recorded in ``sft_data.json``.

One JSONL format for both sets (one example per line; also TRL's conversational vision format). The example
values are the hand-checked record of the tests (1120 x 560 image, max_pixels 156,800: input 560 x 280)::

    {"id": "train.jsonl:12",          # "<records file name>:<line>" of the source record (ids repeat, SPEC §6)
     "kind": "ground",                # "vanilla" | "ground"
     "dataset": "textvqa",            # the record's sub-dataset
     "images": ["/data/viscot/textvqa/x.jpg", "crops/5d1f0c....png"],
                                      # one path per {"type": "image"} item, in conversation order; a relative
                                      # path is relative to the folder of this JSONL file
     "messages": [
       {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "<question>\\n Please only ..."}]},
       {"role": "assistant", "content": [{"type": "text", "text": "[546,47,560,61]"}]},
       {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "<question>\\n You can see ..."}]},
       {"role": "assistant", "content": [{"type": "text", "text": "yellow"}]}],
     "meta": {"source_file": "/abs/train.jsonl", "line": 12, "uid": "...", "width": 1120, "height": 560,
              "input_width": 560, "input_height": 280,
              "evidence_box": [1105.0, 101.0, 1115.0, 112.0],   # bboxs[0], original pixels
              "crop_box": [1092, 93, 1120, 121],                # adjusted box, original pixels (ground only)
              "box_target": [546, 47, 560, 61]}}                # adjusted box, input pixels (ground only)

A Vanilla example has one image and one user/assistant pair; its user text is the question as is (the
baseline's ``only_question`` prompt class, SPEC §7, so the evaluation asks the way training did).

:func:`prepare_sft_data` writes ``vanilla.jsonl``, ``ground.jsonl``, ``crops/`` and ``sft_data.json`` (the
settings, notably min/max pixels: a Ground SFT run must use the pixel bounds its targets were computed for)
into one folder. Both sets hold the same records in the same order (a fair ablation): a record unusable for
Ground SFT (no evidence box, an image that does not decode) is left out of both. It is idempotent: a crop is
named by a hash of (source image path, size, mtime, window), written atomically, and reused on a rerun when
its header shows the expected size; the JSONL files are rewritten atomically (same inputs, same bytes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ground_r1.boxes import MIN_CROP_SIZE, CropWindow, IntBox, crop_image, widen_and_shift
from ground_r1.models.families.coordinates import INPUT_PIXELS, box_frame, check_convention
from ground_r1.data.images import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, ImageLoadError, image_size, load_image
from ground_r1.data.records import (
    LoadedRecords,
    RecordValidationError,
    ValidationIssue,
    load_viscot_records,
    write_issues,
)
from ground_r1.prompt import baseline_text, ground_sft_answer_text, ground_sft_box_text
from ground_r1.rollout.answer import strip_answer_tags

logger = logging.getLogger(__name__)

SFT_FORMAT_VERSION = 1
KINDS = ("vanilla", "ground")
VANILLA_PROMPT_CLASS = "only_question"  # SPEC §7 baseline prompt class the Vanilla SFT user text follows
METADATA_NAME = "sft_data.json"
CROPS_DIR = "crops"
SKIPPED_NAME = "skipped_records.jsonl"
REBUILD_HINT = (
    "Re-create the file with `bash qwen-vl-finetune/scripts/prepare_SFT_data.sh` (ground_r1.cli.prepare_sft_data)."
)


class SFTDataMismatchError(ValueError):
    """A prepared SFT folder made with other min/max pixels than the run that would train on it."""


def sft_file_name(kind: str) -> str:
    """``vanilla.jsonl`` or ``ground.jsonl``.

    Raises:
        ValueError: an unknown kind (the valid names are listed).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown SFT kind {kind!r}; valid: {', '.join(KINDS)}")
    return f"{kind}.jsonl"


def format_box(box: Iterable[int]) -> str:
    """The Ground SFT turn-1 target text: ``[x1,y1,x2,y2]``, integers, no spaces (the form the prompt asks for)."""
    return "[" + ",".join(str(int(v)) for v in box) + "]"


def ground_box_target(
    record: dict[str, Any], min_crop_size: int = MIN_CROP_SIZE, coordinates: str = INPUT_PIXELS
) -> tuple[IntBox, IntBox]:
    """The adjusted evidence box of a record: ``(crop_box, box_target)``.

    ``crop_box``: ``bboxs[0]`` widened to ``min_crop_size`` a side and shifted inside the image, original pixels
    (where the crop is cut). ``box_target``: the same box in input-image pixels (``input_width/height`` of the
    record, i.e. smart_resize for the loader's min/max pixels), rounded half up: the turn-1 answer; for
    ``coordinates="relative_1000"`` the same box on the 0-1000 grid.

    Raises:
        ValueError: the record has no evidence box.
    """
    boxes = record.get("bboxs") or []
    if not boxes:
        raise ValueError("no evidence box (bboxs is empty): Ground SFT needs bboxs[0]")
    original = (int(record["width"]), int(record["height"]))
    crop_box = widen_and_shift(boxes[0], original, min_crop_size)
    frame = box_frame(coordinates, (int(record["input_width"]), int(record["input_height"])))
    return crop_box, frame.from_original(crop_box, original)


def _user(image: bool, text: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "image"}] if image else []
    content.append({"type": "text", "text": text})
    return {"role": "user", "content": content}


def _assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def _meta(record: dict[str, Any]) -> dict[str, Any]:
    boxes = record.get("bboxs") or []
    return {
        "source_file": record.get("source_file"),
        "line": record.get("line"),
        "uid": record.get("uid"),
        "width": record["width"],
        "height": record["height"],
        "input_width": record["input_width"],
        "input_height": record["input_height"],
        "evidence_box": list(boxes[0]) if boxes else None,
    }


def vanilla_example(record: dict[str, Any], image_path: str | None = None) -> dict[str, Any]:
    """Vanilla SFT example of a validated record: [image] question -> answer (tags stripped), SPEC §8."""
    return {
        "id": record["key"],
        "kind": "vanilla",
        "dataset": record["dataset"],
        "images": [image_path if image_path is not None else record["image"]],
        "messages": [
            _user(True, baseline_text(record["problem"], VANILLA_PROMPT_CLASS)),
            _assistant(strip_answer_tags(record["solution"])),
        ],
        "meta": _meta(record),
    }


def ground_example(
    record: dict[str, Any], crop_path: str, crop_box: IntBox, box_target: IntBox, image_path: str | None = None
) -> dict[str, Any]:
    """Ground SFT example of a validated record (SPEC §8): two turns, images [original, crop]."""
    meta = _meta(record)
    meta["crop_box"] = list(crop_box)
    meta["box_target"] = list(box_target)
    question = record["problem"]
    return {
        "id": record["key"],
        "kind": "ground",
        "dataset": record["dataset"],
        "images": [image_path if image_path is not None else record["image"], crop_path],
        "messages": [
            _user(True, ground_sft_box_text(question)),
            _assistant(format_box(box_target)),
            _user(True, ground_sft_answer_text(question)),
            _assistant(strip_answer_tags(record["solution"])),
        ],
        "meta": meta,
    }


# ---------------------------------------------------------------------------------------------- crops


def crop_file_name(image_path: str | os.PathLike[str], crop_box: IntBox) -> str:
    """``<hash>.png`` keyed by the source image (path, byte size, mtime) and the window: a changed image or
    window gets a new name, an unchanged one is found again on a rerun."""
    st = os.stat(image_path)
    key = json.dumps([os.fspath(image_path), st.st_size, st.st_mtime_ns, list(crop_box)])
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:24] + ".png"


def _atomic_write_bytes(path: Path, write) -> None:
    """Write through a temporary sibling and rename: a killed run never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def ensure_crop(image_path: str, crop_box: IntBox, crops_dir: Path) -> tuple[Path, bool]:
    """The crop of ``crop_box`` (original pixels) from the image, saved as PNG under ``crops_dir``.

    Returns ``(path, written)``: ``written`` is False when a crop with this key and the expected size was
    already there (rerun). Raises :class:`ImageLoadError` when the source image does not decode.
    """
    path = crops_dir / crop_file_name(image_path, crop_box)
    expected = (crop_box[2] - crop_box[0], crop_box[3] - crop_box[1])
    if path.is_file():
        try:
            if image_size(path) == expected:
                return path, False
        except ImageLoadError:
            pass
        logger.warning("crop %s is unreadable or has the wrong size: rewriting it", path)
    crop = crop_image(load_image(image_path), CropWindow(box=crop_box, is_fallback=False))
    _atomic_write_bytes(path, lambda fh: crop.save(fh, format="PNG"))
    return path, True


# ---------------------------------------------------------------------------------------------- prepare


@dataclass
class PreparedSFTData:
    """What :func:`prepare_sft_data` did."""

    output_dir: Path
    paths: dict[str, Path]
    num_examples: int
    crops_written: int = 0
    crops_reused: int = 0
    issues: list[ValidationIssue] = field(default_factory=list)
    skipped_path: Path | None = None

    def summary(self) -> str:
        files = ", ".join(str(p) for p in self.paths.values())
        text = (
            f"{self.num_examples} example(s) per set written to {files}; crops: {self.crops_written} written, "
            f"{self.crops_reused} reused"
        )
        if self.issues:
            bad = len({(i.file, i.line) for i in self.issues})
            text += f"; {bad} bad record(s) skipped, listed in {self.skipped_path}"
        return text


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    _atomic_write_bytes(path, lambda fh: fh.write(data))


def _rel(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` when it lies under it (crops), else absolute (original images)."""
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


def prepare_sft_data(
    data_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    path_prefix: str | None = None,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_crop_size: int = MIN_CROP_SIZE,
    skip_bad_records: bool = False,
    max_records: int | None = None,
    progress: bool = True,
    coordinates: str = INPUT_PIXELS,
) -> PreparedSFTData:
    """Build ``vanilla.jsonl`` and ``ground.jsonl`` (module docstring) from a VisCoT records file.

    Records are validated by :func:`ground_r1.data.records.load_viscot_records` (every problem reported as
    ``file:line: field: message``); Ground SFT adds two checks of its own (an evidence box, an image that
    decodes). Without ``skip_bad_records`` any problem raises :class:`RecordValidationError` listing them all,
    and no JSONL is written (crops already cut stay, for the rerun); with it the bad records are left out of both sets and listed in
    ``skipped_records.jsonl``. ``max_records``: only the first N records of the file are read.

    Raises:
        FileNotFoundError: ``data_path`` does not exist.
        RecordValidationError: bad records and ``skip_bad_records`` is False.
    """
    from tqdm.auto import tqdm

    coordinates = check_convention(coordinates, "prepare_sft_data(coordinates=...)")
    out = Path(output_dir).absolute()
    crops_dir = out / CROPS_DIR
    loaded: LoadedRecords = load_viscot_records(
        data_path,
        image_root=image_root,
        path_prefix=path_prefix,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        skip_bad_records=True,
        limit=max_records,
        progress=progress,
    )
    issues = list(loaded.issues)
    vanilla: list[dict[str, Any]] = []
    ground: list[dict[str, Any]] = []
    written = reused = 0
    file_unit = "item" if Path(data_path).suffix.lower() == ".json" else "line"
    # In Ground SFT the evidence box is the turn-1 target, not only a metric: a record that lost one is bad here.
    box_notes = {(n.file, n.line): [] for n in loaded.box_notes}
    for note in loaded.box_notes:
        box_notes[(note.file, note.line)].append(note)
    for record in tqdm(loaded.records, desc="SFT examples", unit="rec", disable=not progress):
        notes = box_notes.get((str(record["source_file"]), record["line"]))
        if notes:
            issues.extend(
                ValidationIssue(n.file, n.line, n.field, f"{n.message} (Ground SFT trains on bboxs[0])", n.unit)
                for n in notes
            )
            continue
        try:
            crop_box, target = ground_box_target(record, min_crop_size, coordinates)
            crop_path, was_written = ensure_crop(record["image"], crop_box, crops_dir)
        except ValueError as exc:
            issues.append(ValidationIssue(str(record["source_file"]), record["line"], "bboxs", str(exc), file_unit))
            continue
        except ImageLoadError as exc:
            issues.append(ValidationIssue(str(record["source_file"]), record["line"], "image", str(exc), file_unit))
            continue
        written += int(was_written)
        reused += int(not was_written)
        vanilla.append(vanilla_example(record))
        ground.append(ground_example(record, _rel(crop_path, out), crop_box, target))

    if issues and not skip_bad_records:
        raise RecordValidationError(issues)
    paths = {kind: out / sft_file_name(kind) for kind in KINDS}
    _write_jsonl(paths["vanilla"], vanilla)
    _write_jsonl(paths["ground"], ground)
    skipped_path = None
    if issues:
        skipped_path = write_issues(issues, out / SKIPPED_NAME)
        logger.warning("%d bad record(s) skipped (listed in %s)", len({(i.file, i.line) for i in issues}), skipped_path)
    elif (out / SKIPPED_NAME).exists():
        (out / SKIPPED_NAME).unlink()  # a stale list from an earlier run with other inputs
    metadata = {
        "format_version": SFT_FORMAT_VERSION,
        "source": str(Path(data_path).absolute()),
        "min_pixels": int(min_pixels),
        "max_pixels": int(max_pixels),
        "min_crop_size": int(min_crop_size),
        "coordinates": coordinates,
        "num_examples": len(vanilla),
        "files": {kind: p.name for kind, p in paths.items()},
    }
    _write_json(out / METADATA_NAME, metadata)
    report = PreparedSFTData(out, paths, len(vanilla), written, reused, issues, skipped_path)
    logger.info("%s", report.summary())
    return report


def _write_json(path: Path, metadata: dict[str, Any]) -> None:
    data = (json.dumps(metadata, indent=2) + "\n").encode("utf-8")
    _atomic_write_bytes(path, lambda fh: fh.write(data))


def read_sft_metadata(sft_data_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``sft_data.json`` of a prepared folder, or None when there is none."""
    path = Path(sft_data_dir) / METADATA_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------- reading


def _check_example(obj: Any) -> list[tuple[str, str]]:
    """(field, message) problems of one parsed SFT line."""
    if not isinstance(obj, dict):
        return [("example", f"expected a JSON object, got {type(obj).__name__}")]
    problems: list[tuple[str, str]] = []
    if not isinstance(obj.get("id"), str):
        problems.append(("id", "expected a string"))
    images = obj.get("images")
    if not isinstance(images, list) or not all(isinstance(p, str) and p for p in images):
        problems.append(("images", "expected a list of image paths"))
        images = None
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        return problems + [("messages", "expected a non-empty list of chat messages")]
    n_images = 0
    roles = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("system", "user", "assistant"):
            problems.append((f"messages[{i}]", "expected {'role': system|user|assistant, 'content': [...]}"))
            continue
        roles.append(msg["role"])
        content = msg.get("content")
        if not isinstance(content, list):
            problems.append((f"messages[{i}].content", "expected a list of {'type': 'image'|'text', ...} items"))
            continue
        for item in content:
            if not isinstance(item, dict) or item.get("type") not in ("image", "text"):
                problems.append((f"messages[{i}].content", f"unknown item {json.dumps(item)[:80]}"))
            elif item["type"] == "image":
                n_images += 1
                if msg["role"] == "assistant":
                    problems.append((f"messages[{i}].content", "an assistant turn cannot hold an image"))
            elif not isinstance(item.get("text"), str):
                problems.append((f"messages[{i}].content", "a text item needs a string 'text'"))
    if "assistant" not in roles:
        problems.append(("messages", "no assistant turn: nothing to learn"))
    elif roles and roles[0] == "assistant":
        problems.append(("messages", "the conversation must start with a user (or system) turn"))
    if images is not None and n_images != len(images):
        problems.append(("images", f"{len(images)} path(s) for {n_images} image item(s) in the messages"))
    return problems


def load_sft_examples(path: str | os.PathLike[str], limit: int | None = None) -> list[dict[str, Any]]:
    """Read an SFT JSONL (module docstring), checking every line; relative image paths are resolved against
    the file's folder. Image files are opened later, by the collator.

    Raises:
        FileNotFoundError: the file does not exist.
        RecordValidationError: malformed lines, every one listed as ``file:line: field: message``.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"SFT data file not found: '{p}'. {REBUILD_HINT}")
    base = p.absolute().parent
    examples: list[dict[str, Any]] = []
    issues: list[ValidationIssue] = []
    with p.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if limit is not None and len(examples) >= limit:
                break
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                issues.append(
                    ValidationIssue(
                        str(p), lineno, "json", f"invalid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})"
                    )
                )
                continue
            problems = _check_example(obj)
            if problems:
                issues += [ValidationIssue(str(p), lineno, f, m) for f, m in problems]
                continue
            obj["images"] = [str(base / img) if not os.path.isabs(img) else img for img in obj["images"]]
            examples.append(obj)
    if issues:
        raise RecordValidationError(issues, hint=REBUILD_HINT)
    if not examples:
        raise ValueError(f"{p}: no SFT examples. {REBUILD_HINT}")
    return examples


__all__ = [
    "KINDS",
    "METADATA_NAME",
    "PreparedSFTData",
    "SFT_FORMAT_VERSION",
    "crop_file_name",
    "ensure_crop",
    "format_box",
    "ground_box_target",
    "ground_example",
    "load_sft_examples",
    "prepare_sft_data",
    "read_sft_metadata",
    "sft_file_name",
    "vanilla_example",
]
