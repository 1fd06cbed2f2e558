"""`python -m webapp migrate --to postgresql://...` (issue 28): a data folder used by one pod -
documents in two collections (one private, shared with a member), a Word file, a stored summary,
users with a session and an API token, sign-in counts, a conversation citing a document - copied
into an empty PostgreSQL (a real server, tests/conftest.py ``pg_url``) and a shared files folder.
A new replica with its own empty data folder then finds the same passages with the same ids, draws
the originals, signs the same people in and lists the same conversation. A second run into the
now-full database is refused and changes nothing."""

from __future__ import annotations

import subprocess

import pytest

from tests import office_samples as samples
from tests.conftest import webapp_command
from tests.pdfgen import make_pdf, topic_pdf
from webapp.auth.access import Actor
from webapp.auth.throttle import SigninThrottle
from webapp.auth.users import UserStore
from webapp.chat.conversations import ConversationStore
from webapp.documents.service import DocumentService

pytestmark = pytest.mark.slow  # the real embedder, a subprocess and a database

QUESTIONS = [
    "How do honey bees tell each other where flowers are?",
    "How long is the Trans-Siberian Railway?",
    "BERT-large parameters",
    "When does ice stop the turbine?",
]


def _search(docs: DocumentService, collection: str, question: str) -> list[tuple[int, int, str]]:
    return [(h.chunk_id, h.page, h.document) for h in docs.search(collection, question, k=3)]


def test_migrate_a_data_folder_into_postgres(registry_dir, settings_factory, tmp_path, pg_url):
    data, shared = tmp_path / "one-pod", tmp_path / "shared-files"
    one = DocumentService(settings_factory(data_dir=data))
    users = UserStore(data)
    ana = users.add("ana", "member", "ana's long password")
    users.add("ben", "viewer", "ben's long password")
    token = users.issue_token("ana")
    session = users.start_session(ana, 3600)
    users.close()
    one.users = UserStore(data)
    owner = Actor("ana", "member")
    one.create_collection("private", owner, visibility="shared", members=["ben"])
    bees, trains = topic_pdf(tmp_path / "bees.pdf", "bees"), topic_pdf(tmp_path / "trains.pdf", "railway")
    bert = make_pdf(tmp_path / "bert.pdf", ["Model sizes. BERTLARGE (L=24, H=1024, A=16, Total Parameters=340M)."])
    docx = samples.docx_sample(tmp_path / "report.docx")
    one.add_files("papers", [(p, p.name) for p in (bees, trains, bert)])
    one.index_queued("papers")
    one.add_files("private", [(docx, docx.name)], actor=owner)
    assert not one.index_queued("private", actor=owner).failed
    summary = one.summary(next(d for d in one.documents("papers") if d.label == "bees.pdf"))
    before = {q: _search(one, "private" if "ice" in q else "papers", q) for q in QUESTIONS}
    assert all(before.values()), before
    SigninThrottle(one.users.database).begin("ana", "10.0.0.7")  # a failed sign-in, counted
    conversations = ConversationStore(data)
    talk = conversations.create(owner, "How do bees dance?", "papers")
    conversations.append(
        owner, talk.id, "assistant", "They dance. [1]", sources=[{"n": 1, "document": "bees.pdf", "page": 1}]
    )
    conversations.close()
    # The pod was stopped while it re-indexed the Word file: it will not finish that.
    one.store.set_status(next(d.id for d in one.documents("private", owner) if d.label == "report.docx"), "embedding")
    one.users.close()
    one.close()

    run = subprocess.run(
        [*webapp_command(registry_dir, data), "migrate", "--to", pg_url, "--files-url", str(shared)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert (
        "Copied and verified" in run.stdout
        and "4 documents" in run.stdout
        and "vector(s) compared exactly" in run.stdout
    )
    assert pg_url not in run.stdout + run.stderr

    # A new replica: its own empty data folder, the database and the shared files.
    replica = DocumentService(
        settings_factory(data_dir=tmp_path / "replica", database_url=pg_url, files_url=str(shared))
    )
    replica.users = UserStore(pg_url)
    after = {q: _search(replica, "private" if "ice" in q else "papers", q) for q in QUESTIONS}
    assert after == before
    moved = {d.label: d for d in replica.documents(None)}
    assert set(moved) == {"bees.pdf", "trains.pdf", "bert.pdf", "report.docx"}
    assert [d.label for d in moved.values() if d.status != "indexed"] == ["report.docx"]
    assert moved["report.docx"].status == "failed" and "interrupted" in moved["report.docx"].reason
    for d in moved.values():
        assert replica.shared.local(replica.shared.original(d)).read_bytes() == (tmp_path / d.label).read_bytes()
    assert [e.text for e in replica.summary(moved["bees.pdf"])] == [e.text for e in summary]
    assert "private" in replica.collections(Actor("ben", "viewer"))
    assert "private" not in replica.collections(Actor("cy", "member"))
    users = UserStore(pg_url)
    assert SigninThrottle(users.database).begin("ana", "10.0.0.7").reserved  # the count came along
    assert users.user_for_token(token).name == "ana" and users.user_for_session(session).name == "ana"
    assert {u.name for u in users.list()} == {"ana", "ben"}
    users.close()
    conversations = ConversationStore(pg_url)
    assert [c.title for c in conversations.list(owner)] == ["How do bees dance?"]
    assert conversations.messages(owner, talk.id)[-1].content == "They dance. [1]"
    conversations.close()
    # New rows continue after the copied ids.
    replica.add_files("papers", [(docx, docx.name)])
    assert max(d.id for d in replica.documents(None)) > max(d.id for d in moved.values())
    replica.users.close()
    replica.close()

    again = subprocess.run(
        [*webapp_command(registry_dir, data), "migrate", "--to", pg_url], capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 2 and "already holds" in again.stderr and "empty database" in again.stderr
    wrong = subprocess.run(
        [*webapp_command(registry_dir, data), "migrate", "--to", "mysql://db/x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 2 and "postgresql://" in wrong.stderr
