"""Gradio's raw upload route (POST .../gradio_api/upload), guarded and swept.

The browser's File component sends the chosen files there first and names the returned paths in
the "upload" event afterwards; Gradio itself would take files from any signed-in user and keep
them for one to two hours (its own cache cleanup, hourly). So:

- only roles that may upload (admin, member) reach the route; anyone else gets 403 and a sentence
  before a byte is read (the size cap of one request is BodySizeLimit's, webapp/http_limits.py);
- every path the route hands back is remembered; a path named in a later request (the "upload"
  event, however long it then waits in Gradio's queue) is claimed, and from then on it is the
  document service's to store and delete. One that nothing names within DOCCHAT_UPLOAD_CLAIM_S is
  deleted, as are Gradio's temp files of uploads that never completed.

The remembered paths live in memory: at start the whole uploads folder is emptied anyway
(webapp/server.py), so nothing from before a restart needs them.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

UPLOAD_ROUTE = "/gradio_api/upload"
# Gradio answers an upload with the list of paths it wrote: ~100 bytes each, 1,000 at most.
MAX_UPLOAD_ANSWER = 1 << 20
# Event bodies are scanned for claimed paths up to the JSON body cap (webapp/server.py).
MAX_SCANNED_BODY = 4 << 20


class PendingUploads:
    """Files the upload route wrote that no request has named yet, and the sweep that deletes them."""

    def __init__(self, folder: Path, claim_s: float, clock: Callable[[], float] = time.monotonic):
        self.folder = Path(folder).resolve()
        self.claim_s = claim_s
        self.clock = clock
        self._written: dict[str, float] = {}  # path -> when the upload route wrote it
        prefixes = {str(self.folder).encode(), json.dumps(str(self.folder))[1:-1].encode()}
        self._named = re.compile(b"(?:" + b"|".join(re.escape(p) for p in prefixes) + rb')[^"]*')
        self._lock = threading.Lock()

    @property
    def waiting(self) -> bool:
        return bool(self._written)

    def written(self, paths: list[str]) -> None:
        now = self.clock()
        with self._lock:
            for p in paths:
                if isinstance(p, str) and Path(p).resolve().is_relative_to(self.folder):
                    self._written[p] = now

    def claim(self, body: bytes) -> None:
        """Paths named in a request body are claimed: one pass over the body for strings that start
        with the folder (raw, or escaped as Python's JSON writes non-ASCII), whatever is waiting."""
        named = set()
        for m in self._named.finditer(body):
            try:
                named.add(json.loads(b'"' + m.group() + b'"'))
            except ValueError:
                continue
        if named:
            with self._lock:
                for p in named & self._written.keys():
                    del self._written[p]

    def sweep(self) -> int:
        """Delete what waited too long unclaimed, and stale temp files of unfinished uploads."""
        now = self.clock()
        with self._lock:
            expired = [p for p, at in self._written.items() if now - at > self.claim_s]
            for p in expired:
                del self._written[p]
        deleted = sum(self._delete(Path(p)) for p in expired)
        # Gradio streams each file to a temp file (tmpXXXX) at the top of the folder and renames it
        # into a per-file folder when the request completes; one left there was never completed.
        try:
            strays = [e for e in self.folder.iterdir() if e.name.startswith("tmp") and e.is_file()]
        except OSError:
            strays = []
        for entry in strays:
            try:
                if time.time() - entry.stat().st_mtime > self.claim_s:
                    deleted += self._delete(entry)
            except OSError:
                continue
        if deleted:
            log.info("deleted %d uploaded file(s) that no upload claimed within %.0f s", deleted, self.claim_s)
        return deleted

    def _delete(self, path: Path) -> int:
        path = path.parent.resolve() / path.name  # a symlink itself, never its target
        if path == self.folder or not path.is_relative_to(self.folder):
            return 0
        try:
            path.unlink()
        except FileNotFoundError:
            return 0  # already stored and deleted by the service
        except OSError as exc:
            log.warning("could not delete unclaimed upload %s: %s", path, exc)
            return 0
        parent = path.parent
        try:
            if parent != self.folder and not any(parent.iterdir()):
                shutil.rmtree(parent, ignore_errors=True)
        except OSError:
            pass
        return 1

    def run(self, stop: threading.Event) -> None:
        """Sweep until ``stop`` is set, a few times per claim period (at least once a minute)."""
        interval = min(60.0, max(0.5, self.claim_s / 3))
        while not stop.wait(interval):
            try:
                self.sweep()
            except Exception:  # the sweeper must outlive one bad file system moment
                log.exception("sweeping unclaimed uploads failed")


class UploadGuard:
    """ASGI: refuses the upload route to roles that may not upload; remembers and claims the paths.

    ``refusal(scope)`` says why this caller may not upload (None: they may); it runs after the
    sign-in gate, which has put the user in the scope.
    """

    def __init__(self, app, pending: PendingUploads, refusal: Callable[[dict], str | None]):
        self.app = app
        self.pending = pending
        self.refusal = refusal

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        if scope.get("path", "").endswith(UPLOAD_ROUTE):
            return await self._upload(scope, receive, send)
        if not self.pending.waiting:
            return await self.app(scope, receive, send)
        seen = bytearray()

        async def scanning():
            message = await receive()
            if message["type"] == "http.request":
                if len(seen) < MAX_SCANNED_BODY:
                    seen.extend(message.get("body", b"")[: MAX_SCANNED_BODY - len(seen)])
                if not message.get("more_body", False):
                    self.pending.claim(bytes(seen))
            return message

        await self.app(scope, scanning, send)

    async def _upload(self, scope, receive, send):
        problem = self.refusal(scope)
        if problem:
            log.warning("raw upload from %s refused: %s", (scope.get("client") or ("?",))[0], problem)
            body = json.dumps({"detail": problem}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        status = 0
        answer = bytearray()

        async def recording(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and len(answer) <= MAX_UPLOAD_ANSWER:
                answer.extend(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, recording)
        if status == 200:
            try:
                paths = json.loads(bytes(answer))
            except ValueError:
                log.warning("could not read the paths of an upload (%d bytes of answer)", len(answer))
                return
            if isinstance(paths, list):
                self.pending.written(paths)
