"""SFT collator: multi-image chat examples -> model inputs with labels on assistant tokens only (SPEC §8).

Supervised tokens (``labels`` = the token id) are, for every assistant turn, its content tokens AND its
closing eos token (``<|im_end|>`` for Qwen); everything else is ``-100``: the system prompt, user turns, image
tokens, and each assistant header (``<|im_start|>assistant\\n``), as in Qwen's official fine-tuning code.

How the assistant spans are found without hard-coding the template: the conversation is rendered by the
processor's chat template; for assistant message *i*, rendering ``messages[:i]`` with the generation prompt
gives the text up to the turn's first content character, and rendering ``messages[:i+1]`` gives the text
through the turn: the span is what lies between, up to and including the last eos token (the template's tail
after the eos, Qwen's ``"\\n"``, is not supervised). A template that is not prefix-stable is refused. The full
text goes through the processor once (``return_offsets_mapping``): image placeholders are expanded to their
patch counts there, so the spans are shifted by each expansion before tokens are matched to them by offsets;
a token straddling a span edge raises (it never happens with a byte-level BPE whose pre-tokenizer splits at
special tokens and newlines, but a silent mislabel would be worse).

The batch carries ``mm_token_type_ids`` (1 on image tokens): without them transformers 5 falls back to 1-D
positions for Qwen2.5-VL and training would disagree with evaluation (ENVIRONMENT.md). Sequences are padded on
the right; nothing is truncated (a cut through image tokens breaks the vision inputs): keep examples short
enough, or lower max_pixels.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from typing import Any

import torch

from ground_r1.data.images import ImageLoadError, load_image

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


def training_chat_template(processor) -> str | None:
    """The template SFT renders with when the processor's family names a training template, else None (the
    processor's own)."""
    from ground_r1.models.families import family_of_processor

    name = family_of_processor(processor).training_chat_template
    if name is None:
        return None
    import trl.chat_template_utils as templates

    return getattr(templates, name)


def render_with_assistant_spans(
    processor, messages: list[dict[str, Any]], add_vision_id: bool = True
) -> tuple[str, list[tuple[int, int]]]:
    """The chat-template text of a conversation and the character spans ``[start, end)`` of each assistant
    turn's supervised part (its content and its closing eos token; module docstring).

    Raises:
        ValueError: the template is not prefix-stable, does not end an assistant turn with the tokenizer's eos
            token, or the conversation starts with an assistant turn.
    """

    # A family whose chat template rewrites earlier turns (Qwen3.5 drops their reasoning) trains through its
    # prefix-stable training template (TRL's, same text for the last turn: models/families/qwen3_5.py).
    template = training_chat_template(processor)

    def render(msgs: list[dict[str, Any]], generation_prompt: bool) -> str:
        return processor.apply_chat_template(
            msgs,
            tokenize=False,
            add_generation_prompt=generation_prompt,
            add_vision_id=add_vision_id,
            **({"chat_template": template} if template is not None else {}),
        )

    eos = processor.tokenizer.eos_token
    full = render(messages, False)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        if i == 0:
            raise ValueError("the conversation starts with an assistant turn: it needs a user turn first")
        before = render(messages[:i], True)
        through = render(messages[: i + 1], False)
        if not (through.startswith(before) and full.startswith(through)):
            raise ValueError(
                "the chat template is not prefix-stable (rendering more turns changes earlier text), so assistant "
                "tokens cannot be located; use Qwen2.5-VL's template"
            )
        turn = through[len(before) :]
        end = turn.rfind(eos)
        if end < 0:
            raise ValueError(
                f"the chat template does not close assistant turn {i} with the eos token {eos!r}: the model would "
                "never learn to stop"
            )
        spans.append((len(before), len(before) + end + len(eos)))
    return full, spans


def _expanded_spans(
    text: str, spans: list[tuple[int, int]], image_token: str, tokens_per_image: list[int]
) -> list[tuple[int, int]]:
    """Spans of ``text`` moved to the text the processor tokenizes, where the k-th ``image_token`` is repeated
    ``tokens_per_image[k]`` times."""
    positions = []
    at = text.find(image_token)
    while at >= 0:
        positions.append(at)
        at = text.find(image_token, at + len(image_token))
    if len(positions) != len(tokens_per_image):
        raise ValueError(
            f"{len(tokens_per_image)} image(s) but {len(positions)} image placeholder(s) in the rendered text"
        )
    extra = [0]
    for n in tokens_per_image:
        extra.append(extra[-1] + (n - 1) * len(image_token))

    def move(pos: int) -> int:
        return pos + extra[bisect.bisect_left(positions, pos)]

    out = []
    for start, end in spans:
        k = bisect.bisect_left(positions, start)
        if k < len(positions) and positions[k] < end:
            raise ValueError("an assistant turn contains an image placeholder token; assistant turns are text only")
        out.append((move(start), move(end)))
    return out


