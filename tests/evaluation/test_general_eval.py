"""General-benchmark runs (SPEC §7): protocols' prompts, file location and validation before inference, records
with prediction errors and failed MM-Vet gradings left out and counted, the summary table, MM-Vet grading through
the scripted HTTP server, and a killed run resuming per benchmark."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from PIL import Image

from ground_r1.cli import evaluate, evaluate_general
from ground_r1.evaluation import general, inference, pipeline
from ground_r1.evaluation.benchmarks import get_benchmark, mmvet_grader_messages
from ground_r1.evaluation.benchmarks.mmvet import MMVET_GRADER_PROMPT, MMVET_RETRY_SUFFIX
from ground_r1.evaluation.judge import JudgeConfig, load_judgments
from ground_r1.rollout.trajectory import Trajectory, Turn

SEED = {
    "Question_id": "7",
    "Image": "seed_7",
    "Question_Type": 5,
    "solution": "B",
    "Category": "",
    "problem": "How many cups?\nA. One\nB. Two\nC. Three\nD. Four",
}


def mme(task: str, image: str, answer: str, n: int) -> dict:
    return {"Image": image, "dataset": task, "solution": answer, "problem": f"Question {n}? Please answer yes or no."}


def pope(split: str, answer: str, n: int) -> dict:
    return {
        "Question_id": str(n),
        "Image": f"images/img_{n}.png",
        "solution": answer,
        "Category": split,
        "problem": f"Is there object {n} in the image?",
    }


def mmvet(n: int, answer: str) -> dict:
    return {
        "Question_id": f"v1_{n}",
        "Image": f"v1_{n}.png",
        "solution": answer,
        "Category": "rec,ocr",
        "problem": f"What does sign {n} say?",
    }


def write_root(root: Path, files: dict[str, list], per_benchmark_images: bool = True) -> Path:
    """``{name}.jsonl`` files (dicts, or raw strings for malformed lines) and a placeholder per ``Image``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, records in files.items():
        (root / f"{name}.jsonl").write_text(
            "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
        )
        for record in records:
            if isinstance(record, dict) and "Image" in record:
                path = (root / name if per_benchmark_images else root) / record["Image"]
                path = path if path.suffix else path.with_name(path.name + ".jpg")
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (8, 8), (1, 2, 3)).save(path)
    return root


def ok(key: str, text: str) -> dict:
    return {"key": key, "status": "ok", "protocol": "baseline", "turns": [text]}


# ------------------------------------------------------------------------------------------------ items


def test_each_protocol_poses_its_prompt_and_keeps_the_item_fields(tmp_path):
    root = write_root(tmp_path, {"SEED_Bench": [SEED]})
    (data,) = general.load_benchmarks(["seed"], root)  # an alias
    direct, r1, sft = (general.to_eval_items(data, p)[0] for p in ("direct", "ground_r1", "ground_sft"))
    question = SEED["problem"]
    assert direct.question == question + "\nRespond with only the letter (A, B, C or D)."
    assert r1.question == question  # the rollout's template asks for <answer> tags itself
    assert sft.question == direct.question
    assert direct.key == "SEED_Bench.jsonl:1" and direct.dataset == "SEED_Bench"
    assert direct.image == str(root / "SEED_Bench" / "seed_7.jpg")  # an id without extension, found as .jpg
    assert direct.fields == {
        "benchmark": "SEED_Bench",
        "problem": question,
        "solution": "B",
        "category": "Instances Counting",
        "line": 1,
    }
    from ground_r1.evaluation.identity import engine_protocol

    assert [engine_protocol(p) for p in ("direct", "baseline", "ground_r1", "ground_sft")] == [
        "baseline",
        "baseline",
        "ground_r1",
        "ground_sft",
    ]  # one vocabulary: "direct" is the baseline's other name
    assert [engine_protocol(p) for p in ("likelihood", "ground_r1_likelihood")] == ["baseline", "ground_r1"]
    with pytest.raises(
        ValueError, match="SEED_Bench cannot be evaluated under protocol 'refcoco': it supports baseline"
    ):
        general.to_eval_items(data, "refcoco")


