"""Who is asking: one check in front of every route, in every auth mode but none.

The gate is an ASGI middleware around the whole app, not Gradio's own ``auth``: Gradio guards
most of its routes, but not all of them (/gradio_api/cancel, /heartbeat, /stream, /reset are
open), and it keeps its login tokens in memory. Here every request except the health probes and
the sign-in page must carry one of:

- a session cookie from the sign-in page (password mode);
- ``Authorization: Bearer dct_...``, a user's API token (password and header modes);
- the identity header set by a trusted proxy (header mode), believed only when the connection
  comes from one of ``trusted_proxies``; behind Google IAP (``iap_audience`` set) the user is
  instead the email of IAP's signed assertion, checked by ``webapp.auth.iap``.

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

from webapp.auth import iap
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
        self.iap = self._iap_verifier(settings)

    def _iap_verifier(self, settings: Settings) -> iap.IAPVerifier | None:
        """IAP's signed assertion is checked when an audience is set; behind IAP it must be (docs/users.md)."""
        if self.mode != "header":
            if settings.iap_audience:
                log.warning("DOCCHAT_IAP_AUDIENCE is set but sign-in is %s, not header: it is not used", self.mode)
            return None
        if settings.iap_audience:
            verifier = iap.verifier_for(settings.iap_audience, settings.iap_keys_file, settings.iap_keys_url)
            log.info("header sign-in: the user is the email of IAP's signed assertion for %s", settings.iap_audience)
            return verifier
        if settings.auth_header.lower() == iap.GOOGLE_IAP_HEADER:
            # IAP always sends the signed assertion, so only a missing audience stands between the
            # app and believing a header anything in Google's load-balancer ranges can send.
            raise UserError(
                "Sign-in through Google IAP needs DOCCHAT_IAP_AUDIENCE "
                "(/projects/PROJECT_NUMBER/global/backendServices/SERVICE_ID): without it the unsigned "
                f"{settings.auth_header} header would be believed, and anyone who reaches the pod through a "
                "Google load balancer could claim to be anyone (docs/users.md)."
            )
        log.warning(
            "header sign-in believes the unsigned %s header from %s: identity rests on the source address "
            "alone, so keep every other path to this port closed (docs/users.md)",
            settings.auth_header,
            ", ".join(settings.trusted_proxies),
        )
        return None

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
        if self.mode == "header" and self.iap is not None:
            return self._from_iap(self.iap, headers.get(iap.ASSERTION_HEADER), headers.get(self.header), client)
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
        return self._proxy_user(_without_google_prefix(raw), raw)

    def _from_iap(
        self, verifier: iap.IAPVerifier, assertion: bytes | None, named: bytes | None, client: str | None
    ) -> User | None:
        """Behind IAP: the user is the signed assertion's email; the plain header may only agree with it."""
        if not self.from_trusted_proxy(client):
            if assertion is not None or named is not None:
                log.warning("IAP identity from %s refused: not a trusted proxy", client)
            return None
        try:
            email = verifier.email(assertion)  # KeysUnavailable goes up: the gate answers 503
        except iap.AssertionRejected as reason:
            log.warning("IAP assertion from %s refused: %s", client, reason)
            return None
        if named is not None:
            claimed = _without_google_prefix(named.decode("latin-1").strip())
            if claimed.casefold() != email.casefold():
                log.warning(
                    "IAP request refused: %s names %r but the signed assertion is for %r",
                    self.settings.auth_header,
                    claimed[:80],
                    email[:80],
                )
                return None
        return self._proxy_user(email, email)

    def _proxy_user(self, name: str, raw: str) -> User | None:
        """The user a proxy named (created on first sight with header_new_user_role, if set)."""
        try:
            name = valid_name(name)
        except UserError:
            log.warning("the proxy names an invalid user %r", raw[:80])
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


def _without_google_prefix(value: str) -> str:
    return value.split(":", 1)[1] if value.startswith("accounts.google.com:") else value  # IAP's prefix


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
        # for a moment per document), and fetching IAP's keys may wait for Google; the event loop
        # must keep serving /healthz meanwhile.
        try:
            user = await anyio.to_thread.run_sync(self.auth.identify, headers, client)
        except iap.KeysUnavailable as exc:  # not the client's fault: 503, and the log says why
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 1013})
            body = json.dumps({"detail": exc.user_message}).encode()
            return await _respond(send, 503, body, [(b"content-type", b"application/json"), (b"retry-after", b"60")])
        if user is not None:
            scope.setdefault("state", {})[STATE_KEY] = user
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        wants_page = scope.get("method") == "GET" and b"text/html" in headers.get(b"accept", b"")
        if wants_page and self.auth.mode == "password":
            target = root + "/auth/login?next=" + quote(root + path, safe="/")
            return await _respond(send, 303, b"", [(b"location", target.encode())])
        if self.auth.iap is not None:
            sentence = "Sign in through Google IAP: this request carries no valid IAP sign-in for this app."
        elif self.auth.mode == "header":
            sentence = "Sign in through the identity proxy in front of this server."
        else:
            sentence = "Sign in first: open the app in a browser, or send an API token as 'Authorization: Bearer'."
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
