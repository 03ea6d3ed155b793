"""Letter-answer benchmarks (SPEC §7): SEED-Bench and MME-RealWorld-Lite here; MMBench and MMMU build on it.

The options live inside ``problem`` in the file's own format ("A. text" lines, or "(A) text" for
MME-RealWorld-Lite) and the ground truth is a letter. The baseline protocol appends "Respond with only the letter
(A, B, C or D)." ((A, B, C, D, or E) for MME-RealWorld-Lite's five options). Metrics: letter accuracy overall,
per category and per any extra grouping field, x100.

**The headline number** reads the letter as the benchmark's reference does (:data:`READERS`, written in
:mod:`~ground_r1.evaluation.benchmarks.reference` and :mod:`~ground_r1.evaluation.benchmarks.mmmu_rules`):
SEED-Bench the first character of the answer (lmms-eval 0.7.3), MME-RealWorld the first capital A-E (lmms-eval
0.7.3), MMBench MMBench's matcher, MMMU MMMU's official parser. **Variants**, each record scored by them too and
reported as labelled rows: ``lenient`` (ours, :func:`extract_choice_letter`: answer cues, "(B)", "B. text", the
option's own text; more lenient than the references: SEED "(A)" is right here, wrong there) and ``release`` (the
release's rule: the first character of the turn or of the extracted answer, `multiple_choice_letter` of
`multi_0526_new_version.py`).

Per benchmark: SEED's ``Category`` is empty in the release file, so its category is the SEED dimension
named by ``Question_Type`` (1-9); MMBench's question gets its ``hint`` ("Hint: ..." first, as the
official MMBench prompt does; the release dropped it) and loses the "nan" placeholder options of
two- and three-option questions; MMMU's ``<image k>`` markers stay in the text, as the release fed them
with the single image its file provides (items whose markers name more images are counted in the log).

An answer that is a single letter past the options the file kept (28 rows of the release's MMMU_val: E, F or I
where the release kept A-D) stays in the benchmark, as the release evaluated it: the row is right only if the
model's letter equals that answer. Every rule reads that letter as one more choice (a letter without option
text: MMMU's official parser and our lenient reader take it as a letter, never by text), so a model that names
it is right. Loading warns with their count, and :meth:`ChoiceSpec.aggregate` reports ``accuracy_answerable``
beside the accuracy: the headline rule over the rows whose answer is among their options (872 of MMMU's 900).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ground_r1.evaluation.benchmarks.parsing import (
    extract_answer_span,
    extract_choice_letter,
    parse_options,
    release_letter_match,
)
from ground_r1.evaluation.benchmarks.mmmu_rules import mmmu_choice
from ground_r1.evaluation.benchmarks.reference import mmbench_can_infer, mme_realworld_letter, seed_first_character
from ground_r1.evaluation.benchmarks.spec import BenchmarkItem, BenchmarkSpec, percent, variant_accuracies
from ground_r1.evaluation.uncertainty import Estimate, mean_estimate

logger = logging.getLogger(__name__)

__all__ = [
    "CHOICE_VARIANTS",
    "LETTER_SUFFIX_ABCD",
    "LETTER_SUFFIX_ABCDE",
    "READERS",
    "SEED_DIMENSIONS",
    "ChoiceSpec",
    "choice_metrics",
]

# SPEC §7 baseline-protocol suffixes.
LETTER_SUFFIX_ABCD = "Respond with only the letter (A, B, C or D)."
LETTER_SUFFIX_ABCDE = "Respond with only the letter (A, B, C, D, or E)."

# SEED-Bench's `question_type_id` -> evaluation dimension (SEED-Bench v1 image dimensions).
SEED_DIMENSIONS: tuple[tuple[str, str], ...] = (
    ("1", "Scene Understanding"),
    ("2", "Instance Identity"),
    ("3", "Instance Attributes"),
    ("4", "Instance Location"),
    ("5", "Instances Counting"),
    ("6", "Spatial Relation"),
    ("7", "Instance Interaction"),
    ("8", "Visual Reasoning"),
    ("9", "Text Understanding"),
)

# Headline letter readers by name: reader(extracted answer, the item's options) -> letter or None.
# ``extra`` holds the answer letter of a row past its options (module docstring); the readers that look at any
# letter (first character, MME-RealWorld's A-E) need no telling, the ones restricted to the options take it.
READERS: dict[str, Callable[[str, Mapping[str, str], str], str | None]] = {
    "first_character": lambda answer, options, extra: seed_first_character(answer),
    "mme_realworld": lambda answer, options, extra: mme_realworld_letter(answer),
    "mmbench": lambda answer, options, extra: mmbench_can_infer(answer, options, extra_letters=extra),
    "mmmu": lambda answer, options, extra: mmmu_choice(answer, options, extra_letters=extra),
}

CHOICE_VARIANTS: tuple[tuple[str, str], ...] = (
    ("lenient", "ours: lenient letter reader (answer cues, (B), B. text, option text)"),
    ("release", "release: first character of the turn or of the answer"),
)

_IMAGE_MARKER = re.compile(r"<image (\d+)>")
_NAN_OPTION = re.compile(r"^\s*(?:\([A-H]\)|[A-H][.):])\s*nan\s*$", re.IGNORECASE)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "nan"))


def _group_key(field_name: str) -> str:
    return "per_" + re.sub(r"\W+", "_", field_name.lower()).strip("_")


def choice_metrics(records: list[dict[str, Any]], variants: tuple[str, ...] | list[str] = ()) -> dict[str, Any]:
    """Accuracy (x100) of the headline rule and counts of some records, and each variant's accuracy."""
    n = len(records)
    n_correct = sum(bool(r["correct"]) for r in records)
    return {
        "accuracy": percent(n_correct, n),
        "n": n,
        "n_correct": n_correct,
        "n_unparsed": sum(r["parsed"] is None for r in records),
        "variants": variant_accuracies(records, variants),
    }


