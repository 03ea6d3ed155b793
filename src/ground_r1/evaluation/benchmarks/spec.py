"""What a general benchmark is (SPEC §7): data -> prompt -> per-item record -> aggregate.

A :class:`BenchmarkSpec` reads the release's JSONL file into :class:`BenchmarkItem` s, builds the
prompts of both protocols (the direct single-turn one, with the benchmark's answer-format suffix, and
the plain question the Ground-R1 multi-round protocol wraps in its template), parses and scores one
prediction into a JSON-ready record, and aggregates records into the metrics the paper reports.
Subclasses (one module per metric family) fill in the benchmark-specific parts; the registry holds one
instance per benchmark, so adding a benchmark is adding one entry there.

Reading (:meth:`BenchmarkSpec.read`) validates every record of the file before any inference, images
included (each header is read: a missing, empty or unreadable image is its record's problem). A record
that cannot be evaluated is skipped and named as ``file:line: field: why`` (a
:class:`ground_r1.data.records.ValidationIssue`); the rest are items. Only a file with no usable record
at all is a :class:`BenchmarkFileError`. :meth:`BenchmarkSpec.load` is the strict form: any problem
raises, all of them listed. Items are keyed by ``"{file name}:{line}"`` because the release's ids
(``Question_id``, ``problem_id``) repeat across tasks and splits (SPEC §6).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ground_r1.data.records import ValidationIssue
from ground_r1.evaluation.benchmarks.parsing import strip_answer_tags

if TYPE_CHECKING:
    from ground_r1.evaluation.uncertainty import Estimate

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS", "BenchmarkFileError", "BenchmarkItem", "BenchmarkRecords", "BenchmarkSpec", "percent",
    "variant_accuracies", "variant_key",
]

# Tried, in order, for an `Image` written without extension (SEED-Bench writes bare ids).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")

_MAX_LISTED_PROBLEMS = 50


class BenchmarkFileError(ValueError):
    """A benchmark file that cannot be evaluated; ``problems`` holds one ``file:line:field: why`` each."""

    def __init__(self, benchmark: str, path: Path, problems: list[str]) -> None:
        self.benchmark = benchmark
        self.path = path
        self.problems = list(problems)
        listed = problems[:_MAX_LISTED_PROBLEMS]
        more = len(problems) - len(listed)
        lines = "\n".join(f"  {p}" for p in listed)
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"{benchmark}: {len(problems)} problem(s) in {path}, no record left to evaluate; fix the file (or "
            f"point DATASET_ROOT / IMAGE_ROOT at the folders holding it and its images):\n{lines}{tail}"
        )


@dataclass
class BenchmarkItem:
    """One question of a benchmark, ready for inference.

    Attributes:
        key: ``"{file name}:{line}"`` (1-based line), unique within a run.
        benchmark: canonical benchmark name.
        image: resolved image path, or a list of paths for a multi-image record.
        question: the question as posed to the model (options included, in the file's own format).
        answer: the ground truth (``<answer>`` tags stripped).
        category: what per-category metrics group by (task, split, capability list, ...).
        extra: every other field of the record, plus benchmark-specific parsed fields (``options``...).
        source_file: the JSONL path read.
        line: 1-based line number in ``source_file``.
    """

    key: str
    benchmark: str
    image: str | list[str]
    question: str
    answer: str
    category: str
    extra: dict[str, Any] = field(default_factory=dict)
    source_file: str = ""
    line: int = 0


@dataclass
class BenchmarkRecords:
    """What :meth:`BenchmarkSpec.read` read from a file: the items, and every skipped record's problems.

    Attributes:
        file: the file read.
        items: the records that can be evaluated, in file order.
        skipped: one issue per problem of a skipped record (``file:line: field: why``).
        records_read: the records (non-blank lines) of the file, every one validated.
    """

    file: Path
    items: list[BenchmarkItem]
    skipped: list[ValidationIssue] = field(default_factory=list)
    records_read: int = 0

    @property
    def skipped_records(self) -> int:
        return len({issue.line for issue in self.skipped})


class _ItemProblems(Exception):
    """Raised inside record parsing to collect ``(field, why)`` problems of one line."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__(problems)
        self.problems = problems


@dataclass(frozen=True)
class BenchmarkSpec:
    """Base of every general benchmark; subclasses override the ``_``-prefixed hooks and the metrics.

    Attributes:
        name: canonical name (the release's file stem, e.g. "MME_RealWorld_Lite").
        version: bumped whenever prompts, parsing or metrics change, so results carry what made them.
        default_file: the release's file name (``load`` accepts a folder holding it).
        aliases: other names the registry accepts (matched case- and punctuation-insensitively).
        direct_suffix: appended on a new line to the question in the direct protocol ("" for none).
        needs_judge: True when items are scored by an LLM grader (MM-Vet).
        headline_metric: dotted path into ``aggregate()``'s result of the number the paper reports.
        default_image_ext: extension assumed for an extension-less ``Image`` when images are not checked.
        rule: the rule that makes the headline number, as every table prints it (reference and version).
        variant_rules: ``(key, label)`` of the other rules each record is also scored by (ours where more lenient
            than the reference, the release's); ``record["variants"][key]`` and the aggregate's
            ``variants[key]`` hold them, and the tables print them as labelled variant rows.
    """

    name: str
    version: str
    default_file: str
    aliases: tuple[str, ...] = ()
    description: str = ""
    direct_suffix: str = ""
    needs_judge: bool = False
    headline_metric: str = "accuracy"
    default_image_ext: str = ".jpg"
    rule: str = ""
    variant_rules: tuple[tuple[str, str], ...] = ()

    required_fields: ClassVar[tuple[str, ...]] = ("Image", "problem", "solution")

    # ------------------------------------------------------------------ data

    def resolve_file(self, path: str | Path) -> Path:
        """The JSONL to read: ``path`` itself, or ``path/default_file`` when ``path`` is a folder.

        Raises:
            FileNotFoundError: naming the benchmark, the path tried and the file name expected.
        """
        path = Path(path).expanduser()
        candidate = path / self.default_file if path.is_dir() else path
        if not candidate.is_file():
            raise FileNotFoundError(
                f"{self.name}: benchmark file not found: {candidate} (expected the release's "
                f"{self.default_file!r}, or a folder holding it)"
            )
        return candidate

    def read(
        self, path: str | Path, dataset_root: str | Path, *, check_images: bool = True
    ) -> BenchmarkRecords:
        """Read and validate every record of a release JSONL file; images are resolved against ``dataset_root``.

        Blank lines are skipped. A record that cannot be evaluated is left out and named (module docstring);
        with ``check_images`` (default) a missing or unreadable image is such a problem, so a wrong
        ``dataset_root`` shows on every record rather than mid-run.

        Raises:
            FileNotFoundError: the file does not exist.
            BenchmarkFileError: the file holds no usable record (empty, or every record skipped: listed).
        """
        file = self.resolve_file(path)
        root = Path(dataset_root).expanduser()
        items: list[BenchmarkItem] = []
        skipped: list[ValidationIssue] = []
        read = 0
        with file.open("rb") as handle:
            for line_no, raw_bytes in enumerate(handle, start=1):
                try:
                    raw = raw_bytes.decode("utf-8")
                except UnicodeDecodeError as err:
                    read += 1
                    skipped.append(ValidationIssue(str(file), line_no, "json", f"not valid UTF-8 ({err.reason})"))
                    continue
                if not raw.strip():
                    continue
                read += 1
                try:
                    record = json.loads(raw)
                except json.JSONDecodeError as err:
                    why = f"invalid JSON ({err.msg.removesuffix(' at')} at column {err.colno})"
                    skipped.append(ValidationIssue(str(file), line_no, "json", why))
                    continue
                if not isinstance(record, dict):
                    skipped.append(ValidationIssue(str(file), line_no, "record",
                                                   f"expected a JSON object, got {type(record).__name__}"))
                    continue
                try:
                    item = self._build_item(record, file, line_no, root, check_images)
                except _ItemProblems as found:
                    skipped.extend(ValidationIssue(str(file), line_no, fld, why) for fld, why in found.problems)
                    continue
                items.append(item)
        problems = self._validate_items(items)
        if not items or problems:
            listed = problems or [str(i) for i in skipped] or [f"{file}: no records (the file is empty)"]
            raise BenchmarkFileError(self.name, file, listed)
        if skipped:
            logger.warning("%s: %d of %d record(s) of %s cannot be evaluated and are skipped (first: %s)",
                           self.name, len({i.line for i in skipped}), read, file, skipped[0])
        logger.info("%s: loaded %d items from %s", self.name, len(items), file)
        return BenchmarkRecords(file, items, skipped, read)

    def load(
        self, path: str | Path, dataset_root: str | Path, *, check_images: bool = True
    ) -> list[BenchmarkItem]:
        """The items of :meth:`read`, strict: any skipped record raises.

        Raises:
            FileNotFoundError: the file does not exist.
            BenchmarkFileError: listing every ``file:line: field: why`` problem of the file.
        """
        result = self.read(path, dataset_root, check_images=check_images)
        if result.skipped:
            raise BenchmarkFileError(self.name, result.file, [str(issue) for issue in result.skipped])
        return result.items

    def _build_item(
        self, record: dict[str, Any], file: Path, line: int, root: Path, check_images: bool
    ) -> BenchmarkItem:
        problems: list[tuple[str, str]] = []
        for name in self.required_fields:
            if name not in record:
                problems.append((name, "missing field"))
        if problems:
            raise _ItemProblems(problems)
        for name in ("problem", "solution"):
            if name in self.required_fields:
                value = record[name]
                if not isinstance(value, str) or not value.strip():
                    problems.append((name, f"expected a non-empty string, got {value!r}"))
        image = self._resolve_images(record.get("Image"), root, check_images, problems)
        if problems:
            raise _ItemProblems(problems)
        extra = {k: v for k, v in record.items() if k not in ("Image", "problem", "solution")}
        item = BenchmarkItem(
            key=f"{file.name}:{line}",
            benchmark=self.name,
            image=image,
            question=record["problem"],
            answer=strip_answer_tags(record["solution"]),
            category="",
            extra=extra,
            source_file=str(file),
            line=line,
        )
        self._finish_item(item, record, problems)
        if problems:
            raise _ItemProblems(problems)
        return item

    def _resolve_images(
        self, value: Any, root: Path, check: bool, problems: list[tuple[str, str]]
    ) -> str | list[str]:
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) and v.strip() for v in values):
            problems.append(("Image", f"expected a path or a list of paths, got {value!r}"))
            return ""
        resolved = []
        for rel in values:
            path = self._resolve_image(rel.strip(), root, check, problems)
            resolved.append(path)
        return resolved if isinstance(value, list) else resolved[0]

    def _resolve_image(
        self, rel: str, root: Path, check: bool, problems: list[tuple[str, str]]
    ) -> str:
        base = root / rel
        candidates = [base]
        if not base.suffix:
            candidates += [base.with_name(base.name + ext) for ext in IMAGE_EXTENSIONS]
        if check:
            for candidate in candidates:
                if candidate.is_file():
                    why = _unreadable(candidate)
                    if why is not None:
                        problems.append(("Image", why))
                    return str(candidate)
            tried = f" (also tried {', '.join(IMAGE_EXTENSIONS)})" if len(candidates) > 1 else ""
            problems.append(("Image", f"image not found: {base}{tried}"))
            return str(base)
        if not base.suffix:
            for candidate in candidates[1:]:
                if candidate.is_file():
                    return str(candidate)
            return str(base.with_name(base.name + self.default_image_ext))
        return str(base)

    def first_items(self, items: list[BenchmarkItem], count: int) -> list[BenchmarkItem]:
        """The items a ``--max_items count`` run keeps: the first ``count`` (a benchmark whose scoring needs whole
        groups, MMBench's rotated copies, keeps whole groups)."""
        return items[:count]

    def _finish_item(
        self, item: BenchmarkItem, record: dict[str, Any], problems: list[tuple[str, str]]
    ) -> None:
        """Benchmark-specific parsing and checks: set ``category``, fill ``extra``, add problems."""

    def _validate_items(self, items: list[BenchmarkItem]) -> list[str]:
        """Checks across items (e.g. MME image pairs); returns ``file:line:field: why`` strings."""
        return []

    # ------------------------------------------------------------------ prompts

    def question(self, item: BenchmarkItem) -> str:
        """The question for the Ground-R1 multi-round protocol (SPEC §2 wraps it in its template)."""
        return item.question

    def direct_prompt(self, item: BenchmarkItem) -> str:
        """The direct single-turn prompt (SPEC §7): the question, then the answer-format suffix."""
        question = self.question(item).rstrip()
        return f"{question}\n{self.direct_suffix}" if self.direct_suffix else question

    # ------------------------------------------------------------------ scoring

    def parse_answer(self, text: str) -> str | None:
        """The normalised answer a prediction gives, or None when it cannot be read."""
        raise NotImplementedError(f"{type(self).__name__} must define parse_answer")

    def score_item(
        self, item: BenchmarkItem, prediction_text: str, *, judge_score: float | None = None
    ) -> dict[str, Any]:
        """A per-item record (JSON-ready) holding everything ``aggregate`` needs.

        ``judge_score`` is only for benchmarks with ``needs_judge``; rule-scored ones reject it.
        """
        raise NotImplementedError(f"{type(self).__name__} must define score_item")

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Metrics in the paper's units (x100) from per-item records."""
        raise NotImplementedError(f"{type(self).__name__} must define aggregate")

    def estimate(self, records: list[dict[str, Any]], metric: str = "headline") -> "Estimate":
        """A reported number with its item count and uncertainty (``ground_r1.evaluation.uncertainty``).

        By default the number is the mean over items of 100 x ``correct``, so its standard error. A spec whose
        number is not a plain mean over independent items (a sum over tasks, an F1, a score over groups of items)
        overrides this and feeds one row per unit (item or group) and its statistic to ``bootstrap_estimate``.
        ``metric`` names the row of the summary table when a spec reports several: ``"headline"``, a spec's own
        (POPE ``"f1"``, MMBench ``"single_pass"``, a choice benchmark's ``"answerable"``), or ``"variant:KEY"``, the
        number of the variant rule ``KEY`` (issue 16's ``variant_rules``; by default the mean of
        ``record["variants"][KEY]``, the same estimator as the headline's).
        """
        from ground_r1.evaluation.uncertainty import mean_estimate

        key = variant_key(metric)
        if key is not None:
            return mean_estimate([100.0 * bool(r["variants"][key]) for r in records])
        return mean_estimate([100.0 * bool(r["correct"]) for r in records])

    def headline(self, metrics: dict[str, Any]) -> float | None:
        """The number the paper reports, read from ``aggregate()``'s result by ``headline_metric``."""
        value: Any = metrics
        for part in self.headline_metric.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value if isinstance(value, (int, float)) else None

    # ------------------------------------------------------------------ helpers for subclasses

    def _base_record(self, item: BenchmarkItem, judge_score: float | None) -> dict[str, Any]:
        if judge_score is not None and not self.needs_judge:
            raise ValueError(
                f"{self.name} is scored by rule; judge_score is only for benchmarks with needs_judge"
            )
        return {
            "key": item.key,
            "benchmark": self.name,
            "version": self.version,
            "category": item.category,
            "answer": item.answer,
        }

    def _check_records(self, records: list[dict[str, Any]]) -> None:
        for index, record in enumerate(records):
            if record.get("benchmark") != self.name:
                raise ValueError(
                    f"{self.name}: record {index} ({record.get('key')!r}) belongs to "
                    f"{record.get('benchmark')!r}; aggregate each benchmark's records separately"
                )


def _unreadable(path: Path) -> str | None:
    """Why an existing image file cannot be used (empty, not an image, truncated, too large), or None; the
    cheap check of :func:`ground_r1.data.images.image_size` (header and end marker, no decoding)."""
    from ground_r1.data.images import ImageLoadError, image_size

    try:
        image_size(path, verify=True)
    except ImageLoadError as exc:
        return f"unreadable image {path}: {exc.reason}"
    return None


def variant_key(metric: str) -> str | None:
    """The variant rule an ``estimate`` metric names (``"variant:release"`` -> ``"release"``), else None."""
    return metric.removeprefix("variant:") if metric.startswith("variant:") else None


def variant_accuracies(records: list[dict[str, Any]], keys: list[str] | tuple[str, ...]) -> dict[str, float]:
    """Accuracy (x100) of each variant rule over ``records`` (their ``variants[key]`` flags)."""
    return {key: percent(sum(bool(r["variants"][key]) for r in records), len(records)) for key in keys}


def percent(numerator: float, denominator: float) -> float:
    """100 * numerator / denominator, 0.0 for an empty denominator (metrics of an empty group)."""
    return 100.0 * numerator / denominator if denominator else 0.0
