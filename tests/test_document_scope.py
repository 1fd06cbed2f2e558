"""Questions about chosen documents (issue 26), through the edges a user reaches: /v1, MCP and the
CLI of a real `python -m webapp serve --auth password` with real PDFs indexed by the real CLI."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest

from tests.conftest import ROOT, running_app, webapp_command
from tests.pdfgen import make_pdf, topic_pdf
from tests.test_openai_api import _mcp, _payload

pytestmark = pytest.mark.slow

TOPICS = ("volcano", "bees", "coffee")
# A report with numbered sections and a table caption, for outlines and summaries by section.
GLACIER_PAGES = [
    "Glacier Report: Ice Loss in the Alps\n1 Introduction\nAlpine glaciers have lost about half of their\n"
    "volume since 1850 according to the measurements in this report.\nThe loss has accelerated in the last\n"
    "two decades because summers have become warmer and longer.\n2 Methods\nWe measured the thickness of\n"
    "twelve glaciers with ground penetrating radar every autumn.\nEach survey line was repeated twice to\n"
    "estimate the error of the radar measurements.",
    "Table 1: Thickness of the twelve glaciers in metres\n3 Results\nThe average thickness fell by one\n"
    "metre per year between 2000 and 2020 on the twelve glaciers.\nSmall glaciers below three thousand\n"
    "metres lost ice fastest and some of them disappeared entirely.\n4 Conclusion\nAlpine glaciers will\n"
    "keep shrinking for decades even if the climate stops warming today.\nProtecting the remaining ice\n"
    "requires cutting emissions quickly, as this report concludes.",
]


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
    pdfs.append(str(make_pdf(folder / "glacier-report.pdf", GLACIER_PAGES, title="Glacier report")))
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


def grounded(api, question: str, **extra) -> dict:
    body = {
        "model": "rag:mixed",
        "messages": [{"role": "user", "content": question}],
        "docchat": {"answer_mode": "quote", **extra},
    }
    r = v1(api, "/chat/completions", body)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_summary_is_the_documents_own_sentences_cited_by_page_and_stored(api):
    import sqlite3

    reply = grounded(api, "Summarize the glacier report")
    text = reply["choices"][0]["message"]["content"]
    grounding = reply["docchat"]
    assert text.startswith("**Summary of Glacier Report: Ice Loss in the Alps** (glacier-report.pdf)")
    assert "*1 Introduction*" in text and "*4 Conclusion*" in text  # under their section names
    assert grounding["evidence"] and {e["document"] for e in grounding["evidence"]} == {"glacier-report.pdf"}
    for n, e in enumerate(grounding["evidence"], start=1):
        assert f"“{e['text']}” [{n}] — p. {e['page']}" in text  # every sentence cites its page
    assert grounding["claims"] and all(c["supported"] for c in grounding["claims"])
    # the same summary by task and scope, and from the store the second time
    again = grounded(api, "Give me the gist", task="summarize", documents=["glacier-report.pdf"])
    assert again["choices"][0]["message"]["content"] == text
    db = sqlite3.connect(api["data"] / "store.sqlite3")
    stored = db.execute(
        "SELECT s.indexed_at = d.indexed_at FROM summaries s JOIN documents d ON d.id = s.document_id "
        "WHERE d.label = 'glacier-report.pdf'"
    ).fetchall()
    db.close()
    assert stored == [(1,)]
    # several documents and none named: a question back, not a guess
    which = grounded(api, "Summarize the paper")
    assert "Which document should I summarise?" in which["choices"][0]["message"]["content"]
    # "it" after an answer from the report is the report (its name comes from the earlier question)
    first_question = "What does the Glacier report say about ice loss?"
    first = grounded(api, first_question)["choices"][0]["message"]["content"]
    assert "glacier-report.pdf" in first
    body = {
        "model": "rag:mixed",
        "messages": [
            {"role": "user", "content": first_question},
            {"role": "assistant", "content": first},
            {"role": "user", "content": "Summarize it"},
        ],
        "docchat": {"answer_mode": "quote"},
    }
    follow = v1(api, "/chat/completions", body)
    assert follow.status_code == 200 and follow.json()["choices"][0]["message"]["content"] == text


def test_a_comparison_has_evidence_from_every_document_named(api):
    reply = grounded(api, "Compare volcano-notes and coffee-notes on pressure and temperature")
    text = reply["choices"][0]["message"]["content"]
    assert "| | volcano-notes.pdf | coffee-notes.pdf |" in text
    # the aspect as the user wrote it heads the table and its row (searched by its words)
    assert (
        text.startswith("**Pressure and temperature**, document by document:")
        and "| pressure and temperature |" in text
    )
    top = [e["document"] for e in reply["docchat"]["evidence"][:2]]
    assert set(top) == {"volcano-notes.pdf", "coffee-notes.pdf"}
    # picked documents count as named
    picked = grounded(api, "How do they differ?", task="compare", documents=["bees-notes.pdf", "coffee-notes.pdf"])
    assert {e["document"] for e in picked["docchat"]["evidence"]} == {"bees-notes.pdf", "coffee-notes.pdf"}


def test_outlines_and_the_collection_overview_come_from_the_documents_structure(api):
    outline = grounded(api, "What sections does glacier-report have?")["choices"][0]["message"]["content"]
    for line in ("- 1 Introduction (p. 1)", "- 2 Methods (p. 1)", "- 3 Results (p. 2)", "- 4 Conclusion (p. 2)"):
        assert line in outline
    tables = grounded(api, "Which tables are in glacier-report.pdf?")["choices"][0]["message"]["content"]
    assert "- Table 1 Thickness of the twelve glaciers in metres (p. 2)" in tables
    overview = grounded(api, "What is in this collection?")["choices"][0]["message"]["content"]
    assert "The collection mixed has 4 documents:" in overview
    assert "**glacier-report.pdf** — Glacier Report: Ice Loss in the Alps (2 pages)" in overview

    # MCP and the CLI take the task too
    async def calls(client):
        return await client.call_tool(
            "ask",
            {
                "collection": "mixed",
                "question": "and this one?",
                "task": "outline",
                "documents": ["glacier-report.pdf"],
            },
        )

    assert "- 3 Results (p. 2)" in _payload(_mcp(api, "ann", calls))["answer"]
    r = v1(
        api,
        "/chat/completions",
        {"model": "rag:mixed", "messages": [{"role": "user", "content": "x y z"}], "docchat": {"task": "dance"}},
    )
    assert r.status_code == 400 and "docchat.task must be one of" in r.json()["error"]["message"]
