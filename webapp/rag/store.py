"""The document store: SQLite for documents/pages/chunks/vectors, FAISS for search.

Layout under the data folder (a persistent volume in the cluster)::

    store.sqlite3          documents, pages, chunks (with their vectors), FTS5 index, meta
    index/<collection>.faiss   one FAISS index per collection, rebuilt from SQLite if needed
    files/<sha256>.<format>   uploaded files, named by content (``original_path`` is their one owner)

SQLite is the source of truth: every chunk row carries its embedding (float32
bytes), so a FAISS file that is missing, stale or damaged is rebuilt from it
without re-embedding. Write order makes a crash at any point recoverable:
chunks and the document's "indexed" status commit in one transaction, then
the FAISS file is replaced atomically (temp file, fsync, os.replace). On open,
``check_and_repair`` compares each FAISS index with SQLite and rebuilds it on
any difference. One writer at a time (a thread lock plus an flock on
``.write.lock``, so the CLI and the app can share a folder); readers keep a
loaded index and reload it when the file changes. The FAISS side (index type,
patching, atomic files, the cache) lives in index_files.py. No pickle anywhere.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from webapp.auth.access import VISIBILITIES
from webapp.rag.compounds import fts_alternatives
from webapp.rag.index_files import IndexDelta, IndexFiles
from webapp.rag.store_common import Document as Document
from webapp.rag.store_common import StoreError as StoreError
from webapp.rag.store_common import StoreQueries, now
from webapp.rag.store_common import valid_collection_name as valid_collection_name
from webapp.rag.tables import keyword_text
from webapp.rag.text_forms import TEXT_VERSION, normalize
from webapp.sqlite_db import ThreadConnections, transaction

log = logging.getLogger(__name__)

# 1: documents, pages, chunks, collections. 2: collections have an owner and a visibility, and
# collection_members names who a shared collection is shared with (users and roles, issue 12).
# 3: documents have a format (pdf, docx, pptx, html, md, txt, xlsx) and, when a synced source
# holds them, that source's key (their path there); pages have a label ("section 2.3 Results",
# "slide 7") where they are not PDF pages; collection_sources holds each collection's synced
# source and its last result (issue 25). 4: chunks have a keyword_text (a table piece's text for
# keyword search: its column names once, tables.keyword_text) and the keyword index reads it
# through the chunks_keywords view.
FORMAT_VERSION = 4
STATUSES = ("queued", "parsing", "embedding", "indexed", "failed")

# The keyword index (FTS5, external content) reads a chunk's keyword_text where it has one (a table
# piece: tables.keyword_text), else its text - through a view, so that FTS5's own 'rebuild' and
# 'integrity-check' see what the triggers index. Made after the tables (and by migrate, format 4).
KEYWORD_INDEX = (
    "CREATE VIEW IF NOT EXISTS chunks_keywords AS SELECT id, coalesce(keyword_text, text) AS text FROM chunks",
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5("
    "text, content='chunks_keywords', content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN "
    "INSERT INTO chunks_fts(rowid, text) VALUES (new.id, coalesce(new.keyword_text, new.text)); END",
    "CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN "
    "INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, coalesce(old.keyword_text, old.text)); END",
)
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
    owner TEXT, visibility TEXT NOT NULL DEFAULT 'everyone');
CREATE TABLE IF NOT EXISTS collection_members (
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    user_name TEXT NOT NULL COLLATE NOCASE, PRIMARY KEY (collection_id, user_name));
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL, label TEXT NOT NULL, size_bytes INTEGER NOT NULL,
    status TEXT NOT NULL, reason TEXT, pages INTEGER, chunks INTEGER,
    added_at TEXT NOT NULL, indexed_at TEXT,
    format TEXT NOT NULL DEFAULT 'pdf', source_key TEXT,
    UNIQUE (collection_id, sha256));
CREATE TABLE IF NOT EXISTS pages (
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    page INTEGER NOT NULL, chars INTEGER NOT NULL, label TEXT, PRIMARY KEY (document_id, page));
CREATE TABLE IF NOT EXISTS collection_sources (
    collection_id INTEGER PRIMARY KEY REFERENCES collections(id) ON DELETE CASCADE,
    url TEXT NOT NULL, synced_at TEXT, result TEXT);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    page INTEGER NOT NULL, ordinal INTEGER NOT NULL, text TEXT NOT NULL, embedding BLOB NOT NULL,
    keyword_text TEXT);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks(document_id);
CREATE TABLE IF NOT EXISTS summaries (
    document_id INTEGER PRIMARY KEY REFERENCES documents(id) ON DELETE CASCADE,
    indexed_at TEXT NOT NULL, method INTEGER NOT NULL, body TEXT NOT NULL);
"""


