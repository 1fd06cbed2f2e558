"""The real int4 SmolLM2 through the continuous-batching backend: answers, stops, isolation."""

import threading
import time

import pytest

from webapp.errors import InvalidMessage, ModelNotAvailable
from webapp.llm.base import CancelToken, ChatMessage, ChatStream, GenerationParams

pytestmark = pytest.mark.slow


def ask(backend, question, max_new_tokens=64, cancel=None, system=None):
    messages = ([ChatMessage("system", system)] if system else []) + [ChatMessage("user", question)]
    stream = ChatStream(
        backend.stream(messages, GenerationParams(max_new_tokens=max_new_tokens), cancel or CancelToken())
    )
    return "".join(stream), stream.stats


def test_answers_simple_instruction_and_stops_at_eos(backend):
    text, stats = ask(backend, "What is the capital of France?", max_new_tokens=64)
    assert "Paris" in text
    assert stats.finish_reason == "stop"  # ended on <|im_end|>, not on the token cap
    assert 0 < stats.completion_tokens < 64
    assert "<|im_end|>" not in text and "<|im_start|>" not in text
    assert stats.ttft_s and stats.ttft_s > 0 and stats.tpot_s and stats.tpot_s > 0


def test_completion_tokens_match_the_tokenizer(backend):
    text, stats = ask(backend, "Name three primary colours.", max_new_tokens=48)
    # generated ids include the final eos, which decodes to nothing
    assert stats.completion_tokens in (backend.count_tokens(text), backend.count_tokens(text) + 1)


def test_multi_turn_history_uses_the_chat_template(backend):
    messages = [
        ChatMessage("system", "You are terse."),
        ChatMessage("user", "My name is Ada."),
        ChatMessage("assistant", "Nice to meet you, Ada!"),
        ChatMessage("user", "What is my name?"),
    ]
    ids, _ = backend.fit_prompt(messages, 32)
    prompt = backend.tokenizer.decode(ids, skip_special_tokens=False)
    assert prompt == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nMy name is Ada.<|im_end|>\n"
        "<|im_start|>assistant\nNice to meet you, Ada!<|im_end|>\n"
        "<|im_start|>user\nWhat is my name?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    stream = ChatStream(backend.stream(messages, GenerationParams(max_new_tokens=32), CancelToken()))
    assert "".join(stream).strip()


def test_stop_cancels_a_long_generation(backend):
    cancel = CancelToken()
    pieces = []
    stream = ChatStream(
        backend.stream(
            [ChatMessage("user", "Write a very long story about a dragon.")],
            GenerationParams(max_new_tokens=2000),
            cancel,
        )
    )
    for piece in stream:
        pieces.append(piece)
        if len(pieces) == 5:
            cancel.cancel()
    assert stream.stats.finish_reason == "cancelled"
    assert stream.stats.completion_tokens < 100
    deadline = time.monotonic() + 5
    while backend.engine.active_requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert backend.engine.active_requests == 0  # the engine really dropped it


def test_abandoned_stream_frees_its_slot(backend):
    stream = ChatStream(
        backend.stream(
            [ChatMessage("user", "Count from one to five hundred in words.")],
            GenerationParams(max_new_tokens=1500),
            CancelToken(),
        )
    )
    pieces = iter(stream)
    for _ in range(3):
        next(pieces)
    pieces.close()  # what happens when a browser tab goes away mid-answer (or a brief answer's cap)
    # what was generated is still counted: metrics and /v1 usage read these
    assert stream.stats.completion_tokens >= 3 and stream.stats.prompt_tokens > 5
    deadline = time.monotonic() + 5
    while backend.engine.active_requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert backend.engine.active_requests == 0


