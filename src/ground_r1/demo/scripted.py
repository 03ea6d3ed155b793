"""A scripted `GenerateFn`: turns come from a policy function instead of a model.

Used by tests (token ids known in advance), by the distributed checks (one rank finishes in round 1, another
in round 5; one rank's groups need refills under dynamic sampling, the other's do not), by the collapse-alarm
tests (`collapse_*`: a healthy policy until a training step, then one signal collapses) and by benchmarks. The policy sees, for each row of a round, a `ScriptedCall` and returns the turn
text; the text is tokenized and closed with the eos token, as a model would have sampled it. With `model` set,
every call also runs one forward pass of that model over the batch (so collective operations of ZeRO-3 happen
exactly as often as with real generation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ground_r1.rollout.conversation import ConversationCodec
from ground_r1.rollout.generation import GeneratedTurn, GenerationRequest, collate_requests
from ground_r1.rollout.sampling import SamplingParams


@dataclass
class ScriptedCall:
    call_index: int  # how many generate calls were made before this one
    row: int  # row within the call
    num_images: int  # images in the context (1 = first round)
    context_ids: list[int]
    step: int = 0  # the training step the rollout is for (1-based; 0 outside training)


Policy = Callable[[ScriptedCall], str]


class ScriptedGenerator:
    def __init__(
        self, codec: ConversationCodec, policy: Policy, model=None, close_with_eos: bool = True, step: int = 0
    ):
        self.codec = codec
        self.policy = policy
        self.model = model
        self.close_with_eos = close_with_eos
        self.step = step
        self.calls = 0
        self.rows_per_call: list[int] = []

    def __call__(
        self, requests: list[GenerationRequest], sampling: SamplingParams, max_new_tokens: int
    ) -> list[GeneratedTurn]:
        if self.model is not None:
            with torch.no_grad():
                batch = collate_requests(
                    requests, self.codec.pad_token_id, self.codec.image_token_id, next(self.model.parameters()).device
                )
                if "pixel_values" in batch:
                    batch["pixel_values"] = batch["pixel_values"].to(self.model.dtype)
                self.model(**batch)
        out = []
        for row, r in enumerate(requests):
            text = self.policy(ScriptedCall(self.calls, row, len(r.images), list(r.ids), self.step))
            # A policy writes a whole turn as the rewards read it. Where the template's generation prompt already
            # opened it ("<think>\n", Qwen3.5), a model samples only what follows: so does this generator.
            opening = self.codec.turn_opening.strip()
            if opening and text.lstrip().startswith(opening):
                text = text.lstrip()[len(opening) :]
            ids = self.codec.tokenizer(text, add_special_tokens=False)["input_ids"]
            hit = len(ids) >= max_new_tokens
            ids = ids[:max_new_tokens]
            if not hit and self.close_with_eos:
                ids = ids + [self.codec.eos_token_id]
            out.append(GeneratedTurn(ids=ids, logps=[], hit_token_limit=hit or not self.close_with_eos))
        self.calls += 1
        self.rows_per_call.append(len(requests))
        return out


# -- named policies (config key `scripted_policy`: tests and benchmarks) ----------------------------------------------


def _rank() -> int:
    import os

    return int(os.environ.get("RANK", "0"))


def answer_at_once(call: ScriptedCall) -> str:
    """Every trajectory answers in round 1."""
    return "<think> it is clear </think> <answer> red </answer>"


def ground_until_limit(call: ScriptedCall) -> str:
    """Every trajectory grounds every round (ends at max_turns)."""
    x = 4 * (call.row % 8)
    return f"<think> look closer </think> <box>[{x},4,{x + 40},44]</box>"


def uneven_by_rank(call: ScriptedCall) -> str:
    """Rank 0 answers in round 1; every other rank grounds until max_turns (the ZeRO-3 round-agreement check)."""
    return answer_at_once(call) if _rank() == 0 else ground_until_limit(call)


def mixed_rounds(call: ScriptedCall) -> str:
    """Row r of round 1 finishes in round (r % 3) + 1: trajectories end in different rounds (benchmarks)."""
    if call.num_images - 1 >= call.row % 3:
        return answer_at_once(call)
    return ground_until_limit(call)


_LOOK = "the question names one card and its dot is too small to read at this view, so I look at that card first"
_READ = "the crop of the card shows the dot clearly enough to name its colour"


def varied_by_branch(call: ScriptedCall) -> str:
    """A healthy policy: round 1 boxes; round 2 answers, well formed on even rows and malformed on odd ones.
    In round 1 row q * G1 + b is question q's branch b, so with G1 = 2 each group mixes both (reward spread)."""
    if call.num_images == 1:
        x = 8 + 4 * (call.row % 4)
        return f"<think> {_LOOK} </think> <box>[{x},8,{x + 48},56]</box>"
    if call.row % 2 == 0:
        return f"<think> {_READ} </think> <answer> red </answer>"
    return f"<think> {_READ} <answer> red </answer>"


