"""The release's grounding template, pinned as one golden string (SPEC §2: five parts joined with no separator)."""

from ground_r1.prompt import grounding_text

GOLDEN = (
    "Question: What is on the sign?\n"
    "Based on the original image and the question, reason whether there exists a region in the image that could "
    "help you answer the question better. If such a region exists, provide one bounding box coordinate in the "
    "format [x1,y1,x2,y2] inside the <box> and </box> tags."
    "The size of the image: Width:448, Height:336. The bounding box you provided should not exceed the image "
    "width and height."
    "Then, you will receive a cropped image based on the bounding box. Use both images to continue reasoning "
    "inside a new <think> tag. You may conduct multiple rounds of grounding to refine your region as you want. "
    "The bounding box you provide should always be selected based on the original image."
    "If at any point you determine no further visual information is needed, you may directly provide the final "
    "answer inside the <answer> and </answer> tags."
    "Format Example: <think> Reasoning </think> <box>[x1,y1,x2,y2]</box> OR <think> Reasoning </think> <answer> "
    "final answer </answer>"
)


def test_template_is_the_release_string():
    assert grounding_text("What is on the sign?", 448, 336) == GOLDEN
    # The parts meet with no separator at all.
    assert "tags.The size" in GOLDEN and "height.Then," in GOLDEN and "image.If at any" in GOLDEN


def test_braces_in_a_question_are_kept_verbatim():
    assert grounding_text("Is {x} a set?", 28, 56).startswith("Question: Is {x} a set?\n")
    assert "Width:28, Height:56." in grounding_text("q", 28, 56)
