"""ASGI guards in front of the app: a request body size cap, and 404 for unknown Gradio events.

Body size: one cap for every route, a larger one for the file upload route (what one upload may
carry: DOCCHAT_MAX_UPLOAD_FILES files of DOCCHAT_MAX_UPLOAD_MB; Gradio also caps each file).

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
    def __init__(
        self,
        app,
        max_bytes: int,
        upload_paths: tuple[str, ...] = (),
        upload_max_bytes: int | None = None,
        upload_refusal: str = "The upload is too large; send fewer or smaller files.",
    ):
        self.app = app
        self.max_bytes = max_bytes
        self.upload_paths = upload_paths
        self.upload_max_bytes = upload_max_bytes  # None: uploads are not capped here
        self.upload_refusal = upload_refusal

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        cap, sentence = self.max_bytes, f"The request is too large (limit {self.max_bytes // 1024} KB)."
        upload = any(path.endswith(p) or p + "?" in path for p in self.upload_paths)
        if upload:
            if self.upload_max_bytes is None:
                return await self.app(scope, receive, send)
            cap, sentence = self.upload_max_bytes, self.upload_refusal
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > cap
            except ValueError:
                too_big = True
            if too_big:
                log.warning(
                    "refused %s %s: body of %s bytes over the %d-byte cap",
                    scope.get("method"),
                    path,
                    declared[:20].decode(errors="replace"),
                    cap,
                )
                return await self._refuse(send, sentence)
            return await self.app(scope, receive, send)
        if upload:
            return await self._counted(scope, receive, send, cap, sentence)
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
            if size > cap:
                log.warning("refused %s %s: streamed body over the %d-byte cap", scope.get("method"), path, cap)
                return await self._refuse(send, sentence)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _counted(self, scope, receive, send, cap: int, sentence: str) -> None:
        """A chunked upload (gigabytes may be legitimate) streams through, counted; past the cap the
        app is told the client left (Gradio stops writing; the sweep removes its temp file) and
        whatever it answers is replaced by the 413."""
        size, over, started = 0, False, False

        async def counting():
            nonlocal size, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > cap:
                    over = True
                    log.warning(
                        "refused %s %s: streamed body over the %d-byte cap", scope.get("method"), scope["path"], cap
                    )
                    return {"type": "http.disconnect"}
            return message

        async def unless_over(message):
            nonlocal started
            if over and not started:
                return  # the app's answer to the "disconnect"; the 413 goes out instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting, unless_over)
        except Exception:
            if not over:
                raise
        if over and not started:
            await self._refuse(send, sentence)

    async def _refuse(self, send, sentence: str) -> None:
        body = json.dumps({"detail": sentence}).encode()
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
