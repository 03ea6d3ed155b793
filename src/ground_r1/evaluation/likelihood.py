"""V*'s official likelihood scoring (penghao-wu/vstar @ 4ede664, ``vstar_bench_eval.py``; issue 18).

The official score is generation-free: the user turn is the image and the question **without** options; for each
option sentence the assistant turn is set to that sentence, and the option's loss is the **mean token
cross-entropy of the assistant tokens** (the option and its closing end-of-turn token: "everything after the
question prompt"). The option with the lowest loss is chosen; the item is right when it is option 0 (the file
puts the correct one first), so option order does not matter. Ties go to the earliest option (``np.argmin``).

:func:`mean_token_loss` and :func:`choose_option` are the rule; :func:`option_losses` runs it with a Qwen2.5-VL
model through the rollout's chat codec (its chat template, ``add_vision_id``), one forward pass per option;
:func:`run_likelihood` scores a benchmark's items into resumable prediction shards (``--protocol likelihood`` of
``ground_r1.cli.evaluate``, V* only). After the crop loop
(``--protocol ground_r1_likelihood``): the rollout runs on the question, then each option replaces its last
assistant turn, scored given the final context (the original image and every crop fed back), labelled so.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

__all__ = [
    "LIKELIHOOD_RULE",
    "choose_option",
    "crop_loop_option_losses",
    "final_context",
    "likelihood_record",
    "mean_token_loss",
    "option_losses",
    "run_likelihood",
]

LIKELIHOOD_RULE = "V* official likelihood (vstar_bench_eval.py @ 4ede664: lowest mean option-token loss)"


def mean_token_loss(logits: Any, ids: Sequence[int], start: int) -> float:
    """Mean cross-entropy (nats) of ``ids[start:]``, each predicted by the logits of the position before it.

    ``logits``: ``[len(ids), vocab]`` (a torch tensor). Raises ValueError when there is no token to score.
    """
    import torch

    if not 0 < start < len(ids):
        raise ValueError(f"no option token to score: start {start} of {len(ids)} ids")
    targets = torch.as_tensor(list(ids[start:]), dtype=torch.long, device=logits.device)
    predicted = logits[start - 1 : len(ids) - 1].float()
    return float(torch.nn.functional.cross_entropy(predicted, targets, reduction="mean"))


def choose_option(losses: Sequence[float]) -> int:
    """The index of the lowest loss (the earliest on ties, as ``np.argmin``).

    Raises:
        ValueError: no losses, or a non-finite one (a failure is never a choice).
    """
    if not losses:
        raise ValueError("no option losses")
    if not all(math.isfinite(x) for x in losses):
        raise ValueError(f"non-finite option loss in {list(losses)}")
    return min(range(len(losses)), key=lambda i: (losses[i], i))


def option_losses(model: Any, codec: Any, image: Any, question: str, options: Sequence[str]) -> list[float]:
    """The mean token loss of each option as the assistant's reply to ``[image, question]`` (module doc)."""
    (encoded,) = codec.encode_images([image])
    prompt = codec.encode_chat(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}], [encoded]
    )
    return _losses_of(model, codec, prompt, [encoded], options)


def _losses_of(model: Any, codec: Any, context: list[int], images: list, options: Sequence[str]) -> list[float]:
    """Mean token loss of each option appended (with its end-of-turn token) to ``context`` ids and its images."""
    import torch

    from ground_r1.rollout.generation import GenerationRequest, collate_requests

    device = next(model.parameters()).device
    losses = []
    for option in options:
        ids = list(context) + codec.tokenizer(option, add_special_tokens=False)["input_ids"] + [codec.eos_token_id]
        batch = collate_requests(
            [GenerationRequest(ids, list(images))], codec.pad_token_id, codec.image_token_id, device
        )
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(model.dtype)
        with torch.no_grad():
            logits = model(**batch).logits[0]
        losses.append(mean_token_loss(logits[-len(ids) :], ids, len(context)))
    return losses