def test_images_come_from_the_benchmark_folder_when_it_exists(tmp_path):
    spec = get_benchmark("POPE")
    flat = write_root(tmp_path / "flat", {"POPE": [pope("random", "yes", 1)]}, per_benchmark_images=False)
    assert general.locate_benchmark(spec, flat) == (flat / "POPE.jsonl", flat)
    nested = tmp_path / "nested"
    write_root(nested / "POPE", {"POPE": [pope("random", "yes", 1)]}, per_benchmark_images=False)
    assert general.locate_benchmark(spec, nested) == (nested / "POPE" / "POPE.jsonl", nested / "POPE")
    with pytest.raises(FileNotFoundError) as err:
        general.locate_benchmark(get_benchmark("MMVet"), flat)
    assert f"tried {flat / 'MMVet.jsonl'} and {flat / 'MMVet' / 'MMVet.jsonl'}" in str(err.value)


def test_an_unknown_benchmark_name_stops_the_run_before_any_work(tmp_path, monkeypatch, caplog):
    root = write_root(tmp_path / "data", {"MME": [mme("count", "a.png", "Yes", 1)]})
    monkeypatch.setattr("ground_r1.models.loading.load_model", lambda *a, **k: pytest.fail("model loaded"))
    caplog.set_level(logging.ERROR)
    out = tmp_path / "out"
    rc = evaluate_general.main(
        [
            "--protocol",
            "direct",
            "--benchmarks",
            "MME,mmvtt",
            "--dataset_root",
            str(root),
            "--model_path",
            "never-loaded",
            "--output_dir",
            str(out),
        ]
    )
    assert rc == 1  # a configuration error
    assert "unknown benchmark 'mmvtt'; did you mean 'MMVet'?" in caplog.text
    assert not out.exists()
    rc = evaluate_general.main(
        [
            "--protocol",
            "direct",
            "--dataset_root",
            str(tmp_path / "nowhere"),
            "--model_path",
            "never-loaded",
            "--output_dir",
            str(out),
        ]
    )
    assert rc == 1 and f"--dataset_root (DATASET_ROOT) is not a folder: {tmp_path / 'nowhere'}" in caplog.text


def test_one_benchmarks_bad_file_never_stops_the_others(tmp_path, tiny_model_dir, caplog):
    # Issue 15: one malformed record used to stop all benchmarks, and a missing file too. Now the bad record is
    # skipped (named in skipped_records.jsonl, counted in the summary), the benchmark without a file is reported
    # as one that could not run, the rest is evaluated, and the exit code says so: 4.
    root = write_root(
        tmp_path / "data",
        {
            "MME": [
                mme("count", "a.png", "Yes", 1),
                '{"Image": "a.png", "problem": "q?"}',
                mme("count", "a.png", "No", 3),
            ],
            "RealworldQA": [{"Image": "r.png", "problem": "Which?\nA. x\nB. y", "solution": "B"}],
        },
    )
    caplog.set_level(logging.INFO)
    out = tmp_path / "out"
    rc = evaluate_general.main(
        [
            "--protocol",
            "direct",
            "--benchmarks",
            "MME,POPE,RealworldQA",
            "--dataset_root",
            str(root),
            "--model_path",
            str(tiny_model_dir),
            "--max_new_tokens",
            "2",
            "--max_pixels",
            "12544",
            "--output_dir",
            str(out),
            "--no_progress",
        ]
    )
    assert rc == 4
    skipped = [json.loads(line) for line in (out / "skipped_records.jsonl").read_text().splitlines()]
    assert [(r["benchmark"], r["key"], r["field"]) for r in skipped] == [
        ("MME", "MME.jsonl:2", "solution"),
        ("MME", "MME.jsonl:2", "dataset"),
    ]
    assert skipped[0]["text"] == f"{root / 'MME.jsonl'}:2: solution: missing field"
    assert len((out / "MME" / "predictions.jsonl").read_text().splitlines()) == 2
    assert len((out / "RealworldQA" / "predictions.jsonl").read_text().splitlines()) == 1
    summary = (out / "summary.md").read_text()
    assert "| MME | total (perception + cognition) | " in summary and " | 2 | 1 | " in summary.split("| MME |")[1]
    # No rule made a number for a benchmark that could not run: its Rule cell is empty.
    assert (
        f"| POPE | could not run |  | n/a | 0 | 0 | 0 | 0 | COULD NOT RUN: POPE: benchmark file not found: tried {root / 'POPE.jsonl'}"
        in summary
    )
    assert "- MME: MME.jsonl: 3 records read, 2 evaluated, 1 skipped (dataset: 1, solution: 1)" in summary
    assert "- RealworldQA: RealworldQA.jsonl: 1 records read, 1 evaluated, 0 skipped" in summary
    assert "POPE CANNOT RUN: POPE: benchmark file not found" in caplog.text


