"""HR-Bench 4K / 8K (DreamMr/HR-Bench @ b17b199): 200 questions x 4 option rotations = 800 rows per resolution
(issue 18; ``../shared/data/thinking-with-images/README.md`` §2).

Inputs, tried in this order in ``DATASET_ROOT``:

- the official TSV (``hr_bench_4k.tsv``: ``index, question, answer, category, A-D, cycle_category, image``), the
  images base64, checked by their first bytes when read and decoded only before inference (:mod:`.layouts`);
- the parquet twin (``hr_bench_4k.parquet``), same columns (pyarrow);
- ZoomEye's JSONL (``hr-bench_4k.zoomeye.jsonl`` / ``annotation_hr-bench_4k.json``), one record per question with
  the 4 rotations folded in. It is **unfolded** to rows ``index = 4k + j`` with ``cycle_category = j``:
  **inferred** (only ``cycle_category`` 0 was ever seen in a real row); every such row says so
  (``cycle_category_inferred``), and so does the table.

Prompt: VLMEvalKit's ``build_prompt`` (``Question: ...\\nOptions:\\nA. ...\\nPlease select the correct answer from
the options above. \\n``) in both protocols. Scoring: each row on its own, by the zoom benchmarks' one letter
rule; rows grouped by ``cycle_category``; each group's accuracy over all / single / cross; the reported number is
the **mean over the groups** (``HRBenchDataset.evaluate``'s ``avg``): not MMBench's CircularEval. The official
scorer asks an LLM judge (yes/no) per row instead of reading a letter: below, optional.
Variant: VLMEvalKit's ``can_infer`` (MMBench's matcher) with no GPT fallback, an unread answer wrong.

**The official judge**, optional: with a grader endpoint configured (``OPENAI_*``, as MM-Vet's), every row is asked
the official yes/no question (:func:`hrbench_judge_messages`, the official text; temperature 0.2) through the
judge client (retries, cache, resume); the row is right iff the reply starts with "yes" (lower-cased, the official
rule). Its number is a labelled row naming the grader (the official used a local LLM at ``llm_path``); a grading
that fails is left out and counted, never scored 0.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ground_r1.evaluation.benchmarks.readers import RawRecord
from ground_r1.evaluation.benchmarks.parsing import parse_options
from ground_r1.evaluation.benchmarks.reference import mmbench_can_infer
from ground_r1.evaluation.summary import ScoredBenchmark, SummaryRow
from ground_r1.evaluation.benchmarks.spec import BenchmarkItem, percent
from ground_r1.evaluation.benchmarks.mmvet import MMVET_GRADER_MAX_TOKENS
from ground_r1.evaluation.benchmarks.zoom import LETTER_RULE, ZoomSpec, zoom_letter
from ground_r1.evaluation.judge import AskPlan
from ground_r1.evaluation.uncertainty import Estimate, mean_of_group_means

__all__ = [
    "HRBENCH_CATEGORIES",
    "HRBENCH_JUDGE_PLAN",
    "HRBenchSpec",
    "cycle_metrics",
    "hrbench_judge_messages",
    "parse_hrbench_judgement",
]

HRBENCH_CATEGORIES = ("single", "cross")
_OPTION_LETTERS = "ABCD"


def hrbench_judge_messages(question: str, options: dict[str, str], answer: str, prediction: str) -> list[dict]:
    """The official judge input (``HRBenchDataset.evaluate`` @ b17b199), one user message."""
    block = "".join(f"{k}. {v}\n" for k, v in options.items())
    text = (
        "You are a helpful and precise assistant for checking the quality of the answer. Please answer in only "
        f"yes or no. Given the following question: {question}\nOptions:\n{block}Please select the correct answer "
        f"from the options above. \n, the correct answer is: {answer}. {options.get(answer, '')}. Does the "
        f"following answer correctly answers the question, answer:{prediction}?"
    )
    return [{"role": "user", "content": text}]


def parse_hrbench_judgement(reply: str | None) -> float | None:
    """1.0 iff the lower-cased, stripped reply starts with "yes" (the official rule), else 0.0; None: no reply."""
    if reply is None:
        return None
    return 1.0 if reply.strip().lower().startswith("yes") else 0.0


def _judge_temperature(ask: int) -> float:
    return 0.2  # the official GenerationConfig(top_p=0.8, top_k=40, temperature=0.2)


HRBENCH_JUDGE_PLAN = AskPlan(
    parse=parse_hrbench_judgement, max_asks=1, temperature=_judge_temperature, expects="yes or no"
)


def cycle_metrics(records: list[dict[str, Any]], flag: str = "correct") -> dict[str, Any]:
    """HR-Bench's official aggregation: per ``cycle_category`` group, accuracy (x100) over all rows and per
    category; ``avg`` = the arithmetic mean over groups of each (a group missing a category is left out of that
    category's mean). ``flag``: the record key read (``correct``, or ``variants.<key>``)."""

    def right(r: dict[str, Any]) -> bool:
        if flag.startswith("variants."):
            return bool(r["variants"][flag.split(".", 1)[1]])
        return bool(r[flag])

    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[str(r["cycle_category"])].append(r)
    per_group: dict[str, dict[str, float]] = {}
    for name in sorted(groups, key=lambda g: (len(g), g)):
        rows = groups[name]
        entry = {"all": percent(sum(right(r) for r in rows), len(rows)), "n": len(rows)}
        for category in HRBENCH_CATEGORIES:
            subset = [r for r in rows if r["category"] == category]
            if subset:
                entry[category] = percent(sum(right(r) for r in subset), len(subset))
        per_group[name] = entry
    avg = {}
    for column in ("all", *HRBENCH_CATEGORIES):
        values = [g[column] for g in per_group.values() if column in g]
        avg[column] = sum(values) / len(values) if values else 0.0
    return {"avg": avg, "per_cycle": per_group, "n_groups": len(per_group)}


@dataclass(frozen=True)
class HRBenchSpec(ZoomSpec):
    """HR-Bench at one resolution (``hrbench_4k``, ``hrbench_8k``)."""

    headline_metric: str = "avg.all"
    needs_judge: bool = True  # optional: graded when an endpoint is configured, else the judge row is absent
    judge_max_tokens: ClassVar[int | None] = MMVET_GRADER_MAX_TOKENS  # a "yes"/"no" reply (3 tokens, as MM-Vet)

    def judge_plan(self) -> AskPlan:
        """The official judge (``HRBenchDataset.evaluate``): one ask at temperature 0.2; a reply is right iff it
        starts with "yes"."""
        return HRBENCH_JUDGE_PLAN

    def grader_messages(self, item: BenchmarkItem, prediction_text: str, *, retry: bool = False) -> list[dict]:
        """The official yes/no question for one prediction (one ask: no retry message)."""
        return hrbench_judge_messages(item.question, item.extra["options"], item.answer, prediction_text)

    def validate(
        self, raw: RawRecord, layout: str, root: Path, check_images: bool, problems: list[tuple[str, str]]
    ) -> list[BenchmarkItem]:
        fields = raw.record or {}
        question = self.text_field(fields, "question", problems)
        category = self.text_field(fields, "category", problems)
        if category and category not in HRBENCH_CATEGORIES:
            problems.append(("category", f"expected single or cross, got {category!r}"))
        index = _int(fields.get("index"), "index", problems)
        if layout == "jsonl":
            return self._unfold_zoomeye(raw, question, category, index, root, check_images, problems)
        answer = self.text_field(fields, "answer", problems).upper()
        options = {
            k: str(fields[k]).strip()
            for k in _OPTION_LETTERS
            if k in fields and str(fields[k]).strip() and str(fields[k]).strip().lower() != "nan"
        }
        if len(options) < 2:
            problems.append(("A-D", f"expected at least two option columns, got {sorted(options)}"))
        if answer and options and answer not in options:
            problems.append(("answer", f"{answer!r} is not one of the options {''.join(options)}"))
        cycle = fields.get("cycle_category")
        if cycle is None or str(cycle).strip() in ("", "nan", "None"):
            problems.append(("cycle_category", "missing (HR-Bench averages accuracy over its groups)"))
        image, _ = self.image_of(raw, None, root, check_images, problems)
        if problems:
            return []
        extra = {
            "options": options,
            "cycle_category": str(int(float(cycle))) if _numeric(cycle) else str(cycle),
            "index": index,
            "embedded_image": raw.image,
        }
        return [self.item(raw, image, question, answer, category, extra)]

    def _unfold_zoomeye(
        self,
        raw: RawRecord,
        question: str,
        category: str,
        index: int | None,
        root: Path,
        check: bool,
        problems: list[tuple[str, str]],
    ) -> list[BenchmarkItem]:
        fields = raw.record or {}
        answers, blocks = fields.get("answer"), fields.get("options")
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            problems.append(("answer", f"expected a list of letters (one per rotation), got {answers!r}"))
        if not isinstance(blocks, list) or not all(isinstance(b, str) for b in blocks):
            problems.append(("options", f"expected a list of option blocks (one per rotation), got {blocks!r}"))
        elif isinstance(answers, list) and len(answers) != len(blocks):
            problems.append(("answer", f"{len(answers)} letters for {len(blocks)} option blocks"))
        image, _ = self.image_of(raw, fields.get("input_image"), root, check, problems)
        if problems:
            return []
        items = []
        for j, (letter, block) in enumerate(zip(answers, blocks)):
            options = parse_options(block)
            if len(options) < 2:
                problems.append((f"options[{j}]", f"expected 'A. x' lines, got {block!r}"))
                continue
            if letter.strip().upper() not in options:
                problems.append((f"answer[{j}]", f"{letter!r} is not one of the options {''.join(options)}"))
                continue
            extra = {
                "options": options,
                "cycle_category": str(j),
                "cycle_category_inferred": True,
                "index": (index or 0) + j,
                "zoomeye_index": index,
            }
            items.append(self.item(raw, image, question, letter.strip().upper(), category, extra, rotation=f"#{j}"))
        return [] if problems else items

    def first_items(self, items: list[BenchmarkItem], count: int) -> list[BenchmarkItem]:
        """The first ``count`` questions with all their rotations (the score averages over rotation groups)."""
        kept, questions = [], []
        for item in items:
            question = (
                (item.source_file, item.line)
                if item.extra.get("cycle_category_inferred")
                else (item.source_file, item.extra["index"] // 4)
            )
            if question not in questions:
                if len(questions) == count:
                    break
                questions.append(question)
            kept.append(item)
        return kept

    def question(self, item: BenchmarkItem) -> str:
        """VLMEvalKit's ``ImageMCQDataset.build_prompt`` (HR-Bench's official prompt)."""
        options = "".join(f"{k}. {v}\n" for k, v in item.extra["options"].items())
        return (
            f"Question: {item.question}\nOptions:\n{options}Please select the correct answer from the options above. \n"
        )

    def score_item(
        self, item: BenchmarkItem, prediction_text: str, *, judge_score: float | None = None
    ) -> dict[str, Any]:
        record = self._base_record(item, judge_score)
        if judge_score is not None and judge_score not in (0.0, 1.0):
            raise ValueError(f"{self.name}: the official judge scores 0 or 1, got {judge_score!r} for {item.key}")
        options = item.extra["options"]
        parsed = zoom_letter(prediction_text, options)
        vlmevalkit = mmbench_can_infer(self.first_answer(prediction_text), options)
        record.update(
            extracted=self.first_answer(prediction_text),
            parsed=parsed,
            correct=parsed is not None and parsed == item.answer,
            cycle_category=item.extra["cycle_category"],
            cycle_category_inferred=bool(item.extra.get("cycle_category_inferred")),
            index=item.extra["index"],
            variants={"vlmevalkit": vlmevalkit == item.answer},
            judge=judge_score,
        )
        return record

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        self._check_records(records)
        result = cycle_metrics(records)
        result.update(
            n=len(records),
            n_unparsed=sum(r["parsed"] is None for r in records),
            cycle_category_inferred=any(r.get("cycle_category_inferred") for r in records),
            variants={"vlmevalkit": cycle_metrics(records, "variants.vlmevalkit")},
        )
        judged = [r for r in records if r.get("judge") is not None]
        result["n_judged"] = len(judged)
        if judged:
            result["judge"] = cycle_metrics(judged, "judge")
        return result

    def estimate(self, records: list[dict[str, Any]], metric: str = "headline") -> Estimate:
        """The mean over cycle groups, bootstrapped over rows within their group (``metric``: ``headline``,
        ``single``, ``cross`` or ``variant:vlmevalkit``)."""
        rows = records
        if metric in HRBENCH_CATEGORIES:
            rows = [r for r in records if r["category"] == metric]
        if metric == "judge":
            rows = [r for r in records if r.get("judge") is not None]
            return mean_of_group_means([r["cycle_category"] for r in rows], [100.0 * r["judge"] for r in rows])
        if metric.startswith("variant:"):
            key = metric.split(":", 1)[1]
            values = [100.0 * bool(r["variants"][key]) for r in rows]
        else:
            values = [100.0 * bool(r["correct"]) for r in rows]
        return mean_of_group_means([r["cycle_category"] for r in rows], values)

    def summary_rows(self, metrics: dict[str, Any], scored: ScoredBenchmark, skipped: int = 0) -> list[SummaryRow]:
        groups = metrics["n_groups"]
        inferred = (
            " (cycle_category inferred from ZoomEye's rotation order)" if metrics["cycle_category_inferred"] else ""
        )
        rule = (
            f"{LETTER_RULE}; HR-Bench official mean over {groups} cycle_category group(s){inferred}; the official "
            "per-row scorer is an LLM judge (its own row when a grader endpoint is configured)"
        )
        per_cycle = ", ".join(f"cycle {g}: {v['all']:.1f} (n={v['n']})" for g, v in metrics["per_cycle"].items())
        rows = [
            self.summary_row(
                scored, skipped, "accuracy (avg over cycles)", metrics["avg"]["all"], rule=rule, notes=per_cycle
            )
        ]
        for category in HRBENCH_CATEGORIES:
            subset = sum(1 for r in scored.records if r["category"] == category)
            rows.append(
                self.summary_row(
                    scored,
                    skipped,
                    f"{category} (avg over cycles)",
                    metrics["avg"][category],
                    rule=rule,
                    which=category,
                    items=subset,
                )
            )
        variant = metrics["variants"]["vlmevalkit"]
        rows.append(
            self.summary_row(
                scored,
                skipped,
                "accuracy (avg over cycles)",
                variant["avg"]["all"],
                rule="VLMEvalKit can_infer (MMBench matcher), no GPT fallback",
                variant=True,
                which="variant:vlmevalkit",
            )
        )
        failed = len(scored.records) - metrics["n_judged"]
        if not metrics.get("judge"):  # the official scorer did not run (no endpoint) or every grading failed
            why = (
                f"all {failed} judgment(s) failed"
                if scored.graded
                else "NOT JUDGED: no judge endpoint configured (OPENAI_*)"
            )
            rows.append(
                self.summary_row(
                    scored,
                    skipped,
                    "accuracy (avg over cycles)",
                    None,
                    rule="HR-Bench official LLM judge (yes/no)",
                    variant=True,
                    which="judge",
                    items=0,
                    notes=why,
                    error_bar=False,
                )
            )
        else:  # the official scorer, when a grader endpoint was configured
            judge = self.summary_row(
                scored,
                skipped,
                "accuracy (avg over cycles)",
                metrics["judge"]["avg"]["all"],
                rule=f"HR-Bench official LLM judge (yes/no; grader {scored.grader or 'unknown'}; official: a "
                "local LLM at llm_path)",
                variant=True,
                which="judge",
                items=metrics["n_judged"],
                notes=f"judged {metrics['n_judged']}/{len(scored.records)}"
                + (f", {failed} judgment(s) failed: left out" if failed else ""),
            )
            judge.left_out += failed
            rows.append(judge)
        return rows


def _numeric(value: Any) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def _int(value: Any, name: str, problems: list[tuple[str, str]]) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        problems.append((name, "missing field"))
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        problems.append((name, f"expected an integer, got {value!r}"))
        return None
    if number != int(number):
        problems.append((name, f"expected an integer, got {value!r}"))
        return None
    return int(number)
