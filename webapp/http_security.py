"""Two ASGI layers around the whole app (FastAPI routes and the mounted Gradio UI alike).

TrustedHosts - DNS rebinding. A page on attacker.example can re-point its own name at 127.0.0.1
(or at the pod's address) and then read whatever the server answers, as same-origin content. The
browser still sends ``Host: attacker.example``, so refusing names the server is not known by stops
it. An IP literal in Host is always accepted: rebinding needs a name, and the kubelet's probes send
``Host: <pod IP>:<port>``. Names accepted: localhost, the bound host, DOCCHAT_ALLOWED_HOSTS. When is
the check on (see ``HostPolicy.from_settings``)?

- auth none (a laptop, or --insecure-no-auth): always, that is where a rebound page is an admin;
- a loopback address, or DOCCHAT_ALLOWED_HOSTS set: always;
- sign-in on a non-loopback address with the setting unset (the k8s overlays): not checked. A
  rebound name carries no credential (the session cookie is host-only for the real name, tokens
  are sent by scripts), so it reaches only what the gate leaves open: probes and the sign-in page.

SecurityHeaders - nosniff, no framing by other sites, no Referer to other sites, and a CSP. The
CSP is limited to what Gradio's page tolerates: it runs inline scripts and styles, so a script-src
without 'unsafe-inline' breaks it, and with it the directive would add nothing. A route that sets
one of these headers itself (the document originals) keeps its own.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterable

from webapp.settings import Settings, is_loopback

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
CSP = "frame-ancestors 'none'; object-src 'none'; base-uri 'self'; form-action 'self'"
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy", CSP.encode()),
)
REFUSED = (
    "This server does not answer to that host name; open it by its own address "
    "(an operator can allow a public name with DOCCHAT_ALLOWED_HOSTS)."
)


def host_name(header: str) -> str:
    """The name part of a Host header: no port, no IPv6 brackets, lower case, no trailing dot."""
    header = header.strip().lower()
    if header.startswith("["):
        name = header[1 : header.find("]")] if "]" in header else header[1:]
    else:
        name = header.rsplit(":", 1)[0] if header.count(":") == 1 else header
    return name.rstrip(".")


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def parse_hosts(value: str) -> list[str]:
    """DOCCHAT_ALLOWED_HOSTS: names separated by commas (or spaces), as host_name normalises them."""
    return [host_name(part) for part in value.replace(",", " ").split() if part.strip()]


class HostPolicy:
    """Which Host header values are answered; ``check`` False answers every one."""

    def __init__(self, names: Iterable[str], check: bool = True):
        names = {n for n in names if n}
        self.any = "*" in names
        self.check = check and not self.any
        # "*.example.com" (or ".example.com") answers every sub-domain of example.com, not example.com itself.
        self.suffixes = tuple(n.lstrip("*") for n in names if n.startswith(("*.", ".")))
        self.names = frozenset(n for n in names if not n.startswith(("*", ".")))

    @classmethod
    def from_settings(cls, settings: Settings) -> HostPolicy:
        configured = parse_hosts(settings.allowed_hosts)
        bound = host_name(settings.host)
        names = [*LOOPBACK_NAMES, *configured]
        if bound not in ("", "0.0.0.0", "::"):
            names.append(bound)
        check = bool(configured) or settings.auth_mode == "none" or is_loopback(settings.host)
        return cls(names, check)

    def allows(self, header: str | None) -> bool:
        if not self.check or header is None:  # no Host at all is HTTP/1.0, never a browser
            return True
        name = host_name(header)
        return name in self.names or is_ip_literal(name) or name.endswith(self.suffixes)

    def describe(self) -> str:
        if not self.check:
            return "any host name (sign-in is on; set DOCCHAT_ALLOWED_HOSTS to refuse other names)"
        return ", ".join(sorted(self.names) + ["*" + s for s in self.suffixes] + ["IP addresses"])


class TrustedHosts:
    """400 and one sentence for a request whose Host the policy refuses, before anything else runs."""

    def __init__(self, app, policy: HostPolicy):
        self.app = app
        self.policy = policy

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or not self.policy.check:
            return await self.app(scope, receive, send)
        raw = dict(scope.get("headers") or []).get(b"host")
        header = raw.decode("latin-1") if raw is not None else None
        if self.policy.allows(header):
            return await self.app(scope, receive, send)
        log.warning(
            "refused %s %s for host %r from %s (allowed: %s)",
            scope.get("method", "websocket"),
            scope.get("path", "")[:200],
            (header or "")[:100],
            (scope.get("client") or ("?",))[0],
            self.policy.describe(),
        )
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        body = json.dumps({"detail": REFUSED}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response that does not set them itself."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                html = any(n.lower() == b"content-type" and v.startswith(b"text/html") for n, v in headers)
                if html and b"cache-control" not in present:
                    # A page is the signed-in user's: after sign-out, Back must ask the server again
                    # (and land on the sign-in page), not show a stored copy whose calls all fail.
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
