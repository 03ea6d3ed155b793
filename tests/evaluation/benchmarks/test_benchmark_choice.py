"""Letter benchmarks (SPEC §7): SEED-Bench, MMBench, MMMU, MME-RealWorld-Lite (headline rules and variants)."""

from __future__ import annotations

import pytest

from ground_r1.evaluation.benchmarks import get_benchmark


def _seed(qid: str, qtype: int, answer: str) -> dict:
    return {
        "Question_id": qid, "Image": f"{qid}_img", "Question_Type": qtype, "Category": "",
        "problem": "How many towels?\nA. One\nB. Two\nC. Three\nD. Four", "solution": answer,
        "Subtask": "", "Task": "SEED-Bench_image",
    }  # fmt: skip


def test_seed_accuracy_per_dimension(write_benchmark) -> None:
    spec = get_benchmark("SEED")
    records = [_seed("1", 5, "A"), _seed("2", 5, "B"), _seed("3", 5, "C"), _seed("4", 9, "D")]
    predictions = [
        "A",  # right
        "<think>maybe A</think><answer>(B) Two</answer>",  # lmms-eval: first character "(" -> wrong; ours: B
        "The answer is D",  # "T" -> wrong (gt C); ours reads D -> wrong too
        "I cannot tell",  # "I" -> wrong
    ]
    path, root = write_benchmark("SEED_Bench.jsonl", records)
    items = spec.load(path, root)
    assert [it.category for it in items] == ["Instances Counting"] * 3 + ["Text Understanding"]
    scored = [spec.score_item(it, p) for it, p in zip(items, predictions)]
    assert [r["parsed"] for r in scored] == ["A", "(", "T", "I"]  # lmms-eval's first character
    result = spec.aggregate(scored)
    assert result["accuracy"] == pytest.approx(25.0)  # 1 of 4
    assert (result["n"], result["n_correct"], result["n_unparsed"]) == (4, 1, 0)
    assert result["per_category"]["Instances Counting"]["accuracy"] == pytest.approx(100 / 3)  # 1 of 3
    assert result["per_category"]["Text Understanding"]["accuracy"] == 0.0
    # lenient (ours): "A" and "(B) Two" -> 2 of 4; release: first char of turn or of extracted answer: "A" only
    assert result["variants"] == {"lenient": pytest.approx(50.0), "release": pytest.approx(25.0)}
    assert spec.headline(result) == pytest.approx(25.0)
    assert spec.rule == "lmms-eval 0.7.3 seedbench (first character)"


def test_direct_and_multi_round_prompts(write_benchmark) -> None:
    spec = get_benchmark("SEED_Bench")
    path, root = write_benchmark("SEED_Bench.jsonl", [_seed("1", 5, "A")])
    item = spec.load(path, root)[0]
    assert spec.question(item) == "How many towels?\nA. One\nB. Two\nC. Three\nD. Four"
    assert spec.direct_prompt(item) == (
        "How many towels?\nA. One\nB. Two\nC. Three\nD. Four\nRespond with only the letter (A, B, C or D)."
    )


def _mmbench(qid: int, hint: str, problem: str, answer: str, cat: str, l2: str) -> dict:
    return {
        "Question_id": qid, "hint": hint, "problem": problem, "solution": answer, "Category": cat,
        "source": "scienceqa", "L2-category": l2, "comment": "nan", "split": "dev",
        "Image": f"images/img_{qid}.png",
    }  # fmt: skip


def test_mmbench_hint_nan_options_and_groups(write_benchmark) -> None:
    spec = get_benchmark("MMBench")
    records = [
        _mmbench(1, "Read the passage.", "Which material?\nA. rubber\nB. cotton\nC. nan\nD. nan\n", "A",
                 "function_reasoning", "attribute_reasoning"),
        _mmbench(2, "nan", "Is it crowded?\nA. yes\nB. no\nC. maybe\nD. nan\n", "B",
                 "image_scene", "coarse_perception"),
        _mmbench(3, "nan", "Emotion?\nA. happy\nB. sad\nC. anger\nD. love\n", "C",
                 "image_emotion", "coarse_perception"),
    ]  # fmt: skip
    path, root = write_benchmark("MMBench_en_dev.jsonl", records)
    items = spec.load(path, root)
    # hint first, "nan" options gone, trailing newline gone
    assert items[0].question == "Hint: Read the passage.\nWhich material?\nA. rubber\nB. cotton"
    assert items[0].extra["options"] == {"A": "rubber", "B": "cotton"}
    assert items[1].question == "Is it crowded?\nA. yes\nB. no\nC. maybe"  # hint "nan" -> none
    assert spec.direct_prompt(items[1]).endswith("C. maybe\nRespond with only the letter (A, B, C or D).")
    predictions = [
        "rubber",  # MMBench's matcher: no letter token, one option text inside the answer -> A, right
        "D",  # a letter token D (no such option here) -> read "D", wrong
        "C. anger",  # the token "C." -> C, right
    ]
    scored = [spec.score_item(it, p) for it, p in zip(items, predictions)]
    assert [r["parsed"] for r in scored] == ["A", "D", "C"]
    result = spec.aggregate(scored)
    # each question is its own only copy here: CircularEval = single pass = 2 of 3
    assert result["circular_accuracy"] == pytest.approx(200 / 3)
    assert result["single_pass_accuracy"] == pytest.approx(200 / 3)
    assert (result["n_questions"], result["n_originals"], result["n_unparsed"]) == (3, 3, 0)
    assert result["per_l2_category"]["coarse_perception"] == {"accuracy": 50.0, "n": 2}
    assert result["per_l2_category"]["attribute_reasoning"]["accuracy"] == 100.0
    assert result["circular_per_question"] == {"1": 1, "2": 0, "3": 1}


