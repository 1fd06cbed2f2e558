"""The OpenAI-compatible /v1 API of a real `python -m webapp serve --auth password`, driven with the
official `openai` client (sync and streaming), plus interop: a second DocChat uses the first as its
remote endpoint."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest

from tests.conftest import DEFAULT_LLM, ROOT, free_port, running_app, webapp_command
from tests.fault_server import FaultServer
from tests.pdfgen import topic_pdf

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fault():
    with FaultServer(token_delay_s=0.2, slow_tokens=300) as server:
        yield server


@pytest.fixture(scope="module")
def api(registry_dir, tmp_path_factory, fault):
    from webapp.auth.users import UserStore

    data = tmp_path_factory.mktemp("api-data")
    store = UserStore(data)
    tokens = {}
    for name in ("ann", "bob"):
        store.add(name, "member", f"{name}-password-1")
        tokens[name] = store.issue_token(name)
    store.close()
    pdf = topic_pdf(tmp_path_factory.mktemp("pdf") / "volcano-notes.pdf", "volcano", pages=2)
    env = {"DOCCHAT_AUTH": "password"}
    out = subprocess.run(
        [
            *webapp_command(registry_dir, data),
            "index",
            str(pdf),
            "--collection",
            "ann-docs",
            "--user",
            "ann",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, **env},
    )
    assert out.returncode == 0, out.stderr
    endpoints = json.dumps([{"name": "faulty", "base_url": fault.base_url}])
    metrics_port = free_port()
    with running_app(
        registry_dir,
        data,
        extra_env={
            **env,
            "DOCCHAT_MAX_NEW_TOKENS": "24",
            "DOCCHAT_METRICS_PORT": str(metrics_port),
            "DOCCHAT_MAX_CONCURRENT_ANSWERS": "1",
            "DOCCHAT_MAX_WAITING_ANSWERS": "0",
            "DOCCHAT_REMOTE_ENDPOINTS": endpoints,
        },
    ) as base:
        yield {"base": base, "tokens": tokens, "data": data, "metrics_port": metrics_port}


def client(api, user="ann"):
    from openai import OpenAI

    return OpenAI(base_url=api["base"] + "/v1", api_key=api["tokens"][user], max_retries=0, timeout=120)


def test_models_list_chat_models_and_the_callers_collections(api):
    ids = [m.id for m in client(api).models.list().data]
    assert DEFAULT_LLM in ids and "rag:ann-docs" in ids and "rag:default" in ids
    assert "rag:ann-docs" not in [m.id for m in client(api, "bob").models.list().data]  # ann's, private


def test_answers_sync_and_streaming_with_usage(api):
    c = client(api)
    reply = c.chat.completions.create(
        model=DEFAULT_LLM, messages=[{"role": "user", "content": "Say hello."}], max_tokens=16
    )
    assert reply.choices[0].message.role == "assistant" and reply.choices[0].message.content.strip()
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    pieces, usage, finish = [], None, None
    for chunk in c.chat.completions.create(
        model=DEFAULT_LLM,
        stream=True,
        max_tokens=16,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Name a colour."}],
    ):
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        else:
            usage = chunk.usage
    assert len([p for p in pieces if p]) >= 2 and finish in ("stop", "length")  # streamed, then finished
    assert usage is not None and usage.completion_tokens > 0


def test_a_rag_model_answers_from_the_collection_with_citations_and_evidence(api):
    reply = client(api).chat.completions.create(
        model="rag:ann-docs", max_tokens=24, messages=[{"role": "user", "content": "How do volcanoes form?"}]
    )
    extra = reply.model_extra["docchat"]
    assert extra["citations"] and extra["citations"][0]["document"] == "volcano-notes.pdf"
    assert extra["evidence"] and "magma" in extra["evidence"][0]["text"]
    assert all({"text", "supported", "source"} <= set(c) for c in extra["claims"])
    # bob may not read ann's collection: it does not exist for him.
    from openai import NotFoundError

    with pytest.raises(NotFoundError, match="There is no collection named 'ann-docs'"):
        client(api, "bob").chat.completions.create(
            model="rag:ann-docs", max_tokens=16, messages=[{"role": "user", "content": "How do volcanoes form?"}]
        )


def test_search_returns_the_cli_json(api):
    r = httpx.post(
        api["base"] + "/v1/search",
        json={"collection": "ann-docs", "query": "magma mantle", "k": 2},
        headers={"Authorization": f"Bearer {api['tokens']['ann']}"},
        timeout=60,
    )
    assert r.status_code == 200
    first = r.json()["data"][0]
    assert set(first) == {"rank", "document", "page", "where", "score", "similarity", "text"} and first["rank"] == 1
    assert first["where"] == f"p. {first['page']}"
    assert first["document"] == "volcano-notes.pdf"


def test_errors_have_the_openai_shape(api):
    from openai import AuthenticationError, BadRequestError, NotFoundError, OpenAI

    anonymous = OpenAI(base_url=api["base"] + "/v1", api_key="dct_not-a-token", max_retries=0)
    with pytest.raises(AuthenticationError):
        anonymous.models.list()
    c = client(api)
    with pytest.raises(NotFoundError, match="does not exist"):
        c.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(BadRequestError, match="The last message must come from the user"):
        c.chat.completions.create(model=DEFAULT_LLM, messages=[{"role": "assistant", "content": "hi"}])
    headers = {"Authorization": f"Bearer {api['tokens']['ann']}", "content-type": "application/json"}
    for body in (
        b"{not json",
        b'{"model": 3}',
        b'{"model": "x", "messages": "hello"}',
        b"[]",
        json.dumps({"model": DEFAULT_LLM, "messages": [{"role": "user", "content": "x" * 40_000}]}).encode(),
        json.dumps({"model": DEFAULT_LLM, "messages": [{"role": "user", "content": "hi"}], "temperature": 9}).encode(),
    ):
        r = httpx.post(api["base"] + "/v1/chat/completions", content=body, headers=headers, timeout=60)
        assert r.status_code == 400, (body[:60], r.status_code, r.text[:200])
        error = r.json()["error"]
        assert error["message"] and error["type"] == "invalid_request_error"


def test_busy_is_429_and_a_client_that_leaves_frees_its_slot(api, fault):
    from openai import RateLimitError

    c = client(api)
    fault.closed_early.clear()
    stream = c.chat.completions.create(
        model="remote:faulty/slow", stream=True, max_tokens=300, messages=[{"role": "user", "content": "Talk slowly."}]
    )
    seen = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            seen += 1
        if seen == 2:
            break
    # The one answer slot is taken (no waiting room): a second client is told at once.
    with pytest.raises(RateLimitError, match="busy"):
        c.chat.completions.create(model=DEFAULT_LLM, messages=[{"role": "user", "content": "hi"}], max_tokens=16)
    stream.close()  # the client goes away mid-answer
    # ... so DocChat stops the upstream generation (the slow server sees its stream closed) and
    # frees the slot: the next question is answered.
    assert fault.closed_early.wait(15), "the upstream stream was not closed"
    deadline = time.monotonic() + 15
    while True:
        try:
            reply = c.chat.completions.create(
                model=DEFAULT_LLM, max_tokens=16, messages=[{"role": "user", "content": "hi"}]
            )
            break
        except RateLimitError:
            assert time.monotonic() < deadline, "the slot was not freed"
            time.sleep(0.5)
    assert reply.choices[0].message.content


def test_stop_strings_end_the_answer(api):
    reply = client(api).chat.completions.create(
        model="remote:faulty/ok", stop=["three"], messages=[{"role": "user", "content": "Count."}]
    )
    assert reply.choices[0].message.content.strip() == "one two"
    assert reply.choices[0].finish_reason == "stop"


def test_docchat_is_a_remote_endpoint_for_another_docchat(api, registry_dir, tmp_path):
    key = tmp_path / "key"
    key.write_text(api["tokens"]["ann"] + "\n")
    endpoints = json.dumps([{"name": "first", "base_url": api["base"] + "/v1", "api_key_file": str(key)}])
    with running_app(registry_dir, tmp_path / "second", extra_env={"DOCCHAT_REMOTE_ENDPOINTS": endpoints}) as second:
        from openai import OpenAI

        c = OpenAI(base_url=second + "/v1", api_key="unused", max_retries=0, timeout=120)
        ids = [m.id for m in c.models.list().data]
        assert f"remote:first/{DEFAULT_LLM}" in ids and "remote:first/rag:ann-docs" in ids
        pieces = [
            ch.choices[0].delta.content or ""
            for ch in c.chat.completions.create(
                model="remote:first/rag:ann-docs",
                stream=True,
                max_tokens=16,
                messages=[{"role": "user", "content": "How do volcanoes form?"}],
            )
            if ch.choices
        ]
        assert "".join(pieces).strip()


def _mcp(api, user: str, calls):
    """Run ``calls(client)`` with the MCP SDK's own client, as ``user`` (their API token)."""
    import anyio
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async def main():
        headers = {"Authorization": f"Bearer {api['tokens'][user]}"}
        transport = streamable_http_client(api["base"] + "/mcp", http_client=create_mcp_http_client(headers=headers))
        async with Client(transport) as client:
            return await calls(client)

    return anyio.run(main)


