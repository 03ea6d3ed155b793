"""Held-out greedy evaluation of a Ground-R1 policy with its controls (issue 4; SPEC §1, §3).

On records whose dataset has a rule-based accuracy (e.g. the synthetic zoom task), one greedy trajectory per
question through the *training* rollout (`ground_r1.rollout.runner.Rollout`, TreePlan(1, 1)), under conditions:

- ``grounded``: the method as trained: boxes are cropped from the original image and fed back;
- ``no_crop``: the lower bound: every crop is replaced by the original image (the model can still ask, it just
  never sees more than the resized full view);
- ``gt_crop``: the upper bound: the box of the model's own first turn is replaced by the evidence box
  (``bboxs[0]``, converted to the model's input frame), so the model answers from the right crop; what is left
  is reading it. Only the box changes: a first turn in words the model would not write (an earlier version
  used a fixed "<think> the evidence </think>") measured the model's reaction to foreign text, not the crop;
- ``random_box`` (GIoU only, no model): a uniformly random box per question, the GIoU a policy that looks at
  random would score;
- ``whole_image_box``, ``centre_box`` (GIoU only, no model): the whole image as the box, and a centred box of half
  the image's width and height (224 px on the synthetic 448-px scenes): what boxing without looking scores;
- ``majority_answer`` (accuracy only, no model): always answering the most common answer of the evaluated
  questions (a prior the policy could learn without looking; an upper bound of any constant answer here).

Per condition: accuracy (the training rule, an answer is required), format reward, GIoU score of the first
grounding box against ``bboxs[0]`` (the training metric, SPEC §3), turns per trajectory, answered fraction.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from statistics import fmean
from typing import Any, Sequence

import numpy as np

from ground_r1.boxes import giou_score
from ground_r1.models.families.coordinates import INPUT_PIXELS, box_frame
from ground_r1.evaluation.uncertainty import mean_estimate
from ground_r1.rewards.giou import giou_metrics, refinement_metrics
from ground_r1.rewards.registry import AccuracyRegistry
from ground_r1.rewards.trl_functions import format_reward, make_accuracy_reward
from ground_r1.rollout.conversation import ConversationCodec
from ground_r1.rollout.generation import GeneratedTurn, GenerationRequest, HFGenerator
from ground_r1.rollout.runner import Rollout, RolloutConfig, RolloutQuestion
from ground_r1.rollout.sampling import EVAL_GREEDY_SAMPLING, SamplingParams, TreePlan
from ground_r1.trainer.metrics import grounding_boxes

logger = logging.getLogger(__name__)

CONDITIONS = ("grounded", "no_crop", "gt_crop", "random_box", "whole_image_box", "centre_box", "majority_answer")
MODEL_FREE = ("random_box", "whole_image_box", "centre_box", "majority_answer")


def evidence_box_text(
    record: dict[str, Any], input_size: tuple[int, int], original_size: tuple[int, int], coordinates: str = INPUT_PIXELS
) -> str:
    """The evidence box of ``gt_crop`` in the model's box frame (its input pixels, or the 0-1000 grid of a
    ``relative_1000`` family), as the box tags hold it: ``[x1,y1,x2,y2]``."""
    box = box_frame(coordinates, input_size).from_original(record["bboxs"][0], original_size)
    return f"[{','.join(str(v) for v in box)}]"


def with_evidence_box(model_text: str, box_text: str) -> str:
    """The model's own first turn with its (first) box replaced by ``box_text`` and anything after it dropped; a
    turn without a box keeps its reasoning and gets the box appended (or a minimal reasoning when it has none)."""
    box = re.search(r"<box>.*?</box>", model_text, re.S)
    if box:
        return model_text[: box.start()] + f"<box>{box_text}</box>"
    think = re.search(r"<think>.*?</think>", model_text, re.S)
    return (think.group(0) if think else "<think> the evidence </think>") + f"<box>{box_text}</box>"


class OracleFirstTurn:
    """A GenerateFn whose round 1 (one image in the context) is the model's own turn with the evidence box in
    place of its box (``with_evidence_box``); later rounds are the model's. Rows of round 1 come in question
    order (TreePlan(1, 1))."""

    def __init__(self, codec: ConversationCodec, model_fn, evidence_boxes: Sequence[str]):
        self.codec, self.model_fn, self.evidence_boxes = codec, model_fn, list(evidence_boxes)
        self.calls = 0

    def __call__(
        self, requests: list[GenerationRequest], sampling: SamplingParams, max_new_tokens: int
    ) -> list[GeneratedTurn]:
        self.calls += 1
        turns = self.model_fn(requests, sampling, max_new_tokens)
        if all(len(r.images) == 1 for r in requests) and len(requests) == len(self.evidence_boxes):
            out = []
            for turn, box in zip(turns, self.evidence_boxes):
                text = with_evidence_box(self.codec.tokenizer.decode(turn.ids, skip_special_tokens=True), box)
                ids = self.codec.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.codec.eos_token_id]
                out.append(GeneratedTurn(ids=ids))
            return out
        return turns


def random_box_scores(
    records: Sequence[dict[str, Any]], sizes: Sequence[tuple[int, int]], seed: int = 0
) -> list[float]:
    """GIoU scores of uniformly random boxes (two x's and two y's uniform over the image, sorted), one per record
    with an evidence box."""
    rng = np.random.default_rng(seed)
    scores = []
    for record, (w, h) in zip(records, sizes):
        if not record.get("bboxs"):
            continue
        xs, ys = np.sort(rng.uniform(0, w, 2)), np.sort(rng.uniform(0, h, 2))
        scores.append(giou_score((xs[0], ys[0], xs[1], ys[1]), record["bboxs"][0]))
    return scores


def random_box_giou(records: Sequence[dict[str, Any]], sizes: Sequence[tuple[int, int]], seed: int = 0) -> float:
    """Mean GIoU score of uniformly random boxes (:func:`random_box_scores`)."""
    scores = random_box_scores(records, sizes, seed)
    return fmean(scores) if scores else float("nan")


def fixed_box_scores(records: Sequence[dict[str, Any]], sizes: Sequence[tuple[int, int]], kind: str) -> list[float]:
    """GIoU scores of a box chosen without looking, one per record with an evidence box: ``whole`` (the image) or
    ``centre`` (centred, half the image's width and height)."""
    scores = []
    for record, (w, h) in zip(records, sizes):
        if not record.get("bboxs"):
            continue
        box = (0, 0, w, h) if kind == "whole" else (w / 4, h / 4, 3 * w / 4, 3 * h / 4)
        scores.append(giou_score(box, record["bboxs"][0]))
    return scores


def fixed_box_giou(records: Sequence[dict[str, Any]], sizes: Sequence[tuple[int, int]], kind: str) -> float:
    """Mean GIoU score of :func:`fixed_box_scores`."""
    scores = fixed_box_scores(records, sizes, kind)
    return fmean(scores) if scores else float("nan")


def majority_answer(records: Sequence[dict[str, Any]], registry: AccuracyRegistry) -> dict[str, Any]:
    """Accuracy of always answering the most common answer of `records` (ties: the first in sorted order),
    scored by the training rule."""
    counts: dict[str, int] = {}
    for r in records:
        counts[str(r["solution"])] = counts.get(str(r["solution"]), 0) + 1
    if not counts:
        return {"accuracy": float("nan"), "questions": 0}
    answer = min(counts, key=lambda a: (-counts[a], a))
    turns = [[f"<think> guess </think> <answer> {answer} </answer>"] for _ in records]
    scores = make_accuracy_reward(registry)(
        prompts=[r["problem"] for r in records],
        completions=[t[0] for t in turns],
        turns=turns,
        solution=[r["solution"] for r in records],
        dataset=[r["dataset"] for r in records],
    )
    scored = [s for s in scores if s is not None]
    return {
        "accuracy": fmean(scored) if scored else float("nan"),
        "accuracy_se": mean_estimate(scored).se,
        "answer": answer,
        "questions": len(records),
    }


# What each field of a condition's results measures (written into heldout_eval.json beside the numbers).
FIELD_MEANINGS = {
    "accuracy": "share of questions whose final answer is right under the training accuracy rule (no answer: wrong)",
    "format": "mean format reward per trajectory, 2 x well-formed turns / turns (SPEC §3), in [0, 2]",
    "giou_score": "mean (GIoU + 1) / 2 of the FIRST grounding box of each trajectory against the evidence box "
    "bboxs[0] (a metric, never a reward). Only the first box, which every condition gets from the "
    "model before any crop is fed back, so grounded and no_crop give the same value by design; "
    "gt_crop scores the evidence box itself (~1); random_box a uniformly random box",
    "no_box_rate": "share of trajectories whose first grounding turn held no parsable box",
    "turns_mean": "mean assistant turns per trajectory",
    "answered_frac": "share of trajectories that ended with an <answer> turn",
    "questions": "held-out questions evaluated",
    "giou_boxes": "first boxes scored by giou_score (trajectories with a box and a record with an evidence box)",
    "*_se": "standard error of the mean over questions (accuracy, format) or scored boxes (giou_score)",
    "refine_twice_frac": "share of trajectories (with an evidence box) whose first two grounding turns both hold a box",
    "refine_improved_frac": "among those, share whose second box scores a higher GIoU score than the first",
    "refine_worsened_frac": "among those, share whose second box scores lower than the first",
    "refine_gain": "among those, mean of (second box's GIoU score - first box's)",
    "answer": "majority_answer: the constant answer it gives (the most common of these questions)",
}
CONDITION_MEANINGS = {
    "grounded": "the method as trained: each box is cropped from the original image and fed back",
    "no_crop": "lower bound: every crop replaced by the original image (the model may still box, it never sees more)",
    "gt_crop": "upper bound: the box of the model's first turn replaced by the evidence box, so it answers from the "
    "right crop; what is left is reading it",
    "random_box": "GIoU of a uniformly random box per question (no model)",
    "whole_image_box": "GIoU of the whole image as the box (no model)",
    "centre_box": "GIoU of a centred box of half the image's width and height (no model; 224 px on 448-px scenes)",
    "majority_answer": "accuracy of always giving the most common answer of these questions (no model)",
    "base": "the model before RL (the run's starting point), grounded; written by training runs only",
}


def _summarise(trajectories, records: Sequence[dict[str, Any]], registry: AccuracyRegistry) -> dict[str, float]:
    turns = [t.turn_texts for t in trajectories]
    accuracy = make_accuracy_reward(registry)(
        prompts=[r["problem"] for r in records],
        completions=["\n".join(t) for t in turns],
        turns=turns,
        solution=[r["solution"] for r in records],
        dataset=[r["dataset"] for r in records],
    )
    fmt = format_reward(prompts=None, completions=["\n".join(t) for t in turns], turns=turns)
    first_boxes = [grounding_boxes(t)[:1] for t in trajectories]
    giou = giou_metrics(first_boxes, [r.get("bboxs") or [] for r in records])
    box_scores = [
        giou_score(boxes[0], r["bboxs"][0])
        for boxes, r in zip(first_boxes, records)
        if boxes and boxes[0] is not None and r.get("bboxs")
    ]
    scored = [a for a in accuracy if a is not None]
    refine = refinement_metrics(
        [grounding_boxes(t) for t in trajectories], [r.get("bboxs") or [] for r in records], prefix=""
    )
    acc, fmt_est, giou_est = mean_estimate(scored), mean_estimate(fmt), mean_estimate(box_scores)
    return {
        "accuracy": fmean(scored) if scored else float("nan"),
        "accuracy_se": acc.se,
        "format": fmean(fmt),
        "format_se": fmt_est.se,
        "giou_score": giou.get("giou/score", float("nan")),
        "giou_score_se": giou_est.se,
        "giou_boxes": len(box_scores),
        "no_box_rate": giou.get("giou/no_box_rate", float("nan")),
        "turns_mean": fmean(len(t) for t in turns),
        "answered_frac": fmean(t.finish_reason == "answer" for t in trajectories),
        "questions": len(records),
        **refine,
    }


def json_safe(value: Any) -> Any:
    """Results with NaN (e.g. no box at all, so no GIoU) as None: strict JSON has no NaN."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and value != value:
        return None
    return value


def evaluate_controls(
    model,
    processor,
    records: Sequence[dict[str, Any]],
    images: Sequence[Any],
    registry: AccuracyRegistry,
    rollout_config: RolloutConfig,
    conditions: Sequence[str] = CONDITIONS,
    sampling: SamplingParams = EVAL_GREEDY_SAMPLING,
    batch_size: int = 32,
    seed: int = 0,
    coordinates: str | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics per condition (module doc). ``images`` are the records' original images (PIL, RGB).
    ``coordinates``: the box convention (None: the model family's, as training's default).

    Raises:
        ValueError: an unknown condition (the valid ones are listed).
    """
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise ValueError(f"unknown control condition(s) {unknown}; valid: {', '.join(CONDITIONS)}")
    codec = ConversationCodec(processor, coordinates=coordinates)
    results: dict[str, dict[str, float]] = {}
    for condition in conditions:
        if condition in ("random_box", "whole_image_box", "centre_box"):  # model-free boxes
            sizes = [im.size for im in images]
            scores = (
                random_box_scores(records, sizes, seed)
                if condition == "random_box"
                else fixed_box_scores(records, sizes, "whole" if condition == "whole_image_box" else "centre")
            )
            estimate = mean_estimate(scores)
            results[condition] = {
                "giou_score": estimate.value if scores else float("nan"),
                "giou_score_se": estimate.se,
                "giou_boxes": len(scores),
                "questions": len(records),
            }
            continue
        if condition == "majority_answer":
            results[condition] = majority_answer(records, registry)
            continue
        config = replace(rollout_config, no_crop=condition == "no_crop")
        # gt_crop needs an evidence box: records without a usable one (a metric only, SPEC §3) sit it out.
        order = [i for i, r in enumerate(records) if condition != "gt_crop" or r.get("bboxs")]
        if not order:
            results[condition] = {"questions": 0}
            continue
        trajectories = []
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            questions = [RolloutQuestion(records[i]["problem"], images[i]) for i in chunk]
            generator = HFGenerator(model, codec, record_logprobs=False)
            if condition == "gt_crop":
                firsts = []
                for i, q in zip(chunk, questions):
                    prompt = codec.encode_prompt(q.question, q.image)
                    firsts.append(evidence_box_text(records[i], prompt.images[0].size, q.image.size, codec.coordinates))
                generator = OracleFirstTurn(codec, generator, firsts)
            batch = Rollout(codec, generator, config).run(questions, TreePlan(1, 1), sampling)
            for t in batch:
                t.question_index += start
            trajectories.extend(batch)
        results[condition] = _summarise(trajectories, [records[i] for i in order], registry)
        logger.debug("controls %s: %s", condition, results[condition])
    return results
