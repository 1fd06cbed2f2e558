"""Google IAP's signed identity against a real `python -m webapp serve --auth header`, through HTTP.

The tests are their own IAP: they make a P-256 key, give the server its public half as the keys
file ({kid: PEM}, DOCCHAT_IAP_KEYS_FILE) and sign ES256 assertions with the private half. The
audit's attack - the plain X-Goog-Authenticated-User-Email header alone, from a trusted address,
made a request the password admin and minted a token - must now be refused, as must every token
that is not IAP's own for this audience. The key cache is tested against a real local HTTP
server standing in for Google's key URL (www.gstatic.com cannot be reached from here).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import ROOT, free_port, running_app, webapp_command
from tests.gradio_events import call_event
from webapp.auth.iap import ISSUER, IAPKeys, KeysUnavailable

AUDIENCE = "/projects/123456789012/global/backendServices/4242424242"
KID = "test-kid-1"
ADMIN = "ada@example.com"
IAP_HEADER = "X-Goog-Authenticated-User-Email"
ASSERTION = "x-goog-iap-jwt-assertion"


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


IAP_KEY = new_key()  # the one key the server is given
OTHER_KEY = new_key()  # anyone else's


def claims(**overrides) -> dict:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "email": ADMIN,
        "sub": "accounts.google.com:1000001",
        "iat": now - 5,
        "exp": now + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key=IAP_KEY, kid=KID, **overrides) -> str:
    return jwt.encode(claims(**overrides), key, algorithm="ES256", headers={"kid": kid})


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forged(alg: str, secret: bytes = b"") -> str:
    """A token PyJWT will not make: alg none, or HS256 keyed with the public PEM (key confusion)."""
    signing_input = f"{_b64({'alg': alg, 'kid': KID, 'typ': 'JWT'})}.{_b64(claims())}"
    if alg == "none":
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def header_env(data: Path, **extra: str) -> dict:
    keys = data.parent / f"{data.name}-iap-keys.json"
    keys.write_text(json.dumps({KID: public_pem(IAP_KEY)}))
    return {
        "DOCCHAT_AUTH": "header",
        "DOCCHAT_TRUSTED_PROXIES": '["127.0.0.1/32"]',
        "DOCCHAT_AUTH_HEADER": IAP_HEADER,
        "DOCCHAT_IAP_AUDIENCE": AUDIENCE,
        "DOCCHAT_IAP_KEYS_FILE": str(keys),
        **extra,
    }


@pytest.fixture(scope="module")
def server(registry_dir, tmp_path_factory):
    from webapp.auth.users import UserStore

    data = tmp_path_factory.mktemp("iap-data")
    store = UserStore(data)
    store.add(ADMIN, "admin", "ada-admin-password")  # the password admin of the audit
    store.close()
    with running_app(registry_dir, data, extra_env=header_env(data)) as base:
        yield {"base": base, "log": data / "server.log"}


def get_config(base: str, headers: dict, **client) -> httpx.Response:
    with httpx.Client(base_url=base, timeout=30, **client) as http:
        return http.get("/config", headers=headers)


def test_a_valid_assertion_signs_in_the_user_it_names(server):
    base = server["base"]
    config = get_config(base, {ASSERTION: sign()})
    assert config.status_code == 200 and config.json()["username"] == ADMIN
    # The same header IAP adds beside it, agreeing with the token, changes nothing.
    both = get_config(base, {ASSERTION: sign(), IAP_HEADER: f"accounts.google.com:{ADMIN}"})
    assert both.status_code == 200 and both.json()["username"] == ADMIN
    # It acts as that user: the admin may mint an API token, which then works on its own.
    with httpx.Client(base_url=base, headers={ASSERTION: sign()}, timeout=120) as http:
        status, events = call_event(http, "users_token", [ADMIN, "admin", ""])
    assert status == 200 and events[-1][0] == "complete"
    token = re.search(r"dct_[A-Za-z0-9_-]+", json.dumps(events[-1][1])).group(0)
    assert get_config(base, {"Authorization": f"Bearer {token}"}).json()["username"] == ADMIN
    # A first-time email becomes a user with the default role (viewer), named by the token.
    newcomer = get_config(base, {ASSERTION: sign(email="newcomer@example.com")})
    assert newcomer.status_code == 200 and newcomer.json()["username"] == "newcomer@example.com"


def test_the_plain_header_alone_is_refused(server):
    """The audit's attack, from the trusted address: the header alone neither signs in nor mints a token."""
    base = server["base"]
    plain = {IAP_HEADER: f"accounts.google.com:{ADMIN}"}
    refused = get_config(base, plain)
    assert refused.status_code == 401
    assert (
        refused.json()["detail"]
        == "Sign in through Google IAP: this request carries no valid IAP sign-in for this app."
    )
    with httpx.Client(base_url=base, headers=plain, timeout=60) as http:
        assert call_event(http, "users_token", [ADMIN, "admin", ""])[0] == 401
        assert (
            http.post("/gradio_api/upload", files={"files": ("a.pdf", b"%PDF-1.4", "application/pdf")}).status_code
            == 401
        )
    assert (
        "IAP assertion from 127.0.0.1 refused: no x-goog-iap-jwt-assertion header (missing)"
        in server["log"].read_text()
    )


