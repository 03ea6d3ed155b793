"""Every headline number follows its reference (docs/metrics.md), pinned on hand-derived cases and on rows of the
release's whole files (shared/data/release-full): MMBench CircularEval on real Question_ids, MMMU open rows, POPE
verbose answers to real questions, RealWorldQA's "A:" options, MME's bare y/n, SEED / MME-RealWorld as lmms-eval
0.7.3 reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ground_r1.evaluation import general
from ground_r1.evaluation.benchmarks import get_benchmark
from ground_r1.evaluation.benchmarks.mmbench import circular_outcomes
from ground_r1.evaluation.benchmarks.mmmu import MMMU_OPEN_SUFFIX
from ground_r1.evaluation.benchmarks.mmmu_rules import mmmu_choice, mmmu_open_candidates, mmmu_open_correct
from ground_r1.evaluation.benchmarks.reference import mcq_extract, mmbench_can_infer, mme_realworld_letter


@pytest.fixture(scope="module")
def release_full(shared_dir) -> Path:
    return shared_dir / "data" / "release-full"


def release_lines(release_full: Path, name: str, numbers: list[int]) -> list[dict]:
    """Records of the release's whole file at the given 1-based line numbers, in that order."""
    lines = (release_full / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(lines[n - 1]) for n in numbers]


# ------------------------------------------------------------------------------------------------ MMBench


@pytest.fixture(scope="module")
def mmbench(release_full):
    spec = get_benchmark("MMBench")
    return spec, spec.load(release_full / "MMBench_en_dev.jsonl", release_full, check_images=False)


def test_mmbench_circular_eval_on_real_question_ids(mmbench) -> None:
    spec, items = mmbench
    assert len(items) == 4329 and len({it.extra["circular_group"] for it in items}) == 1164
    # Question 241 (2 real options) and its rotated copy 1000241: the answer letter moves B -> A.
    copies = [it for it in items if it.extra["circular_group"] == 241]
    assert [(it.extra["Question_id"], it.answer, it.extra["circular_size"]) for it in copies] == [
        (241, "B", 2),
        (1000241, "A", 2),
    ]
    # Always "A": 1,153 of 4,329 rows are A (the release's per-row number 26.6), 400 of the 1,164 originals (34.4),
    # and no question has A as the answer of every copy: CircularEval 0.
    always_a = spec.aggregate([spec.score_item(it, "A") for it in items])
    assert always_a["circular_accuracy"] == 0.0 and always_a["n_questions"] == 1164
    assert always_a["single_pass_accuracy"] == pytest.approx(100 * 400 / 1164)
    assert always_a["variants"]["release"] == pytest.approx(100 * 1153 / 4329)  # 26.6, as the issue measured
    # Every copy right but copy 1 of question 241: that question fails, the originals are all right.
    records = [spec.score_item(it, "B" if it.extra["Question_id"] == 1000241 else it.answer) for it in items]
    result = spec.aggregate(records)
    assert (result["circular_accuracy"], result["n_questions_correct"]) == (pytest.approx(100 * 1163 / 1164), 1163)
    assert result["single_pass_accuracy"] == 100.0 and result["circular_per_question"]["241"] == 0
    assert spec.headline(result) == result["circular_accuracy"]
    # A copy without a record (a prediction error) leaves its question out, counted; never scored from the rest.
    # Question 1 (line 239) has four options, so four copies: drop copy 3000001.
    assert [r["circular_size"] for r in records if r["circular_group"] == 1] == [4, 4, 4, 4]
    partial = [r for r in records if r["circular_group"] != 1 or r["circular_copy"] != 3]
    outcomes, incomplete = circular_outcomes(partial)
    assert (len(outcomes), incomplete, 1 in outcomes) == (1163, 1, False)


