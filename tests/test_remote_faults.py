"""The remote backend against a misbehaving server: each fault ends in its documented behaviour."""

import socket

import pytest

from tests.fault_server import FaultServer
from webapp.errors import BackendError, ModelNotAvailable
from webapp.llm.base import CancelToken, ChatMessage, ChatStream, GenerationParams
from webapp.llm.openai_remote import RemoteChatBackend, RemoteServer
from webapp.settings import RemoteEndpoint

HELLO = [ChatMessage("user", "hello")]


@pytest.fixture
def fault_server():
    with FaultServer(stall_s=3.0) as server:
        yield server


def backend(server_url, model, **endpoint):
    ep = RemoteEndpoint(name="faulty", base_url=server_url, read_timeout_s=1.0, connect_timeout_s=1.0, **endpoint)
    return RemoteChatBackend(RemoteServer(ep), model)


def run(b, cancel=None):
    stream = ChatStream(b.stream(HELLO, GenerationParams(max_new_tokens=16), cancel or CancelToken()))
    text = ""
    try:
        for piece in stream:
            text += piece
    except BackendError as exc:
        return text, stream, exc
    return text, stream, None


def test_ok_stream_with_usage(fault_server):
    text, stream, err = run(backend(fault_server.base_url, "ok"))
    assert err is None and text == "one two three four five"
    assert stream.stats.finish_reason == "stop"
    assert stream.stats.prompt_tokens == 7 and stream.stats.completion_tokens == 5


def test_connection_refused_is_one_sentence():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    text, _, err = run(backend(f"http://127.0.0.1:{port}/v1", "ok", retries=1))
    assert text == "" and "cannot connect" in err.user_message


def test_401_is_not_retried_and_a_key_file_fixes_it(fault_server, tmp_path):
    text, _, err = run(backend(fault_server.base_url, "auth"))
    assert "API key was refused (401)" in err.user_message
    assert fault_server.requests["auth"] == 1  # a wrong key is not retried
    key = tmp_path / "key"
    key.write_text("secret\n")
    text, _, err = run(backend(fault_server.base_url, "auth", api_key_file=key))
    assert err is None and text.startswith("one")


def test_500_is_retried_before_the_first_token_then_reported(fault_server):
    text, _, err = run(backend(fault_server.base_url, "error500", retries=2))
    assert "server error 500" in err.user_message
    assert fault_server.requests["error500"] == 3
    text, _, err = run(backend(fault_server.base_url, "flaky", retries=2))
    assert err is None and text == "one two three four five"  # two failures, third try streams


def test_stall_longer_than_read_timeout(fault_server):
    text, _, err = run(backend(fault_server.base_url, "stall-first", retries=0))
    assert text == "" and "no answer within the timeout" in err.user_message
    text, _, err = run(backend(fault_server.base_url, "stall-mid", retries=0))
    assert text == "one two " and "mid-way" in err.user_message and "partial answer is kept" in err.user_message
    assert fault_server.requests["stall-mid"] == 1  # never retried once tokens streamed


def test_malformed_event_and_cut_connection_keep_the_partial_answer(fault_server):
    text, _, err = run(backend(fault_server.base_url, "malformed"))
    assert text == "one two " and "malformed" in err.user_message
    text, _, err = run(backend(fault_server.base_url, "cut"))
    assert text == "one two three " and "mid-way" in err.user_message


def test_cancel_closes_the_stream(fault_server):
    cancel = CancelToken()
    b = backend(fault_server.base_url, "ok")
    stream = ChatStream(b.stream(HELLO, GenerationParams(max_new_tokens=16), cancel))
    pieces = []
    for piece in stream:
        pieces.append(piece)
        cancel.cancel()
    assert pieces == ["one "] and stream.stats.finish_reason == "cancelled"
    assert fault_server.closed_early.wait(5)  # the server saw the client hang up


def test_down_server_shows_as_unavailable_in_the_picker(settings_factory, fault_server):
    from webapp.llm.catalog import ModelCatalog

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    settings = settings_factory(
        remote_endpoints=[
            {"name": "faulty", "base_url": fault_server.base_url},
            {"name": "down", "base_url": dead, "connect_timeout_s": 0.5},
        ]
    )
    catalog = ModelCatalog(settings).refresh()
    labels = {c.name: c.label for c in catalog.choices()}
    assert labels["remote:faulty/ok"] == "ok @ faulty (remote)"
    assert labels["remote:down/"] == "down: unavailable"
    with pytest.raises(ModelNotAvailable, match="down is unavailable"):
        catalog.get("remote:down/")
    assert catalog.default_choice() == "smollm2-135m-instruct-int4"
    catalog.close()


@pytest.mark.timeout(45)  # with the 60 s streaming read timeout applied to listing, this would hang
def test_servers_that_accept_but_never_answer_do_not_hold_up_the_picker(settings_factory):
    from webapp.llm.catalog import ModelCatalog

    # A listening socket nobody accepts from: connections succeed, no byte ever comes back.
    silent = [socket.socket() for _ in range(2)]
    for s in silent:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
    try:
        settings = settings_factory(
            remote_endpoints=[
                {"name": f"silent{i}", "base_url": f"http://127.0.0.1:{s.getsockname()[1]}/v1", "read_timeout_s": 60}
                for i, s in enumerate(silent)
            ]
        )
        catalog = ModelCatalog(settings).refresh()
        labels = {c.name: c.label for c in catalog.choices()}
        assert (
            labels["remote:silent0/"] == "silent0: unavailable" and labels["remote:silent1/"] == "silent1: unavailable"
        )
        assert catalog.default_choice() == "smollm2-135m-instruct-int4"  # local models still offered
        catalog.close()
    finally:
        for s in silent:
            s.close()