def test_two_concurrent_chats_do_not_mix(backend):
    questions = {
        "france": "What is the capital of France?",
        "code": "Write a Python function named add that returns the sum of two numbers.",
    }
    results, timings = {}, {}
    start = threading.Barrier(2)

    def worker(key):
        start.wait()
        t0 = time.monotonic()
        stream = ChatStream(
            backend.stream([ChatMessage("user", questions[key])], GenerationParams(max_new_tokens=96), CancelToken())
        )
        first = None
        text = ""
        for piece in stream:
            first = first or time.monotonic()
            text += piece
        results[key] = text
        timings[key] = (t0, first, time.monotonic())

    threads = [threading.Thread(target=worker, args=(k,)) for k in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert "Paris" in results["france"] and "def " not in results["france"]
    assert "def add" in results["code"] and "Paris" not in results["code"]
    # Both streams were in flight at the same time (each got its first token before the other ended).
    (_, ffa, ea), (_, ffb, eb) = timings["france"], timings["code"]
    assert ffa < eb and ffb < ea


def test_huge_message_is_refused_in_one_sentence(backend):
    huge = "word " * (backend.context_length + 100)
    with pytest.raises(InvalidMessage) as err:
        list(backend.stream([ChatMessage("user", huge)], GenerationParams(max_new_tokens=64), CancelToken()))
    assert "tokens" in err.value.user_message and "\n" not in err.value.user_message


def test_old_turns_are_dropped_to_fit_the_context(backend):
    per_word = backend.count_tokens("filler " * 100) / 100
    words = int(0.55 * backend.context_length / per_word)  # each long turn: ~55% of the context
    old, recent = "old " + "filler " * words, "recent " + "filler " * words
    messages = [
        ChatMessage("system", "You are helpful."),
        ChatMessage("user", old),
        ChatMessage("assistant", "ok"),
        ChatMessage("user", recent),
        ChatMessage("assistant", "ok"),
        ChatMessage("user", "What is 2 + 2?"),
    ]
    ids, max_new = backend.fit_prompt(messages, 256)
    assert len(ids) + max_new <= backend.context_length
    prompt = backend.tokenizer.decode(ids, skip_special_tokens=False)
    assert prompt.startswith("<|im_start|>system\nYou are helpful.")  # the system message stays
    assert "old filler" not in prompt and "recent filler" in prompt  # oldest turn went first
    assert prompt.rstrip().endswith("What is 2 + 2?<|im_end|>\n<|im_start|>assistant")


def test_service_validates_and_reports_unknown_models(services):
    with pytest.raises(InvalidMessage, match="Type a message"):
        services.chat.reply("smollm2-135m-instruct-int4", [], "   ")
    with pytest.raises(InvalidMessage, match="characters"):
        services.chat.reply("smollm2-135m-instruct-int4", [], "x" * (services.settings.max_message_chars + 1))
    with pytest.raises(ModelNotAvailable, match="not in the registry"):
        services.chat.reply("no-such-model", [], "hello")


def test_service_stop_by_session(services):
    stream = services.chat.reply(
        "smollm2-135m-instruct-int4",
        [],
        "Tell me a long story about the sea.",
        GenerationParams(max_new_tokens=1000),
        session="tab-1",
    )
    text = ""
    for piece in stream:
        text += piece
        if len(text) > 20:
            assert services.chat.stop("tab-1") is True
    assert stream.stats.finish_reason == "cancelled"
    assert services.chat.stop("tab-1") is False


def test_engine_process_crash_ends_answers_with_a_sentence_and_the_next_one_works(registry_dir):
    """SIGKILL the engine's child process mid-answer: that answer ends with one sentence, the
    weights live only in the child, and the next question starts a new engine process."""
    from webapp.errors import BackendError
    from webapp.llm.openvino_engine import EngineOptions, EngineProcess
    from webapp.llm.openvino_local import OpenVINOLocalBackend
    from webapp.registry import load_entry

    local = OpenVINOLocalBackend(load_entry(registry_dir / "smollm2-135m-instruct-int4"), EngineOptions(max_num_seqs=2))
    try:
        assert isinstance(local.engine, EngineProcess)
        first_child = local.engine._process.pid
        stream = ChatStream(
            local.stream(
                [ChatMessage("user", "Write a very long story about a dragon.")],
                GenerationParams(max_new_tokens=2000),
                CancelToken(),
            )
        )
        received = []
        with pytest.raises(BackendError, match="stopped unexpectedly"):
            for piece in stream:
                received.append(piece)
                if len(received) == 3:
                    local.engine.kill_for_test()
        assert len(received) >= 3  # what was written before the crash reached the reader
        text, stats = ask(local, "Say hello.", max_new_tokens=16)
        assert stats.completion_tokens > 0 and local.engine._process.pid != first_child
        second = local.engine._process
    finally:
        local.close()
    assert second.exitcode is not None  # closed and reaped, not left running


def test_a_long_history_is_fitted_in_one_pass(backend, monkeypatch):
    """A 1 MB history costs the tokenizer what fits in the context, not a re-encode per dropped turn
    (which made a message with 1 MB of history take 2.6 s, growing quadratically)."""
    history = []
    for i in range(1000):
        history += [
            ChatMessage("user", f"Question {i}: " + "tell me more about tides " * 20),
            ChatMessage("assistant", f"Answer {i}: " + "tides follow the moon " * 20),
        ]
    assert sum(len(m.content) for m in history) > 900_000
    messages = [ChatMessage("system", "Be brief.")] + history + [ChatMessage("user", "And the newest question?")]
    encodes, counted = [], []
    real_encode, real_count = backend._encode, backend.count_tokens
    monkeypatch.setattr(backend, "_encode", lambda m: encodes.append(len(m)) or real_encode(m))
    monkeypatch.setattr(backend, "count_tokens", lambda t: counted.append(len(t)) or real_count(t))
    ids, max_new = backend.fit_prompt(messages, 256)
    assert len(ids) <= backend.context_length - max_new
    assert len(encodes) <= 3  # the kept suffix, encoded once (plus a correction or two at most)
    assert sum(counted) < 4 * backend.context_length * 8  # only what could fit was tokenized, not 1 MB
    prompt = backend.tokenizer.decode(ids, skip_special_tokens=False)
    assert prompt.startswith("<|im_start|>system\nBe brief.") and "And the newest question?" in prompt
    assert "Question 999" in prompt and "Question 0:" not in prompt  # newest turns kept, oldest dropped


def test_prompt_lookup_on_and_off_both_answer_greedy_and_sampled(backend, registry_dir):
    """The app's default engine drafts tokens by prompt lookup (DOCCHAT_PROMPT_LOOKUP); such a
    pipeline refuses any request without lookup settings, so sampled answers must carry them too.
    The cluster turns it off: that engine must answer the same requests."""
    from webapp.llm.openvino_engine import EngineOptions
    from webapp.llm.openvino_local import OpenVINOLocalBackend
    from webapp.registry import load_entry

    assert backend.engine.options.prompt_lookup  # the default
    plain = OpenVINOLocalBackend(
        load_entry(registry_dir / "smollm2-135m-instruct-int4"), EngineOptions(max_num_seqs=2, prompt_lookup=False)
    )
    source = (
        "Source [1]: The lighthouse at Cape Wrath was built in 1828 by Robert Stevenson and "
        "automated in 1998.\nQuestion: When was the lighthouse at Cape Wrath built? Quote the source."
    )
    try:
        for engine in (backend, plain):
            for temperature in (0.0, 0.8):
                messages = [ChatMessage("user", source)]
                stream = ChatStream(
                    engine.stream(messages, GenerationParams(max_new_tokens=32, temperature=temperature), CancelToken())
                )
                text = "".join(stream)
                assert text.strip() and stream.stats.completion_tokens > 0, (engine.engine.options, temperature)
                assert stream.stats.finish_reason in ("stop", "length")
    finally:
        plain.close()