@dataclass(frozen=True)
class ChunkRow:
    id: int
    document_id: int
    label: str
    page: int
    text: str
    section: str | None = None  # the page's label where it is not a PDF page ("slide 7")


class DocumentGone(StoreError):
    """The document was deleted while it was being indexed (a normal outcome, not a failure)."""


class JobLost(StoreError):
    """Another worker took this document's indexing over (this one's lease ran out): not a failure
    of the document; this worker's result is dropped (webapp/rag/pg_store.py: the job queue)."""


def worker_name() -> str:
    """This process in a job queue's leases: host, process id and a random tail (a restarted pod may
    reuse both)."""
    import os
    import socket
    import uuid

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def recorded_embedding_model(data_dir: Path) -> str | None:
    """The embedding model a data folder was built with (None for a new or empty folder)."""
    path = Path(data_dir) / "store.sqlite3"
    if not path.is_file():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'embedding_model'").fetchone()
        return row[0] if row else None
    except sqlite3.DatabaseError:
        return None  # no meta table yet (or not a store): DocumentStore reports real damage
    finally:
        conn.close()


def _add_columns(db: sqlite3.Connection, table: str, columns: dict[str, str]) -> None:
    """ALTER TABLE for the columns not there yet (SCHEMA's CREATE TABLE IF NOT EXISTS leaves an old table as it was)."""
    have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
    for name, kind in columns.items():
        if name not in have:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def _reindex_keywords(db: sqlite3.Connection, chunk_id: int, indexed: str, keywords: str) -> None:
    """Replace what the keyword index holds for a chunk (``indexed``, exactly) with ``keywords``."""
    db.execute("INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', ?, ?)", (chunk_id, indexed))
    db.execute("INSERT INTO chunks_fts(rowid, text) VALUES (?, ?)", (chunk_id, keywords))


def migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring a store of an older format up to FORMAT_VERSION, inside the caller's transaction.

    Each step and the new format_version commit together (SQLite's ALTER TABLE is
    transactional), so a crash mid-way leaves the old format, untouched, and the next start
    runs the migration again.
    """
    if version < 2:
        # Collections made before users existed stay readable by everyone and belong to the admins.
        columns = {r[1] for r in db.execute("PRAGMA table_info(collections)")}
        if "owner" not in columns:
            db.execute("ALTER TABLE collections ADD COLUMN owner TEXT")
        if "visibility" not in columns:
            db.execute("ALTER TABLE collections ADD COLUMN visibility TEXT NOT NULL DEFAULT 'everyone'")
        db.execute("UPDATE collections SET owner = NULL, visibility = 'everyone'")
        log.warning(
            "store migrated from format %d to 2: existing collections are admin-owned and shared with everyone", version
        )
    if version < 3:
        # Every document stored so far is a PDF, from an upload; every page a PDF page.
        _add_columns(db, "documents", {"format": "TEXT NOT NULL DEFAULT 'pdf'", "source_key": "TEXT"})
        _add_columns(db, "pages", {"label": "TEXT"})
    if version < 4:
        # Table pieces are keyword-indexed with their column names once (tables.keyword_text): the
        # keyword index is made again over the chunks_keywords view and filled from it.
        _add_columns(db, "chunks", {"keyword_text": "TEXT"})
        for chunk_id, text in db.execute("SELECT id, text FROM chunks WHERE text LIKE '% | %'").fetchall():
            db.execute("UPDATE chunks SET keyword_text = ? WHERE id = ?", (keyword_text(text), chunk_id))
        for old in ("TRIGGER IF EXISTS chunks_ai", "TRIGGER IF EXISTS chunks_ad", "TABLE IF EXISTS chunks_fts"):
            db.execute(f"DROP {old}")
        for statement in KEYWORD_INDEX:
            db.execute(statement)
        db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')")
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('format_version', ?)", (str(FORMAT_VERSION),))
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('migrated_at', ?)", (now(),))


class DocumentStore(StoreQueries):
    def __init__(self, data_dir: Path, embedding_model: str, dimension: int):
        self.data_dir = Path(data_dir)
        self.files_dir = self.data_dir / "files"
        self.index_dir = self.data_dir / "index"
        for d in (self.data_dir, self.files_dir, self.index_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.db_path = self.data_dir / "store.sqlite3"
        self.embedding_model = embedding_model
        self._write_lock = threading.RLock()
        self._generation = 0  # bumped by every write: caches of derived figures compare it
        self._term_lock = threading.Lock()
        self._term_cache: dict[tuple[int, str], float] = {}
        self._term_generation = 0
        self._connections = ThreadConnections(self.db_path)
        self.indexes = IndexFiles(self.index_dir, dimension)
        with self._exclusive():
            self._db().executescript(SCHEMA)  # executescript manages its own transaction
        with self.writing() as db:
            self._check_meta(db, embedding_model, dimension)  # an older format migrates here
            for statement in KEYWORD_INDEX:  # a new store's keyword index (IF NOT EXISTS: no-op after)
                db.execute(statement)

    @property
    def dimension(self) -> int:
        return self.indexes.dimension

    # -- connections and locking -------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        return self._connections.get()

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One writer across threads (RLock) and processes (flock, released if we die)."""
        with self._write_lock:
            with open(self.data_dir / ".write.lock", "a+") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                yield

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """Exclusive writer; one SQLite transaction (nested use joins the outer one)."""
        with self._exclusive():
            self._generation += 1
            db = self._db()
            if db.in_transaction:
                yield db
                return
            with transaction(db):
                yield db

    def _check_meta(self, db: sqlite3.Connection, embedding_model: str, dimension: int) -> None:
        meta = {r["key"]: r["value"] for r in db.execute("SELECT key, value FROM meta")}
        if not meta:
            db.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                [
                    ("format_version", str(FORMAT_VERSION)),
                    ("embedding_model", embedding_model),
                    ("embedding_dimension", str(dimension)),
                    ("created_at", now()),
                    ("text_version", str(TEXT_VERSION)),
                ],
            )
            return
        version = int(meta.get("format_version", 0))
        if version > FORMAT_VERSION or version < 1:
            raise StoreError(
                f"The document store in {self.data_dir} has format {meta.get('format_version')}; "
                f"this version of the app reads formats 1 to {FORMAT_VERSION}."
            )
        if version < FORMAT_VERSION:
            migrate(db, version)
        if meta.get("embedding_model") != embedding_model or int(meta.get("embedding_dimension", 0)) != dimension:
            raise StoreError(
                f"The documents in {self.data_dir} were embedded with {meta.get('embedding_model')}, not "
                f"{embedding_model}; use that embedding model or a new data folder."
            )

    # -- collections -------------------------------------------------------------
    def create_collection(self, name: str, owner: str | None, visibility: str, exist_ok: bool = False) -> int:
        name = valid_collection_name(name)
        if visibility not in VISIBILITIES:
            raise StoreError(f"Visibility must be one of {', '.join(VISIBILITIES)}.")
        with self.writing() as db:
            row = db.execute("SELECT id FROM collections WHERE name = ?", (name,)).fetchone()
            if row:
                if exist_ok:
                    return int(row["id"])
                raise StoreError(f"A collection named {name!r} already exists.")
            cur = db.execute(
                "INSERT INTO collections(name, created_at, owner, visibility) VALUES (?, ?, ?, ?)",
                (name, now(), owner, visibility),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    # -- documents ----------------------------------------------------------------
    def _doc(self, row: sqlite3.Row) -> Document:
        return Document(
            id=row["id"],
            collection=row["collection"],
            sha256=row["sha256"],
            label=row["label"],
            size_bytes=row["size_bytes"],
            status=row["status"],
            reason=row["reason"],
            pages=row["pages"],
            chunks=row["chunks"],
            added_at=row["added_at"],
            indexed_at=row["indexed_at"],
            format=row["format"],
            source_key=row["source_key"],
        )

    _DOC_SQL = "SELECT d.*, c.name AS collection FROM documents d JOIN collections c ON c.id = d.collection_id"

    def add_document(
        self,
        collection: str,
        sha256: str,
        label: str,
        size_bytes: int,
        format: str = "pdf",
        source_key: str | None = None,
    ) -> tuple[Document, bool]:
        """Register a stored file in a collection; (document, False) if it was already there."""
        cid = self.collection_id(collection)
        with self.writing() as db:
            row = db.execute(
                "SELECT id FROM documents WHERE collection_id = ? AND sha256 = ?", (cid, sha256)
            ).fetchone()
            if row:
                return self._existing(row["id"]), False
            cur = db.execute(
                "INSERT INTO documents(collection_id, sha256, label, size_bytes, status, added_at, format, source_key) "
                "VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
                (cid, sha256, label, size_bytes, now(), format, source_key),
            )
            doc_id = cur.lastrowid
        assert doc_id is not None
        return self._existing(doc_id), True

    def _existing(self, doc_id: int) -> Document:
        found = self.document(doc_id)
        if found is None:  # removed by another writer in between
            raise StoreError("That document was removed meanwhile; add it again.")
        return found

    def set_status(self, doc_id: int, status: str, reason: str | None = None) -> None:
        assert status in STATUSES
        with self.writing() as db:
            db.execute("UPDATE documents SET status = ?, reason = ? WHERE id = ?", (status, reason, doc_id))

    # -- the job queue: one process owns this folder, so its claims live in DocumentService alone
    # (the shared queue with leases is PostgreSQL's: webapp/rag/pg_store.py, shared_jobs).
    shared_jobs = False

    def claim(self, doc_ids: Sequence[int], lease_s: float, requeue: bool = False) -> list[int]:
        won = []
        for doc_id in doc_ids:
            doc = self.document(doc_id)
            if doc is not None and (requeue or doc.status == "queued"):
                if doc.status != "queued":
                    self.set_status(doc_id, "queued")
                won.append(doc_id)
        return sorted(won)

    def claim_abandoned(self, lease_s: float, limit: int = 1) -> list[int]:
        return []

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        yield True  # one process: DocumentService's and SyncService's own locks already decide

    def renew(self, doc_ids: Sequence[int], lease_s: float) -> list[int]:
        return sorted(doc_ids)

    def release(self, doc_ids: Sequence[int]) -> None:
        pass

    def save_chunks(
        self,
        doc_id: int,
        page_chars: Sequence[int],
        chunks: Sequence[Any],
        vectors: np.ndarray,
        note: str | None = None,
        page_labels: Sequence[str | None] | None = None,
    ) -> None:
        """Replace a document's chunks and mark it indexed, atomically; then update FAISS.

        ``page_labels`` names each page where it is not a PDF page ("section 2.3 Results", "slide 7")."""
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self.writing() as db:
            if db.execute("SELECT 1 FROM documents WHERE id = ?", (doc_id,)).fetchone() is None:
                raise DocumentGone("This document was deleted while it was being indexed.")
            old_ids = [r[0] for r in db.execute("SELECT id FROM chunks WHERE document_id = ?", (doc_id,))]
            db.execute("DELETE FROM chunks WHERE document_id = ?", (doc_id,))
            db.execute("DELETE FROM pages WHERE document_id = ?", (doc_id,))
            labels = list(page_labels or [None] * len(page_chars))
            db.executemany(
                "INSERT INTO pages(document_id, page, chars, label) VALUES (?, ?, ?, ?)",
                [(doc_id, i + 1, n, label) for i, (n, label) in enumerate(zip(page_chars, labels))],
            )
            db.executemany(
                "INSERT INTO chunks(document_id, page, ordinal, text, embedding, keyword_text) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (doc_id, c.page, c.ordinal, c.text, v.tobytes(), keyword_text(c.text))
                    for c, v in zip(chunks, vectors)
                ],
            )
            # Rows were inserted in order, so ascending ids line up with ``vectors``.
            new_ids = np.asarray(
                [r[0] for r in db.execute("SELECT id FROM chunks WHERE document_id = ? ORDER BY id", (doc_id,))],
                dtype=np.int64,
            )
            db.execute(
                "UPDATE documents SET status = 'indexed', reason = ?, pages = ?, chunks = ?, indexed_at = ? "
                "WHERE id = ?",
                (note, len(page_chars), len(chunks), now(), doc_id),
            )
            cid = db.execute("SELECT collection_id FROM documents WHERE id = ?", (doc_id,)).fetchone()[0]
            # Still inside the write lock: no other writer can interleave an index file.
            self._write_index(cid, db, IndexDelta(removed=old_ids, added_ids=new_ids, added=vectors))

    def delete_document(self, doc_id: int) -> Document | None:
        doc = self.document(doc_id)
        if doc is None:
            return None
        with self.writing() as db:
            cid = db.execute("SELECT collection_id FROM documents WHERE id = ?", (doc_id,)).fetchone()[0]
            old_ids = [r[0] for r in db.execute("SELECT id FROM chunks WHERE document_id = ?", (doc_id,))]
            db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))  # cascades to pages and chunks
            self._write_index(cid, db, IndexDelta(removed=old_ids))
            still_used = db.execute("SELECT 1 FROM documents WHERE sha256 = ? LIMIT 1", (doc.sha256,)).fetchone()
        if not still_used:
            self.original_path(doc).unlink(missing_ok=True)
        return doc

    # -- FAISS ----------------------------------------------------------------------
    # The chunks that belong in a collection's index: those of documents whose chunks have been
    # committed once (indexed_at is set in the same transaction), whatever their status now. A
    # document queued for re-indexing, being re-read or failing a retry keeps its old chunks
    # searchable until replacement chunks commit; only delete removes them.
    SEARCHABLE = "d.indexed_at IS NOT NULL"
    _INDEXED_CHUNKS = (
        f"FROM chunks ch JOIN documents d ON d.id = ch.document_id WHERE d.collection_id = ? AND {SEARCHABLE}"
    )

    def _indexed_ids(self, db: sqlite3.Connection, cid: int) -> np.ndarray:
        rows = db.execute(f"SELECT ch.id {self._INDEXED_CHUNKS} ORDER BY ch.id", (cid,)).fetchall()
        return np.asarray([r[0] for r in rows], dtype=np.int64)

    def _vectors(self, db: sqlite3.Connection, cid: int) -> tuple[np.ndarray, np.ndarray]:
        rows = db.execute(f"SELECT ch.id, ch.embedding {self._INDEXED_CHUNKS} ORDER BY ch.id", (cid,)).fetchall()
        ids = np.asarray([r[0] for r in rows], dtype=np.int64)
        vecs = (
            np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), self.dimension)
            if rows
            else np.zeros((0, self.dimension), dtype=np.float32)
        )
        return ids, vecs

    def _write_index(self, cid: int, db: sqlite3.Connection, delta: IndexDelta | None = None) -> None:
        """Bring the collection's index file up to date with SQLite (caller holds the write lock).

        With a ``delta`` (one document added or removed) the current index is copied and
        patched - memory copies instead of reading every vector back from SQLite (and, for
        HNSW, instead of rebuilding the graph) on each document. When patching is not safe
        (see IndexFiles.patched) it rebuilds from SQLite, the one path that is always right.
        """
        index = None
        if delta is not None:
            expected = db.execute(f"SELECT COUNT(*) {self._INDEXED_CHUNKS}", (cid,)).fetchone()[0]
            index = self.indexes.patched(cid, delta, expected)
        if index is None:
            index = self.indexes.build(*self._vectors(db, cid))
        self.indexes.write(cid, index)

    def index_for(self, cid: int) -> Any:
        """The collection's FAISS index, reloaded if another writer replaced the file."""
        if not self.indexes.exists(cid):
            with self.writing() as db:
                if not self.indexes.exists(cid):
                    self._write_index(cid, db)
        # The file changed under us: was the whole folder re-embedded by another process?
        return self.indexes.load(cid, on_replaced=self._check_still_same_model)

    def dense_search(
        self, cid: int, qvec: np.ndarray, limit: int, documents: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine) of the ``limit`` chunks nearest ``qvec``, best first; only of ``documents``
        when given. A collection is searched through its FAISS index; a chat scoped to a few documents
        exactly, by brute force over their vectors (the index cannot filter by document without a full
        scan anyway)."""
        if documents is not None:
            ids, vectors = self.document_vectors(documents)
            if not len(ids):
                return []
            if vectors.shape[1] != qvec.shape[0]:
                raise StoreError("The documents are being re-embedded with another model; ask again in a moment.")
            sims = vectors @ qvec
            return [(int(ids[j]), float(sims[j])) for j in np.argsort(-sims)[:limit]]
        index = self.index_for(cid)
        if index.d != qvec.shape[0]:  # the folder was re-embedded after this question was embedded
            raise StoreError("The documents are being re-embedded with another model; ask again in a moment.")
        if not index.ntotal:
            return []
        scores, ids = index.search(qvec[None, :], min(limit, index.ntotal))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def _check_still_same_model(self) -> None:
        row = self._db().execute("SELECT value FROM meta WHERE key = 'embedding_model'").fetchone()
        if row and row[0] != self.embedding_model:
            raise StoreError(
                f"The documents were re-embedded with {row[0]} by another process; restart the app to search them."
            )

    def reembed(
        self,
        embedding_model: str,
        dimension: int,
        embed: Callable[[list[str]], np.ndarray],
        progress: Callable[[int, int], None] | None = None,
        batch: int = 256,
    ) -> int:
        """Replace every chunk's vector with ``embed``'s and record the new model; returns the chunk count.

        All in one SQLite transaction, so a crash leaves the old model's vectors intact. The FAISS
        files are deleted inside that transaction and rebuilt after it, so whichever state
        survives a crash, check_and_repair rebuilds the indexes from matching vectors.
        """
        with self.writing() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM chunks ORDER BY id")]
            for start in range(0, len(ids), batch):
                part = ids[start : start + batch]
                marks = ",".join("?" * len(part))
                rows = db.execute(f"SELECT id, text FROM chunks WHERE id IN ({marks}) ORDER BY id", part).fetchall()
                vectors = np.ascontiguousarray(embed([r[1] for r in rows]), dtype=np.float32)
                if vectors.shape != (len(rows), dimension):
                    raise ValueError(f"embedder returned {vectors.shape}, expected ({len(rows)}, {dimension})")
                db.executemany(
                    "UPDATE chunks SET embedding = ? WHERE id = ?", [(v.tobytes(), r[0]) for r, v in zip(rows, vectors)]
                )
                if progress:
                    progress(start + len(rows), len(ids))
            db.executemany(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                [
                    ("embedding_model", embedding_model),
                    ("embedding_dimension", str(dimension)),
                    ("reembedded_at", now()),
                ],
            )
            self.indexes.remove_all()
        self.embedding_model, self.indexes.dimension = embedding_model, dimension
        with self.writing() as db:
            for (cid,) in db.execute("SELECT id FROM collections").fetchall():
                self._write_index(cid, db)
        return len(ids)

    def mend_text(
        self,
        embed: Callable[[list[str]], np.ndarray],
        batch: int = 256,
        stop: threading.Event | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Re-spell chunks written before today's text normalisation and re-embed just those;
        returns how many changed. Once per store (meta ``text_version``); ``stop`` ends it early.

        Meant to run beside the app (a big store with a transformer embedder takes minutes): each
        batch is embedded outside the write lock, then written in its own transaction, and only
        where the chunk still holds the text that was read (one deleted or re-indexed meanwhile is
        left alone: new text is already normalised). Re-spelling is idempotent, so a crash or a
        stop leaves a mix that the next run finishes; the version is recorded last and FAISS is
        rebuilt after it. The keyword index follows the text (external-content FTS5: the old row
        is deleted with its old text, the new one inserted).
        """
        if not self.text_mend_pending():
            return 0
        model = self.embedding_model
        rows = self._db().execute("SELECT id, text FROM chunks ORDER BY id").fetchall()
        changed = [(r[0], r[1], normalize(r[1])) for r in rows if normalize(r[1]) != r[1]]
        done = 0
        for start in range(0, len(changed), batch):
            if stop is not None and stop.is_set():
                return done
            part = changed[start : start + batch]
            vectors = np.ascontiguousarray(embed([new for _, _, new in part]), dtype=np.float32)
            if vectors.shape != (len(part), self.dimension):
                raise ValueError(f"embedder returned {vectors.shape}, expected ({len(part)}, {self.dimension})")
            with self.writing() as db:
                current = db.execute("SELECT value FROM meta WHERE key = 'embedding_model'").fetchone()
                if current is None or current[0] != model:  # re-embedded meanwhile: these vectors are stale
                    return done
                for (chunk_id, old, new), vector in zip(part, vectors):
                    row = db.execute(
                        "SELECT coalesce(keyword_text, text) FROM chunks WHERE id = ? AND text = ?", (chunk_id, old)
                    ).fetchone()
                    if row is None:
                        continue
                    keywords = keyword_text(new)
                    db.execute(
                        "UPDATE chunks SET text = ?, embedding = ?, keyword_text = ? WHERE id = ?",
                        (new, vector.tobytes(), keywords, chunk_id),
                    )
                    _reindex_keywords(db, chunk_id, row[0], keywords or new)
                    done += 1
            if progress:
                progress(start + len(part), len(changed))
        with self.writing() as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('text_version', ?)", (str(TEXT_VERSION),))
            if done:
                self.indexes.remove_all()
                for (cid,) in db.execute("SELECT id FROM collections").fetchall():
                    self._write_index(cid, db)
        if done:
            log.warning("re-spelled and re-embedded %d chunks written by an older text normalisation", done)
        return done

    def check_and_repair(self) -> list[str]:
        """Make FAISS agree with SQLite and finish what a crash interrupted; returns what was fixed."""
        fixed = []
        with self.writing() as db:
            interrupted = db.execute(
                "UPDATE documents SET status = 'failed', reason = ? WHERE status IN ('parsing', 'embedding')",
                ("Indexing was interrupted before it finished; re-index to try again.",),
            ).rowcount
            if interrupted:
                fixed.append(f"{interrupted} document(s) whose indexing was interrupted marked failed")
            for cid, name in db.execute("SELECT id, name FROM collections").fetchall():
                ids = self._indexed_ids(db, cid)  # ids only: start-up need not read every vector
                if not self.indexes.exists(cid) and not len(ids):
                    self._write_index(cid, db)  # a new, empty collection: nothing to repair
                    continue
                try:
                    dimension, have = self.indexes.stored_ids(cid)
                    consistent = dimension == self.dimension and np.array_equal(have, ids)
                except Exception as exc:  # missing or unreadable file
                    log.warning("index of collection %s unreadable: %s", name, exc)
                    consistent = False
                if not consistent:
                    self._write_index(cid, db)
                    fixed.append(f"search index of collection {name!r} rebuilt from the database ({len(ids)} chunks)")
        for line in fixed:
            log.warning("store repair: %s", line)
        return fixed

    # -- reads for retrieval ---------------------------------------------------------
    def chunks_by_id(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._db().execute(
            f"SELECT ch.id, ch.document_id, ch.page, ch.text, d.label, p.label AS section FROM chunks ch "
            f"JOIN documents d ON d.id = ch.document_id "
            f"LEFT JOIN pages p ON p.document_id = ch.document_id AND p.page = ch.page "
            f"WHERE ch.id IN ({marks}) AND {self.SEARCHABLE}",
            [int(i) for i in ids],
        )
        return {
            r["id"]: ChunkRow(r["id"], r["document_id"], r["label"], r["page"], r["text"], r["section"]) for r in rows
        }

    # -- synced sources (webapp/documents/sync.py) -------------------------------------
    def save_summary(self, doc_id: int, indexed_at: str, method: int, body: dict[str, Any]) -> None:
        with self.writing() as db:
            if db.execute("SELECT 1 FROM documents WHERE id = ? AND indexed_at = ?", (doc_id, indexed_at)).fetchone():
                db.execute(
                    "INSERT OR REPLACE INTO summaries(document_id, indexed_at, method, body) VALUES (?, ?, ?, ?)",
                    (doc_id, indexed_at, method, json.dumps(body)),
                )

    def vectors_by_id(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._db().execute(f"SELECT id, embedding FROM chunks WHERE id IN ({marks})", [int(i) for i in ids])
        return {r[0]: np.frombuffer(r[1], dtype=np.float32) for r in rows}

    def keyword_search(self, cid: int, fts_query: str, limit: int, documents: Sequence[int] | None = None) -> list[int]:
        """Chunk ids matching ``fts_query``, best first; only of ``documents`` when given."""
        if not fts_query:
            return []
        scope, args = self._scope(documents)
        rows = self._db().execute(
            "SELECT ch.id FROM chunks_fts f JOIN chunks ch ON ch.id = f.rowid "
            "JOIN documents d ON d.id = ch.document_id "
            f"WHERE chunks_fts MATCH ? AND d.collection_id = ? AND {self.SEARCHABLE}{scope} "
            "ORDER BY bm25(chunks_fts) LIMIT ?",
            (fts_query, cid, *args, limit),
        )
        return [r[0] for r in rows]

    @staticmethod
    def _scope(documents: Sequence[int] | None) -> tuple[str, list[int]]:
        if documents is None:
            return "", []
        return f" AND ch.document_id IN ({','.join('?' * len(documents)) or 'NULL'})", [int(d) for d in documents]

    def document_vectors(self, documents: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, their embeddings as rows) of the searchable chunks of ``documents``: a chat
        scoped to a few documents is searched exactly, by brute force, instead of through the
        collection's FAISS index (which cannot filter by document without a full scan anyway)."""
        scope, args = self._scope(documents)
        rows = (
            self._db()
            .execute(
                f"SELECT ch.id, ch.embedding FROM chunks ch JOIN documents d ON d.id = ch.document_id "
                f"WHERE {self.SEARCHABLE}{scope} ORDER BY ch.id",
                args,
            )
            .fetchall()
        )
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        vectors = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows]) if rows else np.zeros((0, 0))
        return ids, vectors

    def term_weights(self, cid: int, terms: Sequence[str]) -> dict[str, float]:
        """Inverse document frequency of each term over the collection's searchable chunks
        (log(1 + N / (1 + df)), df counted by the keyword index, so "models" counts "model").

        Per collection on purpose: a weight drawn from every collection would let the words of a
        private collection shift another user's answers. Cached; any write clears the cache."""
        with self._term_lock:
            if self._term_generation != self._generation:
                self._term_cache.clear()
                self._term_generation = self._generation
            missing = [t for t in dict.fromkeys(terms) if (cid, t) not in self._term_cache]
        db = self._db()
        if missing:
            n = db.execute(f"SELECT COUNT(*) {self._INDEXED_CHUNKS}", (cid,)).fetchone()[0]
            counted = {}
            for term in missing:
                df = db.execute(
                    "SELECT COUNT(*) FROM chunks_fts f JOIN chunks ch ON ch.id = f.rowid "
                    "JOIN documents d ON d.id = ch.document_id "
                    f"WHERE chunks_fts MATCH ? AND d.collection_id = ? AND {self.SEARCHABLE}",
                    (fts_alternatives(term), cid),
                ).fetchone()[0]
                counted[(cid, term)] = math.log(1 + n / (1 + df))
            with self._term_lock:
                if len(self._term_cache) > 20_000:
                    self._term_cache.clear()
                self._term_cache.update(counted)
        with self._term_lock:
            return {t: self._term_cache[(cid, t)] for t in terms if (cid, t) in self._term_cache}

    def close(self) -> None:
        self._connections.close()
