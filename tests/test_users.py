"""The user store and `python -m webapp users`: argon2 hashes, tokens stored as hashes, hostile names.
Store tests run on both engines (``store_location``: the data folder's SQLite and a real PostgreSQL),
and two stores on one database stand for two app replicas."""

import sqlite3
import subprocess
import sys

import pytest

from tests.conftest import ROOT, replicas_of
from webapp.auth.access import Actor
from webapp.auth.users import UserStore
from webapp.database import Database
from webapp.errors import UserError


@pytest.fixture
def users(store_location):
    store = UserStore(store_location)
    yield store
    store.close()


@pytest.fixture
def replicas(store_location):
    """Two stores on one database, as two app processes would have them."""
    yield from replicas_of(UserStore, store_location)


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


def test_only_hashes_are_stored(users, store_location):
    users.add("carol", "viewer", "plain text secret 123")
    token = users.issue_token("carol")
    session = users.start_session(users.get("carol"), 3600)
    users.close()
    db = Database(store_location)
    stored = repr([db.execute(f"SELECT * FROM {table}").fetchall() for table in ("users", "api_tokens", "sessions")])
    assert db.execute("SELECT password_hash FROM users").fetchone()["password_hash"].startswith("$argon2id$")
    db.close()
    for secret in ("plain text secret 123", token, session):
        assert secret not in stored
    if db.postgres:
        return
    raw = b"".join(p.read_bytes() for p in store_location.glob("store.sqlite3*"))  # the WAL too
    assert b"plain text secret 123" not in raw and token.encode() not in raw
    conn = sqlite3.connect(store_location / "store.sqlite3")
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


def test_a_new_password_ends_every_session_and_token(users):
    users.add("gil", "member", "gil's first password")
    sessions = [users.start_session(users.get("gil"), 3600) for _ in range(2)]
    token = users.issue_token("gil")
    assert users.set_password("gil", "gil's second password") == 3
    assert all(users.user_for_session(s) is None for s in sessions) and users.user_for_token(token) is None
    assert users.get("gil").tokens == 0


def test_sessions_expire_end_and_die_with_the_account(users):
    users.add("hal", "member", "hal's long password")
    hal = users.get("hal")
    expired = users.start_session(hal, -1)
    assert users.user_for_session(expired) is None
    session = users.start_session(hal, 3600)
    assert users.user_for_session(session).name == "hal"
    assert users.user_for_session("dcs_" + "x" * 43) is None and users.user_for_session(session[4:]) is None
    users.end_session(session)
    assert users.user_for_session(session) is None
    session = users.start_session(hal, 3600)
    users.set_disabled("hal")
    assert users.user_for_session(session) is None
    users.set_disabled("hal", False)
    assert users.user_for_session(session) is None  # revoked, not only refused
    session = users.start_session(hal, 3600)
    users.remove("hal")
    assert users.user_for_session(session) is None


def test_tokens_are_listed_revoked_one_by_one_or_all(users):
    users.add("ida", "member", "ida's long password")
    first, second, third = (users.issue_token("ida") for _ in range(3))
    listed = users.tokens("ida")
    assert len(listed) == 3 and listed[0].id < listed[1].id < listed[2].id
    assert users.user_for_token(first).name == "ida"
    assert users.tokens("ida")[0].last_used_at is not None  # recorded on use
    assert users.revoke_tokens("ida", listed[1].id) == 1
    assert users.user_for_token(second) is None and users.user_for_token(third).name == "ida"
    with pytest.raises(UserError, match=f"ida has no API token {listed[1].id}"):
        users.revoke_tokens("ida", listed[1].id)
    assert users.revoke_tokens("ida") == 2 and users.tokens("ida") == []
    assert users.user_for_token(first) is None


def test_listing_counting_admins_and_header_users(users):
    users.add("zed", "admin", "zed's long password")
    users.add("Amy", "viewer", "amy's long password")
    assert users.add_external("bo", "member").name == "bo"
    assert users.add_external("BO", "admin").role == "member"  # already there: unchanged
    assert [u.name for u in users.list()] == ["Amy", "bo", "zed"]
    assert users.count_admins() == 1
    assert users.set_role("amy", "admin").role == "admin" and users.count_admins() == 2
    users.touch_login(users.get("bo"))
    assert users.get("Bo").last_login_at is not None


def test_replicas_share_sign_ins_sessions_and_tokens(replicas):
    one, two = replicas
    one.add("jo", "member", "jo's long password")
    assert two.verify_password("JO", "jo's long password").name == "jo"  # added on one, known on two
    session = one.start_session(one.get("jo"), 3600)
    assert two.user_for_session(session).name == "jo"  # signed in on one, signed in on two
    two.end_session(session)  # signed out on two ...
    assert one.user_for_session(session) is None  # ... signed out on one
    token = two.issue_token("jo")
    assert one.user_for_token(token).name == "jo"
    one.revoke_tokens("jo")
    assert two.user_for_token(token) is None
    session = two.start_session(two.get("jo"), 3600)
    one.set_password("jo", "jo's new password")
    assert two.user_for_session(session) is None
    assert two.verify_password("jo", "jo's new password") is not None


def test_removing_a_user_removes_their_conversations_and_familiar_addresses(store_location):
    from webapp.auth.throttle import SigninThrottle
    from webapp.chat.conversations import ConversationStore

    users, conversations = UserStore(store_location), ConversationStore(store_location)
    throttle = SigninThrottle(store_location)
    users.add("Kim", "member", "kim's long password")
    conversations.create(Actor("Kim", "member"), "Where?", None)
    throttle.succeeded(throttle.begin("kim", "10.0.0.3"))
    users.remove("KIM")
    users.add("kim", "member", "another long password")  # a later user of the same name inherits nothing
    assert conversations.list(Actor("kim", "member")) == []
    assert not throttle.begin("kim", "10.0.0.3").familiar
    for store in (users, conversations, throttle):
        store.close()


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


def test_cli_manages_users_in_the_shared_database(tmp_path, pg_url):
    import os

    env = {**os.environ, "DOCCHAT_DATABASE_URL": pg_url}
    cli = [sys.executable, "-m", "webapp", "--data-dir", str(tmp_path / "unused"), "users"]

    def run(*args, stdin=""):
        return subprocess.run(
            cli + list(args), input=stdin, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )

    assert run("add", "lee", "--role", "admin", stdin="lee's password\n").returncode == 0
    token = run("token", "lee").stdout.strip()
    assert "lee" in run("list").stdout and pg_url not in run("list").stderr
    store = UserStore(pg_url)
    assert store.user_for_token(token).name == "lee" and store.verify_password("lee", "lee's password") is not None
    store.close()
    assert not (tmp_path / "unused" / "store.sqlite3").exists()


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


def test_the_stores_of_one_process_share_one_connection_per_thread(pg_url):
    """A Postgres server admits a limited number of connections: users, conversations and the
    throttle of one app process use one per thread between them, not one each."""
    from webapp.auth.throttle import SigninThrottle
    from webapp.chat.conversations import ConversationStore

    users = UserStore(pg_url)
    conversations, throttle = ConversationStore(users.database), SigninThrottle(users.database)
    users.add("max", "member", "max's long password")
    conversations.list(Actor("max", "member"))
    throttle.begin("max", "10.0.0.4")
    sql = "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE datname = current_database()"
    assert users.database.execute(sql).fetchone()["n"] == 1
    users.close()
