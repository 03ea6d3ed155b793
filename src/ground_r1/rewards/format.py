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

Which turn is final (SPEC §3): **the last turn of a trajectory, always**, also when the trajectory ended
without answering (turn cap, token budget). Such a trajectory's last turn is a box turn judged as an answer
turn, so it is malformed and the trajectory scores at most 2 x (T-1)/T: 1.6 for five well-formed box turns,
as in the release. This is the penalty for never answering; judging that last box turn as a grounding turn
would pay 2.0 for a trajectory that never answers (and the accuracy reward gives it 0 either way, see
:mod:`ground_r1.rewards.trl_functions`).
"""

from __future__ import annotations

import re
from typing import Sequence

from ground_r1.boxes import SAFE_RELEASE_BOX_PATTERN

GROUNDING_TURN_PATTERN = re.compile(r"^<think>(.+?)</think>\s*<box>" + SAFE_RELEASE_BOX_PATTERN + r"</box>$", re.DOTALL)
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
    """Which turns are judged as the final (answer) turn: the last one, whether or not it holds ``<answer>``
    (SPEC §3: a trajectory cut by the turn cap or the token budget has its last turn judged as the final
    turn, the penalty for never answering). Every earlier turn is judged as a grounding turn, so an
    ``<answer>`` before the last turn (impossible in a rollout: it ends the episode) is malformed."""
    flags = [False] * len(turns)
    if turns:
        flags[-1] = True
    return flags


def format_score(turns: Sequence[str]) -> float:
    """2 x the fraction of well-formed assistant turns of one trajectory (SPEC §3); 0.0 for no turns.

    Examples: a grounding turn, a malformed grounding turn and a well-formed answer turn -> 2 x 2/3 = 4/3;
    five well-formed grounding turns and no answer (turn cap) -> 2 x 4/5 = 1.6.
    """
    if not turns:
        return 0.0
    flags = final_turn_flags(turns)
    good = sum(turn_is_well_formed(text, is_final) for text, is_final in zip(turns, flags))
    return MAX_FORMAT_REWARD * good / len(turns)
