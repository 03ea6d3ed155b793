"""Answer readers of the reference scorers, written from their text (our code; docs/metrics.md names each source).

Every general benchmark's headline number follows one reference (SPEC §7, issue "Every number agrees with its
reference"): lmms-eval 0.7.3's ``lmms_eval/tasks/<name>/utils.py`` for MME, SEED-Bench, MME-RealWorld and
RealWorldQA; the POPE authors' ``evaluate.py`` rule for POPE; MMBench's official CircularEval with lmms-eval
0.7.3's static matcher (``mmbench_evals.py``, ``_task_utils/mcq_extract.py``); MMMU's official parser
(:mod:`ground_r1.evaluation.benchmarks.mmmu_rules`). The readers here take the *extracted answer* of the final
turn (SPEC §3 extraction: the ``<answer>`` content, else the whole turn), which is the whole model output
whenever the model writes no tags, so on baseline-protocol predictions they see exactly what lmms-eval sees.

Each reader returns a normalised answer ("yes"/"no", an option letter) or ``None`` where the reference reads
nothing ("other", an empty letter); a ``None`` is scored wrong and counted as unparsed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

__all__ = [
    "mcq_extract",
    "mmbench_can_infer",
    "mme_realworld_letter",
    "mme_yes_no",
    "pope_yes_no",
    "seed_first_character",
]


def mme_yes_no(answer: str) -> str | None:
    """lmms-eval 0.7.3 MME (``parse_pred_ans``, "brought from Otter Eval"): lower case, strip, every "." removed;
    "yes"/"no" as is; a single "y"/"n" reads yes/no (a bare letter the MME authors' rule leaves unread); else
    "yes" if "yes" is in the first four characters, else "no" if "no" is; else ``None`` ("other")."""
    text = answer.lower().strip().replace(".", "")
    if text in ("yes", "no"):
        return text
    if len(text) == 1:
        return {"y": "yes", "n": "no"}.get(text)
    prefix = text[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return None


def pope_yes_no(answer: str) -> str:
    """The POPE authors' rule (``evaluate.py`` of the POPE repository; LLaVA's ``eval_pope.py`` copies it): keep the
    first sentence (text before the first "."), drop commas, split on single spaces; "No", "no" or "not" among the
    words reads "no", anything else "yes". Case-sensitive as written ("Not" is not a word it looks for), never
    unread: every answer is yes or no."""
    text = answer.split(".")[0] if "." in answer else answer
    words = text.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def seed_first_character(answer: str) -> str | None:
    """lmms-eval 0.7.3 SEED-Bench (``seed_process_result``): the first character of the stripped answer, upper-cased
    here for display (the reference compares lower-cased); ``None`` for an empty answer."""
    text = answer.strip()
    return text[0].upper() if text else None


_MME_RW_PREFIXES = (
    "The best answer is", "The correct answer is", "The answer is", "The answer", "The best option is",
    "The correct option is", "Best answer:", "Best option:",
)  # fmt: skip
_MME_RW_CHOICES = ("(A)", "(B)", "(C)", "(D)", "(E)")


def mme_realworld_letter(answer: str) -> str | None:
    """lmms-eval 0.7.3 MME-RealWorld (``extract_characters_regex``): strip; remove the answer prefixes ("The best
    answer is", ...); more than ten words and no capital A-E -> unread; else the first capital A-E anywhere (the
    "B" of "Based on ..." counts, as there); with none, the first of "(A)".."(E)" containing the lower-cased
    text (so an empty answer reads "A", as there); else unread."""
    text = answer.strip()
    for prefix in _MME_RW_PREFIXES:
        text = text.replace(prefix, "")
    found = re.search(r"[ABCDE]", text)
    if len(text.split()) > 10 and found is None:
        return None
    if found is not None:
        return found.group(0)
    for choice in _MME_RW_CHOICES:
        if text.lower() in choice.lower():
            return choice[1]
    return None


# ---------------------------------------------------------------------- lmms-eval's shared MCQ extractor

_MCQ_DEFAULT_CHOICES = ("A", "B", "C", "D", "E", "F", "G", "H")
_MCQ_PHRASES = (
    "the answer is", "answer is", "the correct answer is", "correct answer is", "the best answer is",
    "best answer is", "the correct option is", "correct option is", "the best option is", "best option is",
    "the choice is", "choice is", "the correct choice is", "correct choice is", "i choose", "i select", "i pick",
    "my answer is", "my choice is", "옵션", "정답은", "답은", "답:", "答案是", "答案为", "选", "答えは",
)  # fmt: skip
_MCQ_PRIORITY = {
    "start": 10,
    "end": 9,
    "phrase": 7,
    "parentheses": 6,
    "period": 5,
    "colon": 4,
    "right_paren": 3,
    "space": 2,
    "fallback": 0,
}


def mcq_extract(response: str, choices: Sequence[str] | None = None) -> str | None:
    """lmms-eval 0.7.3 ``_task_utils/mcq_extract.extract_mcq_answer``: every candidate letter in several formats
    ("(A)", "A.", "A:", "A)", "A " followed by a space, after an answer phrase, a standalone letter at the start or
    the end, else any occurrence), the highest-priority format winning and, within it, the last position.
    ``None`` where the reference returns "" (nothing found)."""
    if not response or not response.strip():
        return None
    letters = list(choices or _MCQ_DEFAULT_CHOICES)
    text = response.strip()
    for char in [",", ".", "!", "?", ";", ":", "'", '"']:
        text = text.strip(char)
    text = " " + text + " "
    found: list[tuple[str, int, str]] = []
    for fmt, pattern in (
        ("parentheses", "({})"),
        ("period", "{}."),
        ("colon", "{}:"),
        ("right_paren", "{})"),
        ("space", "{} "),
    ):
        for ch in letters:
            token = pattern.format(ch)
            if token in text:
                found.append((ch, text.rfind(token), fmt))
    lower = text.lower()
    for phrase in _MCQ_PHRASES:
        index = lower.find(phrase)
        if index != -1:
            after = index + len(phrase)
            for ch in letters:
                position = text.find(ch, after)
                if position != -1:
                    found.append((ch, position, "phrase"))
    stripped = text.strip()
    for ch in letters:
        if stripped.startswith(ch) and (len(stripped) == 1 or not stripped[1].isalpha()):
            found.append((ch, 0, "start"))
    for ch in letters:
        if stripped.endswith(ch) and (len(stripped) == 1 or not stripped[-2].isalpha()):
            found.append((ch, len(text) - 1, "end"))
    if not found:
        for ch in letters:
            if ch in text:
                found.append((ch, text.rfind(ch), "fallback"))
    if not found:
        return None
    found.sort(key=lambda c: (_MCQ_PRIORITY.get(c[2], 0), c[1]), reverse=True)
    return found[0][0]


# ------------------------------------------------------------------------------- MMBench's matcher


def _count_tokens(words: list[str], letters: str, prefix: str = "", suffix: str = "") -> int:
    return sum(1 for ch in letters if prefix + ch + suffix in words)


_MMBENCH_WRAPPERS = (
    ("", "."),
    ("", ","),
    ("", ":"),
    ("", ")"),
    ("", ")."),
    ("(", ")"),
    ("(", ")."),
    (":", ""),
    (":", ","),
    (":", "."),
    (":", ")"),
    (":", ")."),
)


def _mmbench_infer_option(answer: str, letters: str = "ABCDE") -> str | None:
    """``MMBench_Evaluator.can_infer_option`` (lmms-eval 0.7.3 ``mmbench_evals.py``, from MMBench/VLMEvalKit)."""
    if "Failed to obtain answer via API" in answer:
        return None
    words = [w.strip() for w in answer.split()]
    if _count_tokens(words, letters) == 1:
        # An "A" in an answer of more than three words may be the article: the bare-letter reading is skipped.
        if not ("A" in words and len(words) > 3):
            for ch in letters:
                if ch in words:
                    return ch
    for prefix, suffix in _MMBENCH_WRAPPERS:
        if _count_tokens(words, letters, prefix, suffix) == 1:
            for ch in letters:
                if prefix + ch + suffix in words:
                    return ch
    return None


def _mmbench_infer_text(answer: str, options: Mapping[str, str]) -> str | None:
    """``MMBench_Evaluator.can_infer_text``: exactly one option whose lower-cased text is inside the answer."""
    lower = answer.lower()
    hits = [k for k, v in options.items() if str(v).lower() in lower]
    return hits[0] if len(hits) == 1 else None


def mmbench_can_infer(answer: str, options: Mapping[str, str], extra_letters: str = "") -> str | None:
    """The letter MMBench's official prefetch reads (``can_infer``: a letter token, else a unique option text),
    then lmms-eval 0.7.3's static fallback (``mmbench_en_dev_static``: :func:`mcq_extract` over the question's
    option letters) where the official evaluator would ask GPT. ``options`` are the question's real options
    (MMBench's missing ones, "nan" in the release file, left out). A prefetched "E" (no such option) is a wrong
    answer, as there. ``extra_letters``: choices without option text (a row's answer letter past its options),
    added to the static fallback's letters."""
    letter = _mmbench_infer_option(answer) or _mmbench_infer_text(answer, options)
    if letter:
        return letter
    return mcq_extract(answer, sorted(options) + [ch for ch in extra_letters if ch not in options])