def final_context(trajectory: Any, eos_token_id: int) -> list[int]:
    """The ids the crop loop's last assistant turn was generated from: every id of the trajectory before that turn
    (its sampled ids and the end-of-turn token closing them, sampled or injected, are removed)."""
    last = trajectory.turns[-1]
    closed = bool(last.ids) and last.ids[-1] == eos_token_id
    ids = trajectory.context_ids()
    return ids[: len(ids) - len(last.ids) - (0 if closed else 1)]


def crop_loop_option_losses(model: Any, codec: Any, trajectory: Any, options: Sequence[str]) -> list[float]:
    """The mean token loss of each option in place of the crop loop's last turn, given the final context (the
    original image and every crop fed back)."""
    return _losses_of(model, codec, final_context(trajectory, codec.eos_token_id), trajectory.images, options)


def likelihood_record(key: str, losses: Sequence[float], gold: int) -> dict[str, Any]:
    """The prediction record of one likelihood-scored item (options in the file's order, ``gold`` its index)."""
    chosen = choose_option(losses)
    return {
        "key": key,
        "status": "ok",
        "protocol": "likelihood",
        "option_losses": [float(x) for x in losses],
        "chosen": chosen,
        "gold": gold,
        "turns": [],
    }


def run_likelihood(
    spec: Any,
    items: Sequence[Any],
    model: Any,
    processor: Any,
    output_dir: Any,
    config: Any,
    *,
    rank: int = 0,
    world_size: int = 1,
    rollout: Any = None,
) -> int:
    """Score this process's share of ``items`` (``items[rank::world_size]``) by :func:`option_losses` into its
        prediction shard, skipping done keys (resumable, as the generative protocols); returns records written. An
        unreadable image is an error record, never a choice. ``spec.likelihood_options(item)`` gives (question,
        options in the file's order, gold index). With ``rollout`` (an :class:`ground_r1.evaluation.inference.Engine` of
    the ``ground_r1`` protocol) the crop loop runs first on the question (greedy, as the generative protocol) and the
    options are scored given its final context (:func:`crop_loop_option_losses`); the record keeps the trajectory, so
    its boxes are scored too.

        ``config``: the run's :class:`ground_r1.evaluation.identity.InferenceConfig` (protocol ``likelihood`` or
        ``ground_r1_likelihood``), checked against the folder's as every protocol's (a resume with other settings is
        refused).

        Raises:
            ValueError: the output folder holds predictions made with other settings.
    """
    from pathlib import Path

    from ground_r1.data.images import ImageLoadError, load_image
    from ground_r1.evaluation.identity import check_identity
    from ground_r1.evaluation.predictions import PredictionWriter, done_keys, shard_path
    from ground_r1.rollout.conversation import ConversationCodec

    out = Path(output_dir)
    check_identity(out, config)
    done = done_keys(out)
    todo = [it for it in list(items)[rank::world_size] if it.key not in done]
    if not todo:
        return 0
    codec = ConversationCodec(processor, add_vision_id=True)
    with PredictionWriter(shard_path(out, rank)) as writer:
        for item in todo:
            question, options, gold = spec.likelihood_options(item)
            try:
                image = load_image(item.image)
            except ImageLoadError as exc:
                writer.write({"key": item.key, "status": "error", "protocol": "likelihood", "error": str(exc)})
                continue
            if rollout is None:
                writer.write(likelihood_record(item.key, option_losses(model, codec, image, question, options), gold))
                continue
            from ground_r1.evaluation.inference import EvalItem

            (trajectory,) = rollout.run_batch([EvalItem(item.key, spec.name, question, str(item.image))], [image])
            record = likelihood_record(
                item.key, crop_loop_option_losses(model, rollout.codec, trajectory, options), gold
            )
            record.update(after="ground_r1", turns=trajectory.turn_texts, trajectory=trajectory.to_record())
            writer.write(record)
        return writer.written
