"""The tiny *instruct* base: the project's own recipe that gives the tiny Qwen2.5-VL perception and grounding.

    python -m ground_r1.demo.instruct_recipe --config configs/sft/tiny_instruct.yaml --output_dir OUT
    bash scripts/build_tiny_instruct.sh                      # the same, into src/ground_r1/assets/tiny-instruct

Why (SPEC §1): Ground-R1 starts RL from an instruct model that already perceives and grounds
(Qwen2.5-VL was pretrained on grounding data such as RefCOCO). RL from a random tiny model learns nothing, so the
CPU demo starts from a base built here, on synthetic scenes of the zoom task's *generator* but never on the
zoom task itself:

- **grounding** (RefCOCO-like): full scene + "Locate the {kind} card ..." -> ``<think> the {kind} card
  </think><box>[x1,y1,x2,y2]</box>``, the box in the processor's input frame (SPEC §2);
- **crop reading** (perception): a crop of one card + "What colour is the dot in this image?" ->
  ``<think> the dot </think><answer>{colour}</answer>``.

The answers speak the tag vocabulary of the Ground-R1 prompt (a real instruct model follows a format asked for
in its prompt; ours is too small to learn a new format by RL in minutes). The shipped base (docs/demo.md) also
sees the Ground-R1 instruction around these generic questions (`template_fraction`), two-turn chats of two
independent tasks (`chat_fraction`), crop reading asked by the card's kind (`named_reading_fraction`) and the
generic dot question on a whole scene (`open_reading_fraction`). It is trained with box labels (the grounding
task's boxes), as Qwen2.5-VL was pretrained on grounding data: "no box label" holds for the RL stage only. What
the base never sees: the zoom questions ("What colour is the dot inside the orange card?"), a box-then-crop
conversation about one scene, or an evidence box as the answer to a zoom question. RL must connect the
question to a region, a crop to an answer, and learn to stop.

Two facts, measured on the tiny model (docs/demo.md), shape it:

- **auxiliary head**: at init the LM's attention is spread evenly, so almost no gradient reaches the vision tower
  to make a target stand out, and localisation never starts. A throwaway linear head on the *mean of the image
  tokens leaving the vision tower* (after the merger) predicts, for every card kind, its presence, its
  quadrant and its box; its loss is added for the first ``aux_steps`` steps, then the head is discarded (the
  saved model is a plain ``Qwen2_5_VLForConditionalGeneration``). With several cards per scene, the per-kind
  targets make the tower encode *which* colour is *where*;
- **curriculum**: stages from one large card to the target distribution (3 cards of 48-96 px on 448).

Grounding is also taken apart hop by hop (docs/demo.md), each hop with its own throwaway head, all off by
default so that a recipe config that does not ask for one reproduces bit for bit:

- ``aux_token_weight``: a head on *each* image token (``token_targets``: its card's kind and box), trained first
  in a ``vision_only`` stage; the mean-pooled head above cannot say which card is where once a scene holds
  several, and added to this one it hurt (``aux_scene_weight: 0``);
- ``aux_lm_box_weight`` / ``aux_lm_kind_weight``: at the answer's box-opening token, the LM's last hidden state
  regresses the named card's box and its layer-1 output classifies the named kind: the two hops (kind word ->
  that card's tokens) the digits are written from;
- ``head_diagnostics`` measures each hop at every evaluation.

Phases: ``continue_from`` starts a recipe from the model another recipe builds (the shipped base is two phases:
``tiny_instruct_grounding.yaml``, then ``tiny_instruct.yaml``); ``named_reading_fraction`` asks crop reading
about the pictured card by its kind (``NAMED_READING_QUESTIONS``: the phase-1 model read a crop near chance once the
question named a kind); ``open_reading_fraction`` asks the generic dot question on whole scenes, answered by a
look or a guess (``make_example``: without it the first-turn choice on the zoom question hardly ever varied).

Every image, crop or full scene, is seen at the preset's view (``min_pixels = max_pixels = 112*112``), as the
rollout will feed it; ``mm_token_type_ids`` come from the processor so M-RoPE positions are the same here, in
RL and in evaluation (the 1-D fallback breaks a model trained with 3-D positions).

The gate: held-out greedy grounding IoU>0.5 rate >= ``gate_iou50`` (0.8) on scenes of the target
distribution, written to ``eval.json``; the build fails (exit 1) when it is not met.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from ground_r1 import paths
from ground_r1.boxes import iou, original_to_input, parse_box
from ground_r1.prompt import grounding_text
from ground_r1.data.images import input_size
from ground_r1.demo import instruct_heads as heads
from ground_r1.demo.synthetic import (
    DETAIL_PALETTE,
    SyntheticConfig,
    generate_scene,
    record_rng,
)

logger = logging.getLogger(__name__)

DETAIL_NAMES = tuple(DETAIL_PALETTE)
GROUNDING_PROMPT = "Locate the {kind} card in this image and output the bbox coordinates."
CROP_READING_PROMPT = "What colour is the dot in this image?"
# The same two tasks asked through the Ground-R1 instruction (prompt.grounding_text): an instruct model must
# follow the tag format of a long instruction, which the tiny model cannot do without having seen one.
TEMPLATE_GROUNDING_QUESTION = "Where is the {kind} card?"
TEMPLATE_READING_QUESTION = "What colour is the dot?"
# Crop reading asked about the pictured card by its kind (Stage.named_reading_fraction). Measured (docs/demo.md): a
# base that only ever read crops under kind-free questions read a crop at chance once a kind word was in the question
# (0.25-0.45 correct, 1.00 without it), so RL's box-then-answer earned no more than answering at once. None of these
# is the zoom question, and the picture is always the card's crop, never a scene.
NAMED_READING_QUESTIONS = (
    "What colour is the dot on this {kind} card?",
    "This is the {kind} card. What colour is its dot?",
    "Read the colour of the dot on the {kind} card shown.",
)


def grounding_answer(kind: str, box: Sequence[int]) -> str:
    return f"<think> the {kind} card </think><box>[{','.join(str(int(v)) for v in box)}]</box>"


def crop_reading_answer(colour: str) -> str:
    return f"<think> the dot </think><answer>{colour}</answer>"


@dataclass(frozen=True)
class Stage:
    """One curriculum stage: scenes drawn with these knobs for ``steps`` optimiser steps."""

    name: str
    steps: int
    num_referents: int
    card_size_range: tuple[int, int]
    template_fraction: float = 0.0  # share of examples whose prompt is the Ground-R1 instruction (see make_example)
    chat_fraction: float = 0.0  # share of rows that are two-turn chats of independent tasks (make_chat_example)
    vision_only: bool = False  # train the vision tower through the auxiliary heads alone (no text, no LM loss)
    named_reading_fraction: float = 0.0  # share of crop readings asked by the card's kind (NAMED_READING_QUESTIONS)
    open_reading_fraction: float = 0.0  # share of single-turn crop readings asked on the whole scene (make_example)


@dataclass
class RecipeConfig:
    """configs/sft/tiny_instruct.yaml. Sizes in original pixels of the 448 canvas."""

    seed: int = 0
    geometry: str = "tiny"
    view_pixels: int = 112 * 112  # min_pixels = max_pixels: every image, crop or scene, is seen at 112x112
    stages: list[Stage] = field(default_factory=list)
    grounding_fraction: float = 0.6  # the rest is crop reading
    crop_margin_range: tuple[float, float] = (0.0, 0.3)
    crop_card_size_range: tuple[int, int] = (48, 96)  # crop reading always at the zoom task's card sizes
    batch_size: int = 32
    learning_rate: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 30
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    aux_steps: int = 400
    aux_box_weight: float = 10.0
    aux_scene_weight: float = 1.0  # the scene head on the image-token mean; 0 = off
    batch_by_length: bool = False  # each batch all short prompts, all Ground-R1 instructions, or all chats
    aux_token_weight: float = 0.0  # the per-token head (token_targets); 0 = off
    aux_lm_box_weight: float = 0.0  # the LM box head (instruct_heads.lm_box_loss) on the last hidden state; 0 = off
    aux_lm_kind_weight: float = 0.0  # the LM kind head on the first layer's output (needs aux_lm_box_weight > 0)
    aux_lm_coord_weight: float = 0.0  # the LM coordinate head at every digit position (needs aux_lm_box_weight > 0)
    eval_every: int = 500
    eval_size: int = 200
    gate_iou50: float = 0.8
    log_every: int = 50
    kinds: tuple[str, ...] = ("orange", "purple", "cyan", "magenta")
    # Start from the model another recipe builds (a path relative to this YAML, or inline), with this recipe's own
    # optimizer, schedule and fresh heads: a later phase (e.g. new prompts) without rebuilding, or retuning, the
    # earlier one. The build makes (or reuses) that model in OUTPUT_DIR.work/continue_from first.
    continue_from: "RecipeConfig | None" = None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "RecipeConfig":
        return cls.from_dict(yaml.safe_load(Path(path).read_text()) or {}, Path(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: Path) -> "RecipeConfig":
        """``source``: the YAML file the keys come from (errors name it; a ``continue_from`` path is relative to it)."""
        raw = dict(raw)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{source}: unknown keys {unknown}; valid: {sorted(known)}")
        stages = [
            Stage(
                name=s["name"],
                steps=int(s["steps"]),
                num_referents=int(s["num_referents"]),
                card_size_range=tuple(s["card_size_range"]),
                template_fraction=float(s.get("template_fraction", 0.0)),
                chat_fraction=float(s.get("chat_fraction", 0.0)),
                vision_only=bool(s.get("vision_only", False)),
                named_reading_fraction=float(s.get("named_reading_fraction", 0.0)),
                open_reading_fraction=float(s.get("open_reading_fraction", 0.0)),
            )
            for s in raw.pop("stages", [])
        ]
        for key in ("crop_margin_range", "crop_card_size_range", "kinds"):
            if key in raw:
                raw[key] = tuple(raw[key])
        parent = raw.pop("continue_from", None)
        if isinstance(parent, str):
            parent_path = (source.parent / parent).resolve()
            if not parent_path.is_file():
                raise ValueError(f"{source}: continue_from: no recipe at {parent_path}")
            parent = cls.from_yaml(parent_path)
        elif isinstance(parent, dict):  # inline, as a build's recipe.yaml writes it
            parent = cls.from_dict(parent, source)
        elif parent is not None:
            raise ValueError(f"{source}: continue_from must be a recipe path or mapping, got {parent!r}")
        cfg = cls(stages=stages, continue_from=parent, **raw)
        if not cfg.stages:
            raise ValueError(f"{source}: 'stages' is empty; give at least one curriculum stage")
        return cfg

    def scaled(self, steps_scale: float) -> "RecipeConfig":
        """Every stage's steps (and ``aux_steps``, the warm-up) times ``steps_scale``, the recipe continued from too."""
        return dataclasses.replace(
            self,
            stages=[dataclasses.replace(s, steps=max(1, int(s.steps * steps_scale))) for s in self.stages],
            aux_steps=int(self.aux_steps * steps_scale),
            warmup_steps=max(1, int(self.warmup_steps * steps_scale)),
            continue_from=self.continue_from.scaled(steps_scale) if self.continue_from else None,
        )

    def with_seed(self, seed: int) -> "RecipeConfig":
        return dataclasses.replace(
            self, seed=seed, continue_from=self.continue_from.with_seed(seed) if self.continue_from else None
        )

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)


