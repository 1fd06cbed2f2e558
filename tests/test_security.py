"""Hostile requests against a real `python -m webapp serve`, through its HTTP API only.

Every event is driven the way any client can drive it (POST /gradio_api/call/<api_name>, then
read the event stream), with payloads a browser would never send. Each must end in a 4xx or a
one-sentence error, the process must stay up, and no file outside the app may come back.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

import httpx
import pytest

from tests.conftest import running_app
from tests.gradio_events import call_event
from tests.pdfgen import make_pdf

FILE_INPUTS = ("chatbot", "file", "files", "image", "gallery", "dataframe")


@pytest.fixture(scope="module")
def server(registry_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("security-data")
    with running_app(
        registry_dir,
        data,
        extra_env={"DOCCHAT_MAX_UPLOAD_MB": "1", "DOCCHAT_MAX_UPLOAD_FILES": "3", "DOCCHAT_MAX_NEW_TOKENS": "8"},
    ) as base:
        config = httpx.get(base + "/config", timeout=10).json()
        yield {"base": base, "data": data, "config": config}


def call(base: str, api: str, data, timeout: float = 120) -> tuple[int, list[tuple[str, object]]]:
    """POST an event, then read its stream: (status of the POST, [(event, data), ...])."""
    with httpx.Client(base_url=base) as http:
        return call_event(http, api, data, timeout)


def dependencies(config, types=None):
    comps = {c["id"]: c for c in config["components"]}
    for dep in config["dependencies"]:
        api = dep.get("api_name")
        if not api or dep.get("api_visibility", "public") == "private":
            continue
        kinds = [comps.get(i, {}).get("type") for i in dep["inputs"]]
        if types is None or any(k in types for k in kinds):
            yield api, dep["inputs"], kinds, comps


def default_inputs(inputs, kinds, comps):
    return [comps[i].get("props", {}).get("value") for i in inputs]


def alive(base):
    assert httpx.get(base + "/healthz", timeout=5).json()["status"] == "ok"


def one_sentence_or_refused(status, events) -> bool:
    """A 4xx, or a stream that ends in an error event / a completed output (our handlers answer with text)."""
    if 400 <= status < 500:
        return True
    if not events:
        return False
    last_kind, last = events[-1]
    if last_kind == "error":
        message = last.get("error") if isinstance(last, dict) else last
        return message is None or (isinstance(message, str) and len(message) < 500)
    return last_kind == "complete"


def test_no_event_hands_back_or_reads_a_server_file_named_in_its_input(server, tmp_path):
    base, data = server["base"], server["data"]
    secret = "canary-" + secrets.token_hex(8)
    canary = tmp_path / "canary.pdf"  # outside the app, and PDF enough to be stored if it were read
    canary.write_text(f"%PDF-1.4\n% {secret}\n")
    file_data = {"path": str(canary), "orig_name": "x.pdf", "meta": {"_type": "gradio.FileData"}}
    probed = []
    for api, inputs, kinds, comps in dependencies(server["config"], FILE_INPUTS):
        payload = default_inputs(inputs, kinds, comps)
        for n, kind in enumerate(kinds):
            if kind == "chatbot":
                payload[n] = [
                    {"role": "user", "content": [{"type": "file", "file": file_data}]},
                    {"role": "assistant", "content": {"path": str(canary), "meta": {"_type": "gradio.FileData"}}},
                ]
            elif kind in ("file", "files"):
                payload[n] = [file_data]
            elif kind == "textbox":
                payload[n] = "hello"
        status, events = call(base, api, payload)
        probed.append(api)
        body = json.dumps(events)
        assert secret not in body, api
        for url in set(re.findall(r'"url":\s*"([^"]+)"', body)):
            fetched = httpx.get(url if url.startswith("http") else base + url, timeout=10)
            assert secret not in fetched.text, (api, url)
        # the path itself must not even be accepted as an upload
        assert one_sentence_or_refused(status, events), (api, events[-1:])
    assert "upload" in probed, probed
    # The chat no longer takes the conversation from the client at all: the server keeps it.
    respond = next(kinds for api, _, kinds, _ in dependencies(server["config"]) if api == "respond")
    assert "chatbot" not in respond, respond
    # Nothing the app keeps holds the canary: not the stored files, not Gradio's caches.
    for path in Path(data).rglob("*"):
        if path.is_file() and path.stat().st_size < 10_000_000:
            assert secret.encode() not in path.read_bytes(), path
    alive(base)


def test_file_routes_refuse_everything_outside_uploads(server):
    base, data = server["base"], server["data"]
    for target in [
        "/etc/passwd",
        "/proc/self/environ",
        str(Path(data) / "store.sqlite3"),
        str(Path(data) / "server.log"),
        "../../../../etc/passwd",
        "%2e%2e/%2e%2e/etc/passwd",
    ]:
        r = httpx.get(f"{base}/gradio_api/file={target}", timeout=10)
        assert r.status_code in (403, 404), (target, r.status_code)
        assert "root:" not in r.text
    alive(base)


def test_oversized_bodies_and_uploads_are_refused(server, tmp_path):
    base = server["base"]
    status, _ = call(base, "respond", b'{"data": ["' + b"x" * (6 << 20) + b'"]}')
    assert status == 413
    big = tmp_path / "big.pdf"
    big.write_bytes(b"%PDF-1.4\n" + b"0" * (2 * 1_000_000))
    with open(big, "rb") as fh:
        r = httpx.post(base + "/gradio_api/upload", files={"files": ("big.pdf", fh, "application/pdf")}, timeout=60)
    assert r.status_code in (400, 413) and "size" in r.text.lower()
    alive(base)


def test_malformed_gradio_payloads_get_a_4xx_or_one_sentence(server):
    base = server["base"]
    deep = b'{"data": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
    cases = {
        "not a list": {"data": "hello"},
        "no data": {},
        "wrong length": {"data": ["hi"]},
        "wrong types": {"data": [123, "not a chat", {"x": 1}, "many", [], 7]},
        "nan and huge numbers": {"data": ["hi", [], "smollm2-135m-instruct-int4", 1e308, float("inf"), None]},
        "3 MB message": {"data": ["y" * (3 << 20), [], "smollm2-135m-instruct-int4", 32, 0, None]},
        "history of 20,000 turns": {
            "data": ["hi", [{"role": "user", "content": "q" * 100}] * 20_000, "smollm2-135m-instruct-int4", 16, 0, None]
        },
    }
    for name, body in cases.items():
        raw = json.dumps(body, allow_nan=True).encode()
        status, events = call(base, "respond", raw)
        assert one_sentence_or_refused(status, events), (name, status, events[-1:])
        alive(base)
    status, events = call(base, "respond", deep)
    assert one_sentence_or_refused(status, events), ("deep JSON", status, events[-1:])
    for api in ("no_such_event", "../../config", "respond%00"):
        status, _ = call(base, api, [])
        assert 400 <= status < 500, (api, status)
    # the message limit is a sentence the user can act on
    status, events = call(base, "respond", ["z" * 40_000, None, "smollm2-135m-instruct-int4", 16, 0, None, "auto", []])
    assert "characters; the limit is" in json.dumps(events)
    alive(base)


def test_traversal_and_hostile_names_stay_labels(server, tmp_path):
    base, data = server["base"], server["data"]
    hostile = [
        "../../../tmp/escape-" + secrets.token_hex(4),
        "..",
        "/etc/passwd",
        "a\x00b",
        "<img src=x onerror=1>",
        "'; DROP TABLE documents; --",
        "x" * 5000,
    ]
    for name in hostile:
        status, events = call(base, "create_collection", [name, "private", ""])
        assert one_sentence_or_refused(status, events), (name, events[-1:])
    assert not list(Path("/tmp").glob("escape-*"))
    # the pickers only take values they offered
    status, events = call(base, "respond", ["hi", None, "../../../etc/passwd", 16, 0, None, "auto", []])
    assert one_sentence_or_refused(status, events) and "root:" not in json.dumps(events)
    status, events = call(base, "respond", ["hi", None, "smollm2-135m-instruct-int4", 16, 0, "../../etc", "auto", []])
    assert one_sentence_or_refused(status, events)
    # an upload whose name is a path: stored by content, the name only a label
    pdf = make_pdf(tmp_path / "p.pdf", ["A page about hostile names."])
    evil_name = "../../../../tmp/evil-" + secrets.token_hex(4) + ".pdf"
    with open(pdf, "rb") as fh:
        r = httpx.post(base + "/gradio_api/upload", files={"files": (evil_name, fh, "application/pdf")}, timeout=60)
    assert r.status_code == 200, r.text
    uploaded = r.json()[0]
    status, events = call(
        base,
        "upload",
        ["default", [{"path": uploaded, "orig_name": evil_name, "meta": {"_type": "gradio.FileData"}}], False],
    )
    assert status == 200 and events[-1][0] == "complete", events[-1:]
    assert "evil-" in json.dumps(events) and not list(Path("/tmp").glob("evil-*"))
    assert not Path(uploaded).exists()  # Gradio's temp copy is gone once stored
    files = list((Path(data) / "files").glob("*.pdf"))
    assert files and all(re.fullmatch(r"[0-9a-f]{64}\.pdf", f.name) for f in files)
    alive(base)


def test_too_many_files_in_one_upload_is_one_sentence(server, tmp_path):
    base = server["base"]
    paths = []
    for i in range(5):
        pdf = make_pdf(tmp_path / f"f{i}.pdf", [f"File number {i}."])
        with open(pdf, "rb") as fh:
            r = httpx.post(base + "/gradio_api/upload", files={"files": (pdf.name, fh, "application/pdf")}, timeout=60)
        paths.append(r.json()[0])
    status, events = call(
        base,
        "upload",
        [
            "default",
            [{"path": p, "orig_name": Path(p).name, "meta": {"_type": "gradio.FileData"}} for p in paths],
            False,
        ],
    )
    assert "the limit is 3" in json.dumps(events)
    assert not any(Path(p).exists() for p in paths)  # refused uploads do not pile up either
    alive(base)
