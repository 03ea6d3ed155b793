"""The release's grounding prompt (SPEC §2) and the chat messages of the first turn and of a crop turn.

The template is ONE string: ``"Question: {question}\\n"`` followed by five parts joined with no separator
at all (the release concatenated them; a golden-string test pins it). ``input_width``/``input_height`` are
the size of the *resized model input* image (Qwen's smart_resize), never the original size.

Part 2 (the size sentence) is the coordinate convention's (``ground_r1.models.families.coordinates``): the
release's pixel-size sentence for ``input_pixels`` (Qwen2.5-VL, byte-identical to the release), a 0-1000 grid
sentence for ``relative_1000`` (Qwen2-VL, Qwen3-VL, Qwen3.5), which never ground in pixels of the input.
"""

from __future__ import annotations

from typing import Any

from ground_r1.models.families.coordinates import INPUT_PIXELS, size_sentence

# The five parts of the release's instruction, joined with "" (no space, no newline), exactly as released.
_TEMPLATE_PARTS = (
    "Based on the original image and the question, reason whether there exists a region in the image that "
    "could help you answer the question better. If such a region exists, provide one bounding box coordinate "
    "in the format [x1,y1,x2,y2] inside the <box> and </box> tags.",
    "The size of the image: Width:{input_width}, Height:{input_height}. The bounding box you provided should "
    "not exceed the image width and height.",
    "Then, you will receive a cropped image based on the bounding box. Use both images to continue reasoning "
    "inside a new <think> tag. You may conduct multiple rounds of grounding to refine your region as you want. "
    "The bounding box you provide should always be selected based on the original image.",
    "If at any point you determine no further visual information is needed, you may directly provide the "
    "final answer inside the <answer> and </answer> tags.",
    "Format Example: <think> Reasoning </think> <box>[x1,y1,x2,y2]</box> OR <think> Reasoning </think> "
    "<answer> final answer </answer>",
)

GROUNDING_TEMPLATE = "Question: {question}\n" + "".join(_TEMPLATE_PARTS)
_SIZE_PART = _TEMPLATE_PARTS[1]

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."


def grounding_text(question: str, input_width: int, input_height: int, coordinates: str = INPUT_PIXELS) -> str:
    """The user text of every grounding turn: the first one and every injected crop turn (SPEC §2: the
    crop turn repeats the same question and the *original* input size). ``coordinates``: the convention whose
    size sentence is part 2 (``input_pixels``: the release's text, byte for byte)."""
    # str.format would choke on braces inside a question; substitute the fields explicitly. The size sentence
    # goes in first, so that a question holding "{input_width}" stays as written.
    template = GROUNDING_TEMPLATE.replace(_SIZE_PART, size_sentence(coordinates, input_width, input_height))
    return template.replace("{question}", question)


def first_turn_messages(
    question: str, input_width: int, input_height: int, coordinates: str = INPUT_PIXELS
) -> list[dict[str, Any]]:
    """Chat messages of the prompt: one user turn holding the original image, then the template text.

    The system turn is not listed: Qwen2.5-VL's chat template adds its default system prompt
    ("You are a helpful assistant.") when the conversation has none, as the release relied on.
    """
    return [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": grounding_text(question, input_width, input_height, coordinates)},
            ],
        }
    ]


def crop_turn_message(
    question: str, input_width: int, input_height: int, coordinates: str = INPUT_PIXELS
) -> dict[str, Any]:
    """The injected user turn after a grounding turn: the crop image, then the same template text."""
    return {
        "role": "user",
        "content": [
            {"type": "image"},
            {"type": "text", "text": grounding_text(question, input_width, input_height, coordinates)},
        ],
    }


# ------------------------------------------------------------------------------------------ evaluation prompts
# One place for every prompt of the evaluation protocols (SPEC §7, §8), so the SFT data builder and the
# evaluation render the same strings.

# SPEC §8 Ground SFT, turn 1 (after the original image): ask for the evidence box only.
GROUND_SFT_BOX_TEMPLATE = (
    "{question}\n Please only provide the bounding box coordinate of the region that can help you answer the "
    "question better. Following [x1,y1,x2,y2] format."
)
# SPEC §8 Ground SFT, turn 2 (after the crop of the turn-1 box): ask for the final answer.
GROUND_SFT_ANSWER_TEMPLATE = (
    "{question}\n You can see the original image and the cropped image based on the bounding box you provided "
    "earlier. By referring to the original image and the image cropped from your previous bounding box, please "
    "try to give your final answer of the question."
)
# SPEC §7 RefCOCO/+/g: Qwen2.5-VL's native grounding prompt.
REFCOCO_TEMPLATE = "Locate {expression} in this image and output the bbox coordinates in JSON format."

# SPEC §7 baseline (one turn) prompt classes:
# - only_question: the question as is;
# - simply_answer: the release's wording, "Please only give the final answer of the Question:{q}" (no space
#   after the colon, as written in SPEC §7);
# - basic_grpo: the think-answer prompt of R1-V / Video-R1 (the code base the release forked), asking for
#   <think> and <answer> tags, so the SPEC §3 answer extraction applies.
BASELINE_TEMPLATES = {
    "only_question": "{question}",
    "simply_answer": "Please only give the final answer of the Question:{question}",
    "basic_grpo": (
        "{question} Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
    ),
}


def _fill(template: str, field: str, value: str) -> str:
    # str.format would choke on braces inside a question; substitute the one field explicitly.
    return template.replace("{" + field + "}", value)


def ground_sft_box_text(question: str) -> str:
    """Ground SFT turn-1 text (SPEC §8): the question, then the request for one [x1,y1,x2,y2] box."""
    return _fill(GROUND_SFT_BOX_TEMPLATE, "question", question)


def ground_sft_answer_text(question: str) -> str:
    """Ground SFT turn-2 text (SPEC §8), shown after the crop of the turn-1 box."""
    return _fill(GROUND_SFT_ANSWER_TEMPLATE, "question", question)


def refcoco_text(expression: str) -> str:
    """The RefCOCO grounding prompt of one referring expression (SPEC §7)."""
    return _fill(REFCOCO_TEMPLATE, "expression", expression)


def baseline_text(question: str, prompt_class: str) -> str:
    """The one-turn baseline prompt of a prompt class (SPEC §7; see :data:`BASELINE_TEMPLATES`).

    Raises:
        ValueError: an unknown prompt class (the valid names are listed).
    """
    if prompt_class not in BASELINE_TEMPLATES:
        raise ValueError(f"unknown baseline prompt class {prompt_class!r}; valid: {', '.join(BASELINE_TEMPLATES)}")
    return _fill(BASELINE_TEMPLATES[prompt_class], "question", question)
