"""The evaluation exit-code contract (issue 15; README "Exit codes"), through the two evaluation CLIs that every
evaluation launcher execs: 0 all evaluated; 1 a configuration error (a refused judge key included); 3 items left
unjudged (a rerun judges them); 4 records skipped, predictions failed or a benchmark that could not run; several:
the lowest non-zero. Also: what a skipped record leaves behind (skipped_records.jsonl, the table's count) and a
bad evidence box (evaluated, its box metric n/a)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fake_chat_server import FakeChatServer
from PIL import Image

from ground_r1.cli import evaluate, evaluate_general
from ground_r1.evaluation import outcome
from ground_r1.evaluation.inference import EVAL_SKIP_HINT

KEY = "sk-exit-codes-SECRET-4711"


@pytest.fixture(autouse=True)
def no_judge_env(monkeypatch):
    for name in ("OPENAI_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_API_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_lowest_non_zero_code_names_the_most_urgent_action():
    assert outcome.exit_code() == 0
    assert outcome.exit_code(incomplete=2) == 4
    assert outcome.exit_code(unjudged=1, incomplete=2) == 3
    assert outcome.exit_code(config_error=True, unjudged=1, incomplete=2) == 1
    assert (outcome.EXIT_OK, outcome.EXIT_CONFIG_ERROR, outcome.EXIT_UNJUDGED, outcome.EXIT_INCOMPLETE) == (0, 1, 3, 4)
    assert evaluate.EXIT_UNJUDGED == 3


# ----------------------------------------------------------------------------------- VisCoT: skipped, box n/a


def viscot_file(tmp_path: Path) -> Path:
    Image.new("RGB", (64, 48), (30, 90, 150)).save(tmp_path / "a.png")
    rows = [
        {
            "image": "a.png",
            "problem": "What colour?",
            "solution": "blue",
            "dataset": "docvqa",
            "bboxs": [[2, 2, 30, 20]],
        },
        {
            "image": "a.png",
            "problem": "What colour?",
            "solution": "blue",
            "dataset": "dude",
            "bboxs": [[868, 213, 859, 389]],
        },  # inverted, as line 729 of the release's file: a metric n/a
        {"image": "gone.png", "problem": "What colour?", "solution": "blue", "dataset": "docvqa"},  # cannot run
    ]
    path = tmp_path / "viscot.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_viscot_skips_what_cannot_run_evaluates_a_bad_box_and_exits_4(tmp_path, tiny_model_dir, capsys, caplog):
    # Before issue 15 the default stopped on both records (exit 1) and --skip_bad_records exited 0 without a count
    # or the promised file; the bad box cost its question.
    data, out = viscot_file(tmp_path), tmp_path / "out"
    args = [
        "--protocol",
        "ground_r1",
        "--model_path",
        str(tiny_model_dir),
        "--data_path",
        str(data),
        "--output_dir",
        str(out),
        "--max_new_tokens",
        "4",
        "--max_turns",
        "2",
        "--max_pixels",
        "12544",
        "--no_progress",
    ]
    assert evaluate.main(args) == 4
    skipped = lines(out / "skipped_records.jsonl")
    assert [row["text"] for row in skipped] == [
        f"{data}:3: image: image file not found: '{tmp_path / 'gone.png'}' (from 'gone.png'); check image_root / "
        "path_prefix"
    ]
    assert [row["text"] for row in lines(out / "evidence_box_issues.jsonl")] == [
        f"{data}:2: bboxs[0]: empty or inverted box [868, 213, 859, 389]: need x2 > x1 and y2 > y1"
    ]
    predicted = {p["key"]: p for p in lines(out / "predictions.jsonl")}
    assert sorted(predicted) == ["viscot.jsonl:1", "viscot.jsonl:2"] and predicted["viscot.jsonl:2"]["bboxs"] == []
    scores = {s["key"]: s for s in lines(out / "scores.jsonl")}
    assert (
        scores["viscot.jsonl:2"]["box_status"] == "bad_evidence_box" and scores["viscot.jsonl:2"]["box_score"] is None
    )
    assert scores["viscot.jsonl:2"]["rule_score"] is not None  # the question itself is scored
    table = (out / "table.md").read_text()
    assert table in capsys.readouterr().out
    assert (
        "- records: viscot.jsonl: 3 records read, 2 evaluated, 1 skipped (image: 1), 1 with an unusable "
        "evidence box (box metric n/a); each skipped record is listed in skipped_records.jsonl; the unusable "
        "evidence boxes in evidence_box_issues.jsonl"
    ) in table
    assert "1 n/a: evidence box unusable (the question is evaluated)" in table
    assert "train on the rest" not in caplog.text

    # Strict: every problem listed, exit 1, and the message speaks of evaluation.
    caplog.clear()
    assert evaluate.main([*args, "--output_dir", str(tmp_path / "strict"), "--no-skip_bad_records"]) == 1
    assert f"{data}:3: image: image file not found" in caplog.text and EVAL_SKIP_HINT in caplog.text
    assert "train on the rest" not in caplog.text


def test_refcoco_skips_a_record_without_a_usable_box_and_exits_4(tmp_path, tiny_model_dir, caplog):
    Image.new("RGB", (64, 48), (30, 90, 150)).save(tmp_path / "r.png")
    good = {
        "image": "r.png",
        "width": 64,
        "height": 48,
        "bboxs": [[2.0, 2.0, 20.0, 20.0]],
        "dataset": "RefCOCO/val",
        "problem": "",
        "solution": ["left block"],
    }
    rows = [good, {**good, "bboxs": [[2.0, 2.0, 0.0, 20.0]]}, {**good, "image": "gone.png"}]
    data = tmp_path / "refcoco.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert (
        evaluate.main(
            [
                "--protocol",
                "refcoco",
                "--model_path",
                str(tiny_model_dir),
                "--data_path",
                str(data),
                "--output_dir",
                str(out),
                "--max_new_tokens",
                "4",
                "--max_pixels",
                "12544",
                "--no_progress",
            ]
        )
        == 4
    )
    assert [(r["line"], r["field"]) for r in lines(out / "skipped_records.jsonl")] == [(2, "bboxs[0]"), (3, "image")]
    assert (
        "- records: refcoco.jsonl: 3 records read, 1 evaluated, 2 skipped (bboxs[0]: 1, image: 1)"
        in (out / "table.md").read_text()
    )


# ------------------------------------------------------------------------------------------- judge and grader


def write_predictions(run_dir: Path, n: int) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "key": f"v.jsonl:{i}",
            "status": "ok",
            "dataset": "docvqa",
            "problem": f"question {i}?",
            "solution": f"answer {i}",
            "turns": [f"<answer>guess {i}</answer>"],
        }
        for i in range(1, n + 1)
    ]
    (run_dir / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def judge_cli(run_dir: Path, *extra: str) -> int:
    return evaluate.main(
        ["--protocol", "baseline", "--output_dir", str(run_dir), "--stages", "judge,score,table", *extra]
    )


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_judge_key_stops_at_the_first_request_and_exits_1(tmp_path, monkeypatch, caplog, status):
    # Before issue 15: one request per item (54 for 54), each "failed", then exit 3 ("rerun").
    write_predictions(tmp_path, 54)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    caplog.set_level(logging.INFO)
    with FakeChatServer(policy=lambda request, n: ("status", status)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        assert judge_cli(tmp_path, "--judge_concurrency", "1") == 1
        assert len(server.chat_requests) == 1
    assert f"judge authentication failed: HTTP {status}" in caplog.text and "(exit 1)" in caplog.text
    assert KEY not in caplog.text and "rerun" not in caplog.text


def test_unjudged_items_exit_3_even_beside_skipped_records(tmp_path, monkeypatch):
    write_predictions(tmp_path, 3)
    outcome.RecordsReport(file="v.jsonl", records_read=4, skipped=1, skipped_by_field={"image": 1}, evaluated=3).write(
        tmp_path
    )
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeChatServer(policy=lambda request, n: ("reply", "no idea")) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        assert judge_cli(tmp_path) == 3  # 3 (rerun the judge) before 4 (look at the skipped record)
        server.set_policy(lambda request, n: ("reply", "score: 1"))
        assert judge_cli(tmp_path) == 4  # judged now; the skipped record remains
    assert (
        "- records: v.jsonl: 4 records read, 3 evaluated, 1 skipped (image: 1)" in (tmp_path / "table.md").read_text()
    )


def mmvet_run(tmp_path: Path, n: int = 3) -> tuple[Path, Path]:
    root = tmp_path / "data"
    (root / "MMVet").mkdir(parents=True)
    rows = [
        {
            "Question_id": f"v1_{i}",
            "Image": f"v1_{i}.png",
            "problem": f"What does sign {i} say?",
            "solution": "stop",
            "Category": "ocr",
            "Task": "t",
        }
        for i in range(n)
    ]
    (root / "MMVet.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for i in range(n):
        Image.new("RGB", (16, 16), (i, 2, 3)).save(root / "MMVet" / f"v1_{i}.png")
    out = tmp_path / "out"
    (out / "MMVet").mkdir(parents=True)
    predictions = [
        {"key": f"MMVet.jsonl:{i + 1}", "status": "ok", "protocol": "baseline", "turns": ["stop"]} for i in range(n)
    ]
    (out / "MMVet" / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in predictions))
    return root, out


def grade_cli(root: Path, out: Path) -> int:
    return evaluate_general.main(
        [
            "--protocol",
            "direct",
            "--benchmarks",
            "MMVet",
            "--dataset_root",
            str(root),
            "--output_dir",
            str(out),
            "--stages",
            "grade,score",
            "--model_path",
            "unused",
        ]
    )


def test_mmvet_gradings_left_undone_exit_3_and_a_rerun_grades_them(tmp_path, monkeypatch):
    # Before issue 15: "graded 0/3", exit 0, although the VisCoT launcher exits 3 for the same state.
    root, out = mmvet_run(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeChatServer(policy=lambda request, n: ("reply", "no idea")) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        assert grade_cli(root, out) == 3
        assert "judged 0/3, 3 judgment(s) failed" in (out / "summary.md").read_text()
        server.set_policy(lambda request, n: ("reply", "1.0"))
        assert grade_cli(root, out) == 0
        assert "judged 3/3" in (out / "summary.md").read_text()


def test_a_refused_grader_key_exits_1(tmp_path, monkeypatch, caplog):
    root, out = mmvet_run(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeChatServer(policy=lambda request, n: ("status", 401)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        assert (
            evaluate_general.main(
                [
                    "--protocol",
                    "direct",
                    "--benchmarks",
                    "MMVet",
                    "--dataset_root",
                    str(root),
                    "--output_dir",
                    str(out),
                    "--stages",
                    "grade,score",
                    "--model_path",
                    "unused",
                    "--judge_concurrency",
                    "1",
                ]
            )
            == 1
        )
        assert len(server.chat_requests) == 1
    assert "judge authentication failed: HTTP 401" in caplog.text and KEY not in caplog.text
