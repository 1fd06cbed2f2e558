"""The sign-in page and sign-out, for auth mode password.

A plain HTML form (no script, works with any browser and a keyboard): a right name and password
start a server-side session (webapp/auth/users.py) whose token goes into an HttpOnly, SameSite
cookie. Attempts are throttled by webapp/auth/throttle.py (per user name and per client address,
slowing rather than locking, counted before the password is checked, kept in the store); a
refused attempt gets 429, Retry-After and the page saying how long to wait, and nothing is
checked until then. The log names the user and the address of a failed attempt, never the
password.
"""

from __future__ import annotations

import html
import logging
import math

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from webapp.auth.gate import SESSION_COOKIE, Authenticator
from webapp.auth.throttle import SigninThrottle, wait_sentence
from webapp.auth.users import MAX_PASSWORD

log = logging.getLogger(__name__)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · DocChat</title>
<style>
 body {{ font-family: system-ui, sans-serif; background: #f6f7f9; display: flex; justify-content: center; }}
 main {{ margin-top: 12vh; background: #fff; padding: 2rem 2.5rem; border-radius: 10px;
        box-shadow: 0 1px 4px rgba(0,0,0,.12); width: 20rem; }}
 label {{ display: block; margin: .9rem 0 .3rem; font-weight: 600; }}
 input {{ width: 100%; box-sizing: border-box; padding: .55rem; font-size: 1rem; border: 1px solid #bbb;
         border-radius: 6px; }}
 button {{ margin-top: 1.3rem; width: 100%; padding: .6rem; font-size: 1rem; border: 0; border-radius: 6px;
          background: #c2410c; color: #fff; cursor: pointer; }}
 p.error {{ color: #b91c1c; }}
</style></head>
<body><main>
<h1>DocChat</h1>
{message}
<form method="post" action="{action}">
<input type="hidden" name="next" value="{next}">
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" required maxlength="64" value="{username}" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" id="sign-in">Sign in</button>
</form>
</main></body></html>
"""


def safe_next(target: str | None, root: str) -> str:
    """Where to go after signing in: a path on this server only (never //evil.example)."""
    target = target or ""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or any(ord(c) < 32 for c in target):
        return (root or "") + "/"
    return target


def signin_router(authenticator: Authenticator, throttle: SigninThrottle | None = None) -> APIRouter:
    router = APIRouter(prefix="/auth", include_in_schema=False)
    settings = authenticator.settings
    throttle = throttle or SigninThrottle(
        authenticator.users.database,
        free_failures=settings.signin_max_failures,
        familiar_cap_s=settings.signin_max_delay_s,
    )

    def page(
        request: Request,
        status: int = 200,
        message: str = "",
        username: str = "",
        next_url: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        text = PAGE.format(
            message=f'<p class="error" role="alert">{html.escape(message)}</p>' if message else "",
            action=html.escape(root + "/auth/login"),
            username=html.escape(username[:64]),
            next=html.escape(safe_next(next_url or request.query_params.get("next"), root)),
        )
        return HTMLResponse(text, status_code=status, headers={"cache-control": "no-store", **(headers or {})})

    @router.get("/login")
    def login_page(request: Request):
        if authenticator.mode == "none":
            return RedirectResponse((request.scope.get("root_path", "") or "") + "/", status_code=303)
        if authenticator.mode == "header":
            return HTMLResponse(
                "<p>This server signs you in through the identity proxy in front of it.</p>", status_code=401
            )
        return page(request)

    @router.post("/login")
    def login(request: Request, username: str = Form(""), password: str = Form(""), next: str = Form("/")):
        # No length limits on the fields (a 422 would be a second kind of answer): the request body
        # is capped at 4 MB, the name is cut to 64 characters and an over-long password never hashed.
        if authenticator.mode != "password":
            return Response(status_code=404)
        root = request.scope.get("root_path", "")
        address = (request.client.host if request.client else "") or "unknown"
        name = "".join(ch for ch in username.strip() if ch.isprintable())[:64]
        # The attempt is counted before the (slow) hash is checked, so concurrent guesses cannot
        # all slip through between the check and the count.
        attempt = throttle.begin(name, address)
        if attempt.refused:
            log.warning(
                "sign-in refused for %.0f s (too many failures) for user %r from %s",
                attempt.retry_after_s,
                name,
                address,
            )
            wait = math.ceil(attempt.retry_after_s)
            return page(request, 429, wait_sentence(wait), name, next, headers={"retry-after": str(wait)})
        user = (
            authenticator.users.verify_password(name, password) if name and 0 < len(password) <= MAX_PASSWORD else None
        )
        if user is None:
            log.warning("sign-in failed for user %r from %s", name, address)
            return page(request, 401, "Wrong user name or password (or the account is disabled).", name, next)
        throttle.succeeded(attempt)
        log.info("user %s signed in from %s", user.name, address)
        token = authenticator.users.start_session(user, settings.session_hours * 3600)
        response = RedirectResponse(safe_next(next, root), status_code=303)
        secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(settings.session_hours * 3600),
            httponly=True,
            samesite="lax",
            secure=secure,
            path=(root or "/"),
        )
        return response

    @router.post("/logout")
    def logout(request: Request):
        root = request.scope.get("root_path", "")
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            authenticator.users.end_session(token)
        response = RedirectResponse(
            root + ("/auth/login" if authenticator.mode == "password" else "/"), status_code=303
        )
        response.delete_cookie(SESSION_COOKIE, path=(root or "/"))
        return response

    return router