def test_max_items_keeps_whole_mmbench_questions(release_full) -> None:
    # --max_items 3: the first three questions of the file (241, 252, 253) with all their copies, which the release
    # file lists after the 1,164 originals; the first three rows would have no copy at all.
    (data,) = general.load_benchmarks(["MMBench"], release_full, max_items=3, check_images=False)
    ids = sorted(it.extra["Question_id"] for it in data.items)
    assert ids == [241, 252, 253, 1000241, 1000252, 1000253]
    # The file line says how many the limit kept, not "the first 6" (the copies sit after the 1,164 originals).
    assert general.file_line(data) == (
        "MMBench_en_dev: MMBench_en_dev.jsonl: 4,329 records read, 6 evaluated (6 kept by the item limit), 0 skipped"
    )
    (seed,) = general.load_benchmarks(["SEED"], release_full, max_items=3, check_images=False)
    assert len(seed.items) == 3  # the other benchmarks keep their first N rows


def test_mmbench_summary_rows_are_labelled(mmbench) -> None:
    spec, items = mmbench
    kept = spec.first_items(items, 2)  # questions 241 and 252, two copies each
    # 241: right on both copies (B, then A); 252: original right, copy unread ("zzz" has no letter, no option text).
    answers = {
        241: "B",
        1000241: "A",
        252: next(it.answer for it in kept if it.extra["Question_id"] == 252),
        1000252: "zzz",
    }
    records = [spec.score_item(it, answers[it.extra["Question_id"]]) for it in kept]
    scored = general.ScoredBenchmark(records=records)
    rows = general.summary_rows(spec, spec.aggregate(records), scored)
    assert [(r.metric, r.score, r.items, r.unparsed, r.variant) for r in rows] == [
        ("CircularEval accuracy", 50.0, 2, 1, False),  # 241 right, 252 not; one question has an unread copy
        ("single-pass accuracy (originals only)", 100.0, 2, 0, False),
        ("CircularEval accuracy", 50.0, 2, 1, True),  # lenient CircularEval (over questions)
        ("per-row accuracy", 75.0, 4, 1, True),  # release: per row, first character: B, A, right, "z"
    ]
    assert rows[0].rule.startswith("CircularEval (MMBench official") and rows[1].rule.startswith("single pass")
    assert rows[3].rule.startswith("release: per row over every copy")


def test_mmbench_matcher_is_the_official_prefetch_then_lmms_eval_static() -> None:
    options = {"A": "rubber", "B": "cotton", "C": "wood"}
    assert mmbench_can_infer("B", options) == "B"  # one letter token
    assert mmbench_can_infer("(C) wood", options) == "C"  # the "(C)" token
    assert mmbench_can_infer("I think it is cotton", options) == "B"  # no token, one option text inside
    # "A" in an answer of more than three words may be an article: the bare token is skipped; "A." still counts.
    assert mmbench_can_infer("A is the right one", options) == "A"  # via the static fallback ("start")
    assert mmbench_can_infer("It is rubber or cotton", options) is None  # two texts, no letter anywhere
    assert mmbench_can_infer("E", options) == "E"  # a letter token outside the options: read, and wrong


# --------------------------------------------------------------------------------------------------- MMMU


MMMU_LINES = [1, 2, 74, 160, 190, 484, 675]  # two multiple-choice rows, then five of the 53 open rows


