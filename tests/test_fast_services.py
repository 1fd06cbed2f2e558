"""The fast tier: service logic with scripted collaborators (tests/fakes.py), no model, no browser.

ChatService: validation and limits, streaming and stats, Stop by session, a new question from the
same tab superseding the old answer, admission control (busy, queue, release on every path), a
backend failing mid-answer (answers from documents: tests/test_answering.py). BenchService: roles,
the one-at-a-time rule, a run over scripted targets, and the three exports.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time

import pytest

from tests.fakes import FakeCatalog, ScriptedBackend
from webapp.auth.access import Actor
from webapp.chat.admission import Busy
from webapp.chat.service import ChatService
from webapp.errors import InvalidMessage, ModelNotAvailable, UserError
from webapp.llm.base import ChatMessage, GenerationParams
from webapp.metrics import Metrics
from webapp.settings import Settings


def chat(tmp_path, backend=None, **settings) -> ChatService:
    config = Settings(models_dir=tmp_path / "models", data_dir=tmp_path / "data", **settings)
    return ChatService(FakeCatalog({"m": backend or ScriptedBackend()}), config, metrics=Metrics())


def metric(service: ChatService, name: str, **labels) -> float:
    value = service.metrics.registry.get_sample_value(name, labels or None)
    return value or 0.0


def test_messages_and_settings_are_validated_with_one_sentence(tmp_path):
    service = chat(tmp_path, max_message_chars=50)
    for empty in ("", "   \n\t", None):
        with pytest.raises(InvalidMessage, match="Type a message first"):
            service.validate(empty)
    with pytest.raises(InvalidMessage, match="51 characters; the limit is 50"):
        service.validate("x" * 51)
    with pytest.raises(InvalidMessage, match="must be numbers"):
        service.params("many", 0.5)
    with pytest.raises(InvalidMessage, match="must be a number"):
        service.params(10, float("nan"))
    clamped = service.params(10**9, 99)
    assert clamped.max_new_tokens == service.max_new_tokens_limit and clamped.temperature == 2.0
    assert service.params(-5, -1) == GenerationParams(max_new_tokens=1, temperature=0.0)
    with pytest.raises(ModelNotAvailable):
        "".join(service.reply("no-such-model", [], "hi"))


def test_an_answer_streams_in_order_with_stats_and_metrics(tmp_path):
    backend = ScriptedBackend(pieces=("The ", "answer ", "is ", "42."))
    service = chat(tmp_path, backend, system_prompt="Be brief.")
    history = [ChatMessage("user", "earlier?"), ChatMessage("assistant", "earlier."), ChatMessage("system", "x")]
    stream = service.reply("m", history, "  What is it?  ")
    assert "".join(stream) == "The answer is 42."
    assert stream.stats.completion_tokens == 4 and stream.stats.finish_reason == "stop"
    roles = [(m.role, m.content) for m in backend.seen[0]]
    assert roles == [("system", "Be brief."), ("user", "earlier?"), ("assistant", "earlier."), ("user", "What is it?")]
    assert metric(service, "docchat_answers_finished_total", model="m", backend="openvino", reason="stop") == 1
    assert metric(service, "docchat_generated_tokens_total", model="m", backend="openvino") == 4
    assert service.admission.stats().active == 0  # the slot is back


def test_stop_by_session_ends_the_answer_and_frees_the_slot(tmp_path):
    gate = threading.Semaphore(0)
    service = chat(tmp_path, ScriptedBackend(pieces=("a",) * 50, gate=gate), max_concurrent_answers=1)
    stream = service.reply("m", [], "go", session="tab-1")
    pieces = []
    reader = threading.Thread(target=lambda: pieces.extend(stream))
    reader.start()
    gate.release(3)
    deadline = time.monotonic() + 5
    while len(pieces) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert service.stop("tab-1") is True
    reader.join(5)
    assert not reader.is_alive() and len(pieces) == 3 and stream.stats.finish_reason == "cancelled"
    assert service.stop("tab-1") is False and service.stop("never-seen") is False
    assert service.admission.stats().active == 0


def test_a_new_question_from_the_same_tab_supersedes_the_running_answer(tmp_path):
    gate = threading.Semaphore(0)
    service = chat(tmp_path, ScriptedBackend(pieces=("a",) * 20, gate=gate))
    first = service.reply("m", [], "first", session="tab")
    got = []
    reader = threading.Thread(target=lambda: got.extend(first))
    reader.start()
    gate.release(1)
    time.sleep(0.05)
    second = service.reply("m", [], "second", session="tab")  # cancels the first one's token
    reader.join(5)
    assert first.stats.finish_reason == "cancelled"
    gate.release(100)
    assert "".join(second) == "a" * 20


def test_admission_refuses_when_full_and_every_path_gives_the_place_back(tmp_path):
    gate = threading.Semaphore(0)
    backend = ScriptedBackend(pieces=("x",) * 5, gate=gate)
    service = chat(tmp_path, backend, max_concurrent_answers=1, max_waiting_answers=0)
    running = service.reply("m", [], "one", session="a")
    with pytest.raises(Busy) as busy:
        service.reply("m", [], "two", session="b")
    assert "busy" in busy.value.user_message.lower() or "full" in busy.value.user_message.lower()
    assert metric(service, "docchat_answers_refused_total", reason="busy") == 1
    gate.release(5)
    assert "".join(running) == "xxxxx"
    # A stream dropped unread gives its place back too (tab closed before the first token).
    dropped = service.reply("m", [], "three")
    del dropped
    import gc

    gc.collect()
    assert service.admission.stats().active == 0
    # ...and so does an answer that failed before streaming (unknown model).
    with pytest.raises(ModelNotAvailable):
        service.reply("missing", [], "four")
    assert service.admission.stats().active == 0
    gate.release(5)
    assert "".join(service.reply("m", [], "five")) == "xxxxx"


def test_a_backend_failing_mid_answer_ends_with_its_sentence_and_is_counted(tmp_path):
    service = chat(tmp_path, ScriptedBackend(pieces=("a", "b", "c"), fail_after=2))
    stream = service.reply("m", [], "hi")
    got = []
    with pytest.raises(UserError, match="stopped answering"):
        for piece in stream:
            got.append(piece)
    assert got == ["a", "b"]
    assert metric(service, "docchat_answers_failed_total", model="m", backend="openvino") == 1
    assert service.admission.stats().active == 0


# -- the bench service --------------------------------------------------------------------------


def bench(tmp_path, **settings):
    from webapp.bench.service import BenchService
    from webapp.bench.targets import Target

    config = Settings(models_dir=tmp_path / "models", data_dir=tmp_path / "data", **settings)
    service = BenchService(config, None)
    targets = [
        Target(
            "fake:fast", "fast · scripted", "openvino", lambda: ScriptedBackend(pieces=("tok ",) * 8, delay_s=0.005)
        ),
        Target("fake:broken", "broken · scripted", "openvino", _broken),
    ]
    service.targets = lambda: targets  # what would come from the registry and the providers
    service.token_counter = lambda: lambda text: max(1, len(text.split()))
    return service


def _broken():
    raise ModelNotAvailable("The model broken is not in the registry.")


def test_bench_runs_scripted_targets_reports_failures_and_exports(tmp_path, monkeypatch):
    from webapp.bench.engine import BenchConfig, Hooks
    from webapp.bench.report import BenchReport

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "tmp"))
    service = bench(tmp_path)
    cfg = BenchConfig(profile="chat", runs=2, warmup=1, max_new_tokens=8, users=(1, 2))
    with pytest.raises(UserError, match="Unknown target.s.: not-a-target"):
        service.run(["fake:fast", "not-a-target"], cfg, Hooks(), session="s")
    assert [t.id for t in service.select([], default_if_empty=True)] == ["fake:fast"]  # the CLI's default
    report = service.run(["fake:fast", "fake:broken"], cfg, Hooks(), session="s")
    ok, broken = report.results
    assert ok.status == "ok" and len(ok.runs) == 2 and [p.users for p in ok.sweep] == [1, 2]
    assert all(r.completion_tokens == 8 for r in ok.runs) and ok.sweep[1].max_in_flight == 2
    assert broken.status == "failed" and broken.error == "The model broken is not in the registry."
    paths = service.export(report)
    by_name = {p.rsplit("/", 1)[1]: p for p in paths}
    assert set(by_name) == {"benchmark.csv", "benchmark.json", "benchmark.md"}
    rows = list(csv.reader(io.StringIO(open(by_name["benchmark.csv"]).read())))
    assert rows[0][0] == "target" and {r[0] for r in rows[1:]} == {"fast · scripted", "broken · scripted"}
    again = BenchReport.from_json(open(by_name["benchmark.json"]).read())
    assert again.results[0].summary()["completion_tokens"] == 8
    assert json.loads(open(by_name["benchmark.json"]).read())["machine"]
    assert "fast · scripted" in open(by_name["benchmark.md"]).read()


def test_bench_is_for_admins_one_at_a_time_and_can_be_turned_off(tmp_path):
    from webapp.bench.engine import BenchConfig, Hooks

    cfg = BenchConfig(profile="chat", runs=1, warmup=0, max_new_tokens=2, users=(1,))
    service = bench(tmp_path)
    with pytest.raises(UserError, match="Only an admin can run benchmarks"):
        service.run(["fake:fast"], cfg, Hooks(), session="s", actor=Actor("vic", "viewer"))
    with pytest.raises(UserError, match="Choose at least one target"):
        service.run([], cfg, Hooks(), session="s")
    service._exclusive.acquire()
    try:
        with pytest.raises(UserError, match="Another comparison is running"):
            service.run(["fake:fast"], cfg, Hooks(), session="s")
    finally:
        service._exclusive.release()
    with pytest.raises(UserError, match="turned off"):
        bench(tmp_path, enable_bench=False).run(["fake:fast"], cfg, Hooks(), session="s")
