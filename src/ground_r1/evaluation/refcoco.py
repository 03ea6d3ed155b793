"""RefCOCO / RefCOCO+ / RefCOCOg grounding (SPEC §7): items, per-item IoU, Acc@0.5 under two labelled protocols.

Released file format (one object, i.e. one referred object, per line)::

    {"image", "width", "height", "bboxs": [[x, y, w, h]] (COCO xywh, original pixels), "dataset": "RefCOCO/val",
     "problem": "", "solution": ["expression 1", "expression 2", ...], "problem_id"}

Each expression is one item, keyed ``file:line:expression_index``, asked with Qwen's grounding prompt
(:data:`ground_r1.prompt.REFCOCO_TEMPLATE`). Scoring: the first ``[a, b, c, d]`` of the final turn, negatives
allowed (:func:`ground_r1.boxes.parse_first_box_signed`), rescaled from the model-input frame to original pixels
**in float and not clamped** (:func:`rescale_unclamped`: a box reaching outside the image keeps its size, as
lmms-eval 0.7.3's ``refcoco_bbox_rec`` and the release score it), IoU against the ground truth converted to xyxy;
a hit is IoU >= 0.5; no box is a miss. The clamp of :func:`ground_r1.boxes.input_to_original` stays where crops
and the GIoU metric need a box inside the image; clamping here turned misses into hits (IoU 0.44 -> 1.0).

Three numbers, each labelled in the table:

- **standard**: every expression counts once (the usual RefCOCO protocol; reported first);
- **any-expression**: an object counts as correct when *any* of its expressions hits (the release's protocol; the
  paper's RefCOCO numbers, SPEC §9, were computed this way);
- **release**: the release's whole rule, any-expression with the release's box rescaling
  (:func:`rescale_release`: ``int(x / input_width * width)`` truncation, not clamped; an inverted or empty box is
  a miss, where the release's script crashed).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from ground_r1.boxes import Box, iou, parse_first_box_signed, xywh_to_xyxy
from ground_r1.evaluation.inference import EvalItem, LoadedItems, limit_per_dataset
from ground_r1.evaluation.uncertainty import mean_estimate
from ground_r1.models.families import get_family
from ground_r1.models.families.coordinates import frame_of_record

# RefCOCO as a run's identity names it: bump the version when its items or prompt change.
REFCOCO_BENCHMARK = "refcoco"
REFCOCO_VERSION = "1"

IOU_THRESHOLD = 0.5
PROTOCOL_LABELS = {
    "standard": "Acc@0.5 standard (per expression)",
    "any_expression": "Acc@0.5 any expression (object hit by any of its expressions)",
    "release": "Acc@0.5 release (any expression, int() boxes)",
}
SPLIT_ORDER = (
    "RefCOCO/val",
    "RefCOCO/testA",
    "RefCOCO/testB",
    "RefCOCOplus/val",
    "RefCOCOplus/testA",
    "RefCOCOplus/testB",
    "RefCOCOg/val",
    "RefCOCOg/test",
)
SCORES_NAME = "refcoco_scores.jsonl"


# ------------------------------------------------------------------------------------------------ items


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_record(obj: Any) -> list[tuple[str, str]]:
    """Problems of one released record, as ``(field, why)``. The box is the ground truth of the only metric
    here: a record without a usable one cannot be evaluated."""
    if not isinstance(obj, dict):
        return [("record", f"expected a JSON object, got {type(obj).__name__}")]
    problems = []
    for name in ("image", "dataset"):
        if not isinstance(obj.get(name), str) or not obj[name].strip():
            problems.append((name, f"expected a non-empty string, got {obj.get(name)!r}"))
    for name in ("width", "height"):
        if not _positive_int(obj.get(name)):
            problems.append((name, f"expected a positive integer, got {obj.get(name)!r}"))
    boxes = obj.get("bboxs")
    box = boxes[0] if isinstance(boxes, list) and boxes else None
    if not (
        isinstance(box, list)
        and len(box) == 4
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)
    ):
        problems.append(("bboxs", f"expected [[x, y, w, h]] (COCO xywh), got {json.dumps(boxes)}"))
    elif box[2] <= 0 or box[3] <= 0:
        problems.append(("bboxs[0]", f"width and height must be > 0 in COCO xywh, got {json.dumps(box)}"))
    solution = obj.get("solution")
    expressions = [solution] if isinstance(solution, str) else solution
    if not (
        isinstance(expressions, list) and expressions and all(isinstance(e, str) and e.strip() for e in expressions)
    ):
        problems.append(("solution", f"expected a list of referring expressions, got {json.dumps(solution)}"))
    return problems


def _check_image(path: Path) -> str | None:
    """Why the image cannot be read (header and completeness, :func:`ground_r1.data.images.image_size`), or None."""
    from ground_r1.data.images import ImageLoadError, image_size

    try:
        image_size(path, verify=True)
    except ImageLoadError as exc:
        return (
            f"image file not found: '{path}'; check IMAGE_ROOT"
            if exc.reason == "file not found"
            else (f"unreadable image '{path}': {exc.reason}")
        )
    return None


def read_refcoco_items(
    path: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    path_prefix: str | None = None,
    max_objects_per_split: int | None = None,
    skip_bad_records: bool = True,
    check_images: bool = True,
) -> LoadedItems:
    """One item per referring expression of a released RefCOCO file (see the module docstring), and the
    validation result of every record of the file.

    Relative image paths are taken from ``image_root``, else from the file's folder. ``max_objects_per_split``
    keeps the first objects (lines) of each split (``None``/0: all). ``check_images``: each image's header is
    read (a missing or unreadable image is a problem of its record). A record with a problem is skipped
    (``skip_bad_records``, the evaluation default; ``loaded.issues`` says why) or, without it, every problem is
    raised at once.

    Raises:
        FileNotFoundError: no such file.
        RecordValidationError: (a ValueError) without ``skip_bad_records``, listing every malformed record as
            ``file:line: field: why``.
    """
    from ground_r1.data.records import LoadedRecords, RecordValidationError, ValidationIssue, resolve_image_path

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"RefCOCO file not found: '{p}'")
    root = image_root if image_root is not None else p.resolve().parent
    objects, issues, skipped = [], [], 0
    for line, text in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            found = [("json", f"invalid JSON ({exc.msg} at column {exc.colno})")]
        else:
            found = _check_record(obj)
        image = None
        if not found:
            image = resolve_image_path(obj["image"], root, path_prefix)
            why = _check_image(image) if check_images else None
            if why is not None:
                found = [("image", why)]
        issues += [ValidationIssue(str(p), line, name, why) for name, why in found]
        if found:
            skipped += 1
        else:
            objects.append((line, obj, str(image)))
    if issues and not skip_bad_records:
        from ground_r1.evaluation.inference import EVAL_SKIP_HINT

        raise RecordValidationError(issues, EVAL_SKIP_HINT)
    loaded = LoadedRecords(records=[{"line": line} for line, _, _ in objects], issues=issues, skipped=skipped)
    objects = limit_per_dataset(objects, max_objects_per_split, lambda o: o[1]["dataset"])
    items = []
    for line, obj, image in objects:
        expressions = [obj["solution"]] if isinstance(obj["solution"], str) else obj["solution"]
        for j, expression in enumerate(expressions):
            fields = {
                "object_key": f"{p.name}:{line}",
                "expression_index": j,
                "num_expressions": len(expressions),
                "width": obj["width"],
                "height": obj["height"],
                "gt_box_xywh": list(obj["bboxs"][0]),
                "gt_box": list(xywh_to_xyxy(obj["bboxs"][0])),
                "problem_id": obj.get("problem_id"),
            }
            items.append(EvalItem(f"{p.name}:{line}:{j}", obj["dataset"], expression, image, fields))
    return LoadedItems(items, loaded)


def load_refcoco_items(
    path: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    path_prefix: str | None = None,
    max_objects_per_split: int | None = None,
) -> list[EvalItem]:
    """The items of :func:`read_refcoco_items`, strict (a malformed record raises) and without image checks."""
    return read_refcoco_items(
        path,
        image_root=image_root,
        path_prefix=path_prefix,
        max_objects_per_split=max_objects_per_split,
        skip_bad_records=False,
        check_images=False,
    ).items


# ---------------------------------------------------------------------------------------------- scoring


def rescale_unclamped(box: Box, input_size: tuple[int, int], original_size: tuple[int, int]) -> Box:
    """Model-input pixels -> original pixels in float, not clamped (the RefCOCO headline, lmms-eval's reading)."""
    (in_w, in_h), (orig_w, orig_h) = input_size, original_size
    x1, y1, x2, y2 = box
    return (x1 * orig_w / in_w, y1 * orig_h / in_h, x2 * orig_w / in_w, y2 * orig_h / in_h)


def rescale_release(
    box: Box, input_size: tuple[int, int], original_size: tuple[int, int]
) -> tuple[int, int, int, int] | None:
    """The release's rescaling (``cal_bbox_for_iou`` of ``multi_RefCOCO.py``): ``int(x / input_width * width)``,
    truncation toward zero, not clamped; ``None`` (a miss) for a box with ``x1 >= x2`` or ``y1 >= y2``."""
    (in_w, in_h), (orig_w, orig_h) = input_size, original_size
    x1, y1, x2, y2 = box
    if x1 >= x2 or y1 >= y2:
        return None
    return (int(x1 / in_w * orig_w), int(y1 / in_h * orig_h), int(x2 / in_w * orig_w), int(y2 / in_h * orig_h))


def score_prediction(prediction: Mapping[str, Any]) -> dict[str, Any]:
    """IoU and hit of one RefCOCO prediction under the headline rule (``box``, ``iou``, ``hit``: float, unclamped)
    and the release's (``box_release``, ``iou_release``, ``hit_release``: int, unclamped). A failed prediction keeps
    ``status`` and no IoU."""
    row = {
        "key": prediction["key"],
        "dataset": prediction["dataset"],
        "status": prediction.get("status"),
        "object_key": prediction.get("object_key"),
        "box": None,
        "iou": None,
        "hit": None,
        "box_release": None,
        "iou_release": None,
        "hit_release": None,
    }
    if prediction.get("status") != "ok":
        return row
    trajectory = prediction["trajectory"]
    turns = prediction.get("turns") or [""]
    parsed = parse_first_box_signed(turns[-1])
    if parsed is None and trajectory.get("model_family"):
        # The family's own grounding syntax, if it has one (Qwen2-VL: "(x1,y1),(x2,y2)" once its box tokens are
        # decoded away; models/families/qwen2_vl.py).
        parsed = get_family(trajectory["model_family"]).parse_native_box(turns[-1])
    row.update(iou=0.0, hit=False, iou_release=0.0, hit_release=False)
    if parsed is None:
        return row
    # The frame the model's box is written in: the input pixels (Qwen2.5-VL) or the 0-1000 grid (Qwen2-VL,
    # Qwen3-VL), as recorded with the prediction (models.families.coordinates).
    frame, original_size = frame_of_record(trajectory), tuple(trajectory["original_size"])
    box = frame.to_original_unclamped(parsed, original_size)
    value = iou(box, prediction["gt_box"])
    row.update(box=list(box), iou=value, hit=value >= IOU_THRESHOLD)
    release = frame.to_original_release(parsed, original_size)
    if release is not None:
        release_iou = iou(release, prediction["gt_box"])
        row.update(box_release=list(release), iou_release=release_iou, hit_release=release_iou >= IOU_THRESHOLD)
    return row


@dataclass
class SplitResult:
    expressions: int  # scored expressions (failures excluded)
    objects: int  # objects with at least one scored expression
    standard: float | None  # hits / expressions
    any_expression: float | None  # objects with any hit / objects
    no_box: int  # expressions whose answer held no box (scored as misses)
    failures: int  # predictions that failed (excluded)
    release: float | None = None  # objects with any release-rule hit / objects (None: rows without the release rule)
    per_expression: dict[str, bool] | None = None  # key -> hit of each scored expression (error bars)
    standard_se: float | None = None  # standard error of the mean over expressions (evaluation.uncertainty)
    any_expression_se: float | None = None  # standard error of the mean over objects
    release_se: float | None = None  # standard error of the mean over objects, release rule


def accuracy_by_split(rows: Iterable[Mapping[str, Any]]) -> dict[str, SplitResult]:
    """Acc@0.5 per split under both protocols (SPEC §7)."""
    by_split: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_split.setdefault(str(row["dataset"]), []).append(row)
    results = {}
    for split, split_rows in by_split.items():
        scored = [r for r in split_rows if r.get("status") == "ok"]
        objects: dict[str, bool] = {}
        release: dict[str, bool] = {}
        for r in scored:
            key = str(r["object_key"])
            objects[key] = objects.get(key, False) or bool(r["hit"])
            release[key] = release.get(key, False) or bool(r.get("hit_release"))
        has_release = bool(scored) and all("hit_release" in r for r in scored)
        results[split] = SplitResult(
            expressions=len(scored),
            objects=len(objects),
            standard=sum(bool(r["hit"]) for r in scored) / len(scored) if scored else None,
            any_expression=sum(objects.values()) / len(objects) if objects else None,
            no_box=sum(1 for r in scored if r["box"] is None),
            failures=len(split_rows) - len(scored),
            release=sum(release.values()) / len(release) if has_release else None,
            per_expression={str(r["key"]): bool(r["hit"]) for r in scored},
            standard_se=mean_estimate([float(bool(r["hit"])) for r in scored]).se,
            any_expression_se=mean_estimate([float(hit) for hit in objects.values()]).se,
            release_se=mean_estimate([float(hit) for hit in release.values()]).se if has_release else None,
        )
    return results


# ------------------------------------------------------------------------------------------------ table


def _ordered(results: Mapping[str, SplitResult]) -> list[str]:
    return [s for s in SPLIT_ORDER if s in results] + sorted(s for s in results if s not in SPLIT_ORDER)


def _pct(value: float | None, digits: int, se: float | None = None, with_se: bool = False) -> str:
    if value is None:
        return "n/a"
    text = f"{100 * value:.{digits}f}"
    if with_se:
        text += f" ± {100 * se:.{digits}f}" if se is not None else " ± n/a"
    return text


_HEADER = [
    "split",
    "expressions",
    "objects",
    PROTOCOL_LABELS["standard"],
    PROTOCOL_LABELS["any_expression"],
    PROTOCOL_LABELS["release"],
    "no box",
    "failures",
]


def _cells(split: str, r: SplitResult, digits: int) -> list[str]:
    return [
        split,
        str(r.expressions),
        str(r.objects),
        _pct(r.standard, digits, r.standard_se, True),
        _pct(r.any_expression, digits, r.any_expression_se, True),
        _pct(r.release, digits, r.release_se, True),
        str(r.no_box),
        str(r.failures),
    ]


def render_markdown(results: Mapping[str, SplitResult], label: str = "", header: list[str] | None = None) -> str:
    lines = [
        f"## RefCOCO grounding{f' ({label})' if label else ''}, Acc@0.5 x100 (boxes rescaled in float, not clamped)",
        "",
        *(header or []),
        *([""] if header else []),
        "| " + " | ".join(_HEADER) + " |",
        "|---" + "|---:" * (len(_HEADER) - 1) + "|",
    ]
    lines += ["| " + " | ".join(_cells(s, results[s], 1)) + " |" for s in _ordered(results)]
    lines += [
        "",
        f"- standard: each referring expression counts once (IoU >= {IOU_THRESHOLD} with the "
        "ground-truth box); the usual protocol. The predicted box is rescaled to original pixels in float and "
        "not clamped to the image (lmms-eval 0.7.3 refcoco_bbox_rec; the release did not clamp either).",
        "- any expression: an object counts as correct if any of its expressions hits; the paper's RefCOCO "
        "numbers used this protocol.",
        "- release: the release's whole rule, any expression with int() truncated boxes (multi_RefCOCO.py).",
        "- no box: answers without a parsable box, scored as misses; failures: predictions that failed, excluded.",
        "- ± one standard error of the mean: over the split's expressions (standard), over its objects (any "
        "expression, release) (docs/metrics.md, Error bars).",
    ]
    return "\n".join(lines) + "\n"


def render_csv(results: Mapping[str, SplitResult]) -> str:
    """The table as CSV: each protocol's number (x100) followed by its standard error (x100; empty when n/a)."""

    def se(value: float | None) -> str:
        return "" if value is None else f"{100 * value:.2f}"

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        _HEADER[:4] + ["standard_se", _HEADER[4], "any_expression_se", _HEADER[5], "release_se"] + _HEADER[6:]
    )
    for split in _ordered(results):
        r = results[split]
        writer.writerow(
            [
                split,
                r.expressions,
                r.objects,
                _pct(r.standard, 2),
                se(r.standard_se),
                _pct(r.any_expression, 2),
                se(r.any_expression_se),
                _pct(r.release, 2),
                se(r.release_se),
                r.no_box,
                r.failures,
            ]
        )
    return buffer.getvalue()


# --------------------------------------------------------------------------------------- built-in demo


def write_synthetic_refcoco(out_dir: str | os.PathLike[str], num_objects: int = 4, seed: int = 0) -> Path:
    """A small RefCOCO-format file of synthetic scenes (cards of distinct colours; "the {colour} card"), for the
    launchers' default run. Images are written beside it. Deterministic for a seed. Returns the file's path."""
    from ground_r1.demo.synthetic import SyntheticConfig, make_grounding_example, record_rng

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    path = out / "refcoco_synthetic.jsonl"
    cfg = SyntheticConfig(seed=seed)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(num_objects):
            image, example = make_grounding_example(record_rng(seed, "refcoco", i), cfg)
            rel = f"images/refcoco_{i:04d}.png"
            image.save(out / rel)
            x1, y1, x2, y2 = example["bbox"]
            record = {
                "image": rel,
                "width": example["width"],
                "height": example["height"],
                "bboxs": [[x1, y1, x2 - x1, y2 - y1]],
                "dataset": "synthetic/val",
                "problem": "",
                "solution": [f"the {example['kind']} card", f"{example['kind']} card"],
                "problem_id": i,
            }
            handle.write(json.dumps(record) + "\n")
    return path
