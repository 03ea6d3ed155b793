"""MM-Vet (SPEC §7): the official grader prompt, score parsing, per-capability aggregation."""

from __future__ import annotations

import pytest

from ground_r1.evaluation.benchmarks import get_benchmark, mmvet_grader_messages, parse_mmvet_score
from ground_r1.evaluation.benchmarks.mmvet import (
    MMVET_GRADER_PROMPT,
    MMVET_RETRY_SUFFIX,
    mmvet_grader_temperature,
)

INSTRUCTION = (
    "Compare the ground truth and prediction from AI models, to give a correctness score for the prediction. "
    "<AND> in the ground truth means it is totally right only when all elements in the ground truth are "
    "present in the prediction, and <OR> means it is totally right when any one element in the ground truth "
    "is present in the prediction. The correctness score is 0.0 (totally wrong), 0.1, 0.2, 0.3, 0.4, 0.5, "
    "0.6, 0.7, 0.8, 0.9, or 1.0 (totally right). Just complete the last space of the correctness score."
)


def test_grader_prompt_is_the_official_one() -> None:
    lines = MMVET_GRADER_PROMPT.split("\n")
    assert lines[0] == INSTRUCTION
    assert lines[1] == ""
    assert lines[2] == "Question | Ground truth | Prediction | Correctness"
    assert lines[3] == "--- | --- | --- | ---"
    # seven few-shot rows: five for "-1 <AND> -5", two for the Iceland/Greenland meme
    rows = lines[4:-1]
    assert len(rows) == 7
    assert rows[0] == "What is x in the equation? | -1 <AND> -5 | x = 3 | 0.0"
    assert rows[4] == "What is x in the equation? | -1 <AND> -5 | x = -1 or x = -5 | 1.0"
    assert [r.rsplit(" | ", 1)[1] for r in rows] == ["0.0", "0.5", "0.5", "0.5", "1.0", "0.4", "1.0"]
    assert lines[-1] == ""  # the prompt ends with a newline


def test_grader_messages_layout() -> None:
    messages = mmvet_grader_messages("What is x in the equation?", "-1<AND>-5", "x = -1")
    assert len(messages) == 1 and messages[0]["role"] == "user"
    # prompt, "\n", then "question | gt (AND/OR padded) | prediction | " with an empty last cell
    assert messages[0]["content"] == (MMVET_GRADER_PROMPT + "\nWhat is x in the equation? | -1 <AND> -5 | x = -1 | ")
    retry = mmvet_grader_messages("Q?", "five<OR> 5", "5", retry=True)[0]["content"]
    assert retry.endswith("\nQ? | five <OR>  5 | 5 | " + MMVET_RETRY_SUFFIX)
    assert [mmvet_grader_temperature(a) for a in range(3)] == [0.0, 0.5, 1.0]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [("0.5", 0.5), (" 1.0\n", 1.0), ("0", 0.0), ("0.7 because ...", 0.7), ("0.3|", 0.3),
     ("1.5", None), ("-0.1", None), ("nan", None), ("Correctness: 0.5", None), ("", None), (None, None)],
)  # fmt: skip
def test_parse_mmvet_score(reply, expected) -> None:
    assert parse_mmvet_score(reply) == expected


RECORDS = [
    {"Question_id": "v1_0", "Image": "v1_0.png", "problem": "What is x in the equation?",
     "solution": "-1<AND>-5", "Category": "ocr,math", "Task": "web"},
    {"Question_id": "v1_79", "Image": "v1_79.jpg", "problem": "What is the face value?",
     "solution": "five<OR> 5", "Category": "rec,ocr", "Task": "web"},
    {"Question_id": "v1_17", "Image": "v1_17.jpg", "problem": "Hat color?", "solution": "blue",
     "Category": "rec", "Task": "web"},
    {"Question_id": "v1_30", "Image": "v1_30.jpg", "problem": "Which jet is larger?", "solution": "same",
     "Category": "rec,spat", "Task": "web"},
]  # fmt: skip


def test_mmvet_items_and_answers(write_benchmark) -> None:
    spec = get_benchmark("mm-vet")
    assert spec.needs_judge is True
    path, root = write_benchmark("MMVet.jsonl", RECORDS)
    items = spec.load(path, root)
    assert items[0].extra["answer_elements"] == {"mode": "and", "elements": ["-1", "-5"]}
    assert items[1].extra["answer_elements"] == {"mode": "or", "elements": ["five", "5"]}
    assert items[2].extra["answer_elements"] == {"mode": "single", "elements": ["blue"]}
    assert items[1].extra["capabilities"] == ["rec", "ocr"]
    # the grader sees the extracted answer, not the thinking
    content = spec.grader_messages(items[2], "<think>looks blue</think><answer>Blue.</answer>")[0]["content"]
    assert content.endswith("\nHat color? | blue | Blue. | ")


def test_mmvet_aggregation_with_multi_capability_items_and_a_failure(write_benchmark) -> None:
    spec = get_benchmark("MMVet")
    path, root = write_benchmark("MMVet.jsonl", RECORDS)
    items = spec.load(path, root)
    scores = [1.0, 0.5, 0.0, None]  # the last grading failed
    records = [spec.score_item(it, "pred", judge_score=s) for it, s in zip(items, scores)]
    assert records[3]["graded"] is False and records[3]["score"] is None
    result = spec.aggregate(records)
    # total over graded items: (1.0 + 0.5 + 0.0) / 3 = 0.5 -> 50
    assert result["total"] == pytest.approx(50.0)
    assert (result["n_items"], result["n_graded"], result["n_failed"]) == (4, 3, 1)
    caps = result["per_capability"]
    assert list(caps) == ["rec", "ocr", "spat", "math"]  # official order, only those present
    assert caps["ocr"] == {"score": pytest.approx(75.0), "n": 2, "n_failed": 0}  # items 1, 2
    assert caps["math"] == {"score": pytest.approx(100.0), "n": 1, "n_failed": 0}  # item 1
    assert caps["rec"] == {"score": pytest.approx(25.0), "n": 2, "n_failed": 1}  # items 2, 3; 4 failed
    assert caps["spat"] == {"score": None, "n": 0, "n_failed": 1}  # only the failed item
    sets = result["per_capability_set"]
    assert sets["ocr,math"]["score"] == pytest.approx(100.0)
    assert sets["rec,ocr"]["score"] == pytest.approx(50.0)
    assert sets["rec,spat"]["score"] is None
    assert spec.headline(result) == pytest.approx(50.0)


def test_mmvet_rejects_out_of_range_judge_scores(write_benchmark) -> None:
    spec = get_benchmark("MMVet")
    path, root = write_benchmark("MMVet.jsonl", RECORDS[:1])
    item = spec.load(path, root)[0]
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        spec.score_item(item, "x", judge_score=1.5)
