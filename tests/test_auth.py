"""Users, roles and sharing against a real `python -m webapp serve --auth password`, through HTTP only.

Every check is made the way a client reaches the product: the sign-in form, session cookies,
API tokens, and Gradio's own event API (POST /gradio_api/call/<api_name>, then the event
stream). Refusals must come from the server, not from a hidden button.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, running_app, webapp_command
from tests.gradio_events import call_event
from tests.pdfgen import make_pdf

PASSWORDS = {
    "ada": "ada-admin-pass",
    "bob": "bob-member-pass",
    "cy": "cy-member-pass",
    "vic": "vic-viewer-pass",
    "dee": "dee-member-pass",
}
ROLES = {"ada": "admin", "bob": "member", "cy": "member", "vic": "viewer", "dee": "member"}
MODEL = "smollm2-135m-instruct-int4"


def make_users(data: Path) -> dict[str, str]:
    """The users, created the way an operator does (the user store), with one API token each."""
    from webapp.auth.users import UserStore

    store = UserStore(data)
    tokens = {}
    for name, role in ROLES.items():
        store.add(name, role, PASSWORDS[name])
        tokens[name] = store.issue_token(name)
    store.close()
    return tokens


class Api:
    """Gradio's HTTP event API with one identity (a token, a cookie, or none)."""

    def __init__(self, base: str, token: str | None = None, cookies: dict | None = None, **client_args):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base = base
        self.http = httpx.Client(base_url=base, headers=headers, cookies=cookies, timeout=120, **client_args)

    def call(self, api: str, data: list) -> tuple[int, list]:
        return call_event(self.http, api, data)

    def result(self, api: str, data: list) -> list:
        """The final outputs of an event (fails the test on an HTTP or Gradio error)."""
        status, events = self.call(api, data)
        assert status == 200 and events and events[-1][0] == "complete", (api, status, events[-1:])
        return events[-1][1]

    def choices(self) -> list[str]:
        """The collection names the Chat tab's picker offers this user (as the page's timer asks)."""
        picker = self.result("refresh_pickers", [[]])[0]
        return [c[0] if isinstance(c, list) else c for c in picker["choices"]]

    def upload(self, collection: str, pdf: Path, index: bool = True) -> list:
        with open(pdf, "rb") as fh:
            r = self.http.post("/gradio_api/upload", files={"files": (pdf.name, fh, "application/pdf")})
        if r.status_code == 403:  # a role that may not upload is refused at Gradio's upload route already
            return r.status_code, [("refused", r.json())]
        assert r.status_code == 200, r.text
        return self.call(
            "upload",
            [collection, [{"path": r.json()[0], "orig_name": pdf.name, "meta": {"_type": "gradio.FileData"}}], index],
        )

    def ask(self, question: str, collection: str | None, conversation=None) -> list:
        return self.result("respond", [question, conversation, MODEL, 16, 0, collection, "auto", []])


def content_text(message: dict) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def text_of(events) -> str:
    return json.dumps(events, ensure_ascii=False)


