"""The one seam between the two engines the account and conversation stores run on.

Users, sessions, API tokens, sign-in throttle counts and conversations are written once, in SQL
both engines read: the data folder's SQLite (``store.sqlite3``, the default) or a shared PostgreSQL
(``DOCCHAT_DATABASE_URL``) so several app replicas see the same state (issue 28). What differs is
small and lives here: placeholders (``?`` vs ``%s``), how a transaction serialises writers
(SQLite's BEGIN IMMEDIATE locks the whole file; Postgres takes an advisory lock only where a
read-modify-write needs it), the list of tables, case-insensitive names (SQLite's NOCASE
collation; the Postgres wheel used for tests has neither ICU nor citext, so ``lower()`` and an
index on it), and which error a duplicate raises. Both read rows by column name and get new ids
from ``INSERT ... RETURNING id`` (SQLite >= 3.35).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from webapp import pg_db, sqlite_db
from webapp.errors import UserError
from webapp.settings import Settings


def state_location(settings: Settings) -> Path | str:
    """Where users, sessions, tokens, throttle counts and conversations live: the shared database
    when ``database_url`` names a PostgreSQL, else the data folder."""
    url = settings.database_url
    if not url:
        return settings.data_dir
    if not pg_db.is_postgres_url(url):
        raise UserError("DOCCHAT_DATABASE_URL must start with postgresql:// (unset, the data folder is used).")
    return url


@pg_db.one_sentence
class Database:
    """A data folder (its ``store.sqlite3``) or a ``postgresql://`` URL, one connection per thread."""

    def __init__(self, location: Path | str):
        self.location = location
        self.postgres = pg_db.is_postgres_url(str(location))
        self._connections: pg_db.ThreadConnections | sqlite_db.ThreadConnections
        if self.postgres:
            self._connections = pg_db.ThreadConnections(str(location))
        else:
            folder = Path(location)
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._connections = sqlite_db.ThreadConnections(folder / "store.sqlite3")

    @classmethod
    def at(cls, location: Database | Path | str) -> Database:
        """``location`` itself when it is an open Database: the stores of one process share it, and so
        its connections (one per thread, not one per thread and store: a Postgres server admits a
        limited number), else a new one."""
        return location if isinstance(location, Database) else cls(location)

    def __repr__(self) -> str:  # never the URL: it may carry a password
        return f"Database({'postgresql' if self.postgres else self.location})"

    def connection(self) -> Any:
        return self._connections.get()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement written with ``?`` placeholders; rows are read by column name."""
        if self.postgres:
            sql = sql.replace("%", "%%").replace("?", "%s")
        return self.connection().execute(sql, params)

    def insert(self, sql: str, params: Sequence[Any]) -> int:
        """Run an INSERT into a table with an ``id`` key; returns the new row's id. fetchall, not
        fetchone: SQLite ends the statement (and its write lock) only once every row is read."""
        return int(self.execute(sql + " RETURNING id", params).fetchall()[0]["id"])

    @contextmanager
    def transaction(self, serialized: str | None = None) -> Iterator[Database]:
        """BEGIN ... COMMIT, ROLLBACK on error. ``serialized`` names a read-modify-write that must
        not interleave with itself anywhere (SQLite's BEGIN IMMEDIATE already serialises every
        writer of the file; on Postgres one advisory lock per name does, across replicas)."""
        conn = self.connection()
        if not self.postgres:
            with sqlite_db.transaction(conn):
                yield self
            return
        with pg_db.transaction(conn):
            if serialized:
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (serialized,))
            yield self

    def migrate(self, component: str, steps: Sequence[Sequence[str]]) -> int:
        migrate = pg_db.migrate if self.postgres else sqlite_db.migrate
        return migrate(self.connection(), component, steps)

    def tables(self) -> set[str]:
        if self.postgres:
            sql = "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()"
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
        return {r["name"] for r in self.execute(sql)}

    def same_name(self, column: str) -> str:
        """A condition with one placeholder: ``column`` equals it, ignoring ASCII case."""
        return f"lower({column}) = lower(?)" if self.postgres else f"{column} = ? COLLATE NOCASE"

    @property
    def integrity_error(self) -> type[Exception]:
        """What a broken UNIQUE or foreign key raises on this engine."""
        if self.postgres:
            import psycopg

            return psycopg.IntegrityError
        return sqlite3.IntegrityError

    def close(self) -> None:
        """Close this thread's connection."""
        self._connections.close()
