"""Evaluation inference (SPEC §7): four protocols, batched generation, data-parallel shards, resume, progress.

Protocols (what the model sees; every generate call uses explicit greedy sampling, SPEC §2: repetition
penalty 1.05, never the checkpoint's generation_config):

- ``ground_r1``: the multi-round rollout of training (:class:`ground_r1.rollout.runner.Rollout`), one
  trajectory per question (``TreePlan(1, 1)``); each round generates all unfinished items of the batch at once.
- ``baseline``: one turn, ``[image, prompt]`` with a prompt class of :data:`ground_r1.prompt.BASELINE_TEMPLATES`.
- ``ground_sft``: the fixed two turns of SPEC §8: ask for a box, crop the original image around it (28-px
  minimum, shifted inside; the full image when no valid box, as in the rollout), then ask for the answer with
  ``[crop, prompt]``. The two-turn conversation is rendered through the chat template, as the SFT model was
  trained on it.
- ``refcoco``: one turn, Qwen's grounding prompt per referring expression (items from :mod:`.refcoco`).

Every chat is rendered by the processor's own template with ``add_vision_id=True`` (SPEC §2), image
placeholders expanded to the processor's grid size. Each process takes the items ``items[rank::world_size]``
(a stable assignment, so processes never race on a key), skips the keys already done
(:func:`ground_r1.evaluation.predictions.done_keys`) and appends its records to its own shard as each batch
finishes. Rank 0 merges the shards after a barrier.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ground_r1.boxes import crop_image, parse_turn_box
from ground_r1.data.images import ImageLoadError, load_image
from ground_r1.evaluation.identity import InferenceConfig, check_identity
from ground_r1.evaluation.predictions import PredictionWriter, done_keys, merge_predictions, shard_path
from ground_r1.prompt import (
    baseline_text,
    ground_sft_answer_text,
    ground_sft_box_text,
    grounding_text,
    refcoco_text,
)
from ground_r1.rollout.answer import extract_answer, has_answer, strip_answer_tags
from ground_r1.rollout.conversation import ConversationCodec, EncodedImage
from ground_r1.rollout.generation import GeneratedTurn, GenerationRequest, HFGenerator
from ground_r1.rollout.runner import Rollout, RolloutConfig, RolloutQuestion
from ground_r1.rollout.sampling import TreePlan
from ground_r1.rollout.trajectory import Trajectory, Turn

logger = logging.getLogger(__name__)


@dataclass
class EvalItem:
    """One thing to answer. ``question`` is the VisCoT question or the RefCOCO expression; ``fields`` are copied
    into the prediction record (problem, solution, bboxs, sizes, ids...)."""

    key: str
    dataset: str
    question: str
    image: str
    fields: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ items


def limit_per_dataset(items: Sequence[Any], limit: int | None, dataset_of: Callable[[Any], str]) -> list[Any]:
    """The first ``limit`` items of each dataset, in file order (SPEC §7: 150 per VisCoT sub-dataset).
    ``None`` or 0 keeps everything."""
    if not limit:
        return list(items)
    counts: dict[str, int] = {}
    kept = []
    for item in items:
        name = dataset_of(item)
        if counts.get(name, 0) < limit:
            counts[name] = counts.get(name, 0) + 1
            kept.append(item)
    return kept


# The VisCoT benchmark as a run's identity names it: bump the version when its items or prompts change.
VISCOT_BENCHMARK = "viscot"
VISCOT_VERSION = "1"

EVAL_SKIP_HINT = (
    "Fix these records, or evaluate without --no-skip_bad_records: the evaluation then skips them (each listed "
    "in skipped_records.jsonl in the output folder, counted in the table) and exits 4."
)


@dataclass
class LoadedItems:
    """What :func:`read_viscot_items` read: the items to evaluate and the validation result of the whole file
    (``loaded.issues``: why each skipped record was skipped; ``loaded.box_notes``: unusable evidence boxes)."""

    items: list[EvalItem]
    loaded: Any  # ground_r1.data.records.LoadedRecords

    @property
    def records_read(self) -> int:
        return len(self.loaded.records) + self.loaded.skipped


def read_viscot_items(
    path: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    path_prefix: str | None = None,
    max_items_per_dataset: int | None = 150,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    skip_bad_records: bool = True,
) -> LoadedItems:
    """VisCoT benchmark items (SPEC §6 records). Every record of the file is validated first; a record that
    cannot be evaluated is skipped (``skip_bad_records``, the evaluation default) or, without it, every problem
    is raised at once (:class:`ground_r1.data.records.RecordValidationError`). A record with an unusable
    evidence box is evaluated (its box metric is n/a). Relative image paths are taken from ``image_root``, else
    from the data file's folder; ``max_items_per_dataset`` keeps the first items of each sub-dataset."""
    from ground_r1.data.records import load_viscot_records

    sizes = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
    root = image_root if image_root is not None else Path(path).resolve().parent
    loaded = load_viscot_records(
        path, image_root=root, path_prefix=path_prefix, skip_bad_records=skip_bad_records, hint=EVAL_SKIP_HINT, **sizes
    )
    records = limit_per_dataset(loaded.records, max_items_per_dataset, lambda r: r["dataset"])
    keep = (
        "problem",
        "solution",
        "bboxs",
        "width",
        "height",
        "input_width",
        "input_height",
        "split",
        "problem_id",
        "box_issues",
    )
    items = [
        EvalItem(
            key=r["key"],
            dataset=r["dataset"],
            question=r["problem"],
            image=r["image"],
            fields={k: r.get(k) for k in keep if k != "box_issues" or r.get(k)},
        )
        for r in records
    ]
    return LoadedItems(items, loaded)