def _payload(result):
    if result.structured_content is not None:
        return result.structured_content.get("result", result.structured_content)
    return json.loads(result.content[0].text)


def test_mcp_tools_search_and_ask_for_the_signed_in_user(api):
    async def as_ann(client):
        tools = {t.name for t in (await client.list_tools()).tools}
        found = await client.call_tool("search", {"collection": "ann-docs", "query": "magma mantle", "k": 2})
        answer = await client.call_tool(
            "ask", {"collection": "ann-docs", "question": "How do volcanoes form?", "max_tokens": 16}
        )
        listing = await client.call_tool("collections", {})
        return tools, found, answer, listing

    tools, found, answer, listing = _mcp(api, "ann", as_ann)
    assert {"collections", "search", "ask"} <= tools
    assert "ann-docs" in _payload(listing)
    passages = _payload(found)
    assert passages[0]["document"] == "volcano-notes.pdf" and passages[0]["rank"] == 1
    reply = _payload(answer)
    assert reply["citations"][0]["document"] == "volcano-notes.pdf" and reply["evidence"]
    assert isinstance(reply["answer"], str) and all("supported" in c for c in reply["claims"])

    async def as_bob(client):
        return (
            await client.call_tool("search", {"collection": "ann-docs", "query": "magma"}),
            await client.call_tool("collections", {}),
        )

    refused, listing = _mcp(api, "bob", as_bob)
    assert refused.is_error and "There is no collection named 'ann-docs'" in refused.content[0].text
    assert "ann-docs" not in _payload(listing)
    # No token, no MCP.
    r = httpx.post(api["base"] + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=30)
    assert r.status_code == 401


