"""Format reward, range [0, 2]: 2 x the fraction of well-formed assistant turns (SPEC §3).

Each turn is judged on its text without special tokens, with ``re.fullmatch(..., re.DOTALL)`` and nothing
stripped first (a trailing newline after ``</box>`` is malformed, as in the release's fullmatch):

* a **grounding** (non-final) turn: each of ``<think>``, ``</think>``, ``<box>``, ``</box>`` exactly once and
  ``<think>(.+?)</think>\\s*<box>BOX</box>``, BOX being the release's box regex (SPEC §2; matched through
  ``boxes.SAFE_RELEASE_BOX_PATTERN``, the same language without catastrophic backtracking), so no space
  between the tags and the list (``<box> [1,2,3,4]</box>`` fails) while spaces inside the list are allowed
  (``<box>[ 1, 2,3 ,4 ]</box>`` passes); no ``<answer>``/``</answer>``;
* the **final** (answer) turn: each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` exactly once and
  ``<think>(.+?)</think>\\s*<answer>.+?</answer>``; no ``<box>``/``</box>``.

A turn holding both a box and an answer ends the episode (it contains ``<answer>``) but is well formed as
neither kind (SPEC §3).

Which turn is final (decision, documented in :func:`format_score`): the last turn when it contains
``<answer>``. A trajectory cut at the turn limit without an answer has no final turn: all its turns are judged
as grounding turns, so a well-formed last box still counts (the accuracy reward gives such a trajectory 0:
it has no final turn, see :mod:`ground_r1.rewards.trl_functions`).
"""

from __future__ import annotations

import re
from typing import Sequence

from ground_r1.boxes import SAFE_RELEASE_BOX_PATTERN
from ground_r1.rollout.answer import has_answer

GROUNDING_TURN_PATTERN = re.compile(
    r"^<think>(.+?)</think>\s*<box>" + SAFE_RELEASE_BOX_PATTERN + r"</box>$", re.DOTALL
)
ANSWER_TURN_PATTERN = re.compile(r"^<think>(.+?)</think>\s*<answer>.+?</answer>$", re.DOTALL)

_GROUNDING_TAGS = ("<think>", "</think>", "<box>", "</box>")
_ANSWER_TAGS = ("<think>", "</think>", "<answer>", "</answer>")

MAX_FORMAT_REWARD = 2.0


def turn_is_well_formed(text: str, is_final: bool) -> bool:
    """Whether one assistant turn is well formed as a final (answer) turn or a grounding turn (SPEC §3)."""
    if is_final:
        required, forbidden, pattern = _ANSWER_TAGS, ("<box>", "</box>"), ANSWER_TURN_PATTERN
    else:
        required, forbidden, pattern = _GROUNDING_TAGS, ("<answer>", "</answer>"), GROUNDING_TURN_PATTERN
    if any(text.count(tag) != 1 for tag in required):
        return False
    if any(tag in text for tag in forbidden):  # a box and an answer in one turn: never well formed
        return False
    return pattern.fullmatch(text) is not None


def final_turn_flags(turns: Sequence[str]) -> list[bool]:
    """Which turns are judged as the final (answer) turn: only the last one, and only if it contains
    ``<answer>`` (which ends the episode, SPEC §2). An earlier turn with ``<answer>`` cannot occur in a
    rollout; if given one, it is judged as a grounding turn and so is malformed."""
    flags = [False] * len(turns)
    if turns and has_answer(turns[-1]):
        flags[-1] = True
    return flags


def format_score(turns: Sequence[str]) -> float:
    """2 x the fraction of well-formed assistant turns of one trajectory (SPEC §3); 0.0 for no turns.

    Example: a grounding turn, a malformed grounding turn and a well-formed answer turn -> 2 x 2/3 = 4/3.
    """
    if not turns:
        return 0.0
    flags = final_turn_flags(turns)
    good = sum(turn_is_well_formed(text, is_final) for text, is_final in zip(turns, flags))
    return MAX_FORMAT_REWARD * good / len(turns)
