"""VisCoT scores and tables (SPEC §7, §9) from per-item files, against hand-computed values.

The hand-made run (predictions.jsonl + judgments.jsonl, as the infer and judge stages write them):

| key | dataset | final turn            | solution          | rule (SPEC §3)                  | judge        |
|-----|---------|-----------------------|-------------------|---------------------------------|--------------|
| d1  | docvqa  | <answer>31</answer>   | 31                | WER: 1.0                        | 1.0          |
| d2  | docvqa  | <answer>red bus</...> | red car           | 1 - min(1/2, 1/2) = 0.5         | 0.6          |
| t1  | textvqa | <answer>bryan owens</ | bryan owens       | 1.0                             | 0.9          |
| t2  | textvqa | <answer>owens</answer>| bryan owens       | 1 - min(1/2, 1/1) = 0.5         | unparseable  |
| g1  | gqa     | <answer>C</answer>    | <answer>C</answer>| letter: 1.0                     | 1.0          |
| g2  | gqa     | <answer>A</answer>    | <answer>B</answer>| letter: 0.0                     | 0.0          |
| e1  | emotic  | <answer>joy</answer>  | happiness         | n/a (no rule)                   | 0.7          |

Per dataset (x100): DocVQA judge 80.0 rule 75.0; TextVQA judge 90.0 (1 failure excluded) rule 75.0;
GQA judge 50.0 rule 50.0; Emotic judge 70.0 rule n/a. AVG over the 3 paper sub-datasets present:
judge (80 + 90 + 50) / 3 = 73.3, rule (75 + 75 + 50) / 3 = 66.7; emotic is not averaged.
Failure share of the AVG's items: 1 of 6 = 16.7% > 5%: the judge AVG is refused unless allowed.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import pytest

from ground_r1.evaluation import scores, tables
from ground_r1.evaluation.judge import load_judgments
from ground_r1.evaluation.predictions import load_predictions

ITEMS = [  # key, dataset, final turn, solution, judge status, judge score
    ("d1", "docvqa", "<answer>31</answer>", "31", "ok", 1.0),
    ("d2", "docvqa", "<think>hm</think><answer>red bus</answer>", "red car", "ok", 0.6),
    ("t1", "textvqa", "<answer>bryan owens</answer>", "bryan owens", "ok", 0.9),
    ("t2", "textvqa", "<answer>owens</answer>", "bryan owens", "unparseable", None),
    ("g1", "gqa", "<answer>C</answer>", "<answer>C</answer>", "ok", 1.0),
    ("g2", "gqa", "<answer>A</answer>", "<answer>B</answer>", "ok", 0.0),
    ("e1", "emotic", "<answer>joy</answer>", "happiness", "ok", 0.7),
]


def write_run(run_dir: Path, items=ITEMS, judged: bool = True) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "predictions.jsonl", "w") as handle:
        for key, dataset, turn, solution, _, _ in items:
            handle.write(
                json.dumps(
                    {
                        "key": key,
                        "status": "ok",
                        "dataset": dataset,
                        "problem": "q?",
                        "solution": solution,
                        "turns": ["<think>a</think><box>[1,2,3,4]</box>", turn],
                    }
                )
                + "\n"
            )
    if judged:
        with open(run_dir / "judgments.jsonl", "w") as handle:
            for key, _, _, _, status, score in items:
                handle.write(json.dumps({"key": key, "status": status, "score": score}) + "\n")
    return run_dir


def rows_of(run_dir: Path, judged: bool = True) -> list[dict]:
    judgments = load_judgments(run_dir / "judgments.jsonl") if judged else None
    return scores.score_predictions(load_predictions(run_dir), judgments)


def test_score_rows_put_judge_and_rule_side_by_side(tmp_path):
    rows = {r["key"]: r for r in rows_of(write_run(tmp_path))}
    assert rows["d2"] == {
        "key": "d2",
        "dataset": "docvqa",
        "status": "ok",
        "letter_rule": "spec",
        "rule_score": 0.5,
        "judge_score": 0.6,
        "judge_status": "ok",
        "box_score": None,
        "box_status": "no_grounding",
    }
    assert (rows["t2"]["rule_score"], rows["t2"]["judge_score"], rows["t2"]["judge_status"]) == (
        0.5,
        None,
        "unparseable",
    )
    assert (rows["e1"]["rule_score"], rows["e1"]["judge_score"]) == (None, 0.7)  # emotic: no rule -> n/a


def test_per_dataset_means_and_the_avg_over_paper_datasets(tmp_path):
    run = tables.summarize(rows_of(write_run(tmp_path)), "ours", allow_failures=True)
    docvqa, textvqa = run.stats["docvqa"], run.stats["textvqa"]
    assert (docvqa.items, docvqa.judge_mean, docvqa.rule_mean) == (2, pytest.approx(0.8), pytest.approx(0.75))
    assert (textvqa.judge_mean, textvqa.judge_failures, textvqa.rule_mean) == (
        pytest.approx(0.9),
        1,
        pytest.approx(0.75),
    )
    assert run.judge_avg.value == pytest.approx((0.8 + 0.9 + 0.5) / 3)
    assert run.rule_avg.value == pytest.approx((0.75 + 0.75 + 0.5) / 3)
    md = tables.render_markdown([run])
    assert md.splitlines()[2:8] == [
        "| dataset | items | judge | rule | failures |",
        "|---|---:|---:|---:|---:|",
        "| DocVQA | 2 | 80.0 ± 20.0 | 75.0 ± 25.0 | 0 |",  # judge 1.0, 0.6: s = 0.283, / sqrt(2) = 0.2
        "| TextVQA | 2 | 90.0 ± n/a | 75.0 ± 25.0 | 1 |",  # one judged item: no standard error
        "| GQA | 2 | 50.0 ± 50.0 | 50.0 ± 50.0 | 0 |",
        # The AVG's error bar: the seeded bootstrap of the mean of sub-dataset means (items resampled within their
        # sub-dataset); near sqrt(14.1^2 + 0 + 35.4^2) / 3 = 12.7, the plug-in value for these sizes.
        "| **AVG (3 of 12)** | **6** | **73.3 ± 12.4** | **66.7 ± 14.4** | **1** |",
    ]
    assert "| Emotic (not in AVG) | 1 | 70.0 ± n/a | n/a | 0 |" in md
    assert run.judge_avg.se == pytest.approx(0.1235, abs=5e-4)


def test_the_avg_is_refused_above_the_failure_share(tmp_path):
    rows = rows_of(write_run(tmp_path))
    refused = tables.summarize(rows, "ours")  # 1 of 6 items failed: 16.7% > 5%
    assert refused.judge_avg.value is None and refused.judge_avg.refused
    assert refused.rule_avg.value == pytest.approx(2 / 3)  # no inference error: the rule AVG stands
    md = tables.render_markdown([refused])
    assert "| **AVG (3 of 12)** | **6** | **refused** | **66.7 ± 14.4** | **1** |" in md
    assert "judge AVG refused: 1 of 6 items failed (16.7% > 5%)" in md and "--allow_failures" in md
    assert tables.summarize(rows, "ours", max_failure_share=0.2).judge_avg.value == pytest.approx(11 / 15)


def test_inference_errors_are_failures_of_both_columns(tmp_path):
    run_dir = write_run(tmp_path)
    with open(run_dir / "predictions.jsonl", "a") as handle:
        handle.write(json.dumps({"key": "d3", "status": "error", "dataset": "docvqa", "error": "cannot load"}) + "\n")
    rows = {r["key"]: r for r in rows_of(run_dir)}
    assert rows["d3"] == {
        "key": "d3",
        "dataset": "docvqa",
        "status": "error",
        "letter_rule": "spec",
        "rule_score": None,
        "judge_score": None,
        "judge_status": "missing",
        "box_score": None,
        "box_status": "no_grounding",
    }
    run = tables.summarize(rows.values(), "ours", max_failure_share=0.5)
    # DocVQA means are unchanged (the error is excluded), and counted: judge failures 1, rule failures 1 of 7.
    assert (run.stats["docvqa"].items, run.stats["docvqa"].judge_failures, run.stats["docvqa"].errors) == (3, 1, 1)
    assert run.stats["docvqa"].judge_mean == pytest.approx(0.8)
    assert run.rule_avg.value == pytest.approx(2 / 3)
    assert "| DocVQA | 3 | 80.0 ± 20.0 | 75.0 ± 25.0 | 1 |" in tables.render_markdown([run])


def test_nothing_judged_says_so_loudly(tmp_path, caplog):
    run = tables.summarize(rows_of(write_run(tmp_path, judged=False), judged=False), "baseline")
    assert not run.judged
    caplog.set_level(logging.WARNING)
    md_path, csv_path = tables.write_tables([run], tmp_path / "out")
    md = md_path.read_text()
    assert "**NOTHING WAS JUDGED**" in md
    assert "| DocVQA | 2 | not judged | 75.0 ± 25.0 | 0 |" in md
    assert "| **AVG (3 of 12)** | **6** | **not judged** | **66.7 ± 14.4** | **0** |" in md
    assert "NOTHING WAS JUDGED for baseline" in caplog.text
    assert "not judged" in csv_path.read_text()


def test_two_runs_side_by_side_and_csv(tmp_path):
    baseline_items = [(k, d, "<answer>zzz</answer>", s, "ok", 0.5) for k, d, _, s, _, _ in ITEMS]
    baseline = tables.summarize(rows_of(write_run(tmp_path / "b", baseline_items)), "baseline")
    ours = tables.summarize(rows_of(write_run(tmp_path / "g")), "ground_r1", allow_failures=True)
    md = tables.render_markdown([baseline, ours])
    assert "| dataset | baseline items | baseline judge | baseline rule | baseline failures | ground_r1 items |" in md
    # Baseline: every judge score 0.5; rule: "zzz" vs gqa letters 0, vs free text WER 0 -> 0.0.
    assert "| GQA | 2 | 50.0 ± 0.0 | 0.0 ± 0.0 | 0 | 2 | 50.0 ± 50.0 | 50.0 ± 50.0 | 0 |" in md
    assert (
        "| **AVG (3 of 12)** | **6** | **50.0 ± 0.0** | **0.0 ± 0.0** | **0** | **6** | **73.3 ± 12.4** | "
        "**66.7 ± 14.4** | **1** |"
    ) in md
    table = list(csv.reader(io.StringIO(tables.render_csv([baseline, ours]))))
    assert table[0][-1] == "in_avg" and table[0][1:4] == ["baseline items", "baseline judge", "baseline judge_se"]
    avg = next(row for row in table if row[0] == "AVG (3 of 12)")
    assert avg == [
        "AVG (3 of 12)",
        "6",
        "50.00",
        "0.00",
        "0.00",
        "0.00",
        "0",
        "6",
        "73.33",
        "12.35",
        "66.67",
        "14.43",
        "1",
        "avg",
    ]
    emotic = next(row for row in table if row[0].startswith("Emotic"))
    assert emotic[-1] == "no" and emotic[10:12] == ["n/a", ""] and emotic[8:10] == ["70.00", ""]


def test_all_twelve_paper_datasets_give_the_plain_avg(tmp_path):
    names = list(tables.PAPER_DATASETS)
    # Dataset i gets judge score i/12 on its one item: AVG = mean(0/12 .. 11/12) = 5.5/12 = 45.83.
    items = [(f"k{i}", name, "<answer>x</answer>", "x", "ok", i / 12) for i, name in enumerate(names)]
    run = tables.summarize(rows_of(write_run(tmp_path, items)), "ours")
    assert run.avg_label == "AVG" and run.judge_avg.value == pytest.approx(5.5 / 12)
    # One item per sub-dataset: every resample is the data itself, so the AVG's bootstrap error is 0.
    assert "| **AVG** | **12** | **45.8 ± 0.0** |" in tables.render_markdown([run])


def test_cli_score_and_table_stages_put_the_baseline_beside_ground_r1(tmp_path, capsys, monkeypatch):
    from ground_r1.cli import evaluate

    for name in ("OPENAI_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_API_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    baseline_items = [(k, d, "<answer>zzz</answer>", s, "ok", 0.5) for k, d, _, s, _, _ in ITEMS]
    baseline, ours = write_run(tmp_path / "b", baseline_items), write_run(tmp_path / "g")
    (baseline / "inference_config.json").write_text(
        json.dumps({"protocol": "baseline", "prompt_class": "only_question"})
    )
    (ours / "inference_config.json").write_text(json.dumps({"protocol": "ground_r1"}))
    assert evaluate.main(["--protocol", "baseline", "--output_dir", str(baseline), "--stages", "score"]) == 0
    code = evaluate.main(
        [
            "--protocol",
            "ground_r1",
            "--output_dir",
            str(ours),
            "--stages",
            "score,table",
            "--compare_to",
            str(baseline),
            "--allow_failures",
        ]
    )
    assert code == 0
    table = (ours / "table.md").read_text()
    assert table in capsys.readouterr().out
    assert table.startswith("## VisCoT benchmark (scores x100): baseline[only_question] vs ground_r1")
    assert (
        "| **AVG (3 of 12)** | **6** | **50.0 ± 0.0** | **0.0 ± 0.0** | **0** | **6** | **73.3 ± 12.4** | "
        "**66.7 ± 14.4** | **1** |"
    ) in table
    # Without --allow_failures the 16.7% judge failures of ground_r1 refuse its judge AVG.
    assert (
        evaluate.main(
            ["--protocol", "ground_r1", "--output_dir", str(ours), "--stages", "table", "--compare_to", str(baseline)]
        )
        == 0
    )
    assert "| **6** | **refused** | **66.7 ± 14.4** | **1** |" in (ours / "table.md").read_text()


def _grounded(key, dataset, first_box, bboxs, box_issues=None, answered_at_once=False):
    """A ground_r1 prediction whose first turn gave ``first_box`` (original pixels) and whose record has ``bboxs``."""
    turns = (
        [{"text": "<answer>x</answer>", "is_answer": True, "box_original": None}]
        if answered_at_once
        else [
            {"text": "<box>[1,2,3,4]</box>", "is_answer": False, "box_original": first_box},
            {"text": "<answer>x</answer>", "is_answer": True, "box_original": None},
        ]
    )
    record = {
        "key": key,
        "status": "ok",
        "protocol": "ground_r1",
        "dataset": dataset,
        "problem": "q?",
        "solution": "x",
        "turns": [t["text"] for t in turns],
        "bboxs": bboxs,
        "trajectory": {"turns": turns},
    }
    if box_issues:
        record["box_issues"] = box_issues
    return record


def test_a_bad_evidence_box_keeps_the_question_with_its_box_metric_na_and_counted():
    # Issue 15: the evidence box only measures box quality; a record whose box is unusable is evaluated (judge and
    # rule as any other) with the box metric n/a, counted in the table's notes.
    predictions = [
        _grounded("a", "dude", [0, 0, 10, 10], [[0, 0, 10, 10]]),  # GIoU 1 -> score 1
        _grounded("b", "dude", [0, 0, 10, 10], [[10, 0, 20, 10]]),  # GIoU 0 (touching) -> 0.5
        _grounded(
            "c",
            "dude",
            [0, 0, 10, 10],
            [],
            ["bboxs[0]: box [1409, 2512, 1478, 2549] lies entirely outside the 1867x2401 image"],
        ),
        _grounded("d", "dude", None, [[0, 0, 10, 10]], answered_at_once=True),  # no box: left out, counted
        _grounded("e", "dude", [0, 0, 10, 10], []),  # the record has no box at all
    ]
    rows = {r["key"]: r for r in scores.score_predictions(predictions, None)}
    assert [(rows[k]["box_score"], rows[k]["box_status"]) for k in "abcde"] == [
        (1.0, "ok"),
        (0.5, "ok"),
        (None, "bad_evidence_box"),
        (None, "no_box"),
        (None, "no_evidence_box"),
    ]
    assert all(rows[k]["rule_score"] == 1.0 for k in "abcde")  # every question is evaluated
    run = tables.summarize(rows.values(), "ours")
    md = tables.render_markdown([run])
    assert "| dataset | items | judge | rule | box | failures |" in md
    # Each cell with its standard error (issue 17): rule 1, 1, 1, 1, 1 -> 0.0; box over the 2 scored boxes, 1.0 and
    # 0.5 -> s 0.354 / sqrt(2) = 25.0.
    assert "| DUDE | 5 | not judged | 100.0 ± 0.0 | 75.0 ± 25.0 | 0 |" in md
    csv_lines = tables.render_csv([run]).splitlines()
    assert csv_lines[0] == "dataset,items,judge,judge_se,rule,rule_se,box,box_se,failures,in_avg"
    assert csv_lines[1] == "DUDE,5,not judged,,100.00,0.00,75.00,25.00,0,yes"
    assert (
        "- ours: box = GIoU score ((GIoU + 1) / 2, SPEC §3) of the first box against the first usable evidence "
        "box, x100; 2 scored, 1 n/a: evidence box unusable (the question is evaluated), 1 n/a: no evidence box, "
        "1 no box in the first turn."
    ) in md
