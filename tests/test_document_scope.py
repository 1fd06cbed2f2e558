"""Questions about chosen documents (issue 26), through the edges a user reaches: /v1, MCP and the
CLI of a real `python -m webapp serve --auth password` with real PDFs indexed by the real CLI."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest

from tests.conftest import ROOT, running_app, webapp_command
from tests.pdfgen import topic_pdf
from tests.test_openai_api import _mcp, _payload

pytestmark = pytest.mark.slow

TOPICS = ("volcano", "bees", "coffee")


@pytest.fixture(scope="module")
def api(registry_dir, tmp_path_factory):
    from webapp.auth.users import UserStore

    data = tmp_path_factory.mktemp("scope-data")
    store = UserStore(data)
    store.add("ann", "member", "ann-password-1")
    tokens = {"ann": store.issue_token("ann")}
    store.close()
    folder = tmp_path_factory.mktemp("pdfs")
    pdfs = [str(topic_pdf(folder / f"{t}-notes.pdf", t, pages=2)) for t in TOPICS]
    env = {**os.environ, "DOCCHAT_AUTH": "password"}
    cmd = [*webapp_command(registry_dir, data), "index", *pdfs, "--collection", "mixed", "--user", "ann"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    with running_app(registry_dir, data, extra_env={"DOCCHAT_AUTH": "password"}) as base:
        yield {"base": base, "tokens": tokens, "data": data, "registry": registry_dir}


def v1(api, path: str, body: dict) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api['tokens']['ann']}"}
    return httpx.post(api["base"] + "/v1" + path, json=body, headers=headers, timeout=120)


def ask(api, question: str, documents: list[str] | None = None, mode: str = "quote") -> httpx.Response:
    extra: dict = {"answer_mode": mode}
    if documents is not None:
        extra["documents"] = documents
    body = {"model": "rag:mixed", "messages": [{"role": "user", "content": question}], "docchat": extra}
    return v1(api, "/chat/completions", body)


def cited(reply: dict) -> set[str]:
    grounding = reply["docchat"]
    return {c["document"] for c in grounding["citations"]} | {e["document"] for e in grounding["evidence"]}


def test_v1_answers_and_searches_only_the_documents_picked(api):
    question = "How do honey bees tell each other where the flowers are?"
    whole = ask(api, question)
    assert whole.status_code == 200, whole.text
    assert "bees-notes.pdf" in cited(whole.json())
    scoped = ask(api, "Which pressure is espresso brewed at, and how do bees find flowers?", ["coffee-notes.pdf"])
    assert scoped.status_code == 200, scoped.text
    assert cited(scoped.json()) == {"coffee-notes.pdf"}
    two = ask(api, "What happens where magma reaches the surface?", ["volcano-notes.pdf", "bees-notes.pdf"])
    assert cited(two.json()) <= {"volcano-notes.pdf", "bees-notes.pdf"} and "volcano-notes.pdf" in cited(two.json())
    scope = ["bees-notes.pdf", "coffee-notes.pdf"]
    found = v1(api, "/search", {"collection": "mixed", "query": "waggle dance of honey bees", "documents": scope})
    assert found.status_code == 200 and found.json()["data"]
    assert {p["document"] for p in found.json()["data"]} == {"bees-notes.pdf"}
    # the collection's best match for this query is outside the scope: not returned
    espresso = "espresso brewed at nine bars of pressure"
    found = v1(api, "/search", {"collection": "mixed", "query": espresso, "documents": ["bees-notes.pdf"]})
    assert "coffee-notes.pdf" not in {p["document"] for p in found.json()["data"]}
    best = v1(api, "/search", {"collection": "mixed", "query": espresso}).json()["data"][0]
    assert best["document"] == "coffee-notes.pdf"


def test_an_unknown_document_is_one_sentence_not_the_whole_collection(api):
    r = ask(api, "How do volcanoes form?", ["nonexistent.pdf"])
    assert r.status_code == 400, r.text
    assert "There is no document named “nonexistent.pdf” in the collection mixed." in r.json()["error"]["message"]
    r = ask(api, "How do volcanoes form?", "volcano-notes.pdf")  # type: ignore[arg-type]  # not a list
    assert r.status_code == 400 and "list of document names" in r.json()["error"]["message"]


def test_mcp_and_the_cli_take_the_same_scope(api):
    async def calls(client):
        found = await client.call_tool(
            "search",
            {"collection": "mixed", "query": "volcanoes, magma from the mantle", "documents": ["volcano-notes.pdf"]},
        )
        answer = await client.call_tool(
            "ask",
            {
                "collection": "mixed",
                "question": "How do honey bees communicate?",
                "answer_mode": "quote",
                "documents": ["coffee-notes.pdf"],
            },
        )
        return found, answer

    found, answer = _mcp(api, "ann", calls)
    assert {p["document"] for p in _payload(found)} == {"volcano-notes.pdf"}
    reply = _payload(answer)
    assert {c["document"] for c in reply["citations"]} <= {"coffee-notes.pdf"}
    assert {e["document"] for e in reply["evidence"]} <= {"coffee-notes.pdf"}
    cmd = [
        *webapp_command(api["registry"], api["data"]),
        "search",
        "waggle dance of honey bees",
        "--collection",
        "mixed",
        "--document",
        "bees-notes.pdf",
        "--json",
        "--user",
        "ann",
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import json

    assert {p["document"] for p in json.loads(out.stdout)} == {"bees-notes.pdf"}
    out = subprocess.run(
        cmd[:-5] + ["--document", "missing.pdf", "--user", "ann"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode != 0 and "There is no document named “missing.pdf”" in out.stderr
    assert "Traceback" not in out.stderr
