"""How every part of the app opens a shared PostgreSQL database (``DOCCHAT_DATABASE_URL``).

The counterpart of sqlite_db.py for running several app replicas on one database (issue 28):
one connection per thread, autocommit with explicit transactions, schema versions per component
in ``schema_versions`` (the same table and rule as SQLite's), migrations serialised across
replicas by an advisory lock so two pods starting together take turns. psycopg is imported
lazily: the embedded default never needs it.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from webapp.errors import UserError
from webapp.sqlite_db import pending_steps

log = logging.getLogger(__name__)

UNREACHABLE = "The database could not be reached just now; try again in a moment."

# Any fixed number: pg_advisory_xact_lock(MIGRATION_LOCK) serialises migrations of all components.
MIGRATION_LOCK = 0x0D0C_C4A7


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("postgresql://", "postgres://"))


def connect(url: str) -> Any:
    """An autocommit connection (callers open their own transactions) with dict rows."""
    import psycopg
    from psycopg.rows import dict_row

    try:
        return psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=10)
    except psycopg.OperationalError as exc:
        # libpq's message never carries the password; the place is said from libpq's own parse of
        # the URL (a user name with an "@", as Cloud SQL's IAM users have, defeats splitting by hand).
        raise UserError(
            f"The database at {where(url)} could not be reached: {str(exc).strip().splitlines()[0]}"
        ) from exc


def where(url: str) -> str:
    """host:port/dbname of a database URL, never its user or password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(url)
    except Exception:  # not a URL libpq reads: say nothing of it
        return "the configured address"
    host = str(parts.get("host") or "localhost")
    if host.startswith("/"):
        host = f"the socket in {host}"
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"{host}{port}/{parts.get('dbname') or ''}".rstrip("/")


@contextmanager
def transaction(conn: Any) -> Iterator[Any]:
    """BEGIN ... COMMIT; ROLLBACK on any error (psycopg's transaction() does exactly this)."""
    with conn.transaction():
        yield conn


def migrate(conn: Any, component: str, steps: Sequence[Sequence[str]]) -> int:
    """Bring ``component``'s tables to version ``len(steps)``; return the version found before.

    Same contract as sqlite_db.migrate: step n is the statements that turn version n-1 into n; all
    pending steps and the new version commit together; a database written by a newer app is
    refused. Replicas starting at once wait on one advisory lock, so each step runs once.
    """
    with transaction(conn):
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_versions ("
            "component TEXT PRIMARY KEY, version INTEGER NOT NULL, migrated_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        row = conn.execute("SELECT version FROM schema_versions WHERE component = %s", (component,)).fetchone()
        found = int(row["version"]) if row else 0
        for statements in pending_steps(component, found, steps, "database"):
            for statement in statements:
                conn.execute(statement)
        if found < len(steps):
            conn.execute(
                "INSERT INTO schema_versions(component, version) VALUES (%s, %s) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version, migrated_at = now()",
                (component, len(steps)),
            )
    return found


class ThreadConnections:
    """One connection per thread (a psycopg connection serialises its users; threads would queue)."""

    def __init__(self, url: str):
        self.url = url
        self._local = threading.local()

    def get(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = connect(self.url)
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def one_sentence(cls: type) -> type:
    """Class decorator: a connection that breaks under a public method (the server restarted, a
    failover, the network) becomes UNREACHABLE, a UserError, instead of a driver traceback; the
    detail goes to the log. The broken connection is replaced at its thread's next call
    (ThreadConnections.get), so the next request works once the server is back."""

    def wrap(fn):
        @functools.wraps(fn)
        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if not connection_lost(exc):
                    raise
                log.warning("%s.%s: database connection failed: %s", cls.__name__, fn.__name__, exc)
                raise UserError(UNREACHABLE) from exc

        return call

    for name in dir(cls):  # its own methods and those it inherits (store_common.StoreQueries)
        value = inspect.getattr_static(cls, name)
        if not name.startswith("_") and inspect.isfunction(value):
            setattr(cls, name, wrap(value))
    return cls


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is psycopg's word for a lost or refused connection (psycopg is imported
    only when the exception came from it: the embedded default never loads it)."""
    if not type(exc).__module__.startswith("psycopg"):
        return False
    import psycopg

    return isinstance(exc, psycopg.OperationalError)
