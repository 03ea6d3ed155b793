"""MM-Vet (SPEC §7): open answers graded 0-1 by an LLM with the official few-shot prompt.

Source of the protocol: the MM-Vet authors' evaluator, ``mm-vet_evaluator.py`` in
github.com/yuweihao/MM-Vet (the prompt below is theirs verbatim). Per item the grader gets ONE user
message: the instruction and few-shot table, a newline, then ``question | ground truth | prediction | ``
with ``<AND>``/``<OR>`` in the ground truth padded by spaces; it answers with the score (they used
gpt-4-0613, ``max_tokens=3``, temperature 0). A reply that is not a number in [0, 1] is asked again with
"Predict the correctness of the answer (digit): " appended and the temperature raised by 0.5, five
tries in all. There the last failure scored 0.0; here a failure stays a failure: the caller passes
``judge_score=None``, the item is excluded from the means and counted (``n_failed``).

Metrics (x100): the total is the mean score; each capability (``Category`` is a comma-separated list:
rec, ocr, know, gen, spat, math) averages the items that need it, so one item counts in each of its
capabilities; capability sets ("integrations") average the items with exactly that set.
The release had no MM-Vet grader; the paper reports 67.1 -> 69.8.

Grader model: ours is the user's judge endpoint (``OPENAI_MODEL``, default gpt-4o-mini), and every summary table
names the model that graded (from the grading records). The official evaluator used ``gpt-4-0613``
(:data:`MMVET_GRADER_MODEL`); lmms-eval 0.7.3 uses ``gpt-4o-2024-11-20`` (:data:`MMVET_LMMS_EVAL_GRADER_MODEL`, its
``MODEL_VERSION``, with ``max_tokens`` 128 and a "gpt_query_prompt" header in place of "Question"). Scores from
different graders are not comparable: set ``OPENAI_MODEL`` (or ``--judge_model``) to the one you compare with.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ground_r1.evaluation.benchmarks.parsing import extract_answer_span
from ground_r1.evaluation.benchmarks.spec import BenchmarkItem, BenchmarkSpec, percent
from ground_r1.evaluation.summary import ScoredBenchmark, SummaryRow
from ground_r1.evaluation.uncertainty import Estimate, mean_estimate

if TYPE_CHECKING:
    from ground_r1.evaluation.judge import AskPlan

__all__ = [
    "MMVET_CAPABILITIES",
    "MMVET_GRADER_MAX_TOKENS",
    "MMVET_GRADER_MAX_TRIES",
    "MMVET_GRADER_MODEL",
    "MMVET_LMMS_EVAL_GRADER_MODEL",
    "MMVET_GRADER_PROMPT",
    "MMVET_RETRY_SUFFIX",
    "MMVetSpec",
    "mmvet_grader_messages",
    "mmvet_grader_temperature",
    "parse_mmvet_score",
]

MMVET_CAPABILITIES: tuple[str, ...] = ("rec", "ocr", "know", "gen", "spat", "math")

MMVET_GRADER_MODEL = "gpt-4-0613"  # the official evaluator's default grader
MMVET_LMMS_EVAL_GRADER_MODEL = "gpt-4o-2024-11-20"  # lmms-eval 0.7.3 mmvet's MODEL_VERSION default
MMVET_GRADER_MAX_TOKENS = 3
MMVET_GRADER_MAX_TRIES = 5
MMVET_RETRY_SUFFIX = "\nPredict the correctness of the answer (digit): "

MMVET_GRADER_PROMPT = """Compare the ground truth and prediction from AI models, to give a correctness score for the prediction. <AND> in the ground truth means it is totally right only when all elements in the ground truth are present in the prediction, and <OR> means it is totally right when any one element in the ground truth is present in the prediction. The correctness score is 0.0 (totally wrong), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, or 1.0 (totally right). Just complete the last space of the correctness score.

