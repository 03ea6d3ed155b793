"""The two training rewards with TRL's reward-function signature (SPEC §3; open-r1's reward contract).

TRL calls ``reward_func(prompts=..., completions=..., completion_ids=..., **columns)`` where ``columns`` are
the dataset columns, one value per completion (``solution``, ``dataset``, ...), plus ``trainer_state`` and
logging hooks. The Ground-R1 trainer also passes ``turns``: per trajectory, the texts of its assistant turns
with special tokens removed (grounding turns first, the answer turn last). Without ``turns`` (plain TRL, a
one-turn baseline) each completion is split into turns here: a string is one turn; TRL's conversational
form (a list of messages) gives one turn per assistant message.

Both functions are pure and cheap (no model, no judge: SPEC §3 "No GPT judge is used inside training").

A trajectory that never answered (its last turn has no ``<answer>``: cut at the turn limit) has no final
turn, so its accuracy is 0.0 (``require_answer=True``, the default; the format reward judges that last
turn as a malformed final turn, SPEC §3, so such a trajectory scores at most 2 x (T-1)/T). Without this, SPEC §3's whole-turn extraction fallback, meant for untagged one-turn
baselines in evaluation, would score the reasoning text of a grounding turn: on vsr/cub the substring rule
pays 0.6 whenever "no" appears anywhere ("not", "know"). ``make_accuracy_reward(..., require_answer=False)``
scores the last turn as it is, like :func:`~ground_r1.rewards.accuracy.accuracy_score` in evaluation.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ground_r1.rewards.accuracy import accuracy_score
from ground_r1.rewards.format import format_score
from ground_r1.rewards.registry import DEFAULT_REGISTRY, AccuracyRegistry, resolve_named
from ground_r1.rollout.answer import has_answer

RewardFunction = Callable[..., list]


def _message_text(content: Any) -> str:
    """Text of a chat message's content: a string, or a list of parts whose text parts are concatenated."""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        return "".join(
            part.get("text", "") if isinstance(part, dict) else str(part)
            for part in content
            if not isinstance(part, dict) or part.get("type", "text") == "text"
        )
    return "" if content is None else str(content)


def completion_turns(completion: Any) -> list[str]:
    """The assistant turns of one TRL completion: a string is one turn; a list of messages gives the content
    of each ``assistant`` message (tool/user messages injected between them are skipped)."""
    if isinstance(completion, str):
        return [completion]
    if isinstance(completion, (list, tuple)):
        return [
            _message_text(message.get("content"))
            for message in completion
            if isinstance(message, dict) and message.get("role", "assistant") == "assistant"
        ]
    raise TypeError(
        f"a completion must be a string or a list of chat messages, got {type(completion).__name__}; "
        "pass `turns` explicitly for other forms"
    )


def _trajectory_turns(completions: Sequence[Any], turns: Sequence[Sequence[str]] | None) -> list[list[str]]:
    if turns is None:
        return [completion_turns(c) for c in completions]
    if len(turns) != len(completions):
        raise ValueError(f"got {len(turns)} turn lists for {len(completions)} completions; pass one per completion")
    return [list(t) for t in turns]


def format_reward(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    turns: Sequence[Sequence[str]] | None = None,
    **kwargs: Any,
) -> list[float]:
    """Format reward in [0, 2] per completion: 2 x the fraction of well-formed assistant turns (SPEC §3)."""
    return [format_score(t) for t in _trajectory_turns(completions, turns)]


def make_accuracy_reward(registry: AccuracyRegistry, require_answer: bool = True) -> RewardFunction:
    """An ``accuracy_reward`` bound to ``registry`` (e.g. one built with a default handler).

    ``require_answer``: a trajectory whose last turn has no ``<answer>`` scores 0.0 (module docstring);
    ``None`` still comes back for a dataset without a rule, and an unknown dataset still raises.
    """

    def accuracy_reward(
        prompts: Sequence[Any],
        completions: Sequence[Any],
        turns: Sequence[Sequence[str]] | None = None,
        solution: Sequence[str] | None = None,
        dataset: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        """Accuracy reward in [0, 1] per completion, on the final (last) turn (SPEC §3); 0.0 when that turn
        has no ``<answer>`` and ``require_answer`` is set; ``None`` where the dataset has no rule (emotic: TRL
        turns it into NaN). Needs the ``solution`` and ``dataset`` columns.

        Raises:
            ValueError: a column is missing or has the wrong length.
            UnknownDatasetError: a dataset name with no handler (and no default handler).
        """
        trajectories = _trajectory_turns(completions, turns)
        for name, column in (("solution", solution), ("dataset", dataset)):
            if column is None:
                raise ValueError(
                    f"accuracy_reward needs the dataset column {name!r} (one value per completion); the "
                    "records must carry 'solution' and 'dataset' (SPEC §6)"
                )
            if len(column) != len(trajectories):
                raise ValueError(f"column {name!r} has {len(column)} values for {len(trajectories)} completions")
        rewards: list[float | None] = []
        for trajectory, sol, ds in zip(trajectories, solution, dataset):
            final_turn = trajectory[-1] if trajectory else ""
            score = accuracy_score(final_turn, sol, ds, registry=registry)  # validates the dataset name
            if score is not None and require_answer and not has_answer(final_turn):
                score = 0.0
            rewards.append(score)
        return rewards

    return accuracy_reward


accuracy_reward = make_accuracy_reward(DEFAULT_REGISTRY)

# The one table of training rewards: name -> the reward function of a run, built from the run's accuracy registry
# (its letter rule and default handler, ``build_registry``). ``reward_functions`` in a config names these, or gives
# a dotted path to a user function with TRL's signature.
REWARD_FUNCTIONS: dict[str, Callable[[AccuracyRegistry], RewardFunction]] = {
    "format": lambda registry: format_reward,
    "accuracy": make_accuracy_reward,
}


def load_reward_function(spec: str, registry: AccuracyRegistry | None = None) -> RewardFunction:
    """The reward function ``spec`` names (:data:`REWARD_FUNCTIONS`, built with ``registry``, default
    :data:`~ground_r1.rewards.registry.DEFAULT_REGISTRY`), or the function at a dotted path ``package.module:function``
    / ``package.module.function`` (:func:`~ground_r1.rewards.registry.resolve_named`).

    Raises:
        UnknownHandlerError: an unknown name, an unimportable path, or an object that is not callable.
    """
    if spec in REWARD_FUNCTIONS:
        return REWARD_FUNCTIONS[spec](DEFAULT_REGISTRY if registry is None else registry)
    return resolve_named(spec, REWARD_FUNCTIONS, "reward function")  # type: ignore[return-value]
