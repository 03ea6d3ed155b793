"""MME metrics (SPEC §7): per task accuracy + acc+ (x100) summed; perception / cognition / overall."""

from __future__ import annotations

import pytest

from ground_r1.evaluation.benchmarks import get_benchmark


def _q(task: str, image: str, text: str, answer: str) -> dict:
    return {
        "Image": image, "width": 10, "height": 10, "dataset": task, "split": "val",
        "problem": f"{text} Please answer yes or no.", "solution": answer, "problem_id": 1,
    }  # fmt: skip


# (record, prediction). The same Image string is used under "existence" and "count" on purpose:
# acc+ groups by (task, Image), so those two images must not merge.
CASES = [
    # existence, image 1: both right -> counts for acc+
    (_q("existence", "images/shared.jpg", "Is there a train?", "Yes"), "Yes"),
    (_q("existence", "images/shared.jpg", "Is there a bed?", "No"), "No"),
    # existence, image 2: one of two wrong -> no acc+
    (_q("existence", "images/e2.jpg", "Is there a dog?", "Yes"), "No"),
    (_q("existence", "images/e2.jpg", "Is there a cat?", "No"), "No"),
    # count, same Image string as existence image 1: both right
    (_q("count", "images/shared.jpg", "Is there one train?", "Yes"), "<think>t</think><answer>yes</answer>"),
    (_q("count", "images/shared.jpg", "Are there two trains?", "No"), "no"),
    # OCR: the second answer is not readable by MME's rule ("the " holds neither yes nor no)
    (_q("OCR", "images/o1.jpg", "Is the word 'angie'?", "Yes"), "Yes, it is."),
    (_q("OCR", "images/o1.jpg", "Is the word 'angle'?", "No"), "The answer is no"),
    # code_reasoning (cognition): both right
    (_q("code_reasoning", "images/c1.png", "Does it print Hello?", "Yes"), "Yes, it prints Hello"),
    (_q("code_reasoning", "images/c1.png", "Does it print World?", "No"), "No."),
]


@pytest.fixture
def scored(write_benchmark):
    spec = get_benchmark("MME")
    path, root = write_benchmark("MME.jsonl", [record for record, _ in CASES])
    items = spec.load(path, root)
    return spec, [spec.score_item(item, pred) for item, (_, pred) in zip(items, CASES)]


def test_mme_per_task_acc_and_acc_plus(scored) -> None:
    spec, records = scored
    metrics = spec.aggregate(records)
    per_task = metrics["per_task"]
    # existence: 3 of 4 questions right -> acc 75; 1 of 2 images fully right -> acc+ 50; score 125
    assert per_task["existence"] == {
        "acc": 75.0, "acc_plus": 50.0, "score": 125.0, "n": 4, "n_images": 2, "n_unparsed": 0,
    }  # fmt: skip
    # count: its own image group despite the shared Image string: 100 + 100
    assert per_task["count"]["score"] == 200.0
    assert per_task["count"]["n_images"] == 1
    # OCR: 1 of 2 right (the second unparsed) -> acc 50, acc+ 0
    assert per_task["OCR"] == {
        "acc": 50.0, "acc_plus": 0.0, "score": 50.0, "n": 2, "n_images": 1, "n_unparsed": 1,
    }  # fmt: skip
    assert per_task["code_reasoning"]["score"] == 200.0


def test_mme_totals(scored) -> None:
    spec, records = scored
    metrics = spec.aggregate(records)
    # perception = existence 125 + count 200 + OCR 50 = 375; cognition = code_reasoning 200
    assert metrics["perception"] == 375.0
    assert metrics["cognition"] == 200.0
    assert metrics["overall"] == 575.0
    assert spec.headline(metrics) == 575.0
    assert metrics["n_items"] == 10
    assert metrics["n_unparsed"] == 1
    assert metrics["complete"] is False
    assert len(metrics["missing_tasks"]) == 14 - 4
    assert "landmark" in metrics["missing_tasks"]


def test_mme_record_fields(scored) -> None:
    _, records = scored
    first = records[0]
    assert first["key"] == "MME.jsonl:1"
    assert first["task"] == "existence"
    assert first["image_group"] == "existence/images/shared.jpg"
    assert first["parsed"] == "yes" and first["correct"] is True
    assert records[7]["parsed"] is None and records[7]["correct"] is False


def test_mme_full_marks_is_2800(write_benchmark) -> None:
    # Every one of the 14 tasks with one image, both questions right: 14 x 200 = 2800
    # (perception 10 x 200 = 2000, cognition 4 x 200 = 800).
    from ground_r1.evaluation.benchmarks.mme import MME_COGNITION_TASKS, MME_PERCEPTION_TASKS

    records = []
    for task in MME_PERCEPTION_TASKS + MME_COGNITION_TASKS:
        records += [_q(task, f"images/{task}.png", "Q1?", "Yes"), _q(task, f"images/{task}.png", "Q2?", "No")]
    spec = get_benchmark("mme")
    path, root = write_benchmark("MME.jsonl", records)
    items = spec.load(path, root)
    metrics = spec.aggregate([spec.score_item(it, it.answer) for it in items])
    assert (metrics["perception"], metrics["cognition"], metrics["overall"]) == (2000.0, 800.0, 2800.0)
    assert metrics["complete"] is True


def test_mme_rejects_a_judge_score_and_foreign_records(write_benchmark) -> None:
    spec = get_benchmark("MME")
    path, root = write_benchmark("MME.jsonl", [record for record, _ in CASES[:2]])
    item = spec.load(path, root)[0]
    with pytest.raises(ValueError, match="scored by rule"):
        spec.score_item(item, "Yes", judge_score=1.0)
    foreign = dict(spec.score_item(item, "Yes"), benchmark="POPE")
    with pytest.raises(ValueError, match="belongs to 'POPE'"):
        spec.aggregate([foreign])