def scene_config(stage: Stage, cfg: RecipeConfig, seed: int) -> SyntheticConfig:
    """The zoom generator's knobs for a stage (dot, label, canvas as the zoom task draws them)."""
    return SyntheticConfig(
        seed=seed, num_referents=stage.num_referents, card_size_range=stage.card_size_range, kinds=cfg.kinds
    )


def target_stage(cfg: RecipeConfig) -> Stage:
    """The held-out evaluation distribution: the zoom task's default scenes (3 cards, 48-96 px)."""
    default = SyntheticConfig()
    return Stage("heldout", 0, default.num_referents, default.card_size_range)


@dataclass
class Example:
    """One training row: a conversation, its images in order, and per image the auxiliary targets."""

    messages: list[dict[str, Any]]
    images: list[Any]  # PIL images, in conversation order
    task: str  # "grounding" | "crop_reading" | "open_reading" | "chat"
    aux: list[np.ndarray | None]  # per image: scene targets [num_kinds, 6] (present, quadrant, box 0..1) or None
    aux_detail: list[int | None]  # per image: crop's dot colour (index in DETAIL_PALETTE order) or None
    aux_tokens: list[np.ndarray | None] = field(default_factory=list)  # per image: token_targets(...) or None
    target_box: tuple[int, int, int, int] | None = None  # input frame (grounding)
    target_frame: tuple[int, int] | None = None  # that frame's (width, height)
    target_kind: int | None = None  # grounding: index of the named card's kind in cfg.kinds
    answer: str = ""

    @property
    def image(self) -> Any:
        return self.images[0]