def test_mmmu_open_rows_from_the_release_file(release_full, write_benchmark) -> None:
    spec = get_benchmark("MMMU")
    path, root = write_benchmark("MMMU_val.jsonl", release_lines(release_full, "MMMU_val.jsonl", MMMU_LINES))
    items = spec.load(path, root)
    assert [it.answer for it in items] == ["B", "C", "1.06", "C", "1/64", "['Tampa', 'Florida']", "['24/7', '3.429']"]
    assert [it.extra["question_type"] for it in items] == ["multiple-choice"] * 2 + ["open"] * 5
    # The open question is not told to answer with a letter (lmms-eval 0.7.3's open_ended_prompt).
    assert spec.direct_prompt(items[2]).endswith(f"<image 1>\n{MMMU_OPEN_SUFFIX}")
    assert spec.direct_prompt(items[0]).endswith("D. $9\nRespond with only the letter (A, B, C or D).")
    predictions = [
        "(B)",  # right
        "I am not sure",  # no letter, no option text: the official parser would guess; unread here
        "The deflection is 1.060 in.",  # "is " -> "1.060 in" -> 1.06 == 1.06 (exact match gave 0)
        "C",  # open row with a letter answer: " c" is inside " c"
        "So the probability is 1/64.",  # the shortest key span "1/64" holds the text "1/64"
        "Tampa, Florida",  # lmms-eval: the ground truth is the string "['tampa', 'florida']" -> wrong
        "x = 3.43",  # "=" in the last sentence -> 3.43; "3.429" rounds to 3.43 (official list only)
    ]
    records = [spec.score_item(it, p) for it, p in zip(items, predictions)]
    assert [r["correct"] for r in records] == [True, False, True, True, True, False, False]
    assert [r["variants"]["mmmu_official"] for r in records] == [True, False, True, True, True, True, True]
    assert records[2]["parsed"] == [1.06, "1.060 in"]
    result = spec.aggregate(records)
    assert result["accuracy"] == pytest.approx(400 / 7)
    assert result["variants"]["mmmu_official"] == pytest.approx(600 / 7)
    # release (lower-cased exact match / first character): only the open "C" -> 1 of 7
    assert result["variants"]["release"] == pytest.approx(100 / 7)
    # one unread letter among 4 options: the official random guess would add 1/4 in expectation
    assert (result["n_random_guess"], result["accuracy_expected_with_guess"]) == (1, pytest.approx(425 / 7))
    assert result["per_question_type"]["open"]["accuracy"] == pytest.approx(60.0)  # 3 of the 5 open rows


def test_mmmu_rows_past_the_kept_options_read_by_the_official_parser(release_full, write_benchmark) -> None:
    # Issue 15 with issue 16's parser: lines 32 (answer E) and 187 (answer I) of the release file keep only A-D.
    # The official parser reads the answer letter as one more choice (never by text), so a model that names it
    # is right; the answerable rows (line 1, answer B) are reported beside, by the same rule.
    spec = get_benchmark("MMMU")
    path, root = write_benchmark("MMMU_val.jsonl", release_lines(release_full, "MMMU_val.jsonl", [32, 187, 1, 32]))
    items = spec.load(path, root)
    assert [(it.answer, it.extra.get("answer_past_options", False)) for it in items] == [
        ("E", True),
        ("I", True),
        ("B", False),
        ("E", True),
    ]
    predictions = ["The answer is (E).", "I", "(B)", "A"]
    records = [spec.score_item(it, p) for it, p in zip(items, predictions)]
    assert [r["parsed"] for r in records] == ["E", "I", "B", "A"]
    assert [r["correct"] for r in records] == [True, True, True, False]
    assert [r["answerable"] for r in records] == [False, False, True, False]
    assert [r["variants"]["lenient"] for r in records] == [True, True, True, False]
    assert [r["variants"]["release"] for r in records] == [False, True, False, False]  # first character: "T", "(", "("
    assert mmmu_choice("(E)", {"A": "x", "B": "y"}) is None  # without the extra letter the parser cannot read E
    assert mmmu_choice("(E)", {"A": "x", "B": "y"}, extra_letters="E") == "E"
    result = spec.aggregate(records)
    assert (result["accuracy"], result["accuracy_answerable"], result["n_answerable"]) == (75.0, 100.0, 1)
    rows = general.summary_rows(spec, result, general.ScoredBenchmark(records=records), skipped=2)
    assert [(r.metric, r.score, r.items, r.skipped, r.variant) for r in rows] == [
        ("accuracy", 75.0, 4, 2, False),
        ("accuracy over the 1 answerable rows", 100.0, 1, 2, False),
        ("accuracy", 75.0, 4, 2, True),  # mmmu_official (no list ground truths here)
        ("accuracy", 75.0, 4, 2, True),  # lenient
        ("accuracy", 25.0, 4, 2, True),  # release
    ]
    assert rows[1].rule == rows[0].rule == spec.rule


