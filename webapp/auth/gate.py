"""Who is asking: one check in front of every route, in every auth mode but none.

The gate is an ASGI middleware around the whole app, not Gradio's own ``auth``: Gradio guards
most of its routes, but not all of them (/gradio_api/cancel, /heartbeat, /stream, /reset are
open), and it keeps its login tokens in memory. Here every request except the health probes and
the sign-in page must carry one of:

- a session cookie from the sign-in page (password mode);
- ``Authorization: Bearer dct_...``, a user's API token (password and header modes);
- the identity header set by a trusted proxy (header mode), believed only when the connection
  comes from one of ``trusted_proxies``.

The user found is put in the request's state; Gradio gets its name through ``auth_dependency``
(so ``gr.Request.username`` is set) and the services get an Actor from ``actor_for``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from http.cookies import SimpleCookie
from urllib.parse import quote

import anyio

from webapp.auth.access import LOCAL, Actor
from webapp.auth.users import User, UserStore, valid_name
from webapp.errors import UserError
from webapp.settings import Settings

log = logging.getLogger(__name__)

SESSION_COOKIE = "docchat_session"
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/auth/login", "/auth/logout", "/favicon.ico"})
STATE_KEY = "docchat_user"


class Authenticator:
    """Resolves a request's credentials to a user of the store, per the auth mode."""

    def __init__(self, settings: Settings, users: UserStore):
        self.settings = settings
        self.mode = settings.auth_mode
        self.users = users
        self.header = settings.auth_header.lower().encode()
        self.proxies = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]
        if self.mode == "header" and not self.proxies:
            raise UserError(
                "Header sign-in needs DOCCHAT_TRUSTED_PROXIES: the addresses of the proxy that sets "
                f"{settings.auth_header}; without it anyone could claim to be anyone."
            )

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def from_trusted_proxy(self, client: str | None) -> bool:
        try:
            address = ipaddress.ip_address(client or "")
        except ValueError:
            return False
        return any(address in net for net in self.proxies)

    def identify(self, headers: dict[bytes, bytes], client: str | None) -> User | None:
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth[:7].lower() == "bearer ":
            return self.users.user_for_token(auth[7:].strip())
        if self.mode == "header":
            return self._from_header(headers.get(self.header), client)
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
        except Exception:  # a malformed Cookie header is just no cookie
            return None
        morsel = cookie.get(SESSION_COOKIE)
        return self.users.user_for_session(morsel.value) if morsel else None

    def _from_header(self, value: bytes | None, client: str | None) -> User | None:
        if value is None:
            return None
        if not self.from_trusted_proxy(client):
            log.warning("identity header %s from %s refused: not a trusted proxy", self.settings.auth_header, client)
            return None
        raw = value.decode("latin-1").strip()
        name = raw.split(":", 1)[1] if raw.startswith("accounts.google.com:") else raw  # Google IAP's prefix
        try:
            name = valid_name(name)
        except UserError:
            log.warning("identity header names an invalid user %r", raw[:80])
            return None
        try:
            user = self.users.get(name)
        except UserError:
            if not self.settings.header_new_user_role:
                log.warning("proxy-named user %s is not in the user store; refused", name)
                return None
            user = self.users.add_external(name, self.settings.header_new_user_role)
            log.info("user %s created on first sign-in through the proxy (%s)", name, user.role)
        return None if user.disabled else user

    def actor_for(self, username: str | None) -> Actor:
        """The Actor for a request's user name (from gr.Request.username)."""
        if not self.enabled:
            return LOCAL
        if not username:
            raise UserError("Sign in first.")
        user = self.users.get(username)
        if user.disabled:
            raise UserError("This account is disabled.")
        return Actor(user.name, user.role)

    def actor_of(self, request) -> Actor:
        """The Actor of a Gradio event: its gr.Request carries the signed-in user's name."""
        return self.actor_for(getattr(request, "username", None) if request is not None else None)


def request_user(request) -> User | None:
    """The user the gate put on a Starlette/FastAPI request (None with auth none)."""
    return request.scope.get("state", {}).get(STATE_KEY)


class AuthGate:
    """Refuses every request without a valid identity, except the open paths."""

    def __init__(self, app, authenticator: Authenticator):
        self.app = app
        self.auth = authenticator

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        root = scope.get("root_path", "")
        path = scope["path"][len(root) :] if root and scope["path"].startswith(root) else scope["path"]
        if path in OPEN_PATHS:
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        client = (scope.get("client") or (None,))[0]
        # In a worker thread: a SQLite lookup may wait for a writer (indexing holds the database
        # for a moment per document), and the event loop must keep serving /healthz meanwhile.
        user = await anyio.to_thread.run_sync(self.auth.identify, headers, client)
        if user is not None:
            scope.setdefault("state", {})[STATE_KEY] = user
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        wants_page = scope.get("method") == "GET" and b"text/html" in headers.get(b"accept", b"")
        if wants_page and self.auth.mode == "password":
            target = root + "/auth/login?next=" + quote(root + path, safe="/")
            return await _respond(send, 303, b"", [(b"location", target.encode())])
        sentence = (
            "Sign in through the identity proxy in front of this server."
            if self.auth.mode == "header"
            else "Sign in first: open the app in a browser, or send an API token as 'Authorization: Bearer'."
        )
        body = json.dumps({"detail": sentence}).encode()
        return await _respond(
            send, 401, body, [(b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="docchat"')]
        )


async def _respond(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": headers + [(b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")],
        }
    )
    await send({"type": "http.response.body", "body": body})
