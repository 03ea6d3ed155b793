"""`GroundR1Trainer`: TRL's GRPOTrainer with the two-phase Ground-R1 rollout in place of single-turn generation.

What it overrides, and why (a test pins the signatures of these TRL methods):

- `_generate_and_score_completions(inputs)`: TRL's version tokenizes prompts itself and builds the vision inputs
  from the prompt images only (crops made during a rollout never reach the loss). Ours runs the tree rollout
  (`ground_r1.rollout`), builds the batch from the sampled token ids (`trainer.batch`: every image of every
  trajectory, injected turns masked via `tool_mask`), scores with TRL's `_calculate_rewards`, computes group
  advantages (`trainer.advantages`) and the reference / old log-probs through `_get_per_token_logps_and_entropies`.
- `_get_per_token_logps_and_entropies(...)`: TRL's signature and return values, our loss batch
  (`trainer.loss_batch`, config `loss_batch_layout`): the padded ``[B, P + C]`` batch is laid out without its
  padding (length buckets, or padding-free packing with flash-attention) and only the loss-mask positions go
  through the LM head (`trainer.completion_head`); the log-probs come back in TRL's ``[B, C]`` layout.
- `_compute_loss(model, inputs)`: TRL's, untouched, run with the loss mask as the positions to score (and the
  loss batch's fill logged as `loss_batch/fill`).

Everything else (optimizer, schedule, accumulation, checkpoints, logging, KL, loss types) is TRL's, with three
fault hooks (docs/reliability.md): `compute_loss` / `training_step` run the non-finite guard
(`trainer.nonfinite`: a NaN/inf loss or gradient skips the optimizer step, logged with the record ids);
`_save_checkpoint` brackets each save with IN_PROGRESS/COMPLETE markers; SIGTERM finishes the step, saves a
complete checkpoint and exits 143 (`checkpoints.Preemption`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import gather_object, is_peft_model
from trl import GRPOTrainer
from trl.models.utils import unwrap_model_for_generation

from ground_r1.checkpoints import Preemption, checkpoint_fault, mark_complete, mark_in_progress, preemption_callback
from ground_r1.config import GroundR1Config
from ground_r1.data.images import ImageLoadError, load_image
from ground_r1.rollout.conversation import ConversationCodec
from ground_r1.rollout.generation import HFGenerator
from ground_r1.rollout.runner import Rollout, RolloutConfig, RolloutQuestion
from ground_r1.rollout.sampling import SamplingParams, TreePlan
from ground_r1.trainer.advantages import group_advantages
from ground_r1.trainer.batch import build_training_batch
from ground_r1.trainer import dynamic_sampling
from ground_r1.trainer.alarms import AlarmEvent, AlarmSettings, append_events, new_events
from ground_r1.trainer.completion_head import ScoredHead, add_scored_head, unsupported_reason
from ground_r1.trainer.dynamic_sampling import GroupSelection, RefillStream, keep_all, refill_questions, select_groups
from ground_r1.trainer.loss_batch import (
    LossBatch,
    build_loss_batch,
    is_varlen_attention,
    resolve_layout,
    score_loss_batch,
)
from ground_r1.trainer.metrics import aggregate_rollout_stats, trajectory_stats
from ground_r1.trainer.nonfinite import LOG_NAME as NONFINITE_LOG_NAME
from ground_r1.trainer.nonfinite import NonFiniteGuard
from ground_r1.trainer.resume import ResumeFixesMixin
from ground_r1.trainer.trajectory_log import append_entries, trajectory_entries

logger = logging.getLogger(__name__)

# Finish reasons of a trajectory that hit a cap without answering (turns, or the total token budget): the
# "truncated completions" of TRL's `mask_truncated_completions`, for multi-turn rollouts.
TRUNCATED_REASONS = ("max_turns", "budget")


@dataclass
class ScoredRollout:
    """One rollout of a list of questions on this rank, scored. Rewards are gathered over every rank
    (TRL's `_calculate_rewards`): rank r's rows are r * len(trajectories) ... (r + 1) * len(trajectories) - 1."""

    records: list[dict]
    trajectories: list
    prompts: list[str]
    completions: list[str]
    rewards_per_func: torch.Tensor  # [world * rows, num reward functions]
    rewards: torch.Tensor  # [world * rows], weighted sum; NaN where no function could score
    rounds_run: int
    generate_calls: int

    def group_rewards(self, rank: int, group: int, n: int) -> torch.Tensor:
        start = (rank * len(self.records) + group) * n
        return self.rewards[start : start + n]

    def flat_by_rank(self, n: int, world: int) -> list[list[bool]]:
        """Per rank, per group: all N rewards equal (no learning signal)."""
        flat = dynamic_sampling.flat_groups(self.rewards, n)
        per = len(self.records)
        return [flat[r * per : (r + 1) * per] for r in range(world)]


def rollout_config_from(args: GroundR1Config) -> RolloutConfig:
    return RolloutConfig(
        max_turns=args.max_turns,
        max_completion_length=args.max_completion_length,
        min_crop_size=args.min_crop_size,
        max_aspect_ratio=args.max_aspect_ratio,
        crop_fallback=args.crop_fallback,
        no_crop=args.no_crop,
        box_parse=args.box_parse,
        max_batch_rows=args.generation_max_batch_rows,
    )


def train_sampling_from(args: GroundR1Config) -> SamplingParams:
    """SPEC §2: explicit at every call; training always samples."""
    return SamplingParams(
        do_sample=True,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        max_new_tokens=args.max_new_tokens_per_turn,
    )


def eval_sampling_from(args: GroundR1Config) -> SamplingParams:
    return SamplingParams(
        do_sample=False,
        repetition_penalty=args.eval_repetition_penalty,
        max_new_tokens=args.eval_max_new_tokens_per_turn or args.max_new_tokens_per_turn,
    )


class GroundR1Trainer(ResumeFixesMixin, GRPOTrainer):
    """GRPO with grounding rollouts (G1 boxes -> crops -> G2 answering trajectories per box, multi-round)."""

    def __init__(self, *args, **kwargs):
        config = kwargs.get("args")
        if not isinstance(config, GroundR1Config):
            raise TypeError("GroundR1Trainer needs args=GroundR1Config(...)")
        super().__init__(*args, **kwargs)
        # The family (from the processor) gives geometry and the default box convention (models.families).
        self.codec = ConversationCodec(self.processing_class, coordinates=config.coordinates)
        self.tree_plan = TreePlan.from_group(self.num_generations, config.num_first_round_samples)
        self.rollout_config = rollout_config_from(config)
        self.train_sampling = train_sampling_from(config)
        self.eval_sampling = eval_sampling_from(config)
        self._question_log_path = (
            Path(config.output_dir) / "question_rewards.jsonl" if config.question_reward_log else None
        )
        self.last_trajectories: list = []  # of the latest step (galleries, tests)
        self.nonfinite = NonFiniteGuard(
            config.nonfinite_policy,
            config.max_consecutive_nonfinite_steps,
            Path(config.output_dir) / NONFINITE_LOG_NAME,
            is_main=self.accelerator.is_main_process,
            device=self.accelerator.device,
        )
        self.preemption = Preemption() if config.checkpoint_on_sigterm else None
        if self.preemption is not None:
            self.add_callback(preemption_callback(self.preemption, self._sync_any))
        self.loss_layout = self._setup_loss_layout(config)
        self.last_loss_batch: LossBatch | None = None  # of the latest log-prob pass (benchmarks, tests)
        self._score_mask: torch.Tensor | None = None  # [B, C] positions to score in the pass being run
        self.last_selection: GroupSelection | None = None  # groups kept / dropped in the latest step (tests)
        self.last_placeholder_rows = 0
        self.refill_stream = self._setup_dynamic_sampling(config)
        self.alarm_settings = AlarmSettings.from_args(config) if config.collapse_alarms else None
        self.alarm_events: list[AlarmEvent] = []  # fired during this process's training
        self.stopped_by_alarm = False  # alarm_action: stop ended the run

    def _setup_dynamic_sampling(self, config: GroundR1Config) -> RefillStream | None:
        """The refill stream of dynamic sampling (trainer/dynamic_sampling.py), None when it is off."""
        if not config.dynamic_sampling:
            return None
        if (
            self.train_dataset is None
            or not hasattr(self.train_dataset, "__getitem__")
            or not hasattr(self.train_dataset, "__len__")
        ):
            raise ValueError(
                "dynamic_sampling: true needs a map-style training dataset (refills are drawn by index); "
                "an iterable dataset cannot be refilled from: set dynamic_sampling: false"
            )
        return RefillStream(size=len(self.train_dataset), seed=config.seed)

    def _setup_loss_layout(self, config: GroundR1Config) -> str:
        """The loss batch's layout (`trainer.loss_batch`) and, unless it is TRL's padded one, the scored LM head
        on the policy (and reference) model, wrapped over the fused head TRL installed."""
        policy = self.model.get_base_model() if is_peft_model(self.model) else self.model  # as TRL patches it
        attn = getattr(policy.config, "_attn_implementation", None)
        layout = resolve_layout(config.loss_batch_layout, attn)
        if layout == "padded":
            return layout
        reason = unsupported_reason(policy)
        if reason is not None:
            if config.loss_batch_layout != "auto":
                raise ValueError(
                    f"loss_batch_layout={config.loss_batch_layout!r} cannot be used: {reason}. Set "
                    "loss_batch_layout: padded"
                )
            logger.warning("loss batch: TRL's padded layout (%s)", reason)
            return "padded"
        if layout == "packed":
            from ground_r1.models.families import family_of_model

            family = family_of_model(policy)
            if family.packed_loss_problem is not None:
                # Qwen3.5: packing is not exact for this family (models/families/qwen3_5.py says why).
                if config.loss_batch_layout == "packed":
                    raise ValueError(
                        f"loss_batch_layout='packed' cannot be used with {family.title}: "
                        f"{family.packed_loss_problem}. Set loss_batch_layout: bucketed"
                    )
                logger.warning(
                    "loss batch: bucketed, not packed, for %s (%s)", family.title, family.packed_loss_problem
                )
                layout = "bucketed"
        if layout == "packed" and not is_varlen_attention(attn):
            logger.warning(
                "loss_batch_layout=packed without flash-attention: attention builds a [W x W] mask per "
                "packed row (correct, slow and memory-hungry); 'bucketed' is the layout for sdpa/eager"
            )
        add_scored_head(policy)
        if self.ref_model is not None:
            add_scored_head(self.accelerator.unwrap_model(self.ref_model))
        return layout

    # -- distributed helpers ---------------------------------------------------------------------------------
    def _sync_any(self, local: bool) -> bool:
        """All ranks continue while any has unfinished trajectories (SPEC §2, ZeRO-3)."""
        if self.accelerator.num_processes == 1:
            return local
        flag = torch.tensor([1.0 if local else 0.0], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    def _is_zero3(self) -> bool:
        ds = getattr(self.accelerator.state, "deepspeed_plugin", None)
        return ds is not None and ds.zero_stage == 3

    @contextlib.contextmanager
    def _generation_model(self):
        """The model for the whole rollout: under ZeRO-3 parameters are gathered once per step, not per round."""
        with (
            unwrap_model_for_generation(
                self.model_wrapped,
                self.accelerator,
                gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
            ) as unwrapped,
            torch.no_grad(),
        ):
            yield unwrapped

    # -- the rollout ---------------------------------------------------------------------------------------------
    def _rollout(self, questions: list[RolloutQuestion], mode: str):
        plan = self.tree_plan if mode == "train" else TreePlan(1, self.num_generations_eval)
        sampling = self.train_sampling if mode == "train" else self.eval_sampling
        with self._generation_model() as model:
            generator = self._make_generator(model)
            rollout = Rollout(self.codec, generator, self.rollout_config)
            trajectories = rollout.run(questions, plan, sampling, sync_any=self._sync_any)
        return trajectories, rollout, generator

    def _make_generator(self, model):
        """The per-round generate function: the model's, or a scripted policy (config `scripted_policy`)."""
        if self.args.scripted_policy:
            from ground_r1.demo.scripted import ScriptedGenerator, resolve_policy

            step = self.state.global_step + 1 if self.model.training else 0  # the step this rollout trains
            return ScriptedGenerator(self.codec, resolve_policy(self.args.scripted_policy), model=model, step=step)
        return HFGenerator(
            model,
            self.codec,
            record_logprobs=self.args.record_sampling_logprobs,
            synced_gpus=self._is_zero3() and not self.args.ds3_gather_for_generation,
        )

    def _group_inputs(self, inputs: list[dict], n: int) -> list[dict]:
        """TRL repeats each question n times consecutively; check it and keep one record per group."""
        if len(inputs) % n != 0:
            raise ValueError(
                f"the local batch holds {len(inputs)} completions, not a multiple of num_generations={n}: set "
                f"per_device_train_batch_size to a multiple of {n}"
            )
        groups = [inputs[i] for i in range(0, len(inputs), n)]
        for g, first in enumerate(groups):
            for j in range(1, n):
                other = inputs[g * n + j]
                if other.get("key", other.get("problem")) != first.get("key", first.get("problem")):
                    raise ValueError(
                        "the N completions of a question are not on one rank (a group was split); set "
                        f"per_device_train_batch_size to a multiple of num_generations={n}"
                    )
        return groups

    def _generate_and_score_completions(
        self, inputs: list[dict[str, torch.Tensor | Any]]
    ) -> dict[str, torch.Tensor | Any]:
        device = self.accelerator.device
        mode = "train" if self.model.training else "eval"
        n = self.num_generations if mode == "train" else self.num_generations_eval
        records = self._group_inputs(inputs, n)

        # 1. Rollout and rewards: G1 grounding samples per question -> crops -> G2 answering trajectories each
        #    (SPEC §2); with dynamic sampling, groups with all-equal rewards are dropped and further questions
        #    rolled out (trainer/dynamic_sampling.py). Each trajectory's turns reach the reward functions as a column.
        rollouts = [self._roll_and_score(records, mode, n)]
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        if mode == "train" and self.args.dynamic_sampling:
            selection = self._refill(rollouts, n)
        else:
            selection = keep_all(len(records), world)
        self.last_selection = selection

        # 2. This rank's kept groups; group advantages over every rank's kept groups, then this rank's slice (SPEC §4).
        kept_rewards = (
            torch.cat([rollouts[k].group_rewards(r, g, n) for r in range(world) for k, g in selection.kept[r]])
            if selection.groups_kept
            else torch.zeros(0, device=device)
        )
        adv = group_advantages(kept_rewards, n, scale=self.scale_rewards) if selection.groups_kept else None
        before = sum(len(selection.kept[r]) for r in range(rank)) * n
        local_kept = selection.kept[rank]
        trajectories = [t for k, g in local_kept for t in rollouts[k].trajectories[g * n : (g + 1) * n]]
        kept_records = [rollouts[k].records[g] for k, g in local_kept]
        advantages = (
            adv.advantages[before : before + len(trajectories)] if adv is not None else torch.zeros(0, device=device)
        )
        # Placeholder rows (loss mask 0, advantage 0): every rank returns as many rows as the fullest one, a
        # multiple of steps_per_generation (TRL splits the batch evenly; its loss metrics gather per-row tensors).
        split = self.args.steps_per_generation if mode == "train" else 1
        rows = max(len(k) for k in selection.kept) * n
        rows = max(split, math.ceil(rows / split) * split)
        pad = rows - len(trajectories)
        if pad:
            filler = rollouts[0].trajectories
            trajectories = trajectories + [filler[i % len(filler)] for i in range(pad)]
            advantages = torch.cat([advantages, torch.zeros(pad, device=device, dtype=advantages.dtype)])
        self.last_trajectories = trajectories  # the loss batch's rows (galleries, tests)
        self.last_placeholder_rows = pad
        if mode == "train":
            self.nonfinite.set_batch_ids([r.get("key", r.get("problem")) for r in kept_records])

        # 3. Tensors for the loss: sampled ids as sampled; injected turns and padding masked (SPEC §4). Placeholder
        #    rows and, with mask_truncated_completions, trajectories that never answered are left out of the loss.
        batch = build_training_batch(trajectories, self.codec.pad_token_id, self.codec.image_token_id, device)
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(self.accelerator.unwrap_model(self.model).dtype)
        untrained = [i >= len(trajectories) - pad for i in range(len(trajectories))]
        if self.args.mask_truncated_completions:
            untrained = [u or t.finish_reason in TRUNCATED_REASONS for u, t in zip(untrained, trajectories)]
        if any(untrained):
            batch["tool_mask"][torch.tensor(untrained, device=batch["tool_mask"].device)] = 0

        # 4. Reference / old log-probs with the same inputs the loss sees (crops included).
        forward_kwargs = {k: batch[k] for k in ("pixel_values", "image_grid_thw", "mm_token_type_ids") if k in batch}
        prompt_completion_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
        attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
        logits_to_keep = batch["completion_ids"].size(1)
        batch_size = self.args.per_device_train_batch_size if mode == "train" else self.args.per_device_eval_batch_size
        output: dict[str, Any] = {}
        with torch.no_grad(), self._scoring(batch["completion_mask"] * batch["tool_mask"]):
            generate_every = self.args.steps_per_generation * self.num_iterations
            if self.args.gradient_accumulation_steps % generate_every != 0:
                output["old_per_token_logps"], _, _ = self._get_per_token_logps_and_entropies(
                    self.model,
                    prompt_completion_ids,
                    attention_mask,
                    logits_to_keep,
                    batch_size=batch_size,
                    num_images=batch["num_images"],
                    **forward_kwargs,
                )
            if self.beta != 0.0:
                ref_model = self.ref_model
                ctx = contextlib.nullcontext()
                if ref_model is None:  # PEFT: the base model with adapters disabled
                    from trl.trainer.utils import use_adapter

                    unwrapped = self.accelerator.unwrap_model(self.model)
                    ctx = use_adapter(unwrapped, adapter_name="ref" if "ref" in unwrapped.peft_config else None)
                    ref_model = self.model
                with ctx:
                    output["ref_per_token_logps"], _, _ = self._get_per_token_logps_and_entropies(
                        ref_model,
                        prompt_completion_ids,
                        attention_mask,
                        logits_to_keep,
                        batch_size=batch_size,
                        num_images=batch["num_images"],
                        **forward_kwargs,
                    )

        # 5. Metrics (docs/metrics.md): the rollout, reward and GIoU metrics over every trajectory rolled this step
        #    (dropped groups included: they describe the policy); the dynamic-sampling counts.
        self._log_step_metrics(mode, rollouts, n, selection, trajectories)
        for k, rolled in enumerate(rollouts):
            rolled_adv = group_advantages(rolled.rewards, n, scale=self.scale_rewards).advantages
            self._flush_reward_logs(
                mode, rolled.prompts, rolled.completions, rolled.rewards_per_func, rolled_adv, device
            )
            if self._question_log_path is not None and mode == "train" and self.accelerator.is_main_process:
                self._write_question_log(
                    rolled.records, rolled.rewards, n, rollout=k, kept={g for kk, g in selection.kept[0] if kk == k}
                )
        if mode == "train" and self._should_log_trajectories():
            first = rollouts[0]
            first_adv = group_advantages(first.rewards, n, scale=self.scale_rewards).advantages
            local = slice(rank * len(first.trajectories), (rank + 1) * len(first.trajectories))
            self._write_trajectory_log(first.records, first.trajectories, first.rewards_per_func, first_adv[local])

        loss_mask = batch["completion_mask"] * batch["tool_mask"]
        output.update(
            prompt_ids=batch["prompt_ids"],
            prompt_mask=batch["prompt_mask"],
            completion_ids=batch["completion_ids"],
            completion_mask=batch["completion_mask"],
            tool_mask=batch["tool_mask"],
            advantages=advantages,
            num_items_in_batch=self.accelerator.gather(loss_mask.sum()).sum(),
            mm_token_type_ids=batch["mm_token_type_ids"],
            num_images=batch["num_images"],
        )
        if "pixel_values" in batch:
            output["pixel_values"] = batch["pixel_values"]
            output["image_grid_thw"] = batch["image_grid_thw"]
        if self.args.record_sampling_logprobs:
            output["sampling_per_token_logps"] = batch["sampling_per_token_logps"]
        return output

    def _roll_and_score(self, records: list[dict], mode: str, n: int) -> "ScoredRollout":
        """One rollout of `records` (one per question) on this rank, scored through TRL's `_calculate_rewards`
        (rewards gathered over every rank, rank-major)."""
        questions = [RolloutQuestion(r["problem"], _record_image(r)) for r in records]
        trajectories, rollout, generator = self._rollout(questions, mode)
        reward_inputs = []
        for t in trajectories:
            row = dict(records[t.question_index])
            row["turns"] = t.turn_texts
            row["num_turns"] = t.num_turns
            reward_inputs.append(row)
        completions = ["\n".join(t.turn_texts) for t in trajectories]
        prompts = [r["problem"] for r in reward_inputs]
        rewards_per_func = self._calculate_rewards(
            reward_inputs, prompts, completions, [t.completion_ids for t in trajectories]
        )
        weights = self.reward_weights.to(self.accelerator.device).unsqueeze(0)
        unscorable = torch.isnan(rewards_per_func).all(dim=1)
        rewards = (rewards_per_func * weights).nansum(dim=1)
        rewards[unscorable] = torch.nan
        return ScoredRollout(
            records=records,
            trajectories=trajectories,
            prompts=prompts,
            completions=completions,
            rewards_per_func=rewards_per_func,
            rewards=rewards,
            rounds_run=rollout.rounds_run,
            generate_calls=generator.calls,
        )

    def _refill(self, rollouts: list["ScoredRollout"], n: int) -> GroupSelection:
        """Dynamic sampling (trainer/dynamic_sampling.py): refill rollouts until every rank holds as many
        informative groups as its generation batch has questions, or `dynamic_sampling_max_refills` is spent.
        Every rank takes the same decisions from the same gathered rewards, so all join every rollout (ZeRO-3)."""
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        target = len(rollouts[0].records)
        flat = [rollouts[0].flat_by_rank(n, world)]
        while True:
            selection = select_groups(flat, target)
            informative = selection.groups_rolled - selection.groups_dropped
            per_rank = refill_questions([len(k) for k in selection.kept], target, informative, selection.groups_rolled)
            if per_rank == 0 or len(rollouts) > self.args.dynamic_sampling_max_refills:
                return selection
            indices = self.refill_stream.take(per_rank, rank, world)
            rollouts.append(self._roll_and_score([self.train_dataset[i] for i in indices], "train", n))
            flat.append(rollouts[-1].flat_by_rank(n, world))

    # -- the loss batch (trainer/loss_batch.py) -------------------------------------------------------------------
    @contextlib.contextmanager
    def _scoring(self, mask: torch.Tensor | None):
        """The [B, C] positions the log-prob passes inside score (the loss mask); the others come back as 0,
        which TRL's loss never reads (every term is multiplied by the same mask)."""
        outer, self._score_mask = self._score_mask, mask
        try:
            yield
        finally:
            self._score_mask = outer

    def _compute_loss(self, model, inputs):
        """TRL's loss, untouched; its log-prob pass scores only the loss-mask positions."""
        mask = inputs["completion_mask"] * inputs["tool_mask"] if "tool_mask" in inputs else inputs["completion_mask"]
        self.last_loss_batch = None
        with self._scoring(mask):
            loss = super()._compute_loss(model, inputs)
        mode = "train" if self.model.training else "eval"
        if self.last_loss_batch is not None:
            self._metrics[mode]["loss_batch/fill"].append(self.last_loss_batch.fill)
        else:  # TRL's padded batch
            att = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
            self._metrics[mode]["loss_batch/fill"].append(att.float().mean().item())
        return loss

    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        pixel_values=None,
        image_grid_thw=None,
        num_images=None,
        pixel_attention_mask=None,
        spatial_shapes=None,
        num_tiles=None,
        image_sizes=None,
        token_type_ids=None,
        mm_token_type_ids=None,
        image_position_ids=None,
    ):
        """TRL's method (same signature, same ``[B, C]`` log-probs and entropies at the scored positions), run
        on our loss batch: `batch_size` caps the trajectories per forward as in TRL. Inputs of other model
        families (tiles, token types, MoE aux loss) and `loss_batch_layout: padded` take TRL's own path."""
        other_family = (
            pixel_attention_mask,
            spatial_shapes,
            num_tiles,
            image_sizes,
            token_type_ids,
            image_position_ids,
        )
        if self.loss_layout == "padded" or compute_aux_loss or any(x is not None for x in other_family):
            return super()._get_per_token_logps_and_entropies(
                model,
                input_ids,
                attention_mask,
                logits_to_keep,
                batch_size=batch_size,
                compute_entropy=compute_entropy,
                compute_aux_loss=compute_aux_loss,
                pixel_values=pixel_values,
                image_grid_thw=image_grid_thw,
                num_images=num_images,
                pixel_attention_mask=pixel_attention_mask,
                spatial_shapes=spatial_shapes,
                num_tiles=num_tiles,
                image_sizes=image_sizes,
                token_type_ids=token_type_ids,
                mm_token_type_ids=mm_token_type_ids,
                image_position_ids=image_position_ids,
            )
        rows = input_ids.size(0)
        score_mask = self._score_mask
        if score_mask is not None and tuple(score_mask.shape) != (rows, logits_to_keep):
            score_mask = None  # a pass over another batch than the one being scored: score every completion token

        def lay_out(min_forwards: int = 0) -> LossBatch:
            return build_loss_batch(
                input_ids,
                attention_mask,
                logits_to_keep,
                layout=self.loss_layout,
                position_ids=positions,
                score_mask=score_mask,
                mm_token_type_ids=mm_token_type_ids,
                pixel_values=pixel_values,
                image_grid_thw=image_grid_thw,
                num_images=num_images,
                max_rows=batch_size,
                min_fill=self.args.loss_bucket_min_fill,
                pad_token_id=self.codec.pad_token_id,
                min_forwards=min_forwards,
            )

        positions = _rope_positions(
            self.accelerator.unwrap_model(model), input_ids, attention_mask, mm_token_type_ids, image_grid_thw
        )
        batch = lay_out()
        if self.accelerator.num_processes > 1:
            # Every rank runs as many forwards (and backwards) as the one with the most buckets: under ZeRO-3
            # each gathers parameters collectively, and a rank with fewer would leave the others waiting.
            count = torch.tensor([len(batch.forwards)], device=self.accelerator.device)
            most = int(self.accelerator.gather(count).max().item())
            if most > len(batch.forwards):
                batch = lay_out(most)
        self.last_loss_batch = batch
        head = ScoredHead(
            temperature=self.temperature,
            cast_lm_head_to_fp32=self.args.cast_lm_head_to_fp32,
            outputs=("log_probs", "entropy") if compute_entropy else ("log_probs",),
        )
        logps, entropies = score_loss_batch(model, batch, head, autocast=self.accelerator.autocast)
        return logps, entropies, None

    # -- non-finite guard ----------------------------------------------------------------------------------------
    def training_step(self, model, inputs, num_items_in_batch):
        self.nonfinite.install(self.optimizer, lambda: self.state.global_step + 1)
        return super().training_step(model, inputs, num_items_in_batch)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        if self.model.training:  # not in evaluation's prediction_step
            loss = self.nonfinite.check_loss(loss, self.state.global_step + 1)
        return loss

    # -- checkpoints -------------------------------------------------------------------------------------------
    def train(self, resume_from_checkpoint=None, trial=None, ignore_keys_for_eval=None):
        """ResumeFixesMixin.train (a finished run trains no extra step), the refill cursor of dynamic sampling
        loaded from the checkpoint, and the SIGTERM handler removed after."""
        if self.refill_stream is not None and resume_from_checkpoint:
            folder = resume_from_checkpoint
            if folder is True:
                from transformers.trainer_utils import get_last_checkpoint

                folder = get_last_checkpoint(self.args.output_dir)
            if folder:
                dynamic_sampling.load_state(self.refill_stream, folder)
        try:
            return super().train(
                resume_from_checkpoint=resume_from_checkpoint, trial=trial, ignore_keys_for_eval=ignore_keys_for_eval
            )
        finally:  # on_train_end is skipped when training raises: never leave the SIGTERM handler behind
            if self.preemption is not None:
                self.preemption.uninstall()

    def _save_checkpoint(self, model, trial):
        """IN_PROGRESS marker, TRL/HF save, a barrier, then the rename to COMPLETE: resume never loads a
        half-written folder (`checkpoints.checkpoint_problems`). Then the preemption exit, if SIGTERM arrived."""
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        step = self.state.global_step
        folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{step}"
        if self.args.should_save:
            mark_in_progress(folder)
        checkpoint_fault(step, "begin")
        super()._save_checkpoint(model, trial)
        if self.refill_stream is not None and self.args.should_save and folder.is_dir():
            dynamic_sampling.save_state(self.refill_stream, folder)  # the refill cursor: resume continues its order
        checkpoint_fault(step, "marker")
        self.accelerator.wait_for_everyone()
        if self.args.should_save and folder.is_dir():
            mark_complete(folder)
        checkpoint_fault(step, "after")
        if self.preemption is not None and self.preemption.stop_agreed(self._sync_any):
            self.preemption.exit_after_checkpoint(step, folder)

    def save_model(self, output_dir=None, _internal_call=False):
        """HF's save (weights, processor), plus rollout_settings.json: the final folder and every checkpoint-N
        carry the pixel limits, turn and token budgets, box convention and box / letter rules evaluation must reuse
        (issue 17; the rules are issue 16's ``box_parse`` and ``letter_rule``)."""
        super().save_model(output_dir, _internal_call=_internal_call)
        if self.args.should_save:
            from ground_r1.rollout_settings import write_settings

            write_settings(
                output_dir or self.args.output_dir,
                self.args,
                coordinates=self.codec.coordinates,
                model_family=self.codec.family.name,
            )

    def create_model_card(self, model_name=None, dataset_name=None, tags=None):
        """OUTPUT_DIR/README.md: our card (what was trained, on what, the preset, held-out figures) in place of
        TRL's generic one (ground_r1.reporting.model_card)."""
        if self.is_world_process_zero():
            from ground_r1.reporting.model_card import write_model_card

            write_model_card(self.args.output_dir)

    def _save_optimizer_and_scheduler(self, output_dir):
        checkpoint_fault(self.state.global_step, "weights")  # weights on disk, nothing else yet
        super()._save_optimizer_and_scheduler(output_dir)

    # -- logging ---------------------------------------------------------------------------------------------------
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """TRL's log (metrics averaged, metrics.jsonl and the console line via callbacks), then the collapse
        alarms (trainer/alarms.py) over the history so far: a named warning, alarms.jsonl, and with
        `alarm_action: stop` a checkpoint of this step and the end of the run (ranks agree on stopping)."""
        super().log(logs, start_time)
        if self.alarm_settings is None or "loss" not in logs or any(k.startswith("eval_") for k in logs):
            return
        events = new_events(self.state.log_history, self.alarm_settings)
        if events and self.accelerator.is_main_process:
            for event in events:
                logger.warning("%s", event.message)
            append_events(self.args.output_dir, events)
        self.alarm_events.extend(events)
        if self.args.alarm_action == "stop" and self._sync_any(bool(events)):
            self.stopped_by_alarm = True
            if self.accelerator.is_main_process:
                logger.warning(
                    "alarm_action: stop: saving a checkpoint of step %d and ending the run", self.state.global_step
                )
            self.control.should_training_stop = True
            self.control.should_save = True

    def _log_step_metrics(self, mode, rollouts, n, selection, batch_rows) -> None:
        """Rollout, reward and GIoU metrics over every trajectory rolled this step, on every rank (TRL logs rank
        0's metric lists only); with dynamic sampling, what was kept, dropped and refilled."""
        metrics = self._metrics[mode]
        device = self.accelerator.device
        rolled = [(r, t) for r in rollouts for t in r.trajectories]
        stats = [trajectory_stats(t, r.records[t.question_index].get("bboxs") or []) for r, t in rolled]
        if self.accelerator.num_processes > 1:
            stats = gather_object(stats)
        for name, value in aggregate_rollout_stats(stats).items():
            metrics[name].append(value)
        rewards_per_func = torch.cat([r.rewards_per_func for r in rollouts])
        rewards = torch.cat([r.rewards for r in rollouts])
        for i, name in enumerate(self.reward_func_names):
            metrics[f"rewards/{name}/mean"].append(torch.nanmean(rewards_per_func[:, i]).item())
            metrics[f"rewards/{name}/std"].append(_nanstd(rewards_per_func[:, i]))
        metrics["reward"].append(torch.nanmean(rewards).item())
        metrics["reward_std"].append(_nanstd(rewards))
        zero_std = torch.cat([group_advantages(r.rewards, n, scale=self.scale_rewards).zero_std for r in rollouts])
        metrics["frac_reward_zero_std"].append(zero_std.float().mean().item())
        sampled = torch.tensor([float(t.num_sampled_tokens) for _, t in rolled], device=device)
        agg = self.accelerator.gather(sampled)
        metrics["completions/mean_length"].append(agg.mean().item())
        metrics["completions/min_length"].append(agg.min().item())
        metrics["completions/max_length"].append(agg.max().item())
        metrics["rollout/rounds"].append(float(sum(r.rounds_run for r in rollouts)))
        metrics["rollout/generate_calls"].append(float(sum(r.generate_calls for r in rollouts)))
        if self.args.mask_truncated_completions:
            truncated = torch.tensor([float(t.finish_reason in TRUNCATED_REASONS) for t in batch_rows], device=device)
            metrics["rollout/masked_truncated_frac"].append(self.accelerator.gather(truncated).mean().item())
        if mode == "train" and self.args.dynamic_sampling:
            metrics["dynamic_sampling/groups_rolled"].append(float(selection.groups_rolled))
            metrics["dynamic_sampling/groups_kept"].append(float(selection.groups_kept))
            metrics["dynamic_sampling/groups_dropped"].append(float(selection.groups_dropped))
            metrics["dynamic_sampling/groups_surplus"].append(float(selection.groups_surplus))
            metrics["dynamic_sampling/shortfall"].append(float(selection.shortfall))
            metrics["dynamic_sampling/refills"].append(float(len(rollouts) - 1))
            metrics["dynamic_sampling/refill_questions"].append(
                float(sum(len(r.records) for r in rollouts[1:]) * self.accelerator.num_processes)
            )
            world_rows = len(batch_rows) * self.accelerator.num_processes  # every rank returns as many rows
            metrics["dynamic_sampling/placeholder_rows"].append(float(world_rows - selection.groups_kept * n))
        if mode == "train":
            tokens = sum(len(t.prompt_ids) + len(t.completion_ids) for _, t in rolled)
            self.state.num_input_tokens_seen += int(
                self.accelerator.gather(torch.tensor(tokens, device=device)).sum().item()
            )
        metrics["num_tokens"] = [self.state.num_input_tokens_seen]

    def _flush_reward_logs(self, mode, prompts, completions, rewards_per_func, all_advantages, device) -> None:
        """What TRL's own scoring path does after rewards: the completions table (`log_completions`) and the
        values reward functions reported through `log_extra` / `log_metric`, gathered in a fixed key order."""
        self._logs["prompt"].extend(gather_object(prompts))
        self._logs["completion"].extend(gather_object(completions))
        for i, name in enumerate(self.reward_func_names):
            self._logs["rewards"][name].extend(rewards_per_func[:, i].tolist())
        self._logs["advantages"].extend(all_advantages.tolist())
        for column in sorted(set(gather_object(list(self._pending_extra_logs)))):
            values = self._pending_extra_logs.get(column, [None] * len(prompts))
            self._logs["extra"][column].extend(gather_object(values))
        self._pending_extra_logs.clear()
        for name in sorted(set(gather_object(list(self._pending_metrics)))):
            values = self._pending_metrics.get(name, [])
            local = torch.tensor([sum(values), len(values)], dtype=torch.float32, device=device)
            total, count = self.accelerator.gather(local).view(-1, 2).sum(dim=0).tolist()
            self._metrics[mode][name].append(total / count if count else float("nan"))
        self._pending_metrics.clear()

    def _should_log_trajectories(self) -> bool:
        every = self.args.trajectory_log_steps
        step = self.state.global_step + 1  # the step this rollout trains
        return bool(every) and self.accelerator.is_main_process and (step == 1 or step % every == 0)

    def _write_trajectory_log(self, records, trajectories, rewards_per_func, advantages) -> None:
        """The first question of this rank's batch: every one of its trajectories (the gallery's input)."""
        entries = trajectory_entries(
            self.state.global_step + 1,
            0,
            records[0],
            trajectories,
            rewards_per_func.tolist(),
            self.reward_func_names,
            advantages.tolist(),
        )
        append_entries(Path(self.args.output_dir) / "trajectories.jsonl", entries)

    def _write_question_log(self, records, rewards, n, rollout: int = 0, kept=None) -> None:
        """Rank 0's questions of one rollout (0: the main batch, k: the k-th refill) with their rewards and
        whether their group reached the loss (dynamic sampling drops groups whose rewards are all equal)."""
        local = rewards.view(-1, n)[: len(records)]
        with open(self._question_log_path, "a", encoding="utf-8") as fh:
            for g, (r, row) in enumerate(zip(records, local.tolist())):
                entry = {
                    "step": self.state.global_step,
                    "key": r.get("key"),
                    "rewards": row,
                    "rollout": rollout,
                    "kept": kept is None or g in kept,
                }
                fh.write(json.dumps(entry) + "\n")