def test_mmmu_official_rules_by_hand() -> None:
    options = {"A": "$6", "B": "$7", "C": "$8", "D": "$9"}
    assert mmmu_choice("The answer is (C).", options) == "C"
    assert mmmu_choice("B or maybe D", options) == "D"  # two " X " candidates: the last one wins
    assert mmmu_choice("I would say the cost is $8 per unit here", options) == "C"  # > 5 words: option text
    assert mmmu_choice("$8", options) is None  # short answers are not matched by text: unread (official: random)
    # Number normalisation: 1,060 == 1060; 2 decimals; several spans and numbers are candidates.
    assert mmmu_open_correct(mmmu_open_candidates("Thus the total is 1,060."), "1060")
    assert mmmu_open_correct(mmmu_open_candidates("The answer is 12.974 g"), "12.97")
    assert not mmmu_open_correct(mmmu_open_candidates("The answer is 12.98 g"), "12.97")
    assert mmmu_open_correct(mmmu_open_candidates("It is embryonic stage."), "embryonic")
    assert not mmmu_open_correct(mmmu_open_candidates("a"), "C")  # one letter matches a word only


# --------------------------------------------------------------------------------------------------- POPE


def test_pope_rule_on_verbose_answers_to_real_questions(release_full, write_benchmark) -> None:
    # The first eight questions of the release's POPE.jsonl (adversarial split), answered in sentences.
    rows = release_lines(release_full, "POPE.jsonl", list(range(1, 9)))
    assert [(r["problem"][11:-14], r["solution"]) for r in rows] == [
        ("snowboard", "yes"),
        ("backpack", "no"),
        ("person", "yes"),
        ("car", "no"),
        ("skis", "yes"),
        ("dog", "no"),
        ("truck", "yes"),
        ("car", "no"),
    ]
    answers = [
        "Yes, there is a snowboard leaning against the fence.",  # yes (right)
        "There is no backpack in the image.",  # no (right)
        "A person is skiing down the slope. No one else is visible.",  # first sentence has no no/not: yes (right)
        "There is not a car in the image.",  # no (right)
        "I do not see any skis.",  # no (wrong)
        "There is a dog on the left, though it is not clear.",  # "not" in the first sentence: no (right)
        "There is a truck parked on the street.",  # yes (right)
        "Yes. There is no car.",  # first sentence "Yes": yes (wrong)
    ]
    spec = get_benchmark("POPE")
    path, root = write_benchmark("POPE.jsonl", rows)
    records = [spec.score_item(it, a) for it, a in zip(spec.load(path, root), answers)]
    assert [r["parsed"] for r in records] == ["yes", "no", "yes", "no", "no", "no", "yes", "yes"]
    overall = spec.aggregate(records)["overall"]
    # TP 3 (1, 3, 7), FN 1 (5), TN 3 (2, 4, 6), FP 1 (8): every answer read, none "unparsed".
    assert (overall["tp"], overall["fn"], overall["tn"], overall["fp"], overall["n_unparsed"]) == (3, 1, 3, 1, 0)
    assert (overall["accuracy"], overall["precision"], overall["recall"]) == (75.0, 75.0, 75.0)
    assert (overall["f1"], overall["yes_ratio"]) == (pytest.approx(75.0), 50.0)
    # lmms-eval's exact match reads none of these sentences: 0; the release's 4-character prefix reads "yes," and
    # "yes." only -> 1 right of 8
    assert overall["variants"] == {"lmms_eval": 0.0, "release": 12.5}


# -------------------------------------------------------------------------------------------- RealWorldQA