def test_a_skipped_mmbench_copy_leaves_its_question_out_of_circular_eval(write_benchmark) -> None:
    # Issue 15 skips a record whose image is missing; issue 16's CircularEval counts a question only if every copy
    # is right. Together: question 1's copy 1000001 is skipped, so question 1 is incomplete (left out, counted),
    # never scored right from the one copy that remains.
    from ground_r1.evaluation import general

    spec = get_benchmark("MMBench")
    problem = "Which?\nA. red\nB. blue\nC. nan\nD. nan\n"
    records = [
        _mmbench(q, "nan", problem, answer, "color", "perception")
        for q, answer in ((1, "A"), (2, "B"), (1000001, "B"), (1000002, "A"))
    ]
    path, root = write_benchmark("MMBench_en_dev.jsonl", records)
    (root / "images/img_1000001.png").unlink()
    read = spec.read(path, root)
    assert [it.extra["Question_id"] for it in read.items] == [1, 2, 1000002] and read.skipped_records == 1
    assert [it.extra["circular_size"] for it in read.items] == [2, 2, 2]  # the skipped copy still counts
    scored = [spec.score_item(it, it.answer) for it in read.items]  # every copy read answered right
    result = spec.aggregate(scored)
    assert (result["circular_accuracy"], result["n_questions"], result["n_incomplete"]) == (100.0, 1, 1)
    assert result["circular_per_question"] == {"2": 1}
    (circular, *_rest) = general.summary_rows(spec, result, general.ScoredBenchmark(scored), skipped=1)
    assert (circular.items, circular.left_out, circular.skipped) == (1, 1, 1)
    assert "1 question(s) with a copy missing left out" in circular.notes


def test_mme_realworld_lite_five_options(write_benchmark) -> None:
    spec = get_benchmark("mme-rwl")
    problem = "What is the number of vans?\n(A) 1\n(B) 2\n(C) 7\n(D) 9\n(E) The image does not feature the vans"
    records = [
        {"Question_id": f"p/{i}", "Image": f"v{i}.jpg", "problem": problem, "Question_Type": "Multiple Choice",
         "solution": sol, "Category": "vehicle/counting", "Subtask": sub, "Task": "Perception"}
        for i, (sol, sub) in enumerate([("E", "Monitoring"), ("A", "Monitoring"), ("B", "Remote Sensing")])
    ]  # fmt: skip
    path, root = write_benchmark("MME_RealWorld_Lite.jsonl", records)
    items = spec.load(path, root)
    assert list(items[0].extra["options"]) == ["A", "B", "C", "D", "E"]
    assert spec.direct_prompt(items[0]).endswith(
        "(E) The image does not feature the vans\nRespond with only the letter (A, B, C, D, or E)."
    )
    predictions = ["(E)", "<answer>A</answer>", "The answer is (E)."]
    result = spec.aggregate([spec.score_item(it, p) for it, p in zip(items, predictions)])
    assert result["accuracy"] == pytest.approx(200 / 3)
    assert result["per_subtask"]["Monitoring"]["accuracy"] == 100.0
    assert result["per_subtask"]["Remote Sensing"]["accuracy"] == 0.0
    assert result["per_task"]["Perception"]["n"] == 3


def test_mmmu_markers_and_single_image(write_benchmark, caplog) -> None:
    spec = get_benchmark("MMMU")
    records = [
        {"Question_id": "validation_Accounting_1", "Image": "images/img_0_image_1.png",
         "problem": "<image 1> What is the overhead?\nA. $6\nB. $7\nC. $8\nD. $9",
         "Question_Type": "multiple-choice", "solution": "B", "Category": "Managerial Accounting",
         "Subtask": "Medium", "Task": "MMMU_val"},
        {"Question_id": "validation_Art_2", "Image": "images/img_1_image_1.png",
         "problem": "Compare <image 1> and <image 2>.\nA. same\nB. different",
         "Question_Type": "multiple-choice", "solution": "A", "Category": "Art",
         "Subtask": "Easy", "Task": "MMMU_val"},
    ]  # fmt: skip
    path, root = write_benchmark("MMMU_val.jsonl", records)
    with caplog.at_level("WARNING"):
        items = spec.load(path, root)
    assert items[0].extra["image_markers"] == [1]
    assert items[1].extra["image_markers"] == [1, 2]
    assert isinstance(items[1].image, str)  # one image per record, as in the release
    assert "1 item(s) refer to more <image k>" in caplog.text
    # the marker stays in the text the model sees
    assert spec.question(items[0]).startswith("<image 1> What is the overhead?")


