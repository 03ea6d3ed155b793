"""V* Bench (penghao-wu/vstar @ 4ede664; HF craigwu/vstar_bench): 191 questions, 115 direct attributes, 76
relative position (issue 18; ``../shared/data/thinking-with-images/README.md`` §1).

Two inputs, two specs:

- ``vstar`` (default) reads the official folder: ``direct_attributes/`` and ``relative_position/``, one JSON per
  image (``target_object``, ``bbox`` xywh original pixels, ``question``, ``options`` as sentences, **the correct
  one first**). The options are shown in a seeded per-item order (:func:`.zoom.shuffled_order`, seed and order in
  every record) and lettered A, B, ...; the gold letter is where option 0 landed. The boxes feed box quality
  (xywh -> xyxy; never checked against an unread image size).
- ``vstar_hf`` reads the HF ``test_questions.jsonl`` (PR #3): ``text`` holds the question and the *short*
  options already lettered and shuffled by the authors, ``label`` the letter. It has no boxes. Its numbers are
  labelled with that input: they are not the folder's (other option texts, another order).

Generative scoring: the letter is read by the zoom benchmarks' one rule (:func:`.zoom.zoom_letter`); accuracy is
the micro mean over items (the official ``np.mean`` over 191), with per-category accuracy. The official
**likelihood** scoring (lowest mean option-token loss; :mod:`ground_r1.evaluation.likelihood`) is a separate
protocol and is labelled so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ground_r1.evaluation.benchmarks.readers import RawRecord
from ground_r1.evaluation.summary import ScoredBenchmark, SummaryRow
from ground_r1.evaluation.benchmarks.spec import BenchmarkItem, percent
from ground_r1.evaluation.benchmarks.zoom import LETTER_RULE, ZoomSpec, letter_options, shuffled_order, zoom_letter
from ground_r1.evaluation.likelihood import LIKELIHOOD_RULE
from ground_r1.evaluation.box_quality import BOX_FRAME_NOTE, box_quality_record, box_quality_summary, prediction_boxes

__all__ = ["LMMS_EVAL_VSTAR_RULE", "VSTAR_SUFFIX", "VStarSpec", "lmms_eval_vstar_letter", "parse_lettered_text"]

LMMS_EVAL_VSTAR_RULE = "lmms-eval 0.7.3 vstar_bench extract_answer_letter (first matching pattern)"
_LMMS_PATTERNS = (
    r"^([A-D])\s*[\.)\]]*",
    r"(?:THE\s+)?(?:ANSWER|CHOICE|OPTION)(?:\s+IS)?[\s:]+([A-D])",
    r"\(([A-D])\)",
    r"([A-D])\s*(?:\.|\)|])",
    r"(?:^|\s)([A-D])(?:\s|$)",
)

# The instruction of the HF test_questions.jsonl `text` (also lmms-eval's); our baseline protocol's suffix.
VSTAR_SUFFIX = "Answer with the option's letter from the given choices directly."
_LETTERED = re.compile(r"^\(([A-J])\)\s*(.*)$")


def lmms_eval_vstar_letter(response: str) -> str | None:
    """lmms-eval 0.7.3's V* reader, as its ``extract_answer_letter`` reads the whole reply: upper-cased, the first
    of five patterns that matches (a leading A-D, "ANSWER IS X", "(X)", "X." / "X)" / "X]", a lone letter), else
    the only A-D character, else a leading A-D. Kept as a labelled variant: "Based on the image, the answer is C."
    reads B and "leather" reads A here."""
    text = response.strip().upper()
    for pattern in _LMMS_PATTERNS:
        match = re.search(pattern, text, re.IGNORECASE)
        if match:
            return match.group(1).upper()
    letters = re.findall(r"[A-D]", text)
    if len(letters) == 1:
        return letters[0]
    return text[0] if text and text[0] in "ABCD" else None


def parse_lettered_text(text: str) -> tuple[str, dict[str, str]]:
    """(question, options) of a ``test_questions.jsonl`` ``text``: the lines before the first ``(A) x`` line,
    then each ``(X) x`` line; the trailing instruction line is dropped (lmms-eval's regex swallowed it into the
    last option)."""
    question_lines: list[str] = []
    options: dict[str, str] = {}
    for line in text.splitlines():
        match = _LETTERED.match(line.strip())
        if match:
            options[match.group(1)] = match.group(2).strip()
        elif not options:
            question_lines.append(line)
    return "\n".join(question_lines).strip(), options


@dataclass(frozen=True)
class VStarSpec(ZoomSpec):
    """V* Bench; ``hf_questions``: the spec reads ``test_questions.jsonl`` (``vstar_hf``) instead of the folder."""

    hf_questions: bool = False
    box_form: str = "xywh"
    option_seed: int | None = 0  # the folder's options are permuted per item (module doc); the HF file's: None
    likelihood_rule: str = LIKELIHOOD_RULE

    def validate(
        self, raw: RawRecord, layout: str, root: Path, check_images: bool, problems: list[tuple[str, str]]
    ) -> list[BenchmarkItem]:
        fields = raw.record or {}
        key = (
            f"{Path(raw.file).parent.name}/{Path(raw.file).name}"
            if layout == "vstar_folder"
            else f"{Path(raw.file).name}:{raw.line}"
        )
        notes: list[str] = []
        if self.hf_questions:
            text = self.text_field(fields, "text", problems)
            label = self.text_field(fields, "label", problems).upper()
            category = str(fields.get("category", "")).strip()
            question, options = parse_lettered_text(text)
            if text and len(options) < 2:
                problems.append(("text", "expected the question then at least two '(A) option' lines"))
            if label and options and label not in options:
                problems.append(("label", f"{label!r} is not one of the options {''.join(options)}"))
            image, _ = self.image_of(raw, fields.get("image"), root, check_images, problems)
            extra: dict[str, Any] = {"options": options, "input": "test_questions.jsonl (HF, authors' order)"}
            targets: list[list[float]] = []
            answer = label
        else:
            question = self.text_field(fields, "question", problems)
            sentences = fields.get("options")
            if (
                not isinstance(sentences, list)
                or len(sentences) < 2
                or not all(isinstance(s, str) and s.strip() for s in sentences)
            ):
                problems.append(("options", f"expected at least two option sentences, got {sentences!r}"))
                sentences = []
            objects = fields.get("target_object")
            image, size = self.image_of(raw, None, root, check_images, problems)
            targets = self.target_boxes(fields.get("bbox"), "bbox", size, problems, notes)
            if (
                isinstance(objects, list)
                and isinstance(fields.get("bbox"), list)
                and len(objects) != len(fields["bbox"])
            ):
                problems.append(("bbox", f"{len(fields['bbox'])} boxes for {len(objects)} target_object(s)"))
            order = shuffled_order(len(sentences), self.option_seed, key)
            options = letter_options([sentences[i].strip() for i in order])
            answer = "ABCDEFGHIJ"[order.index(0)] if sentences else ""
            category = str(fields.get("category", ""))
            extra = {
                "options": options,
                "option_order": order,
                "option_seed": self.option_seed,
                "target_object": objects,
                "targets": targets,
                "input": "per-image JSON folder (official)",
            }
        if problems:
            return []
        if notes:
            extra["box_notes"] = notes
        item = BenchmarkItem(
            key=key,
            benchmark=self.name,
            image=image,
            question=question,
            answer=answer,
            category=category,
            extra=extra,
            source_file=raw.file,
            line=raw.line,
        )
        return [item]

    # ------------------------------------------------------------------ prompts

    def question(self, item: BenchmarkItem) -> str:
        """The question then ``(A) option`` lines (the HF file's own layout)."""
        return f"{item.question}\n" + self.options_block(item.extra["options"], "paren")

    # ------------------------------------------------------------------ scoring

    def score_item(
        self, item: BenchmarkItem, prediction_text: str, *, judge_score: float | None = None
    ) -> dict[str, Any]:
        record = self._base_record(item, judge_score)
        options = item.extra["options"]
        parsed = zoom_letter(prediction_text, options)
        record.update(
            extracted=self.first_answer(prediction_text),
            parsed=parsed,
            correct=parsed is not None and parsed == item.answer,
            options=options,
            variants={"lmms_eval": lmms_eval_vstar_letter(prediction_text) == item.answer},
        )
        if "option_order" in item.extra:
            record.update(option_order=item.extra["option_order"], option_seed=item.extra["option_seed"])
        return record

    def likelihood_options(self, item: BenchmarkItem) -> tuple[str, list[str], int]:
        """(question without options, options in the file's order, index of the correct one) for the official
        likelihood scoring: the folder's sentences with the correct one first (0), or the HF file's letters."""
        shown = list(item.extra["options"].values())
        order = item.extra.get("option_order")
        if order is None:
            return item.question, shown, list(item.extra["options"]).index(item.answer)
        in_file = [""] * len(order)
        for position, index in enumerate(order):
            in_file[index] = shown[position]
        return item.question, in_file, 0

    def score_prediction(
        self, item: BenchmarkItem, prediction: dict[str, Any], *, judge_score: float | None = None
    ) -> dict[str, Any]:
        if prediction.get("protocol") == "likelihood":  # the official rule: lowest mean option loss, no letters
            record = self._base_record(item, judge_score)
            _, options, gold = self.likelihood_options(item)
            chosen = int(prediction["chosen"])
            record.update(
                parsed=options[chosen],
                extracted=options[chosen],
                correct=chosen == gold,
                option_losses=prediction["option_losses"],
                chosen=chosen,
                gold=gold,
                after=prediction.get("after"),
            )
            targets = item.extra.get("targets") or []
            if targets and prediction.get("trajectory"):  # after the crop loop: its boxes too
                record["box_quality"] = box_quality_record(prediction_boxes(prediction), targets)
            return record
        record = super().score_prediction(item, prediction, judge_score=judge_score)
        targets = item.extra.get("targets") or []
        if targets:
            record["box_quality"] = box_quality_record(prediction_boxes(prediction), targets)
        return record

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        self._check_records(records)
        per_category: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            per_category.setdefault(r["category"] or "all", []).append(r)
        return {
            "accuracy": percent(sum(bool(r["correct"]) for r in records), len(records)),
            "n": len(records),
            "n_unparsed": sum(r["parsed"] is None for r in records),
            "per_category": {
                c: {"accuracy": percent(sum(bool(r["correct"]) for r in rs), len(rs)), "n": len(rs)}
                for c, rs in sorted(per_category.items())
            },
            "box_quality": box_quality_summary(records),
            "variants": {"lmms_eval": percent(sum(bool(r["variants"]["lmms_eval"]) for r in records), len(records))}
            if records and all("variants" in r for r in records)
            else {},
        }

    def summary_rows(self, metrics: dict[str, Any], scored: ScoredBenchmark, skipped: int = 0) -> list[SummaryRow]:
        from ground_r1.evaluation.benchmarks.zoom_rows import accuracy_rows, box_rows

        seed = (
            f"options shuffled per item, seed {self.option_seed}"
            if not self.hf_questions
            else "options as lettered in test_questions.jsonl"
        )
        rule = f"{LETTER_RULE}; {seed}"
        if scored.records and all(r.get("option_losses") is not None for r in scored.records):
            rule = LIKELIHOOD_RULE + ("" if not self.hf_questions else "; options of test_questions.jsonl")
            if any(r.get("after") for r in scored.records):
                rule += "; after the Ground-R1 crop loop (options given its final context)"
        rows = accuracy_rows(self, metrics, scored, skipped, rule)
        if "lmms_eval" in metrics["variants"]:
            rows.append(
                self.summary_row(
                    scored,
                    skipped,
                    "accuracy",
                    metrics["variants"]["lmms_eval"],
                    rule=LMMS_EVAL_VSTAR_RULE
                    + (
                        " (lmms-eval reads test_questions.jsonl; here the folder's shuffled sentences)"
                        if not self.hf_questions
                        else ""
                    ),
                    variant=True,
                    which="variant:lmms_eval",
                )
            )
        return rows + box_rows(self, metrics, scored, skipped, BOX_FRAME_NOTE)