def test_metrics_count_answers_latency_refusals_and_ingestion_without_user_text(api):
    """Last in this module: the answers, refusals and the indexing above must show in the counters."""
    import re

    assert httpx.get(api["base"] + "/metrics", timeout=30).status_code == 401  # behind sign-in on the app port
    signed = httpx.get(
        api["base"] + "/metrics", headers={"Authorization": f"Bearer {api['tokens']['ann']}"}, timeout=30
    )
    assert signed.status_code == 200 and signed.headers["content-type"].startswith("text/plain")
    scraped = httpx.get(f"http://127.0.0.1:{api['metrics_port']}/metrics", timeout=30)  # the scraper's port
    assert scraped.status_code == 200
    text = scraped.text

    def value(name: str, **labels) -> float:
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                if all(f'{k}="{v}"' in line for k, v in labels.items()):
                    total += float(line.rsplit(" ", 1)[1])
        return total

    assert value("docchat_answers_started_total", model=DEFAULT_LLM, backend="openvino") >= 3
    assert value("docchat_answers_finished_total", model=DEFAULT_LLM, backend="openvino") >= 3
    assert value("docchat_answers_started_total", backend="remote") >= 1
    assert value("docchat_answers_refused_total", reason="busy") >= 1
    assert value("docchat_time_to_first_token_seconds_count", model=DEFAULT_LLM) >= 3
    assert value("docchat_time_per_output_token_seconds_count", model=DEFAULT_LLM) >= 1
    assert value("docchat_generated_tokens_total", model=DEFAULT_LLM) > 0
    assert value("docchat_retrieval_seconds_count") >= 1
    assert value("docchat_answer_slots") == 1 and value("docchat_answers_in_flight") == 0
    # The engine process reports its scheduler's figures: a KV cache exists, and nothing runs now.
    assert value("docchat_engine_kv_cache_bytes", model=DEFAULT_LLM) > 0
    assert 0 <= value("docchat_engine_kv_cache_usage_ratio", model=DEFAULT_LLM) <= 1
    assert value("docchat_engine_requests", model=DEFAULT_LLM, state="running") == 0
    # No user, collection, question or document in any label.
    for secret in ("ann", "bob", "ann-docs", "volcano", "How do volcanoes form", "Say hello"):
        assert not re.search(r'="[^"]*' + re.escape(secret), text), secret


