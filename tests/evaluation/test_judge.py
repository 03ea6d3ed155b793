"""The VisCoT LLM judge (SPEC §7): prompt, parsing, retries over real HTTP, cache, resume, key secrecy.

Every judging test goes through the real ``openai`` client to the scripted server of ``fake_chat_server.py``
on 127.0.0.1, with a tiny backoff so retries cost milliseconds.
"""

from __future__ import annotations

import json
import logging
import random
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fake_chat_server import FakeChatServer, RecordedRequest

from ground_r1.evaluation.judge import (
    SYSTEM_PROMPT,
    Judge,
    JudgeAuthenticationError,
    JudgeCache,
    JudgeConfig,
    JudgeItem,
    JudgeNotConfiguredError,
    JudgeReport,
    build_judge_messages,
    judge_inputs_from_prediction,
    load_judgments,
    parse_score,
    prompt_hash,
)
from ground_r1.evaluation.judge_client import redact

KEY = "sk-test-SECRET-123"
ENV_NAMES = ("OPENAI_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_API_KEY_FILE")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def make_judge(server: FakeChatServer, **overrides) -> Judge:
    settings = dict(
        base_url=server.base_url,
        api_key=KEY,
        backoff_base=0.001,
        backoff_cap=0.01,
        timeout=2.0,
        concurrency=4,
    )
    settings.update(overrides)
    return Judge(JudgeConfig(**settings))


def items(n: int) -> list[JudgeItem]:
    return [
        JudgeItem(key=f"k{i}", question=f"question {i}?", ground_truth=f"gt {i}", answer=f"pred {i}") for i in range(n)
    ]


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def item_index(request: RecordedRequest) -> int:
    """The i of item k{i}, read back from 'question {i}?' in the user message."""
    first_line = request.user_content.splitlines()[0]  # "question: question 7?"
    return int(first_line.rsplit(" ", 1)[1].rstrip("?"))


# -- protocol ------------------------------------------------------------------------------------------------


def test_system_prompt_golden() -> None:
    assert SYSTEM_PROMPT == (
        "You are proofreading answers. Using the question for context, score the model's answer against the "
        "standard answer. The full score is 1 and the minimum score is 0; the closer the model's answer is to "
        'the standard answer, the higher the score. Output the score in the form "score: <x>".'
    )


