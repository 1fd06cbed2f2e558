"""How every part of the app opens the data folder's SQLite database (documents, users)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from webapp.errors import UserError


def connect(path: Path) -> sqlite3.Connection:
    """Autocommit (callers open their own transactions), WAL so readers never block the writer,
    FULL sync so a committed transaction survives power loss, foreign keys enforced.

    The file is made owner-only (0600) before SQLite first writes to it: SQLite gives its -wal and
    -shm files the database file's permissions, so they are private too, whatever the umask."""
    path = Path(path)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)  # a store written before this rule (or by hand)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.row_factory = sqlite3.Row
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT on an autocommit connection; ROLLBACK on any error (or interrupt)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def pending_steps(component: str, found: int, steps: Sequence[Sequence[str]], place: str) -> Sequence[Sequence[str]]:
    """The migration steps still to run after version ``found`` (SQLite and Postgres alike); a
    database written by a newer app is refused, not guessed at."""
    if found > len(steps):
        raise UserError(
            f"The {component} tables of this {place} have format {found}; this version of the app "
            f"reads formats up to {len(steps)}. Use a newer version of the app."
        )
    return steps[found:]


def migrate(conn: sqlite3.Connection, component: str, steps: Sequence[Sequence[str]]) -> int:
    """Bring ``component``'s tables to version ``len(steps)``; return the version found before.

    Step n (1-based) is the list of statements that turns version n-1 into n. Versions are kept
    per component in ``schema_versions`` (the documents keep theirs in ``meta``). All pending
    steps and the new version commit in one transaction, so a crash mid-way leaves the old
    version, untouched, and the next start migrates again; two processes opening the folder at
    once take turns (BEGIN IMMEDIATE). A folder written by a newer app is refused, not guessed at.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_versions ("
        "component TEXT PRIMARY KEY, version INTEGER NOT NULL, migrated_at TEXT NOT NULL)"
    )
    with transaction(conn):
        row = conn.execute("SELECT version FROM schema_versions WHERE component = ?", (component,)).fetchone()
        found = int(row[0]) if row else 0
        for statements in pending_steps(component, found, steps, "data folder"):
            for statement in statements:
                conn.execute(statement)
        if found < len(steps):
            conn.execute(
                "INSERT OR REPLACE INTO schema_versions(component, version, migrated_at) VALUES (?, ?, ?)",
                (component, len(steps), datetime.now(UTC).isoformat(timespec="seconds")),
            )
    return found


class ThreadConnections:
    """One connection per thread (sqlite3 connections must not be shared between threads)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path)
        return conn

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
