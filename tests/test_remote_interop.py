"""The remote backend against a real OpenAI-compatible server process: llama-cpp-python's server
serving the SmolLM2 GGUF (OVMS itself cannot be installed here; it speaks the same protocol)."""

import pytest

from webapp.chat.answering import Question
from webapp.errors import BackendError
from webapp.llm.base import CancelToken, ChatMessage, ChatStream, GenerationParams
from webapp.llm.openai_remote import RemoteChatBackend, RemoteServer
from webapp.settings import RemoteEndpoint

pytestmark = [pytest.mark.slow, pytest.mark.interop]


def remote(llama_server, key_file=None, model="smollm2"):
    ep = RemoteEndpoint(name="llama", base_url=llama_server["base_url"], api_key_file=key_file, read_timeout_s=60)
    return RemoteChatBackend(RemoteServer(ep), model)


def test_lists_models_and_streams_a_chat(llama_server, key_file):
    backend = remote(llama_server, key_file)
    assert "smollm2" in backend.server.list_models()
    stream = ChatStream(
        backend.stream(
            [ChatMessage("user", "What is the capital of France?")],
            GenerationParams(max_new_tokens=48, temperature=0.0),
            CancelToken(),
        )
    )
    pieces = list(stream)
    # Protocol and structure only: what a 135M model says differs between CPUs (on an AVX-512
    # machine it named "L'Etoile, la Cite..." the capital of France), so no assertion on words.
    assert "".join(pieces).strip() and len(pieces) > 3  # streamed in pieces
    assert stream.stats.finish_reason in ("stop", "length")
    assert stream.stats.ttft_s is not None and stream.stats.total_s >= stream.stats.ttft_s
    # llama-cpp-python's server ignores stream_options.include_usage (OVMS honours it, and the fault
    # server's test checks that usage is read); without usage, completion tokens = streamed pieces.
    assert stream.stats.completion_tokens == len(pieces)


def test_api_key_is_required_and_sent(llama_server, key_file):
    with pytest.raises(BackendError, match=r"API key was refused \(401\)"):
        list(
            remote(llama_server).stream([ChatMessage("user", "hi")], GenerationParams(max_new_tokens=4), CancelToken())
        )
    assert not remote(llama_server).server.ready()
    assert remote(llama_server, key_file).server.ready()


def test_cancel_mid_answer_then_the_server_serves_the_next_request(llama_server, key_file):
    backend = remote(llama_server, key_file)
    cancel = CancelToken()
    stream = ChatStream(
        backend.stream(
            [ChatMessage("user", "Write a very long story about a lighthouse.")],
            GenerationParams(max_new_tokens=1500),
            cancel,
        )
    )
    received = []
    for piece in stream:
        received.append(piece)
        if len(received) == 3:
            cancel.cancel()
    assert stream.stats.finish_reason == "cancelled" and len(received) <= 4
    after = ChatStream(
        backend.stream([ChatMessage("user", "Say OK.")], GenerationParams(max_new_tokens=8), CancelToken())
    )
    assert "".join(after).strip()


def test_rag_chat_over_the_remote_server(llama_server, key_file, settings_factory, tmp_path):
    from tests.pdfgen import make_pdf
    from webapp.services import build_services

    settings = settings_factory(
        data_dir=tmp_path / "data",
        remote_endpoints=[{"name": "llama", "base_url": llama_server["base_url"], "api_key_file": str(key_file)}],
    )
    services = build_services(settings)
    try:
        assert "remote:llama/smollm2" in [c.name for c in services.catalog.choices()]
        pdf = make_pdf(tmp_path / "menu.pdf", ["Cafeteria menu.", "On Fridays the cafeteria serves fish and chips."])
        services.documents.add_files("menu", [(pdf, "menu.pdf")])
        services.documents.index_queued("menu")
        answer = services.answers.ask(
            Question(
                "What does the cafeteria serve on Fridays?",
                collection="menu",
                model="remote:llama/smollm2",
                params=GenerationParams(max_new_tokens=32),
            )
        )
        assert answer.mode == "brief"  # "auto": a remote model adds a short checked answer to the quotes
        assert answer.text.startswith("> “On Fridays the cafeteria serves fish and chips.”")
        assert answer.sources[0].document == "menu.pdf" and answer.sources[0].page == 2
        assert answer.stats.completion_tokens > 0  # the remote model was asked
    finally:
        services.close()