def _aux_targets(scene, kinds: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(kinds), 6), dtype=np.float32)
    for ref in scene.referents:
        k = kinds.index(ref.kind)
        x1, y1, x2, y2 = ref.box
        cx, cy = (x1 + x2) / 2 / scene.width, (y1 + y2) / 2 / scene.height
        out[k] = (
            1.0,
            int(cx >= 0.5) + 2 * int(cy >= 0.5),
            x1 / scene.width,
            y1 / scene.height,
            x2 / scene.width,
            y2 / scene.height,
        )
    return out


MERGED_CELL = 28  # view pixels per LM image token: 14-px patches, 2x2 merged


def token_targets(scene, view_size: tuple[int, int], kinds: Sequence[str], min_cover: float = 0.1) -> np.ndarray:
    """Per LM image token (raster order of the merged grid of a ``view_size`` input), ``[class, x1, y1, x2, y2]``:
    class 0 for background, ``1 + kinds.index(kind)`` for the card covering the most of the token's cell (at
    least ``min_cover`` of the card's area), and that card's box normalised to 0..1. A card is smaller than a
    token's cell at the zoom task's sizes, so the mean head alone cannot say *which* card is *where* once a scene
    holds several; these targets make each token carry its own card's kind and box, which the LM then only has
    to pick by the kind word and copy."""
    width, height = view_size
    cols, rows = width // MERGED_CELL, height // MERGED_CELL
    sx, sy = scene.width / width, scene.height / height
    out = np.zeros((rows * cols, 5), dtype=np.float32)
    for r in range(rows):
        for c in range(cols):
            cx1, cy1 = c * MERGED_CELL * sx, r * MERGED_CELL * sy
            cx2, cy2 = cx1 + MERGED_CELL * sx, cy1 + MERGED_CELL * sy
            best, best_area = None, 0.0
            for ref in scene.referents:
                x1, y1, x2, y2 = ref.box
                area = max(0.0, min(x2, cx2) - max(x1, cx1)) * max(0.0, min(y2, cy2) - max(y1, cy1))
                if area >= min_cover * (x2 - x1) * (y2 - y1) and area > best_area:
                    best, best_area = ref, area
            if best is not None:
                x1, y1, x2, y2 = best.box
                out[r * cols + c] = (
                    1 + kinds.index(best.kind),
                    x1 / scene.width,
                    y1 / scene.height,
                    x2 / scene.width,
                    y2 / scene.height,
                )
    return out


