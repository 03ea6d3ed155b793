"""A scripted OpenAI-compatible chat server for tests: real HTTP on 127.0.0.1, no network, no key check.

Why a real server rather than a mocked client: the judge's retry policy is written against the exception
classes the `openai` client raises for real transport events (429, 5xx, read timeouts, dropped connections),
so tests must produce those events on a socket and let the real client classify them.

Usage::

    with FakeChatServer(script=[("status", 429, 0.01), ("score", 0.5)]) as server:
        client = openai.OpenAI(api_key="sk-test", base_url=server.base_url, max_retries=0)
        ...
        assert len(server.requests) == 2

Behaviours (one per request; tuples):

- ``("score", x)``: reply ``"score: x"``.
- ``("reply", text)`` / ``("garbage", text)``: reply with ``text`` verbatim.
- ``("status", code)`` or ``("status", code, retry_after_seconds)``: an OpenAI-shaped error body with that
  HTTP status, and a ``Retry-After`` header when given.
- ``("slow", seconds)`` or ``("slow", seconds, behaviour)``: wait, then perform ``behaviour`` (default: the
  server's default behaviour). A client that times out first sees a timeout; the late write is swallowed.
- ``("drop",)``: read the request, then close the connection without any response.

Which behaviour a request gets: the next entry of ``script`` (a queue, consumed in arrival order) while it
lasts; otherwise ``policy(request, n)`` if a policy is set, where ``n`` counts the earlier requests that carried
the same ``messages`` (so per-item scripts stay deterministic under concurrency); otherwise ``default``.
Every request is recorded (path, headers, parsed body, the behaviour it got) in ``server.requests``.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable

Behaviour = tuple
Policy = Callable[["RecordedRequest", int], Behaviour]

CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")


@dataclass
class RecordedRequest:
    """One request as the server saw it. `headers` keys are lower-case."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    behaviour: Behaviour | None = None
    received_at: float = field(default_factory=time.monotonic)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def user_content(self) -> str:
        """The content of the last user message ('' when none): handy for per-item policies."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return str(message.get("content", ""))
        return ""


def _count_words(text: str) -> int:
    return len(text.split())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint; every reply sets Content-Length
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # keep test output clean

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = {"_unparsed": raw.decode("utf-8", "replace")}
        path = self.path.split("?", 1)[0]
        request = RecordedRequest(path=path, headers={k.lower(): v for k, v in self.headers.items()}, body=body)
        if path not in CHAT_PATHS:
            self.server.owner._record(request, None)
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})
            return
        behaviour = self.server.owner._next_behaviour(request)
        self._perform(behaviour, request)

    def _perform(self, behaviour: Behaviour, request: RecordedRequest) -> None:
        kind = behaviour[0]
        if kind == "score":
            self._send_completion(f"score: {behaviour[1]}", request)
        elif kind in ("reply", "garbage"):
            self._send_completion(str(behaviour[1]), request)
        elif kind == "status":
            code = int(behaviour[1])
            headers = {"Retry-After": str(behaviour[2])} if len(behaviour) > 2 else {}
            body = {"error": {"message": f"scripted status {code}", "type": "fake_error", "code": str(code)}}
            self._send_json(code, body, headers)
        elif kind == "slow":
            time.sleep(float(behaviour[1]))
            then = behaviour[2] if len(behaviour) > 2 else self.server.owner.default
            self._perform(then, request)
        elif kind == "drop":
            self.close_connection = True
            # Return without writing: the socket closes and the client sees "disconnected without a response".
        else:
            raise ValueError(f"unknown fake-server behaviour {behaviour!r}")

    def _send_completion(self, content: str, request: RecordedRequest) -> None:
        prompt_tokens = sum(_count_words(str(m.get("content", ""))) for m in request.messages)
        completion_tokens = _count_words(content)
        owner = self.server.owner
        body = {
            "id": f"chatcmpl-fake-{owner._next_id()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.body.get("model", "fake-model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        self._send_json(200, body)

    def _send_json(self, code: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode("utf-8")
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True  # the client gave up (timeout) before we answered


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: "FakeChatServer"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-reply is expected in timeout tests


class FakeChatServer:
    """A real HTTP server speaking ``POST /v1/chat/completions``; see the module docstring for behaviours."""

    def __init__(
        self,
        script: Iterable[Behaviour] = (),
        policy: Policy | None = None,
        default: Behaviour = ("score", 1.0),
    ) -> None:
        self.default = default
        self._policy = policy
        self._script: collections.deque[Behaviour] = collections.deque(script)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._seen: collections.Counter[str] = collections.Counter()
        self._ids = 0
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- scripting -------------------------------------------------------------------------------------------
    def script(self, behaviours: Iterable[Behaviour]) -> None:
        """Append behaviours to the queue consumed in request-arrival order."""
        with self._lock:
            self._script.extend(behaviours)

    def set_policy(self, policy: Policy | None) -> None:
        with self._lock:
            self._policy = policy

    def reset(self) -> None:
        """Forget recorded requests, the queue and the per-messages counters (the policy stays)."""
        with self._lock:
            self._requests.clear()
            self._script.clear()
            self._seen.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path in CHAT_PATHS]

    # -- lifecycle -------------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeChatServer is not started: use it as a context manager or call start()")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "FakeChatServer":
        if self._httpd is not None:
            return self
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> "FakeChatServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- used by the handler ---------------------------------------------------------------------------------
    def _next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def _record(self, request: RecordedRequest, behaviour: Behaviour | None) -> None:
        request.behaviour = behaviour
        with self._lock:
            self._requests.append(request)

    def _next_behaviour(self, request: RecordedRequest) -> Behaviour:
        signature = json.dumps(request.messages, sort_keys=True)
        with self._lock:
            n = self._seen[signature]
            self._seen[signature] += 1
            if self._script:
                behaviour = self._script.popleft()
            else:
                behaviour = None
            policy = self._policy
        if behaviour is None:
            behaviour = policy(request, n) if policy is not None else self.default
        self._record(request, behaviour)
        return behaviour
