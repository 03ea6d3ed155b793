"""The VisCoT LLM judge (SPEC §7): prompt, score parsing, a persistent cache and a resumable judging run.

Protocol (SPEC §7). The system message asks the judge to proofread: score the model's answer against the
standard answer for the question, full score 1, minimum 0, closer is higher, output ``score: <x>``. The user
message is ``question: {q}\\nstandard answer: {gt}\\nmodel's answer: {pred}``, where ``pred`` is the
*extracted* answer of the final turn and ``gt`` the solution without its ``<answer>`` tags (SPEC §3
extraction, :mod:`ground_r1.rollout.answer`). The reply is parsed with ``score: <number>`` and clipped to
[0, 1]. Temperature 0, small ``max_tokens``.

Where we depart from the release (SPEC §7 "ours never scores a failure"): the release retried 3 times and
scored a failure 0. Here a transport failure is retried with backoff (:mod:`judge_client`), a reply without a
score is asked again, and what still fails is *recorded* as ``failed`` or ``unparseable`` with a null score,
so that tables can exclude it from the means and count it.

Output file (``out_path``, JSONL, one record per item, written as each item finishes)::

    {"key", "status": "ok"|"failed"|"unparseable", "score": float|null, "reply", "error", "attempts",
     "cached": bool, "model", "prompt_sha256"}

``attempts`` counts HTTP requests made for the item (0 when served from the cache). Resume rule: a rerun
with the same ``out_path`` skips every key whose record is ``ok`` (for the same prompt), and retries keys
whose record is ``failed`` or ``unparseable`` (or ``ok`` for a prompt that has since changed): their old
records are removed from the file (atomic rewrite) and the new record appended, so a finished run holds
exactly one record per key. The file is a :mod:`ground_r1.evaluation.jsonl` file (a killed write's last line is
cut off before appending). Readers take the last record per key (:func:`load_judgments`), which is robust to
any append-only history.

Cache (``cache_path``, JSONL): successful judgments keyed by sha256 of (judge model, exact messages JSON),
shared across runs and benchmarks; a hit costs no request.

Other graders (e.g. MM-Vet's official one, SPEC §7) reuse the same client, retries, cache and resume: give
:class:`Judge` an :class:`AskPlan` (how to read a reply, how many asks, the temperature of each) and
:class:`PromptItem` s (prebuilt messages, one list per ask).

The API key never reaches a log, a record or the cache (:func:`judge_client.redact` on every text).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

from ground_r1.evaluation.jsonl import JsonlAppender, read_records, repair_tail, write_atomic
from ground_r1.evaluation.judge_client import (
    CallResult,
    JudgeAuthenticationError,
    JudgeClient,
    JudgeConfig,
    JudgeNotConfiguredError,
)
from ground_r1.rollout.answer import extract_answer, strip_answer_tags

__all__ = [
    "SYSTEM_PROMPT",
    "AskPlan",
    "Judge",
    "JudgeCache",
    "JudgeAuthenticationError",
    "JudgeConfig",
    "JudgeItem",
    "JudgeNotConfiguredError",
    "JudgeReport",
    "PromptItem",
    "build_judge_messages",
    "judge_inputs_from_prediction",
    "judge_items",
    "load_judgments",
    "parse_score",
    "prompt_hash",
]

logger = logging.getLogger(__name__)

# SPEC §7, in our own words (pinned by a golden test): who the judge is, what to compare, the range, the
# direction, and the exact output form that parse_score reads.
SYSTEM_PROMPT = (
    "You are proofreading answers. Using the question for context, score the model's answer against the "
    "standard answer. The full score is 1 and the minimum score is 0; the closer the model's answer is to the "
    'standard answer, the higher the score. Output the score in the form "score: <x>".'
)
USER_TEMPLATE = "question: {question}\nstandard answer: {ground_truth}\nmodel's answer: {answer}"

# SPEC §7 parses `score: ([\d.]+)`. We read the same token as a proper number so a sentence-final period
# ("score: 0.8.") still parses; "score:0.8" (no space) and any letter case are accepted too.
_SCORE = re.compile(r"score\s*:\s*(\d+(?:\.\d+)?|\.\d+)", re.IGNORECASE)

STATUSES = ("ok", "failed", "unparseable")


def build_judge_messages(question: str, ground_truth: str, model_answer: str) -> list[dict[str, str]]:
    """The two chat messages of SPEC §7 for one item (system: the proofreading rubric; user: the triple)."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {
            "role": "user",
            "content": USER_TEMPLATE.format(question=question, ground_truth=ground_truth, answer=model_answer),
        },
    ]


