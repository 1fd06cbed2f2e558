"""ASGI guards in front of the app: a request body size cap, and 404 for unknown Gradio events.

Body size: for every route except file uploads (Gradio caps those per file).

A pure ASGI middleware: it refuses a declared Content-Length above the cap with 413 before
reading anything, and reads bodies sent without one (chunked) only up to the cap before passing them on, so a client
cannot make the server parse a 100 MB JSON chat history.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class BodySizeLimit:
    def __init__(self, app, max_bytes: int, upload_paths: tuple[str, ...] = ()):
        self.app = app
        self.max_bytes = max_bytes
        self.upload_paths = upload_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if any(path.endswith(p) or p + "?" in path for p in self.upload_paths):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                too_big = True
            if too_big:
                log.warning(
                    "refused %s %s: body of %s bytes over the %d-byte cap",
                    scope.get("method"),
                    path,
                    declared[:20].decode(errors="replace"),
                    self.max_bytes,
                )
                return await self._refuse(send)
            return await self.app(scope, receive, send)
        # No declared length (chunked): read up to the cap here, then hand the body on.
        body, more = [], True
        size = 0
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body.append(message.get("body", b""))
            size += len(body[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                log.warning(
                    "refused %s %s: streamed body over the %d-byte cap", scope.get("method"), path, self.max_bytes
                )
                return await self._refuse(send)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send) -> None:
        body = json.dumps({"detail": f"The request is too large (limit {self.max_bytes // 1024} KB)."}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


class UnknownEventIs404:
    """Gradio lets an unknown ``api_name`` escape as a 500 (FnIndexInferError); it is the client's mistake.

    Checked before Gradio sees the request: the mounted app answers the 500 itself (its own
    error middleware) before any outer handler could turn the exception into a 404.
    """

    PREFIXES = ("/gradio_api/run/", "/gradio_api/api/", "/gradio_api/call/v2/", "/gradio_api/call/")

    def __init__(self, app, known: Callable[[], set[str]]):
        self.app = app
        self.known = known

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("method") == "POST":
            path = scope.get("path", "")
            for prefix in self.PREFIXES:
                at = path.find(prefix)
                if at >= 0:
                    api = path[at + len(prefix) :].strip("/")
                    if api not in self.known():
                        log.info("unknown event requested: %r", api[:100])
                        body = b'{"detail": "There is no API endpoint with that name."}'
                        await send(
                            {
                                "type": "http.response.start",
                                "status": 404,
                                "headers": [
                                    (b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()),
                                ],
                            }
                        )
                        await send({"type": "http.response.body", "body": body})
                        return
                    break
        await self.app(scope, receive, send)
