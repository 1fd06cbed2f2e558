"""What both document stores share (webapp/rag/store.py: SQLite + FAISS; pg_store.py: PostgreSQL +
pgvector): the document record, time stamps, and the queries they run alike, written once with
``?`` placeholders.

A store supplies ``_db()`` (this thread's connection, rows readable by column name), ``writing()``
(one write transaction), ``_sql()`` (its placeholder style), ``_DOC_SQL`` (the document row with
its collection's name), ``_doc()`` (a row as a Document), ``create_collection()`` and ``files_dir``.
What differs between the engines (vectors, keyword search, locking, migrations) stays in each.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from webapp.auth.access import VISIBILITIES, CollectionAccess
from webapp.errors import UserError
from webapp.rag.text_forms import TEXT_VERSION


def join_overlapping(before: str, after: str) -> str:
    """Two consecutive chunks as one text: chunks overlap, so ``after`` usually starts with the
    end of ``before``; otherwise they are simply joined."""
    at = before.rfind(after[:40])
    if at >= 0 and after.startswith(before[at:]):
        return before + after[len(before) - at :]
    return before + "\n" + after


class StoreError(UserError):
    pass


def valid_collection_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 64:
        raise StoreError("A collection name must be 1 to 64 characters.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise StoreError("A collection name cannot contain control characters.")
    return name


def now() -> str:
    """The time stamps both stores write: ISO-8601 UTC, seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Document:
    id: int
    collection: str
    sha256: str
    label: str
    size_bytes: int
    status: str
    reason: str | None
    pages: int | None
    chunks: int | None
    added_at: str
    indexed_at: str | None
    format: str = "pdf"  # the reader that reads it: webapp/readers (the stored file's extension)
    source_key: str | None = None  # its path in the collection's synced source (None: uploaded)


