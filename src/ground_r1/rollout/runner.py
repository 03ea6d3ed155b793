"""The Ground-R1 rollout (SPEC §2): one implementation for training and evaluation.

Per question, round 1 samples `g1` grounding turns; each is shared by `g2` trajectories (N = g1 x g2). Every
later round generates **only the unfinished trajectories**, all of them (every question of the step) in one
batched call, one sample each. After a turn:

- it contains ``<answer>``                      -> the trajectory ends ("answer");
- it is the `max_turns`-th assistant turn       -> ends ("max_turns");
- the total completion budget is spent          -> ends ("budget");
- otherwise: parse its box, crop the original full-resolution image (SPEC §2 crop rules; the full image when
  no valid box, the release's default), and append the injected user turn ``[crop, same template]`` as token
  ids with mask 0. The sampled ids are kept as they are: nothing is decoded and re-tokenized.

Distributed: under ZeRO-3 every rank must join every generate call, so ranks agree on the number of rounds
(`sync_any`, an all-reduce of "any unfinished"); a rank with nothing left joins with a one-token dummy call.

The rounds run inside the generate function's `rollout_scope()` when it has one (`HFGenerator`: an image is
encoded once per rollout, SPEC §10). Two `release_style_*` options exist for the benchmark only
(benchmarks/perf): they switch the release's wasteful behaviours back on, to measure what avoiding them saves.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Callable

from PIL import Image

from ground_r1.boxes import BOX_PARSE_RULES, CropWindow, crop_image, parse_turn_box
from ground_r1.prompt import crop_turn_message, first_turn_messages
from ground_r1.rollout.answer import has_answer
from ground_r1.rollout.conversation import ConversationCodec
from ground_r1.rollout.generation import GeneratedTurn, GenerateFn, GenerationRequest
from ground_r1.rollout.sampling import SamplingParams, TreePlan
from ground_r1.rollout.trajectory import Trajectory, Turn

logger = logging.getLogger(__name__)


@dataclass
class RolloutQuestion:
    question: str
    image: Image.Image  # the original, full-resolution image (RGB)


@dataclass(frozen=True)
class RolloutConfig:
    """Knobs of the rollout (config keys of the same names in GroundR1Config)."""

    max_turns: int = 5  # SPEC §2: 5 assistant turns (4 crops)
    max_completion_length: int | None = None  # total completion tokens (sampled + injected); None: unbounded
    min_crop_size: int = 28  # SPEC §2: widen to at least 28 px per side
    max_aspect_ratio: float = 200.0  # SPEC §2: reject boxes with aspect ratio >= 200
    crop_fallback: str = "full_image"  # SPEC §2: no valid box -> the full image is fed back (release)
    no_crop: bool = False  # control: the crop is replaced by the original image (issue: --no_crop)
    box_parse: str = "tag_first"  # SPEC §2 box rule: "tag_first" (ours) or "release" (boxes.parse_turn_box)
    max_batch_rows: int | None = None  # split a round's generate call into chunks of this many rows
    # BENCHMARK ONLY (benchmarks/perf, "release-style" loop): the release's waste, switched back on. Never set
    # them for training: they change costs, not results (the turns kept are the same), and cost a lot.
    release_style_regenerate_all: bool = False  # every round regenerates all N trajectories, finished ones too
    # (their new turns are discarded)
    release_style_retokenize: bool = False  # every round re-renders each conversation to text (turns decoded)
    # and re-tokenizes it with the processor, re-processing every image (the sampled ids are still what is kept)

    def __post_init__(self) -> None:
        if self.max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {self.max_turns}")
        if self.crop_fallback not in ("full_image", "end"):
            raise ValueError(f"crop_fallback must be 'full_image' or 'end', got {self.crop_fallback!r}")
        if self.box_parse not in BOX_PARSE_RULES:
            raise ValueError(f"box_parse must be one of {', '.join(BOX_PARSE_RULES)}, got {self.box_parse!r}")


SyncAny = Callable[[bool], bool]


def _local_only(flag: bool) -> bool:
    return flag


def _cut_to_budget(turn: GeneratedTurn, budget: int) -> GeneratedTurn:
    """The turn as a call with max_new_tokens=budget would have returned it."""
    if len(turn.ids) <= budget:
        return turn
    return GeneratedTurn(ids=turn.ids[:budget], logps=turn.logps[:budget], hit_token_limit=True)


class Rollout:
    """Runs tree rollouts for a batch of questions with a given generate function."""

    def __init__(self, codec: ConversationCodec, generate_fn: GenerateFn, config: RolloutConfig | None = None):
        self.codec = codec
        self.generate_fn = generate_fn
        self.config = config or RolloutConfig()
        self.rounds_run = 0  # of the last call, for metrics
        self.dummy_calls = 0

    # -- public -----------------------------------------------------------------------------------------------
    def run(
        self,
        questions: list[RolloutQuestion],
        plan: TreePlan,
        sampling: SamplingParams,
        sync_any: SyncAny = _local_only,
    ) -> list[Trajectory]:
        """Trajectories in group order: question q's N trajectories are q*N .. q*N+N-1, branch-major."""
        scope = getattr(self.generate_fn, "rollout_scope", None)
        with scope() if callable(scope) else contextlib.nullcontext():
            trajectories = self._rounds(questions, plan, sampling, sync_any)
        for t in trajectories:
            if not t.finished:  # only reachable when sync stopped early; never silently unfinished
                t.finish_reason = "max_turns"
        return trajectories

    def _rounds(
        self, questions: list[RolloutQuestion], plan: TreePlan, sampling: SamplingParams, sync_any: SyncAny
    ) -> list[Trajectory]:
        cfg = self.config
        seeds = [self._start(q_idx, q) for q_idx, q in enumerate(questions)]
        # A generate function that carries state from round to round (HFGenerator's KV cache) is told where
        # rounds begin.
        start_round = getattr(self.generate_fn, "start_round", None) or (lambda: None)
        start_round()

        # Round 1: g1 samples per question, each forked into g2 trajectories (the tree, SPEC §2).
        requests = [
            self._request(s, (q_idx, b * plan.g2), questions[q_idx])
            for q_idx, s in enumerate(seeds)
            for b in range(plan.g1)
        ]
        budgets = [self._turn_budget(s, sampling) for s in seeds for _ in range(plan.g1)]
        outputs = self._generate(requests, sampling, budgets)
        trajectories: list[Trajectory] = []
        for k, generated in enumerate(outputs):
            q_idx, branch = divmod(k, plan.g1)
            first = seeds[q_idx].fork()
            first.branch = branch
            self._append_turn(first, generated, questions[q_idx])
            trajectories.extend(first.fork() for _ in range(plan.g2))
        self.rounds_run = 1

        # Later rounds: only unfinished trajectories, one sample each, batched across all questions.
        for _ in range(cfg.max_turns - 1):
            pending = [k for k, t in enumerate(trajectories) if not t.finished]
            if not sync_any(bool(pending)):
                break
            self.rounds_run += 1
            start_round()
            if not pending:
                self._dummy_call(seeds[0] if seeds else None, sampling)
                continue
            # Benchmark only: the release regenerated every trajectory, finished ones included.
            active = range(len(trajectories)) if cfg.release_style_regenerate_all else pending
            rows = [trajectories[k] for k in active]
            requests = [
                self._request(t, (t.question_index, k % plan.n), questions[t.question_index])
                for k, t in zip(active, rows)
            ]
            budgets = [self._turn_budget(t, sampling) for t in rows]
            outputs = self._generate(requests, sampling, budgets)
            for t, generated in zip(rows, outputs):
                if not t.finished:
                    self._append_turn(t, generated, questions[t.question_index])
        return trajectories

    def _request(self, t: Trajectory, key: tuple[int, int], q: RolloutQuestion) -> GenerationRequest:
        """The next turn's context: the token ids kept so far and the images, as encoded once (SPEC §10)."""
        if not self.config.release_style_retokenize:
            return GenerationRequest(t.context_ids(), t.images, key)
        # Benchmark only, the release's way: decode the turns, re-render the conversation, re-tokenize it and
        # re-process every image, every round.
        w, h = t.input_size
        messages = first_turn_messages(q.question, w, h, t.coordinates)
        pil_images = [q.image]
        for i, turn in enumerate(t.turns):
            messages.append({"role": "assistant", "content": [{"type": "text", "text": turn.text}]})
            if i + 1 < len(t.images):  # this turn's crop was fed back
                messages.append(crop_turn_message(q.question, w, h, t.coordinates))
                crop = None if self.config.no_crop else CropWindow(turn.crop_window, turn.crop_is_fallback)
                pil_images.append(q.image if crop is None else crop_image(q.image, crop))
        images = self.codec.encode_images(pil_images)
        return GenerationRequest(self.codec.encode_chat(messages, images), images, key)

    # -- steps --------------------------------------------------------------------------------------------------
    def _start(self, q_idx: int, q: RolloutQuestion) -> Trajectory:
        prompt = self.codec.encode_prompt(q.question, q.image)
        return Trajectory(
            question_index=q_idx,
            branch=0,
            prompt_ids=prompt.ids,
            input_size=prompt.images[0].size,
            original_size=q.image.size,
            images=list(prompt.images),
            coordinates=self.codec.coordinates,
            model_family=self.codec.family.name,
        )

    def _turn_budget(self, t: Trajectory, sampling: SamplingParams) -> int:
        if self.config.max_completion_length is None:
            return sampling.max_new_tokens
        # One token is held back for the eos injected after a turn cut by this limit: the total never overshoots.
        return max(0, min(sampling.max_new_tokens, self.config.max_completion_length - len(t.completion_ids) - 1))

    def _generate(
        self, requests: list[GenerationRequest], sampling: SamplingParams, budgets: list[int]
    ) -> list[GeneratedTurn]:
        """One round: ONE generate call for every row with budget left (chunked only by max_batch_rows), run to
        the largest budget; each row's turn is then cut to its own budget. Cutting is exact: the first b tokens
        of a longer sample are a sample of b tokens (each token depends only on the ones before it). A decode
        step costs about the same for 2 rows as for 16 (benchmarks/perf/README.md), so one call of the round's
        rows beats one call per distinct budget. Rows with no budget left get an empty turn."""
        results: list[GeneratedTurn | None] = [None] * len(requests)
        live = []
        for i, b in enumerate(budgets):
            if b <= 0:
                results[i] = GeneratedTurn(ids=[], logps=[], hit_token_limit=True)
            else:
                live.append(i)
        chunk = self.config.max_batch_rows or len(requests) or 1
        for start in range(0, len(live), chunk):
            part = live[start : start + chunk]
            call_budget = max(budgets[i] for i in part)
            outs = self.generate_fn([requests[i] for i in part], sampling, call_budget)
            if len(outs) != len(part):
                raise RuntimeError(f"generate function returned {len(outs)} turns for {len(part)} requests")
            for i, out in zip(part, outs):
                # Only a row with less budget than the call is cut: a turn is otherwise kept as the generate
                # function returned it (a control's scripted first turn may be longer than the budget).
                results[i] = _cut_to_budget(out, budgets[i]) if budgets[i] < call_budget else out
        return results  # type: ignore[return-value]

    def _dummy_call(self, seed: Trajectory | None, sampling: SamplingParams) -> None:
        """Join a collective generate round with nothing to do (ZeRO-3): one row, one token, discarded."""
        if seed is None:
            return
        self.dummy_calls += 1
        self.generate_fn([GenerationRequest(seed.context_ids(), seed.images, None)], sampling, 1)

    def _append_turn(self, t: Trajectory, generated: GeneratedTurn, q: RolloutQuestion) -> None:
        codec, cfg = self.codec, self.config
        ids = list(generated.ids)
        logps = list(generated.logps) if generated.logps else [0.0] * len(ids)
        turn = Turn(text="", ids=ids, hit_token_limit=generated.hit_token_limit)
        mask = [1] * len(ids)
        if codec.contains_vision_token(ids):
            # SPEC §2: never crash the processor. The ids are replaced (they would desynchronise image features),
            # the whole turn is left out of the loss and the trajectory ends.
            vision = set(codec.vision_token_ids)
            ids = [codec.pad_token_id if x in vision else x for x in ids]
            turn.ids, turn.had_vision_token = ids, True
            mask = [0] * len(ids)
        turn.text = codec.decode_turn(ids)
        t.completion_ids.extend(ids)
        t.completion_mask.extend(mask)
        t.sampling_logps.extend(logps[: len(ids)] + [0.0] * (len(ids) - len(logps[: len(ids)])))
        if not ids or ids[-1] != codec.eos_token_id:
            # A turn cut by the per-turn limit (or ended by another stop token) is closed with an injected eos
            # (mask 0) and then treated like any other turn (SPEC §2).
            t.completion_ids.append(codec.eos_token_id)
            t.completion_mask.append(0)
            t.sampling_logps.append(0.0)
        t.turns.append(turn)

        if turn.had_vision_token:
            t.finish_reason = "vision_token"
            return
        if has_answer(turn.text):
            turn.is_answer = True
            t.finish_reason = "answer"
            return
        self._record_box(t, turn)
        if t.num_turns >= cfg.max_turns:
            t.finish_reason = "max_turns"
            return
        if turn.crop_window is None and cfg.crop_fallback == "end":
            t.finish_reason = "no_box"
            return
        crop = q.image if cfg.no_crop else crop_image(q.image, CropWindow(turn.crop_window, turn.crop_is_fallback))
        injected = codec.encode_crop_turn(q.question, t.input_size, crop, num_images_before=len(t.images))
        if cfg.max_completion_length is not None and (
            len(t.completion_ids) + len(injected.ids) >= cfg.max_completion_length
        ):
            t.finish_reason = "budget"
            return
        t.completion_ids.extend(injected.ids)
        t.completion_mask.extend([0] * len(injected.ids))
        t.sampling_logps.extend([0.0] * len(injected.ids))
        t.images.extend(injected.images)

    def _record_box(self, t: Trajectory, turn: Turn) -> None:
        """The turn's box and its crop, mapped to original pixels through the trajectory's frame (its family's
        coordinate convention: the resized input for Qwen2.5-VL, the 0-1000 grid for Qwen3-VL)."""
        cfg = self.config
        frame = t.frame
        parsed = parse_turn_box(turn.text, cfg.box_parse)
        if parsed is not None:
            turn.box, turn.box_source = parsed.box, parsed.source
            turn.box_original = frame.to_original(parsed.box, t.original_size)
        window = frame.crop_window(
            parsed.box if parsed is not None else None,
            t.original_size,
            min_size=cfg.min_crop_size,
            max_aspect_ratio=cfg.max_aspect_ratio,
            fallback="full_image" if cfg.crop_fallback == "full_image" else "none",
        )
        if window is not None:
            turn.crop_window = tuple(window.box)
            turn.crop_is_fallback = window.is_fallback
