"""Dynamic sampling: DAPO's group filter (arXiv 2503.14476 §3.2; verl and EasyR1 call it online filtering).

A group (all N = G1 x G2 trajectories of one question, SPEC §4) whose rewards are all equal has advantage 0 on
every trajectory: it adds nothing to the policy gradient but dilutes the batch (TRL's sequence-mean losses divide
by it) and costs a loss pass. With `dynamic_sampling: true` such groups are dropped and the batch is refilled
with rollouts of further questions, up to `dynamic_sampling_max_refills` extra rollouts per step; then the step
trains on what it has, and the shortfall is logged.

How the pieces fit TRL's batching (TRL 1.16 `GRPOTrainer._prepare_inputs`): the sampler hands each rank its
generation batch (`per_device_train_batch_size x steps_per_generation` completions = Q questions x N); the
trainer rolls it out, drops flat groups, rolls refill questions, and returns at most Q informative groups per
rank, in the order they were rolled (the main batch first; informative groups past Q are surplus, discarded).
TRL then shuffles and splits that batch into `steps_per_generation` micro-batches as usual, and
`num_items_in_batch` counts the loss tokens of what is returned, so token-normalised losses stay exact.

- **Where refills come from**: `RefillStream`, a seeded order of the training set of its own (a new permutation
  per pass), not TRL's sampler: the main data order, and HF's batch skipping on resume, are untouched. Its only
  state is a cursor, saved in every checkpoint (`STATE_NAME`) and loaded on resume, so the data order of a
  resumed run equals the unbroken run's.
- **Several processes (ZeRO-3)**: every rank must join every generate call. Rewards are gathered across ranks
  (TRL's `_calculate_rewards`), so every rank sees which groups of every rank are flat and takes the same
  decision: another refill while any rank is short, each rank rolling the same number of questions (the next
  block of the stream: rank r takes the r-th of `world` blocks).
- **Refill size**: as many questions as the emptiest rank is short, divided by the share of groups kept so far
  in this step (at least the shortfall), at most Q: `refill_questions`.
- **Shortfall**: a rank with fewer than Q informative groups trains on those. A rank with none (or, with
  `steps_per_generation` > 1, a row count that does not split evenly) is padded with placeholder rows: rolled
  trajectories whose loss mask is zero and advantage 0, so that every rank runs its loss forward (ZeRO-3); they
  add nothing to any loss but count as rows in a sequence-mean loss (`grpo`) of their micro-batch.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch

logger = logging.getLogger(__name__)

STATE_NAME = "dynamic_sampling.json"  # in each checkpoint folder
_STREAM_SALT = 0x5EED_D5  # keeps the refill order apart from TRL's sampler order (seeded with the same seed)


@lru_cache(maxsize=4)
def _pass_order(size: int, seed: int, epoch: int) -> tuple[int, ...]:
    generator = torch.Generator()
    generator.manual_seed((seed * 1_000_003 + epoch * 7_919 + _STREAM_SALT) % (2**63))
    return tuple(torch.randperm(size, generator=generator).tolist())


@dataclass
class RefillStream:
    """The questions refills are drawn from (module doc). Same on every rank; `cursor` is the whole state."""

    size: int
    seed: int
    cursor: int = 0

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("dynamic sampling needs a non-empty training set to refill from")

    def at(self, position: int) -> int:
        epoch, offset = divmod(position, self.size)
        return _pass_order(self.size, self.seed, epoch)[offset]

    def take(self, per_rank: int, rank: int, world: int) -> list[int]:
        """Dataset indices of this rank's `per_rank` refill questions; every rank advances the cursor alike."""
        start = self.cursor + rank * per_rank
        indices = [self.at(start + i) for i in range(per_rank)]
        self.cursor += per_rank * world
        return indices

    def state_dict(self) -> dict:
        return {"refill_cursor": self.cursor, "size": self.size, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if state.get("size") != self.size or state.get("seed") != self.seed:
            logger.warning(
                "dynamic sampling: the checkpoint's refill stream was over %s questions with seed %s, "
                "this run's is over %d with seed %d: its cursor is kept, the order differs",
                state.get("size"),
                state.get("seed"),
                self.size,
                self.seed,
            )
        self.cursor = int(state["refill_cursor"])


def save_state(stream: RefillStream, folder: str | Path) -> Path:
    path = Path(folder) / STATE_NAME
    path.write_text(json.dumps(stream.state_dict()) + "\n", encoding="utf-8")
    return path


def load_state(stream: RefillStream, folder: str | Path) -> bool:
    """Loads the cursor saved in a checkpoint folder; False (and a warning) when the folder has none (a
    checkpoint of a run without dynamic sampling: refills start at the stream's beginning)."""
    path = Path(folder) / STATE_NAME
    if not path.is_file():
        logger.warning(
            "dynamic sampling: %s has no %s (saved without dynamic sampling): refills start from the "
            "beginning of their stream",
            folder,
            STATE_NAME,
        )
        return False
    stream.load_state_dict(json.loads(path.read_text(encoding="utf-8")))
    return True


def flat_groups(rewards: torch.Tensor, group_size: int) -> list[bool]:
    """Per group of `group_size` consecutive rewards: True when they are all equal, as the advantages see it
    (`group_advantages(...).zero_std`, so `frac_reward_zero_std` counts exactly these groups); NaN rewards
    (unscorable) are left out, and a group with fewer than two scorable rewards is flat."""
    from ground_r1.trainer.advantages import group_advantages

    return group_advantages(rewards, group_size).zero_std.view(-1, group_size)[:, 0].tolist()


def refill_questions(kept_per_rank: Sequence[int], target: int, kept: int, rolled: int) -> int:
    """Questions each rank rolls in the next refill (0: no rank is short). `kept_per_rank`: informative groups
    per rank so far; `kept` / `rolled`: over all ranks, this step."""
    short = max(target - k for k in kept_per_rank)
    if short <= 0:
        return 0
    if kept <= 0:
        return target
    return max(short, min(target, math.ceil(short * rolled / kept)))


@dataclass
class GroupSelection:
    """Which rolled groups each rank trains on. `flat[k][r][g]`: rollout k (0 = the main batch), rank r, group g."""

    kept: list[list[tuple[int, int]]]  # per rank: (rollout, group) in rolled order, at most `target`
    target: int
    flat: list[list[list[bool]]] = field(repr=False)

    @property
    def groups_rolled(self) -> int:
        return sum(len(groups) for rollout in self.flat for groups in rollout)

    @property
    def groups_dropped(self) -> int:
        return sum(sum(groups) for rollout in self.flat for groups in rollout)

    @property
    def groups_kept(self) -> int:
        return sum(len(k) for k in self.kept)

    @property
    def groups_surplus(self) -> int:
        """Informative groups rolled past a rank's target (discarded)."""
        return self.groups_rolled - self.groups_dropped - self.groups_kept

    @property
    def shortfall(self) -> int:
        """Groups missing to the target, summed over ranks."""
        return sum(self.target - len(k) for k in self.kept)


def select_groups(flat: list[list[list[bool]]], target: int) -> GroupSelection:
    """Each rank keeps its first `target` informative groups, in rolled order (module doc)."""
    world = len(flat[0]) if flat else 0
    kept: list[list[tuple[int, int]]] = [[] for _ in range(world)]
    for k, rollout in enumerate(flat):
        if len(rollout) != world:
            raise ValueError(f"rollout {k} has groups of {len(rollout)} ranks, the first had {world}")
        for r, groups in enumerate(rollout):
            for g, is_flat in enumerate(groups):
                if not is_flat and len(kept[r]) < target:
                    kept[r].append((k, g))
    return GroupSelection(kept=kept, target=target, flat=flat)


def keep_all(groups_per_rank: int, world: int) -> GroupSelection:
    """The selection without dynamic sampling: every group of the main batch."""
    flat = [[[False] * groups_per_rank for _ in range(world)]]
    return GroupSelection(
        kept=[[(0, g) for g in range(groups_per_rank)] for _ in range(world)], target=groups_per_rank, flat=flat
    )