def test_v1_mcp_and_the_cli_give_the_same_answer_through_one_code_path(api, registry_dir):
    """webapp/chat/answering.py is the one home: the same question gets the same answer (greedy) from
    /v1 (sync and streamed), the MCP tool and `python -m webapp ask --json`; a follow-up is
    searched with what it refers to, from the /v1 messages list and from MCP's earlier questions."""
    import os

    question = "How do volcanoes form?"
    c = client(api)
    sync = c.chat.completions.create(
        model="rag:ann-docs",
        max_tokens=64,
        messages=[{"role": "user", "content": question}],
        extra_body={"docchat": {"answer_mode": "brief"}},
    )
    v1 = sync.choices[0].message.content
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in c.chat.completions.create(
            model="rag:ann-docs",
            max_tokens=64,
            stream=True,
            messages=[{"role": "user", "content": question}],
            extra_body={"docchat": {"answer_mode": "brief"}},
        )
        if chunk.choices
    )

    async def ask(client):
        return await client.call_tool(
            "ask", {"collection": "ann-docs", "question": question, "max_tokens": 64, "answer_mode": "brief"}
        )

    mcp = _payload(_mcp(api, "ann", ask))

    def cli_ask(text: str, *options: str) -> dict:
        """``python -m webapp ask TEXT --json`` as ann, with ``options``."""
        out = subprocess.run(
            [*webapp_command(registry_dir, api["data"]), "ask", text, "--collection", "ann-docs", "--user", "ann"]
            + [*options, "--json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "DOCCHAT_AUTH": "password"},
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    cli = cli_ask(question, "--max-new-tokens", "64", "--answer-mode", "brief")
    # evidence-led: the answer opens with a quote of the best evidence, with its [n] and page
    assert v1.startswith("> “") and "[1] — volcano-notes.pdf, p." in v1
    assert v1.strip() == streamed.strip() == mcp["answer"] == cli["answer"]
    assert sync.model_extra["docchat"]["mode"] == mcp["mode"] == cli["mode"] == "brief"
    assert sync.model_extra["docchat"]["evidence"] == mcp["evidence"] == cli["evidence"]

    follow_question = "How far does their lava flow before it cools?"
    follow = c.chat.completions.create(
        model="rag:ann-docs",
        max_tokens=16,
        messages=[
            {"role": "user", "content": question},
            {"role": "assistant", "content": v1},
            {"role": "user", "content": follow_question},
        ],
        extra_body={"docchat": {"answer_mode": "quote"}},
    )
    # "they" is what the previous answer quoted: answered from its document, searched as typed
    assert follow.model_extra["docchat"]["documents"] == ["volcano-notes.pdf"]
    assert follow.model_extra["docchat"]["query"] == follow_question

    async def follow_up(client, previous_answer=None):
        return await client.call_tool(
            "ask",
            {
                "collection": "ann-docs",
                "question": follow_question,
                "previous_questions": [question],
                "answer_mode": "quote",
                **({"previous_answer": previous_answer} if previous_answer else {}),
            },
        )

    same = _payload(_mcp(api, "ann", lambda client: follow_up(client, v1)))
    assert same["answer"] == follow.choices[0].message.content
    assert (same["query"], same["documents"]) == (follow.model_extra["docchat"]["query"], ["volcano-notes.pdf"])
    later = cli_ask(follow_question, "--answer-mode", "quote", "--previous", question, "--previous-answer", v1)
    assert later["answer"] == same["answer"] and later["documents"] == ["volcano-notes.pdf"]
    # without the answer (questions only), the earlier subject's words are searched for
    assert _payload(_mcp(api, "ann", follow_up))["query"].startswith("volcanoes")
    with pytest.raises(Exception, match="answer mode must be one of"):
        c.chat.completions.create(
            model="rag:ann-docs",
            messages=[{"role": "user", "content": question}],
            extra_body={"docchat": {"answer_mode": "poem"}},
        )
