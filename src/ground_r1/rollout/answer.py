"""Answer extraction from an assistant turn, shared by rollout, rewards and evaluation (SPEC §2, §3, §7).

One rule everywhere (SPEC §3 "Answer extraction"): the content of the first ``<answer>…</answer>``; else,
when the closing tag is missing (a turn cut by the per-turn token limit), everything after ``<answer>``;
else the whole turn. The result is stripped of surrounding whitespace. A turn that contains ``<answer>`` ends
the episode (SPEC §2 "Rounds"), whether or not it is well formed.
"""

from __future__ import annotations

import re

ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"

# Non-greedy and DOTALL: the first complete answer block, spanning newlines.
_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def has_answer(turn_text: str) -> bool:
    """True when the turn contains ``<answer>``: the trajectory ends after this turn (SPEC §2 "Rounds")."""
    return ANSWER_OPEN in turn_text


def extract_answer(turn_text: str) -> str:
    """The answer of a turn (SPEC §3): first ``<answer>…</answer>`` content, else text after ``<answer>``,
    else the whole turn; always stripped.

    >>> extract_answer("<think>t</think><answer> C </answer>")
    'C'
    >>> extract_answer("<think>t</think><answer>cut by the token lim")
    'cut by the token lim'
    >>> extract_answer("just text")
    'just text'
    """
    block = _ANSWER_BLOCK.search(turn_text)
    if block is not None:
        return block.group(1).strip()
    start = turn_text.find(ANSWER_OPEN)
    if start >= 0:
        return turn_text[start + len(ANSWER_OPEN) :].strip()
    return turn_text.strip()


def strip_answer_tags(solution: str) -> str:
    """A record's ground truth without its ``<answer>`` tags (SPEC §6: multiple choice is stored as
    ``<answer>C</answer>``; SPEC §7: the judge sees the stripped ground truth). Free-form solutions come
    back stripped of surrounding whitespace only. Same rule as :func:`extract_answer`, so a prediction and a
    ground truth are always compared after identical treatment.

    >>> strip_answer_tags("<answer>C</answer>")
    'C'
    >>> strip_answer_tags(" On the pizza. ")
    'On the pizza.'
    """
    return extract_answer(solution)