def test_the_demo_set_covers_every_benchmark(tmp_path):
    root = general.write_demo_dataset(tmp_path)
    loaded = general.load_benchmarks(evaluate.benchmark_names("all"), root)
    assert {d.name: len(d.items) for d in loaded} == {
        "MME": 2,
        "POPE": 2,
        "SEED_Bench": 1,
        "MMBench_en_dev": 1,
        "MMMU_val": 1,
        "MME_RealWorld_Lite": 1,
        "RealworldQA": 1,
        "MMVet": 1,
    }
    assert evaluate.benchmark_names("mme, pope") == ["mme", "pope"]


# ------------------------------------------------------------------------------------------ records, table


def test_prediction_errors_and_failed_gradings_are_left_out_and_counted(tmp_path):
    root = write_root(tmp_path, {"MMVet": [mmvet(i, "STOP<OR>stop sign") for i in range(1, 5)]})
    (data,) = general.load_benchmarks(["MMVet"], root)
    keys = [f"MMVet.jsonl:{i}" for i in range(1, 5)]
    predictions = {k: ok(k, "<answer>stop</answer>") for k in keys[:3]}
    predictions[keys[3]] = {"key": keys[3], "status": "error", "error": "cannot read image"}
    grades = {
        keys[0]: {"status": "ok", "score": 1.0},
        keys[1]: {"status": "ok", "score": 0.4},
        keys[2]: {"status": "failed", "score": None},
    }
    scored = general.score_benchmark(data, predictions, grades)
    assert (len(scored.records), scored.errors, scored.missing) == (3, 1, 0)
    metrics = data.spec.aggregate(scored.records)
    # Graded: 1.0 and 0.4 -> mean 0.7 -> 70.0; the failed grading is not a 0 (which would give 46.7).
    assert (metrics["total"], metrics["n_graded"], metrics["n_failed"]) == (pytest.approx(70.0), 2, 1)
    (row,) = general.summary_rows(data.spec, metrics, scored)
    assert (row.score, row.items, row.left_out, row.notes) == (
        pytest.approx(70.0),
        3,
        2,
        "judged 2/3, 1 judgment(s) failed",
    )

    not_graded = general.score_benchmark(data, predictions, None)
    (row,) = general.summary_rows(data.spec, data.spec.aggregate(not_graded.records), not_graded)
    assert (row.score, row.left_out) == (None, 4)
    assert row.notes.startswith("NOT JUDGED")