def _record_image(record: dict) -> Any:
    """The record's image; a file that passed validation but fails to decode now (changed on disk, corrupt
    compressed data past the checked header) stops the run naming the record, not with a bare PIL trace."""
    try:
        return load_image(record["image"])
    except ImageLoadError as exc:
        raise ImageLoadError(
            exc.path,
            f"{exc.reason} (record {record.get('key', '?')}: it passed validation at "
            "startup; fix or remove the file, or drop the record, then resume)",
        ) from exc


def _rope_positions(model, input_ids, attention_mask, mm_token_type_ids, image_grid_thw) -> torch.Tensor | None:
    """The padded batch's M-RoPE positions [3, B, L], from the model's own `get_rope_index` (what its forward
    computes from these inputs); None for a model without one (1-D positions over the real tokens)."""
    if is_peft_model(model):
        model = model.get_base_model()
    backbone = getattr(model, "base_model", model)
    get_rope_index = getattr(backbone, "get_rope_index", None)
    if get_rope_index is None or mm_token_type_ids is None or image_grid_thw is None:
        return None
    with torch.no_grad():
        positions, _ = get_rope_index(
            input_ids, mm_token_type_ids=mm_token_type_ids, image_grid_thw=image_grid_thw, attention_mask=attention_mask
        )
    return positions


def _nanstd(x: torch.Tensor) -> float:
    x = x[~torch.isnan(x)]
    return x.std().item() if x.numel() > 1 else 0.0