def encode_example(
    processor, messages: list[dict[str, Any]], images: list[Any], add_vision_id: bool = True
) -> dict[str, torch.Tensor]:
    """One conversation -> ``input_ids``, ``attention_mask``, ``labels``, ``mm_token_type_ids`` (each ``[L]``),
    ``pixel_values`` (``[sum t*h*w, C*patch*patch*temporal]``), ``image_grid_thw`` (``[n_images, 3]``).

    Raises:
        ValueError: see :func:`render_with_assistant_spans`; a token straddles a span edge; no assistant token.
    """
    text, spans = render_with_assistant_spans(processor, messages, add_vision_id)
    kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt", "return_offsets_mapping": True}
    if images:
        kwargs["images"] = list(images)
    enc = processor(**kwargs)
    input_ids = enc["input_ids"][0]
    offsets = enc.pop("offset_mapping")[0].tolist()
    grid = enc.get("image_grid_thw")
    from ground_r1.models.families import family_of_processor

    merge = family_of_processor(processor).geometry(processor).merge_size ** 2  # read from the processor, checked
    per_image = [int(g.prod()) // merge for g in grid] if grid is not None else []
    spans = _expanded_spans(text, spans, processor.image_token, per_image)

    labels = torch.full_like(input_ids, IGNORE_INDEX)
    starts = [s for s, _ in spans]
    for t, (a, b) in enumerate(offsets):
        if a == b:  # a token with no text (none in Qwen's tokenizer): never supervised
            continue
        k = bisect.bisect_right(starts, a) - 1
        inside = k >= 0 and b <= spans[k][1]
        straddles = (k >= 0 and a < spans[k][1] < b) or (k + 1 < len(spans) and a < spans[k + 1][0] < b)
        if straddles:
            raise ValueError(f"token {t} (characters {a}-{b}) straddles an assistant turn's edge; cannot label it")
        if inside:
            labels[t] = input_ids[t]
    if not bool((labels != IGNORE_INDEX).any()):
        raise ValueError("the example has no assistant tokens to learn")

    image_token_id = processor.image_token_id
    mm = enc.get("mm_token_type_ids")
    mm = mm[0] if mm is not None else (input_ids == image_token_id).long()
    out = {
        "input_ids": input_ids,
        "attention_mask": enc["attention_mask"][0],
        "labels": labels,
        "mm_token_type_ids": mm.long(),
    }
    if images:
        out["pixel_values"] = enc["pixel_values"]
        out["image_grid_thw"] = enc["image_grid_thw"]
    return out


def _drop_none(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages without ``None``-valued keys in their content items (Arrow adds ``"text": None`` to images)."""
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = [{k: v for k, v in item.items() if v is not None} for item in content]
        out.append({**message, "content": content})
    return out


@dataclass
class SFTCollator:
    """Examples of the SFT JSONL format (``images`` paths, ``messages``) -> a right-padded training batch.

    Images are opened here (``load_image``: EXIF orientation, RGB), so dataloader workers do the decoding.
    """

    processor: Any
    add_vision_id: bool = True

    def __post_init__(self) -> None:
        tok = self.processor.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.convert_tokens_to_ids(tok.eos_token)
        self.pad_token_id = int(pad)

    def encode(self, example: dict[str, Any]) -> dict[str, torch.Tensor]:
        try:
            images = [load_image(p) for p in example["images"]]
        except ImageLoadError as exc:
            raise ImageLoadError(exc.path, f"{exc.reason} (SFT example {example.get('id')})") from exc
        try:
            return encode_example(self.processor, _drop_none(example["messages"]), images, self.add_vision_id)
        except ValueError as exc:
            raise ValueError(f"SFT example {example.get('id')}: {exc}") from exc

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        encoded = [self.encode(ex) for ex in examples]
        length = max(int(e["input_ids"].shape[0]) for e in encoded)
        batch = {
            "input_ids": torch.full((len(encoded), length), self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(encoded), length), dtype=torch.long),
            "labels": torch.full((len(encoded), length), IGNORE_INDEX, dtype=torch.long),
            "mm_token_type_ids": torch.zeros((len(encoded), length), dtype=torch.long),
        }
        for row, e in enumerate(encoded):  # right padding: [B, L]
            n = int(e["input_ids"].shape[0])
            for key in ("input_ids", "attention_mask", "labels", "mm_token_type_ids"):
                batch[key][row, :n] = e[key]
        with_images = [e for e in encoded if "pixel_values" in e]
        if with_images:
            batch["pixel_values"] = torch.cat([e["pixel_values"] for e in with_images], dim=0)  # [sum t*h*w, D]
            batch["image_grid_thw"] = torch.cat([e["image_grid_thw"] for e in with_images], dim=0)  # [n_images, 3]
        return batch


__all__ = ["IGNORE_INDEX", "SFTCollator", "encode_example", "render_with_assistant_spans"]