def judge_inputs_from_prediction(pred_record: Mapping[str, Any]) -> tuple[str, str, str]:
    """(question, ground truth, answer) of a prediction record, as the judge must see them (SPEC §7).

    The record needs the question (``problem``, else ``question``), the solution (``solution``, else
    ``ground_truth``) and the model output: ``turns`` (the assistant turns; the last one is judged) or
    ``response`` (the final turn's text). The answer is :func:`extract_answer` of the final turn; the ground
    truth is :func:`strip_answer_tags` of the solution.

    Raises:
        ValueError: a field is missing or of the wrong type (the message names it and what was present).
    """

    def pick(*names: str) -> Any:
        for name in names:
            if name in pred_record and pred_record[name] is not None:
                return pred_record[name]
        raise ValueError(
            f"prediction record has none of {' / '.join(repr(n) for n in names)} "
            f"(fields present: {sorted(pred_record)})"
        )

    question = pick("problem", "question")
    solution = pick("solution", "ground_truth")
    if "turns" in pred_record and pred_record["turns"] is not None:
        turns = pred_record["turns"]
        if isinstance(turns, str) or not isinstance(turns, (list, tuple)):
            raise ValueError(f"prediction record field 'turns' must be a list of strings, got {type(turns).__name__}")
        final_turn = turns[-1] if turns else ""
    else:
        final_turn = pick("response")
    for name, value in (("question", question), ("solution", solution), ("final turn", final_turn)):
        if not isinstance(value, str):
            raise ValueError(f"prediction record {name} must be a string, got {type(value).__name__}")
    return question, strip_answer_tags(solution), extract_answer(final_turn)


def parse_score(reply: str | None) -> float | None:
    """The first ``score: <x>`` of a judge reply, clipped to [0, 1]; None when there is none (never 0)."""
    if not reply:
        return None
    match = _SCORE.search(reply)
    if match is None:
        return None
    return min(1.0, max(0.0, float(match.group(1))))