@dataclass(frozen=True)
class ChoiceSpec(BenchmarkSpec):
    """A letter-answer benchmark.

    Attributes:
        valid_letters: the letters an answer may take (MME-RealWorld-Lite: "ABCDE").
        category_field: record field giving the category ("" for none).
        category_names: ``(raw value, name)`` pairs mapping category codes to names (SEED).
        group_fields: further record fields to report accuracy by (e.g. "L2-category", "Subtask").
        include_hint: put a record's ``hint`` before the question (MMBench).
        drop_nan_options: remove "nan" options from the question and the option set (MMBench).
        reader: the headline letter reader, a key of :data:`READERS` (subclasses may read otherwise).
    """

    valid_letters: str = "ABCD"
    category_field: str = "Category"
    category_names: tuple[tuple[str, str], ...] = ()
    group_fields: tuple[str, ...] = ()
    include_hint: bool = False
    drop_nan_options: bool = False
    reader: str = "first_character"
    variant_rules: tuple[tuple[str, str], ...] = CHOICE_VARIANTS

    def __post_init__(self) -> None:
        if self.reader not in READERS:
            raise ValueError(f"{self.name}: unknown letter reader {self.reader!r}; valid: {', '.join(READERS)}")

    def _finish_item(self, item: BenchmarkItem, record: dict[str, Any], problems: list) -> None:
        problem = record["problem"]
        options = parse_options(problem, drop_nan=self.drop_nan_options)
        options = {k: v for k, v in options.items() if k in self.valid_letters}
        question = problem
        if self.drop_nan_options:
            question = "\n".join(line for line in problem.splitlines() if not _NAN_OPTION.match(line))
        question = question.rstrip()
        hint = record.get("hint")
        if self.include_hint and not _is_missing(hint):
            question = f"Hint: {str(hint).strip()}\n{question}"
        item.question = question
        item.extra["options"] = options

        answer = item.answer.strip()
        if options:
            if answer.upper() not in options:
                if re.fullmatch(r"[A-Za-z]", answer):  # past the kept options: evaluated (module docstring)
                    item.extra["answer_past_options"] = True
                else:
                    problems.append(("solution", f"{answer!r} is not one of the question's options {''.join(options)}"))
            item.answer = answer.upper()

        names = dict(self.category_names)
        raw = record.get(self.category_field, "") if self.category_field else ""
        category = "" if _is_missing(raw) else str(raw)
        item.category = names.get(category, category)
        item.extra["groups"] = {
            f: ("" if _is_missing(record.get(f)) else str(record.get(f))) for f in self.group_fields
        }
        markers = sorted({int(m) for m in _IMAGE_MARKER.findall(problem)})
        if markers:
            item.extra["image_markers"] = markers

    def _validate_items(self, items: list[BenchmarkItem]) -> list[str]:
        past = [it for it in items if it.extra.get("answer_past_options")]
        if past:
            letters = "".join(sorted({it.answer for it in past}))
            logger.warning(
                "%s: %d row(s) have an answer letter past the options the file kept (%s; first: %s): kept, as the "
                "release evaluated them (right only if the model's letter equals the answer); the accuracy over "
                "the %d answerable row(s) is reported beside the accuracy over all %d",
                self.name, len(past), letters, past[0].key, len(items) - len(past), len(items),
            )  # fmt: skip
        short = [
            it for it in items
            if it.extra.get("image_markers")
            and max(it.extra["image_markers"]) > (len(it.image) if isinstance(it.image, list) else 1)
        ]  # fmt: skip
        if short:
            logger.warning(
                "%s: %d item(s) refer to more <image k> than the file gives (first: %s); they are "
                "evaluated with the images given, as the release did",
                self.name, len(short), short[0].key,
            )  # fmt: skip
        return []

    def read_letter(self, answer: str, options: Mapping[str, str], extra_letters: str = "") -> str | None:
        """The headline rule's letter for an extracted answer (the reference's reader); ``extra_letters``: the
        answer letter of a row past its options, read as one more choice (module docstring)."""
        return READERS[self.reader](answer, options, extra_letters)

    def parse_answer(self, text: str, options: dict[str, str] | None = None, extra_letters: str = "") -> str | None:
        """The option letter the headline rule reads from a final turn (its extracted answer)."""
        return self.read_letter(extract_answer_span(text), options or {}, extra_letters)

    def lenient_letter(self, text: str, options: Mapping[str, str], extra_letters: str = "") -> str | None:
        """Our lenient reader's letter (the ``lenient`` variant) from a final turn, over the item's letters (any
        of ``valid_letters`` when options are unknown) plus ``extra_letters``."""
        letters = ("".join(options) or self.valid_letters) + extra_letters
        return extract_choice_letter(text, letters, dict(options))

    @staticmethod
    def past_letter(item: BenchmarkItem) -> str:
        """The answer letter of a row whose answer is past its options ("" for any other row)."""
        return item.answer if item.extra.get("answer_past_options") else ""

    def score_item(
        self, item: BenchmarkItem, prediction_text: str, *, judge_score: float | None = None
    ) -> dict[str, Any]:
        record = self._base_record(item, judge_score)
        options = item.extra.get("options") or {}
        extracted = extract_answer_span(prediction_text)
        past = self.past_letter(item)  # right only if the model names that (unshown) answer letter
        parsed = self.read_letter(extracted, options, past)
        lenient = self.lenient_letter(prediction_text, options, past)
        record.update(
            groups=item.extra.get("groups", {}),
            answerable=not item.extra.get("answer_past_options", False),
            extracted=extracted,
            parsed=parsed,
            correct=parsed is not None and parsed.upper() == item.answer.upper(),
            variants={
                "lenient": lenient is not None and lenient == item.answer.upper(),
                "release": release_letter_match(prediction_text, item.answer),
            },
        )
        return record

    def variant_keys(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.variant_rules)

    def estimate(self, records: list[dict[str, Any]], metric: str = "headline") -> Estimate:
        """:meth:`BenchmarkSpec.estimate`; ``metric="answerable"``: the headline rule's accuracy over the rows whose
        answer is within their options (``accuracy_answerable``, MMMU's 872 of 900), its standard error."""
        if metric == "answerable":
            return mean_estimate([100.0 * bool(r["correct"]) for r in records if r.get("answerable", True)])
        return super().estimate(records, metric)

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Overall metrics (:func:`choice_metrics`) plus ``per_category`` and ``per_<group field>``."""
        self._check_records(records)
        keys = self.variant_keys()
        result = choice_metrics(records, keys)
        answerable = [r for r in records if r.get("answerable", True)]
        result["n_answer_past_options"] = len(records) - len(answerable)
        result["accuracy_answerable"] = percent(sum(bool(r["correct"]) for r in answerable), len(answerable))
        result["n_answerable"] = len(answerable)
        result["per_category"] = grouped_metrics(records, lambda r: r["category"], keys)
        for field_name in self.group_fields:
            result[_group_key(field_name)] = grouped_metrics(
                records, lambda r, f=field_name: r.get("groups", {}).get(f, ""), keys
            )
        return result


def grouped_metrics(records: list[dict[str, Any]], key, variants=()) -> dict[str, dict[str, Any]]:
    """:func:`choice_metrics` of the records of each group (``key(record)``), groups sorted by name."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[key(record)].append(record)
    return {name: choice_metrics(members, variants) for name, members in sorted(groups.items())}