def flat_on_rank_0(call: ScriptedCall) -> str:
    """Rank 0: every trajectory answers alike (groups with all-equal rewards); other ranks: `varied_by_branch`
    (dynamic sampling's 2-process check: rank 0 needs refills, the others do not)."""
    return answer_at_once(call) if _rank() == 0 else varied_by_branch(call)


# Collapses for the alarm tests (trainer/alarms.py): `varied_by_branch` up to step COLLAPSE_STEP - 1, then one
# signal goes the way a collapsing run goes.
COLLAPSE_STEP = 5


def _collapsing(collapsed: Policy) -> Policy:
    def policy(call: ScriptedCall) -> str:
        return collapsed(call) if call.step >= COLLAPSE_STEP else varied_by_branch(call)

    return policy


def _short_answers(call: ScriptedCall) -> str:
    if call.num_images == 1:
        return f"<think> a </think> <box>[{8 + 4 * (call.row % 4)},8,56,56]</box>"
    return "<think> a </think> <answer> red </answer>" if call.row % 2 == 0 else "<think> a <answer> red </answer>"


def _no_box(call: ScriptedCall) -> str:
    if call.num_images == 1:
        return f"<think> {_LOOK} </think> somewhere in the middle"
    return varied_by_branch(call)


def _identical(call: ScriptedCall) -> str:
    if call.num_images == 1:
        return varied_by_branch(call)
    return f"<think> {_READ} </think> <answer> red </answer>"


def _malformed(call: ScriptedCall) -> str:
    if call.num_images == 1:
        return f"<think> {_LOOK} <box>[{8 + 4 * (call.row % 4)},8,56,56]</box>"
    return "<answer> red </answer>" if call.row % 2 == 0 else "<answer> blue </answer>"


POLICIES: dict[str, Policy] = {
    "answer_at_once": answer_at_once,
    "ground_until_limit": ground_until_limit,
    "uneven_by_rank": uneven_by_rank,
    "mixed_rounds": mixed_rounds,
    "varied_by_branch": varied_by_branch,
    "flat_on_rank_0": flat_on_rank_0,
    "collapse_one_round": _collapsing(answer_at_once),
    "collapse_length": _collapsing(_short_answers),
    "collapse_no_signal": _collapsing(_identical),
    "collapse_format": _collapsing(_malformed),
    "collapse_no_box": _collapsing(_no_box),
}


def resolve_policy(spec: str) -> Policy:
    """A named policy of POLICIES, or a dotted path `pkg.mod:func`."""
    if spec in POLICIES:
        return POLICIES[spec]
    from ground_r1.rewards.registry import import_object

    if ":" not in spec and "." not in spec:
        raise ValueError(f"unknown scripted policy {spec!r}; known: {sorted(POLICIES)} or a dotted path pkg.mod:func")
    return import_object(spec)  # type: ignore[return-value]
