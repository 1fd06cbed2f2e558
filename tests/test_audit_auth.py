"""The sign-in, credential, naming, file-mode and registry items of the audit (issue 24, section 6),
each against a real `python -m webapp serve --auth password` (HTTP only) or the real CLIs.

Addresses: every client below connects from its own loopback address (127.0.0.x), as clients
behind different proxies would; the server sees them as different addresses.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from markdown_it import MarkdownIt

from tests.conftest import ROOT, running_app, webapp_command
from tests.pdfgen import make_pdf
from tests.test_auth import PASSWORDS, Api, make_users, text_of
from tests.test_publish import client, objects, registry

ENV = {"DOCCHAT_AUTH": "password", "DOCCHAT_MAX_NEW_TOKENS": "16", "DOCCHAT_SIGNIN_MAX_FAILURES": "3"}


def from_address(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=60, follow_redirects=False)


def sign_in(base: str, name: str, password: str, address: str = "127.0.0.1") -> httpx.Response:
    with from_address(address) as http:
        return http.post(base + "/auth/login", data={"username": name, "password": password, "next": "/"})


def refused_with_retry_after(r: httpx.Response) -> bool:
    return (
        r.status_code == 429
        and int(r.headers.get("retry-after", "0")) >= 1
        and "Too many failed sign-ins; try again in" in r.text
    )


@pytest.fixture(scope="module")
def server(registry_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("audit-auth-data")
    tokens = make_users(data)
    # What an older version left behind: a world-readable folder, store and rendered page.
    (data / "pages").mkdir()
    (data / "pages" / "old-render.png").write_bytes(b"\x89PNG old")
    for path, mode in ((data, 0o755), (data / "store.sqlite3", 0o644), (data / "pages" / "old-render.png", 0o644)):
        os.chmod(path, mode)
    with running_app(registry_dir, data, extra_env=ENV) as base:
        yield {"base": base, "data": data, "tokens": tokens}


# -- a. sign-in throttle -----------------------------------------------------------------------


def test_guessing_elsewhere_slows_the_guesser_not_the_owner(server):
    base = server["base"]
    # ada (an admin) and cy have signed in before from their usual addresses.
    assert sign_in(base, "ada", PASSWORDS["ada"], "127.0.0.1").status_code == 303
    assert sign_in(base, "cy", PASSWORDS["cy"], "127.0.0.3").status_code == 303
    # A guesser at 127.0.0.2 gets the free failures (3 here), then waits: 429, Retry-After, a sentence.
    guesses = [sign_in(base, "ada", f"guess-{n}", "127.0.0.2") for n in range(3)]
    assert [r.status_code for r in guesses] == [401, 401, 401]
    slowed = sign_in(base, "ada", "guess-3", "127.0.0.2")
    assert refused_with_retry_after(slowed), (slowed.status_code, slowed.headers, slowed.text[-300:])
    # ... and the right password waits there too: the guesser does not learn it by trying.
    assert sign_in(base, "ada", PASSWORDS["ada"], "127.0.0.2").status_code == 429
    # The admin at her usual address is not locked out by those failures.
    assert sign_in(base, "ada", PASSWORDS["ada"], "127.0.0.1").status_code == 303
    # Someone behind cy's proxy guesses many names: the address is slowed (4 x 3 free failures) ...
    statuses = [sign_in(base, f"nobody-{n}", "guess", "127.0.0.3").status_code for n in range(16)]
    assert statuses[:12] == [401] * 12 and 429 in statuses[12:], statuses
    # ... but cy, who signed in from there before, is not.
    assert sign_in(base, "cy", PASSWORDS["cy"], "127.0.0.3").status_code == 303
    log = (server["data"] / "server.log").read_text()
    assert "sign-in failed for user 'ada'" in log and "guess-1" not in log and PASSWORDS["ada"] not in log


def test_concurrent_guesses_reserve_their_slot_before_the_hash_is_checked(server):
    base = server["base"]
    results: list[int] = []
    start = threading.Barrier(10)

    def guess(n: int) -> None:
        with from_address("127.0.0.4") as http:
            start.wait()
            r = http.post(base + "/auth/login", data={"username": "dee", "password": f"concurrent-{n}"})
            results.append(r.status_code)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    checked = results.count(401)
    # 3 free failures, then 2 s before the next: only a guess arriving that much later gets checked.
    assert len(results) == 10 and checked <= 4 and results.count(429) >= 6, sorted(results)


def test_failure_counts_survive_a_restart(registry_dir, tmp_path):
    data = tmp_path / "restart-data"
    make_users(data)
    with running_app(registry_dir, data, extra_env=ENV) as base:
        assert [sign_in(base, "bob", f"guess-{n}", "127.0.0.5").status_code for n in range(3)] == [401] * 3
    with running_app(registry_dir, data, extra_env=ENV) as base:
        # The restart took longer than the 2 s the 4th guess had to wait; the 5th must wait 4 s:
        # a fresh count would check both.
        first = sign_in(base, "bob", "guess-3", "127.0.0.5")
        second = sign_in(base, "bob", "guess-4", "127.0.0.5")
        assert first.status_code == 401 and refused_with_retry_after(second), (first.status_code, second.status_code)


# -- b. revoking sessions and tokens -------------------------------------------------------------


def status_with(base: str, token: str | None = None, cookie: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    cookies = {"docchat_session": cookie} if cookie else None
    return httpx.get(base + "/config", headers=headers, cookies=cookies, timeout=30).status_code


def users_cli(server, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [*webapp_command(Path("/nonexistent"), server["data"]), "users", *args],
        input=stdin,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_new_password_ends_every_session_and_token(server):
    base, tokens = server["base"], server["tokens"]
    ada = Api(base, tokens["ada"])
    cookie = sign_in(base, "bob", PASSWORDS["bob"]).cookies["docchat_session"]
    assert status_with(base, cookie=cookie) == 200 and status_with(base, tokens["bob"]) == 200
    # From the Users tab ...
    changed = text_of(ada.result("users_set_password", ["bob", "member", "bob-second-password"]))
    assert "revoked" in changed
    assert status_with(base, cookie=cookie) == 401 and status_with(base, tokens["bob"]) == 401
    assert sign_in(base, "bob", PASSWORDS["bob"]).status_code == 401
    cookie = sign_in(base, "bob", "bob-second-password").cookies["docchat_session"]
    assert status_with(base, cookie=cookie) == 200
    # ... and from the CLI, while the server runs: the same path.
    run = users_cli(server, "passwd", "bob", stdin="bob-third-password\n")
    assert run.returncode == 0 and "revoked" in run.stdout, run.stderr
    assert status_with(base, cookie=cookie) == 401
    assert sign_in(base, "bob", "bob-third-password").status_code == 303


def test_disabling_revokes_tokens_for_good(server):
    base, tokens = server["base"], server["tokens"]
    ada = Api(base, tokens["ada"])
    assert status_with(base, tokens["vic"]) == 200
    ada.result("users_disable", ["vic", "viewer", ""])
    ada.result("users_enable", ["vic", "viewer", ""])
    assert status_with(base, tokens["vic"]) == 401  # enabling again does not bring a leaked token back


def test_tokens_are_revoked_from_the_cli_one_or_all(server):
    base = server["base"]
    first = users_cli(server, "token", "cy").stdout.strip()
    second = users_cli(server, "token", "cy").stdout.strip()
    assert status_with(base, first) == 200 and status_with(base, second) == 200
    listing = users_cli(server, "token", "cy", "--list").stdout.split("\n")
    ids = [line.split()[0] for line in listing if line.strip()]
    assert len(ids) >= 2
    one = users_cli(server, "token", "cy", "--revoke", ids[-2])
    assert one.returncode == 0 and "revoked 1 API token(s) of cy" in one.stdout
    assert status_with(base, first) == 401 and status_with(base, second) == 200
    bad = users_cli(server, "token", "cy", "--revoke", "first")
    assert bad.returncode == 2 and "--revoke takes a token id" in bad.stderr
    every = users_cli(server, "token", "cy", "--revoke")
    assert every.returncode == 0 and "revoked" in every.stdout
    assert status_with(base, second) == 401
    # An admin revokes them from the Users tab too.
    third = users_cli(server, "token", "cy").stdout.strip()
    assert "Revoked 1 API token" in text_of(
        Api(base, server["tokens"]["ada"]).result("users_revoke_tokens", ["cy", "member", ""])
    )
    assert status_with(base, third) == 401


# -- c. names in messages, and names of collections one cannot see -------------------------------

RENDER = MarkdownIt("commonmark").enable(["strikethrough", "table"])


def test_names_in_messages_are_shown_as_text_not_markdown(server, tmp_path):
    base, tokens = server["base"], server["tokens"]
    owner, other = Api(base, tokens["ada"]), Api(base, tokens["dee"])
    name = "[Sign in again](https://evil.example/login) **now**"
    assert "is ready" in text_of(owner.result("create_collection", [name, "everyone", ""]))
    pdf = make_pdf(tmp_path / "p.pdf", ["A page someone tries to add."])
    refusals = [
        other.upload(name, pdf)[1][-1][1],  # a member may read it, not add to it
        other.result("share", [name, "private", ""]),  # only its owner changes who sees it
    ]
    for outputs in refusals:
        message = next(o for o in outputs if isinstance(o, str) and "Sign in again" in o)
        html = RENDER.render(message)
        assert "<a" not in html and "<strong>" not in html, html
        assert "[Sign in again](https://evil.example/login) **now**" in html, html


def test_a_name_taken_by_a_hidden_collection_is_not_confirmed(server, registry_dir):
    base = server["base"]
    # (earlier tests revoked their first tokens)
    bob, cy = (Api(base, users_cli(server, "token", name).stdout.strip()) for name in ("bob", "cy"))
    hidden = "layoffs-" + secrets.token_hex(3)
    assert "is ready" in text_of(bob.result("create_collection", [hidden, "private", ""]))

    def refusal(name: str) -> str:
        return cy.result("create_collection", [name, "private", ""])[3]

    taken, invalid, too_long = refusal(hidden), refusal("bad\x01name"), refusal("x" * 65)
    assert taken == invalid == too_long and "exist" not in taken, (taken, invalid)
    # A collection the user can see is still said to exist.
    own = "cy-notes-" + secrets.token_hex(3)
    cy.result("create_collection", [own, "private", ""])
    assert "already exists" in refusal(own)
    # The CLI, which creates a collection it is told to index into, answers the same.
    pdf = make_pdf(server["data"].parent / f"{hidden}.pdf", ["A page."])
    run = subprocess.run(
        [*webapp_command(registry_dir, server["data"]), "index", str(pdf), "--collection", hidden, "--user", "cy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DOCCHAT_AUTH": "password"},
    )
    sentence = RENDER.renderInline(taken.removeprefix("⚠ "))
    assert run.returncode == 2 and sentence in run.stderr and "no collection" not in run.stderr, run.stderr


# -- d. file modes -------------------------------------------------------------------------------


def test_the_data_folder_is_readable_by_its_owner_only(server, tmp_path):
    base, tokens, data = server["base"], server["tokens"], server["data"]
    ada = Api(base, tokens["ada"])
    pdf = make_pdf(tmp_path / "modes.pdf", ["File modes: the bonus pool page is private."])
    assert "Indexed 1 document" in text_of(ada.upload("default", pdf)[1])
    doc_id = next(row[0] for row in ada.result("show_collection", ["default"])[0]["data"] if row[1] == "modes.pdf")
    page = ada.http.get(f"/documents/{doc_id}/pages/1.png?highlight=bonus+pool")
    assert page.status_code == 200 and page.headers["content-type"] == "image/png"
    ada.ask("What is private?", "default")  # a conversation in the store
    found = {p.relative_to(data).as_posix(): stat.S_IMODE(p.lstat().st_mode) for p in [data, *data.rglob("*")]}
    assert any(name.startswith("pages/") and name.endswith(".png") and "old" not in name for name in found)
    assert any(name.startswith("files/") for name in found) and "store.sqlite3" in found
    exposed = {name: oct(mode) for name, mode in found.items() if mode & 0o077}
    assert not exposed, exposed
    assert found["."] == 0o700 and found["store.sqlite3"] == 0o600 and found["pages/old-render.png"] == 0o600


# -- e. model manifests --------------------------------------------------------------------------


def escaping_registry(root: Path, how: str) -> tuple[Path, bytes]:
    """A registry whose chat-a manifest also lists a file outside the model folder, hashed right."""
    from webapp.registry import sha256_file, write_manifest

    secret = root / "outside-secret.txt"
    root.mkdir(parents=True)
    secret.write_bytes(b"not part of any model " + secrets.token_hex(8).encode())
    models = registry(root / "models")
    folder = models / "chat-a"
    manifest = json.loads((folder / "manifest.json").read_text())
    if how == "dotdot":
        rel = "../../outside-secret.txt"
    elif how == "absolute":
        rel = str(secret)
    else:
        (folder / "extra.bin").symlink_to(secret)
        rel = "extra.bin"
    manifest["files"][rel] = sha256_file(secret)
    write_manifest(folder, manifest)
    return models, secret.read_bytes()


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_a_manifest_cannot_name_files_outside_its_model(how, tmp_path, gcs):
    models, secret = escaping_registry(tmp_path / how, how)
    quantize = [sys.executable, "-m", "quantize", "--models-dir", str(models)]
    verify = subprocess.run([*quantize, "verify"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert "outside its folder" in verify.stdout and "the model is not used" in verify.stdout, verify.stdout
    bucket = f"escape-{how}"
    c = client(gcs)
    c.create_bucket(bucket)
    env = {**os.environ, "STORAGE_EMULATOR_HOST": gcs, "GOOGLE_CLOUD_PROJECT": "test"}
    publish = subprocess.run(
        [*quantize, "publish", f"gs://{bucket}/registry"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert publish.returncode != 0 and "outside its folder" in publish.stdout + publish.stderr
    assert objects(c, bucket) == {} and secret not in b"".join(objects(c, bucket).values())
