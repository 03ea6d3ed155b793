"""Rewards (SPEC §3): format and accuracy (training rewards), GIoU (a logged metric, never a reward).

``format`` judges every assistant turn; ``accuracy`` scores the final turn with the handler registered for
the record's ``dataset`` (``registry``); ``trl_functions`` wraps both with TRL's reward-function signature;
``giou`` measures the self-chosen boxes against the evidence boxes.
"""

from __future__ import annotations

from ground_r1.rewards.accuracy import (
    OnAnswer,
    accuracy_score,
    exact_match,
    exact_or_substring,
    exact_or_substring_strict,
    multiple_choice_letter,
    rouge_score,
    wer_score,
)
from ground_r1.rewards.format import format_score, turn_is_well_formed
from ground_r1.rewards.giou import giou_metrics
from ground_r1.rewards.registry import (
    DEFAULT_REGISTRY,
    AccuracyRegistry,
    UnknownDatasetError,
    UnknownHandlerError,
    build_registry,
    resolve_handler,
)
from ground_r1.rewards.trl_functions import (
    REWARD_FUNCTIONS,
    accuracy_reward,
    format_reward,
    load_reward_function,
)

__all__ = [
    "DEFAULT_REGISTRY",
    "REWARD_FUNCTIONS",
    "AccuracyRegistry",
    "OnAnswer",
    "UnknownDatasetError",
    "UnknownHandlerError",
    "accuracy_reward",
    "accuracy_score",
    "build_registry",
    "exact_match",
    "exact_or_substring",
    "exact_or_substring_strict",
    "format_reward",
    "format_score",
    "giou_metrics",
    "load_reward_function",
    "multiple_choice_letter",
    "resolve_handler",
    "rouge_score",
    "turn_is_well_formed",
    "wer_score",
]