def make_example(
    rng: np.random.Generator,
    stage: Stage,
    cfg: RecipeConfig,
    task: str,
    template: bool | None = None,
    open_reading: bool = True,
) -> Example:
    """One training or evaluation example. Crop reading draws its cards at ``crop_card_size_range`` whatever the
    stage: a big card's crop shrinks the dot below a view pixel, which no curriculum makes legible. ``template``:
    whether the prompt is the Ground-R1 instruction; None draws it with the stage's ``template_fraction``.

    ``open_reading`` (with the stage's ``open_reading_fraction``): a crop reading may instead be asked on the whole
    scene, through the Ground-R1 instruction, with the generic "What colour is the dot?". There the dot is illegible
    and the scene holds several, so the answer is, half and half, a look closer (a box of one card, drawn at random:
    no question names it) or a guess (one of the scene's dot colours). A real instruct model does both for a
    question it cannot settle; a tiny base trained only on decided tasks boxes or answers the zoom question
    deterministically per question (measured, docs/demo.md: 2 of 80 questions mixed in 8 samples at temperature 1),
    so GRPO's first round almost never compares the two."""
    if (
        task == "crop_reading"
        and open_reading
        and stage.open_reading_fraction > 0
        and rng.random() < stage.open_reading_fraction
    ):
        return _open_reading_example(rng, stage, cfg)
    if task == "crop_reading":
        stage = dataclasses.replace(stage, card_size_range=cfg.crop_card_size_range)
    image, scene = generate_scene(rng, scene_config(stage, cfg, 0))
    ref = scene.referents[int(rng.integers(0, len(scene.referents)))]
    detail = None
    if task == "grounding":
        in_size = input_size(scene.width, scene.height, cfg.view_pixels, cfg.view_pixels)
        box = original_to_input(ref.box, (scene.width, scene.height), in_size)
        answer = grounding_answer(ref.kind, box)
        prompt = GROUNDING_PROMPT.format(kind=ref.kind)
        aux, target = _aux_targets(scene, cfg.kinds), tuple(box)
        tokens = token_targets(scene, in_size, cfg.kinds)
    else:
        x1, y1, x2, y2 = ref.box
        mx = int(round(float(rng.uniform(*cfg.crop_margin_range)) * (x2 - x1)))
        my = int(round(float(rng.uniform(*cfg.crop_margin_range)) * (y2 - y1)))
        image = image.crop((max(0, x1 - mx), max(0, y1 - my), min(scene.width, x2 + mx), min(scene.height, y2 + my)))
        answer, prompt, aux, target, tokens = crop_reading_answer(ref.detail), CROP_READING_PROMPT, None, None, None
        detail = DETAIL_NAMES.index(ref.detail)
        if stage.named_reading_fraction > 0 and rng.random() < stage.named_reading_fraction:  # drawn only then
            prompt = NAMED_READING_QUESTIONS[int(rng.integers(0, len(NAMED_READING_QUESTIONS)))].format(kind=ref.kind)
    if template is None:
        template = stage.template_fraction > 0 and rng.random() < stage.template_fraction
    if template:
        reading = TEMPLATE_READING_QUESTION if prompt == CROP_READING_PROMPT else prompt
        question = TEMPLATE_GROUNDING_QUESTION.format(kind=ref.kind) if task == "grounding" else reading
        prompt = grounding_text(question, *input_size(image.width, image.height, cfg.view_pixels, cfg.view_pixels))
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]},
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
    ]
    return Example(
        messages,
        [image],
        task,
        aux=[aux],
        aux_detail=[detail],
        aux_tokens=[tokens],
        target_box=target,
        target_frame=tuple(in_size) if target is not None else None,
        target_kind=cfg.kinds.index(ref.kind) if target is not None else None,
        answer=answer,
    )


def _open_reading_example(rng: np.random.Generator, stage: Stage, cfg: RecipeConfig) -> Example:
    image, scene = generate_scene(rng, scene_config(stage, cfg, 0))
    in_size = input_size(scene.width, scene.height, cfg.view_pixels, cfg.view_pixels)
    ref = scene.referents[int(rng.integers(0, len(scene.referents)))]
    if rng.random() < 0.5:
        answer = grounding_answer(ref.kind, original_to_input(ref.box, (scene.width, scene.height), in_size))
    else:
        answer = crop_reading_answer(ref.detail)
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": grounding_text(TEMPLATE_READING_QUESTION, *in_size)},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
    ]
    return Example(
        messages,
        [image],
        "open_reading",
        aux=[_aux_targets(scene, cfg.kinds)],
        aux_detail=[None],
        aux_tokens=[token_targets(scene, in_size, cfg.kinds)],
        answer=answer,
    )


