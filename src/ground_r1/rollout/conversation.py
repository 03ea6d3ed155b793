"""Token-level conversation building for the rollout: the prompt, and each injected crop turn, as token ids.

Nothing here is hard-coded: the chat template, special tokens and image-token expansion all come from the
model's processor. The injected user turn (after the assistant's sampled ``<|im_end|>``) is derived by rendering
the conversation with and without it through the chat template, so ``Picture k:`` keeps counting over the whole
conversation (SPEC §2) and any other template renders correctly too. Sampled tokens are never decoded and
re-tokenized (SPEC §10).

Families (``ground_r1.models.families``): the codec reads its processor's family; the image geometry (patch and
merge size) comes from the processor through it, and the size sentence of the grounding prompt is the family's
coordinate convention (or the one given). A template that is not prefix-stable (Qwen3.5's drops the reasoning
of assistant turns before the last user turn) still works: the injected turn is the text the template writes
after the LAST assistant turn, and earlier turns stay as sampled (our turns are token ids, never re-rendered),
so the model sees, and the loss scores, its whole trajectory. A template whose generation prompt OPENS
``<think>`` (Qwen3.5, Qwen3-VL-Thinking) owns the think tag of Ground-R1's format: the opening is the start of
every turn's text (:attr:`ConversationCodec.turn_opening`), so the rewards read ``<think> ... </think> <box>``
as the format asks (docs/model_families.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from PIL import Image

from ground_r1.models.families import family_of_processor
from ground_r1.models.families.coordinates import box_frame, check_convention
from ground_r1.prompt import crop_turn_message, first_turn_messages

_PLACEHOLDER = "\u2063GROUNDR1\u2063"  # invisible separators: text no template or user question contains
# A special-token string inside user text ("<|im_end|>", "<|image_pad|>") stands in the rendered chat as this
# marker (its index in ConversationCodec.special_texts) and is tokenized as plain text: it would otherwise forge a
# turn end or an image slot (the release tokenized the whole rendered string with special tokens recognised).
_SPECIAL_MARKER = re.compile("\u2063SP(\\d+)\u2063")


@dataclass(frozen=True)
class EncodedImage:
    """One image as the vision tower consumes it: patch rows and its (t, h, w) grid."""

    pixel_values: torch.Tensor  # [t*h*w, C*patch*patch*temporal]
    grid_thw: torch.Tensor  # [3]
    patch_size: int  # the processor's (its family's geometry): the grid counts patches of this side

    @property
    def num_rows(self) -> int:
        return int(self.grid_thw.prod())

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the resized model input, derived from the grid (SPEC §2: grid x patch size wins)."""
        _, h, w = (int(x) for x in self.grid_thw)
        return w * self.patch_size, h * self.patch_size


@dataclass
class EncodedTurn:
    """Token ids of a prompt or of an injected user turn, and the images it introduces (in order)."""

    ids: list[int]
    images: list[EncodedImage]