def test_summary_table_in_the_papers_units(tmp_path):
    files = {
        "MME": [
            mme("existence", "e.png", "Yes", 1),
            mme("existence", "e.png", "No", 2),
            mme("count", "c.png", "Yes", 3),
            mme("count", "c.png", "No", 4),
        ],
        "POPE": [
            pope("random", "yes", 1),
            pope("random", "no", 2),
            pope("popular", "no", 3),
            pope("popular", "yes", 4),
        ],
        "RealworldQA": [{"Image": "r.png", "problem": "Which?\nA. x\nB. y", "solution": "B"}],
    }
    loaded = general.load_benchmarks(["MME", "POPE", "RealworldQA"], write_root(tmp_path, files))
    answers = {"MME": ["Yes", "Yes", "Yes", "No"], "POPE": ["Yes", "Yes", "No", "maybe"], "RealworldQA": ["B"]}
    rows = []
    for data in loaded:
        preds = {it.key: ok(it.key, text) for it, text in zip(data.items, answers[data.name])}
        scored = general.score_benchmark(data, preds)
        rows += general.summary_rows(data.spec, data.spec.aggregate(scored.records), scored)
    markdown = general.render_summary_markdown(rows, "direct, tiny").splitlines()
    mme_rule, pope_rule = get_benchmark("MME").rule, get_benchmark("POPE").rule
    # MME existence: 1/2 right (acc 50), its image not all right (acc+ 0) -> 50; count: 2/2 and 1/1 -> 200; sum 250.
    # Its error bar: a bootstrap over images within their task; one image per task here, so every resample is
    # the data itself: 0.0 (the release rule's variant row too).
    assert (
        f"| MME | total (perception + cognition) | {mme_rule} | 250.0 ± 0.0 | 4 | 0 | 0 | 0 | perception 250.0, "
        "cognition 0.0; only 2/14 tasks |"
    ) in markdown
    assert (
        "| MME | total (perception + cognition) | variant: release cal_MME.py: MME authors' rule (no bare y/n) "
        "| 250.0 ± 0.0 | 4 | 0 | 0 | 0 |  |"
    ) in markdown
    # POPE (the POPE rule reads every answer; "maybe" holds no "no"/"not" -> yes): tp 2 (yes/yes, maybe/yes), fp 1
    # (no/yes), tn 1: acc 3/4 = 75.0, P 2/3 = 66.7, R 2/2 = 100, F1 = 2*66.7*100/166.7 = 80.0, yes-ratio 3/4 = 75.0.
    # Accuracy's SE: values 100, 0, 100, 100 -> s = 50, / sqrt(4) = 25.0. F1's: the seeded bootstrap over the 4
    # items, 26.4.
    pope_notes = "precision 66.7, recall 100.0, yes-ratio 75.0"
    assert f"| POPE | accuracy | {pope_rule} | 75.0 ± 25.0 | 4 | 0 | 0 | 0 | {pope_notes} |" in markdown
    assert f"| POPE | F1 | {pope_rule} | 80.0 ± 26.4 | 4 | 0 | 0 | 0 | {pope_notes} |" in markdown
    # lmms-eval's exact match: "yes" and "no" right, "yes" on a no and "maybe" wrong -> 50.0; its SE: values 100, 0,
    # 100, 0 -> s = 57.735, / sqrt(4) = 28.9 (a variant row carries its own error bar).
    assert (
        "| POPE | accuracy | variant: lmms-eval 0.7.3 pope: exact yes/no after lower/strip | 50.0 ± 28.9 | 4 | 0 | 0 "
        "| 0 |  |"
    ) in markdown
    # One item: no standard error.
    assert (
        f"| RealworldQA | accuracy | {get_benchmark('RealworldQA').rule} | 100.0 ± n/a | 1 | 0 | 0 | 0 |  |" in markdown
    )
    assert markdown[0] == "## General benchmarks (direct, tiny)"
    csv_lines = general.render_summary_csv(rows).splitlines()
    assert csv_lines[0] == ("benchmark,metric,rule,variant,score,se,items,skipped,unparsed,left_out,notes,error_bar")
    assert csv_lines[3].startswith(f'POPE,accuracy,"{pope_rule}",no,75.0,25.0,4,')
    assert csv_lines[3].endswith(",standard error of the mean over 4 items")
    assert csv_lines[4].startswith(f'POPE,F1,"{pope_rule}",no,') and float(csv_lines[4].split(",")[5]) == pytest.approx(
        80
    )
    assert csv_lines[4].endswith('bootstrap standard error, 1000 resamples (seed 0) over 4 items"')


# ------------------------------------------------------------------------------------------ MM-Vet grading


def grader_policy(request, n):
    item_line = request.user_content[len(MMVET_GRADER_PROMPT) + 1 :]  # after the few-shot table
    if item_line.startswith("What does sign 2 say?"):
        return ("reply", "I cannot tell")  # never a number: 5 asks, then unparseable
    return ("reply", "0.8" if item_line.startswith("What does sign 1 say?") else "0.3 |")


