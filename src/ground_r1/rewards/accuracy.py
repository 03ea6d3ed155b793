"""Accuracy reward, range [0, 1], judged on the final turn only (SPEC §3 table).

Two layers:

* **Scorers** compare an extracted answer with a ground truth: :func:`wer_score`, :func:`rouge_score`,
  :func:`exact_or_substring`, :func:`exact_or_substring_strict`, :func:`exact_match`. Signature
  ``scorer(prediction, ground_truth) -> float``.
* **Handlers** are what the registry maps dataset names to. Signature
  ``handler(final_turn, ground_truth) -> float | None``: they receive the *whole* final assistant turn
  (the letter rule falls back to searching the whole turn, SPEC §3) and the ground truth with its
  ``<answer>`` tags already stripped. ``None`` means "no rule-based score" (n/a, e.g. emotic).
  :class:`OnAnswer` turns a scorer into a handler by extracting the answer first (SPEC §3 extraction).

:func:`accuracy_score` is the one entry point used by training and evaluation alike (one scorer serves
both, DESIGN.md "nanochat").
"""

from __future__ import annotations

import functools
import math
import re
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

import jiwer

from ground_r1.rollout.answer import extract_answer, strip_answer_tags

if TYPE_CHECKING:
    from ground_r1.rewards.registry import AccuracyRegistry

Scorer = Callable[[str, str], float]
Handler = Callable[[str, str], Optional[float]]

# SPEC §3: "<answer>\s*([A-Da-d])", else the first "\b([A-D])\." anywhere in the final turn.
_LETTER_AFTER_ANSWER = re.compile(r"<answer>\s*([A-Da-d])")
_LETTER_WITH_DOT = re.compile(r"\b([A-D])\.")
# The bare-letter fallback of the default rule: the whole final turn is one option letter ("C", " c ").
_BARE_LETTER = re.compile(r"([A-Da-d])")

# The option-letter rule of v7w/gqa/openimages (SPEC §3), one choice for the training reward and the evaluation
# tables alike (config key ``letter_rule``):
#   "spec"    - the SPEC §3 rule plus a bare-letter fallback (:func:`predicted_letter`), the default;
#   "release" - the release's full rule (:func:`release_letter_credit`), a named variant.
LETTER_RULES = ("spec", "release")
DEFAULT_LETTER_RULE = "spec"
# A ground truth that is an option letter (release gqa/openimages store "<answer>C</answer>"; SPEC §6).
_OPTION_LETTER = re.compile(r"[A-Da-d]")


# --------------------------------------------------------------------------------------------- scorers


def _words(text: str) -> list[str]:
    """Lowercased whitespace tokens (SPEC §3 WER: word level, lowercased, split on whitespace)."""
    return text.lower().split()


def wer_score(prediction: str, ground_truth: str) -> float:
    """``1 - min(WER(gt, pred), WER(pred, gt))`` on lowercased whitespace-split words, clipped to [0, 1]
    (SPEC §3, docvqa & co.).

    The symmetric minimum forgives a prediction that is a strict superset *or* subset of the ground truth
    in the cheaper direction. Punctuation is kept, as in the release: "Foliage." vs "foliage" is one
    substitution. An empty prediction scores 0 (SPEC §3); so does an empty ground truth (the WER against an
    empty reference is undefined; data validation should reject such records).
    """
    pred_words, gt_words = _words(prediction), _words(ground_truth)
    if not pred_words or not gt_words:
        return 0.0
    pred, gt = " ".join(pred_words), " ".join(gt_words)
    # jiwer 4: wer(reference, hypothesis); both non-empty here, so both rates are defined.
    error = min(jiwer.wer(gt, pred), jiwer.wer(pred, gt))
    return _clip01(1.0 - error)


