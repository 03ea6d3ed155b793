"""What a benchmark is (SPEC §7): data -> prompt -> per-item record -> aggregate -> summary rows.

A :class:`BenchmarkSpec` is everything the one evaluation pipeline (:mod:`ground_r1.evaluation.pipeline`, run by
``python -m ground_r1.cli.evaluate``) knows about a benchmark: the pipeline calls the methods below and never asks
which class a spec is. It calls the **run hooks** (``supported_protocols``, ``locate_data`` / ``demo_data``,
``read_run``, ``eval_items``, ``judge_items`` + ``judge_plan``, ``score_run``, ``write_run_table``); the base class
implements them for a benchmark of release-format records (:mod:`ground_r1.evaluation.general`) with the per-item
contract below, and a benchmark read and scored its own way overrides them wholesale (VisCoT,
:mod:`~ground_r1.evaluation.benchmarks.viscot`; RefCOCO, :mod:`~ground_r1.evaluation.benchmarks.refcoco`). The
per-item contract, in the order the base hooks use it:

- **Data.** :meth:`~BenchmarkSpec.locate` finds the file (and the image folder) under ``DATASET_ROOT``;
  :meth:`~BenchmarkSpec.read` reads it with the reader of the spec's ``layout`` (:meth:`~BenchmarkSpec.layout_of`)
  (:mod:`~ground_r1.evaluation.benchmarks.readers`: what a line holds, or why it cannot be read) and validates
  each record (:meth:`~BenchmarkSpec._build_items`, :meth:`~BenchmarkSpec._finish_item`), images included, before
  any inference; :meth:`~BenchmarkSpec.prepare_images` writes images embedded in the file (a TSV's base64 cells)
  to files before inference. A record that cannot be evaluated is skipped and named as ``file:line: field: why`` (a
  :class:`ground_r1.data.records.ValidationIssue`); only a file with no usable record at all is a
  :class:`BenchmarkFileError`; :meth:`~BenchmarkSpec.load` is the strict form. :meth:`~BenchmarkSpec.first_items`
  keeps what ``--max_items`` keeps. Items are keyed by ``"{file name}:{line}"``: the release's ids
  (``Question_id``, ``problem_id``) repeat across tasks and splits (SPEC §6).
- **Prompts.** :meth:`~BenchmarkSpec.direct_prompt` (the one-turn protocol: the question and the benchmark's
  answer-format suffix) and :meth:`~BenchmarkSpec.question` (what the grounding protocols wrap in their template).
- **Scores.** :meth:`~BenchmarkSpec.score_prediction` makes one JSON-ready record per predicted item (by
  default :meth:`~BenchmarkSpec.score_item` of its final turn; the zoom-in specs also score the trajectory's boxes),
  :meth:`~BenchmarkSpec.aggregate` the metrics in the paper's units, :meth:`~BenchmarkSpec.estimate` each
  number's error bar, :meth:`~BenchmarkSpec.summary_rows` the rows of the summary table (each number with its
  rule and error bar; the default: accuracy, its variant rules, the answerable rows of a letter benchmark).
- **Judge.** :meth:`~BenchmarkSpec.judge_plan` (None for a rule-scored benchmark) and
  :meth:`~BenchmarkSpec.grader_messages`: what an LLM grader is asked per prediction and how its replies are read
  (MM-Vet's official grader; HR-Bench's official yes/no judge).
- **Likelihood.** ``likelihood_rule`` and :meth:`~BenchmarkSpec.likelihood_options` for a benchmark scored by
  option likelihood (``--protocol likelihood``, V*'s official rule; :mod:`ground_r1.evaluation.likelihood`).
- **Demo.** ``demo_records``: the release-format records of the built-in demo set a run with no data evaluates
  (:func:`ground_r1.evaluation.general.write_demo_dataset` draws their images); a spec without them is left out
  of that run's ``all``.

How to add a benchmark: subclass :class:`BenchmarkSpec` (or :class:`~ground_r1.evaluation.benchmarks.choice.ChoiceSpec`
for lettered options) in a module of this package, fill in ``parse_answer``, ``score_item`` and ``aggregate`` (and
``_finish_item`` for its own fields, ``summary_rows`` when its table is not an accuracy), then register one
instance in :mod:`~ground_r1.evaluation.benchmarks.registry` (``_BUILTIN``, or ``register_benchmark`` from your own
code). No other file changes: ``tests/evaluation/test_benchmark_contract.py`` registers a toy spec from the test
file alone and runs it end to end through the CLI.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ground_r1.data.records import ValidationIssue
from ground_r1.evaluation.benchmarks.parsing import strip_answer_tags
from ground_r1.evaluation.benchmarks.readers import RawRecord, reader

from ground_r1.evaluation.summary import ScoredBenchmark, SummaryRow

if TYPE_CHECKING:
    from ground_r1.evaluation.benchmark_run import BenchmarkData, ReadOptions, RunOptions
    from ground_r1.evaluation.inference import EvalItem
    from ground_r1.evaluation.judge import AskPlan
    from ground_r1.evaluation.uncertainty import Estimate

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "BenchmarkFileError",
    "BenchmarkItem",
    "BenchmarkRecords",
    "BenchmarkSpec",
    "percent",
    "variant_accuracies",
    "variant_key",
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
        return len({(issue.file, issue.line) for issue in self.skipped})


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
        direct_suffix: appended on a new line to the question in the baseline protocol ("" for none).
        needs_judge: True when items are scored by an LLM grader (MM-Vet).
        headline_metric: dotted path into ``aggregate()``'s result of the number the paper reports.
        default_image_ext: extension assumed for an extension-less ``Image`` when images are not checked.
        rule: the rule that makes the headline number, as every table prints it (reference and version).
        variant_rules: ``(key, label)`` of the other rules each record is also scored by (ours where more lenient
            than the reference, the release's); ``record["variants"][key]`` and the aggregate's
            ``variants[key]`` hold them, and the tables print them as labelled variant rows.
        layout: how the file is laid out (:data:`~ground_r1.evaluation.benchmarks.readers.READERS`: "jsonl", or a
            zoom-in benchmark's "tsv", "parquet", "vstar_folder"); a spec reading several layouts says which one a
            path is in with :meth:`layout_of`.
        suite: "general", SPEC §7's set (what ``BENCHMARKS=all`` runs), or "zoom", the zoom-in benchmarks (V*,
            HR-Bench, TreeBench: run when named, or with ``BENCHMARKS=zoom``).
        option_seed: seeds the per-item order a benchmark shows its options in (V*: the file puts the correct one
            first); None when options are shown as the file orders them. Part of the prediction identity.
        likelihood_rule: the rule of the benchmark's option-likelihood scoring (``--protocol likelihood``; V*'s
            official one), "" when it has none; such a spec defines :meth:`likelihood_options`.
        demo_records: release-format records of the built-in demo set (``Image`` relative to the benchmark's
            image folder; each image is drawn as a red square on white).
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
    layout: str = "jsonl"
    suite: str = "general"
    option_seed: int | None = None
    likelihood_rule: str = ""
    demo_records: tuple[dict[str, Any], ...] = field(default=(), compare=False, repr=False)

    required_fields: ClassVar[tuple[str, ...]] = ("Image", "problem", "solution")
    # The run-level defaults a spec owns (the pipeline reads them; none is a flag's business):
    default_max_items: ClassVar[int] = 0  # --max_items when not given (0: every item)
    demo_max_items: ClassVar[int] = 0  # the same on the built-in demo set
    uses_letter_rule: ClassVar[bool] = False  # its scores depend on --letter_rule (VisCoT's rule column)
    judge_max_tokens: ClassVar[int | None] = None  # the grader's reply budget; None: the judge client's default
    # Its predictions carry everything its scores need (VisCoT, RefCOCO): a rerun of the judge, score or table
    # stages of it alone reads no data file. The general specs score items against their file's records.
    scores_from_predictions: ClassVar[bool] = False

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

    def read(self, path: str | Path, dataset_root: str | Path, *, check_images: bool = True) -> BenchmarkRecords:
        """Read every record of the file with the reader of :attr:`layout`, then validate each; images are resolved
        against ``dataset_root``.

        Blank lines are skipped. A record that cannot be evaluated is left out and named (module docstring);
        with ``check_images`` (default) a missing or unreadable image is such a problem, so a wrong
        ``dataset_root`` shows on every record rather than mid-run.

        Raises:
            FileNotFoundError: the file does not exist.
            BenchmarkFileError: the file holds no usable record (empty, or every record skipped: listed).
        """
        file = self.resolve_file(path)
        layout = self.layout_of(file)
        root = Path(dataset_root).expanduser()
        items: list[BenchmarkItem] = []
        skipped: list[ValidationIssue] = []
        read = 0
        for raw in reader(layout)(file):
            read += 1
            if raw.problem is not None:
                skipped.append(ValidationIssue(raw.file, raw.line, *raw.problem))
                continue
            try:
                built = self._build_items(raw, layout, root, check_images)
            except _ItemProblems as found:
                skipped.extend(ValidationIssue(raw.file, raw.line, fld, why) for fld, why in found.problems)
                continue
            items.extend(built)
        problems = self._validate_items(items)
        if not items or problems:
            listed = problems or [str(i) for i in skipped] or [f"{file}: no records (the file is empty)"]
            raise BenchmarkFileError(self.name, file, listed)
        if skipped:
            logger.warning(
                "%s: %d of %d record(s) of %s cannot be evaluated and are skipped (first: %s)",
                self.name,
                len({(i.file, i.line) for i in skipped}),
                read,
                file,
                skipped[0],
            )
        logger.info("%s: loaded %d items from %s", self.name, len(items), file)
        return BenchmarkRecords(file, items, skipped, read)

    def load(self, path: str | Path, dataset_root: str | Path, *, check_images: bool = True) -> list[BenchmarkItem]:
        """The items of :meth:`read`, strict: any skipped record raises.

        Raises:
            FileNotFoundError: the file does not exist.
            BenchmarkFileError: listing every ``file:line: field: why`` problem of the file.
        """
        result = self.read(path, dataset_root, check_images=check_images)
        if result.skipped:
            raise BenchmarkFileError(self.name, result.file, [str(issue) for issue in result.skipped])
        return result.items

    def layout_of(self, file: Path) -> str:
        """The layout ``file`` is read with (a key of :data:`~ground_r1.evaluation.benchmarks.readers.READERS`):
        :attr:`layout`; a spec reading several layouts (HR-Bench's TSV, parquet and ZoomEye JSONL) says which."""
        return self.layout

    def _build_items(self, raw: RawRecord, layout: str, root: Path, check_images: bool) -> list[BenchmarkItem]:
        """The items of one record read by the reader of ``layout`` (one for a release-format record; HR-Bench's
        ZoomEye record unfolds to its 4 rotations).

        Raises:
            _ItemProblems: the record's ``(field, why)`` problems (it is skipped and they are named).
        """
        return [self._build_item(raw.record or {}, Path(raw.file), raw.line, root, check_images)]

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

    def _resolve_images(self, value: Any, root: Path, check: bool, problems: list[tuple[str, str]]) -> str | list[str]:
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) and v.strip() for v in values):
            problems.append(("Image", f"expected a path or a list of paths, got {value!r}"))
            return ""
        resolved = []
        for rel in values:
            path = self._resolve_image(rel.strip(), root, check, problems)
            resolved.append(path)
        return resolved if isinstance(value, list) else resolved[0]

    def _resolve_image(self, rel: str, root: Path, check: bool, problems: list[tuple[str, str]]) -> str:
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

    def locate(self, dataset_root: str | Path, image_root: str | Path | None = None) -> tuple[Path, Path]:
        """(file to read, image root) of the benchmark under ``DATASET_ROOT``.

        The file is ``DATASET_ROOT/{default_file}`` (e.g. ``MME.jsonl``), else ``DATASET_ROOT/{name}/{default_file}``.
        Images: with ``image_root`` (the release's layout: the folder the ``LVLM_benchmarks`` zip unpacks to),
        ``IMAGE_ROOT/{name}/``; else ``DATASET_ROOT/{name}/`` when that folder exists (the release's per-benchmark
        image folders: POPE's and RealWorldQA's ``images/img_0.png`` are different files), else the file's folder.
        A spec with its own folder layouts (the zoom-in benchmarks) overrides this.

        Raises:
            FileNotFoundError: neither file exists, or ``IMAGE_ROOT/{name}/`` does not (the paths tried are named).
        """
        root = Path(dataset_root).expanduser()
        candidates = [root / self.default_file, root / self.name / self.default_file]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise FileNotFoundError(
                f"{self.name}: benchmark file not found: tried {candidates[0]} and {candidates[1]} (put the "
                f"release's {self.default_file} in DATASET_ROOT, or leave {self.name} out of BENCHMARKS)"
            )
        if image_root is not None:
            folder = Path(image_root).expanduser() / self.name
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"{self.name}: image folder not found: {folder} (IMAGE_ROOT holds one folder per benchmark, as "
                    f"the release's LVLM_benchmarks/{self.name}/)"
                )
            return found, folder
        folder = root / self.name
        return found, folder if folder.is_dir() else found.parent

    def prepare_images(self, items: list[BenchmarkItem]) -> int:
        """Make the items' image files exist before inference (images embedded in a TSV or parquet file are
        decoded once, here); returns how many files were written (0: every image is a file already)."""
        return 0

    def first_items(self, items: list[BenchmarkItem], count: int) -> list[BenchmarkItem]:
        """The items a ``--max_items count`` run keeps: the first ``count`` (a benchmark whose scoring needs whole
        groups, MMBench's rotated copies, keeps whole groups)."""
        return items[:count]

    # ------------------------------------------------------------------ the pipeline's hooks (one run)

    def supported_protocols(self) -> tuple[str, ...]:
        """The protocols this benchmark can be evaluated under (:data:`ground_r1.evaluation.identity.PROTOCOLS`):
        the one-turn baseline and the two grounding protocols; the likelihood ones with a :attr:`likelihood_rule`."""
        generated = ("baseline", "ground_r1", "ground_sft")
        return generated + (("likelihood", "ground_r1_likelihood") if self.likelihood_rule else ())

    def locate_data(
        self, data_path: str | Path | None, dataset_root: str | Path | None, image_root: str | Path | None
    ) -> tuple[Path, Path]:
        """(file to read, image root) of a run: ``--data_path`` (this benchmark's file, or its folder; images in
        ``--image_root``, else ``{name}/`` beside the file when it exists, else the file's folder), else
        :meth:`locate` under ``--dataset_root``.

        Raises:
            FileNotFoundError: nothing found (the paths tried are named).
        """
        if data_path is None:
            return self.locate(dataset_root if dataset_root is not None else ".", image_root)
        path = Path(data_path).expanduser()
        if path.is_dir():
            return self.locate(path, image_root)
        file = self.resolve_file(path)
        if image_root is not None:
            return file, Path(image_root).expanduser()
        folder = file.parent / self.name
        return file, folder if folder.is_dir() else file.parent

    def demo_data(self, output_dir: str | Path, write: bool = True) -> tuple[Path, Path]:
        """(file, image root) of this benchmark's part of the built-in demo set (``demo_records``, written into
        ``OUTPUT_DIR/builtin_general`` when ``write``: the launchers' default run, not a result).

        Raises:
            ValueError: the spec has no demo records (give its data).
        """
        from ground_r1.evaluation.general import write_demo_records

        if not self.demo_records:
            raise ValueError(f"{self.name} has no built-in demo set: give its data (--dataset_root or --data_path)")
        folder = Path(output_dir) / "builtin_general"
        if write:
            write_demo_records(self, folder)
        return self.locate(folder)

    def item_limit(self, options: "ReadOptions") -> int:
        """How many items a run keeps, as this benchmark counts them (:meth:`first_items`): ``--max_items``, else
        :attr:`default_max_items` (0: every item)."""
        return self.default_max_items if options.max_items is None else options.max_items

    def read_run(self, file: Path, image_root: Path, options: "ReadOptions") -> "BenchmarkData":
        """Every record of ``file`` read and validated (:meth:`read`), records with several images skipped (the
        protocols show one image), then the first ``max_items`` (:meth:`first_items`) kept."""
        from ground_r1.evaluation.benchmark_run import BenchmarkData
        from ground_r1.evaluation.general import keep_single_image

        result = self.read(file, image_root, check_images=options.check_images)
        data = BenchmarkData(
            self, Path(file), Path(image_root), result.items, list(result.skipped), result.records_read
        )
        keep_single_image(data)
        limit = self.item_limit(options)
        if limit:
            data.items = self.first_items(data.items, limit)  # MMBench: the first questions with all copies
        return data

    def eval_items(self, data: "BenchmarkData", protocol: str) -> list["EvalItem"]:
        """The inference items of a run under ``protocol``: the question each protocol poses
        (:func:`ground_r1.evaluation.general.to_eval_items`)."""
        from ground_r1.evaluation.general import to_eval_items

        return to_eval_items(data, protocol)

    def judge_items(self, data: "BenchmarkData", predictions: dict[str, dict[str, Any]]) -> list[Any]:
        """What the judge is asked, one item per successful prediction (:meth:`grader_messages`)."""
        from ground_r1.evaluation.general import grading_items

        return grading_items(self, data.items, predictions)

    def score_run(self, data: "BenchmarkData", folder: Path, options: "RunOptions") -> list[SummaryRow]:
        """Score a finished folder: ``scores.jsonl`` (one record per item) and ``metrics.json``; the summary rows.

        Raises:
            ValueError, OSError: the folder's predictions or judgments cannot be read (named).
        """
        from ground_r1.evaluation.general import score_folder

        return score_folder(data, folder, options.protocol)

    def write_run_table(self, folder: Path, options: "RunOptions") -> str | None:
        """A run of this benchmark alone in ``folder``: write its own table (``table.md``, ``table.csv``) and return
        the Markdown; None (the default) when the summary table is its table."""
        return None

    def _finish_item(self, item: BenchmarkItem, record: dict[str, Any], problems: list[tuple[str, str]]) -> None:
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

    def score_prediction(
        self, item: BenchmarkItem, prediction: dict[str, Any], *, judge_score: float | None = None
    ) -> dict[str, Any]:
        """The per-item record of a whole prediction record (what the pipeline calls): by default
        :meth:`score_item` of its final turn; a spec that scores the trajectory (its boxes, every turn) or another
        protocol's record (option likelihoods) overrides this."""
        turns = prediction.get("turns") or []
        return self.score_item(item, turns[-1] if turns else "", judge_score=judge_score)

    def likelihood_options(self, item: BenchmarkItem) -> tuple[str, list[str], int]:
        """(question without options, options in the file's order, index of the correct one) for the
        option-likelihood scoring of a spec with :attr:`likelihood_rule`."""
        raise NotImplementedError(f"{self.name} has no option-likelihood scoring")

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

    # ------------------------------------------------------------------ summary rows

    def summary_rows(self, metrics: dict[str, Any], scored: ScoredBenchmark, skipped: int = 0) -> list[SummaryRow]:
        """The rows of this benchmark in the summary table: by default the accuracy by :attr:`rule` (x100); for a
        letter benchmark with rows whose answer is past their options (MMMU), the headline rule's accuracy over the
        answerable rows too, labelled; then each variant rule's accuracy, labelled. ``skipped`` (the file's
        skipped records) is carried on every row. Specs whose number is not an accuracy override this."""
        records = scored.records
        result = [self.summary_row(scored, skipped, "accuracy", self.headline(dict(metrics)))]
        notes = []
        past = metrics.get("n_answer_past_options", 0)
        if past:
            notes.append(
                f"all rows, as the release: {past} whose answer is past the kept options are right only if "
                "the model names that letter"
            )
        if metrics.get("n_random_guess"):
            notes.append(
                f"{metrics['n_random_guess']} unread letter(s) scored wrong (official: a random guess, "
                f"expected {metrics['accuracy_expected_with_guess']:.1f})"
            )
        result[0].notes = "; ".join(notes)
        if past:  # the rows the model could answer, by the headline rule, labelled
            answerable = metrics["n_answerable"]
            subset = self.summary_row(
                scored,
                skipped,
                f"accuracy over the {answerable} answerable rows",
                metrics["accuracy_answerable"],
                f"the {past} rows past the kept options left out",
                items=answerable,
                which="answerable",
            )
            subset.unparsed = sum(1 for r in records if r.get("answerable", True) and r.get("parsed") is None)
            result.append(subset)
        return result + self.variant_summary_rows(scored, skipped, "accuracy", metrics.get("variants", {}))

    def summary_row(
        self,
        scored: ScoredBenchmark,
        skipped: int,
        metric: str,
        score: Any,
        notes: str = "",
        *,
        extra_left_out: int = 0,
        rule: str | None = None,
        items: int | None = None,
        variant: bool = False,
        which: str = "headline",
        error_bar: bool = True,
    ) -> SummaryRow:
        """One row: ``score`` (None when not a number) with the error bar of ``estimate(records, which)`` (none when
        not ``error_bar``: a number no estimator covers); items default to the scored records, unparsed to those
        whose answer could not be read, left out to prediction errors and missing predictions (+
        ``extra_left_out``)."""
        records = scored.records
        value = float(score) if isinstance(score, (int, float)) else None
        estimate = self.estimate(records, which) if error_bar else None
        return SummaryRow(
            self.name,
            metric,
            value,
            len(records) if items is None else items,
            sum(1 for r in records if r.get("parsed") is None),
            scored.errors + scored.missing + extra_left_out,
            notes,
            self.rule if rule is None else rule,
            variant,
            skipped,
            estimate.se if estimate is not None and value is not None else None,
            estimate.describe() if estimate is not None else "",
        )

    def variant_summary_rows(
        self, scored: ScoredBenchmark, skipped: int, metric: str, values: dict[str, Any], items: int | None = None
    ) -> list[SummaryRow]:
        """One labelled row per variant rule with a value in ``values``, in :attr:`variant_rules` order."""
        labels = dict(self.variant_rules)
        return [
            self.summary_row(
                scored,
                skipped,
                metric,
                values[key],
                rule=labels[key],
                items=items,
                variant=True,
                which=f"variant:{key}",
            )
            for key in labels
            if key in values
        ]

    # ------------------------------------------------------------------ judge

    def judge_plan(self) -> AskPlan | None:
        """How an LLM judge is asked and its replies read (:class:`ground_r1.evaluation.judge.AskPlan`), for a
        benchmark with ``needs_judge``; None: the VisCoT judge of SPEC §7 (a rule-scored benchmark never asks)."""
        return None

    def grader_messages(self, item: BenchmarkItem, prediction_text: str, *, retry: bool = False) -> list[dict]:
        """The chat messages the grader gets for one prediction (``retry``: the messages of a second ask)."""
        raise NotImplementedError(f"{type(self).__name__} is scored by rule: it has no grader messages")

    # ------------------------------------------------------------------ helpers for subclasses

    def _base_record(self, item: BenchmarkItem, judge_score: float | None) -> dict[str, Any]:
        if judge_score is not None and not self.needs_judge:
            raise ValueError(f"{self.name} is scored by rule; judge_score is only for benchmarks with needs_judge")
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