def test_build_judge_messages_exact() -> None:
    messages = build_judge_messages("What color?", "red", "dark red")
    assert messages == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "question: What color?\nstandard answer: red\nmodel's answer: dark red"},
    ]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("score: 0.8", 0.8),
        ("Score: 1", 1.0),
        ("SCORE:0.25", 0.25),  # no space, any case
        ("The answer is close. score: 0.6.", 0.6),  # sentence-final period is not part of the number
        ("score: .5", 0.5),
        ("score: 1.7", 1.0),  # clipped to the full score
        ("score: 7", 1.0),
        ("score: 0", 0.0),
        ("score: 0.3 then score: 0.9", 0.3),  # the first one, as the release's re.search
        ("score: -0.5", None),  # `[\d.]+` cannot start with '-': unparseable, not 0
        ("score: high", None),
        ("0.8", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_score(reply: str | None, expected: float | None) -> None:
    assert parse_score(reply) == expected


def test_judge_inputs_from_prediction_uses_extraction_of_final_turn() -> None:
    record = {
        "problem": "Which letter?\nA. cat\nB. dog",
        "solution": "<answer>B</answer>",
        "turns": ["<think>look</think><box>[1,2,3,4]</box>", "<think>ok</think><answer> B. dog </answer>"],
    }
    # gt: tags stripped -> "B"; answer: content of <answer> of the LAST turn, stripped -> "B. dog"
    assert judge_inputs_from_prediction(record) == ("Which letter?\nA. cat\nB. dog", "B", "B. dog")
    single = {"question": "q", "ground_truth": " free form ", "response": "<answer>cut by the lim"}
    assert judge_inputs_from_prediction(single) == ("q", "free form", "cut by the lim")


def test_judge_inputs_from_prediction_names_missing_field() -> None:
    missing = r"none of 'solution' / 'ground_truth' \(fields present: \['problem', 'turns'\]\)"
    with pytest.raises(ValueError, match=missing):
        judge_inputs_from_prediction({"problem": "q", "turns": ["a"]})
    with pytest.raises(ValueError, match="'turns' must be a list of strings, got str"):
        judge_inputs_from_prediction({"problem": "q", "solution": "s", "turns": "a"})


# -- config --------------------------------------------------------------------------------------------------


def test_config_from_env_and_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert JudgeConfig.from_env().model == "gpt-4o-mini"
    assert not JudgeConfig.from_env().is_configured()
    monkeypatch.setenv("OPENAI_MODEL", "judge-x")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    cfg = JudgeConfig.from_env(concurrency=2, model="judge-y")
    assert (cfg.model, cfg.base_url, cfg.api_key, cfg.concurrency, cfg.temperature, cfg.max_tokens) == (
        "judge-y",
        "http://127.0.0.1:9/v1",
        KEY,
        2,
        0.0,
        16,
    )
    assert cfg.is_configured()
    with pytest.raises(TypeError, match="'concurency' \\(did you mean 'concurrency'\\?\\)"):
        JudgeConfig.from_env(concurency=2)
    with pytest.raises(ValueError, match="concurrency=0 must be >= 1; max_retries=-1 must be >= 0"):
        JudgeConfig(concurrency=0, max_retries=-1)


def test_config_key_file_and_repr_mask(tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    cfg = JudgeConfig(api_key_file=str(key_file))
    assert cfg.is_configured() and cfg.resolved_api_key() == KEY
    assert not JudgeConfig(api_key_file=str(tmp_path / "missing")).is_configured()
    with_key = JudgeConfig(api_key=KEY)
    assert KEY not in repr(with_key) and KEY not in str(with_key)
    assert "api_key='***'" in repr(with_key)
    assert "api_key=None" in repr(JudgeConfig())


def test_unconfigured_judge_refuses_loudly() -> None:
    with pytest.raises(JudgeNotConfiguredError, match="no judge endpoint configured: set OPENAI_API_KEY"):
        Judge(JudgeConfig())


# -- runs over real HTTP -------------------------------------------------------------------------------------


def test_all_ok_run(fake_chat_server: FakeChatServer, tmp_path: Path) -> None:
    scores = [0.0, 0.25, 0.5, 0.75, 1.0]
    fake_chat_server.set_policy(lambda req, n: ("score", scores[item_index(req)]))
    out = tmp_path / "judge.jsonl"
    report = make_judge(fake_chat_server).judge_items(items(5), out)
    latest = load_judgments(out)
    assert {k: (r["status"], r["score"], r["attempts"], r["cached"]) for k, r in latest.items()} == {
        f"k{i}": ("ok", scores[i], 1, False) for i in range(5)
    }
    assert len(read_lines(out)) == 5
    # the fake counts whitespace words: system prompt + "question: question i?\nstandard answer: gt i\nmodel's
    # answer: pred i" (3 + 4 + 4 = 11 words) per request; a reply "score: x" is 2 words.
    prompt_words = len(SYSTEM_PROMPT.split()) + 11
    assert report == JudgeReport(requests=5, retries=0, ok=5, prompt_tokens=5 * prompt_words, completion_tokens=10)
    sent = fake_chat_server.chat_requests[0].body
    assert (sent["model"], sent["temperature"], sent["max_tokens"]) == ("gpt-4o-mini", 0.0, 16)


def run_one(server: FakeChatServer, tmp_path: Path, **overrides) -> tuple[dict, JudgeReport]:
    out = tmp_path / "one.jsonl"
    report = make_judge(server, **overrides).judge_items(items(1), out)
    lines = read_lines(out)
    assert len(lines) == 1
    return lines[0], report


def test_429_then_ok_honours_retry_after(fake_chat_server: FakeChatServer, tmp_path: Path) -> None:
    fake_chat_server.script([("status", 429, 0.3), ("score", 0.5)])
    start = time.monotonic()
    record, report = run_one(fake_chat_server, tmp_path)
    # backoff alone would wait <= 0.001 s; Retry-After asks for 0.3 s
    assert time.monotonic() - start >= 0.3
    assert (record["status"], record["score"], record["attempts"]) == ("ok", 0.5, 2)
    assert (report.requests, report.retries) == (2, 1)


def test_retry_after_is_capped(fake_chat_server: FakeChatServer, tmp_path: Path) -> None:
    fake_chat_server.script([("status", 429, 3600), ("score", 0.5)])
    start = time.monotonic()
    record, _ = run_one(fake_chat_server, tmp_path, retry_after_cap=0.05)
    assert time.monotonic() - start < 5
    assert (record["status"], record["attempts"]) == ("ok", 2)


def test_5xx_then_ok(fake_chat_server: FakeChatServer, tmp_path: Path) -> None:
    fake_chat_server.script([("status", 500), ("status", 503), ("status", 502), ("score", 0.9)])
    record, report = run_one(fake_chat_server, tmp_path)
    assert (record["status"], record["score"], record["attempts"]) == ("ok", 0.9, 4)
    assert report.retries == 3


def test_5xx_forever_fails_after_max_retries(fake_chat_server: FakeChatServer, tmp_path: Path) -> None:
    fake_chat_server.set_policy(lambda req, n: ("status", 500))
    record, report = run_one(fake_chat_server, tmp_path, max_retries=2)
    # 1 request + 2 retries, then a failure record: never a score
    assert (record["status"], record["score"], record["attempts"]) == ("failed", None, 3)
    assert record["error"].startswith("HTTP 500") and record["error"].endswith("(gave up after 3 requests)")
    assert report.failed == 1 and len(fake_chat_server.chat_requests) == 3


def test_slow_reply_times_out_then_ok(fake_chat_server: FakeChatServer, tmp_path: Path) -> None:
    fake_chat_server.script([("slow", 1.0, ("score", 0.1)), ("score", 0.4)])
    record, _ = run_one(fake_chat_server, tmp_path, timeout=0.2)
    assert (record["status"], record["score"], record["attempts"]) == ("ok", 0.4, 2)


def test_dropped_connection_then_ok(fake_chat_server: FakeChatServer, tmp_path: Path) -> None:
    fake_chat_server.script([("drop",), ("drop",), ("score", 0.7)])
    record, _ = run_one(fake_chat_server, tmp_path)
    assert (record["status"], record["score"], record["attempts"]) == ("ok", 0.7, 3)


def test_garbage_then_ok(fake_chat_server: FakeChatServer, tmp_path: Path) -> None:
    fake_chat_server.script([("garbage", "I think it is fine"), ("score", 0.2)])
    record, report = run_one(fake_chat_server, tmp_path)
    assert (record["status"], record["score"], record["reply"], record["attempts"]) == ("ok", 0.2, "score: 0.2", 2)
    assert report.retries == 1


def test_garbage_forever_is_unparseable_not_zero(fake_chat_server: FakeChatServer, tmp_path: Path) -> None:
    fake_chat_server.set_policy(lambda req, n: ("garbage", f"no idea #{n}"))
    record, report = run_one(fake_chat_server, tmp_path, max_unparseable_retries=2)
    # 1 ask + 2 re-asks; the last raw reply is kept for inspection
    assert (record["status"], record["score"], record["reply"], record["attempts"]) == (
        "unparseable",
        None,
        "no idea #2",
        3,
    )
    # 3 requests of (system words + 11) prompt words (see test_all_ok_run); each reply "no idea #n" is 3 words
    prompt_words = len(SYSTEM_PROMPT.split()) + 11
    expected = JudgeReport(requests=3, retries=2, unparseable=1, prompt_tokens=3 * prompt_words, completion_tokens=9)
    assert report == expected


def test_400_fails_the_item_at_once(fake_chat_server: FakeChatServer, tmp_path: Path) -> None:
    fake_chat_server.script([("status", 400), ("score", 1.0)])
    record, report = run_one(fake_chat_server, tmp_path)
    assert (record["status"], record["score"], record["attempts"]) == ("failed", None, 1)
    assert record["error"].startswith("HTTP 400:") and "scripted status 400" in record["error"]
    assert (report.failed, report.requests) == (1, 1)


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_stops_the_run_at_the_first_request(
    fake_chat_server: FakeChatServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    # Issue 15: a wrong key used to fail each of 54 items with its own request, then exit 3 ("rerun"). Now the
    # first 401/403 stops the run: nothing else is sent, and the error says authentication failed, without the key
    # (the server's own text, which may quote it, is not kept).
    fake_chat_server.set_policy(lambda req, n: ("status", status))
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "o.jsonl"
    with pytest.raises(JudgeAuthenticationError) as err:
        make_judge(fake_chat_server, concurrency=1).judge_items(items(54), out)
    assert len(fake_chat_server.chat_requests) == 1
    assert str(err.value) == (
        f"judge authentication failed: HTTP {status} from {fake_chat_server.base_url}/ (model 'gpt-4o-mini'); check "
        "OPENAI_API_KEY (or OPENAI_API_KEY_FILE) and OPENAI_BASE_URL. Nothing more was sent; the key is not shown"
    )
    assert KEY not in caplog.text and not read_lines(out)
    # With requests in flight at once, at most one wave (the concurrency) is ever sent.
    fake_chat_server.reset()
    with pytest.raises(JudgeAuthenticationError):
        make_judge(fake_chat_server, concurrency=4).judge_items(items(54), tmp_path / "o4.jsonl")
    assert len(fake_chat_server.chat_requests) <= 4


def test_duplicate_keys_rejected(fake_chat_server: FakeChatServer, tmp_path: Path) -> None:
    twice = [items(1)[0], items(1)[0]]
    with pytest.raises(ValueError, match="duplicate judge item key 'k0'"):
        make_judge(fake_chat_server).judge_items(twice, tmp_path / "o.jsonl")


# -- a mixed, seeded run: every item ends with exactly one final record --------------------------------------

TRANSIENT = [("status", 429, 0.001), ("status", 500), ("status", 503), ("drop",)]


def mixed_plan(n: int, seed: int) -> tuple[dict[int, list[tuple]], dict[str, tuple]]:
    """Per item, a script of behaviours and the (status, score, attempts) it must end with."""
    rng = random.Random(seed)
    scripts, expected = {}, {}
    for i in range(n):
        kind = rng.choice(["ok", "ok", "garbage_then_ok", "unparseable", "auth"])
        transient = [rng.choice(TRANSIENT) for _ in range(rng.randint(0, 3))]
        score = round(rng.random(), 2)
        if kind == "ok":  # t transient failures, then the score: t + 1 requests
            scripts[i] = transient + [("score", score)]
            expected[f"k{i}"] = ("ok", score, len(transient) + 1)
        elif kind == "garbage_then_ok":  # one re-ask
            scripts[i] = transient + [("garbage", "hmm"), ("score", score)]
            expected[f"k{i}"] = ("ok", score, len(transient) + 2)
        elif kind == "unparseable":  # 3 asks (max_unparseable_retries=2), all garbage
            scripts[i] = transient + [("garbage", "hmm")] * 3
            expected[f"k{i}"] = ("unparseable", None, len(transient) + 3)
        else:  # a 400 after the transient errors ends the item at once
            scripts[i] = transient + [("status", 400)]
            expected[f"k{i}"] = ("failed", None, len(transient) + 1)
    return scripts, expected


def scripted_policy(scripts: dict[int, list[tuple]]):
    # n = how many earlier requests carried the same messages: the item's own step, whatever the thread order
    return lambda req, n: scripts[item_index(req)][n]


def test_mixed_run_one_final_record_per_item(fake_chat_server: FakeChatServer, tmp_path: Path) -> None:
    scripts, expected = mixed_plan(30, seed=1234)
    fake_chat_server.set_policy(scripted_policy(scripts))
    out = tmp_path / "mixed.jsonl"
    report = make_judge(fake_chat_server, concurrency=6).judge_items(items(30), out)
    lines = read_lines(out)
    assert sorted(r["key"] for r in lines) == sorted(expected)  # 30 lines, each key once
    assert {r["key"]: (r["status"], r["score"], r["attempts"]) for r in lines} == expected
    statuses = [s for s, _, _ in expected.values()]
    total_requests = sum(a for _, _, a in expected.values())
    assert (report.ok, report.failed, report.unparseable) == (
        statuses.count("ok"),
        statuses.count("failed"),
        statuses.count("unparseable"),
    )
    assert (report.requests, report.retries) == (total_requests, total_requests - 30)
    assert len(fake_chat_server.chat_requests) == total_requests
    assert 0 < report.failed and 0 < report.unparseable and 0 < report.retries  # the seed exercises every path


# -- cache and resume ----------------------------------------------------------------------------------------


def test_cache_rerun_makes_no_requests(fake_chat_server: FakeChatServer, tmp_path: Path) -> None:
    fake_chat_server.set_policy(lambda req, n: ("score", item_index(req) / 10))
    cache = tmp_path / "cache.jsonl"
    first = make_judge(fake_chat_server).judge_items(items(6), tmp_path / "a.jsonl", cache_path=cache)
    assert (first.requests, first.cached_hits, len(JudgeCache(cache))) == (6, 0, 6)
    fake_chat_server.reset()
    second = make_judge(fake_chat_server).judge_items(items(6), tmp_path / "b.jsonl", cache_path=cache)
    assert fake_chat_server.chat_requests == []
    assert (second.requests, second.cached_hits, second.ok) == (0, 6, 6)
    b = load_judgments(tmp_path / "b.jsonl")
    assert {k: (r["score"], r["cached"], r["attempts"]) for k, r in b.items()} == {
        f"k{i}": (i / 10, True, 0) for i in range(6)
    }
    # the key is model + messages: another judge model misses the cache
    third = make_judge(fake_chat_server, model="other").judge_items(items(6), tmp_path / "c.jsonl", cache_path=cache)
    assert (third.requests, third.cached_hits) == (6, 0)


def test_cache_holds_only_successes(fake_chat_server: FakeChatServer, tmp_path: Path) -> None:
    fake_chat_server.set_policy(lambda req, n: ("garbage", "?") if item_index(req) == 0 else ("score", 1))
    cache = tmp_path / "cache.jsonl"
    make_judge(fake_chat_server, max_unparseable_retries=0).judge_items(items(2), tmp_path / "a.jsonl", cache)
    entries = read_lines(cache)
    assert [e["hash"] for e in entries] == [prompt_hash("gpt-4o-mini", items(2)[1].messages())]


def comparable(path: Path) -> dict[str, tuple]:
    return {k: (r["status"], r["score"], r["reply"], r["prompt_sha256"]) for k, r in load_judgments(path).items()}


def test_resume_after_kill_equals_unbroken_run(fake_chat_server: FakeChatServer, tmp_path: Path) -> None:
    scripts, _ = mixed_plan(12, seed=7)
    fake_chat_server.set_policy(scripted_policy(scripts))
    unbroken = tmp_path / "unbroken.jsonl"
    make_judge(fake_chat_server).judge_items(items(12), unbroken)
    unbroken_lines = unbroken.read_text(encoding="utf-8").splitlines(keepends=True)

    # A killed run, by its file: ok records of k0..k2, the failure records of k3 (unparseable) and k4
    # (failed), then half of k7's record with no newline (the kill hit mid-write).
    by_key = {json.loads(line)["key"]: line for line in unbroken_lines}
    assert [json.loads(by_key[k])["status"] for k in ("k0", "k1", "k2", "k3", "k4", "k7")] == [
        "ok",
        "ok",
        "ok",
        "unparseable",
        "failed",
        "ok",
    ]  # seed 7 (mixed_plan)
    fake_chat_server.reset()
    resumed = tmp_path / "resumed.jsonl"
    partial = "".join(by_key[k] for k in ("k0", "k1", "k2", "k3", "k4")) + by_key["k7"][:20]
    resumed.write_text(partial, encoding="utf-8")
    report = make_judge(fake_chat_server).judge_items(items(12), resumed)

    lines = read_lines(resumed)
    assert sorted(r["key"] for r in lines) == sorted(f"k{i}" for i in range(12))  # each key exactly once
    assert comparable(resumed) == comparable(unbroken)
    # the 3 ok records are kept; k3 and k4 are judged again (their records replaced), k5..k11 for the first time
    assert report.resumed == 3
    assert {item_index(r) for r in fake_chat_server.chat_requests} == set(range(3, 12))

    # a second rerun has nothing left but the failures, which it retries and replaces (still once per key)
    fake_chat_server.reset()
    again = make_judge(fake_chat_server).judge_items(items(12), resumed)
    assert again.resumed == sum(1 for r in load_judgments(unbroken).values() if r["status"] == "ok")
    assert sorted(r["key"] for r in read_lines(resumed)) == sorted(f"k{i}" for i in range(12))
    assert comparable(resumed) == comparable(unbroken)


def test_resume_rejudges_an_ok_record_whose_prompt_changed(fake_chat_server: FakeChatServer, tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    make_judge(fake_chat_server).judge_items(items(2), out)
    fake_chat_server.reset()
    changed = [items(2)[0], JudgeItem("k1", "question 1?", "gt 1", "a new prediction")]
    report = make_judge(fake_chat_server).judge_items(changed, out)
    assert (report.resumed, report.requests) == (1, 1)
    assert [r["key"] for r in read_lines(out)] == ["k0", "k1"]
    assert load_judgments(out)["k1"]["prompt_sha256"] == prompt_hash("gpt-4o-mini", changed[1].messages())


# -- the key never leaks -------------------------------------------------------------------------------------


def test_api_key_never_written_or_logged(
    fake_chat_server: FakeChatServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def policy(req: RecordedRequest, n: int) -> tuple:
        i = item_index(req)
        if i == 0:  # a hostile endpoint that echoes the Authorization header back
            return ("garbage", "you sent " + req.headers.get("authorization", ""))
        if i == 1:
            return ("status", 400)
        if i == 2 and n == 0:
            return ("status", 429, 0.001)
        return ("score", 0.5)

    fake_chat_server.set_policy(policy)
    caplog.set_level(logging.DEBUG)
    out, cache = tmp_path / "o.jsonl", tmp_path / "c.jsonl"
    judge = make_judge(fake_chat_server, max_unparseable_retries=0)
    report = judge.judge_items(items(4), out, cache_path=cache)

    # the key did travel, in the header only
    assert {r.headers["authorization"] for r in fake_chat_server.chat_requests} == {f"Bearer {KEY}"}
    records = load_judgments(out)
    assert records["k0"]["reply"] == "you sent Bearer ***"
    assert records["k1"]["status"] == "failed"
    for text in (out.read_text(), cache.read_text(), caplog.text, repr(judge.config), report.summary()):
        assert KEY not in text
    assert fake_chat_server.base_url in caplog.text  # what is logged: the endpoint and the model
    assert "'gpt-4o-mini'" in caplog.text


def test_redact() -> None:
    assert redact(f"a {KEY} b {KEY}", KEY) == "a *** b ***"
    assert redact("a", None) == "a" and redact(None, KEY) is None


# -- the fake server itself ----------------------------------------------------------------------------------


def test_fake_server_both_paths_and_404(fake_chat_server: FakeChatServer) -> None:
    root = fake_chat_server.base_url[: -len("/v1")]
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "a b c"}]}).encode()
    for path in ("/v1/chat/completions", "/chat/completions"):
        with urllib.request.urlopen(urllib.request.Request(root + path, data=body, method="POST")) as resp:
            reply = json.loads(resp.read())
        assert reply["object"] == "chat.completion" and reply["model"] == "m"
        assert reply["choices"][0]["message"] == {"role": "assistant", "content": "score: 1.0"}
        assert reply["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(root + "/v1/other", data=body, method="POST"))
    assert err.value.code == 404
