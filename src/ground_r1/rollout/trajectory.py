"""What a rollout produces: per trajectory, the token ids the loss trains on and everything needed to score it.

Layout of one trajectory (SPEC §2, §4):

    prompt_ids      = [system][user: Picture 1 + original image + template][assistant generation prompt]
    completion_ids  = [turn 1 sampled ... <|im_end|>][injected: \\n user Picture 2 + crop + template, asst prompt]
                      [turn 2 sampled ... <|im_end|>] ... [final turn sampled ... <|im_end|>]
    completion_mask = 1 exactly on sampled tokens (each turn's closing <|im_end|> included), 0 on injected ones
                      (the injected turns, and an <|im_end|> appended after a turn cut by the per-turn limit)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ground_r1.boxes import Box
from ground_r1.models.families.coordinates import INPUT_PIXELS, BoxFrame, box_frame
from ground_r1.rollout.conversation import EncodedImage


@dataclass
class Turn:
    """One assistant turn."""

    text: str  # decoded without special tokens
    ids: list[int]  # the sampled ids (closing eos included when it was sampled)
    hit_token_limit: bool = False  # cut by the per-turn budget: an eos was injected after it (mask 0)
    is_answer: bool = False  # contains <answer>: ends the trajectory
    box: Box | None = None  # parsed box, in the trajectory's frame (input-image pixels, or the 0-1000 grid)
    box_source: str | None = None  # "box_tag" | "release_regex"
    box_original: tuple[int, int, int, int] | None = None  # rescaled to original pixels, clamped, before widening
    crop_window: tuple[int, int, int, int] | None = None  # the crop fed back (original pixels), None if none
    crop_is_fallback: bool = False  # no valid box: the full image was fed back (release default)
    had_vision_token: bool = False  # sampled a vision special token anyway: replaced, turn masked, trajectory ended


@dataclass
class Trajectory:
    question_index: int
    branch: int  # index of the first-round grounding output it descends from (0..g1-1)
    prompt_ids: list[int]
    input_size: tuple[int, int]  # (width, height) of the resized model input of the original image
    original_size: tuple[int, int]  # (width, height) of the original image
    completion_ids: list[int] = field(default_factory=list)
    completion_mask: list[int] = field(default_factory=list)
    sampling_logps: list[float] = field(default_factory=list)  # aligned with completion_ids; 0.0 where injected
    images: list[EncodedImage] = field(default_factory=list)  # original first, then each crop in order
    turns: list[Turn] = field(default_factory=list)
    finish_reason: str | None = None  # "answer" | "max_turns" | "budget" | "no_box" | "vision_token"
    coordinates: str = INPUT_PIXELS  # the convention its boxes are written in (models.families.coordinates)
    model_family: str | None = None  # the family of the model that wrote it (models.families; RefCOCO's native syntax)

    @property
    def frame(self) -> BoxFrame:
        """The frame of this trajectory's boxes: the resized input (``input_pixels``) or the 0-1000 grid."""
        return box_frame(self.coordinates, self.input_size)

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    @property
    def num_turns(self) -> int:
        return len(self.turns)

    @property
    def turn_texts(self) -> list[str]:
        return [t.text for t in self.turns]

    @property
    def final_text(self) -> str:
        return self.turns[-1].text if self.turns else ""

    @property
    def num_sampled_tokens(self) -> int:
        return sum(self.completion_mask)

    def context_ids(self) -> list[int]:
        """What the next turn is generated from."""
        return self.prompt_ids + self.completion_ids

    def fork(self) -> "Trajectory":
        """An independent copy (the tree shares round-1 turns by value; tensors are immutable and shared)."""
        return replace(
            self,
            completion_ids=list(self.completion_ids),
            completion_mask=list(self.completion_mask),
            sampling_logps=list(self.sampling_logps),
            images=list(self.images),
            turns=[replace(t, ids=list(t.ids)) for t in self.turns],
        )

    def to_record(self) -> dict:
        """A JSON-able summary (evaluation predictions, galleries): every turn, its box and crop window."""
        return {
            "branch": self.branch,
            "finish_reason": self.finish_reason,
            "input_size": list(self.input_size),
            "original_size": list(self.original_size),
            "coordinates": self.coordinates,
            **({"model_family": self.model_family} if self.model_family else {}),
            "num_turns": self.num_turns,
            "num_sampled_tokens": self.num_sampled_tokens,
            "turns": [
                {
                    "text": t.text,
                    "hit_token_limit": t.hit_token_limit,
                    "is_answer": t.is_answer,
                    "box": list(t.box) if t.box is not None else None,
                    "box_source": t.box_source,
                    "box_original": list(t.box_original) if t.box_original is not None else None,
                    "crop_window": list(t.crop_window) if t.crop_window is not None else None,
                    "crop_is_fallback": t.crop_is_fallback,
                }
                for t in self.turns
            ],
        }
