"""Judge endpoint settings and the retrying chat call underneath the VisCoT judge (SPEC §7).

Two jobs, kept apart from the judging protocol in :mod:`ground_r1.evaluation.judge`:

- :class:`JudgeConfig`: model, endpoint, key, sampling and retry settings, read from the environment
  (``OPENAI_MODEL``, ``OPENAI_BASE_URL``, ``OPENAI_API_KEY`` or ``OPENAI_API_KEY_FILE``). Its ``repr`` masks
  the key.
- :class:`JudgeClient`: one chat completion with *our* retry policy. The ``openai`` client's own retries are
  switched off (``max_retries=0``) so that every HTTP request is counted and the policy is visible here:
  429, 408/409, 5xx, timeouts and connection errors are retried with exponential backoff and full jitter
  (``uniform(0, min(cap, base * 2**k))``), or after the server's ``Retry-After`` when it sends one (capped);
  any other 4xx (400, 404, ...) fails at once. A failure is returned as data, never raised and never a
  score (SPEC §7: "ours never scores a failure"). Except 401 and 403: a wrong key fails every item alike, so
  :class:`JudgeAuthenticationError` is raised at once and the run stops (a configuration error, exit 1), instead
  of sending one doomed request per item.

The API key is never logged, written or put in an error message: every text that leaves this module passes
through :func:`redact`.
"""

from __future__ import annotations

import dataclasses
import difflib
import email.utils
import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import openai

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4o-mini"  # SPEC §7: the release's judge
# Sent when an endpoint is configured without a key (a local OpenAI-compatible server, e.g. vLLM, accepts any).
NO_KEY_PLACEHOLDER = "EMPTY"
# Statuses worth another try: the ones the openai client itself retries (408 timeout, 409 lock, 429, 5xx).
RETRYABLE_STATUS = frozenset({408, 409, 429})


AUTH_FAILURE_STATUS = frozenset({401, 403})


class JudgeNotConfiguredError(RuntimeError):
    """No judge endpoint or key is configured: nothing can be judged (SPEC §7: say so loudly)."""


class JudgeAuthenticationError(RuntimeError):
    """The endpoint refused the key (HTTP 401 or 403): a configuration error; the key is never in the message."""

    def __init__(self, status: int, endpoint: str, model: str) -> None:
        self.status = status
        super().__init__(
            f"judge authentication failed: HTTP {status} from {endpoint} (model {model!r}); check OPENAI_API_KEY "
            "(or OPENAI_API_KEY_FILE) and OPENAI_BASE_URL. Nothing more was sent; the key is not shown"
        )