def prompt_hash(model: str, messages: list[dict[str, str]]) -> str:
    """sha256 of (judge model, exact messages JSON): the cache key, also stored in each record."""
    payload = json.dumps({"model": model, "messages": messages}, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _judge_record_problem(record: Any) -> str | None:
    if not isinstance(record, dict) or "key" not in record or record.get("status") not in STATUSES:
        return f"not a judge record (needs 'key' and a status in {STATUSES})"
    return None


JUDGMENTS_NAME = "judgments.jsonl"  # a benchmark folder's judge records (VisCoT's judge, MM-Vet's and HR-Bench's)
LEGACY_JUDGMENTS_NAMES = ("mmvet_grades.jsonl",)  # what the general benchmarks' folders called it before


def judgments_path(folder: str | os.PathLike[str]) -> Path:
    """A benchmark folder's judgments file (:data:`JUDGMENTS_NAME`). A folder judged before the name was one
    (``mmvet_grades.jsonl``) has its file renamed, once, so a rerun resumes from it instead of judging again."""
    path = Path(folder) / JUDGMENTS_NAME
    if not path.exists():
        for name in LEGACY_JUDGMENTS_NAMES:
            legacy = Path(folder) / name
            if legacy.is_file():
                os.replace(legacy, path)
                logger.info("%s: renamed to %s (one name for every benchmark's judgments)", legacy, path.name)
                break
    return path


def load_judgments(out_path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The last record per key of a judge output file (what tables should read). Missing file -> {}.

    Raises:
        ValueError: a line that is not a judge record (``file:line``).
    """
    return {str(record["key"]): record for _, record in read_records(out_path, _judge_record_problem)}


class JudgeCache:
    """Successful judgments, JSONL at ``path``, keyed by :func:`prompt_hash`; loaded at start, appended and
    flushed per entry under a lock. A truncated last line is cut off; an unreadable line is skipped (a cache
    only saves requests)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        for _, entry in read_records(self.path, strict=False):
            if isinstance(entry.get("hash"), str) and isinstance(entry.get("score"), (int, float)):
                self._entries[entry["hash"]] = entry
        self._appender: JsonlAppender | None = None  # opened on the first new entry

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key_hash: str) -> dict[str, Any] | None:
        with self._lock:
            return self._entries.get(key_hash)

    def put(self, key_hash: str, model: str, score: float, reply: str) -> None:
        entry = {"hash": key_hash, "model": model, "score": score, "reply": reply}
        with self._lock:
            if key_hash in self._entries:
                return
            self._entries[key_hash] = entry
            if self._appender is None:
                self._appender = JsonlAppender(self.path)
            self._appender.write(entry)

    def close(self) -> None:
        if self._appender is not None:
            self._appender.close()


@dataclass(frozen=True)
class JudgeItem:
    """One thing to judge. ``key`` must be unique within a run (e.g. ``"{benchmark}/{file}:{line}"``; SPEC §6:
    record ids repeat across sub-datasets, never key by the id alone)."""

    key: str
    question: str
    ground_truth: str
    answer: str

    def messages(self) -> list[dict[str, str]]:
        return build_judge_messages(self.question, self.ground_truth, self.answer)

    def messages_for_ask(self, ask: int) -> list[dict[str, str]]:
        """Every ask of the VisCoT judge sends the same messages."""
        return self.messages()


@dataclass(frozen=True)
class PromptItem:
    """A thing to grade with prebuilt messages (a grader other than the VisCoT judge, e.g. MM-Vet's).

    ``asks[k]`` is sent on ask ``k``; the last entry is reused for later asks. ``asks[0]`` is what the cache
    and the resume check key on (:func:`prompt_hash`).
    """

    key: str
    asks: tuple[tuple[dict[str, str], ...], ...]

    @classmethod
    def build(cls, key: str, *asks: Sequence[Mapping[str, str]]) -> "PromptItem":
        """``PromptItem.build(key, first_messages, retry_messages, ...)``.

        Raises:
            ValueError: no messages given.
        """
        if not asks or not all(asks):
            raise ValueError(f"grader item {key!r}: every ask needs at least one message")
        return cls(key, tuple(tuple(dict(m) for m in messages) for messages in asks))

    def messages(self) -> list[dict[str, str]]:
        return [dict(m) for m in self.asks[0]]

    def messages_for_ask(self, ask: int) -> list[dict[str, str]]:
        return [dict(m) for m in self.asks[min(ask, len(self.asks) - 1)]]


AnyJudgeItem = Union[JudgeItem, PromptItem]


@dataclass(frozen=True)
class AskPlan:
    """How a grader is asked and read. Without one, :class:`Judge` asks the VisCoT judge (SPEC §7):
    :func:`parse_score`, ``1 + max_unparseable_retries`` asks, the config's temperature.

    Attributes:
        parse: the reply -> a score, or None to ask again (never 0 for an unreadable reply).
        max_asks: asks per item before it is recorded ``unparseable``.
        temperature: ask index (0-based) -> sampling temperature; None keeps the config's.
        expects: what ``parse`` reads, for the ``unparseable`` error text.
    """

    parse: Callable[[str | None], float | None]
    max_asks: int
    temperature: Callable[[int], float] | None = None
    expects: str = "a score"

    def __post_init__(self) -> None:
        if self.max_asks < 1:
            raise ValueError(f"AskPlan.max_asks must be >= 1, got {self.max_asks}")


@dataclass
class JudgeReport:
    """Counts of one :meth:`Judge.judge_items` run. ``retries`` = requests beyond the first per judged item
    (transport retries and re-asks after an unparseable reply); ``resumed`` = items skipped because the output
    file already held an ``ok`` record; tokens are summed from ``usage`` where the endpoint reported it."""

    requests: int = 0
    retries: int = 0
    ok: int = 0
    failed: int = 0
    unparseable: int = 0
    cached_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    resumed: int = 0

    def summary(self) -> str:
        return (
            f"judge: ok {self.ok}, failed {self.failed}, unparseable {self.unparseable} "
            f"(cached {self.cached_hits}, resumed {self.resumed}); {self.requests} requests, {self.retries} retries; "
            f"tokens {self.prompt_tokens} prompt + {self.completion_tokens} completion"
        )


class Judge:
    """Judges items against an OpenAI-compatible endpoint (see the module docstring for files and resume).

    Args:
        config: endpoint and retry settings; ``JudgeConfig.from_env()`` when None.
        client: an ``openai.OpenAI``-like client (tests); built from ``config`` when None.

    Raises:
        JudgeNotConfiguredError: no key and no endpoint (check ``config.is_configured()`` first to fall back to
            the rule-based tables, SPEC §7).
    """

    def __init__(self, config: JudgeConfig | None = None, client: Any = None, plan: AskPlan | None = None) -> None:
        self.config = config if config is not None else JudgeConfig.from_env()
        self.plan = plan
        self._raw_client = client
        self._client = JudgeClient(self.config, client=client)
        self._clients_by_temperature: dict[float, JudgeClient] = {float(self.config.temperature): self._client}
        self._clients_lock = threading.Lock()
        self._auth_failure: JudgeAuthenticationError | None = None  # set once: no thread sends another request

    def _client_for_ask(self, ask: int) -> JudgeClient:
        """The client of ask ``ask``: the configured one, or one at the plan's temperature (same settings else)."""
        if self.plan is None or self.plan.temperature is None:
            return self._client
        temperature = float(self.plan.temperature(ask))
        with self._clients_lock:
            if temperature not in self._clients_by_temperature:
                config = replace(self.config, temperature=temperature)
                self._clients_by_temperature[temperature] = JudgeClient(config, client=self._raw_client)
            return self._clients_by_temperature[temperature]

    def judge_one(self, item: AnyJudgeItem) -> tuple[dict[str, Any], CallResult]:
        """Judge one item (no cache, no file): the record and the summed call counts.

        A reply without a score is asked again up to ``max_unparseable_retries`` times (the plan's
        ``max_asks`` in all, with a plan), then recorded as ``unparseable`` with its raw reply; a transport
        failure ends the item as ``failed``.
        """
        cfg = self.config
        plan = self.plan
        parse = plan.parse if plan is not None else parse_score
        asks = plan.max_asks if plan is not None else cfg.max_unparseable_retries + 1
        messages = item.messages()
        total = CallResult(content=None, requests=0)
        reply: str | None = None
        for ask in range(asks):
            if self._auth_failure is not None:
                raise self._auth_failure
            try:
                result = self._client_for_ask(ask).complete(item.messages_for_ask(ask))
            except JudgeAuthenticationError as exc:
                self._auth_failure = exc
                raise
            total.requests += result.requests
            total.prompt_tokens += result.prompt_tokens
            total.completion_tokens += result.completion_tokens
            if not result.ok:
                return self._record(item, messages, "failed", None, reply, result.error, total.requests), total
            reply = self._client.redact(result.content)
            score = parse(reply)
            if score is not None:
                return self._record(item, messages, "ok", score, reply, None, total.requests), total
            logger.debug("judge reply for %s has no score: %r", item.key, reply)
        expects = plan.expects if plan is not None else "'score: <x>'"
        error = f"no {expects} in the reply after {asks} asks"
        return self._record(item, messages, "unparseable", None, reply, error, total.requests), total

    def _record(
        self,
        item: AnyJudgeItem,
        messages: list[dict[str, str]],
        status: str,
        score: float | None,
        reply: str | None,
        error: str | None,
        attempts: int,
        cached: bool = False,
    ) -> dict[str, Any]:
        return {
            "key": item.key,
            "status": status,
            "score": score,
            "reply": reply,
            "error": self._client.redact(error),
            "attempts": attempts,
            "cached": cached,
            "model": self.config.model,
            "prompt_sha256": prompt_hash(self.config.model, messages),
        }

    def judge_items(
        self,
        items: Iterable[AnyJudgeItem],
        out_path: str | os.PathLike[str],
        cache_path: str | os.PathLike[str] | None = None,
    ) -> JudgeReport:
        """Judge ``items``, appending one record per item to ``out_path`` as it finishes; resume from it.

        Raises:
            ValueError: two items share a key, or ``out_path`` holds a line that is not a judge record.
            JudgeAuthenticationError: the endpoint refused the key (401/403); queued items are not sent, the
                records already written stay (a rerun with the right key resumes).
        """
        items = list(items)
        seen: set[str] = set()
        for item in items:
            if item.key in seen:
                raise ValueError(f"duplicate judge item key {item.key!r}: keys must be unique within a run")
            seen.add(item.key)
        out = Path(out_path)
        cache = JudgeCache(cache_path) if cache_path is not None else None
        report = JudgeReport()
        model = self.config.model
        hashes = {item.key: prompt_hash(model, item.messages()) for item in items}

        todo = self._prepare_resume(out, items, hashes, report)
        logger.info(
            "judging %d items (%d already done in %s) with model %r at %s, concurrency %d",
            len(todo),
            report.resumed,
            out,
            model,
            self._client.endpoint,
            self.config.concurrency,
        )
        with JsonlAppender(out, _judge_record_problem) as appender:

            def write(record: dict[str, Any]) -> None:
                appender.write(record)
                setattr(report, record["status"], getattr(report, record["status"]) + 1)

            pending = []
            for item in todo:
                hit = cache.get(hashes[item.key]) if cache is not None else None
                if hit is not None:
                    report.cached_hits += 1
                    score, reply = float(hit["score"]), hit.get("reply")
                    write(self._record(item, item.messages(), "ok", score, reply, None, 0, cached=True))
                else:
                    pending.append(item)

            pool = ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="judge")
            try:
                futures = {pool.submit(self.judge_one, item): item for item in pending}
                for future in as_completed(futures):
                    record, counts = future.result()
                    report.requests += counts.requests
                    report.retries += max(0, counts.requests - 1)
                    report.prompt_tokens += counts.prompt_tokens
                    report.completion_tokens += counts.completion_tokens
                    if record["status"] == "ok" and cache is not None:
                        cache.put(record["prompt_sha256"], model, record["score"], record["reply"] or "")
                    elif record["status"] != "ok":
                        logger.warning("judge %s for %s: %s", record["status"], record["key"], record["error"])
                    write(record)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
                if cache is not None:
                    cache.close()
        logger.info("%s", report.summary())
        return report

    def _prepare_resume(
        self, out: Path, items: list[AnyJudgeItem], hashes: dict[str, str], report: JudgeReport
    ) -> list[AnyJudgeItem]:
        """Items still to judge; drops from ``out`` the records of keys that will be judged again."""
        repair_tail(out)  # this process appends to ``out``: a killed write's last line goes
        rows = list(read_records(out, _judge_record_problem))
        latest = {str(record["key"]): record for _, record in rows}
        done = set()
        for key, record in latest.items():
            if key not in hashes or record["status"] != "ok":
                continue
            if record.get("prompt_sha256", hashes[key]) != hashes[key]:
                logger.warning("%s: the prompt of %r changed since it was judged: judging it again", out, key)
                continue
            done.add(key)
        report.resumed = len(done)
        redo = {item.key for item in items if item.key not in done}
        if any(str(record["key"]) in redo for _, record in rows):
            kept = [record for _, record in rows if str(record["key"]) not in redo]
            write_atomic(out, kept)
            logger.info("%s: %d earlier records replaced by this run", out, len(rows) - len(kept))
        return [item for item in items if item.key not in done]


def judge_items(
    items: Iterable[AnyJudgeItem],
    out_path: str | os.PathLike[str],
    cache_path: str | os.PathLike[str] | None = None,
    config: JudgeConfig | None = None,
) -> JudgeReport:
    """Convenience: ``Judge(config or JudgeConfig.from_env()).judge_items(items, out_path, cache_path)``."""
    return Judge(config).judge_items(items, out_path, cache_path)