def make_chat_example(
    rng: np.random.Generator, stage: Stage, cfg: RecipeConfig, template: bool | None = None
) -> Example:
    """A two-turn chat of two *independent* tasks: grounding on one scene, then reading a crop of a card of
    another scene ("Picture 2"). It teaches a multi-turn, multi-image conversation (answer the latest request
    about the latest picture) without the zoom chain: the crop never comes from the first turn's box, and the
    questions are not the zoom question (measured: a base without it, asked in the RL context, boxes again after
    the crop instead of answering, so no trajectory ever earns accuracy)."""
    first = make_example(rng, stage, cfg, "grounding", template)
    second = make_example(rng, stage, cfg, "crop_reading", template, open_reading=False)
    return Example(
        first.messages + second.messages,
        first.images + second.images,
        "chat",
        aux=first.aux + second.aux,
        aux_detail=first.aux_detail + second.aux_detail,
        aux_tokens=first.aux_tokens + second.aux_tokens,
        answer=second.answer,
    )


def _lr_at(step: int, cfg: RecipeConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.total_steps - cfg.warmup_steps)
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.learning_rate * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cos)


def _collate(processor, examples: list[Example]):
    import torch

    from ground_r1.sft.collator import IGNORE_INDEX, encode_example

    encoded = [encode_example(processor, ex.messages, ex.images) for ex in examples]
    pad = processor.tokenizer.pad_token_id
    length = max(int(e["input_ids"].shape[0]) for e in encoded)
    out = {
        "input_ids": torch.full((len(encoded), length), pad, dtype=torch.long),
        "attention_mask": torch.zeros((len(encoded), length), dtype=torch.long),
        "labels": torch.full((len(encoded), length), IGNORE_INDEX, dtype=torch.long),
        "mm_token_type_ids": torch.zeros((len(encoded), length), dtype=torch.long),
    }
    for row, e in enumerate(encoded):
        n = int(e["input_ids"].shape[0])
        for key in ("input_ids", "attention_mask", "labels", "mm_token_type_ids"):
            out[key][row, :n] = e[key]
    out["pixel_values"] = torch.cat([e["pixel_values"] for e in encoded], dim=0)
    out["image_grid_thw"] = torch.cat([e["image_grid_thw"] for e in encoded], dim=0)
    return out


def evaluate(
    model, processor, cfg: RecipeConfig, size: int, seed: int, batch_size: int = 50, stage: Stage | None = None
) -> dict[str, float]:
    """Held-out greedy evaluation, by default on the target distribution (``stage`` to pick another): grounding
    (mIoU, IoU>0.5 rate, parse rate) and crop reading (accuracy). Scenes come from splits the training stream
    never draws (``heldout-*``)."""
    import torch

    stage = stage or target_stage(cfg)
    results: dict[str, list[float]] = {"iou": [], "parsed": [], "read": [], "centre": []}
    tok = processor.tokenizer
    for task in ("grounding", "crop_reading"):
        examples = [make_example(record_rng(seed, f"heldout-{task}", i), stage, cfg, task) for i in range(size)]
        for start in range(0, size, batch_size):
            chunk = examples[start : start + batch_size]
            texts = [
                processor.apply_chat_template(
                    ex.messages[:1], tokenize=False, add_generation_prompt=True, add_vision_id=True
                )  # as trained (encode_example) and as the rollout
                for ex in chunk
            ]
            processor.tokenizer.padding_side = "left"
            enc = processor(text=texts, images=[ex.image for ex in chunk], return_tensors="pt", padding=True)
            processor.tokenizer.padding_side = "right"
            with torch.no_grad():
                out = model.generate(
                    **enc,
                    do_sample=False,
                    max_new_tokens=40,
                    temperature=None,
                    top_k=None,
                    top_p=None,
                    repetition_penalty=1.0,
                )
            texts_out = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            for ex, text in zip(chunk, texts_out):
                if task == "grounding":
                    parsed = parse_box(text)
                    results["parsed"].append(float(parsed is not None))
                    results["iou"].append(iou(parsed.box, ex.target_box) if parsed is not None else 0.0)
                    results["centre"].append(float(parsed is not None and _holds_centre(parsed.box, ex.target_box)))
                else:
                    results["read"].append(float(text.strip() == ex.answer))
    ious = np.array(results["iou"])
    return {
        "grounding_miou": float(ious.mean()),
        "grounding_iou50": float((ious > 0.5).mean()),
        "grounding_parse_rate": float(np.mean(results["parsed"])),
        "grounding_centre_in_box": float(np.mean(results["centre"])),
        "crop_reading_accuracy": float(np.mean(results["read"])),
        "size": size,
    }


