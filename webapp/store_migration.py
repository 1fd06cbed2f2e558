"""``python -m webapp migrate --to postgresql://...``: one pod's data folder into a shared database.

What a team runs once when it moves from one app pod to several (docs/capacity.md): every row
of the embedded store (collections, their members and synced sources, documents, pages, chunks
with their vectors, stored summaries) and of the account and conversation tables (users,
sessions, API tokens, sign-in throttle counts, conversations, messages) is copied into an
empty PostgreSQL database, keeping every id (a stored citation names its document by id), in
one transaction: a failure keeps no row (the empty tables the stores made stay, so a second run
finds the database empty and can start again). Originals and OCR word boxes go to
``--files-url`` (DOCCHAT_FILES_URL) when it is set. Then every table's rows are counted on both
sides, and the vectors of a sample of chunks compared, before the command says it is done.

The target's tables are made by the stores themselves (their versioned migrations), so the copy
writes into exactly the schema the app will use. Columns are matched by name: a column the
target has and the source lacks keeps its default. The source is read inside one SQLite read
transaction (a consistent snapshot, even with the app running); stop the app first anyway, or
what it writes after the snapshot stays behind. The reverse direction is not offered.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from webapp import pg_db
from webapp.errors import UserError

log = logging.getLogger(__name__)

# Parents before children (foreign keys), each with the column its identity sequence follows.
DOCUMENT_TABLES = [
    ("collections", "id"),
    ("collection_members", None),
    ("collection_sources", None),
    ("documents", "id"),
    ("pages", None),
    ("chunks", "id"),
    ("summaries", None),
]
STATE_TABLES = [
    ("users", "id"),
    ("api_tokens", "id"),
    ("sessions", None),
    ("signin_failures", None),
    ("signin_known", None),
    ("conversations", "id"),
    ("messages", "id"),
]
INTERRUPTED = "Indexing was interrupted before it finished; re-index to try again."
VECTOR_SAMPLE = 200  # chunks whose vectors are compared after the copy
BATCH = 2_000

Progress = Callable[[str], None]


@dataclass
class MigrationReport:
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows copied (and counted on both sides)
    files: int = 0
    vectors_checked: int = 0

    def summary(self) -> str:
        tables = ", ".join(f"{n} {t}" for t, n in self.rows.items() if n)
        return (
            f"Copied and verified: {tables or 'no rows'}; {self.files} file(s) shared; "
            f"{self.vectors_checked} vector(s) compared exactly."
        )


def _source(data_dir: Path) -> sqlite3.Connection:
    path = Path(data_dir) / "store.sqlite3"
    if not path.is_file():
        raise UserError(f"There is no store in {data_dir} to migrate (no store.sqlite3).")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn


def _meta(src: sqlite3.Connection) -> tuple[str, int] | None:
    try:
        meta = dict(src.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError:
        return None
    if "embedding_model" not in meta:
        return None
    return meta["embedding_model"], int(meta["embedding_dimension"])


def _columns_sqlite(src: sqlite3.Connection, table: str) -> list[str]:
    return [r["name"] for r in src.execute(f"PRAGMA table_info({table})")]


def _columns_pg(db: Any, table: str) -> list[str]:
    rows = db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = %s AND is_generated = 'NEVER'",
        (table,),
    )
    return [r["column_name"] for r in rows]


def _make_target_tables(url: str, data_dir: Path, model: str | None, dimension: int | None) -> None:
    """Each store creates its own tables at its current schema version, as the app would."""
    from webapp.auth.throttle import SigninThrottle
    from webapp.auth.users import UserStore
    from webapp.chat.conversations import ConversationStore

    users = UserStore(url)
    SigninThrottle(users.database)  # its tables are its own component on PostgreSQL
    users.close()
    ConversationStore(url).close()
    if model is not None and dimension is not None:
        from webapp.rag.pg_store import PgDocumentStore

        PgDocumentStore(url, Path(data_dir) / "files", model, dimension).close()


def migrate_to_postgres(
    data_dir: Path, url: str, files_url: str | None = None, progress: Progress | None = None
) -> MigrationReport:
    """Copy the data folder's store into the empty database at ``url``; see the module's doc."""
    say = progress or (lambda line: None)
    if not pg_db.is_postgres_url(url):
        raise UserError("--to must be a postgresql:// URL.")
    src = _source(data_dir)
    try:
        src.execute("BEGIN")  # one snapshot for every read below
        found = _meta(src)
        model, dimension = found if found else (None, None)
        _make_target_tables(url, data_dir, model, dimension)
        db = pg_db.connect(url)
        try:
            _refuse_if_not_empty(db)
            report = MigrationReport()
            tables = (DOCUMENT_TABLES if found else []) + STATE_TABLES
            with pg_db.transaction(db):
                for table, identity in tables:
                    if table not in _source_tables(src):
                        report.rows[table] = 0
                        continue
                    report.rows[table] = _copy_table(src, db, table, identity)
                    say(f"{table}: {report.rows[table]} row(s)")
                if found:
                    db.execute(
                        "INSERT INTO documents_meta(key, value) SELECT key, value FROM (VALUES ('text_version', %s)) "
                        "AS v(key, value) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (_text_version(src),),
                    )
                    # The one pod is stopped: a document it was indexing will not be finished by it.
                    db.execute(
                        "UPDATE documents SET status = 'failed', reason = %s WHERE status IN ('parsing', 'embedding')",
                        (INTERRUPTED,),
                    )
                _verify(src, db, report)
                # Inside the transaction: a vector that differs keeps nothing.
                report.vectors_checked = _compare_vectors(src, db) if found else 0
        finally:
            db.close()
        if found:
            report.files = _share_files(src, Path(data_dir), files_url, say)
        return report
    finally:
        src.close()


def _source_tables(src: sqlite3.Connection) -> set[str]:
    return {r["name"] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _text_version(src: sqlite3.Connection) -> str:
    row = src.execute("SELECT value FROM meta WHERE key = 'text_version'").fetchone()
    return row["value"] if row else "1"


def _refuse_if_not_empty(db: Any) -> None:
    held = {}
    for table in ("collections", "documents", "users", "conversations"):
        n = db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]
        if n:
            held[table] = n
    if held:
        what = ", ".join(f"{n} {t}" for t, n in held.items())
        raise UserError(f"The database already holds {what}; migrate into an empty database.")


def _copy_table(src: sqlite3.Connection, db: Any, table: str, identity: str | None) -> int:
    """Every row of ``table``, columns matched by name; chunks get their collection and vector."""
    have = _columns_sqlite(src, table)
    want = _columns_pg(db, table)
    if not want:
        raise UserError(f"The database has no table {table} to copy into; nothing was kept.")
    if table == "chunks":
        # the keyword text is derived from the text (tables.keyword_text), whatever the source's format
        columns = ["id", "document_id", "collection_id", "page", "ordinal", "text", "keyword_text", "embedding"]
        select = (
            "SELECT c.id, c.document_id, d.collection_id, c.page, c.ordinal, c.text, c.embedding "
            "FROM chunks c JOIN documents d ON d.id = c.document_id ORDER BY c.id"
        )
    else:
        columns = [c for c in have if c in want]
        select = f"SELECT {', '.join(columns)} FROM {table}"
    from webapp.rag.pg_store import vector_literal
    from webapp.rag.tables import keyword_text

    count = 0
    with db.cursor() as cur:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            rows = src.execute(select)
            while batch := rows.fetchmany(BATCH):
                for row in batch:
                    values = list(row)
                    if table == "chunks":
                        values[-1] = vector_literal(np.frombuffer(values[-1], dtype=np.float32))
                        values.insert(-1, keyword_text(values[5]))
                    copy.write_row(values)
                count += len(batch)
    if identity and count:
        # The identity sequence continues after the copied ids (they were written explicitly).
        db.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{identity}'), (SELECT max({identity}) FROM {table}))"
        )
    return count


def _verify(src: sqlite3.Connection, db: Any, report: MigrationReport) -> None:
    """Each table's rows counted on both sides (inside the copy's transaction: a mismatch undoes it)."""
    for table, copied in report.rows.items():
        if table == "chunks":  # chunks of documents that exist (as the copy took them)
            there = src.execute("SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id").fetchone()[0]
        else:
            there = src.execute(f"SELECT count(*) FROM {table}").fetchone()[0] if copied else 0
        here = db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]
        if not (there == here == copied):
            raise UserError(
                f"The copy of {table} did not verify ({there} rows in the data folder, {here} in the database); "
                "nothing was kept."
            )


def _compare_vectors(src: sqlite3.Connection, db: Any) -> int:
    from webapp.rag.pg_store import _from_send

    ids = [r[0] for r in src.execute(f"SELECT id FROM chunks ORDER BY random() LIMIT {VECTOR_SAMPLE}")]
    if not ids:
        return 0
    theirs = {
        int(r["id"]): _from_send(r["v"])
        for r in db.execute("SELECT id, vector_send(embedding) AS v FROM chunks WHERE id = ANY(%s)", (ids,))
    }
    for chunk_id, blob in src.execute(
        f"SELECT id, embedding FROM chunks WHERE id IN ({','.join('?' * len(ids))})", ids
    ):
        if chunk_id not in theirs or not np.array_equal(theirs[chunk_id], np.frombuffer(blob, dtype=np.float32)):
            raise UserError(f"The vector of chunk {chunk_id} differs after the copy; nothing was kept.")
    return len(ids)


def _share_files(src: sqlite3.Connection, data_dir: Path, files_url: str | None, say: Progress) -> int:
    """Originals and OCR word boxes where every replica will look for them (DOCCHAT_FILES_URL): copied
    into a shared folder, or uploaded to the bucket (whose cache is this data folder)."""
    if not files_url:
        return 0
    import os
    import shutil
    import tempfile

    from webapp.documents.shared_files import SharedFiles

    shared = SharedFiles(data_dir, files_url)
    names = set()
    for r in src.execute("SELECT sha256, format FROM documents"):
        names.add(f"files/{r['sha256']}.{r['format']}")
        names.add(SharedFiles.ocr_words(r["sha256"]))
    copied = 0
    for name in sorted(names):
        local = data_dir / name
        if not local.is_file():
            if name.startswith("files/"):
                log.warning("migrate: %s is missing from %s; re-upload that document", name, data_dir)
            continue
        target = shared.root / name
        if target.resolve() != local.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".copy-", dir=target.parent)
            os.close(fd)
            shutil.copyfile(local, tmp)
            os.replace(tmp, target)
        shared.publish(name)
        copied += 1
    say(f"files: {copied} shared")
    return copied