def test_realworldqa_colon_options_from_the_release_file(release_full, write_benchmark) -> None:
    spec = get_benchmark("RealWorldQA")
    rows = release_lines(release_full, "RealworldQA.jsonl", [83, 694])
    path, root = write_benchmark("RealworldQA.jsonl", rows)
    hydrant, stop = spec.load(path, root)
    assert hydrant.extra["options"] == {"A": "Red", "B": "Yellow", "C": "White"}
    assert list(stop.extra["options"]) == ["A", "B", "C"]  # "B Only cars ..." continues the A., C. block
    assert stop.extra["options"]["B"] == "Only cars coming from our trajectory"
    assert hydrant.category == stop.category == "multiple_choice"
    scored = [spec.score_item(hydrant, p) for p in ("B. Yellow", "Yellow", "b")]
    # "B. Yellow" was read as free text before (wrong); lmms-eval reads "B." -> right. "Yellow" has no letter for
    # lmms-eval (wrong); ours reads the option text. A bare "b": lmms-eval's extractor is case-sensitive (wrong).
    assert [r["correct"] for r in scored] == [True, False, False]
    assert [r["variants"]["lenient"] for r in scored] == [True, True, True]
    assert spec.score_item(stop, "C")["correct"] is True


# ----------------------------------------------------------------------------------- MME, SEED, MME-RWL


def test_mme_bare_y_n_as_lmms_eval(write_benchmark) -> None:
    spec = get_benchmark("MME")
    rows = [{"Image": "images/count/1.png", "width": 4, "height": 4, "dataset": "count", "split": "val",
             "problem": f"Are there {n} cats? Please answer yes or no.", "solution": gt, "problem_id": n}
            for n, gt in ((1, "Yes"), (2, "No"))]  # fmt: skip
    path, root = write_benchmark("MME.jsonl", rows)
    records = [spec.score_item(it, p) for it, p in zip(spec.load(path, root), ["y", "n."])]
    assert [r["parsed"] for r in records] == ["yes", "no"]
    result = spec.aggregate(records)
    # lmms-eval: both right -> acc 100 + acc+ 100; the MME authors' rule (release) reads neither -> 0
    assert (result["overall"], result["variants"]["release"]) == (200.0, 0.0)


def test_seed_and_mme_realworld_read_as_lmms_eval(write_benchmark) -> None:
    seed = get_benchmark("SEED")
    rows = [{"Question_id": str(n), "Image": f"s{n}", "Question_Type": 1, "Category": "", "solution": gt,
             "problem": "Which?\nA. one\nB. two\nC. three\nD. four", "Subtask": "", "Task": "SEED-Bench_image"}
            for n, gt in enumerate("AB")]  # fmt: skip
    path, root = write_benchmark("SEED_Bench.jsonl", rows)
    a, b = seed.load(path, root)
    # "(A)": first character "(" -> wrong there (ours reads A); "Answer: A" reads "A", right only when A is the answer
    assert [seed.score_item(a, p)["correct"] for p in ("(A)", "Answer: A", "a")] == [False, True, True]
    assert [seed.score_item(b, p)["correct"] for p in ("(B)", "Answer: B")] == [False, False]
    assert [seed.score_item(b, p)["variants"]["lenient"] for p in ("(B)", "Answer: B")] == [True, True]
    # MME-RealWorld: the first capital A-E after the answer prefixes are removed.
    assert mme_realworld_letter("(C)") == "C"
    assert mme_realworld_letter("The best answer is (D)") == "D"
    assert mme_realworld_letter("Based on the image, the answer is C") == "B"  # the "B" of "Based", as there
    assert mme_realworld_letter("") == "A"  # "" is inside "(a)": as lmms-eval reads it
    assert mme_realworld_letter("there are many cars parked along the road and none of them is red") is None
    assert mme_realworld_letter("e") == "E"


def test_lmms_eval_mcq_extractor_by_hand() -> None:
    letters = ["A", "B", "C", "D"]
    assert mcq_extract("The correct answer is (B).", letters) == "B"  # the answer phrase (priority 7), then "(B)"
    assert mcq_extract("C", letters) == "C"
    assert mcq_extract("I pick A over B. Final: D", letters) == "D"  # "end" (priority 9) beats "period"
    assert mcq_extract("Between A and B, B is right", letters) == "B"  # "B" of "Between" is no start: last "B "
    assert mcq_extract("A, because B is wrong", letters) == "A"  # a standalone first letter (priority 10) wins
    assert mcq_extract("Yellow", letters) is None
    assert mcq_extract("", letters) is None
