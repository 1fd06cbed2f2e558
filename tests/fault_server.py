"""A small real HTTP server that speaks just enough of the OpenAI chat API to misbehave on cue.

The model name picks the behaviour: ok, auth (needs "Bearer secret"), error500,
flaky (two 500s, then ok), stall-first (silent before any token), stall-mid
(two tokens, then silence), malformed (an event that is not JSON), cut (three
tokens, then the connection drops), slow (``slow_tokens`` words, ``token_delay_s`` apart:
a healthy but slow server, for load tests). It runs on a thread on 127.0.0.1 for the
fault tests; nothing fake sits inside the client under test.
"""

from __future__ import annotations

import json
import threading
import time

from tests.json_http import JSONHandler, LoopbackServer

MODELS = ["ok", "auth", "error500", "flaky", "stall-first", "stall-mid", "malformed", "cut", "slow"]


class FaultServer(LoopbackServer):
    def __init__(self, stall_s: float = 3.0, token_delay_s: float = 0.5, slow_tokens: int = 40):
        super().__init__(Handler)
        self.stall_s = stall_s
        self.token_delay_s = token_delay_s
        self.slow_tokens = slow_tokens
        self.requests: dict[str, int] = {}
        self.closed_early = threading.Event()

    @property
    def base_url(self) -> str:
        return self.url + "/v1"


def chunk(content=None, finish=None, usage=None) -> bytes:
    body = {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": []
        if usage
        else [{"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class Handler(JSONHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.endswith("/models"):
            self.send_json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in MODELS]})
        else:
            self.send_json(404, {"error": {"message": "not found"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        request = json.loads(self.rfile.read(length) or b"{}")
        model = request.get("model", "ok")
        server: FaultServer = self.server
        server.requests[model] = server.requests.get(model, 0) + 1
        if model == "auth" and self.headers.get("Authorization") != "Bearer secret":
            return self.send_json(401, {"error": {"message": "invalid api key", "type": "auth"}})
        if model == "error500" or (model == "flaky" and server.requests[model] <= 2):
            return self.send_json(500, {"error": {"message": "internal error"}})
        if model == "stall-first":
            time.sleep(server.stall_s)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        words = ["one ", "two ", "three ", "four ", "five"]
        if model == "slow":
            words = [f"w{i} " for i in range(server.slow_tokens)]
        try:
            for i, word in enumerate(words):
                if model == "stall-mid" and i == 2:
                    time.sleep(server.stall_s)
                if model == "cut" and i == 3:
                    self.connection.shutdown(2)  # drop the connection mid-answer
                    return
                if model == "malformed" and i == 2:
                    self.wfile.write(b"data: {this is not json\n\n")
                    self.wfile.flush()
                    return
                self.wfile.write(chunk(word))
                self.wfile.flush()
                time.sleep(server.token_delay_s if model == "slow" else 0.02)
            self.wfile.write(chunk(finish="stop"))
            self.wfile.write(
                chunk(usage={"prompt_tokens": 7, "completion_tokens": len(words), "total_tokens": 7 + len(words)})
            )
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            server.closed_early.set()
