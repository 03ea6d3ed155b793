"""POPE metrics (SPEC §7): accuracy, precision, recall, F1, yes-ratio per split and overall."""

from __future__ import annotations

import pytest

from ground_r1.evaluation.benchmarks import get_benchmark


def _q(split: str, n: int, answer: str) -> dict:
    return {
        "Question_id": str(n), "Image": f"images/img_{split}_{n}.png",
        "problem": "Is there a dog in the image?", "solution": answer, "Category": split,
    }  # fmt: skip


CASES = [
    # adversarial: gt yes,yes,no,no,no; read yes,no,yes,yes,no -> TP=1 FN=1 FP=2 TN=1
    (_q("adversarial", 1, "yes"), "Yes"),
    (_q("adversarial", 2, "yes"), "No"),
    (_q("adversarial", 3, "no"), "Yes, there is."),
    (_q("adversarial", 4, "no"), "<think>looks like one</think><answer>yes</answer>"),
    (_q("adversarial", 5, "no"), "no"),
    # random: gt yes,yes,yes,no; read yes,yes,(unparsed),no -> TP=2 FN=0 FP=0 TN=1, 1 unparsed
    (_q("random", 1, "yes"), "yes"),
    (_q("random", 2, "yes"), "I think the answer is yes"),
    (_q("random", 3, "yes"), "I cannot tell."),
    (_q("random", 4, "no"), "There is no dog."),
]


@pytest.fixture
def metrics(write_benchmark):
    spec = get_benchmark("pope")
    path, root = write_benchmark("POPE.jsonl", [record for record, _ in CASES])
    items = spec.load(path, root)
    return spec, spec.aggregate([spec.score_item(it, pred) for it, (_, pred) in zip(items, CASES)])


def test_pope_adversarial_split(metrics) -> None:
    _, result = metrics
    adv = result["per_split"]["adversarial"]
    assert (adv["tp"], adv["fn"], adv["fp"], adv["tn"], adv["n_unparsed"]) == (1, 1, 2, 1, 0)
    assert adv["accuracy"] == pytest.approx(40.0)  # (TP+TN)/n = 2/5
    assert adv["precision"] == pytest.approx(100 / 3)  # TP/(TP+FP) = 1/3
    assert adv["recall"] == pytest.approx(50.0)  # TP/(TP+FN) = 1/2
    assert adv["f1"] == pytest.approx(40.0)  # 2PR/(P+R) = 2(1/3)(1/2)/(5/6) = 0.4
    assert adv["yes_ratio"] == pytest.approx(60.0)  # (TP+FP)/parsed = 3/5
    # the release rule (MME's 4-character prefix) agrees here: 2 right of 5
    assert adv["accuracy_release_rule"] == pytest.approx(40.0)


def test_pope_random_split_with_an_unparsed_answer(metrics) -> None:
    _, result = metrics
    rnd = result["per_split"]["random"]
    assert (rnd["tp"], rnd["fn"], rnd["fp"], rnd["tn"], rnd["n_unparsed"]) == (2, 0, 0, 1, 1)
    assert rnd["accuracy"] == pytest.approx(75.0)  # unparsed is wrong: 3/4
    assert rnd["precision"] == pytest.approx(100.0)  # 2/2
    assert rnd["recall"] == pytest.approx(100.0)  # 2/2: the unparsed "yes" item is left out
    assert rnd["f1"] == pytest.approx(100.0)
    assert rnd["yes_ratio"] == pytest.approx(200 / 3)  # 2 yes of 3 parsed
    # release rule: only "yes" is read; "I th", "I ca", "Ther" (first 4 characters) hold neither word
    assert rnd["accuracy_release_rule"] == pytest.approx(25.0)


def test_pope_overall_and_headline(metrics) -> None:
    spec, result = metrics
    overall = result["overall"]
    # TP=3 FN=1 FP=2 TN=2, 1 unparsed, n=9
    assert (overall["tp"], overall["fn"], overall["fp"], overall["tn"]) == (3, 1, 2, 2)
    assert overall["accuracy"] == pytest.approx(500 / 9)  # 5/9
    assert overall["precision"] == pytest.approx(60.0)  # 3/5
    assert overall["recall"] == pytest.approx(75.0)  # 3/4
    assert overall["f1"] == pytest.approx(200 / 3)  # 2*.6*.75/1.35 = 0.6667
    assert overall["yes_ratio"] == pytest.approx(62.5)  # 5/8
    assert overall["accuracy_release_rule"] == pytest.approx(300 / 9)  # 2 + 1 of 9
    assert spec.headline(result) == pytest.approx(500 / 9)
    assert list(result["per_split"]) == ["adversarial", "random"]  # no "popular" items here


def test_pope_no_yes_predicted_gives_zero_precision(write_benchmark) -> None:
    spec = get_benchmark("POPE")
    path, root = write_benchmark("POPE.jsonl", [_q("popular", 1, "yes"), _q("popular", 2, "no")])
    items = spec.load(path, root)
    result = spec.aggregate([spec.score_item(it, "No") for it in items])["overall"]
    # TP=0 FP=0: precision has an empty denominator -> 0; recall 0/1 = 0; F1 0; accuracy 1/2
    assert (result["precision"], result["recall"], result["f1"], result["accuracy"]) == (0.0, 0.0, 0.0, 50.0)
