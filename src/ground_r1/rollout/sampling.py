"""Sampling parameters and the tree plan of a rollout (SPEC §2).

Sampling is explicit at every generate call, in training and evaluation alike: nothing is inherited from a
checkpoint's generation_config (the real Qwen2.5-VL one is near-greedy: temperature 0.1, top_k 1, which would
make every GRPO advantage zero).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SamplingParams:
    """One turn's decoding. `max_new_tokens` is the per-turn budget (the release: 512 per round)."""

    do_sample: bool = True
    temperature: float = 1.0
    top_k: int | None = 50
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    max_new_tokens: int = 512

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.do_sample and self.temperature <= 0:
            raise ValueError(f"sampling needs temperature > 0, got {self.temperature} (use do_sample=False for greedy)")

    def to_dict(self) -> dict:
        return asdict(self)


# SPEC §2: release training = transformers defaults of the time (temperature 1.0, top_k 50, top_p 1.0, no penalty).
RELEASE_TRAIN_SAMPLING = SamplingParams(do_sample=True, temperature=1.0, top_k=50, top_p=1.0, repetition_penalty=1.0)
# SPEC §2: our evaluation default = greedy with the checkpoint's repetition penalty 1.05, named here, not inherited.
EVAL_GREEDY_SAMPLING = SamplingParams(do_sample=False, temperature=1.0, top_k=None, top_p=1.0, repetition_penalty=1.05)


@dataclass(frozen=True)
class TreePlan:
    """Round 1 samples `g1` grounding outputs per question; each is shared by `g2` trajectories (N = g1 x g2).

    Release: N=8, G1=2, G2=4. Paper: G1=4, G2=2. G1 = N (G2 = 1) is flat GRPO."""

    g1: int
    g2: int

    def __post_init__(self) -> None:
        if self.g1 < 1 or self.g2 < 1:
            raise ValueError(f"tree plan needs g1 >= 1 and g2 >= 1, got g1={self.g1}, g2={self.g2}")

    @property
    def n(self) -> int:
        return self.g1 * self.g2

    @classmethod
    def from_group(cls, num_generations: int, g1: int) -> "TreePlan":
        if g1 < 1 or num_generations % g1 != 0:
            raise ValueError(
                f"num_generations ({num_generations}) must be a multiple of g1 ({g1}): each first-round grounding "
                f"output is shared by num_generations / g1 trajectories"
            )
        return cls(g1=g1, g2=num_generations // g1)