@pytest.fixture(scope="module")
def server(registry_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("auth-data")
    tokens = make_users(data)
    env = {"DOCCHAT_AUTH": "password", "DOCCHAT_MAX_NEW_TOKENS": "16", "DOCCHAT_SIGNIN_MAX_FAILURES": "3"}
    with running_app(registry_dir, data, extra_env=env) as base:
        yield {"base": base, "data": data, "tokens": tokens}


def sign_in(base: str, name: str, password: str) -> httpx.Response:
    return httpx.post(
        base + "/auth/login",
        data={"username": name, "password": password, "next": "/"},
        follow_redirects=False,
        timeout=30,
    )


def test_every_route_needs_a_signed_in_user(server):
    base = server["base"]
    anonymous = httpx.Client(base_url=base, timeout=30, follow_redirects=False)
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/readyz").status_code == 200
    page = anonymous.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"].endswith("/auth/login?next=/")
    assert anonymous.get("/auth/login").status_code == 200
    for path in (
        "/",
        "/config",
        "/gradio_api/info",
        "/gradio_api/openapi.json",
        "/api/docs",
        "/api/openapi.json",
        "/gradio_api/file=/etc/passwd",
        "/gradio_api/heartbeat/abc",
        "/gradio_api/upload_progress",
        "/theme.css",
        "/gradio_api/startup-events",
        "/gradio_api/user",
        "/gradio_api/call/respond/x",
    ):
        r = anonymous.get(path)
        assert r.status_code == 401, (path, r.status_code)
        assert "root:" not in r.text
    for path in (
        "/gradio_api/queue/join",
        "/gradio_api/call/respond",
        "/gradio_api/run/predict",
        "/gradio_api/upload",
        "/gradio_api/cancel",
        "/gradio_api/reset",
        "/gradio_api/api/respond",
    ):
        r = anonymous.post(
            path, json={"data": ["hi", None, MODEL, 16, 0, None], "fn_index": 0, "session_hash": "x", "event_id": "y"}
        )
        assert r.status_code == 401, (path, r.status_code)
    # A token that is not one, a forged session cookie, a bearer with a session-looking value.
    for headers in (
        {"Authorization": "Bearer dct_" + secrets.token_urlsafe(32)},
        {"Cookie": "docchat_session=dcs_" + secrets.token_urlsafe(32)},
        {"Authorization": "Bearer dcs_forged"},
        {"Cookie": 'docchat_session=\x7f;;=="x'},
    ):
        assert anonymous.get("/config", headers=headers).status_code == 401, headers


def test_sign_in_sign_out_and_replayed_cookie(server):
    base = server["base"]
    wrong = sign_in(base, "bob", "not-his-password")
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    assert "docchat_session" not in wrong.headers.get("set-cookie", "")
    right = sign_in(base, "bob", PASSWORDS["bob"])
    assert right.status_code == 303 and right.headers["location"] == "/"
    cookie = right.cookies["docchat_session"]
    assert "httponly" in right.headers["set-cookie"].lower() and "samesite=lax" in right.headers["set-cookie"].lower()
    signed_in = httpx.Client(base_url=base, cookies={"docchat_session": cookie}, timeout=30)
    config = signed_in.get("/config")
    assert config.status_code == 200 and config.json().get("username") == "bob"
    banner = Api(base, cookies={"docchat_session": cookie}).result("on_load", [])[0]
    assert "bob" in banner and "member" in banner and "Sign out" in banner
    out = signed_in.post("/auth/logout", follow_redirects=False)
    assert out.status_code == 303
    # The same cookie, replayed after sign-out, is refused: the session is gone on the server.
    assert httpx.get(base + "/config", cookies={"docchat_session": cookie}, timeout=30).status_code == 401
    # Only local paths are followed after sign-in.
    evil = httpx.post(
        base + "/auth/login",
        data={"username": "bob", "password": PASSWORDS["bob"], "next": "//evil.example/x"},
        follow_redirects=False,
        timeout=30,
    )
    assert evil.status_code == 303 and evil.headers["location"] == "/"


def test_failed_sign_ins_are_throttled_and_logged_without_the_password(server):
    base, data = server["base"], server["data"]
    guesses = [f"guess-{secrets.token_hex(4)}" for _ in range(3)]
    for guess in guesses:
        assert sign_in(base, "dee", guess).status_code == 401
    # The limit (3 here) is reached: even the right password waits now, and the page says how long.
    blocked = sign_in(base, "dee", PASSWORDS["dee"])
    assert blocked.status_code == 429 and "try again in" in blocked.text
    # Another user from the same address is not locked out by dee's failures.
    assert sign_in(base, "cy", PASSWORDS["cy"]).status_code == 303
    log = (data / "server.log").read_text()
    assert "sign-in failed for user 'dee'" in log
    assert not any(g in log for g in guesses) and PASSWORDS["dee"] not in log


def test_viewer_is_refused_by_the_server_not_only_by_the_ui(server, tmp_path):
    base, tokens = server["base"], server["tokens"]
    vic = Api(base, tokens["vic"])
    ada = Api(base, tokens["ada"])
    admins_pdf = make_pdf(tmp_path / "handbook.pdf", ["The handbook: everyone may read this page."])
    assert "Indexed 1 document" in text_of(ada.upload("default", admins_pdf)[1])
    before = ada.result("show_collection", ["default"])[0]
    doc_id = next(row[0] for row in before["data"] if row[1] == "handbook.pdf")
    # vic can read the collection (it is everyone's), so the refusals below are about the role.
    assert "handbook.pdf" in text_of(vic.result("show_collection", ["default"]))
    pdf = make_pdf(tmp_path / "viewer-upload.pdf", ["A viewer tries to upload this page."])
    attempts = {
        "upload": vic.upload("default", pdf),
        "create_collection": vic.call("create_collection", ["vic-stuff", "private", ""]),
        "delete_1": vic.call("delete_1", ["default", doc_id]),
        "reindex_all": vic.call("reindex_all", ["default"]),
        "reembed": vic.call("reembed", ["all-minilm-l6-v2"]),
        "run": vic.call("run", [[f"openvino:{MODEL}"], "chat", 1, 16, [1]]),
        "users_add": vic.call("users_add", ["mallory", "admin", "mallory-pass-1"]),
        "users_set_role": vic.call("users_set_role", ["vic", "admin", ""]),
        "share": vic.call("share", ["default", "private", ""]),
    }
    assert attempts["upload"][0] == 403  # before the file is even received
    for api, (status, events) in attempts.items():
        body = text_of(events)
        assert status == 403 or (status == 200 and events[-1][0] == "complete"), (api, events[-1:])
        assert any(word in body for word in ("cannot", "Only an admin", "Only the owner", "not change")), (api, body)
    # Nothing changed: no user, no collection, the same documents, vic still a viewer.
    users = ada.result("users_enable", ["vic", "viewer", ""])[0]["data"]
    assert ["mallory"] not in [[row[0]] for row in users]
    assert next(row for row in users if row[0] == "vic")[1] == "viewer"
    assert "vic-stuff" not in ada.choices()
    assert ada.result("show_collection", ["default"])[0] == before


def test_private_collection_is_invisible_to_other_users(server, registry_dir, tmp_path):
    base, tokens, data = server["base"], server["tokens"], server["data"]
    bob, cy, vic, ada = (Api(base, tokens[n]) for n in ("bob", "cy", "vic", "ada"))
    created = bob.result("create_collection", ["bob-private", "private", ""])
    assert "is ready" in text_of(created)
    marker = "Zanzibar-" + secrets.token_hex(3)
    pdf = make_pdf(
        tmp_path / "bob-salaries.pdf",
        [
            f"Salary review. The code word for the bonus pool is {marker}.\n"
            f"The bonus pool code word {marker} must stay confidential."
        ],
    )
    status, events = bob.upload("bob-private", pdf)
    assert "Indexed 1 document" in text_of(events)
    # bob reads it; the answer cites it.
    answer = bob.ask(f"What is the code word {marker} for?", "bob-private")
    assert "bob-salaries.pdf" in text_of(answer)
    # cy and vic: not in any list, not searchable, not citable, not even confirmed to exist.
    for other in (cy, vic):
        assert "bob-private" not in other.choices()
        assert "bob-private" not in text_of(other.result("on_load", []))
        refused = other.ask(f"What is the code word {marker} for?", "bob-private")
        assert "There is no collection named 'bob-private'" in text_of(refused)
        assert "bob-salaries" not in text_of(refused)
        assert other.result("show_collection", ["bob-private"])[0]["data"] in ([], [[""] * 7])
        # Asked against a collection they may read, nothing of bob's leaks into the citations.
        general = other.ask(f"What is the code word {marker} for?", "default")
        assert "bob-salaries" not in text_of(general) and marker not in text_of(general).replace(
            f"What is the code word {marker} for?", ""
        )
        deleted = other.call("delete_1", ["bob-private", 1])
        assert "There is no" in text_of(deleted)
    # An admin sees it (admins may do everything).
    assert "bob-private" in ada.choices()
    # The original PDF and its highlighted pages: bob's, never cy's or an anonymous client's.
    doc_id = bob.result("show_collection", ["bob-private"])[0]["data"][0][0]
    for path, kind in (
        (f"/documents/{doc_id}.pdf", "application/pdf"),
        (f"/documents/{doc_id}/pages/1.png?highlight=bonus+pool", "image/png"),
    ):
        mine = bob.http.get(path)
        assert mine.status_code == 200 and mine.headers["content-type"] == kind, (path, mine.status_code)
        theirs = cy.http.get(path)
        assert theirs.status_code == 404 and marker not in theirs.text and "salaries" not in theirs.text
        assert httpx.get(base + path, timeout=30).status_code == 401
    # The CLI obeys the same rules on behalf of a user.
    cli = [
        *webapp_command(registry_dir, data),
        "search",
        marker,
        "--collection",
        "bob-private",
        "--json",
    ]
    as_cy = subprocess.run(
        cli + ["--user", "cy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "DOCCHAT_AUTH": "password"},
    )
    assert as_cy.returncode == 2 and "There is no collection named 'bob-private'" in as_cy.stderr
    as_bob = subprocess.run(
        cli + ["--user", "bob"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "DOCCHAT_AUTH": "password"},
    )
    assert as_bob.returncode == 0 and "bob-salaries.pdf" in as_bob.stdout
    nobody = subprocess.run(
        cli,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "DOCCHAT_AUTH": "password"},
    )
    assert nobody.returncode == 2 and "--user" in nobody.stderr


def test_a_shared_collection_is_visible_to_exactly_the_users_it_names(server, tmp_path):
    base, tokens = server["base"], server["tokens"]
    bob, cy, vic, dee = (Api(base, tokens[n]) for n in ("bob", "cy", "vic", "dee"))
    assert "is ready" in text_of(bob.result("create_collection", ["team-notes", "shared", "cy, vic"]))
    assert "team-notes" in cy.choices() and "team-notes" in vic.choices()
    assert "team-notes" not in dee.choices()
    # cy, a member it is shared with, may add documents; vic, a viewer, may only read.
    pdf = make_pdf(tmp_path / "team-plan.pdf", ["The team plan: ship the release on Thursday after review."])
    assert "Indexed 1 document" in text_of(cy.upload("team-notes", pdf)[1])
    assert "cannot" in text_of(vic.upload("team-notes", pdf)[1])
    # Only the owner (or an admin) changes the sharing; then vic loses it at once.
    assert "Only the owner" in text_of(cy.result("share", ["team-notes", "everyone", ""]))
    assert "Sharing saved" in text_of(bob.result("share", ["team-notes", "shared", "cy"]))
    assert "team-notes" in cy.choices() and "team-notes" not in vic.choices()
    # Names must be users: a typo is a sentence, not a silent grant to a future account.
    assert "There is no user named 'cyy'" in text_of(bob.result("share", ["team-notes", "shared", "cyy"]))


def test_conversations_are_per_user(server):
    base, tokens = server["base"], server["tokens"]
    bob, cy = Api(base, tokens["bob"]), Api(base, tokens["cy"])
    question = "Bob's private question " + secrets.token_hex(3)
    outputs = bob.ask(question, None)
    conversation = outputs[4]
    assert isinstance(conversation, (int, float))
    listing = text_of(bob.result("on_load", []))
    assert question in listing
    assert question not in text_of(cy.result("on_load", []))
    for api, data in (
        ("open_conversation", [conversation]),
        ("export", [conversation]),
        ("rename", [conversation, "stolen"]),
        ("delete", [conversation]),
    ):
        body = text_of(cy.result(api, data))
        assert "does not exist" in body and question not in body, api
    # cy cannot continue bob's conversation either (its history would reach the model).
    continued = cy.ask("What did I ask before?", None, conversation)
    assert "does not exist" in text_of(continued) and question not in text_of(continued)
    # bob's own export has the question and is Markdown.
    exported = bob.result("export", [conversation])[0]
    text = httpx.get(exported["url"], headers={"Authorization": f"Bearer {tokens['bob']}"}, timeout=30).text
    assert text.startswith("# ") and question in text


def test_disabled_users_lose_tokens_and_sessions(server):
    base, tokens = server["base"], server["tokens"]
    ada = Api(base, tokens["ada"])
    session = sign_in(base, "cy", PASSWORDS["cy"])
    cookie = session.cookies["docchat_session"]
    assert httpx.get(base + "/config", cookies={"docchat_session": cookie}, timeout=30).status_code == 200
    assert "disabled" in text_of(ada.result("users_disable", ["cy", "member", ""]))
    try:
        assert (
            httpx.get(base + "/config", headers={"Authorization": f"Bearer {tokens['cy']}"}, timeout=30).status_code
            == 401
        )
        assert httpx.get(base + "/config", cookies={"docchat_session": cookie}, timeout=30).status_code == 401
        assert sign_in(base, "cy", PASSWORDS["cy"]).status_code == 401
        # The last admin cannot be disabled or demoted from the UI.
        assert "only active admin" in text_of(ada.result("users_disable", ["ada", "admin", ""]))
    finally:
        ada.result("users_enable", ["cy", "member", ""])
    # Disabling revoked the token for good (tests/test_audit_auth.py); cy gets a new one.
    assert (
        httpx.get(base + "/config", headers={"Authorization": f"Bearer {tokens['cy']}"}, timeout=30).status_code == 401
    )
    token = ada.result("users_token", ["cy", "member", ""])[1].rsplit("`", 2)[-2]
    tokens["cy"] = token
    assert httpx.get(base + "/config", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code == 200


def test_hostile_user_names_are_sentences(server):
    base, tokens = server["base"], server["tokens"]
    ada = Api(base, tokens["ada"])
    hostile = [
        "evil\x00name",
        "tab\tname",
        "x" * 5000,
        "'; DROP TABLE users; --",
        "<script>alert(1)</script>",
        "../../etc/passwd",
        "bob\nadmin",
    ]
    for name in hostile:
        body = text_of(ada.result("users_add", [name, "admin", "a-long-password"]))
        assert "A user name is 1 to 64 characters" in body, name
        page = sign_in(base, name, "whatever-password")
        assert page.status_code in (401, 429) and "<script>alert(1)</script>" not in page.text
    users = ada.result("users_enable", ["ada", "admin", ""])[0]["data"]
    assert sorted(row[0] for row in users) == sorted(ROLES)


def test_no_sign_in_on_an_open_address_is_refused(registry_dir, tmp_path):
    run = subprocess.run(
        [
            *webapp_command(registry_dir, tmp_path),
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "1",
            "--auth",
            "none",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "Refusing to listen on 0.0.0.0 without sign-in" in run.stderr


def test_identity_header_only_from_a_trusted_proxy(registry_dir, tmp_path):
    """Header mode trusts 127.0.0.1 only; the same header from 127.0.0.2 (another address on the
    loopback network, as a pod next door would be) is refused, with or without X-Forwarded-For.
    (Google IAP's header needs its signed assertion as well: tests/test_iap.py.)"""
    data = tmp_path / "header-data"
    make_users(data)
    env = {
        "DOCCHAT_AUTH": "header",
        "DOCCHAT_TRUSTED_PROXIES": '["127.0.0.1/32"]',
        "DOCCHAT_AUTH_HEADER": "X-Forwarded-User",
    }
    with running_app(registry_dir, data, extra_env=env) as base:
        named = {"X-Forwarded-User": "ada"}
        trusted = httpx.get(base + "/config", headers=named, timeout=30)
        assert trusted.status_code == 200 and trusted.json()["username"] == "ada"
        elsewhere = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=30)
        assert elsewhere.get(base + "/config", headers=named).status_code == 401
        assert elsewhere.get(base + "/config", headers={**named, "X-Forwarded-For": "127.0.0.1"}).status_code == 401
        assert httpx.get(base + "/config", timeout=30).status_code == 401  # trusted proxy, no header
        # A first-time user named by the proxy becomes a viewer: they chat, they cannot upload.
        newcomer = {"X-Forwarded-User": "newcomer@example.com"}
        config = httpx.get(base + "/config", headers=newcomer, timeout=30)
        assert config.status_code == 200 and config.json()["username"] == "newcomer@example.com"
        banner = httpx.Client(base_url=base, headers=newcomer, timeout=60)
        api = Api.__new__(Api)
        api.base, api.http = base, banner
        assert "(viewer)" in api.result("on_load", [])[0]
        # A token still works in header mode (for the CLI and scripts behind the proxy).
        from webapp.auth.users import UserStore

        store = UserStore(data)
        token = store.issue_token("bob")
        store.close()
        assert (
            httpx.get(base + "/config", headers={"Authorization": f"Bearer {token}"}, timeout=30).json()["username"]
            == "bob"
        )


def test_conversations_survive_a_restart(registry_dir, tmp_path):
    data = tmp_path / "restart-data"
    tokens = make_users(data)
    env = {"DOCCHAT_AUTH": "password", "DOCCHAT_MAX_NEW_TOKENS": "16"}
    question = "Remember this question " + secrets.token_hex(3)
    with running_app(registry_dir, data, extra_env=env) as base:
        outputs = Api(base, tokens["bob"]).ask(question, None)
        conversation = outputs[4]
        answer = content_text(outputs[0][-1])
    with running_app(registry_dir, data, extra_env=env) as base:
        loaded = Api(base, tokens["bob"]).result("on_load", [])
        assert loaded[3] == conversation  # the newest conversation is open again
        shown = loaded[4]
        assert content_text(shown[0]) == question and content_text(shown[1]) == answer