class ConversationCodec:
    """Builds prompt and injected-turn token ids for one processor (cached per question and image count)."""

    def __init__(self, processor, add_vision_id: bool = True, coordinates: str | None = None):
        """``coordinates``: the box convention of the prompt and of every box mapping (None: the family's default,
        ``ground_r1.models.families``).

        Raises:
            FamilyError: a processor whose family cannot be told (load it with ``models.loading.load_processor``).
            CoordinateError: an unknown convention.
        """
        self.processor = processor
        self.family = family_of_processor(processor)
        self.geometry = self.family.geometry(processor)
        self.coordinates = (
            check_convention(coordinates, "coordinates") if coordinates is not None else self.family.coordinates
        )
        self.tokenizer = processor.tokenizer
        self.add_vision_id = add_vision_id
        tok = self.tokenizer
        self.eos_token = tok.eos_token
        self.eos_token_id = tok.convert_tokens_to_ids(tok.eos_token)
        self.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else self.eos_token_id
        self.image_token_id = processor.image_token_id
        self.patch_size = self.geometry.patch_size
        self.merge_size = self.geometry.merge_size
        self.special_texts = sorted(set(tok.all_special_tokens) | set(tok.get_added_vocab()), key=len, reverse=True)
        self.vision_token_ids = self._vision_token_ids()
        self._assistant_tail = self._render_assistant_tail()
        self.turn_opening = self._render_turn_opening()
        self._injected_cache: dict[tuple[str, int, int, int], str] = {}

    # -- special tokens -------------------------------------------------------------------------------------
    def _vision_token_ids(self) -> list[int]:
        """Ids of every vision special token: the image/video pads, and the markers the chat template puts around
        an image (found by rendering one), plus any added special token naming vision. Generation suppresses them
        (SPEC §2)."""
        tok = self.tokenizer
        ids = {self.image_token_id}
        video = getattr(self.processor, "video_token", None)
        if video is not None:
            vid = tok.convert_tokens_to_ids(video)
            if isinstance(vid, int) and vid != tok.unk_token_id:
                ids.add(vid)
        rendered = self._render(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}], False
        )
        rendered_ids = tok(rendered, add_special_tokens=False)["input_ids"]
        special = set(tok.all_special_ids)
        for i, t in enumerate(rendered_ids):
            if t == self.image_token_id:
                for j in (i - 1, i + 1):
                    if 0 <= j < len(rendered_ids) and rendered_ids[j] in special:
                        ids.add(rendered_ids[j])
        for token, token_id in tok.get_added_vocab().items():
            if "vision" in token or "image" in token or "video" in token:
                if token_id in special or token.startswith("<|"):
                    ids.add(token_id)
        return sorted(ids)

    # -- user text holding special-token strings -------------------------------------------------------------
    def escape(self, text: str) -> str:
        """``text`` with every special-token string replaced by its marker (``_SPECIAL_MARKER``); unchanged, so
        tokenized exactly as the release did, when it holds none."""
        if "<" not in text:
            return text
        for i, special in enumerate(self.special_texts):
            if special in text:
                text = text.replace(special, f"\u2063SP{i}\u2063")
        return text

    def _escape_messages(self, messages: list[dict]) -> list[dict]:
        out = []
        for message in messages:
            content = message["content"]
            if isinstance(content, str):
                content = self.escape(content)
            else:
                content = [{**c, "text": self.escape(c["text"])} if c.get("type") == "text" else c for c in content]
            out.append({**message, "content": content})
        return out

    def tokenize(self, text: str) -> list[int]:
        """Ids of rendered text: special tokens recognised, except escaped user text, which stays plain text."""
        if "\u2063SP" not in text:
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        ids: list[int] = []
        parts = _SPECIAL_MARKER.split(text)  # text, index, text, index, ..., text
        for k, part in enumerate(parts):
            if k % 2 == 1:
                ids += self.tokenizer(
                    self.special_texts[int(part)], add_special_tokens=False, split_special_tokens=True
                )["input_ids"]
            elif part:
                ids += self.tokenizer(part, add_special_tokens=False)["input_ids"]
        return ids

    # -- rendering --------------------------------------------------------------------------------------------
    def _render(self, messages, add_generation_prompt: bool) -> str:
        return self.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt, add_vision_id=self.add_vision_id
        )

    def _render_assistant_tail(self) -> str:
        """What the template writes after an assistant turn's eos token (Qwen: "\\n")."""
        msgs = [
            {"role": "user", "content": [{"type": "text", "text": "q"}]},
            {"role": "assistant", "content": [{"type": "text", "text": _PLACEHOLDER}]},
        ]
        text = self._render(msgs, False)
        marker = _PLACEHOLDER + self.eos_token
        at = text.rfind(marker)
        if at < 0:
            raise ValueError(
                f"the chat template does not end assistant turns with the tokenizer's eos token {self.eos_token!r}; "
                "the rollout needs the sampled eos to close each turn"
            )
        return text[at + len(marker) :]

    def _render_turn_opening(self) -> str:
        """What a generation prompt writes into the assistant turn itself: ``"<think>\\n"`` for a template whose
        generation prompt opens a think block (Qwen3.5's thinking template, Qwen3-VL-Thinking), else ``""``."""
        text = self._render([{"role": "user", "content": [{"type": "text", "text": "q"}]}], True)
        at = text.rfind("<think>")
        return text[at:] if at >= 0 and text[at:].strip() == "<think>" else ""

    def frame(self, input_size: tuple[int, int]):
        """The box frame of an image whose resized model input is ``input_size`` in this codec's convention."""
        return box_frame(self.coordinates, input_size)

    def injected_turn_text(self, question: str, input_width: int, input_height: int, num_images_before: int) -> str:
        """Text between the sampled eos of an assistant turn and the next assistant turn's first token: the
        template's tail, the user turn holding the next crop (`Picture {num_images_before + 1}`), and the
        assistant generation prompt. Taken after the LAST assistant turn of the rendered conversation, so a
        template that rewrites earlier assistant turns (Qwen3.5 drops their reasoning) gives the same text as a
        prefix-stable one: earlier turns are never re-rendered (they are kept as sampled ids)."""
        question = self.escape(question)
        key = (question, int(input_width), int(input_height), int(num_images_before))
        cached = self._injected_cache.get(key)
        if cached is not None:
            return cached
        coords = self.coordinates
        prefix = first_turn_messages(question, input_width, input_height, coords)
        for _ in range(num_images_before - 1):
            prefix.append({"role": "assistant", "content": [{"type": "text", "text": _PLACEHOLDER}]})
            prefix.append(crop_turn_message(question, input_width, input_height, coords))
        prefix.append({"role": "assistant", "content": [{"type": "text", "text": _PLACEHOLDER}]})
        with_turn = self._render(prefix + [crop_turn_message(question, input_width, input_height, coords)], True)
        marker = _PLACEHOLDER + self.eos_token
        at = with_turn.rfind(marker)
        if at < 0:
            raise ValueError(
                "the chat template does not write an assistant turn's text followed by the eos token; "
                "the rollout cannot inject a crop turn after a sampled one"
            )
        text = with_turn[at + len(marker) :]
        self._injected_cache[key] = text
        return text

    # -- encoding -------------------------------------------------------------------------------------------
    def encode_images(self, images: list[Image.Image]) -> list[EncodedImage]:
        out = self.processor.image_processor(images=images, return_tensors="pt")
        pixel_values, grids = out["pixel_values"], out["image_grid_thw"]
        encoded, start = [], 0
        for grid in grids:
            rows = int(grid.prod())
            encoded.append(EncodedImage(pixel_values[start : start + rows], grid.clone(), self.patch_size))
            start += rows
        return encoded

    def encode_chat(
        self, messages: list[dict], images: list[EncodedImage], add_generation_prompt: bool = True
    ) -> list[int]:
        """Token ids of any chat through the processor's template, each image placeholder expanded to its image's
        token count (the one place that does it: prompts, crop turns and the fixed-turn evaluation protocols)."""
        return self._expand_image_tokens(self._render(self._escape_messages(messages), add_generation_prompt), images)

    def _expand_image_tokens(self, text: str, images: list[EncodedImage]) -> list[int]:
        """Tokenize text whose image placeholders are one pad token each, expanding each to its grid's count."""
        ids = self.tokenize(text)
        out: list[int] = []
        k = 0
        per_merge = self.merge_size**2
        for t in ids:
            if t == self.image_token_id:
                if k >= len(images):
                    raise ValueError("more image placeholders in the rendered text than images")
                out.extend([t] * (images[k].num_rows // per_merge))
                k += 1
            else:
                out.append(t)
        if k != len(images):
            raise ValueError(f"{len(images)} images but {k} image placeholders in the rendered text")
        return out

    def encode_prompt(
        self, question: str, image: Image.Image, input_size: tuple[int, int] | None = None
    ) -> EncodedTurn:
        """The first user turn (system prompt from the template, original image, template text) + generation
        prompt. `input_size` in the text is what the processor actually produced (grid x patch size) unless given;
        the size sentence is the codec's coordinate convention's."""
        (enc_image,) = self.encode_images([image])
        w, h = input_size if input_size is not None else enc_image.size
        messages = first_turn_messages(question, w, h, self.coordinates)
        return EncodedTurn(ids=self.encode_chat(messages, [enc_image]), images=[enc_image])

    def encode_crop_turn(
        self, question: str, input_size: tuple[int, int], crop: Image.Image, num_images_before: int
    ) -> EncodedTurn:
        (enc_image,) = self.encode_images([crop])
        text = self.injected_turn_text(question, input_size[0], input_size[1], num_images_before)
        return EncodedTurn(ids=self._expand_image_tokens(text, [enc_image]), images=[enc_image])

    def decode_turn(self, ids: list[int]) -> str:
        """A turn's text without special tokens (SPEC §3: rewards judge the text without special tokens), after
        the generation prompt's opening when the template opens a think block (:attr:`turn_opening`)."""
        return self.turn_opening + self.tokenizer.decode(ids, skip_special_tokens=True)

    def contains_vision_token(self, ids: list[int]) -> bool:
        vision = set(self.vision_token_ids)
        return any(t in vision for t in ids)