def load_viscot_items(
    path: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    path_prefix: str | None = None,
    max_items_per_dataset: int | None = 150,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    skip_bad_records: bool = False,
) -> list[EvalItem]:
    """The items of :func:`read_viscot_items` (strict by default: a bad record raises)."""
    return read_viscot_items(
        path,
        image_root=image_root,
        path_prefix=path_prefix,
        max_items_per_dataset=max_items_per_dataset,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        skip_bad_records=skip_bad_records,
    ).items


# ------------------------------------------------------------------------------------------- generation


def chat_request(codec: ConversationCodec, messages: list[dict], images: list[EncodedImage]) -> GenerationRequest:
    """Token ids of a chat (processor's template, ``add_vision_id`` as the codec) + generation prompt, each
    image placeholder expanded to its grid's token count, as the processor itself expands them."""
    return GenerationRequest(codec.encode_chat(messages, images), list(images))


def _user(text: str) -> dict:
    return {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def _turn(codec: ConversationCodec, generated: GeneratedTurn) -> Turn:
    text = codec.decode_turn(generated.ids)
    return Turn(
        text=text, ids=list(generated.ids), hit_token_limit=generated.hit_token_limit, is_answer=has_answer(text)
    )


def _trajectory(
    turns: list[Turn], input_size: tuple[int, int], original_size: tuple[int, int], codec: ConversationCodec
) -> Trajectory:
    """A fixed-turn conversation as a :class:`Trajectory`, so every protocol's record has one shape."""
    sampled = sum(len(t.ids) for t in turns)
    return Trajectory(
        question_index=0,
        branch=0,
        prompt_ids=[],
        input_size=input_size,
        original_size=original_size,
        completion_mask=[1] * sampled,
        turns=turns,
        coordinates=codec.coordinates,
        model_family=codec.family.name,
        finish_reason="token_limit" if turns[-1].hit_token_limit else "stop",
    )


class Engine:
    """A model, its codec and a greedy generator: runs one batch of items under the configured protocol."""

    def __init__(self, model, processor, config: InferenceConfig):
        self.config = config
        self.codec = ConversationCodec(processor, add_vision_id=True, coordinates=config.coordinates)
        self.generator = HFGenerator(model, self.codec, record_logprobs=False)

    def prompt_text(self, item: EvalItem, input_size: tuple[int, int] | None = None) -> str:
        """The first user turn's text (for ground_r1 the SPEC §2 template needs the input size)."""
        protocol = self.config.protocol
        if protocol == "baseline":
            return baseline_text(item.question, self.config.prompt_class)
        if protocol == "ground_sft":
            return ground_sft_box_text(item.question)
        if protocol == "refcoco":
            return refcoco_text(item.question)
        if input_size is None:
            return item.question
        return grounding_text(item.question, *input_size, self.codec.coordinates)

    def run_batch(self, items: list[EvalItem], images: list) -> list[Trajectory]:
        """One trajectory per item (same order). ``images`` are the original RGB images."""
        if self.config.protocol == "ground_r1":
            return self._ground_r1(items, images)
        encoded = self.codec.encode_images(images)
        requests = [chat_request(self.codec, [_user(self.prompt_text(it))], [enc]) for it, enc in zip(items, encoded)]
        first = self._generate(requests)
        turns = [[_turn(self.codec, g)] for g in first]
        if self.config.protocol == "ground_sft":
            self._ground_sft_second_turn(items, images, encoded, turns)
        return [_trajectory(t, enc.size, img.size, self.codec) for t, enc, img in zip(turns, encoded, images)]

    def _generate(self, requests: list[GenerationRequest]) -> list[GeneratedTurn]:
        return self.generator(requests, self.config.sampling, self.config.sampling.max_new_tokens)

    def _ground_r1(self, items: list[EvalItem], images: list) -> list[Trajectory]:
        cfg = self.config
        rollout = Rollout(
            self.codec,
            self.generator,
            RolloutConfig(
                max_turns=cfg.max_turns,
                max_completion_length=cfg.max_completion_length,
                min_crop_size=cfg.min_crop_size,
                max_aspect_ratio=cfg.max_aspect_ratio,
                crop_fallback=cfg.crop_fallback,
                box_parse=cfg.box_parse,
            ),
        )
        questions = [RolloutQuestion(it.question, img) for it, img in zip(items, images)]
        return rollout.run(questions, TreePlan(1, 1), cfg.sampling)

    def _ground_sft_second_turn(self, items, images, encoded, turns: list[list[Turn]]) -> None:
        """SPEC §8 turn 2: crop around the turn-1 box (the family's frame -> original), ask for the answer."""
        crops = []
        for first, enc, img in zip((t[0] for t in turns), encoded, images):
            frame = self.codec.frame(enc.size)
            parsed = parse_turn_box(first.text, self.config.box_parse)
            if parsed is not None:
                first.box, first.box_source = parsed.box, parsed.source
                first.box_original = frame.to_original(parsed.box, img.size)
            window = frame.crop_window(parsed.box if parsed else None, img.size, min_size=self.config.min_crop_size)
            first.crop_window, first.crop_is_fallback = tuple(window.box), window.is_fallback
            crops.append(crop_image(img, window))
        crop_encoded = self.codec.encode_images(crops)
        requests = [
            chat_request(
                self.codec,
                [
                    _user(ground_sft_box_text(it.question)),
                    _assistant(t[0].text),
                    _user(ground_sft_answer_text(it.question)),
                ],
                [enc, crop_enc],
            )
            for it, t, enc, crop_enc in zip(items, turns, encoded, crop_encoded)
        ]
        for t, generated in zip(turns, self._generate(requests)):
            t.append(_turn(self.codec, generated))


def prediction_record(item: EvalItem, trajectory: Trajectory, config: InferenceConfig, prompt: str) -> dict[str, Any]:
    """What is kept of one item: its fields, every turn, the trajectory (boxes, crop windows), the extracted
    answer of the final turn and the ground truth (SPEC §3 extraction, §7)."""
    record: dict[str, Any] = {
        "key": item.key,
        "status": "ok",
        "protocol": config.protocol,
        "dataset": item.dataset,
        "image": item.image,
        "question": item.question,
        **item.fields,
    }
    if config.protocol == "baseline":
        record["prompt_class"] = config.prompt_class
    record["prompt"] = prompt
    record["turns"] = trajectory.turn_texts
    record["answer"] = extract_answer(trajectory.final_text)
    if isinstance(item.fields.get("solution"), str):
        record["ground_truth"] = strip_answer_tags(item.fields["solution"])
    record["trajectory"] = trajectory.to_record()
    record["sampling"] = config.sampling.to_dict()
    return record


def error_record(item: EvalItem, config: InferenceConfig, error: str) -> dict[str, Any]:
    return {
        "key": item.key,
        "status": "error",
        "protocol": config.protocol,
        "dataset": item.dataset,
        "image": item.image,
        "error": error,
    }


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class InferenceSummary:
    assigned: int  # items of this process
    skipped: int  # already done (resume)
    written: int  # records written by this run (ok + errors)
    errors: int


def _load_images(batch: list[EvalItem], config: InferenceConfig, writer: PredictionWriter):
    ready, images, errors = [], [], 0
    for item in batch:
        try:
            images.append(load_image(item.image))
            ready.append(item)
        except ImageLoadError as exc:
            logger.error("%s: %s", item.key, exc)
            writer.write(error_record(item, config, str(exc)))
            errors += 1
    return ready, images, errors


def run_inference(
    items: list[EvalItem],
    make_engine: Callable[[], Engine],
    output_dir: str | os.PathLike[str],
    config: InferenceConfig,
    *,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
    on_batch_done: Callable[[int], None] | None = None,
) -> InferenceSummary:
    """Predict this process's share of ``items`` into ``predictions.rank{rank}.jsonl``, skipping done keys.

    ``make_engine`` is called only when something is left to do (a finished run loads no model);
    ``on_batch_done(batches_finished)`` is called after each batch's records are flushed.

    Raises:
        ValueError: duplicate item keys, or ``output_dir`` holds predictions made with other settings.
    """
    from tqdm.auto import tqdm

    keys = [it.key for it in items]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"duplicate item key {dup!r}: keys must be unique within a run")
    out = Path(output_dir)
    check_identity(out, config)
    mine = items[rank::world_size]
    done = done_keys(out)
    todo = [it for it in mine if it.key not in done]
    summary = InferenceSummary(assigned=len(mine), skipped=len(mine) - len(todo), written=0, errors=0)
    logger.info(
        "rank %d/%d: %d items, %d already done, %d to predict (%s protocol, batch %d)",
        rank,
        world_size,
        len(mine),
        summary.skipped,
        len(todo),
        config.protocol,
        config.batch_size,
    )
    if not todo:
        return summary
    engine = make_engine()
    bar = tqdm(
        total=len(mine),
        initial=summary.skipped,
        unit="item",
        desc=f"{config.protocol} [rank {rank}]",
        disable=not progress,
        dynamic_ncols=True,
        position=rank,
    )
    with PredictionWriter(shard_path(out, rank)) as writer, bar:
        for n, start in enumerate(range(0, len(todo), config.batch_size), start=1):
            batch = todo[start : start + config.batch_size]
            ready, images, errors = _load_images(batch, config, writer)
            if ready:
                for item, trajectory in zip(ready, engine.run_batch(ready, images)):
                    prompt = engine.prompt_text(item, trajectory.input_size)
                    writer.write(prediction_record(item, trajectory, config, prompt))
            summary.errors += errors
            summary.written = writer.written
            bar.update(len(batch))
            if on_batch_done is not None:
                on_batch_done(n)
    return summary


def finish(output_dir: str | os.PathLike[str], items: list[EvalItem]) -> Path:
    """Merge every shard into ``predictions.jsonl`` in item order (rank 0, after all processes finished)."""
    return merge_predictions(output_dir, [it.key for it in items])
