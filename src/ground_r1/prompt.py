"""The release's grounding prompt (SPEC §2) and the chat messages of the first turn and of a crop turn.

The template is ONE string: ``"Question: {question}\\n"`` followed by five parts joined with no separator
at all (the release concatenated them; a golden-string test pins it). ``input_width``/``input_height`` are
the size of the *resized model input* image (Qwen's smart_resize), never the original size.
"""

from __future__ import annotations

from typing import Any

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

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."


def grounding_text(question: str, input_width: int, input_height: int) -> str:
    """The user text of every grounding turn: the first one and every injected crop turn (SPEC §2: the
    crop turn repeats the same question and the *original* input size)."""
    # str.format would choke on braces inside a question; substitute the three fields explicitly.
    return (
        GROUNDING_TEMPLATE.replace("{question}", question)
        .replace("{input_width}", str(int(input_width)))
        .replace("{input_height}", str(int(input_height)))
    )


def first_turn_messages(question: str, input_width: int, input_height: int) -> list[dict[str, Any]]:
    """Chat messages of the prompt: one user turn holding the original image, then the template text.

    The system turn is not listed: Qwen2.5-VL's chat template adds its default system prompt
    ("You are a helpful assistant.") when the conversation has none, as the release relied on.
    """
    return [
        {
            "role": "user",
            "content": [
                {"type": "image"},
                {"type": "text", "text": grounding_text(question, input_width, input_height)},
            ],
        }
    ]


def crop_turn_message(question: str, input_width: int, input_height: int) -> dict[str, Any]:
    """The injected user turn after a grounding turn: the crop image, then the same template text."""
    return {
        "role": "user",
        "content": [
            {"type": "image"},
            {"type": "text", "text": grounding_text(question, input_width, input_height)},
        ],
    }