def test_mmvet_grading_follows_the_official_protocol(tmp_path, fake_chat_server):
    root = write_root(tmp_path, {"MMVet": [mmvet(1, "STOP<AND>red"), mmvet(2, "exit"), mmvet(3, "open")]})
    (data,) = general.load_benchmarks(["MMVet"], root)
    predictions = {
        it.key: ok(it.key, f"<think>t</think><answer>guess {i}</answer>") for i, it in enumerate(data.items, 1)
    }
    fake_chat_server.set_policy(grader_policy)
    config = JudgeConfig(model="grader", base_url=fake_chat_server.base_url, max_tokens=3, backoff_base=0.0)
    out, cache = tmp_path / "grades.jsonl", tmp_path / "cache.jsonl"
    report = pipeline.judge_benchmark(data.spec, data, predictions, out, config, cache_path=cache)
    assert (report.ok, report.unparseable, report.requests) == (2, 1, 1 + 5 + 1)

    requests = fake_chat_server.chat_requests
    first = next(r for r in requests if "What does sign 1 say?" in r.user_content)
    # The official single user message, <AND> padded, the extracted answer of the final turn.
    assert first.messages == mmvet_grader_messages("What does sign 1 say?", "STOP<AND>red", "guess 1")
    assert first.user_content.endswith("What does sign 1 say? | STOP <AND> red | guess 1 | ")
    asks = [r for r in requests if "What does sign 2 say?" in r.user_content]
    assert [r.body["temperature"] for r in asks] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert [r.user_content.endswith(MMVET_RETRY_SUFFIX) for r in asks] == [False, True, True, True, True]
    assert {r.body["max_tokens"] for r in requests} == {3}

    grades = load_judgments(out)
    assert {k: (g["status"], g["score"]) for k, g in grades.items()} == {
        "MMVet.jsonl:1": ("ok", 0.8),
        "MMVet.jsonl:2": ("unparseable", None),
        "MMVet.jsonl:3": ("ok", 0.3),
    }
    scored = general.score_benchmark(data, predictions, grades)
    metrics = data.spec.aggregate(scored.records)
    assert metrics["total"] == pytest.approx(55.0)  # (0.8 + 0.3) / 2; the ungradable answer is not a 0
    assert metrics["n_failed"] == 1
    # The table names the grader that graded (from the grading records) beside the official one.
    (row,) = general.summary_rows(data.spec, metrics, scored)
    assert row.rule == "MM-Vet official grader prompt (grader grader; official: gpt-4-0613)"
    # Its error bar (issue 17): the graded scores 80 and 30 -> s = 35.36, / sqrt(2) = 25.0.
    assert (
        "| MMVet | total (LLM-judged) | MM-Vet official grader prompt (grader grader; official: gpt-4-0613) "
        "| 55.0 ± 25.0 |"
    ) in general.render_summary_markdown([row], "x")

    # Another run (a new grades file) with the same cache: graded answers cost no request.
    fake_chat_server.reset()
    again = pipeline.judge_benchmark(data.spec, data, predictions, tmp_path / "again.jsonl", config, cache_path=cache)
    assert (again.cached_hits, again.requests) == (2, 5)


# ------------------------------------------------------------------------------------------ resume


class Killed(Exception):
    pass


class ScriptedEngine:
    """Answers "Yes" to everything; raises Killed on call number ``kill_at`` (1-based) of this process."""

    calls: list[list[str]] = []
    kill_at: int | None = None

    def __init__(self, model, processor, config):
        self.config = config

    def prompt_text(self, item, input_size=None):
        return item.question

    def run_batch(self, items, images):
        ScriptedEngine.calls.append([it.key for it in items])
        if len(ScriptedEngine.calls) == ScriptedEngine.kill_at:
            raise Killed
        turn = Turn(text="Yes", ids=[1], is_answer=False)
        return [
            Trajectory(0, 0, [], img.size, img.size, completion_mask=[1], turns=[turn], finish_reason="stop")
            for img in images
        ]


class _Model:
    def to(self, device):
        return self

    def eval(self):
        return self


def test_a_killed_run_resumes_per_benchmark(tmp_path, monkeypatch):
    files = {
        "MME": [mme("count", "c.png", "Yes", 1), mme("count", "c.png", "No", 2)],
        "POPE": [pope("random", "yes", 1), pope("random", "no", 2)],
    }
    root = write_root(tmp_path / "data", files)
    monkeypatch.setattr(inference, "Engine", ScriptedEngine)
    monkeypatch.setattr("ground_r1.models.loading.load_model", lambda *a, **k: _Model())
    monkeypatch.setattr("ground_r1.models.loading.load_processor", lambda *a, **k: None)

    def run(out: Path) -> int:
        return evaluate_general.main(
            [
                "--protocol",
                "direct",
                "--benchmarks",
                "MME,POPE",
                "--dataset_root",
                str(root),
                "--model_path",
                "scripted",
                "--output_dir",
                str(out),
                "--batch_size",
                "1",
                "--no_progress",
            ]
        )

    ScriptedEngine.calls, ScriptedEngine.kill_at = [], None
    assert run(tmp_path / "full") == 0
    ScriptedEngine.calls, ScriptedEngine.kill_at = [], 3  # MME's two batches, then killed on POPE's first
    with pytest.raises(Killed):
        run(tmp_path / "killed")
    killed = tmp_path / "killed"
    assert (killed / "MME" / "predictions.jsonl").is_file() and not (killed / "POPE" / "predictions.jsonl").exists()
    ScriptedEngine.calls, ScriptedEngine.kill_at = [], None
    assert run(killed) == 0
    assert ScriptedEngine.calls == [["POPE.jsonl:1"], ["POPE.jsonl:2"]]  # MME finished: not predicted again
    for name in ("summary.md", "summary.csv", "MME/scores.jsonl", "POPE/scores.jsonl", "POPE/predictions.jsonl"):
        assert (killed / name).read_text() == (tmp_path / "full" / name).read_text()
    # Every answer is "Yes": MME count acc 50 + acc+ 0 = 50.0; POPE acc 1/2 = 50.0.
    summary = (killed / "summary.md").read_text()
    # One image: one bootstrap unit, so no standard error.
    assert f"| MME | total (perception + cognition) | {get_benchmark('MME').rule} | 50.0 ± n/a | 2 |" in summary
    assert f"| POPE | accuracy | {get_benchmark('POPE').rule} | 50.0 ± 50.0 | 2 |" in summary


