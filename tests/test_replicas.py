"""Two real app processes (`python -m webapp serve`) on one PostgreSQL, as two replicas behind a load
balancer: whoever signs in through one is signed in through the other, a token issued through
one works on the other, a sign-out or a revocation anywhere holds everywhere, and a user's
conversations are listed by both; a document uploaded through one is searched and answered from
through the other, and when one dies in the middle of an ingestion the other finishes it. Each
process has its own data folder: nothing is shared but DOCCHAT_DATABASE_URL and DOCCHAT_FILES_URL."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack

import httpx
import pytest

from tests.conftest import running_app
from tests.pdfgen import make_pdf, topic_pdf
from tests.test_auth import Api, sign_in, text_of
from webapp.auth.access import Actor
from webapp.auth.users import UserStore
from webapp.chat.conversations import ConversationStore

pytestmark = pytest.mark.slow  # two app processes


def test_two_replicas_share_sign_ins_tokens_and_conversations(registry_dir, tmp_path, pg_url):
    store = UserStore(pg_url)
    store.add("ana", "member", "ana's long password")
    store.close()
    env = {"DOCCHAT_AUTH": "password", "DOCCHAT_DATABASE_URL": pg_url, "DOCCHAT_SIGNIN_MAX_FAILURES": "2"}
    with ExitStack() as stack:
        one, two = (stack.enter_context(running_app(registry_dir, tmp_path / name, env)) for name in ("one", "two"))

        signed_in = sign_in(one, "ana", "ana's long password")
        assert signed_in.status_code == 303
        cookie = {"docchat_session": signed_in.cookies["docchat_session"]}
        assert httpx.get(two + "/config", cookies=cookie, timeout=30).status_code == 200
        httpx.post(two + "/auth/logout", cookies=cookie, timeout=30)
        assert httpx.get(one + "/config", cookies=cookie, timeout=30).status_code == 401

        store = UserStore(pg_url)  # as `python -m webapp users token` on a third machine
        token = store.issue_token("ana")
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.get(one + "/config", headers=bearer, timeout=30).status_code == 200
        store.revoke_tokens("ana")
        store.close()
        assert httpx.get(two + "/config", headers=bearer, timeout=30).status_code == 401

        conversations, store = ConversationStore(pg_url), UserStore(pg_url)
        conversations.create(Actor("ana", "member"), "A question asked through replica one", None)
        token = store.issue_token("ana")
        conversations.close()
        store.close()
        assert "A question asked through replica one" in text_of(Api(two, token).result("on_load", []))

        # Failed sign-ins count across replicas: the third wrong password is delayed wherever it arrives.
        assert sign_in(one, "ana", "wrong password 1").status_code == 401
        assert sign_in(two, "ana", "wrong password 2").status_code == 401
        assert sign_in(one, "ana", "wrong password 3").status_code == 429
    for name in ("one", "two"):
        assert pg_url not in (tmp_path / name / "server.log").read_text()


def _status(pg_url: str, label: str) -> dict | None:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(pg_url, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT id, status, chunks, claimed_by, attempts, (SELECT count(*) FROM documents d2 "
            "WHERE d2.label = d.label) AS copies, (SELECT count(*) FROM chunks c WHERE c.document_id = d.id) "
            "AS rows, (SELECT count(DISTINCT (page, ordinal)) FROM chunks c WHERE c.document_id = d.id) AS places "
            "FROM documents d WHERE label = %s",
            (label,),
        ).fetchone()


def test_documents_across_replicas_and_a_replica_killed_mid_ingestion(registry_dir, tmp_path, pg_url):
    """Upload through replica one; search and a grounded answer through replica two. Then replica
    one is killed (SIGKILL, as an OOM kill or a node loss) while it indexes a long document:
    replica two's job watcher takes the document over once one's lease runs out and indexes it
    once: one document row, each chunk once, searchable through two."""
    users = UserStore(pg_url)
    users.add("ana", "admin", "ana's long password")
    token = users.issue_token("ana")
    users.close()
    env = {
        "DOCCHAT_AUTH": "password",
        "DOCCHAT_DATABASE_URL": pg_url,
        "DOCCHAT_FILES_URL": str(tmp_path / "shared-files"),
        "DOCCHAT_JOB_LEASE_S": "4",
    }
    small = topic_pdf(tmp_path / "bees.pdf", "bees", marker="Replica marker 5081.")
    pages = [
        f"Page {n} of the long report. Turbine {n} was inspected on day {n}; its blades were sound."
        for n in range(1, 401)
    ]
    pages[366] += " The inspector of turbine 367 was Ada Quillfeather."
    long = make_pdf(tmp_path / "long-report.pdf", pages, title="long report")
    processes: list = []
    bearer = {"Authorization": f"Bearer {token}"}

    def search(base: str, query: str) -> list[dict]:
        body = {"collection": "default", "query": query, "k": 3}
        return httpx.post(base + "/v1/search", headers=bearer, json=body, timeout=60).json()["data"]

    with ExitStack() as stack:
        one, two = (
            stack.enter_context(running_app(registry_dir, tmp_path / name, env, processes=processes))
            for name in ("one", "two")
        )
        status, events = Api(one, token).upload("default", small)
        assert status == 200 and "Indexed 1 document" in str(events[-1]), events[-1:]
        found = search(two, "Replica marker 5081")
        assert found and found[0]["document"] == "bees.pdf", found
        reply = httpx.post(
            two + "/v1/chat/completions",
            headers=bearer,
            json={
                "model": "rag:default",
                "messages": [{"role": "user", "content": "How do honey bees communicate the direction of flowers?"}],
                "docchat": {"answer_mode": "quote"},
            },
            timeout=120,
        ).json()
        assert any(c["document"] == "bees.pdf" for c in reply["docchat"]["citations"]), (
            reply["choices"],
            reply["docchat"],
        )

        # Admission is per replica, and each replica's /metrics shows its own: the answer went to two.
        def answered(base: str) -> float:
            text = httpx.get(base + "/metrics", headers=bearer, timeout=30).text
            assert "docchat_answer_slots" in text
            return sum(
                float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith("docchat_retrieval_seconds_count")
            )

        assert answered(two) >= 1 and answered(one) == 0

        # The long document is indexed by replica one until it is killed mid-way.
        threading.Thread(target=lambda: _ignore_errors(Api(one, token).upload, "default", long), daemon=True).start()
        deadline = time.monotonic() + 120
        while (row := _status(pg_url, long.name)) is None or row["status"] not in ("parsing", "embedding"):
            assert time.monotonic() < deadline, row
            time.sleep(0.05)
        processes[0].kill()
        processes[0].wait(timeout=30)
        killed_while = row["status"]
        deadline = time.monotonic() + 180
        while (row := _status(pg_url, long.name))["status"] != "indexed":
            assert time.monotonic() < deadline and row["status"] != "failed", row
            time.sleep(0.5)
        assert row["copies"] == 1 and row["rows"] == row["chunks"] == row["places"] > 0, row
        assert row["claimed_by"] is None, row
        found = search(two, "Who inspected turbine 367?")
        assert any(hit["page"] == 367 for hit in found), found
    log_two = (tmp_path / "two" / "server.log").read_text()
    assert "taken over" in log_two and "taken-over indexing" in log_two, (killed_while, log_two[-3000:])


def _ignore_errors(call, *args) -> None:
    try:
        call(*args)
    except Exception:  # the server it talks to is killed: that is the point
        pass
