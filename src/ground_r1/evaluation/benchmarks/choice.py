"""Letter-answer benchmarks (SPEC §7): SEED-Bench, MMBench, MMMU, MME-RealWorld-Lite.

The options live inside ``problem`` in the file's own format ("A. text" lines, or "(A) text" for
MME-RealWorld-Lite) and the ground truth is a letter. The direct protocol appends "Respond with only
the letter (A, B, C or D)." ((A, B, C, D, or E) for MME-RealWorld-Lite's five options). Metrics:
letter accuracy overall, per category and per any extra grouping field, x100.

The letter is read with :func:`extract_choice_letter` restricted to the item's own option letters. The
release's rule (first character of the turn or of the extracted answer, `multi_0526_new_version.py`)
is recorded beside it (``accuracy_release_rule``) so both can be reported side by side.

Per benchmark: SEED's ``Category`` is empty in the release file, so its category is the SEED dimension
named by ``Question_Type`` (1-9); MMBench's question gets its ``hint`` ("Hint: ..." first, as the
official MMBench prompt does; the release dropped it) and loses the "nan" placeholder options of
two- and three-option questions; MMMU's ``<image k>`` markers stay in the text, as the release fed them
with the single image its file provides (items whose markers name more images are counted in the log).
An item without options (MMMU's open questions, if a file has them) is scored by normalised exact match.

An answer that is a single letter past the options the file kept (28 rows of the release's MMMU_val: E, F or I
where the release kept A-D) stays in the benchmark, as the release evaluated it: the row is right only if the
model's letter equals that answer (the answer letter is readable from the reply, so a model that names it is
right). Loading warns with their count, and :meth:`ChoiceSpec.aggregate` reports ``accuracy_answerable``
beside the accuracy: over the rows whose answer is among their options (872 of MMMU's 900).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ground_r1.evaluation.benchmarks.parsing import (
    extract_answer_span,
    extract_choice_letter,
    normalize_text,
    parse_options,
    release_letter_match,
)
from ground_r1.evaluation.benchmarks.spec import BenchmarkItem, BenchmarkSpec, percent

logger = logging.getLogger(__name__)

__all__ = ["ChoiceSpec", "LETTER_SUFFIX_ABCD", "LETTER_SUFFIX_ABCDE", "SEED_DIMENSIONS", "choice_metrics"]

# SPEC §7 direct-protocol suffixes.
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

_IMAGE_MARKER = re.compile(r"<image (\d+)>")
_NAN_OPTION = re.compile(r"^\s*(?:\([A-H]\)|[A-H][.)])\s*nan\s*$", re.IGNORECASE)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "nan"))


def _group_key(field_name: str) -> str:
    return "per_" + re.sub(r"\W+", "_", field_name.lower()).strip("_")


def choice_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy (x100) and counts of a list of records (``correct``, ``parsed``, release variant)."""
    n = len(records)
    n_correct = sum(bool(r["correct"]) for r in records)
    return {
        "accuracy": percent(n_correct, n),
        "accuracy_release_rule": percent(sum(bool(r["correct_release_rule"]) for r in records), n),
        "n": n,
        "n_correct": n_correct,
        "n_unparsed": sum(r["parsed"] is None for r in records),
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
    """

    valid_letters: str = "ABCD"
    category_field: str = "Category"
    category_names: tuple[tuple[str, str], ...] = ()
    group_fields: tuple[str, ...] = ()
    include_hint: bool = False
    drop_nan_options: bool = False

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
                    problems.append(
                        ("solution", f"{answer!r} is not one of the question's options {''.join(options)}")
                    )
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

    def parse_answer(self, text: str, options: dict[str, str] | None = None, extra_letters: str = "") -> str | None:
        """The option letter a prediction picks (any of ``valid_letters`` when options are unknown, plus
        ``extra_letters``: the answer letter of a row past its options)."""
        letters = ("".join(options) if options else self.valid_letters) + extra_letters
        return extract_choice_letter(text, letters, options)

    def score_item(
        self, item: BenchmarkItem, prediction_text: str, *, judge_score: float | None = None
    ) -> dict[str, Any]:
        record = self._base_record(item, judge_score)
        options = item.extra.get("options") or {}
        extracted = extract_answer_span(prediction_text)
        if options:
            # A row past its options is right only if the model's letter is that (unshown) answer letter.
            past = item.answer if item.extra.get("answer_past_options") else ""
            parsed = self.parse_answer(prediction_text, options, extra_letters=past)
            correct = parsed == item.answer
            release = release_letter_match(prediction_text, item.answer)
        else:
            parsed = normalize_text(extracted) or None
            correct = parsed is not None and parsed == normalize_text(item.answer)
            release = extracted.lower() == item.answer.strip().lower()
        record.update(
            groups=item.extra.get("groups", {}),
            answerable=not item.extra.get("answer_past_options", False),
            extracted=extracted,
            parsed=parsed,
            correct=correct,
            correct_release_rule=release,
        )
        return record

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Overall metrics (:func:`choice_metrics`) plus ``per_category`` and ``per_<group field>``."""
        self._check_records(records)
        result = choice_metrics(records)
        answerable = [r for r in records if r.get("answerable", True)]
        result["n_answer_past_options"] = len(records) - len(answerable)
        result["accuracy_answerable"] = percent(sum(bool(r["correct"]) for r in answerable), len(answerable))
        result["n_answerable"] = len(answerable)
        result["per_category"] = _grouped(records, lambda r: r["category"])
        for field_name in self.group_fields:
            result[_group_key(field_name)] = _grouped(
                records, lambda r, f=field_name: r.get("groups", {}).get(f, "")
            )
        return result


def _grouped(records: list[dict[str, Any]], key) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[key(record)].append(record)
    return {name: choice_metrics(members) for name, members in sorted(groups.items())}