@dataclass
class JudgeConfig:
    """Settings of the LLM judge. Build it with :meth:`from_env`; never print ``dataclasses.asdict`` of it.

    Endpoint:
        model: judge model name (env ``OPENAI_MODEL``; SPEC §7: the release used gpt-4o-mini).
        base_url: OpenAI-compatible endpoint (env ``OPENAI_BASE_URL``); None = the client's default.
        api_key: the key (env ``OPENAI_API_KEY``). Masked in ``repr``; never logged.
        api_key_file: a file holding the key (env ``OPENAI_API_KEY_FILE``), read when ``api_key`` is unset.
    Sampling (SPEC §7: "temperature 0 with a small max_tokens"):
        temperature, max_tokens.
    Retries:
        concurrency: requests in flight at once.
        max_retries: extra requests per ask after a transport error (429, 5xx, timeout, connection).
        max_unparseable_retries: extra asks when a reply has no ``score: <x>``.
        backoff_base, backoff_cap: seconds; full-jitter exponential backoff.
        retry_after_cap: seconds; a server's ``Retry-After`` is honoured up to this.
        timeout: seconds per HTTP request.
    """

    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    api_key_file: str | None = None
    temperature: float = 0.0
    max_tokens: int = 16
    concurrency: int = 8
    max_retries: int = 6
    max_unparseable_retries: int = 2
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    retry_after_cap: float = 60.0
    timeout: float = 60.0

    def __post_init__(self) -> None:
        problems = []
        if not self.model:
            problems.append("model is empty: set OPENAI_MODEL or pass model=")
        for name in ("max_tokens", "concurrency"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name}={getattr(self, name)!r} must be >= 1")
        for name in ("max_retries", "max_unparseable_retries"):
            if int(getattr(self, name)) < 0:
                problems.append(f"{name}={getattr(self, name)!r} must be >= 0")
        for name in ("backoff_base", "backoff_cap", "retry_after_cap", "temperature"):
            if float(getattr(self, name)) < 0:
                problems.append(f"{name}={getattr(self, name)!r} must be >= 0")
        if float(self.timeout) <= 0:
            problems.append(f"timeout={self.timeout!r} must be > 0 seconds")
        if problems:
            raise ValueError("invalid JudgeConfig: " + "; ".join(problems))

    @classmethod
    def from_env(cls, **overrides: Any) -> "JudgeConfig":
        """Read ``OPENAI_MODEL``, ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``OPENAI_API_KEY_FILE``; then apply
        ``overrides`` (any field; an override wins over the environment, ``None`` included).

        Raises:
            TypeError: an override names no field (the message lists the valid names).
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in overrides if k not in names]
        if unknown:
            hints = []
            for k in unknown:
                close = difflib.get_close_matches(k, names, n=1)
                hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise TypeError(f"unknown JudgeConfig field(s) {', '.join(hints)}; valid: {', '.join(names)}")
        values: dict[str, Any] = {
            "model": os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL,
            "base_url": os.environ.get("OPENAI_BASE_URL") or None,
            "api_key": os.environ.get("OPENAI_API_KEY") or None,
            "api_key_file": os.environ.get("OPENAI_API_KEY_FILE") or None,
        }
        values.update(overrides)
        return cls(**values)

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "api_key":
                value = "***" if value else None
            parts.append(f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    __str__ = __repr__

    def resolved_api_key(self) -> str | None:
        """The key: ``api_key``, else the stripped content of ``api_key_file``, else None.

        Raises:
            JudgeNotConfiguredError: ``api_key_file`` is set but unreadable or empty (the path is named).
        """
        if self.api_key:
            return self.api_key
        if not self.api_key_file:
            return None
        path = Path(self.api_key_file).expanduser()
        try:
            key = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise JudgeNotConfiguredError(
                f"api_key_file {str(path)!r} cannot be read ({type(exc).__name__}): fix the path or set OPENAI_API_KEY"
            ) from None
        if not key:
            raise JudgeNotConfiguredError(f"api_key_file {str(path)!r} is empty: put the key in it")
        return key

    def is_configured(self) -> bool:
        """Whether a judge can be reached: a key (inline or in a readable file) or an explicit endpoint."""
        if self.api_key or self.base_url:
            return True
        if self.api_key_file:
            try:
                return bool(self.resolved_api_key())
            except JudgeNotConfiguredError:
                return False
        return False

    def describe(self) -> str:
        """Endpoint and model for logs (never the key)."""
        return f"model {self.model!r} at {self.base_url or 'the OpenAI default endpoint'}"


def redact(text: str | None, secret: str | None) -> str | None:
    """``text`` with every occurrence of ``secret`` replaced by ``***`` (no-op for an empty secret)."""
    if text is None or not secret:
        return text
    return text.replace(secret, "***")


@dataclass
class CallResult:
    """What one ask (one logical chat completion, with its transport retries) produced.

    ``content`` is the reply text on success (``""`` when the model returned none), None on failure;
    ``error`` and ``status_code`` describe a failure; ``requests`` counts HTTP requests made.
    """

    content: str | None
    requests: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    status_code: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _retry_after_seconds(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date); None if absent/invalid."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def classify_error(exc: openai.OpenAIError) -> tuple[bool, float | None, int | None, str]:
    """(retryable, retry_after seconds or None, HTTP status or None, description) of an openai error."""
    if isinstance(exc, openai.APITimeoutError):  # before APIConnectionError: it is a subclass
        return True, None, None, "request timed out"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        return True, None, None, f"connection error{detail}"
    if isinstance(exc, openai.APIStatusError):
        code = int(exc.status_code)
        retryable = code in RETRYABLE_STATUS or code >= 500
        retry_after = _retry_after_seconds(getattr(exc.response, "headers", None))
        return retryable, retry_after, code, f"HTTP {code}: {exc.message}"
    return False, None, None, f"{type(exc).__name__}: {exc}"


class JudgeClient:
    """One chat completion at a time per call, thread-safe, with the retry policy of the module docstring.

    Args:
        config: the settings; must be configured (:meth:`JudgeConfig.is_configured`).
        client: an ``openai.OpenAI``-like object (tests); built from ``config`` when None.
        sleep: the sleep function (tests may record waits).

    Raises:
        JudgeNotConfiguredError: no key and no endpoint.
    """

    def __init__(
        self,
        config: JudgeConfig,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not config.is_configured():
            raise JudgeNotConfiguredError(
                "no judge endpoint configured: set OPENAI_API_KEY (or OPENAI_API_KEY_FILE) and, for a non-OpenAI "
                "endpoint, OPENAI_BASE_URL; nothing can be judged without one"
            )
        self.config = config
        self._secret = config.resolved_api_key()
        if client is None:
            client = openai.OpenAI(
                api_key=self._secret or NO_KEY_PLACEHOLDER,
                base_url=config.base_url,
                max_retries=0,  # our own policy below counts and paces every request
                timeout=config.timeout,
            )
        self._client = client
        self._sleep = sleep
        self._rng = random.Random()
        self._rng_lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        """The base URL actually used (for logs)."""
        return str(getattr(self._client, "base_url", self.config.base_url))

    def redact(self, text: str | None) -> str | None:
        return redact(text, self._secret)

    def backoff(self, retry_index: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``retry_index`` (0-based)."""
        if retry_after is not None:
            return min(retry_after, self.config.retry_after_cap)
        ceiling = min(self.config.backoff_cap, self.config.backoff_base * (2**retry_index))
        with self._rng_lock:
            return self._rng.uniform(0.0, ceiling)

    def complete(self, messages: list[dict[str, str]]) -> CallResult:
        """Ask once, retrying transport errors up to ``config.max_retries`` times. Never raises openai errors.

        Raises:
            JudgeAuthenticationError: the endpoint answered 401 or 403 (module docstring).
        """
        cfg = self.config
        requests = prompt_tokens = completion_tokens = 0
        for retry_index in range(cfg.max_retries + 1):
            requests += 1
            try:
                response = self._client.chat.completions.create(
                    model=cfg.model,
                    messages=messages,
                    temperature=cfg.temperature,
                    max_tokens=cfg.max_tokens,
                )
            except openai.OpenAIError as exc:
                retryable, retry_after, status, description = classify_error(exc)
                if status in AUTH_FAILURE_STATUS:  # the server's text may quote part of the key: not kept
                    raise JudgeAuthenticationError(status, self.endpoint, cfg.model) from None
                description = self.redact(description) or ""
                if not retryable:
                    logger.warning("judge request failed, not retrying: %s", description)
                    return CallResult(None, requests, prompt_tokens, completion_tokens, description, status)
                if retry_index == cfg.max_retries:
                    logger.warning("judge request failed after %d requests: %s", requests, description)
                    return CallResult(
                        None,
                        requests,
                        prompt_tokens,
                        completion_tokens,
                        f"{description} (gave up after {requests} requests)",
                        status,
                    )
                wait = self.backoff(retry_index, retry_after)
                logger.debug("judge request: %s; retry %d in %.3f s", description, retry_index + 1, wait)
                self._sleep(wait)
                continue
            usage = getattr(response, "usage", None)
            if usage is not None:
                prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
                completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
            choices = getattr(response, "choices", None) or []
            content = choices[0].message.content if choices else None
            return CallResult(content or "", requests, prompt_tokens, completion_tokens)
        raise AssertionError("unreachable: the loop returns on its last iteration")
