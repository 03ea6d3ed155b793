"""Batched generation of one round: token-id requests (with their images) in, sampled turns out.

The rollout calls a `GenerateFn`: ``fn(requests, sampling, max_new_tokens) -> list[GeneratedTurn]``. The real
one (`HFGenerator`) left-pads the batch, marks image tokens for M-RoPE (``mm_token_type_ids``: without them
transformers 5 silently falls back to 1-D positions), and calls ``model.generate`` with every sampling field
explicit on a neutral base config, so a checkpoint's generation_config can never leak in (SPEC §2). Vision
special tokens are suppressed. Tests pass scripted functions with the same signature.

Inside ``HFGenerator.rollout_scope()`` (the rollout opens it around its rounds) an image already encoded in this
rollout is not encoded again: its features are fed to ``generate`` as ``mm_encoder_outputs`` (SPEC §10;
`vision_cache`), and a round continues from the previous round's KV cache, so only the new part of each
context (the turn just sampled and the injected crop turn) is prefilled (`kv_reuse`). The scope ends with the
rollout, and so do both caches.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

import torch

from ground_r1.rollout.conversation import ConversationCodec, EncodedImage
from ground_r1.rollout.kv_reuse import PrefixKVStore
from ground_r1.rollout.sampling import SamplingParams
from ground_r1.rollout.vision_cache import VisionFeatureCache, VisionReuseStats


@dataclass
class GenerationRequest:
    ids: list[int]  # the whole context: prompt + completion so far (image pads expanded)
    images: list[EncodedImage]  # every image of the context, in order
    # Which trajectory the turn is for: (question index, index within the question's group of the first
    # trajectory the turn goes to; a round-1 turn goes to the g2 trajectories of its branch). None for a dummy
    # call. Lets a scripted or forced policy follow a trajectory across rounds (tests, benchmarks).
    key: tuple[int, int] | None = None


@dataclass
class GeneratedTurn:
    ids: list[int]  # sampled ids, up to and including the first stop token (if one was sampled)
    logps: list[float] = field(default_factory=list)  # log-prob of each sampled id (empty when not recorded)
    hit_token_limit: bool = False  # no stop token within max_new_tokens


class GenerateFn(Protocol):
    def __call__(
        self, requests: list[GenerationRequest], sampling: SamplingParams, max_new_tokens: int
    ) -> list[GeneratedTurn]: ...


def collate_requests(
    requests: list[GenerationRequest], pad_token_id: int, image_token_id: int, device=None, with_pixels: bool = True
) -> dict:
    """Left-padded model inputs of a round (the layout `generate` extends on the right). `with_pixels=False`
    leaves out `pixel_values` (their features come precomputed) but keeps `image_grid_thw` (M-RoPE needs it)."""
    width = max(len(r.ids) for r in requests)
    input_ids = torch.full((len(requests), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(requests), width), dtype=torch.long)
    for i, r in enumerate(requests):
        input_ids[i, width - len(r.ids) :] = torch.tensor(r.ids, dtype=torch.long)
        attention_mask[i, width - len(r.ids) :] = 1
    mm_token_type_ids = (input_ids == image_token_id).long() * attention_mask
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "mm_token_type_ids": mm_token_type_ids}
    images = [img for r in requests for img in r.images]
    if images:
        if with_pixels:
            batch["pixel_values"] = torch.cat([img.pixel_values for img in images], dim=0)
        batch["image_grid_thw"] = torch.stack([img.grid_thw for img in images], dim=0)
    if device is not None:
        batch = {k: v.to(device) for k, v in batch.items()}
    return batch


ExtraGenerateKwargs = Callable[[list[GenerationRequest], int], dict[str, Any]]


class HFGenerator:
    """`GenerateFn` over a transformers model (`model.generate`).

    Args:
        reuse_vision_features: inside `rollout_scope()`, encode each image once per rollout (`vision_cache`).
            Off by itself under ZeRO-3 without gathered parameters (`synced_gpus`).
        reuse_kv_cache: inside `rollout_scope()` and with the vision features reused, continue each round from
            the previous round's KV cache (`kv_reuse`): only the new tokens of a context are prefilled.
        use_cache: the KV cache of `generate`. Benchmark only: False reproduces the release, whose train-mode
            generate decoded without one (every step re-runs the whole context and re-encodes every image).
        extra_generate_kwargs: ``fn(requests, width) -> kwargs`` merged into each `generate` call (e.g. a
            `logits_processor`); `width` is the left-padded context width. Tests and benchmarks force text with it.
    """

    def __init__(
        self,
        model,
        codec: ConversationCodec,
        *,
        record_logprobs: bool = True,
        synced_gpus: bool = False,
        stop_token_ids: list[int] | None = None,
        model_for_generate: Callable[[], contextlib.AbstractContextManager] | None = None,
        reuse_vision_features: bool = True,
        reuse_kv_cache: bool = True,
        use_cache: bool = True,
        extra_generate_kwargs: ExtraGenerateKwargs | None = None,
    ):
        self.model = model
        self.codec = codec
        self.record_logprobs = record_logprobs
        self.synced_gpus = synced_gpus
        # Stop on the template's eos (<|im_end|>) and on the pad/end-of-text token, as the real checkpoint does.
        stops = stop_token_ids or [codec.eos_token_id, codec.pad_token_id]
        self.stop_token_ids = list(dict.fromkeys(stops))
        self.model_for_generate = model_for_generate
        self.reuse_vision_features = reuse_vision_features
        self.reuse_kv_cache = reuse_kv_cache and use_cache
        self.use_cache = use_cache
        self.extra_generate_kwargs = extra_generate_kwargs
        self.calls = 0
        self.generated_tokens = 0
        self.vision_stats = VisionReuseStats()  # summed over the rollouts run with this generator
        self._vision_cache: VisionFeatureCache | None = None
        self._kv_store: PrefixKVStore | None = None
        self.kv_reused_tokens = 0  # context tokens served from the previous round's cache (summed over rollouts)
        self.kv_prefilled_tokens = 0  # tokens the continued calls still prefilled

    @property
    def vision_cache(self) -> VisionFeatureCache | None:
        """The cache of the rollout in progress (None outside `rollout_scope()` or when reuse is off)."""
        return self._vision_cache

    @contextlib.contextmanager
    def rollout_scope(self) -> Iterator[None]:
        """One rollout: an image encoded by one of its generate calls is not encoded again by a later one; the
        features are dropped when the scope ends (no growth across steps). ZeRO-3 with `synced_gpus`: no reuse
        (every rank must run the vision tower in every call, see `vision_cache`)."""
        if not self.reuse_vision_features or self.synced_gpus:
            yield
            return
        outer, cache = self._vision_cache, VisionFeatureCache()
        outer_kv, store = self._kv_store, (PrefixKVStore() if self.reuse_kv_cache else None)
        self._vision_cache, self._kv_store = cache, store
        try:
            yield
        finally:
            self._vision_cache, self._kv_store = outer, outer_kv
            self.vision_stats.add(cache.stats)
            cache.clear()
            if store is not None:
                self.kv_reused_tokens += store.reused_tokens
                self.kv_prefilled_tokens += store.prefilled_tokens
                store.clear()

    def start_round(self) -> None:
        """The rollout starts a round: the previous round's KV cache is what this round continues from."""
        if self._kv_store is not None:
            self._kv_store.start_round()

    def generation_config(self, sampling: SamplingParams, max_new_tokens: int):
        from transformers import GenerationConfig

        kwargs = dict(
            max_new_tokens=int(max_new_tokens),
            do_sample=sampling.do_sample,
            repetition_penalty=sampling.repetition_penalty,
            eos_token_id=self.stop_token_ids,
            pad_token_id=self.codec.pad_token_id,
            suppress_tokens=self.codec.vision_token_ids,
            use_cache=self.use_cache,
            return_dict_in_generate=True,
            output_logits=self.record_logprobs,
        )
        if sampling.do_sample:
            kwargs.update(temperature=sampling.temperature, top_k=sampling.top_k or 0, top_p=sampling.top_p)
        return GenerationConfig(**kwargs)

    @contextlib.contextmanager
    def _neutral_defaults(self, model):
        """Generate fills every unset field from `model.generation_config`: swap in one with no sampling
        opinions for the duration of the call."""
        from transformers import GenerationConfig

        saved = model.generation_config
        model.generation_config = GenerationConfig(
            eos_token_id=self.stop_token_ids, pad_token_id=self.codec.pad_token_id
        )
        try:
            yield
        finally:
            model.generation_config = saved

    @torch.no_grad()
    def __call__(
        self, requests: list[GenerationRequest], sampling: SamplingParams, max_new_tokens: int
    ) -> list[GeneratedTurn]:
        if not requests:
            return []
        ctx = self.model_for_generate() if self.model_for_generate is not None else contextlib.nullcontext(self.model)
        with ctx as model:
            device = next(model.parameters()).device
            extra: dict[str, Any] = {}
            images = [img for r in requests for img in r.images]
            continued = None
            if self._kv_store is not None and self._vision_cache is not None and self._vision_cache.usable(model):
                continued = self._kv_store.continue_batch(
                    requests, self.codec.pad_token_id, self.codec.image_token_id, device
                )
            if continued is not None:
                # Only the suffixes run through the model: only their images (each row's last ones) are fed.
                images = [
                    img for r, k in zip(requests, continued.new_image_counts) for img in r.images[len(r.images) - k :]
                ]
                extra["past_key_values"] = continued.cache
            features = (
                self._vision_cache.encoder_outputs(model, images) if self._vision_cache is not None and images else None
            )
            if features is not None:
                extra["mm_encoder_outputs"] = {"image": features}
            if continued is not None:
                batch = _continued_inputs(continued, requests, self.codec.image_token_id, device)
            else:
                batch = collate_requests(
                    requests, self.codec.pad_token_id, self.codec.image_token_id, device, with_pixels=features is None
                )
            if "pixel_values" in batch:
                batch["pixel_values"] = batch["pixel_values"].to(model.dtype)
            if self.extra_generate_kwargs is not None:
                extra.update(self.extra_generate_kwargs(requests, batch["input_ids"].shape[1]))
            config = self.generation_config(sampling, max_new_tokens)
            with self._neutral_defaults(model):
                out = model.generate(**batch, **extra, generation_config=config, synced_gpus=self.synced_gpus)
        self.calls += 1
        width = batch["input_ids"].shape[1]
        new_tokens = out.sequences[:, width:].tolist()
        step_logps = None
        if self.record_logprobs and out.logits:
            # Per-step log-probs of the chosen tokens under the policy the loss scores: log_softmax(logits / T)
            # of the raw (pre-processor) logits; T = 1 for greedy.
            temperature = sampling.temperature if sampling.do_sample else 1.0
            chosen = out.sequences[:, width : width + len(out.logits)]
            step_logps = torch.stack(
                [
                    torch.log_softmax(logits.float() / temperature, dim=-1).gather(-1, chosen[:, s : s + 1]).squeeze(-1)
                    for s, logits in enumerate(out.logits)
                ],
                dim=1,
            ).tolist()
        stops = set(self.stop_token_ids)
        results = []
        for row, tokens in enumerate(new_tokens):
            end = next((i + 1 for i, t in enumerate(tokens) if t in stops), None)
            ids = tokens[:end] if end is not None else tokens[:max_new_tokens]
            logps = step_logps[row][: len(ids)] if step_logps is not None else []
            results.append(GeneratedTurn(ids=ids, logps=logps, hit_token_limit=end is None))
            self.generated_tokens += len(ids)
        if self._kv_store is not None and getattr(out, "past_key_values", None) is not None:
            self._kv_store.record(
                out.past_key_values,
                out.sequences,
                batch["attention_mask"],
                [len(r.ids) for r in results],
                [r.key for r in requests],
            )
        return results


def _continued_inputs(continued, requests: list[GenerationRequest], image_token_id: int, device) -> dict:
    """`collate_requests`' layout for a call continued from a cache: the full inputs (cached prefix, masked gap,
    suffix), image tokens marked, and every image's grid (M-RoPE positions are computed over the whole input)."""
    input_ids, attention_mask = continued.input_ids, continued.attention_mask
    batch = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "mm_token_type_ids": (input_ids == image_token_id).long() * attention_mask,
    }
    grids = [img.grid_thw for r in requests for img in r.images]
    if grids:
        batch["image_grid_thw"] = torch.stack(grids, dim=0).to(device)
    return batch
