"""Originals and OCR word boxes where every replica sees them (issue 28: DOCCHAT_FILES_URL), against
a real GCS-API server (fake-gcs-server) and a shared folder: a replica with an empty cache fetches
what another stored, a delete removes the file everywhere, hostile names never reach the bucket."""

from __future__ import annotations

import pytest

from tests.conftest import gcs_client
from tests.pdfgen import make_pdf
from webapp.documents.service import DocumentService
from webapp.documents.shared_files import SharedFiles
from webapp.errors import UserError

pytestmark = pytest.mark.slow


@pytest.fixture
def bucket(gcs, monkeypatch, request):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test")
    name = "shared-" + request.node.name.lower().replace("_", "-")[:40]
    gcs_client(gcs).create_bucket(name)
    return name


def _blobs(gcs, bucket):
    return sorted(b.name for b in gcs_client(gcs).list_blobs(bucket))


def test_a_replica_with_an_empty_cache_fetches_what_another_stored(gcs, bucket, tmp_path):
    sha = "a" * 64
    one = SharedFiles(tmp_path / "one", f"gs://{bucket}/docs", client=gcs_client(gcs))
    (one.root / "files").mkdir(parents=True)
    (one.root / f"files/{sha}.pdf").write_bytes(b"%PDF-1.4 shared")
    one.publish(f"files/{sha}.pdf")
    one.publish(f"files/{sha}.pdf")  # content-addressed: a second publish is a no-op, not an error
    assert _blobs(gcs, bucket) == [f"docs/files/{sha}.pdf"]
    two = SharedFiles(tmp_path / "two", f"gs://{bucket}/docs", client=gcs_client(gcs))
    assert two.local(f"files/{sha}.pdf").read_bytes() == b"%PDF-1.4 shared"  # fetched into its cache
    assert not two.local(f"ocr/{'b' * 64}.json").exists()  # never stored: a missing path, no error
    two.remove(f"files/{sha}.pdf")
    assert _blobs(gcs, bucket) == [] and not (two.root / f"files/{sha}.pdf").exists()
    for hostile in ("../../etc/passwd", "files/../../x.pdf", f"files/{sha}.pdf/../x", "store.sqlite3"):
        with pytest.raises(ValueError):
            two.local(hostile)


def test_documents_stored_in_a_bucket_are_indexed_drawn_served_and_deleted_everywhere(
    gcs, bucket, settings_factory, tmp_path
):
    pdf = make_pdf(tmp_path / "rota.pdf", ["The night shift rota changes every second Monday at noon."])
    docs = DocumentService(settings_factory(data_dir=tmp_path / "data", files_url=f"gs://{bucket}/team"))
    try:
        [result] = docs.add_files("default", [(pdf, pdf.name)])
        doc = result.document
        assert _blobs(gcs, bucket) == [f"team/files/{doc.sha256}.pdf"]
        # Another replica's view: nothing cached locally; indexing, the page image and the original
        # fetch the file from the bucket.
        (tmp_path / "data" / "files" / f"{doc.sha256}.pdf").unlink()
        report = docs.index_queued("default")
        assert [d.label for d in report.indexed] == ["rota.pdf"], report.summary()
        (tmp_path / "data" / "files" / f"{doc.sha256}.pdf").unlink()
        image = docs.page_image(doc.id, 1, "second Monday at noon")
        assert image.matched > 0.9
        _, path = docs.original(doc.id)
        assert path.read_bytes() == pdf.read_bytes()
        docs.delete(doc.id)
        assert _blobs(gcs, bucket) == []
    finally:
        docs.close()


def test_a_shared_folder_holds_the_originals_instead_of_the_data_folder(settings_factory, tmp_path):
    pdf = make_pdf(tmp_path / "menu.pdf", ["On Fridays the cafeteria serves fish and chips."])
    shared = tmp_path / "shared"
    docs = DocumentService(settings_factory(data_dir=tmp_path / "data", files_url=str(shared)))
    try:
        [result] = docs.add_files("default", [(pdf, pdf.name)])
        assert (shared / "files" / f"{result.document.sha256}.pdf").is_file()
        assert not any((tmp_path / "data" / "files").glob("*.pdf"))
        assert not docs.index_queued("default").failed
        assert docs.search("default", "What does the cafeteria serve on Fridays?")[0].document == "menu.pdf"
    finally:
        docs.close()


def test_a_bucket_that_cannot_be_reached_is_one_sentence_and_stores_nothing(settings_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test")
    pdf = make_pdf(tmp_path / "x.pdf", ["Some text for a document that cannot be shared."])
    docs = DocumentService(settings_factory(data_dir=tmp_path / "data", files_url="gs://nowhere/docs"))
    try:
        [result] = docs.add_files("default", [(pdf, pdf.name)])
        assert result.error == "The file could not be stored in shared storage; try again."
        assert docs.documents("default") == []
    finally:
        docs.close()
    with pytest.raises(UserError):
        SharedFiles(tmp_path, "gs:///no-bucket")