BAD_TOKENS = {
    "expired": (lambda: sign(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), "expired"),
    "wrong audience": (lambda: sign(aud="/projects/123456789012/global/backendServices/1"), "wrong audience"),
    "wrong issuer": (lambda: sign(iss="https://accounts.google.com"), "wrong issuer"),
    "unknown kid": (lambda: sign(key=OTHER_KEY, kid="not-an-iap-key"), "unknown key id 'not-an-iap-key'"),
    "another key": (lambda: sign(key=OTHER_KEY), "bad signature"),
    "HS256 keyed with the PEM": (
        lambda: forged("HS256", public_pem(IAP_KEY).encode()),
        "algorithm 'HS256' is not ES256",
    ),
    "alg none": (lambda: forged("none"), "algorithm 'none' is not ES256"),
    "no email": (lambda: sign(email=None), "invalid token"),
    "no expiry": (lambda: sign(exp=None), "invalid token"),
    "garbage": (lambda: "not.a.jwt", "malformed token"),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_every_assertion_that_is_not_iaps_own_is_refused(server, case):
    make, reason = BAD_TOKENS[case]
    # Alone, and with the plain header naming the admin beside it: either way 401.
    for headers in ({ASSERTION: make()}, {ASSERTION: make(), IAP_HEADER: f"accounts.google.com:{ADMIN}"}):
        response = get_config(server["base"], headers)
        assert response.status_code == 401, (case, response.text)
    assert f"refused: {reason}" in server["log"].read_text(), case


def test_a_header_that_disagrees_with_the_token_is_refused(server):
    response = get_config(
        server["base"], {ASSERTION: sign(email="eve@example.com"), IAP_HEADER: f"accounts.google.com:{ADMIN}"}
    )
    assert response.status_code == 401
    assert f"names '{ADMIN}' but the signed assertion is for 'eve@example.com'" in server["log"].read_text()


def test_a_valid_assertion_from_an_untrusted_address_is_refused(server):
    response = get_config(server["base"], {ASSERTION: sign()}, transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    assert response.status_code == 401


def test_unreachable_key_url_refuses_with_one_sentence_and_keeps_serving(registry_dir, tmp_path):
    """No keys file and Google's URL unreachable: requests are refused (503, one sentence), the
    reason is logged, the process lives on."""
    data = tmp_path / "nokeys-data"
    data.mkdir()
    env = header_env(data, DOCCHAT_IAP_KEYS_URL=f"http://127.0.0.1:{free_port()}/public_key")
    del env["DOCCHAT_IAP_KEYS_FILE"]
    with running_app(registry_dir, data, extra_env=env) as base:
        refused = get_config(base, {ASSERTION: sign()})
        assert refused.status_code == 503
        assert refused.json()["detail"].startswith("Sign-in cannot be checked right now")
        assert httpx.get(base + "/healthz", timeout=30).status_code == 200
        assert get_config(base, {ASSERTION: sign()}).status_code == 503  # again, still alive
        assert "IAP keys could not be loaded from http://127.0.0.1:" in (data / "server.log").read_text()


@pytest.mark.parametrize(
    "audience, sentence",
    [
        (None, "Sign-in through Google IAP needs DOCCHAT_IAP_AUDIENCE"),
        ("/projects/PROJECT_NUMBER/global/backendServices/SERVICE_ID", "is not an IAP audience"),
    ],
)
def test_iap_header_without_a_real_audience_does_not_start(registry_dir, tmp_path, audience, sentence):
    env = header_env(tmp_path / "data")
    if audience is None:
        del env["DOCCHAT_IAP_AUDIENCE"]
    else:
        env["DOCCHAT_IAP_AUDIENCE"] = audience
    run = subprocess.run(
        [*webapp_command(registry_dir, tmp_path / "data"), "serve", "--port", "1"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and sentence in run.stderr, run.stderr[-2000:]


class KeyServer:
    """A real HTTP server standing in for Google's key URL: counts fetches, can be made to fail."""

    def __init__(self):
        self.document: dict[str, str] = {KID: public_pem(IAP_KEY)}
        self.failing = False
        self.fetches = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                owner.fetches += 1
                body = b"oops" if owner.failing else json.dumps(owner.document).encode()
                self.send_response(500 if owner.failing else 200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/iap/verify/public_key"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def key_server():
    server = KeyServer()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_unknown_key_ids_cost_one_fetch_a_minute_not_one_per_request(key_server):
    clock = Clock()
    keys = IAPKeys(url=key_server.url, clock=clock)
    assert keys.get(KID) is not None and key_server.fetches == 1  # fetched on first use
    for _ in range(5):
        assert keys.get(KID) is not None
    assert key_server.fetches == 1  # cached
    clock.now += 61  # (right after a fetch even an unknown id waits for the next minute)
    for _ in range(20):
        assert keys.get("rotated") is None
    assert key_server.fetches == 2  # one refetch for the unknown id, not twenty
    # Google rotates: the new key is fetched once the minute has passed.
    rotated = new_key()
    key_server.document["rotated"] = public_pem(rotated)
    assert keys.get("rotated") is None and key_server.fetches == 2
    clock.now += 61
    assert keys.get("rotated") is not None and key_server.fetches == 3
    # A copy older than six hours is fetched again, so a retired key stops being accepted.
    del key_server.document[KID]
    clock.now += 6 * 3600 + 1
    assert keys.get(KID) is None and key_server.fetches == 4


def test_a_failed_fetch_refuses_without_crashing_and_keeps_held_keys(key_server):
    clock = Clock()
    key_server.failing = True
    keys = IAPKeys(url=key_server.url, clock=clock)
    for _ in range(3):
        with pytest.raises(KeysUnavailable, match="could not be loaded"):
            keys.get(KID)
    assert key_server.fetches == 1  # the failure is rate-limited too
    key_server.failing = False
    clock.now += 61
    assert keys.get(KID) is not None and key_server.fetches == 2
    # Held keys outlive a failed refresh: an outage at Google does not sign everyone out.
    key_server.failing = True
    clock.now += 6 * 3600 + 1
    assert keys.get(KID) is not None and key_server.fetches == 3


def test_keys_file_entries_that_are_not_p256_keys_are_skipped(tmp_path):
    from cryptography.hazmat.primitives.asymmetric import rsa

    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({KID: public_pem(IAP_KEY), "rsa": rsa_pem, "junk": "not a pem"}))
    keys = IAPKeys(keys_file=path)
    keys.load_now()
    assert set(keys.keys) == {KID}
    path.write_text("[]")
    broken = IAPKeys(keys_file=path)
    with pytest.raises(Exception, match="could not be read as a JSON object"):
        broken.load_now()