Question | Ground truth | Prediction | Correctness
--- | --- | --- | ---
What is x in the equation? | -1 <AND> -5 | x = 3 | 0.0
What is x in the equation? | -1 <AND> -5 | x = -1 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 or 5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -1 or x = -5 | 1.0
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes, while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues because the names of these countries do not accurately represent their landscapes. | The meme talks about Iceland and Greenland. It's pointing out that despite their names, Iceland is not very icy and Greenland isn't very green. | 0.4
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes, while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues because the names of these countries do not accurately represent their landscapes. | The meme is using humor to point out the misleading nature of Iceland's and Greenland's names. Iceland, despite its name, has lush green landscapes while Greenland is mostly covered in ice and snow. The text 'This is why I have trust issues' is a playful way to suggest that these contradictions can lead to distrust or confusion. The humor in this meme is derived from the unexpected contrast between the names of the countries and their actual physical characteristics. | 1.0
"""  # noqa: E501


def mmvet_grader_messages(
    question: str, ground_truth: str, prediction: str, *, retry: bool = False
) -> list[dict[str, str]]:
    """The chat messages of one official MM-Vet grading call (``retry`` adds the retry suffix)."""
    gt = ground_truth.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")
    content = MMVET_GRADER_PROMPT + "\n" + " | ".join([question, gt, prediction, ""])
    if retry:
        content += MMVET_RETRY_SUFFIX
    return [{"role": "user", "content": content}]


def mmvet_grader_temperature(attempt: int) -> float:
    """Sampling temperature of grading try ``attempt`` (0-based): 0.0, then +0.5 per retry."""
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    return 0.5 * attempt


def parse_mmvet_score(reply: str | None) -> float | None:
    """The grader's score: the reply's first word as a number in [0, 1], else None (ask again).

    Like the official evaluator (``content.split(" ")[0]``), with surrounding whitespace and a
    trailing "|", "," or ";" tolerated.
    """
    if not reply or not reply.strip():
        return None
    token = reply.strip().split()[0].rstrip("|,;")
    try:
        score = float(token)
    except ValueError:
        return None
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        return None
    return score


def _answer_elements(answer: str) -> dict[str, Any]:
    has_and, has_or = "<AND>" in answer, "<OR>" in answer
    if has_and and has_or:
        mode = "mixed"
    else:
        mode = "and" if has_and else "or" if has_or else "single"
    parts = [answer]
    for sep in ("<AND>", "<OR>"):
        parts = [p for part in parts for p in part.split(sep)]
    return {"mode": mode, "elements": [p.strip() for p in parts if p.strip()]}


@dataclass(frozen=True)
class MMVetSpec(BenchmarkSpec):
    """MM-Vet: graded by an LLM (``needs_judge``); category is the comma-separated capability list."""

    needs_judge: bool = True
    judge_max_tokens: ClassVar[int | None] = MMVET_GRADER_MAX_TOKENS  # the official evaluator's reply budget
    headline_metric: str = "total"
    rule: str = "MM-Vet official grader prompt"

    required_fields: ClassVar[tuple[str, ...]] = ("Image", "problem", "solution", "Category")

    def _finish_item(self, item: BenchmarkItem, record: dict[str, Any], problems: list) -> None:
        raw = record["Category"]
        caps = [c.strip() for c in raw.split(",") if c.strip()] if isinstance(raw, str) else []
        if not caps:
            problems.append(("Category", f"expected comma-separated capabilities, got {raw!r}"))
        item.category = ",".join(caps)
        item.extra["capabilities"] = caps
        item.extra["answer_elements"] = _answer_elements(item.answer)

    def parse_answer(self, text: str) -> str | None:
        """The answer the grader sees: the extracted answer of the turn (SPEC §3), None if empty."""
        return extract_answer_span(text) or None

    def grader_messages(self, item: BenchmarkItem, prediction_text: str, *, retry: bool = False):
        """The grading call for one prediction (see :func:`mmvet_grader_messages`)."""
        return mmvet_grader_messages(item.question, item.answer, extract_answer_span(prediction_text), retry=retry)

    def score_item(
        self, item: BenchmarkItem, prediction_text: str, *, judge_score: float | None = None
    ) -> dict[str, Any]:
        """The record; ``judge_score`` is the grader's 0-1 score, None when grading failed."""
        record = self._base_record(item, judge_score)
        if judge_score is not None and (
            not isinstance(judge_score, (int, float)) or not math.isfinite(judge_score) or not 0.0 <= judge_score <= 1.0
        ):
            raise ValueError(f"MMVet: judge_score for {item.key} must be in [0, 1], got {judge_score!r}")
        record.update(
            capabilities=list(item.extra["capabilities"]),
            extracted=extract_answer_span(prediction_text),
            parsed=self.parse_answer(prediction_text),
            score=None if judge_score is None else float(judge_score),
            graded=judge_score is not None,
        )
        return record

    def judge_plan(self) -> AskPlan:
        """The official MM-Vet evaluator: up to 5 asks, the retry message after the first, temperature +0.5 per
        ask; a reply is a score in [0, 1]."""
        from ground_r1.evaluation.judge import AskPlan

        return AskPlan(
            parse=parse_mmvet_score,
            max_asks=MMVET_GRADER_MAX_TRIES,
            temperature=mmvet_grader_temperature,
            expects="score in [0, 1]",
        )

    def summary_rows(self, metrics: dict[str, Any], scored: ScoredBenchmark, skipped: int = 0) -> list[SummaryRow]:
        """The graded total; failed gradings are left out and counted, and the grader that ran is named."""
        failed = metrics["n_failed"]
        if not scored.graded:
            notes = "NOT JUDGED: no judge endpoint configured (OPENAI_*)"
        else:
            notes = f"judged {metrics['n_graded']}/{metrics['n_items']}"
            notes += f", {failed} judgment(s) failed" if failed else ""
        grader = f"grader {scored.grader}" if scored.grader else "no grader ran"
        rule = f"MM-Vet official grader prompt ({grader}; official: {MMVET_GRADER_MODEL})"
        return [
            self.summary_row(
                scored, skipped, "total (LLM-judged)", metrics["total"], notes, extra_left_out=failed, rule=rule
            )
        ]

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """``total``, ``per_capability``, ``per_capability_set`` (x100) over graded items; counts.

        Each group reports ``score`` (x100, None when none of its items was graded), ``n`` (graded)
        and ``n_failed``.
        """
        self._check_records(records)
        by_cap: dict[str, list[dict[str, Any]]] = defaultdict(list)
        by_set: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in records:
            caps = sorted(set(record["capabilities"]), key=_capability_order)
            for cap in caps:
                by_cap[cap].append(record)
            by_set[",".join(caps)].append(record)
        summary = _score_group(records)
        return {
            "total": summary["score"],
            "n_items": len(records),
            "n_graded": summary["n"],
            "n_failed": summary["n_failed"],
            "per_capability": {c: _score_group(by_cap[c]) for c in sorted(by_cap, key=_capability_order)},
            "per_capability_set": {s: _score_group(by_set[s]) for s in sorted(by_set)},
        }

    def estimate(self, records: list[dict[str, Any]], metric: str = "headline") -> Estimate:
        """The total: the standard error of the mean graded score (x100) over graded items."""
        return mean_estimate([100.0 * r["score"] for r in records if r["score"] is not None])


def _capability_order(cap: str) -> tuple[int, str]:
    return (MMVET_CAPABILITIES.index(cap) if cap in MMVET_CAPABILITIES else len(MMVET_CAPABILITIES), cap)


def _score_group(records: list[dict[str, Any]]) -> dict[str, Any]:
    graded = [r["score"] for r in records if r["score"] is not None]
    return {
        "score": percent(sum(graded), len(graded)) if graded else None,
        "n": len(graded),
        "n_failed": len(records) - len(graded),
    }
