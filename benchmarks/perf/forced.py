"""Forced decoding for the benchmark: the real model runs every step of `generate`, a logits processor picks
the token.

Why: a random-initialised model writes noise, so whether and when a trajectory answers would be luck, and the
three loops (a), (b), (c) would not do the same work. `ground_r1.demo.scripted.ScriptedGenerator` controls
the text but replaces generation by one forward pass, so it measures none of the decoding cost. Here every
decode step runs on the real model (prefill, KV cache or not, vision tower, LM head, sampling processors);
only the final choice of token is overridden: all logits but the scripted token's become -inf.

The text comes from the named scripted policies (`ground_r1.demo.scripted.POLICIES`, default
``mixed_rounds``), called with ``row`` = the trajectory's index within its question's group (the request
`key`), so a trajectory follows the same script in (a) and in (c) whatever its row in a batch. Each turn is
padded inside ``<think>`` with filler tokens to exactly the per-turn budget (closing eos included), so every
turn costs the full budget, as long turns do in real training.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from ground_r1.rollout.conversation import ConversationCodec
from ground_r1.rollout.generation import GenerationRequest
from ground_r1.demo.scripted import Policy, ScriptedCall, resolve_policy

FILLER = " look"
THINK_OPEN = "<think>"


class ForcedTokens(LogitsProcessor):
    """Row r emits ``targets[r][step]`` at decode step ``step`` (then `fill_id` once its target is spent)."""

    def __init__(self, targets: Sequence[Sequence[int]], prompt_width: int, fill_id: int):
        longest = max((len(t) for t in targets), default=0)
        table = torch.full((len(targets), longest + 1), fill_id, dtype=torch.long)
        for r, t in enumerate(targets):
            table[r, : len(t)] = torch.tensor(list(t), dtype=torch.long)
        self.table = table  # [B, longest + 1]
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = min(input_ids.shape[1] - self.prompt_width, self.table.shape[1] - 1)
        chosen = self.table[:, step].to(scores.device).unsqueeze(1)  # [B, 1]
        forced = torch.full_like(scores, float("-inf"))
        return forced.scatter_(1, chosen, 0.0)


class ForcedScript:
    """Token ids of each scripted turn, padded to the per-turn budget, cached per (text, budget)."""

    def __init__(self, codec: ConversationCodec, policy: str | Policy = "mixed_rounds"):
        self.codec = codec
        self.policy = resolve_policy(policy) if isinstance(policy, str) else policy
        self._ids: dict[tuple[str, int], list[int]] = {}
        self.fill_id = codec.eos_token_id

    def _tokens(self, text: str) -> list[int]:
        return self.codec.tokenizer(text, add_special_tokens=False)["input_ids"]

    def text(self, slot: int, round_index: int) -> str:
        """The policy's turn for the trajectory at `slot` of its group in round `round_index` (1-based)."""
        return self.policy(ScriptedCall(call_index=0, row=slot, num_images=round_index, context_ids=[]))

    def turn_ids(self, slot: int, round_index: int, budget: int) -> list[int]:
        text = self.text(slot, round_index)
        key = (text, budget)
        if key not in self._ids:
            self._ids[key] = self._pad(text, budget)
        return self._ids[key]

    def min_budget(self, slots: int, rounds: int) -> int:
        """The smallest per-turn budget that fits every scripted turn with its eos (no filler)."""
        return max(len(self._tokens(self.text(s, r))) + 1 for s in range(slots) for r in range(1, rounds + 1))

    def _pad(self, text: str, budget: int) -> list[int]:
        eos = self.codec.eos_token_id
        base = self._tokens(text)
        if len(base) + 1 > budget or not text.startswith(THINK_OPEN):
            return (base + [eos])[:budget]
        head, tail, filler = self._tokens(THINK_OPEN), self._tokens(text[len(THINK_OPEN) :]), self._tokens(FILLER)
        room = budget - 1 - len(head) - len(tail)
        if room < 0:
            return (base + [eos])[:budget]
        body = (filler * (room // len(filler) + 1))[:room]
        return head + body + tail + [eos]

    # -- the hooks the three loops use ---------------------------------------------------------------------------
    def for_requests(self, budget: int) -> Callable[[list[GenerationRequest], int], dict]:
        """`HFGenerator.extra_generate_kwargs` for (a) and (c): the round is the number of images in the context
        (the original, then one crop per earlier turn); a dummy call (key None) emits eos."""

        def make(requests: list[GenerationRequest], width: int) -> dict:
            targets = [
                self.turn_ids(r.key[1], len(r.images), budget) if r.key is not None else [self.fill_id]
                for r in requests
            ]
            return {"logits_processor": LogitsProcessorList([ForcedTokens(targets, width, self.fill_id)])}

        return make

    def for_single_turn(self, num_generations: int, budget: int) -> Callable[[torch.Tensor], LogitsProcessorList]:
        """For (b), TRL's single-turn generate: row i is sample i % N of its question, in round 1."""

        def make(input_ids: torch.Tensor) -> LogitsProcessorList:
            targets = [self.turn_ids(i % num_generations, 1, budget) for i in range(input_ids.shape[0])]
            return LogitsProcessorList([ForcedTokens(targets, input_ids.shape[1], self.fill_id)])

        return make