def test_the_item_limit_keeps_whole_mmbench_questions_skips_bad_copies_and_every_row_has_its_error_bar(
    tmp_path, tiny_model_dir
):
    # Issues 15 + 16 + 17 through the CLI: the old flag name (an alias of --max_items) keeps the first 2 questions
    # with all their rotated copies (listed after the originals, as in the release file); a copy whose image is
    # missing is skipped, named and counted, and its question left out of CircularEval; the rows carry their rule,
    # the skipped count and an error bar.
    problem = "Which colour?\nA. red\nB. blue\nC. nan\nD. nan\n"
    records = [
        {
            "Question_id": q,
            "hint": "nan",
            "solution": answer,
            "Category": "color",
            "L2-category": "attribute_reasoning",
            "Image": f"images/img_{q}.png",
            "problem": problem,
        }
        for q, answer in ((1, "A"), (2, "B"), (3, "A"), (1000001, "B"), (1000002, "A"), (1000003, "B"))
    ]
    root = write_root(tmp_path / "data", {"MMBench_en_dev": records})
    (root / "MMBench_en_dev" / "images" / "img_1000002.png").unlink()
    out = tmp_path / "out"
    rc = evaluate_general.main(
        [
            "--protocol",
            "direct",
            "--benchmarks",
            "MMBench",
            "--dataset_root",
            str(root),
            "--model_path",
            str(tiny_model_dir),
            "--max_new_tokens",
            "2",
            "--max_pixels",
            "12544",
            "--max_items_per_dataset",
            "2",
            "--output_dir",
            str(out),
            "--no_progress",
        ]
    )
    assert rc == 4  # a record skipped: the rest finished
    predicted = [
        json.loads(line)["key"] for line in (out / "MMBench_en_dev" / "predictions.jsonl").read_text().splitlines()
    ]
    assert sorted(predicted) == ["MMBench_en_dev.jsonl:1", "MMBench_en_dev.jsonl:2", "MMBench_en_dev.jsonl:4"]
    summary = (out / "summary.md").read_text()
    circular = next(line for line in summary.splitlines() if "| CircularEval accuracy | CircularEval" in line)
    cells = [c.strip() for c in circular.strip("|").split("|")]
    # Items 1 (question 1; question 2 lost its copy), Skipped 1, Left out 1; one question: no standard error.
    assert cells[3].endswith("± n/a") and cells[4:8] == ["1", "1", cells[6], "1"]
    single = next(line for line in summary.splitlines() if "| single-pass accuracy (originals only) |" in line)
    assert " ± " in single and "| 2 | 1 |" in single  # the two originals kept, the skipped count
    assert (
        "- MMBench_en_dev: MMBench_en_dev.jsonl: 6 records read, 3 evaluated (3 kept by the item limit), 1 "
        "skipped (Image: 1)"
    ) in summary
    metrics = json.loads((out / "MMBench_en_dev" / "metrics.json").read_text())
    assert metrics["protocol"] == "baseline" and summary.startswith("## General benchmarks (baseline, ")  # "direct"
    assert [(u["metric"], u["variant"]) for u in metrics["uncertainty"]] == [
        ("CircularEval accuracy", False),
        ("single-pass accuracy (originals only)", False),
        ("CircularEval accuracy", True),
        ("per-row accuracy", True),
    ]
    assert metrics["uncertainty"][0]["method"].startswith(
        "bootstrap standard error, 1000 resamples (seed 0) over 1 questions"
    )