def test_an_answer_that_is_no_letter_of_the_options_is_a_skipped_record(write_benchmark) -> None:
    from ground_r1.evaluation.benchmarks import BenchmarkFileError

    spec = get_benchmark("SEED_Bench")
    path, root = write_benchmark("SEED_Bench.jsonl", [_seed("1", 5, "A"), _seed("2", 5, "two")])
    read = spec.read(path, root)
    assert [it.key for it in read.items] == ["SEED_Bench.jsonl:1"] and read.records_read == 2
    assert [str(i) for i in read.skipped] == [f"{path}:2: solution: 'two' is not one of the question's options ABCD"]
    with pytest.raises(BenchmarkFileError) as err:  # the strict form
        spec.load(path, root)
    assert err.value.problems == [f"{path}:2: solution: 'two' is not one of the question's options ABCD"]


def test_answer_letters_past_the_kept_options_stay_and_are_counted(write_benchmark, caplog) -> None:
    # Issue 15: 28 of MMMU_val's 900 rows answer E, F or I where the release kept A-D. They stay in the 900 as the
    # release evaluated them (right only if the model's letter equals the answer), with a warning and their count,
    # and the accuracy over the answerable rows is reported beside the accuracy over all rows.
    spec = get_benchmark("MMMU_val")
    row = {
        "Image": "images/a.png",
        "Question_Type": "multiple-choice",
        "Category": "Art",
        "Subtask": "Easy",
        "Task": "MMMU_val",
        "problem": "<image 1> Which?\nA. one\nB. two\nC. three\nD. four",
    }
    records = [dict(row, Question_id=str(i), solution=answer) for i, answer in enumerate("AEBF")]
    path, root = write_benchmark("MMMU_val.jsonl", records)
    with caplog.at_level("WARNING"):
        items = spec.load(path, root)
    assert len(items) == 4 and [it.extra.get("answer_past_options", False) for it in items] == [
        False,
        True,
        False,
        True,
    ]
    assert (
        "MMMU_val: 2 row(s) have an answer letter past the options the file kept (EF; first: MMMU_val.jsonl:2)"
        in caplog.text
    )
    replies = ["A", "E", "C", "The answer is B"]  # right, right (names the unshown E), wrong, wrong
    records = [spec.score_item(it, text) for it, text in zip(items, replies)]
    assert [r["correct"] for r in records] == [True, True, False, False]
    assert [r["answerable"] for r in records] == [True, False, True, False]
    metrics = spec.aggregate(records)
    assert (metrics["accuracy"], metrics["n"]) == (50.0, 4)
    assert (metrics["accuracy_answerable"], metrics["n_answerable"], metrics["n_answer_past_options"]) == (50.0, 2, 2)


def test_options_free_item_uses_exact_match(write_benchmark) -> None:
    spec = get_benchmark("MMMU_val")
    record = {"Question_id": "validation_Math_9", "Image": "images/m.png", "problem": "What is 2+3?",
              "Question_Type": "open", "solution": "5", "Category": "Math", "Subtask": "Easy",
              "Task": "MMMU_val"}  # fmt: skip
    path, root = write_benchmark("MMMU_val.jsonl", [record])
    item = spec.load(path, root)[0]
    assert item.extra["options"] == {}
    assert spec.score_item(item, "<answer>5.</answer>")["correct"] is True
    assert spec.score_item(item, "<answer>6</answer>")["correct"] is False


def test_a_list_of_images_stays_a_list(write_benchmark, placeholder_image, caplog) -> None:
    spec = get_benchmark("MMMU_val")
    record = {"Question_id": "validation_Art_3", "Image": ["images/a_1.png", "images/a_2.png"],
              "problem": "Compare <image 1> and <image 2>.\nA. same\nB. different",
              "Question_Type": "multiple-choice", "solution": "B", "Category": "Art", "Subtask": "Easy",
              "Task": "MMMU_val"}  # fmt: skip
    path, root = write_benchmark("MMMU_val.jsonl", [record], images=False)
    placeholder_image(root / "images/a_1.png")
    placeholder_image(root / "images/a_2.png")
    with caplog.at_level("WARNING"):
        item = spec.load(path, root)[0]
    assert item.image == [str(root / "images/a_1.png"), str(root / "images/a_2.png")]
    assert "refer to more <image k>" not in caplog.text  # two markers, two images
