"""Documents end to end with real PDFs, the real embedding model and real FAISS/SQLite files."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import CORPUS, ROOT, webapp_command
from tests.pdfgen import encrypt_pdf, make_pdf, topic_pdf
from webapp.documents.service import DocumentService
from webapp.documents.uploads import safe_label
from webapp.errors import UserError

pytestmark = pytest.mark.slow


@pytest.fixture
def docs(settings_factory, tmp_path):
    service = DocumentService(settings_factory(data_dir=tmp_path / "data", max_pages=40, max_upload_mb=2))
    yield service
    service.close()


def add_and_index(docs, collection, *paths, passwords=None):
    results = docs.add_files(collection, [(p, p.name) for p in paths])
    report = docs.index_queued(collection, passwords=passwords)
    return results, report


def status_of(docs, collection, label):
    return next(d for d in docs.documents(collection) if d.label == label)


def test_index_and_search_cites_document_and_page(docs, tmp_path):
    a = topic_pdf(tmp_path / "volcanoes.pdf", "volcano", pages=3)
    b = topic_pdf(tmp_path / "bees.pdf", "bees", pages=2)
    results, report = add_and_index(docs, "science", a, b)
    assert not report.failed and len(report.indexed) == 2 and report.pages == 5
    hits = docs.search("science", "How do honey bees tell each other where flowers are?", k=3)
    assert hits and hits[0].document == "bees.pdf" and hits[0].page in (1, 2)
    assert all(h.document == "bees.pdf" for h in hits)  # nothing about volcanoes is relevant
    # unrelated question: nothing passes the relevance bar
    assert docs.search("science", "What is the capital of Peru and its population?", k=3) == []


def test_keyword_search_finds_exact_rare_terms(docs, tmp_path):
    pdf = topic_pdf(tmp_path / "trains.pdf", "railway", pages=2, marker="Catalogue code ZX-4471-Q.")
    other = topic_pdf(tmp_path / "coffee.pdf", "coffee", pages=2)
    add_and_index(docs, "c", pdf, other)
    keyword = docs.search("c", "ZX-4471-Q", k=3, mode="keyword")
    assert keyword and keyword[0].document == "trains.pdf"
    hybrid = docs.search("c", "Which document lists catalogue code ZX-4471-Q railway?", k=2)
    assert hybrid[0].document == "trains.pdf"


def test_uploads_are_stored_by_content_and_names_are_only_labels(docs, tmp_path):
    pdf = topic_pdf(tmp_path / "x.pdf", "coffee")
    hostile = tmp_path / "copy.pdf"
    hostile.write_bytes(pdf.read_bytes())
    results = docs.add_files(
        "default",
        [(pdf, "../../etc/passwd.pdf"), (hostile, "again.pdf"), (pdf, b"caf\xe9-\xff.pdf"), (pdf, "n" * 5000 + ".pdf")],
    )
    first = results[0]
    assert first.error is None and first.label == "passwd.pdf"
    assert all(r.duplicate for r in results[1:])  # same content, recognised, not stored twice
    stored = list(docs.store.files_dir.iterdir())
    assert [p.name for p in stored] == [f"{first.document.sha256}.pdf"]
    assert not (tmp_path / "etc").exists()
    assert safe_label(b"caf\xe9-\xff.pdf") == "caf\ufffd-\ufffd.pdf"
    assert len(safe_label("n" * 5000 + ".pdf")) <= 160 and safe_label("n" * 5000 + ".pdf").endswith(".pdf")
    assert safe_label("C:\\Users\\me\\report.pdf") == "report.pdf" and safe_label("") == "document.pdf"


def test_hostile_set_each_gets_a_clear_reason_and_good_documents_survive(docs, tmp_path):
    good = topic_pdf(tmp_path / "good.pdf", "volcano")
    add_and_index(docs, "h", good)
    zero = tmp_path / "zero.pdf"
    zero.write_bytes(b"")
    renamed = tmp_path / "notes.pdf"
    renamed.write_text("just some text, not a PDF at all\n" * 20)
    truncated = tmp_path / "truncated.pdf"
    truncated.write_bytes(topic_pdf(tmp_path / "t.pdf", "bees").read_bytes()[:300])
    secret = encrypt_pdf(topic_pdf(tmp_path / "plain.pdf", "railway"), tmp_path / "secret.pdf", "hunter2")
    scanned = make_pdf(tmp_path / "scanned.pdf", [None, None])
    mixed = make_pdf(tmp_path / "mixed.pdf", ["A page about espresso crema and nine bars of pressure.", None])
    huge = make_pdf(tmp_path / "huge.pdf", [f"page {i} of a very long report" for i in range(60)])
    big = tmp_path / "big.pdf"
    big.write_bytes(b"%PDF-1.4\n" + os.urandom(3_000_000))

    results = docs.add_files(
        "h",
        [(p, p.name) for p in (zero, renamed, truncated, secret, scanned, mixed, huge, big)]
        + [(good, "../../../evil.pdf")],
    )
    refused = {r.label: r.error for r in results if r.error}
    assert "empty" in refused["zero.pdf"]
    assert "not a PDF" in refused["notes.pdf"]
    assert "limit is 2 MB" in refused["big.pdf"]
    report = docs.index_queued("h")
    reasons = {d.label: d.reason for d in report.failed}
    assert "damaged or not a valid PDF" in reasons["truncated.pdf"]
    assert "encrypted" in reasons["secret.pdf"] and "password" in reasons["secret.pdf"]
    assert "No text layer" in reasons["scanned.pdf"]
    assert "more than the limit" in reasons["huge.pdf"]
    mixed_doc = status_of(docs, "h", "mixed.pdf")
    assert mixed_doc.status == "indexed" and "page(s) 2" in mixed_doc.reason
    for reason in reasons.values():
        assert reason.endswith(".") and "\n" not in reason and "Traceback" not in reason
    # the document indexed before the bad batch is untouched and still found
    assert status_of(docs, "h", "good.pdf").status == "indexed"
    assert docs.search("h", "shield volcano basaltic lava")[0].document == "good.pdf"
    # the password unlocks the encrypted one
    secret_doc = status_of(docs, "h", "secret.pdf")
    docs.store.set_status(secret_doc.id, "queued")
    docs.index_queued("h", passwords={secret_doc.id: "wrong"})
    assert "wrong" in status_of(docs, "h", "secret.pdf").reason
    docs.store.set_status(secret_doc.id, "queued")
    docs.index_queued("h", passwords={secret_doc.id: "hunter2"})
    assert status_of(docs, "h", "secret.pdf").status == "indexed"
    assert docs.search("h", "Trans-Siberian Railway length")[0].document == "secret.pdf"


def test_delete_removes_vectors_and_rows(docs, tmp_path):
    a, b = topic_pdf(tmp_path / "a.pdf", "bees"), topic_pdf(tmp_path / "b.pdf", "coffee")
    add_and_index(docs, "d", a, b)
    doc = status_of(docs, "d", "a.pdf")
    docs.delete(doc.id)
    assert [d.label for d in docs.documents("d")] == ["b.pdf"]
    cid = docs.store.collection_id("d", create=False)
    index = docs.store.index_for(cid)
    chunks = docs.store._db().execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    assert index.ntotal == chunks == status_of(docs, "d", "b.pdf").chunks
    assert docs.search("d", "honey bee waggle dance") == []
    assert not (docs.store.files_dir / f"{doc.sha256}.pdf").exists()


def test_index_patched_in_place_equals_a_rebuild_from_sqlite(docs, tmp_path, monkeypatch):
    import faiss
    import numpy as np

    from webapp.rag.store import DocumentStore

    topics = ["bees", "volcano", "railway", "coffee"]
    add_and_index(docs, "p", *(topic_pdf(tmp_path / f"{t}.pdf", t, pages=2) for t in topics[:2]))
    full_reads = []
    original = DocumentStore._vectors
    monkeypatch.setattr(
        DocumentStore, "_vectors", lambda self, db, cid: full_reads.append(cid) or original(self, db, cid)
    )
    add_and_index(docs, "p", *(topic_pdf(tmp_path / f"{t}.pdf", t, pages=2) for t in topics[2:]))
    docs.delete(status_of(docs, "p", "volcano.pdf").id)
    docs.reindex("p")  # re-index all: old chunks stay searchable, each save patches them out and in
    docs.delete(status_of(docs, "p", "coffee.pdf").id)
    assert len(full_reads) <= 1, "adding/deleting one document should patch the index, not reread SQLite"
    store = docs.store
    cid = store.collection_id("p", create=False)
    with store.writing() as db:
        want_ids, want_vecs = original(store, db, cid)
    index = faiss.read_index(str(store.index_dir / f"{cid}.faiss"))
    have_ids = faiss.vector_to_array(index.id_map)
    assert sorted(have_ids.tolist()) == want_ids.tolist() and len(want_ids) > 0
    order = np.argsort(have_ids)
    have_vecs = np.vstack([index.index.reconstruct(int(i)) for i in order])
    assert np.array_equal(have_vecs, want_vecs)
    assert docs.search("p", "trans-siberian railway length")[0].document == "railway.pdf"
    assert all(h.document != "coffee.pdf" for h in docs.search("p", "espresso crema pressure", mode="dense"))


def test_large_collection_switches_to_hnsw_and_back(docs, tmp_path, monkeypatch):
    import faiss

    import webapp.rag.index_files as index_files
    import webapp.rag.store as store_module

    monkeypatch.setattr(index_files, "EXACT_SEARCH_LIMIT", 10)  # the real limit is 200k chunks
    reads = [0]  # full reads of a collection's vectors from SQLite = index rebuilds
    original = store_module.DocumentStore._vectors

    def counting(self, db, cid):
        reads[0] += 1
        return original(self, db, cid)

    monkeypatch.setattr(store_module.DocumentStore, "_vectors", counting)
    store = docs.store
    steps = []

    def step(*labels_or_pdfs, delete=False):
        before = reads[0]
        if delete:
            for label in labels_or_pdfs:
                docs.delete(status_of(docs, "h", label).id)
        else:
            add_and_index(docs, "h", *labels_or_pdfs)
        cid = store.collection_id("h", create=False)
        index = faiss.read_index(str(store.index_dir / f"{cid}.faiss"))
        kind = type(faiss.downcast_index(faiss.downcast_index(index).index)).__name__
        steps.append((kind, index.ntotal, reads[0] > before))

    step(topic_pdf(tmp_path / "bees.pdf", "bees", pages=4))
    step(*(topic_pdf(tmp_path / f"{t}.pdf", t, pages=4) for t in ("volcano", "railway")))
    step(topic_pdf(tmp_path / "coffee.pdf", "coffee", pages=4))
    assert docs.search("h", "espresso brewed at nine bars of pressure", k=3)[0].document == "coffee.pdf"
    step("volcano.pdf", "railway.pdf", "coffee.pdf", delete=True)
    (k1, n1, _), (k2, n2, rebuilt2), (k3, n3, rebuilt3), (k4, n4, rebuilt4) = steps
    assert (k1, k2, k3, k4) == ("IndexFlatIP", "IndexHNSWFlat", "IndexHNSWFlat", "IndexFlatIP")
    assert n1 <= 10 < n2 < n3 and n4 == n1
    assert rebuilt2 and not rebuilt3 and rebuilt4  # flat->HNSW rebuilds; an add patches HNSW; removals rebuild
    assert docs.search("h", "waggle dance of honey bees")[0].document == "bees.pdf"


def test_collections_are_separate(docs, tmp_path):
    add_and_index(docs, "one", topic_pdf(tmp_path / "bees.pdf", "bees"))
    add_and_index(docs, "two", topic_pdf(tmp_path / "coffee.pdf", "coffee"))
    assert set(docs.collections()) >= {"one", "two", "default"}
    assert docs.search("one", "espresso crema pressure") == []
    assert docs.search("two", "espresso crema pressure")[0].document == "coffee.pdf"


def test_damaged_index_is_rebuilt_from_sqlite(settings_factory, tmp_path):
    settings = settings_factory(data_dir=tmp_path / "data")
    docs = DocumentService(settings)
    add_and_index(docs, "r", topic_pdf(tmp_path / "bees.pdf", "bees"))
    cid = docs.store.collection_id("r", create=False)
    docs.close()
    (settings.data_dir / "index" / f"{cid}.faiss").write_bytes(b"garbage")
    reopened = DocumentService(settings)
    assert reopened.available() is None
    assert any("rebuilt" in r for r in reopened.repairs)
    assert reopened.search("r", "waggle dance direction of flowers")[0].document == "bees.pdf"
    reopened.close()


def test_store_refuses_a_different_embedding_model(settings_factory, tmp_path):
    from webapp.rag.store import DocumentStore, StoreError

    DocumentStore(tmp_path / "d", "model-a", 384).close()
    with pytest.raises(StoreError, match="embedded with model-a"):
        DocumentStore(tmp_path / "d", "model-b", 384)


def test_data_folder_keeps_the_embedding_model_it_was_built_with(settings_factory, tmp_path):
    # A folder built with the transformer embedder, opened later with the default (static) one:
    # vectors of two models are not comparable, so the folder's own model must be used.
    built = DocumentService(settings_factory(data_dir=tmp_path / "d", embedding_model="all-minilm-l6-v2"))
    add_and_index(built, "m", topic_pdf(tmp_path / "bees.pdf", "bees"), topic_pdf(tmp_path / "lava.pdf", "volcano"))
    built.close()
    later = DocumentService(settings_factory(data_dir=tmp_path / "d"))
    assert later.settings.embedding_model != "all-minilm-l6-v2"
    assert later.embedding_model_name() == "all-minilm-l6-v2"
    assert later.search("m", "How do bees show where the flowers are?")[0].document == "bees.pdf"
    later.close()


def test_reembed_switches_the_folder_to_another_model_and_keeps_every_document(
    settings_factory, registry_dir, tmp_path
):
    from webapp.errors import UserError

    data = tmp_path / "data"
    running = DocumentService(settings_factory(data_dir=data, embedding_model="all-minilm-l6-v2"))
    add_and_index(running, "m", topic_pdf(tmp_path / "bees.pdf", "bees"), topic_pdf(tmp_path / "lava.pdf", "volcano"))
    assert running.search("m", "waggle dance")[0].document == "bees.pdf"
    cli = [sys.executable, "-m", "webapp", "--models-dir", str(registry_dir), "--data-dir", str(data)]
    out = subprocess.run(
        cli + ["reembed", "--model", "all-minilm-l6-v2-static"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "from all-minilm-l6-v2 to all-minilm-l6-v2-static" in out.stdout
    # The app that still holds the old model must not mix two vector spaces.
    with pytest.raises(UserError, match="restart"):
        running.search("m", "waggle dance")
    running.close()
    after = DocumentService(settings_factory(data_dir=data, embedding_model="all-minilm-l6-v2"))
    assert after.embedding_model_name() == "all-minilm-l6-v2-static"
    assert {d.label for d in after.documents("m")} == {"bees.pdf", "lava.pdf"}
    assert after.store.index_for(after.store.collection_id("m")).d == 256  # static vectors, not MiniLM's 384
    assert after.search("m", "How do bees show where the flowers are?")[0].document == "bees.pdf"
    assert after.search("m", "basaltic lava of shield volcanoes")[0].document == "lava.pdf"
    with pytest.raises(UserError, match="already embedded"):
        after.reembed("all-minilm-l6-v2-static")
    with pytest.raises(UserError, match="not an embedding model"):
        after.reembed("smollm2-135m-instruct-int4")
    assert set(after.embedding_models()) >= {"all-minilm-l6-v2", "all-minilm-l6-v2-static"}
    # In the process that re-embeds (the app's Index tab), search works at once: no restart.
    assert after.reembed("all-minilm-l6-v2") == after.store.counts()["chunks"]
    assert after.search("m", "How do bees show where the flowers are?")[0].document == "bees.pdf"
    assert after.store.index_for(after.store.collection_id("m")).d == 384
    after.close()


def test_huge_vector_figures_are_skipped_and_noted(docs, tmp_path):
    from pypdf import PageObject

    # _skip_heavy_figures wraps this private pypdf hook; a pypdf upgrade that renames it
    # must fail here rather than silently make indexing slow again.
    assert callable(getattr(PageObject, "_extract_text__xform", None))
    text = "Measured throughput of the pipeline on the test machine, by batch size and thread count."
    heavy = make_pdf(tmp_path / "dense-plot.pdf", [text, text], figure=("AXISLABELHEAVY", 400_000))
    light = make_pdf(tmp_path / "small-plot.pdf", [text + " Second.", text], figure=("AXISLABELLIGHT", 4_000))
    _, report = add_and_index(docs, "f", heavy, light)
    assert not report.failed
    assert "2 very large figure(s)" in status_of(docs, "f", "dense-plot.pdf").reason
    assert status_of(docs, "f", "small-plot.pdf").reason is None
    assert [h.document for h in docs.search("f", "AXISLABELLIGHT", mode="keyword")] == ["small-plot.pdf"] * 2
    assert docs.search("f", "AXISLABELHEAVY", mode="keyword") == []  # the page text is still indexed:
    assert {h.document for h in docs.search("f", "throughput batch size", mode="keyword")} == {
        "dense-plot.pdf",
        "small-plot.pdf",
    }


def test_sigkill_mid_indexing_loses_nothing_indexed_before(settings_factory, registry_dir, tmp_path):
    data = tmp_path / "data"
    src = tmp_path / "src"
    src.mkdir()
    for i in range(10):
        topic = list(("volcano", "bees", "railway", "coffee"))[i % 4]
        topic_pdf(src / f"{i:02d}-{topic}.pdf", topic, pages=12, marker=f"Unique tag doc{i:02d}.")
    # One parser process: indexing is fast now, and the test must catch it between documents.
    proc = subprocess.Popen(
        [
            *webapp_command(registry_dir, data),
            "index",
            str(src),
            "--collection",
            "k",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "DOCCHAT_PARSE_WORKERS": "1"},
    )
    db_path = data / "store.sqlite3"
    indexed_before = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if db_path.exists():
            try:
                with sqlite3.connect(db_path, timeout=1) as db:
                    indexed_before = [r[0] for r in db.execute("SELECT label FROM documents WHERE status='indexed'")]
            except sqlite3.Error:
                pass
        if len(indexed_before) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "indexing finished before it could be killed; make the batch bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= len(indexed_before) < 10

    docs = DocumentService(settings_factory(data_dir=data))
    assert docs.available() is None
    by_label = {d.label: d for d in docs.documents("k")}
    for label in indexed_before:
        assert by_label[label].status == "indexed"
        tag = "doc" + label[:2]
        hits = docs.search("k", f"Unique tag {tag}", k=12, mode="keyword")
        assert any(h.document == label for h in hits), label
    assert all(d.status in ("indexed", "queued", "failed") for d in by_label.values())
    cid = docs.store.collection_id("k", create=False)
    chunks = (
        docs.store._db()
        .execute("SELECT COUNT(*) FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.status='indexed'")
        .fetchone()[0]
    )
    assert docs.store.index_for(cid).ntotal == chunks
    # and the rest can be finished
    report = docs.reindex("k", only_failed=True)
    assert not report.failed
    assert all(d.status == "indexed" for d in docs.documents("k"))
    docs.close()


def test_sigkill_mid_reembed_keeps_the_old_model_and_vectors(settings_factory, registry_dir, tmp_path):
    data = tmp_path / "data"
    docs = DocumentService(settings_factory(data_dir=data))  # the default static embedder
    topics = ["volcano", "bees", "railway", "coffee"] * 3
    add_and_index(
        docs,
        "r",
        *(
            topic_pdf(tmp_path / f"{i:02d}-{t}.pdf", t, pages=40, marker=f"Unique tag doc{i:02d}.")
            for i, t in enumerate(topics)
        ),
    )
    chunks = docs.store.counts()["chunks"]
    before = docs.search("r", "waggle dance of honey bees", k=3)
    docs.close()
    assert chunks > 256  # more than one re-embedding batch, so the kill lands mid-way
    # Re-embedding with the transformer takes ~15 s per batch of 256 here: kill it after the first.
    proc = subprocess.Popen(
        [
            *webapp_command(registry_dir, data),
            "reembed",
            "--model",
            "all-minilm-l6-v2",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = ""
    while "re-embedded 256/" not in seen and proc.poll() is None:
        seen += proc.stderr.read(1)
    assert proc.poll() is None, f"re-embedding ended before it could be killed: {seen[-500:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    reopened = DocumentService(settings_factory(data_dir=data, embedding_model="all-minilm-l6-v2"))
    assert reopened.embedding_model_name() == "all-minilm-l6-v2-static"  # the transaction never committed
    index = reopened.store.index_for(reopened.store.collection_id("r", create=False))
    assert index.ntotal == chunks and index.d == 256
    after = reopened.search("r", "waggle dance of honey bees", k=3)
    assert [(h.document, h.page) for h in after] == [(h.document, h.page) for h in before]
    reopened.close()


def test_cli_and_service_share_a_data_folder(settings_factory, registry_dir, tmp_path):
    data = tmp_path / "data"
    docs = DocumentService(settings_factory(data_dir=data))
    add_and_index(docs, "shared", topic_pdf(tmp_path / "bees.pdf", "bees"))
    docs.close()
    cli = [sys.executable, "-m", "webapp", "--models-dir", str(registry_dir), "--data-dir", str(data)]
    out = subprocess.run(
        cli + ["index", str(topic_pdf(tmp_path / "coffee.pdf", "coffee")), "--collection", "shared"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    out = subprocess.run(
        cli + ["search", "How is espresso brewed?", "--collection", "shared", "--k", "3", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    hits = json.loads(out.stdout)
    assert hits[0]["document"] == "coffee.pdf" and hits[0]["page"] >= 1 and hits[0]["score"] > 0
    out = subprocess.run(
        cli + ["search", "waggle dance", "--collection", "shared", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert json.loads(out.stdout)[0]["document"] == "bees.pdf"  # indexed by the service, found by the CLI
    docs = DocumentService(settings_factory(data_dir=data))
    assert {d.label for d in docs.documents("shared")} == {"bees.pdf", "coffee.pdf"}
    docs.close()
    out = subprocess.run(
        cli + ["search", "x", "--collection", "nope"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 2 and "no collection named 'nope'" in out.stderr


@pytest.mark.skipif(not (CORPUS / "pdf-samples").is_dir(), reason="../shared/corpus is absent")
def test_every_sample_pdf_indexes_or_fails_with_a_reason(settings_factory, tmp_path):
    docs = DocumentService(settings_factory(data_dir=tmp_path / "samples"))  # default limits
    samples = sorted((CORPUS / "pdf-samples").glob("*.pdf"))
    results = docs.add_files("samples", [(p, p.name) for p in samples])
    assert not [r for r in results if r.error]
    report = docs.index_queued("samples")
    assert len(report.indexed) + len(report.failed) == len(samples)
    assert len(report.indexed) >= len(samples) // 2
    for d in report.failed:
        assert d.reason and d.reason.endswith(".") and "\n" not in d.reason
    by_label = {d.label: d for d in docs.documents("samples")}
    assert "encrypted" in by_label["005-libreoffice-writer-password__libreoffice-writer-password.pdf"].reason
    assert by_label["015-arabic__habibi.pdf"].status == "indexed"
    assert "No text layer" in by_label["007-imagemagick-images__imagemagick-images.pdf"].reason
    docs.close()


def test_backup_export_import_roundtrip_and_hostile_archive(settings_factory, registry_dir, tmp_path):
    import tarfile

    from tests.office_samples import DOCX_PHRASES, docx_sample

    src = DocumentService(settings_factory(data_dir=tmp_path / "src"))
    add_and_index(src, "b", topic_pdf(tmp_path / "bees.pdf", "bees"), topic_pdf(tmp_path / "coffee.pdf", "coffee"))
    add_and_index(src, "w", docx_sample(tmp_path / "turbine.docx"))  # every format's original is kept
    src.close()
    cli = [sys.executable, "-m", "webapp", "--models-dir", str(registry_dir)]
    archive = tmp_path / "backup.tar.gz"
    out = subprocess.run(
        cli + ["--data-dir", str(tmp_path / "src"), "backup", "export", str(archive)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "exported 3 documents" in out.stdout, out.stderr
    out = subprocess.run(
        cli + ["--data-dir", str(tmp_path / "restored"), "backup", "import", str(archive)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    restored = DocumentService(settings_factory(data_dir=tmp_path / "restored"))
    assert restored.search("b", "espresso crema pressure")[0].document == "coffee.pdf"  # index rebuilt
    turbine = restored.documents("w")[0]
    assert restored.store.original_path(turbine).is_file() and turbine.format == "docx"
    assert restored.search("w", DOCX_PHRASES[1][0])[0].where == DOCX_PHRASES[1][1]
    restored.close()
    out = subprocess.run(
        cli + ["--data-dir", str(tmp_path / "restored"), "backup", "import", str(archive)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "already holds a document store" in out.stderr
    evil = tmp_path / "evil.tar.gz"
    payload = tmp_path / "payload"
    payload.write_text("x")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(payload, arcname="../../escape.txt")
        tar.add(payload, arcname="store.sqlite3")
    out = subprocess.run(
        cli + ["--data-dir", str(tmp_path / "other"), "backup", "import", str(evil)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "not a DocChat backup" in out.stderr
    assert not (tmp_path.parent / "escape.txt").exists() and not (tmp_path / "other" / "store.sqlite3").exists()


def test_reindex_refused_while_another_run_holds_the_lock_changes_nothing(docs, tmp_path):
    pdf = topic_pdf(tmp_path / "bees.pdf", "bees", pages=2)
    add_and_index(docs, "r", pdf)
    question = "How do honey bees tell each other where flowers are?"
    assert docs.search("r", question)
    started, release = threading.Event(), threading.Event()

    def slow_progress(fraction, what):  # another run, paused while it holds the indexing lock
        started.set()
        release.wait(30)

    other = topic_pdf(tmp_path / "volcano.pdf", "volcano", pages=2)
    docs.add_files("r", [(other, other.name)])
    runner = threading.Thread(target=lambda: docs.index_queued("r", progress=slow_progress))
    runner.start()
    try:
        assert started.wait(30)
        for attempt in (
            lambda: docs.reindex("r"),
            lambda: docs.reindex("r", only_failed=True),
            lambda: docs.reindex("r", [status_of(docs, "r", "bees.pdf").id], passwords={1: "x"}),
        ):
            with pytest.raises(UserError, match="already running"):
                attempt()
        assert status_of(docs, "r", "bees.pdf").status == "indexed"  # not left queued
        assert docs.search("r", question)  # the collection did not vanish from chat
    finally:
        release.set()
        runner.join(60)
    assert status_of(docs, "r", "volcano.pdf").status == "indexed"


def test_old_chunks_stay_searchable_until_the_new_ones_commit(docs, tmp_path):
    pdf = topic_pdf(tmp_path / "bees.pdf", "bees", pages=3)
    add_and_index(docs, "s", pdf)
    question = "How do honey bees tell each other where flowers are?"
    before = docs.search("s", question)
    seen_during = []

    def progress(fraction, what):
        if "bees.pdf" in what and fraction < 1:
            seen_during.append((status_of(docs, "s", "bees.pdf").status, len(docs.search("s", question))))

    report = docs.reindex("s", progress=progress)
    assert len(report.indexed) == 1
    statuses = {status for status, _ in seen_during}
    assert statuses & {"queued", "parsing", "embedding"}, seen_during  # we did look mid-run
    assert all(found == len(before) for _, found in seen_during), seen_during
    # a retry that fails (wrong password on a plain PDF is ignored, so: delete the file under it)
    docs.store.files_dir.joinpath(f"{status_of(docs, 's', 'bees.pdf').sha256}.pdf").unlink()
    report = docs.reindex("s")
    assert report.failed and status_of(docs, "s", "bees.pdf").status == "failed"
    assert len(docs.search("s", question)) == len(before)  # still answerable from the last good index


def test_delete_during_indexing_is_that_documents_outcome_not_a_batch_failure(docs, tmp_path):
    names = ["bees", "volcano", "railway", "coffee"]
    pdfs = [topic_pdf(tmp_path / f"{n}.pdf", n, pages=3) for n in names]
    docs.add_files("d", [(p, p.name) for p in pdfs])
    victim = status_of(docs, "d", "volcano.pdf")
    deleted = []

    def progress(fraction, what):
        # Another user deletes the document while it is being read/embedded (their own thread).
        if what.startswith("volcano.pdf") and not deleted:
            t = threading.Thread(target=lambda: deleted.append(docs.delete(victim.id)))
            t.start()
            t.join(30)

    report = docs.index_queued("d", progress=progress)
    assert deleted and report.deleted == ["volcano.pdf"]
    assert sorted(d.label for d in report.indexed) == ["bees.pdf", "coffee.pdf", "railway.pdf"]
    assert not report.failed
    left = docs.documents("d")
    assert all(d.status == "indexed" for d in left) and "volcano.pdf" not in {d.label for d in left}
    cid = docs.store.collection_id("d", create=False)
    total = sum(d.chunks for d in left)
    assert docs.store.index_for(cid).ntotal == total  # FAISS agrees with SQLite
    assert "deleted while indexing: volcano.pdf" in report.summary()


def test_an_upload_naming_no_collection_goes_to_the_users_own_private_one(docs, tmp_path):
    """A member with no collection gets a private one made on the spot ("<name>-documents"), the
    next upload goes there too, a name taken elsewhere is stepped over, and a viewer may not."""
    from webapp.auth.access import Actor

    bob = Actor("bob", "member")
    docs.create_collection("bob-documents", Actor("ann", "member"), "private")  # taken by someone else
    first = docs.upload_collection(bob)
    assert first == "bob-documents-2"
    access = next(c for c in docs.collection_access(bob) if c.name == first)
    assert access.visibility == "private" and access.owner == "bob"
    assert docs.upload_collection(bob) == first  # made once, then reused
    pdf = topic_pdf(tmp_path / "coffee.pdf", "coffee", pages=1)
    assert [r.error for r in docs.add_files(first, [(pdf, "coffee.pdf")], bob)] == [None]
    assert first not in docs.collections(Actor("vic", "viewer"))
    with pytest.raises(UserError):
        docs.upload_collection(Actor("vic", "viewer"))


def test_a_collection_made_by_another_process_meanwhile_is_used_not_refused(docs, monkeypatch):
    """`index --collection new` run twice at once (or on two replicas): both see no collection, one
    creates it, the other's creation fails; that one then uses the collection instead of stopping
    with "already exists". A name it may not read is still refused."""
    from webapp.auth.access import Actor

    store = docs.store
    store.create_collection("team", owner=None, visibility="everyone")  # made by "the other process"
    real = store.collection_access
    stale = iter([[], []])  # this process's two looks before creating saw no such collection
    monkeypatch.setattr(store, "collection_access", lambda: next(stale, real()))
    assert docs.collection_to_manage("team", create=True) == "team"
    store.create_collection("hidden", owner="ana", visibility="private")
    stale = iter([[], []])
    with pytest.raises(UserError):
        docs.collection_to_manage("hidden", Actor("bob", "member"), create=True)
