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
    # adversarial: gt yes,yes,no,no,no; POPE reads yes,no,yes,yes,no -> TP=1 FN=1 FP=2 TN=1
    (_q("adversarial", 1, "yes"), "Yes"),
    (_q("adversarial", 2, "yes"), "No"),
    (_q("adversarial", 3, "no"), "Yes, there is."),  # first sentence "Yes there is": no no/not -> yes
    (_q("adversarial", 4, "no"), "<think>looks like one</think><answer>yes</answer>"),
    (_q("adversarial", 5, "no"), "no"),
    # random: gt yes,yes,yes,no,no; POPE reads yes,yes,yes,no,yes -> TP=3 FN=0 FP=1 TN=1 (never unread)
    (_q("random", 1, "yes"), "yes"),
    (_q("random", 2, "yes"), "I think the answer is yes"),
    (_q("random", 3, "yes"), "I cannot tell."),  # no "no"/"not" word -> yes
    (_q("random", 4, "no"), "There is no dog."),
    (_q("random", 5, "no"), "Not that I can see."),  # "Not" is not among the words the rule looks for -> yes
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
    assert adv["yes_ratio"] == pytest.approx(60.0)  # (TP+FP)/n = 3/5
    # lmms-eval (exact "yes"/"no"): "Yes" and "no" only -> 2/5; the release (MME prefix rule) agrees: 2/5
    assert adv["variants"] == {"lmms_eval": pytest.approx(40.0), "release": pytest.approx(40.0)}


def test_pope_random_split_reads_every_answer(metrics) -> None:
    _, result = metrics
    rnd = result["per_split"]["random"]
    assert (rnd["tp"], rnd["fn"], rnd["fp"], rnd["tn"], rnd["n_unparsed"]) == (3, 0, 1, 1, 0)
    assert rnd["accuracy"] == pytest.approx(80.0)  # 4/5
    assert rnd["precision"] == pytest.approx(75.0)  # 3/4
    assert rnd["recall"] == pytest.approx(100.0)  # 3/3
    assert rnd["f1"] == pytest.approx(600 / 7)  # 2*75*100/175
    assert rnd["yes_ratio"] == pytest.approx(80.0)  # 4 yes of all 5 answers
    # lmms-eval: only "yes" is exactly right -> 1/5; release: "yes", and "not " holds "no" -> 2/5
    assert rnd["variants"] == {"lmms_eval": pytest.approx(20.0), "release": pytest.approx(40.0)}


def test_pope_overall_and_headline(metrics) -> None:
    spec, result = metrics
    overall = result["overall"]
    # TP=4 FN=1 FP=3 TN=2, n=10
    assert (overall["tp"], overall["fn"], overall["fp"], overall["tn"]) == (4, 1, 3, 2)
    assert overall["accuracy"] == pytest.approx(60.0)  # 6/10
    assert overall["precision"] == pytest.approx(400 / 7)  # 4/7
    assert overall["recall"] == pytest.approx(80.0)  # 4/5
    assert overall["f1"] == pytest.approx(200 / 3)  # 2(4/7)(4/5)/(48/35) = 2/3
    assert overall["yes_ratio"] == pytest.approx(70.0)  # 7/10
    assert overall["variants"] == {"lmms_eval": pytest.approx(30.0), "release": pytest.approx(40.0)}
    assert spec.headline(result) == pytest.approx(60.0)
    assert list(result["per_split"]) == ["adversarial", "random"]  # no "popular" items here


def test_pope_no_yes_predicted_gives_zero_precision(write_benchmark) -> None:
    spec = get_benchmark("POPE")
    path, root = write_benchmark("POPE.jsonl", [_q("popular", 1, "yes"), _q("popular", 2, "no")])
    items = spec.load(path, root)
    result = spec.aggregate([spec.score_item(it, "No") for it in items])["overall"]
    # TP=0 FP=0: precision has an empty denominator -> 0; recall 0/1 = 0; F1 0; accuracy 1/2
    assert (result["precision"], result["recall"], result["f1"], result["accuracy"]) == (0.0, 0.0, 0.0, 50.0)
