"""What any HTTP client reaches, against a real `python -m webapp serve`: the raw upload route, the
Host names the server answers to (DNS rebinding), security headers, and how stored originals are
served. Each test is one item of the black-box audit (issue 24, section 6)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import running_app
from tests.pdfgen import make_pdf
from tests.test_auth import Api, make_users, text_of
from webapp.http_security import HostPolicy, host_name
from webapp.raw_uploads import PendingUploads
from webapp.settings import Settings

CLAIM_S = 3


@pytest.fixture(scope="module")
def server(registry_dir, tmp_path_factory):
    """Sign-in on, uploads capped at 2 files of 1 MB, unclaimed uploads swept after 3 s."""
    data = tmp_path_factory.mktemp("http-hardening")
    tokens = make_users(data)
    env = {
        "DOCCHAT_AUTH": "password",
        "DOCCHAT_MAX_UPLOAD_MB": "1",
        "DOCCHAT_MAX_UPLOAD_FILES": "2",
        "DOCCHAT_UPLOAD_CLAIM_S": str(CLAIM_S),
        "DOCCHAT_MAX_NEW_TOKENS": "8",
    }
    with running_app(registry_dir, data, extra_env=env) as base:
        yield {"base": base, "data": data, "tokens": tokens}


def raw_upload(base: str, token: str, files: list[tuple[str, bytes]]) -> httpx.Response:
    return httpx.post(
        base + "/gradio_api/upload",
        headers={"Authorization": f"Bearer {token}"},
        files=[("files", (name, body, "application/pdf")) for name, body in files],
        timeout=60,
    )


def files_holding(folder: Path, marker: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and marker in p.read_bytes()[:4096]]


def test_a_viewer_cannot_park_files_through_the_raw_upload_route(server):
    base, data, tokens = server["base"], server["data"], server["tokens"]
    marker = b"viewer-parked-" + str(time.time_ns()).encode()
    refused = raw_upload(
        base, tokens["vic"], [(f"v{n}.pdf", b"%PDF-1.4\n%" + marker + b"\n" * 200_000) for n in range(5)]
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"] == "Your role (viewer) cannot upload files; ask an admin to make you a member."
    assert files_holding(data, marker) == []  # nothing of it stayed on the data volume
    # A member (a role that may upload) still can.
    accepted = raw_upload(base, tokens["bob"], [("b.pdf", b"%PDF-1.4\n%member\n")])
    assert accepted.status_code == 200 and len(accepted.json()) == 1, accepted.text


def test_one_raw_upload_is_capped_in_size(server):
    """Gradio caps each file (1 MB here); the request as a whole is capped at what one upload may
    carry (2 files of 1 MB), so 1,000 files of 1 MB in one request are refused before any is written."""
    base, data, tokens = server["base"], server["data"], server["tokens"]
    marker = b"too-many-" + str(time.time_ns()).encode()
    body = b"%PDF-1.4\n%" + marker + b"\n" + b"x" * 900_000
    refused = raw_upload(base, tokens["bob"], [(f"big{n}.pdf", body) for n in range(4)])
    assert refused.status_code == 413, refused.text
    assert refused.json()["detail"].startswith("The upload is too large")
    assert files_holding(data, marker) == []
    one_too_big = raw_upload(base, tokens["bob"], [("huge.pdf", body + b"y" * 200_000)])
    assert one_too_big.status_code == 413

    def streamed():  # the same four files without a Content-Length (chunked): counted as they arrive
        for n in range(4):
            yield b'--cut\r\nContent-Disposition: form-data; name="files"; filename="s%d.pdf"\r\n\r\n' % n
            for start in range(0, len(body), 100_000):
                yield body[start : start + 100_000]
            yield b"\r\n"
        yield b"--cut--\r\n"

    chunked = httpx.post(
        base + "/gradio_api/upload",
        headers={"Authorization": f"Bearer {tokens['bob']}", "Content-Type": "multipart/form-data; boundary=cut"},
        content=streamed(),
        timeout=60,
    )
    assert chunked.status_code == 413 and chunked.json()["detail"].startswith("The upload is too large"), chunked.text
    assert [p for p in files_holding(data, marker) if p.parent != data / ".uploads"] == []  # no file was completed


def test_uploads_no_event_claims_are_swept_and_claimed_ones_are_stored(server, tmp_path):
    base, tokens = server["base"], server["tokens"]
    bob = Api(base, tokens["bob"])
    assert "is ready" in text_of(bob.call("create_collection", ["bob-sweep", "private", ""])[1])
    parked = raw_upload(base, tokens["bob"], [("parked.pdf", b"%PDF-1.4\n% never used by an upload\n")])
    parked_path = Path(parked.json()[0])
    assert parked_path.is_file()
    # The upload the UI makes: the raw route, then the "upload" event naming the file (claimed).
    pdf = make_pdf(tmp_path / "kept.pdf", ["A page that is uploaded and stored."])
    stored = bob.upload("bob-sweep", pdf, index=False)
    assert "kept.pdf" in text_of(stored[1]) and "not uploaded through the app" not in text_of(stored[1])
    deadline = time.monotonic() + CLAIM_S + 30  # generous: the sweep runs every second or so
    while parked_path.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not parked_path.exists() and not parked_path.parent.exists()
    rows = bob.result("show_collection", ["bob-sweep"])[0]["data"]
    assert [row[1] for row in rows] == ["kept.pdf"]


@pytest.fixture(scope="module")
def open_server(registry_dir, tmp_path_factory):
    """Auth none on loopback (the laptop default): what DNS rebinding would reach."""
    with running_app(
        registry_dir, tmp_path_factory.mktemp("open-data"), extra_env={"DOCCHAT_MAX_NEW_TOKENS": "8"}
    ) as base:
        yield base


def test_auth_none_on_loopback_answers_only_to_loopback_names(open_server):
    base = open_server
    port = base.rsplit(":", 1)[1]
    requests = [
        ("GET", "/config", None),
        ("GET", "/v1/models", None),
        ("POST", "/v1/search", {"collection": "default", "query": "anything"}),
        ("GET", "/", None),
        ("GET", "/healthz", None),
    ]
    for method, path, body in requests:
        rebound = httpx.request(method, base + path, json=body, headers={"Host": "attacker.example"}, timeout=30)
        assert rebound.status_code == 400, (path, rebound.status_code)
        assert rebound.json()["detail"] == (
            "This server does not answer to that host name; open it by its own address "
            "(an operator can allow a public name with DOCCHAT_ALLOWED_HOSTS)."
        )
        assert "attacker.example" not in rebound.text
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
            own = httpx.request(method, base + path, json=body, headers={"Host": host}, timeout=60)
            assert own.status_code != 400, (path, host, own.text[:200])
    # Sub-domains of an allowed name, its upper case and a trailing dot: only the exact names pass.
    assert httpx.get(base + "/healthz", headers={"Host": "localhost.attacker.example"}, timeout=10).status_code == 400
    assert httpx.get(base + "/healthz", headers={"Host": f"LOCALHOST.:{port}"}, timeout=10).status_code == 200


def test_in_a_pod_probes_and_the_configured_names_pass_and_others_are_refused(registry_dir, tmp_path):
    """Bound to 0.0.0.0 with sign-in and DOCCHAT_ALLOWED_HOSTS: the kubelet's probes (Host = the
    pod's IP), the Service's DNS names listed in the setting and the public name pass, others do not."""
    data = tmp_path / "pod-data"
    make_users(data)
    env = {
        "DOCCHAT_HOST": "0.0.0.0",
        "DOCCHAT_AUTH": "password",
        "DOCCHAT_ALLOWED_HOSTS": "docchat.example.com, docchat.docchat.svc.cluster.local,docchat.docchat.svc",
    }
    with running_app(registry_dir, data, extra_env=env) as base:
        for host in (
            "10.8.3.7:8080",
            "[fd00::17]:8080",
            "docchat.docchat.svc.cluster.local:8080",
            "docchat.example.com",
        ):
            assert httpx.get(base + "/healthz", headers={"Host": host}, timeout=10).status_code == 200, host
            assert httpx.get(base + "/readyz", headers={"Host": host}, timeout=10).status_code == 200, host
        for host in ("attacker.example", "docchat", "evil.docchat.example.com"):
            assert httpx.get(base + "/healthz", headers={"Host": host}, timeout=10).status_code == 400, host


def test_in_a_pod_without_the_setting_every_name_reaches_only_the_sign_in(registry_dir, tmp_path):
    """The k8s overlays do not set DOCCHAT_ALLOWED_HOSTS: with sign-in on and a non-loopback
    address every name is answered (probes, Service names), because a rebound name carries no
    credential: the session cookie and the token belong to the real name."""
    data = tmp_path / "pod-default"
    make_users(data)
    with running_app(registry_dir, data, extra_env={"DOCCHAT_HOST": "0.0.0.0", "DOCCHAT_AUTH": "password"}) as base:
        for host in ("10.8.3.7:8080", "docchat", "docchat.docchat.svc.cluster.local:8080", "attacker.example"):
            assert httpx.get(base + "/healthz", headers={"Host": host}, timeout=10).status_code == 200, host
        assert httpx.get(base + "/config", headers={"Host": "attacker.example"}, timeout=10).status_code == 401


SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


def assert_protected(response: httpx.Response, what: str) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (what, name, response.headers.get(name))
    csp = response.headers.get("content-security-policy", "")
    for directive in ("frame-ancestors 'none'", "object-src 'none'", "base-uri 'self'"):
        assert directive in csp, (what, csp)


def test_every_response_carries_the_security_headers(server):
    base, tokens = server["base"], server["tokens"]
    ada = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tokens['ada']}"}, timeout=30)
    anonymous = httpx.Client(base_url=base, timeout=30, follow_redirects=False)
    responses = {
        "Gradio page": ada.get("/"),
        "Gradio config": ada.get("/config"),
        "Gradio asset": ada.get("/gradio_api/info"),
        "FastAPI health": anonymous.get("/healthz"),
        "FastAPI /v1": ada.get("/v1/models"),
        "sign-in page": anonymous.get("/auth/login"),
        "gate refusal": anonymous.get("/config"),
        "gate redirect": anonymous.get("/", headers={"Accept": "text/html"}),
        "unknown event": ada.post("/gradio_api/call/nope", json={"data": []}),
        "host refusal": anonymous.get("/healthz", headers={"Host": "attacker.example"}),
        "too large": ada.post(
            "/v1/search", content=b"x" * (5 * 1024 * 1024), headers={"Content-Type": "application/json"}
        ),
    }
    assert responses["Gradio page"].status_code == 200 and "<html" in responses["Gradio page"].text.lower()
    script = re.search(r'src="\.?/?(assets/[^"]+\.js)"', responses["Gradio page"].text)
    assert script, "no script asset on the page"
    responses["Gradio static asset"] = ada.get("/" + script.group(1))
    assert responses["Gradio static asset"].status_code == 200
    for what, response in responses.items():
        assert_protected(response, what)
    assert responses["gate refusal"].status_code == 401 and responses["host refusal"].status_code == 400
    assert responses["too large"].status_code == 413


HTML_AS_PDF = b"%PDF-1.4\n<html><body><script>document.title='pwned:'+document.cookie</script></body></html>\n"


def test_an_html_file_that_starts_like_a_pdf_is_only_ever_downloaded(server, tmp_path):
    base, tokens = server["base"], server["tokens"]
    bob = Api(base, tokens["bob"])
    assert "is ready" in text_of(bob.call("create_collection", ["bob-originals", "private", ""])[1])
    fake = tmp_path / "report.pdf"
    fake.write_bytes(HTML_AS_PDF)
    real = make_pdf(tmp_path / "real.pdf", ["A real PDF page about originals."])
    bob.upload("bob-originals", fake, index=True)
    bob.upload("bob-originals", real, index=True)
    rows = {row[1]: row[0] for row in bob.result("show_collection", ["bob-originals"])[0]["data"]}
    assert set(rows) == {"report.pdf", "real.pdf"}, rows

    served = bob.http.get(f"/documents/{rows['report.pdf']}.pdf")
    assert served.status_code == 200 and served.content == HTML_AS_PDF  # nothing is lost: it still downloads
    assert served.headers["content-disposition"].startswith("attachment;"), served.headers
    assert served.headers["content-type"] == "application/octet-stream"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in served.headers["content-security-policy"]

    pdf = bob.http.get(f"/documents/{rows['real.pdf']}.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert pdf.headers["content-disposition"].startswith("inline;"), pdf.headers
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["x-content-type-options"] == "nosniff"


# The same rules as plain functions (fast tier): the cases a live server cannot show in one run.


def test_host_policy_from_settings():
    assert [host_name(h) for h in ("[::1]:8080", "LOCALHOST.:80", "10.0.0.7", "Docs.Example.com:443")] == [
        "::1",
        "localhost",
        "10.0.0.7",
        "docs.example.com",
    ]
    laptop = HostPolicy.from_settings(Settings())  # auth none on 127.0.0.1
    assert laptop.check and laptop.allows("localhost:8080") and laptop.allows("[::1]:8080")
    assert not laptop.allows("attacker.example") and not laptop.allows("127.0.0.1.attacker.example")
    pod = HostPolicy.from_settings(Settings(host="0.0.0.0", auth="password"))
    assert not pod.check and pod.allows("anything.example")
    open_pod = HostPolicy.from_settings(Settings(host="0.0.0.0", auth="none", insecure_no_auth=True))
    assert open_pod.check and open_pod.allows("10.8.3.7:8080") and not open_pod.allows("docchat")
    named = HostPolicy.from_settings(Settings(host="0.0.0.0", auth="header", allowed_hosts="*.example.com docchat"))
    assert named.allows("docs.example.com") and named.allows("docchat:8080")
    assert not named.allows("example.com") and not named.allows("docs.example.com.evil")
    assert HostPolicy.from_settings(Settings(host="192.168.1.5", allowed_hosts="x")).allows("192.168.1.5")
    assert not HostPolicy.from_settings(Settings(allowed_hosts="*")).check


def test_a_claimed_upload_is_left_to_the_service_and_only_unclaimed_ones_are_swept(tmp_path):
    now = [1000.0]
    pending = PendingUploads(tmp_path, claim_s=60, clock=lambda: now[0])
    escaped, raw, unclaimed = (
        tmp_path / "a" / "Übersicht.pdf",
        tmp_path / "c" / "Zürich.pdf",
        tmp_path / "b" / "left.pdf",
    )
    for path in (escaped, raw, unclaimed):
        path.parent.mkdir()
        path.write_bytes(b"%PDF-1.4")
    pending.written([str(escaped), str(raw), str(unclaimed), str(tmp_path.parent / "x")])  # outside: ignored
    # Events name files as Python's JSON writes them (non-ASCII escaped) or as a browser does (raw
    # UTF-8); they may then wait in Gradio's queue for longer than the claim period.
    pending.claim(json.dumps({"data": ["c", [{"path": str(escaped)}], True]}).encode())
    pending.claim(json.dumps({"data": ["c", [{"path": str(raw)}], True]}, ensure_ascii=False).encode())
    stale, fresh = tmp_path / "tmpstale", tmp_path / "tmpfresh"  # Gradio's temp files of unfinished uploads
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stale, (time.time() - 120, time.time() - 120))
    now[0] += 30
    assert pending.sweep() == 1 and unclaimed.exists() and not stale.exists()
    now[0] += 31
    assert pending.sweep() == 1
    assert escaped.exists() and raw.exists() and fresh.exists()
    assert not unclaimed.parent.exists() and not pending.waiting
