"""Upgrading a data folder written by the main before users existed (tests/fixtures/data-v1).

Its collections must become admin-owned and readable by everyone, its documents searchable by any
signed-in user, and a crash in the middle of the migration must leave the old format intact so
that the next start simply migrates again.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "data-v1"


def meta(data: Path) -> dict:
    conn = sqlite3.connect(data / "store.sqlite3")
    try:
        return dict(conn.execute("SELECT key, value FROM meta"))
    finally:
        conn.close()


def collection_columns(data: Path) -> set[str]:
    conn = sqlite3.connect(data / "store.sqlite3")
    try:
        return {r[1] for r in conn.execute("PRAGMA table_info(collections)")}
    finally:
        conn.close()


@pytest.fixture
def old_folder(tmp_path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    assert meta(data)["format_version"] == "1" and "owner" not in collection_columns(data)
    return data


def test_old_documents_become_admin_owned_and_shared_with_everyone(old_folder, settings_factory):
    from webapp.auth.access import Actor
    from webapp.documents.service import DocumentService

    docs = DocumentService(settings_factory(data_dir=old_folder))
    try:
        viewer, member, admin = Actor("vic", "viewer"), Actor("bob", "member"), Actor("ada", "admin")
        access = {c.name: c for c in docs.collection_access(viewer)}
        assert set(access) == {"default", "reports"}
        assert all(c.owner is None and c.visibility == "everyone" for c in access.values())
        assert meta(old_folder)["format_version"] == "4" and "migrated_at" in meta(old_folder)
        # format 3 (issue 25): what was stored before is a PDF from an upload, cited by page
        assert {(d.format, d.source_key) for d in docs.documents(None, admin)} == {("pdf", None)}
        assert all(docs.store.original_path(d).is_file() for d in docs.documents(None, admin))
        hit = docs.search("default", "volcano lava magma", actor=viewer)[0]
        assert hit.section is None and hit.where == f"p. {hit.page}"
        # Everyone reads the old documents; only admins manage them.
        assert [p.document for p in docs.search("default", "volcano lava magma", actor=viewer)][:1] == ["volcano.pdf"]
        assert [p.document for p in docs.search("reports", "honey bees waggle dance", actor=member)][:1] == ["bees.pdf"]
        assert docs.managed_collections(member) == [] and docs.managed_collections(admin) == ["default", "reports"]
        assert {d.label for d in docs.documents(None, viewer)} == {"volcano.pdf", "bees.pdf"}
        # The fixture holds no FAISS files (derived data is not kept in git): both search indexes are
        # rebuilt from the vectors stored in SQLite, which is what a lost index file does too.
        assert sorted(docs.repairs) == [
            "search index of collection 'default' rebuilt from the database (2 chunks)",
            "search index of collection 'reports' rebuilt from the database (2 chunks)",
        ]
    finally:
        docs.close()


def test_a_crash_during_the_migration_leaves_the_old_format(old_folder, settings_factory, monkeypatch):
    import webapp.rag.store as store_module
    from webapp.documents.service import DocumentService

    real_migrate = store_module.migrate

    def crash_midway(db, version):
        real_migrate(db, version)  # every step has run inside the transaction...
        raise KeyboardInterrupt("power cut")  # ...and the process dies before COMMIT

    monkeypatch.setattr(store_module, "migrate", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        _ = DocumentService(settings_factory(data_dir=old_folder)).store
    assert meta(old_folder)["format_version"] == "1"
    assert "owner" not in collection_columns(old_folder)

    monkeypatch.setattr(store_module, "migrate", real_migrate)
    docs = DocumentService(settings_factory(data_dir=old_folder))
    try:
        assert docs.collections() == ["default", "reports"]
        assert meta(old_folder)["format_version"] == "4"
        assert {d.label for d in docs.documents()} == {"volcano.pdf", "bees.pdf"}
    finally:
        docs.close()


def test_a_newer_format_is_refused_with_a_sentence(old_folder, settings_factory):
    from webapp.documents.service import DocumentService

    conn = sqlite3.connect(old_folder / "store.sqlite3")
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'format_version'")
    conn.commit()
    conn.close()
    docs = DocumentService(settings_factory(data_dir=old_folder))
    assert "has format 99; this version of the app reads formats 1 to 4" in docs.available()
    assert meta(old_folder)["format_version"] == "99"  # untouched


def test_chunks_stored_with_ligatures_are_re_spelled_and_found_by_the_words_people_type(old_folder, settings_factory):
    """pypdf returns the ligature glyphs of typeset PDFs ("ﬂows", "ﬁrst"); stores written before the
    text normalisation hold them, and neither keyword search nor the embedder matched "flows"."""
    import numpy as np

    from webapp.documents.service import DocumentService

    conn = sqlite3.connect(old_folder / "store.sqlite3")
    with conn:  # as an older version wrote it: through the triggers that feed the keyword index
        row = conn.execute("SELECT document_id, page, ordinal, text, embedding FROM chunks WHERE id = 1").fetchone()
        conn.execute("DELETE FROM chunks WHERE id = 1")
        spelled = row[3].replace("flows", "\ufb02ows")
        conn.execute(
            "INSERT INTO chunks(id, document_id, page, ordinal, text, embedding) VALUES (1, ?, ?, ?, ?, ?)",
            (row[0], row[1], row[2], spelled, row[4]),
        )
        before = conn.execute("SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH '\"flows\"'").fetchall()
    conn.close()
    assert before == [(2,)]  # the chunk with the ligature is invisible to the word people type

    docs = DocumentService(settings_factory(data_dir=old_folder))
    try:
        store = docs.store
        assert docs.maintenance is not None  # beside the app: a big store takes minutes
        docs.maintenance.join(timeout=60)
        assert "1 chunks re-spelled (ligatures) and re-embedded" in docs.repairs
        assert meta(old_folder)["text_version"] == "2"
        text = store.chunks_by_id([1])[1].text
        assert "flows far" in text and "\ufb02" not in text
        cid = store.collection_id("default", create=False)
        assert sorted(store.keyword_search(cid, '"flows"', 10)) == [1, 2]
        # The vector is the embedding of the new text, and FAISS was rebuilt from it.
        vector = store.vectors_by_id([1])[1]
        assert np.allclose(vector, docs._embedder.embed_documents([text])[0], atol=1e-5)
        assert store.index_for(cid).ntotal == 2
    finally:
        docs.close()
    again = DocumentService(settings_factory(data_dir=old_folder))
    try:
        _ = again.store
        assert again.maintenance is None and not again.store.text_mend_pending()  # once per store
    finally:
        again.close()


def test_table_pieces_of_an_older_store_are_keyword_indexed_with_their_column_names_once(old_folder, settings_factory):
    """Format 4: a table piece stored before (rows naming their columns, indexed as shown by the old
    triggers) is indexed with its column names once, so it no longer outranks the prose that
    answers; the keyword index stays consistent with what it holds (FTS5's own integrity check),
    and deleting the document takes its table out of it."""
    from webapp.auth.access import Actor
    from webapp.documents.service import DocumentService

    rows = "\n".join(f"Lava: type {n} | temperature: {900 + n} | viscosity: {n}" for n in range(1, 9))
    conn = sqlite3.connect(old_folder / "store.sqlite3")
    with conn:  # as format 1-3 wrote them: through the triggers that index the text as shown
        doc_id, embedding = conn.execute(
            "SELECT c.document_id, c.embedding FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE d.label = 'volcano.pdf' LIMIT 1"
        ).fetchone()
        for n, text in enumerate(
            [f"Table 1: Lava measured on the slope.\n{rows}", "Lava temperature and viscosity vary."]
        ):
            conn.execute(
                "INSERT INTO chunks(document_id, page, ordinal, text, embedding) VALUES (?, 1, ?, ?, ?)",
                (doc_id, 10 + n, text, embedding),
            )
    conn.close()

    docs = DocumentService(settings_factory(data_dir=old_folder))
    try:
        store = docs.store
        cid = store.collection_id("default", create=False)
        found = store.keyword_search(cid, '"temperature" OR "viscosity"', 5)
        assert [store.chunks_by_id(found)[i].text for i in found] == [
            "Lava temperature and viscosity vary.",
            f"Table 1: Lava measured on the slope.\n{rows}",  # shown and stored as it was
        ]
        db = sqlite3.connect(old_folder / "store.sqlite3")
        db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")  # raises if inconsistent
        db.close()
        volcano = next(d for d in docs.documents(None, Actor("ada", "admin")) if d.label == "volcano.pdf")
        store.delete_document(volcano.id)
        assert store.keyword_search(cid, '"viscosity"', 5) == []
        db = sqlite3.connect(old_folder / "store.sqlite3")
        db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')")
        db.close()
    finally:
        docs.close()


def test_pdf_text_is_stored_with_ligatures_spelled_out():
    from webapp.rag.text_forms import normalize

    assert normalize("classi\ufb01cation e\ufb03cient \ufb02ow \U0001d465") == "classification efficient flow x"
    assert normalize("na\u00efve \u201cquotes\u201d \u03b8") == "na\u00efve \u201cquotes\u201d \u03b8"  # untouched


def test_re_spelling_stopped_half_way_finishes_at_the_next_run(old_folder, settings_factory):
    import threading

    from webapp.rag.embedder import Embedder
    from webapp.rag.store import DocumentStore
    from webapp.registry import load_entry

    conn = sqlite3.connect(old_folder / "store.sqlite3")
    with conn:
        for chunk_id in (1, 3):
            row = conn.execute(
                "SELECT document_id, page, ordinal, text, embedding FROM chunks WHERE id = ?", (chunk_id,)
            )
            doc, page, ordinal, text, vector = row.fetchone()
            conn.execute("DELETE FROM chunks WHERE id = ?", (chunk_id,))
            conn.execute(
                "INSERT INTO chunks(id, document_id, page, ordinal, text, embedding) VALUES (?, ?, ?, ?, ?, ?)",
                (chunk_id, doc, page, ordinal, text.replace("fl", "\ufb02"), vector),
            )
    conn.close()
    settings = settings_factory(data_dir=old_folder)
    embedder = Embedder(load_entry(settings.models_dir / settings.embedding_model))
    store = DocumentStore(old_folder, settings.embedding_model, embedder.dimension)
    try:
        stop = threading.Event()
        done = store.mend_text(embedder.embed_documents, batch=1, stop=stop, progress=lambda *_: stop.set())
        assert done == 1 and store.text_mend_pending()  # stopped after the first batch: not recorded
        assert store.mend_text(embedder.embed_documents, batch=1) == 1  # the other one, not both again
        assert not store.text_mend_pending()
        texts = [store.chunks_by_id([i])[i].text for i in (1, 3)]
        assert all("\ufb02" not in t for t in texts) and "flows" in texts[0] and "flowers" in texts[1]
    finally:
        store.close()