def _holds_centre(box: Sequence[float], target: Sequence[float]) -> bool:
    """The target's centre lies in ``box``: its crop then holds the card's dot (the zoom task's detail)."""
    cx, cy = (target[0] + target[2]) / 2, (target[1] + target[3]) / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def head_diagnostics(
    model, processor, head: heads.AuxHead, cfg: RecipeConfig, size: int = 64, seed: int = 1
) -> dict[str, float]:
    """Where grounding stands, hop by hop, on held-out target scenes (teacher-forced, one forward): how well the
    vision tokens hold their card's box (``token_box_mae_px``, the per-token head), how well the LM's hidden state
    at the box-opening token holds the named card's box (``lm_box_mae_px``) and kind (``lm_kind_accuracy``), in
    view pixels. A small token error with a large LM error points at the kind-word-to-tokens copy; a small LM
    error with poor greedy boxes points at writing the digits."""
    import torch

    examples = [
        make_example(record_rng(seed, "heldout-heads", i), target_stage(cfg), cfg, "grounding") for i in range(size)
    ]
    batch = _collate(processor, examples)
    store: dict = {}
    handle = model.model.visual.register_forward_hook(heads.vision_pool_hook(store))
    try:
        with torch.no_grad():
            out = model(**batch, output_hidden_states=True)
    finally:
        handle.remove()
    with torch.no_grad():
        return heads.hop_errors(
            head, store["pooler"], out.hidden_states, batch, examples, processor.tokenizer.convert_tokens_to_ids(">[")
        )


def _stage_at(cfg: RecipeConfig, step: int) -> tuple[Stage, int]:
    """The stage of global step `step` (0-based) and the step within it."""
    for stage in cfg.stages:
        if step < stage.steps:
            return stage, step
        step -= stage.steps
    raise IndexError(step)


_STAGE_DEFAULTS = {
    "template_fraction": 0.0,
    "chat_fraction": 0.0,
    "vision_only": False,  # keys added later
    "named_reading_fraction": 0.0,
    "open_reading_fraction": 0.0,
}
_CONFIG_DEFAULTS = {"continue_from": None}


def _normalized(config: dict[str, Any]) -> dict[str, Any]:
    """A recipe dict (a snapshot's, or a build's recipe.yaml) with the keys added since it was written filled in."""
    out = {**_CONFIG_DEFAULTS, **config}
    out["stages"] = [{**_STAGE_DEFAULTS, **s} for s in out["stages"]]
    if out["continue_from"] is not None:
        out["continue_from"] = _normalized(out["continue_from"])
    return out


def _resumable(old: dict[str, Any], new: dict[str, Any], step: int) -> bool:
    """A snapshot at `step` continues under `new` when everything that shaped steps 1..step is unchanged: every
    non-stage key (the LR schedule spans all steps), the total step count, and every stage that started at or
    before `step`. Later stages may differ: a build can be extended where it has not been yet."""
    old, new = _normalized(old), _normalized(new)
    if {k: v for k, v in old.items() if k != "stages"} != {k: v for k, v in new.items() if k != "stages"}:
        return False
    if sum(s["steps"] for s in old["stages"]) != sum(s["steps"] for s in new["stages"]):
        return False
    start = 0
    for a, b in zip(old["stages"], new["stages"]):
        if start >= step:
            return True
        if {k: v for k, v in a.items() if k != "steps"} != {k: v for k, v in b.items() if k != "steps"}:
            return False
        if b["steps"] != a["steps"]:  # the stage holding the snapshot was resized: fine if not below what is trained
            return step - start <= b["steps"]  # every later stage then starts at or after the snapshot
        start += a["steps"]
    return True


def _work_dir(output_dir: Path) -> Path:
    """Where a build keeps its resumable snapshot (beside the output, removed when the build completes)."""
    return output_dir.parent / (output_dir.name + ".work")