@functools.lru_cache(maxsize=1)
def _rouge_scorer():
    """Built once (it loads a stemmer); rouge_score is imported lazily so importing rewards stays cheap."""
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge_score(prediction: str, ground_truth: str) -> float:
    """Mean of ROUGE-1, ROUGE-2 and ROUGE-L F-measures with Porter stemming, clipped (SPEC §3, flickr30k).

    rouge_score's tokenizer lowercases and drops non-alphanumerics. Note: a one-word answer has no bigram,
    so even an identical one-word prediction scores (1 + 0 + 1) / 3 = 2/3; flickr30k answers are sentences.
    """
    if not prediction.strip():
        return 0.0
    scores = _rouge_scorer().score(ground_truth, prediction)  # score(target, prediction)
    mean = (scores["rouge1"].fmeasure + scores["rouge2"].fmeasure + scores["rougeL"].fmeasure) / 3.0
    return _clip01(mean)


def exact_or_substring(prediction: str, ground_truth: str) -> float:
    """1.0 on a lowercase exact match, 0.6 if the ground truth is a substring of the prediction, else 0
    (SPEC §3, vsr/cub; the release's rule).

    Known weakness (SPEC §3): a hedging "yes no" earns 0.6 whether the truth is "yes" or "no"; and the
    substring test is on characters, so "no" is found inside "not" or "know". Use
    :func:`exact_or_substring_strict` to remove the partial credit.
    """
    pred, gt = prediction.strip().lower(), ground_truth.strip().lower()
    if not pred or not gt:
        return 0.0
    if pred == gt:
        return 1.0
    return 0.6 if gt in pred else 0.0


def exact_or_substring_strict(prediction: str, ground_truth: str) -> float:
    """The strict variant of :func:`exact_or_substring`: 1.0 on a lowercase exact match, else 0."""
    pred, gt = prediction.strip().lower(), ground_truth.strip().lower()
    return 1.0 if pred and pred == gt else 0.0


_END_PUNCTUATION = string.punctuation + string.whitespace


def normalize_answer(text: str) -> str:
    """Lowercase, collapse inner whitespace, strip whitespace and punctuation at both ends."""
    return " ".join(text.lower().split()).strip(_END_PUNCTUATION)


def exact_match(prediction: str, ground_truth: str) -> float:
    """1.0 when the normalised answers are equal (:func:`normalize_answer`), else 0. Used by the project's
    synthetic tasks, whose answers are short tokens; an empty prediction scores 0."""
    pred = normalize_answer(prediction)
    return 1.0 if pred and pred == normalize_answer(ground_truth) else 0.0


# -------------------------------------------------------------------------------------------- handlers


def is_option_letter(ground_truth: str) -> bool:
    """True when a (tag-stripped) ground truth is a single option letter A-D (either case)."""
    return _OPTION_LETTER.fullmatch(ground_truth.strip()) is not None


def predicted_letter(final_turn: str) -> str | None:
    """The option letter a final turn chose under the default rule (SPEC §3 plus a bare-letter fallback),
    upper-cased, or None.

    First the letter right after ``<answer>`` (``<answer>\\s*([A-Da-d])``), else the first ``\\b([A-D])\\.``
    anywhere in the turn ("B. blah"), else, when the whole turn is one letter A-D (either case, surrounding
    whitespace ignored), that letter: a bare "C" (no tags, no dot) scores as the release scored it. Faithful
    to the release's weakness: the first rule reads the first character of a word, so
    ``<answer>Door</answer>`` reads as "D".
    """
    found = _LETTER_AFTER_ANSWER.search(final_turn) or _LETTER_WITH_DOT.search(final_turn)
    if found is None:
        found = _BARE_LETTER.fullmatch(final_turn.strip())
    return found.group(1).upper() if found else None


def release_letter_credit(final_turn: str, ground_truth: str) -> bool:
    """The release's full letter rule (``v7w`` in its ``accuracy_reward_functions.py``), the named variant
    ``letter_rule: release``.

    Two tries, either one credits: (1) the letter after ``<answer>``, or the whole stripped turn when there is
    none, equals the ground truth (case-insensitive); (2) the first ``\\b([A-D])\\.`` of the turn, or the whole
    stripped turn when there is none, equals it. So a bare "C" scores, and so does a wrong ``<answer>`` letter
    when the first "X." elsewhere in the turn (e.g. in the reasoning) matches: ``<think>C. looks right</think>
    <answer>B</answer>`` is credited for "C".
    """
    truth = ground_truth.strip().lower()
    whole = final_turn.strip()
    after_answer = _LETTER_AFTER_ANSWER.search(final_turn)
    if (after_answer.group(1) if after_answer else whole).lower() == truth:
        return True
    with_dot = _LETTER_WITH_DOT.search(final_turn)
    return (with_dot.group(1) if with_dot else whole).lower() == truth


