"""The user store and `python -m webapp users`: argon2 hashes, tokens stored as hashes, hostile names."""

import sqlite3
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from webapp.auth.users import UserStore
from webapp.errors import UserError


@pytest.fixture
def users(tmp_path):
    store = UserStore(tmp_path)
    yield store
    store.close()


def test_add_verify_and_wrong_password(users):
    users.add("alice", "admin", "correct horse battery")
    assert users.verify_password("alice", "correct horse battery").role == "admin"
    assert users.verify_password("ALICE", "correct horse battery") is not None  # names are case-insensitive
    assert users.verify_password("alice", "wrong password!") is None
    assert users.verify_password("nobody", "correct horse battery") is None
    assert users.get("alice").last_login_at is not None
    with pytest.raises(UserError, match="already a user named"):
        users.add("Alice", "viewer", "another password")


def test_disabled_and_removed_users_cannot_sign_in_or_use_tokens(users):
    users.add("bob", "member", "bob's long password")
    token = users.issue_token("bob")
    assert token.startswith("dct_") and users.user_for_token(token).name == "bob"
    users.set_disabled("bob")
    assert users.verify_password("bob", "bob's long password") is None
    assert users.user_for_token(token) is None  # a disabled user's token is refused
    users.set_disabled("bob", False)
    assert users.user_for_token(token) is None  # revoked, not only refused: enabling does not revive it
    token = users.issue_token("bob")
    users.remove("bob")
    assert users.user_for_token(token) is None
    assert users.user_for_token("dct_" + "x" * 43) is None and users.user_for_token("not-a-token") is None


def test_only_hashes_are_stored(users, tmp_path):
    users.add("carol", "viewer", "plain text secret 123")
    token = users.issue_token("carol")
    users.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("store.sqlite3*"))
    assert b"plain text secret 123" not in raw and token.encode() not in raw
    conn = sqlite3.connect(tmp_path / "store.sqlite3")
    digest = conn.execute("SELECT password_hash FROM users").fetchone()[0]
    conn.close()
    assert digest.startswith("$argon2id$")


@pytest.mark.parametrize(
    "name",
    ["", "a" * 65, "x\x00y", "tab\tname", "<img src=x>", "'; DROP TABLE users; --", "../../etc", ".hidden", "a b"],
)
def test_hostile_names_are_refused_with_a_sentence(users, name):
    with pytest.raises(UserError, match="A user name is 1 to 64 characters"):
        users.add(name, "member", "a good password")


def test_roles_and_password_rules(users):
    with pytest.raises(UserError, match="role must be one of"):
        users.add("dave", "root", "a good password")
    with pytest.raises(UserError, match="at least 8"):
        users.add("dave", "member", "short")
    users.add("dave", "member", "a good password")
    users.set_password("dave", "a better password")
    assert users.verify_password("dave", "a good password") is None
    assert users.verify_password("dave", "a better password") is not None


def test_cli_reads_passwords_from_stdin_never_argv(tmp_path):
    cli = [sys.executable, "-m", "webapp", "--data-dir", str(tmp_path), "users"]
    run = lambda *a, stdin="": subprocess.run(  # noqa: E731
        cli + list(a),
        input=stdin,
        cwd=ROOT,
        capture_output=True,  # noqa: E731
        text=True,
        timeout=60,
    )
    out = run("add", "erin", "--role", "admin", stdin="erin's password\n")
    assert out.returncode == 0 and "added erin (admin)" in out.stdout
    assert run("add", "erin", "--password", "x").returncode == 2  # there is no such option
    assert run("add", "fred", stdin="fred's password\n").returncode == 0
    token = run("token", "fred")
    assert token.returncode == 0 and token.stdout.strip().startswith("dct_") and "shown this once" in token.stderr
    listing = run("list").stdout
    assert "erin" in listing and "admin" in listing and "tokens 1" in listing
    # The CLI goes through the same service as the Users tab: the only admin stays.
    for action in (("disable", "erin"), ("remove", "erin"), ("role", "erin", "--role", "member")):
        refused = run(*action)
        assert refused.returncode == 2 and "erin is the only active admin" in refused.stderr, action
    assert "disabled" in run("disable", "fred").stdout
    missing = run("remove", "nobody")
    assert missing.returncode == 2 and "There is no user named 'nobody'." in missing.stderr
    assert UserStore(tmp_path).user_for_token(token.stdout.strip()) is None  # disabled


def test_users_and_documents_share_one_database(settings_factory, tmp_path):
    from tests.pdfgen import topic_pdf
    from webapp.documents.service import DocumentService

    data = tmp_path / "data"
    UserStore(data).add("frank", "admin", "frank's password")
    docs = DocumentService(settings_factory(data_dir=data))
    pdf = topic_pdf(tmp_path / "bees.pdf", "bees", pages=1)
    docs.add_files("c", [(pdf, pdf.name)])
    assert len(docs.index_queued("c").indexed) == 1
    docs.close()
    assert [u.name for u in UserStore(data).list()] == ["frank"]
    assert sorted(p.name for p in data.glob("*.sqlite3")) == ["store.sqlite3"]
