"""Prefix KV reuse across rounds: a round prefills only what the previous round's call has not already seen.

Round k's generate call ends with a KV cache that holds every row's context and its sampled turn. Round k+1's
request for the same trajectory is that context + the turn (+ an injected eos) + the injected crop turn, and
without reuse `generate` runs the whole context through the model again: in the profile of
benchmarks/perf/README.md, re-prefilling contexts was ~19 % of the tiny rollout (round 2: 8 rows x 611 tokens,
of which ~340 per row were in round 1's cache, shared by the G2 trajectories of a branch). With reuse:

1. each request takes, among the previous round's cached rows of its question, the one with the longest common
   prefix with its ids (the G2 forks of a round-1 row all take that row);
2. the chosen rows' keys/values of that prefix are gathered into a new cache, compacted (the left padding and
   the pad tokens generate appended after a row stopped are dropped) and left-padded to the longest prefix;
3. `generate` continues from it: the model runs only on each row's remaining suffix (right-aligned; the gap
   between a short suffix and the cache is masked). transformers 5.23 supports this ("continuing generation
   from past kv"): the attention mask covers the whole sequence, and Qwen2.5-VL recomputes the 3D positions
   over it when the suffix holds new image tokens (`_prepare_position_ids_for_generation`). The suffix's new
   images are fed as precomputed features (`vision_cache`); the cached ones are not fed again.

Exactness: a token's key/value depends only on the tokens before it and their positions, and the positions are
computed from the same real tokens (masked gaps do not count), so the logits equal a fresh prefill's up to
float rounding (greedy turns equal and log-probs to 1e-5: tests/rollout/test_kv_reuse.py; the loss path agrees
with sampling to 1e-4: tests/trainer/test_logprob_consistency.py).

Scope: inside `HFGenerator.rollout_scope()`, with the vision cache on; only caches made of plain dynamic layers
(full attention). Entries live one round (`start_round`): the previous round's cache is what the next round
continues from, then it is released.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class CachedRow:
    """A row of a cache: the tokens whose keys/values it holds, and where they sit."""

    key: tuple[int, int] | None  # the request key (question index, slot) of the row
    tokens: np.ndarray  # [n] real tokens with a cached key/value, in order
    cache: int  # index of the cache in the store
    row: int  # row in that cache
    columns: torch.Tensor  # [n] their columns in the cache


@dataclass
class ContinuedBatch:
    """What `generate` is given to continue from the store: full inputs and the cache of their prefix."""

    input_ids: torch.Tensor  # [B, P + S]
    attention_mask: torch.Tensor  # [B, P + S]
    cache: object  # DynamicCache of the first P columns
    prefix_lengths: list[int]  # m_b: tokens of row b taken from the cache
    new_image_counts: list[int]  # images of row b that are in its suffix (its last ones)


class PrefixKVStore:
    """The previous round's caches and what each of their rows holds (see the module docstring)."""

    def __init__(self) -> None:
        self._previous: tuple[list, list[CachedRow]] = ([], [])
        self._current: tuple[list, list[CachedRow]] = ([], [])
        self.reused_tokens = 0  # context tokens served from a cache instead of prefilled (summed)
        self.prefilled_tokens = 0  # tokens the continued calls still ran through the model

    def start_round(self) -> None:
        self._previous, self._current = self._current, ([], [])

    def clear(self) -> None:
        self._previous = ([], [])
        self._current = ([], [])

    # -- recording ---------------------------------------------------------------------------------------------------
    def record(
        self,
        cache,
        sequences: torch.Tensor,
        attention_mask: torch.Tensor,
        kept: list[int],
        keys: list[tuple[int, int] | None],
    ) -> None:
        """After a call: `sequences` [B, W + T] (inputs and new tokens), the input mask [B, W], and how many
        new tokens each row kept (up to its stop token). The last sampled token has no key/value yet."""
        if not _plain_dynamic(cache):
            return
        caches, rows = self._current
        index = len(caches)
        caches.append(cache)
        cached_len = cache.get_seq_length()
        width = attention_mask.shape[1]
        for b, n_new in enumerate(kept):
            input_cols = attention_mask[b].nonzero().squeeze(1).cpu()
            new_cols = torch.arange(width, width + n_new)
            cols = torch.cat([input_cols, new_cols])
            cols = cols[cols < cached_len]
            tokens = sequences[b].cpu()[cols].numpy()
            rows.append(CachedRow(keys[b], tokens, index, b, cols))

    # -- continuing --------------------------------------------------------------------------------------------------
    def continue_batch(self, requests, pad_token_id: int, image_token_id: int, device) -> ContinuedBatch | None:
        """The continued inputs of a call, or None when no request has a cached prefix (fresh prefill)."""
        caches, rows = self._previous
        if not rows:
            return None
        chosen, lengths = [], []
        for r in requests:
            best, best_len = None, 0
            ids = np.asarray(r.ids)
            for row in rows:
                if r.key is not None and row.key is not None and row.key[0] != r.key[0]:
                    continue  # another question's row cannot share a prefix worth having
                n = _common_prefix(ids, row.tokens)
                if n > best_len:
                    best, best_len = row, n
            best_len = min(best_len, len(r.ids) - 1)  # at least one token must be run to get the next logits
            chosen.append(best if best_len > 0 else None)
            lengths.append(max(best_len, 0))
        if not any(lengths):
            return None
        suffixes = [r.ids[m:] for r, m in zip(requests, lengths)]
        if not any(image_token_id in s for s in suffixes):
            return None  # Qwen2.5-VL would reuse stale rope deltas without new image tokens: prefill afresh
        prefix_width, suffix_width = max(lengths), max(len(s) for s in suffixes)
        cache = _gather(caches, chosen, lengths, prefix_width, device)
        b = len(requests)
        input_ids = torch.full((b, prefix_width + suffix_width), pad_token_id, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        for i, (r, m, s) in enumerate(zip(requests, lengths, suffixes)):
            if m:
                input_ids[i, prefix_width - m : prefix_width] = torch.as_tensor(r.ids[:m])
                attention[i, prefix_width - m : prefix_width] = 1
            input_ids[i, input_ids.shape[1] - len(s) :] = torch.as_tensor(s)
            attention[i, input_ids.shape[1] - len(s) :] = 1
        self.reused_tokens += sum(lengths)
        self.prefilled_tokens += sum(len(s) for s in suffixes)
        new_images = [_images_in(s, image_token_id) for s in suffixes]
        return ContinuedBatch(input_ids.to(device), attention.to(device), cache, lengths, new_images)


def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


def _images_in(ids: list[int], image_token_id: int) -> int:
    """Images whose tokens are in `ids` (runs of image tokens); a suffix starts after a turn, never inside an
    image's run."""
    runs, inside = 0, False
    for t in ids:
        if t == image_token_id and not inside:
            runs += 1
        inside = t == image_token_id
    return runs


def _plain_dynamic(cache) -> bool:
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    return isinstance(cache, DynamicCache) and all(type(layer) is DynamicLayer for layer in cache.layers)


def _gather(caches: list, chosen: list[CachedRow | None], lengths: list[int], width: int, device):
    """A DynamicCache [B, heads, width, dim] per layer: row b's first m_b cached tokens, left-padded (the pad
    columns repeat a real column; the attention mask hides them)."""
    from transformers import DynamicCache

    layers = len(caches[0].layers)
    index_rows, index_cols, sources = [], [], []
    for row, m in zip(chosen, lengths):
        cols = torch.zeros(width, dtype=torch.long)
        if m:
            cols[width - m :] = row.columns[:m]
            cols[: width - m] = row.columns[0]
        sources.append(row.cache if row is not None else None)
        index_rows.append(row.row if row is not None else 0)
        index_cols.append(cols)
    fallback = next(s for s in sources if s is not None)
    sources = [fallback if s is None else s for s in sources]
    cols = torch.stack(index_cols).to(device)  # [B, width]
    data = []
    for layer in range(layers):
        kv = []
        for part in ("keys", "values"):
            per_row = []
            for b, (src, r) in enumerate(zip(sources, index_rows)):
                full = getattr(caches[src].layers[layer], part)[r]  # [heads, L, dim]
                per_row.append(full.index_select(1, cols[b]))
            kv.append(torch.stack(per_row))
        data.append(tuple(kv))
    return DynamicCache(ddp_cache_data=data)
