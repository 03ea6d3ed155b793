"""SFT labels cover exactly the assistant tokens (SPEC §8), on a two-image Ground SFT sample with the tiny model's
processor, and the batch carries what M-RoPE needs (mm_token_type_ids) and the right vision inputs.

The sample is the hand-checked record (sft_helpers) prepared for the tiny processor's pixel bounds
(min 3136, max 12544):

- input size: 1120 x 560 = 627,200 px > 12,544, beta = sqrt(627200 / 12544) = sqrt(50) = 7.0711;
  width floor(1120 / 7.0711 / 28) * 28 = floor(5.657) * 28 = 140, height floor(560 / 7.0711 / 28) * 28 =
  floor(2.828) * 28 = 56 -> 140 x 56, grid (t, h, w) = (1, 56/14, 140/14) = (1, 4, 10): 40 patch rows;
- crop box (1092, 93, 1120, 121) (test_sft_data's docstring), in input pixels x * 140/1120 = x / 8, y * 56/560 =
  y / 10, rounded half up: 136.5 -> 137, 9.3 -> 9, 140, 12.1 -> 12 -> "[137,9,140,12]";
- the 28 x 28 crop: 784 px < min 3136, beta = sqrt(3136 / 784) = 2, each side ceil(28 * 2 / 28) * 28 = 56 ->
  grid (1, 4, 4): 16 patch rows;
- pixel rows 40 + 16 = 56; image tokens after the 2 x 2 merge 10 + 4 = 14;
- answer "<answer>B</answer>" -> "B". "B" also appears in the question ("B. right"): spans are positional, so
  the user's "B" must stay unsupervised.
"""

from __future__ import annotations

import json

import pytest
import torch

from ground_r1.sft.collator import IGNORE_INDEX, SFTCollator, encode_example, render_with_assistant_spans
from ground_r1.sft.data import load_sft_examples, prepare_sft_data

from .sft_helpers import TINY_MAX_PIXELS, TINY_MIN_PIXELS


@pytest.fixture
def examples(records_file, tmp_path):
    out = tmp_path / "sft"
    prepare_sft_data(
        records_file,
        out,
        image_root=records_file.parent,
        min_pixels=TINY_MIN_PIXELS,
        max_pixels=TINY_MAX_PIXELS,
        progress=False,
    )
    return load_sft_examples(out / "ground.jsonl")[0], load_sft_examples(out / "vanilla.jsonl")[0]


def _supervised_runs(input_ids: torch.Tensor, labels: torch.Tensor) -> list[tuple[int, int]]:
    """[start, end) of each maximal run of supervised positions."""
    runs, start = [], None
    for i, label in enumerate(labels.tolist() + [IGNORE_INDEX]):
        if label != IGNORE_INDEX and start is None:
            start = i
        elif label == IGNORE_INDEX and start is not None:
            runs.append((start, i))
            start = None
    return runs


def test_ground_sft_labels_are_exactly_the_assistant_turns(examples, tiny_processor):
    ground, _ = examples
    assert ground["messages"][1]["content"][0]["text"] == "[137,9,140,12]"  # module docstring
    enc = SFTCollator(tiny_processor).encode(ground)
    ids, labels = enc["input_ids"], enc["labels"]
    tok = tiny_processor.tokenizer

    runs = _supervised_runs(ids, labels)
    decoded = [tok.decode(ids[a:b].tolist(), skip_special_tokens=False) for a, b in runs]
    assert decoded == ["[137,9,140,12]<|im_end|>", "B<|im_end|>"]

    supervised = torch.zeros_like(labels, dtype=torch.bool)
    for a, b in runs:
        supervised[a:b] = True
    assert torch.equal(labels[supervised], ids[supervised])  # supervised labels are the tokens themselves
    assert bool((labels[~supervised] == IGNORE_INDEX).all())  # -100 everywhere else
    # Exactly the content tokens plus one eos per turn: nothing of the header, the user turns or the images.
    n_box = len(tok("[137,9,140,12]", add_special_tokens=False)["input_ids"])
    n_answer = len(tok("B", add_special_tokens=False)["input_ids"])
    assert int(supervised.sum()) == n_box + 1 + n_answer + 1
    # Each run starts right after the assistant header, which stays unsupervised.
    for a, _ in runs:
        assert tok.decode(ids[:a].tolist(), skip_special_tokens=False).endswith("<|im_start|>assistant\n")
    # The text after the last supervised eos is the template's tail ("\n"), unsupervised.
    assert tok.decode(ids[runs[-1][1] :].tolist(), skip_special_tokens=False) == "\n"


