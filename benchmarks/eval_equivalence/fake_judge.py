"""An OpenAI-compatible chat endpoint that answers every request "0.5 score: 0.5" (read as 0.5 by VisCoT's judge
rule and by MM-Vet's grader rule): ``python fake_judge.py PORT``; base URL ``http://127.0.0.1:PORT/v1``."""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLY = "0.5 score: 0.5"


class ChatCompletions(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
        size = int(self.headers.get("Content-Length", 0))
        request = json.loads(self.rfile.read(size) or b"{}")
        choice = {"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"}
        body = json.dumps(
            {
                "id": "fake",
                "object": "chat.completion",
                "created": 0,
                "model": request.get("model", "fake-judge"),
                "choices": [choice],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), ChatCompletions).serve_forever()
