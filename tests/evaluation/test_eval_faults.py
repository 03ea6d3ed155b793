"""Evaluation faults beyond a single retry (issue 9 part 4): the judge endpoint down for a while (waited out) or
longer than the retry window (the run ends with `failed` records and a rerun judges only those), a kill between
the judge cache and the judgments file, and inference killed at several seed-chosen points. In every case the
finished run holds exactly one record per item and equals an uninterrupted run.

test_judge.py covers single faults (429 with Retry-After, 5xx, timeouts, dropped connections, garbage, 401) and a
kill mid-line; the seeded random-kill harness (benchmarks/reliability) runs these end to end as processes.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import socket
import time
from pathlib import Path

from fake_chat_server import FakeChatServer

from ground_r1.cli import evaluate
from ground_r1.evaluation import inference, predictions
from ground_r1.evaluation.inference import Engine, InferenceConfig
from ground_r1.evaluation.judge import Judge, JudgeConfig, JudgeItem, load_judgments
from ground_r1.rollout.sampling import EVAL_GREEDY_SAMPLING

KEY = "sk-faults-test"


def items(n: int) -> list[JudgeItem]:
    return [JudgeItem(f"k{i}", f"question {i}?", f"gt {i}", f"pred {i}") for i in range(n)]


def score_by_item(request, n) -> tuple:
    """Item i scores i/10 (read back from 'question i?')."""
    return ("score", int(re.search(r"question (\d+)\?", request.user_content).group(1)) / 10)


def judge(base_url: str, **overrides) -> Judge:
    settings = dict(base_url=base_url, api_key=KEY, backoff_base=0.001, backoff_cap=0.01, timeout=2.0, concurrency=3)
    settings.update(overrides)
    return Judge(JudgeConfig(**settings))


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def dead_url() -> str:
    """An endpoint nobody listens on: every request is refused (a server that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_endpoint_down_longer_than_the_retry_window_then_a_rerun_judges_only_the_failed_items(tmp_path):
    out = tmp_path / "judgments.jsonl"
    first = judge(dead_url(), max_retries=2).judge_items(items(6), out)
    # Down for the whole run: 1 request + 2 retries per item, each refused; recorded as failed, never scored.
    assert (first.ok, first.failed, first.requests) == (0, 6, 18)
    assert {(r["status"], r["score"], r["attempts"]) for r in lines(out)} == {("failed", None, 3)}
    assert all(r["error"].startswith("connection error") for r in lines(out))
    with FakeChatServer(policy=score_by_item) as server:  # the endpoint is back (at another address)
        assert judge(server.base_url).judge_items(items(4), out).resumed == 0  # only 4 asked: 2 stay failed
        assert len(server.chat_requests) == 4
        server.reset()
        server.set_policy(score_by_item)
        again = judge(server.base_url).judge_items(items(6), out)
        assert (again.resumed, again.ok, len(server.chat_requests)) == (4, 2, 2)  # only the missing two
    records = lines(out)
    assert sorted(r["key"] for r in records) == [f"k{i}" for i in range(6)]  # each item exactly once
    assert {r["key"]: (r["status"], r["score"]) for r in records} == {f"k{i}": ("ok", i / 10) for i in range(6)}


def test_endpoint_down_for_a_while_is_waited_out(tmp_path):
    down_until: list[float] = []  # set at the first request, so a slow start on a loaded machine cannot skip it

    def policy(request, n):  # 503 with Retry-After for 0.3 s from the first request, then a normal endpoint
        if not down_until:
            down_until.append(time.monotonic() + 0.3)
        return ("status", 503, 0.05) if time.monotonic() < down_until[0] else score_by_item(request, n)

    out = tmp_path / "judgments.jsonl"
    with FakeChatServer(policy=policy) as server:
        # The retry window (30 retries x 0.05 s Retry-After = 1.5 s) outlasts the 0.3 s of downtime.
        report = judge(server.base_url, max_retries=30).judge_items(items(6), out)
        statuses = [r.behaviour[1] if r.behaviour[0] == "status" else "score" for r in server.chat_requests]
    assert (report.ok, report.failed) == (6, 0)
    assert statuses.count("score") == 6 and statuses.count(503) >= 3  # the first 3 in flight hit the downtime
    assert report.retries == statuses.count(503)
    assert {r["key"]: r["score"] for r in lines(out)} == {f"k{i}": i / 10 for i in range(6)}


def test_a_kill_between_the_cache_and_the_judgments_file_costs_no_request(tmp_path):
    out, cache = tmp_path / "judgments.jsonl", tmp_path / "cache.jsonl"
    with FakeChatServer(policy=score_by_item) as server:
        judge(server.base_url).judge_items(items(5), out, cache_path=cache)
        full = out.read_text()
        # The kill hit after the last item's cache entry was written, before its judgment was: drop that line.
        kept = full.splitlines(keepends=True)[:-1]
        out.write_text("".join(kept))
        server.reset()
        server.set_policy(score_by_item)
        report = judge(server.base_url).judge_items(items(5), out, cache_path=cache)
        assert server.chat_requests == []
    assert (report.resumed, report.cached_hits, report.requests) == (4, 1, 0)
    strip = lambda path: {k: (r["status"], r["score"]) for k, r in load_judgments(path).items()}  # noqa: E731
    assert len(lines(out)) == 5 and strip(out) == {f"k{i}": ("ok", i / 10) for i in range(5)}


# -- the judge stage through the CLI: a down endpoint leaves a resumable run ------------------------------------


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


def judge_cli(run_dir: Path) -> int:
    return evaluate.main(["--protocol", "baseline", "--output_dir", str(run_dir), "--stages", "judge,score,table"])


def test_cli_with_the_endpoint_down_exits_resumably_and_the_rerun_completes_the_table(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_MODEL", "judge-test")
    clean, broken = tmp_path / "clean", tmp_path / "broken"
    write_predictions(clean, 4)
    write_predictions(broken, 4)
    with FakeChatServer(policy=score_by_item) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        assert judge_cli(clean) == 0
        # Down: every request answered 503 with a tiny Retry-After, so each item gives up after 7 requests.
        server.reset()
        server.set_policy(lambda request, n: ("status", 503, 0.001))
        assert judge_cli(broken) == evaluate.EXIT_UNJUDGED == 3  # a script under `set -e` stops, not reports 0
        assert {r["status"] for r in lines(broken / "judgments.jsonl")} == {"failed"}
        table = (broken / "table.md").read_text()
        assert "judge AVG refused: 4 of 4 items failed" in table  # said in the table, never a score of 0
        server.reset()
        server.set_policy(score_by_item)
        assert judge_cli(broken) == 0
        assert len(server.chat_requests) == 4  # the rerun asked for the 4 failed items only
    assert len(lines(broken / "judgments.jsonl")) == 4
    for name in ("scores.jsonl", "table.md"):
        assert (broken / name).read_text() == (clean / name).read_text()


# -- inference killed at several seed-chosen points ------------------------------------------------------------


class Killed(Exception):  # a simulated kill (the `tiny` fixture is in conftest.py)
    pass


def test_inference_killed_at_seeded_points_resumes_to_the_uninterrupted_predictions(tmp_path, tiny):
    from ground_r1.demo.synthetic import ensure_default_dataset

    model, processor = tiny
    items_ = inference.load_viscot_items(
        ensure_default_dataset() / "eval.jsonl", max_items_per_dataset=6, max_pixels=12544
    )
    assert len(items_) == 6
    config = InferenceConfig(
        protocol="ground_r1",
        batch_size=1,
        max_turns=2,
        sampling=dataclasses.replace(EVAL_GREEDY_SAMPLING, max_new_tokens=4),
    )
    make = lambda: Engine(model, processor, config)  # noqa: E731
    full = tmp_path / "full"
    inference.run_inference(items_, make, full, config, progress=False)
    expected = inference.finish(full, items_).read_text()
    expected_lines = expected.splitlines()

    rng = random.Random(9)
    kill_points = sorted(rng.sample(range(1, 6), 3))  # items done when each kill hits (seed 9: [2, 3, 4])
    assert kill_points == [2, 3, 4]
    run, runs, torn = tmp_path / "killed", 0, 0
    shard = predictions.shard_path(run, 0)

    def kill_at_next_point(n: int) -> None:
        if kill_points and len(predictions.done_keys(run)) >= kill_points[0]:
            kill_points.pop(0)
            raise Killed

    while True:
        runs += 1
        try:
            inference.run_inference(items_, make, run, config, progress=False, on_batch_done=kill_at_next_point)
        except Killed:
            done = len(predictions.done_keys(run))
            if done < len(items_) and rng.random() < 0.5:  # the kill also tore the next record mid-line
                torn += 1
                with open(shard, "a") as handle:
                    handle.write(expected_lines[done][: rng.randint(1, 40)])
            continue
        break
    assert (runs, torn) == (4, 2)  # three kills, two of them mid-line (seed 9)
    assert inference.finish(run, items_).read_text() == expected
    keys = [json.loads(line)["key"] for line in shard.read_text().splitlines()]
    assert sorted(keys) == sorted(json.loads(line)["key"] for line in expected_lines)  # each predicted once