def test_mm_token_type_ids_mark_exactly_the_image_pads_and_pixel_rows_match(examples, tiny_processor):
    ground, _ = examples
    enc = SFTCollator(tiny_processor).encode(ground)
    image_pad = tiny_processor.image_token_id
    assert torch.equal(enc["mm_token_type_ids"], (enc["input_ids"] == image_pad).long())
    assert enc["image_grid_thw"].tolist() == [[1, 4, 10], [1, 4, 4]]  # module docstring
    rows = int(enc["image_grid_thw"].prod(dim=1).sum())  # sum of t*h*w
    assert rows == 56 and enc["pixel_values"].shape[0] == 56
    assert int(enc["mm_token_type_ids"].sum()) == 14  # 56 rows / (2 x 2 merge)
    assert bool((enc["labels"][enc["mm_token_type_ids"] == 1] == IGNORE_INDEX).all())
    # Two images, "Picture 1:" and "Picture 2:" (add_vision_id, SPEC §2), continuing the count over the chat.
    text = tiny_processor.tokenizer.decode(enc["input_ids"].tolist(), skip_special_tokens=False)
    assert text.count("Picture 1: <|vision_start|>") == 1 and text.count("Picture 2: <|vision_start|>") == 1


def test_vanilla_labels_are_the_answer_only(examples, tiny_processor):
    _, vanilla = examples
    enc = SFTCollator(tiny_processor).encode(vanilla)
    runs = _supervised_runs(enc["input_ids"], enc["labels"])
    tok = tiny_processor.tokenizer
    assert [tok.decode(enc["input_ids"][a:b].tolist(), skip_special_tokens=False) for a, b in runs] == ["B<|im_end|>"]
    assert enc["image_grid_thw"].tolist() == [[1, 4, 10]]


def test_batch_is_right_padded_and_vision_inputs_concatenate_in_order(examples, tiny_processor):
    ground, vanilla = examples
    collator = SFTCollator(tiny_processor)
    single = [collator.encode(ground), collator.encode(vanilla)]
    batch = collator([ground, vanilla])
    n0, n1 = (int(e["input_ids"].shape[0]) for e in single)
    assert n0 > n1  # the two-turn example is longer
    assert batch["input_ids"].shape == (2, n0)
    for key in ("input_ids", "labels", "mm_token_type_ids", "attention_mask"):
        assert torch.equal(batch[key][0], single[0][key])
        assert torch.equal(batch[key][1, :n1], single[1][key])
    assert bool((batch["labels"][1, n1:] == IGNORE_INDEX).all())
    assert bool((batch["attention_mask"][1, n1:] == 0).all())
    assert bool((batch["mm_token_type_ids"][1, n1:] == 0).all())
    assert bool((batch["input_ids"][1, n1:] == tiny_processor.tokenizer.pad_token_id).all())
    assert batch["image_grid_thw"].tolist() == [[1, 4, 10], [1, 4, 4], [1, 4, 10]]
    assert torch.equal(batch["pixel_values"], torch.cat([single[0]["pixel_values"], single[1]["pixel_values"]]))


def test_examples_read_through_a_datasets_table_give_the_same_tensors(examples, tiny_processor):
    """The trainer hands rows of a `datasets.Dataset`, where Arrow adds "text": None to image items."""
    from ground_r1.sft.train import examples_to_dataset

    ground, _ = examples
    row = examples_to_dataset([ground])[0]
    assert row["messages"][0]["content"][0] == {"type": "image", "text": None}
    collator = SFTCollator(tiny_processor)
    a, b = collator.encode(ground), collator.encode(row)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_template_that_does_not_close_assistant_turns_with_eos_is_refused(tiny_processor):
    import copy

    processor = copy.copy(tiny_processor)
    processor.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {% for c in m['content'] %}{% if c['type'] == 'text' %}"
        "{{ c['text'] }}{% endif %}{% endfor %}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
    )
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "q"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}]},
    ]
    with pytest.raises(ValueError, match="does not close assistant turn 1 with the eos token"):
        render_with_assistant_spans(processor, messages)


def test_spans_follow_the_rendered_text(tiny_processor):
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "say hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
        {"role": "user", "content": [{"type": "text", "text": "again"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "hi hi"}]},
    ]
    text, spans = render_with_assistant_spans(tiny_processor, messages)
    assert [text[a:b] for a, b in spans] == ["hi<|im_end|>", "hi hi<|im_end|>"]
    enc = encode_example(tiny_processor, messages, [])
    assert "pixel_values" not in enc and int(enc["mm_token_type_ids"].sum()) == 0
    supervised = enc["input_ids"][enc["labels"] != IGNORE_INDEX].tolist()
    assert tiny_processor.tokenizer.decode(supervised, skip_special_tokens=False) == "hi<|im_end|>hi hi<|im_end|>"
    json.dumps(spans)  # plain ints