def multiple_choice_letter(final_turn: str, ground_truth: str) -> float:
    """1.0 when the letter of :func:`predicted_letter` equals the ground-truth letter (case-insensitive),
    else 0 (SPEC §3, v7w/gqa/openimages multiple choice, ``letter_rule: spec``). Takes the whole final turn."""
    letter = predicted_letter(final_turn)
    return 1.0 if letter is not None and letter == ground_truth.strip().upper() else 0.0


def multiple_choice_letter_release(final_turn: str, ground_truth: str) -> float:
    """1.0 when :func:`release_letter_credit` credits the turn, else 0 (``letter_rule: release``)."""
    return 1.0 if release_letter_credit(final_turn, ground_truth) else 0.0


def letter_or_wer(final_turn: str, ground_truth: str) -> float:
    """v7w/gqa/openimages (SPEC §3): the letter rule when the ground truth is an option letter, else WER
    on the extracted answer (the VisCoT benchmark's v7w is free-form: "On the pizza.")."""
    if is_option_letter(ground_truth):
        return multiple_choice_letter(final_turn, ground_truth)
    return wer_score(extract_answer(final_turn), ground_truth)


def letter_or_wer_release(final_turn: str, ground_truth: str) -> float:
    """:func:`letter_or_wer` with the release's letter rule (``letter_rule: release``)."""
    if is_option_letter(ground_truth):
        return multiple_choice_letter_release(final_turn, ground_truth)
    return wer_score(extract_answer(final_turn), ground_truth)


def check_letter_rule(letter_rule: str) -> str:
    """``letter_rule`` if it is one of :data:`LETTER_RULES`.

    Raises:
        ValueError: naming the valid rules.
    """
    if letter_rule not in LETTER_RULES:
        raise ValueError(
            f"unknown letter_rule {letter_rule!r}; valid: {', '.join(LETTER_RULES)} (spec: SPEC §3 plus a "
            "bare-letter fallback, the default; release: the release's full rule)"
        )
    return letter_rule


def no_rule(final_turn: str, ground_truth: str) -> None:
    """No rule-based score (SPEC §3: emotic): "n/a" in evaluation tables; training rejects it at data
    validation unless a default handler is configured."""
    return None


@dataclass(frozen=True)
class OnAnswer:
    """A handler that extracts the answer of the final turn (SPEC §3 extraction) and applies ``scorer``."""

    scorer: Scorer

    def __call__(self, final_turn: str, ground_truth: str) -> float:
        return self.scorer(extract_answer(final_turn), ground_truth)

    def __repr__(self) -> str:
        return f"OnAnswer({getattr(self.scorer, '__name__', self.scorer)!r})"


# ----------------------------------------------------------------------------------------- entry point


def accuracy_score(
    final_turn: str,
    solution: str,
    dataset: str,
    registry: AccuracyRegistry | None = None,
) -> float | None:
    """The accuracy of one trajectory: the handler registered for ``dataset`` applied to the final turn
    and the tag-stripped ``solution`` (SPEC §3). ``None`` means no rule applies (n/a).

    Raises:
        UnknownDatasetError: ``dataset`` is not registered and the registry has no default handler.
        ValueError: a handler returned something that is not a finite number (or None).
    """
    if registry is None:
        from ground_r1.rewards.registry import DEFAULT_REGISTRY  # registry imports this module

        registry = DEFAULT_REGISTRY
    handler = registry.get(dataset)
    score = handler(final_turn, strip_answer_tags(solution))
    if score is None:
        return None
    try:
        value = float(score)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(
            f"accuracy handler {handler!r} for dataset {dataset!r} returned {score!r}; a handler must return "
            "a finite number in [0, 1] or None (no rule). Fix the handler."
        )
    return _clip01(value)


def _clip01(value: float) -> float:
    return min(1.0, max(0.0, float(value)))
