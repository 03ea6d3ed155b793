"""Kill and resume (SPEC §10 "no working resume"): prediction files, inference on the tiny model, and the judge
stage over the scripted HTTP server. In every case the final outputs equal an uninterrupted run's."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

import pytest

from ground_r1.cli import evaluate
from ground_r1.evaluation import inference, predictions
from ground_r1.evaluation.inference import Engine, InferenceConfig
from ground_r1.evaluation.judge import load_judgments
from ground_r1.rollout.sampling import EVAL_GREEDY_SAMPLING

KEY = "sk-test-RESUME-secret-42"


def rec(key: str, status: str = "ok", **extra) -> dict:
    return {"key": key, "status": status, **extra}


# ------------------------------------------------------------------------------------------ the files


def test_writer_cuts_a_half_written_line_and_done_keys_span_shards(tmp_path):
    with predictions.PredictionWriter(predictions.shard_path(tmp_path, 0)) as w:
        w.write(rec("a:1"))
        w.write(rec("a:2", "error", error="cannot load image"))
    shard1 = predictions.shard_path(tmp_path, 1)
    shard1.write_text(json.dumps(rec("a:3")) + "\n" + '{"key": "a:4", "sta')  # killed mid-write
    # a:2 failed (retried on resume), a:4 was never completed: only a:1 and a:3 are done.
    assert predictions.done_keys(tmp_path) == {"a:1", "a:3"}
    assert shard1.read_text().endswith('"sta')  # readers never modify another process's shard
    with predictions.PredictionWriter(shard1) as w:  # the owner cuts the half line before appending
        w.write(rec("a:4"))
    assert [json.loads(line)["key"] for line in shard1.read_text().splitlines()] == ["a:3", "a:4"]


def test_merge_keeps_the_latest_record_per_key_in_item_order(tmp_path):
    (tmp_path / "predictions.rank0.jsonl").write_text(
        "\n".join(json.dumps(r) for r in [rec("k:2", "error", error="x"), rec("k:3", v=1)]) + "\n"
    )
    (tmp_path / "predictions.rank1.jsonl").write_text(json.dumps(rec("k:1")) + "\n")
    (tmp_path / "predictions.rank2.jsonl").write_text(json.dumps(rec("k:2", v=2)) + "\n")  # the retry succeeded
    merged = predictions.merge_predictions(tmp_path, ["k:1", "k:2", "k:3"])
    assert [json.loads(line) for line in merged.read_text().splitlines()] == [
        rec("k:1"),
        rec("k:2", v=2),
        rec("k:3", v=1),
    ]
    # The merged file is itself a source: merging again (e.g. after more shards) is idempotent.
    assert predictions.merge_predictions(tmp_path, ["k:1", "k:2", "k:3"]).read_text() == merged.read_text()


def test_a_foreign_line_is_reported_with_file_and_line(tmp_path):
    (tmp_path / "predictions.rank0.jsonl").write_text(json.dumps(rec("k:1")) + "\n" + '{"no_key": 1}\n')
    with pytest.raises(ValueError, match=r"predictions.rank0.jsonl:2: not a prediction record"):
        predictions.done_keys(tmp_path)


# ------------------------------------------------------------------------------------------ inference


class Killed(Exception):  # a simulated kill (the `tiny` fixture is in conftest.py)
    pass


def test_killed_inference_resumes_to_the_uninterrupted_predictions(tmp_path, tiny):
    from ground_r1.demo.synthetic import ensure_default_dataset

    model, processor = tiny
    items = inference.load_viscot_items(
        ensure_default_dataset() / "eval.jsonl", max_items_per_dataset=5, max_pixels=12544
    )
    config = InferenceConfig(
        protocol="ground_r1",
        batch_size=2,
        max_turns=2,
        sampling=dataclasses.replace(EVAL_GREEDY_SAMPLING, max_new_tokens=4),
    )
    make = lambda: Engine(model, processor, config)  # noqa: E731

    full = tmp_path / "full"
    inference.run_inference(items, make, full, config, progress=False)
    expected = inference.finish(full, items).read_text()

    def kill_after_first_batch(n: int) -> None:
        raise Killed

    run = tmp_path / "killed"
    with pytest.raises(Killed):
        inference.run_inference(items, make, run, config, progress=False, on_batch_done=kill_after_first_batch)
    shard = predictions.shard_path(run, 0)
    third = expected.splitlines()[2]
    with open(shard, "a") as handle:  # the kill hit while item 3's line was being written
        handle.write(third[: len(third) // 2])
    summary = inference.run_inference(items, make, run, config, progress=False)
    # Items 1-2 were done; 3 (half written), 4, 5 are predicted again, in the same batches as the full run.
    assert (summary.skipped, summary.written) == (2, 3)
    assert inference.finish(run, items).read_text() == expected
    assert [json.loads(line)["key"] for line in shard.read_text().splitlines()] == [
        f"eval.jsonl:{i}" for i in range(1, 6)
    ]
    # A rerun of a finished run loads no model and writes nothing.
    again = inference.run_inference(items, lambda: pytest.fail("model loaded"), run, config, progress=False)
    assert (again.skipped, again.written) == (5, 0)


# ------------------------------------------------------------------------------------------ judging


def write_predictions(run_dir: Path, n: int) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = [
        rec(
            f"v.jsonl:{i}",
            dataset="docvqa",
            problem=f"question {i}?",
            solution=f"answer {i}",
            turns=[f"<think>t</think><answer>guess {i}</answer>"],
        )
        for i in range(1, n + 1)
    ]
    (run_dir / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def score_by_item(request, n):
    """Item i scores i/10; the server sees the extracted answer 'guess i'."""
    i = int(re.search(r"model's answer: guess (\d+)", request.user_content).group(1))
    return ("score", i / 10)


def judge_cli(run_dir: Path) -> int:
    return evaluate.main(["--protocol", "baseline", "--output_dir", str(run_dir), "--stages", "judge,score,table"])


def test_killed_judging_resumes_to_the_uninterrupted_judgments(tmp_path, fake_chat_server, monkeypatch, caplog, capsys):
    monkeypatch.setenv("OPENAI_BASE_URL", fake_chat_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_MODEL", "judge-test")
    fake_chat_server.set_policy(score_by_item)
    caplog.set_level(logging.DEBUG)
    full, killed = tmp_path / "full", tmp_path / "killed"
    write_predictions(full, 6)
    write_predictions(killed, 6)
    assert judge_cli(full) == 0
    assert len(fake_chat_server.chat_requests) == 6

    lines = (full / "judgments.jsonl").read_text().splitlines()
    (killed / "judgments.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:30])  # killed mid-line
    fake_chat_server.reset()
    fake_chat_server.set_policy(score_by_item)
    assert judge_cli(killed) == 0
    # Two judgments survived the kill; the half-written one and the three never written are asked again.
    assert len(fake_chat_server.chat_requests) == 4

    strip = lambda j: {k: (v["status"], v["score"]) for k, v in j.items()}  # noqa: E731
    assert strip(load_judgments(killed / "judgments.jsonl")) == strip(load_judgments(full / "judgments.jsonl"))
    assert strip(load_judgments(full / "judgments.jsonl"))["v.jsonl:3"] == ("ok", 0.3)
    for name in ("scores.jsonl", "table.md", "table.csv"):
        assert (killed / name).read_text() == (full / name).read_text()
    # Judge mean of items 1..6 = (0.1+...+0.6)/6 = 0.35 -> 35.0; s = 0.187, / sqrt(6) = 0.076 -> ± 7.6.
    assert "| DocVQA | 6 | 35.0 ± 7.6 |" in (full / "table.md").read_text()
    # The key is never written or logged.
    outputs = [p.read_text() for d in (full, killed) for p in d.iterdir() if p.is_file()]
    captured = capsys.readouterr()
    assert all(KEY not in text for text in outputs + [caplog.text, captured.out, captured.err])
