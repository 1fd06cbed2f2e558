"""Sync (issue 25): a collection kept equal to a real folder and to a bucket of a real GCS-API
server (fake-gcs-server, tests/conftest.py), indexed with the real embedding model.

The measure: 200 files synced, then 10 changed, 5 deleted and 5 added; the second run reads only
those 15 files (plus 5 removals), leaves the other 185 alone (same document ids, not re-indexed) and
the collection ends equal to the source, counted by (source key, sha256)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import ROOT, gcs_client
from tests.office_samples import docx_sample
from tests.pdfgen import make_pdf
from webapp.documents.service import DocumentService
from webapp.documents.sync import FolderSource, SyncService
from webapp.errors import UserError

pytestmark = pytest.mark.slow

WORDS = "granite basalt quartz feldspar mica olivine pyroxene garnet zircon topaz beryl".split()


@pytest.fixture
def docs(settings_factory, tmp_path):
    service = DocumentService(settings_factory(data_dir=tmp_path / "data", max_upload_mb=2, sync_folders=str(tmp_path)))
    yield service
    service.close()


def text_for(n: int, version: int = 0) -> str:
    w = WORDS[n % len(WORDS)]
    return f"Note {n} (version {version}). The {w} sample number {n} was logged in drawer {n * 7 + version}.\n"


def write_file(folder: Path, n: int, version: int = 0) -> Path:
    """File ``n`` of a generated source: mostly text and Markdown, a PDF every 25th, in sub-folders."""
    sub = folder / f"shelf-{n % 4}"
    sub.mkdir(parents=True, exist_ok=True)
    if n % 25 == 3:
        return make_pdf(sub / f"report-{n}.pdf", [text_for(n, version), f"Appendix of report {n}, v{version}."])
    if n % 2:
        path = sub / f"note-{n}.md"
        path.write_text(f"# Note {n}\n\n{text_for(n, version)}")
    else:
        path = sub / f"note-{n}.txt"
        path.write_text(text_for(n, version))
    return path


def make_source(folder: Path, count: int = 200) -> dict[int, Path]:
    """``count`` files: generated ones, one real Word document and one damaged .docx among them."""
    files = {n: write_file(folder, n) for n in range(count - 2)}
    files[count - 2] = docx_sample(folder / "handbook.docx")
    damaged = folder / "broken.docx"
    damaged.write_bytes(files[count - 2].read_bytes()[:2000])  # a zip cut short: stored, unreadable
    files[count - 1] = damaged
    return files


def folder_state(folder: Path) -> set[tuple[str, str]]:
    return {
        (p.relative_to(folder).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest())
        for p in folder.rglob("*")
        if p.is_file()
    }


def collection_state(docs: DocumentService, name: str) -> set[tuple[str, str]]:
    return {(d.source_key, d.sha256) for d in docs.documents(name) if d.source_key is not None}


def change_the_source(files: dict[int, Path], folder: Path) -> tuple[list[int], list[int], list[int]]:
    """10 changed (two of them PDFs), 5 deleted, 5 added."""
    changed = [0, 1, 3, 28, 40, 41, 77, 100, 150, 195]
    deleted = [2, 5, 53, 120, 190]
    for n in changed:
        write_file(folder, n, version=1)
    for n in deleted:
        files.pop(n).unlink()
    added = list(range(1000, 1005))
    for n in added:
        files[n] = write_file(folder, n)
    return changed, deleted, added


def check_the_measure(sync: SyncService, docs: DocumentService, name: str, folder: Path, url: str, files, mirror=None):
    """``mirror``: makes the source equal to ``folder`` again after the folder changed (a bucket)."""
    first = sync.run(name, url, operator=True)
    assert first.error is None, first.error
    assert len(first.added) == 199 and first.fetched == 200 and not first.updated and not first.removed
    assert [k for k, _ in first.failed] == ["broken.docx"]
    assert "damaged or not a valid Word document" in first.failed[0][1]  # one sentence, the run went on
    assert collection_state(docs, name) == folder_state(folder)
    before = {d.source_key: d for d in docs.documents(name)}

    changed, deleted, added = change_the_source(files, folder)
    if mirror:
        mirror()
    second = sync.run(name, url, operator=True)
    assert second.error is None and not second.failed
    assert (len(second.added), len(second.updated), len(second.removed), second.unchanged) == (5, 10, 5, 185)
    assert second.fetched == 15  # only the changed and the new files were read (or downloaded)
    keys = {n: files[n].relative_to(folder).as_posix() for n in files}
    assert sorted(second.updated) == sorted(keys[n] for n in changed)
    assert sorted(second.added) == sorted(keys[n] for n in added)
    assert collection_state(docs, name) == folder_state(folder)
    after = {d.source_key: d for d in docs.documents(name)}
    untouched = [k for k in after if k in before and k not in second.updated]
    assert len(untouched) == 185
    # Untouched documents are the very same rows, not indexed again.
    assert all((after[k].id, after[k].indexed_at) == (before[k].id, before[k].indexed_at) for k in untouched)
    assert all(after[k].status == "indexed" for k in after if k != "broken.docx")
    hits = docs.search(name, "In which drawer was sample number 1000 logged?", k=3, mode="keyword")
    assert hits and hits[0].document == "note-1000.txt"

    third = sync.run(name)  # by the recorded source, as the app's schedule runs it (DOCCHAT_SYNC_FOLDERS)
    assert third.error is None, third.error
    assert (third.fetched, len(third.added), len(third.updated), len(third.removed), third.unchanged) == (0, 0, 0, 0, 200)
    assert third.still_failed == 1  # broken.docx, listed as failed in the first run, is not re-read

    recorded = sync.status(name)
    assert recorded is not None and recorded.url == url and recorded.result["counts"]["unchanged"] == 200


def test_folder_sync_touches_only_what_changed_and_ends_equal_to_the_folder(docs, tmp_path):
    folder = tmp_path / "source"
    files = make_source(folder)
    check_the_measure(SyncService(docs), docs, "shelf", folder, str(folder.resolve()), files)


def mirror_to_bucket(client, bucket_name: str, folder: Path, prefix: str) -> None:
    """The bucket made equal to the folder: what changed uploaded again (a new generation), the rest left."""
    bucket = client.bucket(bucket_name)
    present = {b.name: b for b in client.list_blobs(bucket_name, prefix=prefix + "/")}
    wanted = set()
    for p in folder.rglob("*"):
        if p.is_file():
            name = f"{prefix}/{p.relative_to(folder).as_posix()}"
            wanted.add(name)
            data = p.read_bytes()
            blob = present.get(name)
            if blob is None or blob.md5_hash != base64.b64encode(hashlib.md5(data).digest()).decode():
                bucket.blob(name).upload_from_string(data)
    for name in set(present) - wanted:
        bucket.blob(name).delete()


def test_bucket_sync_downloads_only_new_generations_and_ends_equal_to_the_bucket(docs, tmp_path, gcs):
    client = gcs_client(gcs)
    client.create_bucket("team-docs")
    folder = tmp_path / "source"
    files = make_source(folder)
    mirror = lambda: mirror_to_bucket(client, "team-docs", folder, "library")  # noqa: E731
    mirror()
    sync = SyncService(docs, client_factory=lambda: client)
    check_the_measure(sync, docs, "bucket", folder, "gs://team-docs/library", files, mirror)
