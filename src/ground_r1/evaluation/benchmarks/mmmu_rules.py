"""MMMU's answer rules (SPEC §7), written from the official MMMU ``eval_utils.py`` as lmms-eval 0.7.3 carries it
(``tasks/mmmu/utils.py``, ``_task_utils/mmmu_mcq_utils.py``); docs/metrics.md names the departures.

- **Multiple choice** (:func:`mmmu_choice`): strip trailing punctuation, pad with spaces; candidates are "(A)"
  letters, else "A " letters, else "A." letters, else (answers of more than five words) option texts found in the
  answer; several candidates: the last one in the answer wins. Where the official parser finds nothing it draws
  a *random* letter; here the answer is unread (``None``, scored wrong, counted): a guess is not the model's
  answer, and a seeded draw would not reproduce lmms-eval's anyway.
- **Open questions** (:func:`mmmu_open_candidates`, :func:`mmmu_open_correct`): the answer's key spans (the text
  after "so", "is", "thus", "therefore", "final", "answer", "result", "could be", or "=" in the last sentence),
  every number in them, each normalised (numbers to floats rounded to 2 decimals, "1,060" -> 1060.0; text lower
  case, a one-character text padded " x"/"x " so that it matches a word only); correct when a candidate number
  equals a normalised ground-truth number, or a normalised ground-truth text is inside a candidate text.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping

__all__ = [
    "mmmu_answer_list",
    "mmmu_choice",
    "mmmu_normalize",
    "mmmu_numbers",
    "mmmu_open_candidates",
    "mmmu_open_correct",
]

Candidate = str | float


def mmmu_choice(answer: str, options: Mapping[str, str], extra_letters: str = "") -> str | None:
    """The option letter the official MMMU parser reads (``parse_multi_choice_response``), ``None`` where it would
    draw a random letter. ``extra_letters``: choices without option text (the answer letter of a release row
    past the options it kept, MMMU's own question having that option): read as letters, never by text."""
    response = answer
    for char in [",", ".", "!", "?", ";", ":", "'"]:
        response = response.strip(char)
    response = " " + response + " "
    letters = list(options) + [ch for ch in extra_letters if ch not in options]
    by_index, bracketed = True, False
    candidates = [ch for ch in letters if f"({ch})" in response]
    if candidates:
        bracketed = True
    if not candidates:
        candidates = [ch for ch in letters if f"{ch} " in response]
    if not candidates:
        candidates = [ch for ch in letters if f"{ch}." in response]
    if not candidates and len(response.split()) > 5:
        candidates = [ch for ch, text in options.items() if text.lower() in response.lower()]
        by_index = False
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    if by_index:
        pattern = "({})" if bracketed else " {} "
        starts = [response.rfind(pattern.format(ch)) for ch in candidates]
    else:
        starts = [response.lower().rfind(options[ch].lower()) for ch in candidates]
    return candidates[starts.index(max(starts))]  # the first maximum, as numpy's argmax


_NUMBER_WITH_COMMAS = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
_NUMBER_SCIENTIFIC = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")
_NUMBER_SIMPLE = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])")


def mmmu_numbers(text: str) -> list[str]:
    """Every number written in ``text`` (``extract_numbers``): with thousands commas, scientific, then simple."""
    return _NUMBER_WITH_COMMAS.findall(text) + _NUMBER_SCIENTIFIC.findall(text) + _NUMBER_SIMPLE.findall(text)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def mmmu_normalize(text: str) -> list[Candidate]:
    """``normalize_str``: a number -> ``[float rounded to 2 decimals]`` (commas dropped); a text -> ``[lower case]``,
    a one-character text -> ``[" x", "x "]`` (it then matches only next to a space)."""
    text = text.strip()
    if _is_number(text):
        return [round(float(text.replace(",", "")), 2)]
    text = text.lower()
    return [" " + text, text + " "] if len(text) == 1 else [text]


_KEY_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
_TRIVIAL = (":", ",", ".", "!", "?", ";", "'")


def _key_spans(answer: str) -> list[str]:
    response = answer.strip().strip(".").lower()
    sentences = re.split(r"\.\s(?=[A-Z])|\n", response)
    spans = []
    for index, sentence in enumerate(sentences):
        indicators = _KEY_INDICATORS + (("=",) if index == len(sentences) - 1 else ())
        shortest = None
        for indicator in indicators:
            if indicator in sentence:
                tail = sentence.split(indicator)[-1].strip()
                if not shortest or len(tail) < len(shortest):  # an empty tail is replaced, as there
                    shortest = tail
        if shortest and shortest.strip() not in _TRIVIAL:
            spans.append(shortest)
    return spans or [response]


def mmmu_open_candidates(answer: str) -> list[Candidate]:
    """``parse_open_response``: the key spans of the answer plus every number in them, each normalised, without
    duplicates (a sorted list here, for a stable record; the reference keeps a set's order)."""
    spans = _key_spans(answer)
    pieces = spans + [number for span in spans for number in mmmu_numbers(span)]
    normalised = {value for piece in pieces for value in mmmu_normalize(piece)}
    return sorted(normalised, key=lambda v: (isinstance(v, str), str(v)))


def mmmu_answer_list(ground_truth: str) -> str | list[str]:
    """The ground truth as MMMU's official answer file holds it: a written list such as ``"['Tampa', 'Florida']"``
    becomes the list (any one element counts); anything else stays the string."""
    text = ground_truth.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return ground_truth
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
    return ground_truth


def mmmu_open_correct(candidates: list[Candidate], ground_truth: str | list[str]) -> bool:
    """``eval_open``: a candidate number equal to a normalised ground-truth number, or a normalised ground-truth
    text inside a candidate text. A list ground truth (the official answer file) counts any of its elements;
    lmms-eval 0.7.3 passes the file's string as it is."""
    answers = ground_truth if isinstance(ground_truth, list) else [ground_truth]
    normalised = [value for answer in answers for value in mmmu_normalize(answer)]
    for candidate in candidates:
        if isinstance(candidate, str):
            if any(isinstance(v, str) and v in candidate for v in normalised):
                return True
        elif candidate in normalised:
            return True
    return False