class StoreQueries:
    _DOC_SQL: str
    _META = "meta"  # the table of the store's own facts (embedding model, text version)
    _BYTE_ORDER = ""  # what makes ORDER BY compare bytes (SQLite's default; Postgres: COLLATE "C")
    files_dir: Path

    # provided by each store
    def _db(self) -> Any:
        raise NotImplementedError

    def writing(self) -> Any:
        raise NotImplementedError

    def _doc(self, row: Any) -> Document:
        raise NotImplementedError

    def create_collection(self, name: str, owner: str | None, visibility: str, exist_ok: bool = False) -> int:
        raise NotImplementedError

    @staticmethod
    def _sql(text: str) -> str:
        """``text`` in this engine's placeholder style (SQLite's ``?`` as written)."""
        return text

    # -- documents ------------------------------------------------------------------------
    def documents(self, collection: str | None = None) -> list[Document]:
        if collection is None:
            rows = self._db().execute(self._DOC_SQL + " ORDER BY d.id")
        else:
            rows = self._db().execute(self._sql(self._DOC_SQL + " WHERE c.name = ? ORDER BY d.id"), (collection,))
        return [self._doc(r) for r in rows]

    def document(self, doc_id: int) -> Document | None:
        row = self._db().execute(self._sql(self._DOC_SQL + " WHERE d.id = ?"), (doc_id,)).fetchone()
        return self._doc(row) if row else None

    def original_path(self, doc: Document) -> Path:
        """Where a document's original file is kept: the one place that names it."""
        return self.files_dir / f"{doc.sha256}.{doc.format}"

    def page_labels(self, doc_id: int) -> dict[int, str]:
        """The labels of a document's pages that are not PDF pages (empty for a PDF)."""
        rows = self._db().execute(
            self._sql("SELECT page, label FROM pages WHERE document_id = ? AND label IS NOT NULL"), (doc_id,)
        )
        return {r["page"]: r["label"] for r in rows}

    def cached_summary(self, doc_id: int, indexed_at: str, method: int) -> dict[str, Any] | None:
        """A summary computed for this indexed version of the document by this method, if any."""
        row = (
            self._db()
            .execute(
                self._sql("SELECT body FROM summaries WHERE document_id = ? AND indexed_at = ? AND method = ?"),
                (doc_id, indexed_at, method),
            )
            .fetchone()
        )
        return json.loads(row["body"]) if row else None

    def counts(self) -> dict[str, int]:
        db = self._db()
        return {
            "documents": db.execute("SELECT COUNT(*) AS n FROM documents").fetchone()["n"],
            "chunks": db.execute("SELECT COUNT(*) AS n FROM chunks").fetchone()["n"],
        }

    def document_text(self, doc_id: int) -> str:
        """All of a document's chunk text in reading order (chunks overlap: some text repeats)."""
        rows = self._db().execute(
            self._sql("SELECT text FROM chunks WHERE document_id = ? ORDER BY ordinal, id"), (doc_id,)
        )
        return "\n".join(r["text"] for r in rows)

    def page_texts(self, doc_id: int) -> list[tuple[int, str]]:
        """(page, text) of a document, its chunks joined back where they overlap."""
        rows = (
            self._db()
            .execute(self._sql("SELECT page, text FROM chunks WHERE document_id = ? ORDER BY ordinal, id"), (doc_id,))
            .fetchall()
        )
        pages: dict[int, str] = {}
        for r in rows:
            page, text = r["page"], r["text"]
            pages[page] = join_overlapping(pages[page], text) if page in pages else text
        return sorted(pages.items())

    def text_mend_pending(self) -> bool:
        """Whether chunks may predate today's text normalisation (webapp/rag/text_forms.py)."""
        row = self._db().execute(f"SELECT value FROM {self._META} WHERE key = 'text_version'").fetchone()
        return row is None or int(row["value"]) < TEXT_VERSION

    # -- collections ----------------------------------------------------------------------
    def collection_id(self, name: str, create: bool = True) -> int:
        """The id of collection ``name``; ``create`` makes it (admin-owned, shared with everyone)."""
        name = valid_collection_name(name)
        row = self._db().execute(self._sql("SELECT id FROM collections WHERE name = ?"), (name,)).fetchone()
        if row:
            return int(row["id"])
        if not create:
            raise StoreError(f"There is no collection named {name!r}.")
        return self.create_collection(name, owner=None, visibility="everyone", exist_ok=True)

    def set_sharing(self, name: str, visibility: str, members: Sequence[str]) -> None:
        if visibility not in VISIBILITIES:
            raise StoreError(f"Visibility must be one of {', '.join(VISIBILITIES)}.")
        cid = self.collection_id(name, create=False)
        with self.writing() as db:
            db.execute(self._sql("UPDATE collections SET visibility = ? WHERE id = ?"), (visibility, cid))
            db.execute(self._sql("DELETE FROM collection_members WHERE collection_id = ?"), (cid,))
            for m in members:  # a name given twice (in any case) is one member
                db.execute(
                    self._sql(
                        "INSERT INTO collection_members(collection_id, user_name) VALUES (?, ?) ON CONFLICT DO NOTHING"
                    ),
                    (cid, m),
                )

    def collections(self) -> list[str]:
        return [r["name"] for r in self._db().execute(f"SELECT name FROM collections ORDER BY name{self._BYTE_ORDER}")]

    def collection_access(self) -> list[CollectionAccess]:
        """Every collection with its owner, visibility and members (the access rules need all three)."""
        db = self._db()
        members: dict[int, list[str]] = {}
        for r in db.execute(
            f"SELECT collection_id, user_name FROM collection_members ORDER BY user_name{self._BYTE_ORDER}"
        ):
            members.setdefault(r["collection_id"], []).append(r["user_name"])
        return [
            CollectionAccess(r["name"], r["owner"], r["visibility"], tuple(members.get(r["id"], ())))
            for r in db.execute(f"SELECT id, name, owner, visibility FROM collections ORDER BY name{self._BYTE_ORDER}")
        ]

    # -- synced sources (webapp/documents/sync.py) ----------------------------------------
    def sources(self) -> dict[str, dict[str, Any]]:
        """{collection: {"url", "synced_at", "result"}} for every collection with a source."""
        rows = self._db().execute(
            "SELECT c.name, s.url, s.synced_at, s.result FROM collection_sources s "
            f"JOIN collections c ON c.id = s.collection_id ORDER BY c.name{self._BYTE_ORDER}"
        )
        return {
            r["name"]: {
                "url": r["url"],
                "synced_at": r["synced_at"],
                "result": json.loads(r["result"]) if r["result"] else None,
            }
            for r in rows
        }

    def set_source(self, collection: str, url: str | None) -> None:
        """Give a collection a synced source (None: none any more)."""
        cid = self.collection_id(collection, create=False)
        with self.writing() as db:
            if url is None:
                db.execute(self._sql("DELETE FROM collection_sources WHERE collection_id = ?"), (cid,))
            else:
                db.execute(
                    self._sql(
                        "INSERT INTO collection_sources(collection_id, url) VALUES (?, ?) "
                        "ON CONFLICT (collection_id) DO UPDATE SET url = excluded.url"
                    ),
                    (cid, url),
                )

    def set_source_key(self, doc_id: int, source_key: str | None, label: str) -> None:
        """A document's key in its collection's source (and its label): a file moved there keeps its
        document, chunks and all, under the new name."""
        with self.writing() as db:
            db.execute(
                self._sql("UPDATE documents SET source_key = ?, label = ? WHERE id = ?"), (source_key, label, doc_id)
            )

    def record_sync(self, collection: str, result: dict[str, Any]) -> None:
        """Keep a sync run's result (and its time) with the collection's source."""
        cid = self.collection_id(collection, create=False)
        with self.writing() as db:
            db.execute(
                self._sql("UPDATE collection_sources SET synced_at = ?, result = ? WHERE collection_id = ?"),
                (now(), json.dumps(result), cid),
            )
