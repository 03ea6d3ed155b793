"""RealWorldQA (SPEC §7): lmms-eval 0.7.3's rule (mcq_extract for A-D, exact match otherwise) and its variants."""

from __future__ import annotations

import pytest

from ground_r1.evaluation.benchmarks import get_benchmark

LETTER = "Please answer directly with only the letter of the correct option and nothing else."
WORD = "Please answer directly with a single word or number."

RECORDS = [
    {"problem": f"Which is smallest?\nA. left\nB. right\nC. middle\n{LETTER}", "solution": "C", "Image": "i0.png"},
    {"problem": f"Can the car go straight?\nA. Yes\nB. No\n{LETTER}", "solution": "B", "Image": "i1.png"},
    {"problem": f"Is the red car closer?\n{WORD}", "solution": "Yes", "Image": "i2.png"},
    {"problem": f"What color is the light?\n{WORD}", "solution": "Green", "Image": "i3.png"},
    {"problem": f"How many lanes?\n{WORD}", "solution": "3", "Image": "i4.png"},
]  # fmt: skip
PREDICTIONS = [
    "<think>the middle one</think><answer>C</answer>",  # right (letter)
    "No",  # option text of B: lmms-eval's extractor finds no letter -> wrong; ours (lenient) reads B
    "Yes.",  # "yes." without its trailing dot == "yes" -> right; release rule ("yes." != "yes") -> wrong
    "Red",  # wrong
    "<answer>3</answer>",  # right
]


@pytest.fixture
def loaded(write_benchmark):
    spec = get_benchmark("RealWorldQA")
    path, root = write_benchmark("RealworldQA.jsonl", RECORDS)
    return spec, spec.load(path, root)


def test_item_types_and_prompts(loaded) -> None:
    spec, items = loaded
    assert [it.category for it in items] == ["multiple_choice"] * 2 + ["free_form"] * 3
    # the file's own instruction is kept; no suffix is added in either protocol
    assert spec.direct_prompt(items[0]) == RECORDS[0]["problem"]
    assert spec.question(items[2]) == RECORDS[2]["problem"]


def test_realworldqa_accuracy(loaded) -> None:
    spec, items = loaded
    records = [spec.score_item(it, p) for it, p in zip(items, PREDICTIONS)]
    assert [r["correct"] for r in records] == [True, False, True, False, True]
    assert [r["parsed"] for r in records] == ["C", None, "yes", "red", "3"]
    result = spec.aggregate(records)
    assert result["accuracy"] == pytest.approx(60.0)  # 3 of 5
    assert result["per_type"]["multiple_choice"]["accuracy"] == 50.0
    assert result["per_type"]["free_form"]["accuracy"] == pytest.approx(200 / 3)
    # lenient: "No" is B's text -> 4 of 5; release: lower(extracted) == lower(gt): "c"=="c", "no"!="b",
    # "yes."!="yes", "red"!="green", "3"=="3" -> 2 of 5
    assert result["variants"] == {"lenient": pytest.approx(80.0), "release": pytest.approx(40.0)}