def train(cfg: RecipeConfig, output_dir: str | os.PathLike, base_model: str | None = None) -> dict[str, Any]:
    """Build the base from a fresh tiny model (or ``base_model``), train the curriculum, gate, save atomically.

    Every ``eval_every`` steps the full state (weights, head, optimizer, RNG, logs) is snapshotted to
    ``OUTPUT_DIR.work/``, with a loadable model folder ``OUTPUT_DIR.work/latest`` (to try RL on early); a killed
    build started again with the same config resumes there and produces the same result as an unbroken one (the
    example stream is a function of the step). A snapshot of another config is refused, not silently mixed.
    """
    import torch

    from ground_r1.models.loading import load_model, load_processor, save_processor
    from ground_r1.demo.tiny import build_tiny_model

    output_dir = Path(output_dir).resolve()
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    work = _work_dir(output_dir)
    work.mkdir(parents=True, exist_ok=True)
    snapshot_path = work / "snapshot.pt"
    config_text = yaml.safe_dump(_config_dict(cfg), sort_keys=True)
    if cfg.continue_from is not None and base_model is None:
        base_model = str(_build_continued_from(cfg.continue_from, work / "continue_from"))
    torch.manual_seed(cfg.seed)
    init = base_model or (
        str(work / "init")
        if (work / "init" / "config.json").is_file()
        else str(build_tiny_model(work / "init", seed=cfg.seed, geometry=cfg.geometry))
    )
    processor = load_processor(init, min_pixels=cfg.view_pixels, max_pixels=cfg.view_pixels)
    model = load_model(init, dtype=torch.float32)
    model.train()
    hidden = model.config.text_config.hidden_size
    head = heads.AuxHead(hidden, len(cfg.kinds), len(DETAIL_NAMES), cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params + head.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    log: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    step, elapsed = 0, 0.0
    task_rng = np.random.default_rng(cfg.seed)
    if snapshot_path.is_file():
        snap = torch.load(snapshot_path, weights_only=True)  # tensors, dicts, lists, numbers, strings only
        if not _resumable(yaml.safe_load(snap["config"]), yaml.safe_load(config_text), snap["step"]):
            raise ValueError(
                f"{snapshot_path} was written by a recipe config that differs in the steps already "
                f"trained (or in the schedule); delete {work} to start over"
            )
        model.load_state_dict(snap["model"])
        for name, layer in head.named_layers().items():
            layer.load_state_dict(snap[f"head_{name}"])
        opt.load_state_dict(snap["optimizer"])
        task_rng.bit_generator.state = snap["task_rng"]
        torch.set_rng_state(snap["torch_rng"])
        step, elapsed, log, evals = snap["step"], snap["elapsed"], snap["log"], snap["evals"]
        logger.info("instruct: resuming at step %d from %s", step, snapshot_path)

    def snapshot() -> None:
        state = {
            "config": config_text,
            "model": model.state_dict(),
            **{f"head_{name}": layer.state_dict() for name, layer in head.named_layers().items()},
            "optimizer": opt.state_dict(),
            "task_rng": task_rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "step": step,
            "elapsed": elapsed + time.time() - t0,
            "log": log,
            "evals": evals,
        }
        tmp = snapshot_path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, snapshot_path)
        latest = work / "latest"
        model.save_pretrained(latest)
        save_processor(processor, latest)

    store: dict = {}
    handle = model.model.visual.register_forward_hook(heads.vision_pool_hook(store))
    merge = model.model.visual.spatial_merge_size**2
    box_open_id = processor.tokenizer.convert_tokens_to_ids(">[")
    comma_id = processor.tokenizer.convert_tokens_to_ids(",")
    digit_ids = {processor.tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)}
    t0 = time.time()
    while step < cfg.total_steps:
        stage, stage_step = _stage_at(cfg, step)
        tasks = [
            "grounding" if task_rng.random() < cfg.grounding_fraction else "crop_reading" for _ in range(cfg.batch_size)
        ]
        template = None  # drawn per example
        if cfg.batch_by_length:  # one kind of row per batch: a long row no longer pads 31 short ones
            chat = stage.chat_fraction > 0 and task_rng.random() < stage.chat_fraction
            template = stage.template_fraction > 0 and task_rng.random() < stage.template_fraction
            tasks = ["chat"] * len(tasks) if chat else tasks
        elif stage.chat_fraction > 0:  # drawn only then: earlier stages keep their exact stream
            tasks = ["chat" if task_rng.random() < stage.chat_fraction else task for task in tasks]
        examples = []
        for i, task in enumerate(tasks):
            rng = record_rng(cfg.seed, f"train-{stage.name}", stage_step * cfg.batch_size + i)
            examples.append(
                make_chat_example(rng, stage, cfg, template)
                if task == "chat"
                else make_example(rng, stage, cfg, task, template)
            )
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg)
        if stage.vision_only:  # the vision tower and the heads alone: no text, no LM
            images = [image for ex in examples for image in ex.images]
            batch = dict(processor.image_processor(images=images, return_tensors="pt"))
            model.model.visual(batch["pixel_values"], grid_thw=batch["image_grid_thw"])
            loss, lm_loss = None, 0.0
        else:
            batch = _collate(processor, examples)
            out = model(**batch, output_hidden_states=cfg.aux_lm_box_weight > 0)
            loss, lm_loss = out.loss, out.loss.item()
        aux_loss = 0.0
        if step < cfg.aux_steps or stage.vision_only:
            sizes = (batch["image_grid_thw"].prod(-1) // merge).tolist()
            aux = heads.aux_loss(
                head, store["pooler"], sizes, examples, cfg.aux_box_weight, cfg.aux_scene_weight, cfg.aux_token_weight
            )
            if cfg.aux_lm_box_weight > 0 and not stage.vision_only:
                aux = aux + heads.lm_box_loss(
                    head,
                    out.hidden_states,
                    batch,
                    examples,
                    box_open_id,
                    cfg.aux_lm_box_weight,
                    cfg.aux_lm_kind_weight,
                    cfg.aux_lm_coord_weight,
                    comma_id,
                    digit_ids,
                )
            loss, aux_loss = aux if loss is None else loss + aux, aux.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
        opt.step()
        step += 1
        if step % cfg.log_every == 0 or step == 1:
            entry = {
                "step": step,
                "stage": stage.name,
                "lm_loss": round(lm_loss, 4),
                "aux_loss": round(aux_loss, 4),
                "grad_norm": round(grad_norm, 3),
                "lr": _lr_at(step - 1, cfg),
                "elapsed_s": round(elapsed + time.time() - t0, 1),
            }
            log.append(entry)
            logger.info("instruct: %s", json.dumps(entry))
        if cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.total_steps):
            model.eval()
            metrics = {"step": step, **evaluate(model, processor, cfg, min(cfg.eval_size, 100), seed=cfg.seed + 1)}
            if cfg.aux_token_weight > 0 and cfg.aux_lm_box_weight > 0:
                metrics.update(head_diagnostics(model, processor, head, cfg, seed=cfg.seed + 1))
            target = target_stage(cfg)
            if (stage.num_referents, stage.card_size_range) != (target.num_referents, target.card_size_range):
                current = evaluate(model, processor, cfg, 50, seed=cfg.seed + 1, stage=stage)
                metrics.update({f"{stage.name}/{k}": v for k, v in current.items() if k != "size"})
            model.train()
            evals.append(metrics)
            logger.info("instruct eval: %s", json.dumps(metrics))
            snapshot()
    handle.remove()
    model.eval()
    final = evaluate(model, processor, cfg, cfg.eval_size, seed=cfg.seed + 1)
    final["passed_gate"] = final["grounding_iou50"] >= cfg.gate_iou50
    final["gate_iou50"] = cfg.gate_iou50
    final["train_seconds"] = round(elapsed + time.time() - t0, 1)
    logger.info("instruct final: %s", json.dumps(final))

    staged = Path(tempfile.mkdtemp(prefix=output_dir.name + ".partial-", dir=output_dir.parent))
    try:
        model.save_pretrained(staged)
        save_processor(processor, staged)
        (staged / "recipe.yaml").write_text(yaml.safe_dump(_config_dict(cfg), sort_keys=False))
        (staged / "train_log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in log + evals))
        (staged / "eval.json").write_text(json.dumps(final, indent=2) + "\n")
        if cfg.continue_from is not None and base_model == str(work / "continue_from"):
            (staged / "continued_from").mkdir()
            for name in ("train_log.jsonl", "eval.json"):  # the earlier phase's record (its recipe is in recipe.yaml)
                shutil.copy2(work / "continue_from" / name, staged / "continued_from" / name)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(staged, output_dir)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    return final


def _build_continued_from(parent: RecipeConfig, parent_dir: Path) -> Path:
    """The model ``continue_from`` names: reused when ``parent_dir`` holds a finished build of exactly that recipe,
    built (resumably, in ``parent_dir``.work) otherwise. Its gate is not enforced: the final one is."""
    done = parent_dir / "recipe.yaml"
    finished = done.is_file() and (parent_dir / "eval.json").is_file()
    if finished and _normalized(yaml.safe_load(done.read_text())) == _normalized(_config_dict(parent)):
        logger.info("instruct: continuing from the finished build %s", parent_dir)
    else:
        logger.info("instruct: building the recipe continued from into %s", parent_dir)
        train(parent, parent_dir)
    return parent_dir


def _config_dict(cfg: RecipeConfig) -> dict[str, Any]:
    raw = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    for key, value in raw.items():
        if isinstance(value, tuple):
            raw[key] = list(value)
    raw["stages"] = [{**dataclasses.asdict(s), "card_size_range": list(s.card_size_range)} for s in cfg.stages]
    raw["continue_from"] = _config_dict(cfg.continue_from) if cfg.continue_from is not None else None
    return raw


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--config", default=str(paths.repo_root() / "configs" / "sft" / "tiny_instruct.yaml"))
    parser.add_argument("--output_dir", default=str(paths.tiny_instruct_dir()))
    parser.add_argument("--seed", type=int, default=None, help="overrides the config's seed")
    parser.add_argument(
        "--steps_scale", type=float, default=1.0, help="multiply every stage's steps (e.g. 0.05 for a smoke run)"
    )
    parser.add_argument("--no_gate", action="store_true", help="save even when the held-out gate is not met")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = RecipeConfig.from_yaml(args.config)
    if args.seed is not None:
        cfg = cfg.with_seed(args.seed)
    if args.steps_scale != 1.0:
        cfg = cfg.scaled(args.steps_scale)
    final = train(cfg, args.output_dir)
    print(json.dumps(final, indent=2))
    if not final["passed_gate"] and not args.no_gate:
        print(
            f"gate failed: held-out grounding IoU>0.5 rate {final['grounding_iou50']:.3f} < {cfg.gate_iou50}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
