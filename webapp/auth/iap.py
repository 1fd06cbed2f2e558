"""Google IAP's signed identity: verify ``x-goog-iap-jwt-assertion`` instead of believing a header.

IAP puts the user's email in two places: the plain ``X-Goog-Authenticated-User-Email`` header,
which anything that reaches the pod can also send, and an ES256 JWT signed with one of Google's
published keys, whose audience names the one backend service IAP guards. Only the JWT proves the
request went through IAP for *this* service, so in header mode with ``iap_audience`` set the user
is the JWT's ``email`` claim and nothing else (Google: "Securing your app with signed headers").

PyJWT does the cryptography; this module only pins what must be true of the token (ES256, the
issuer, the audience, exp/iat) and keeps Google's keys: from a file (``{kid: PEM}``, for clusters
without egress and for tests) or fetched from Google's URL, cached, and fetched again when a token
names a key id not seen yet (Google rotates keys), at most once a minute.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from webapp.errors import UserError

log = logging.getLogger(__name__)

ASSERTION_HEADER = b"x-goog-iap-jwt-assertion"
GOOGLE_IAP_HEADER = "x-goog-authenticated-user-email"  # the plain, unsigned header IAP also sets
GOOGLE_KEYS_URL = "https://www.gstatic.com/iap/verify/public_key"  # {kid: PEM}, ES256 keys
ISSUER = "https://cloud.google.com/iap"
ALGORITHM = "ES256"
LEEWAY_S = 30  # clock skew between Google's signer and this node
# /projects/NUMBER/global/backendServices/ID (load balancer, GKE Ingress), /projects/NUMBER/apps/ID
# (App Engine), regional and Cloud Run forms: always a project *number*, never a placeholder.
AUDIENCE = re.compile(r"^/projects/[0-9]+/\S+$")
MAX_KEYS_BYTES = 1 << 20


class KeysUnavailable(UserError):
    """Google's IAP keys could not be had, so no assertion can be checked (the request is refused)."""


class AssertionRejected(Exception):
    """The assertion is missing or not valid; the message is the reason, for the log only."""


def check_audience(audience: str) -> str:
    if not AUDIENCE.match(audience):
        raise UserError(
            f"DOCCHAT_IAP_AUDIENCE {audience[:120]!r} is not an IAP audience: it looks like "
            "/projects/PROJECT_NUMBER/global/backendServices/SERVICE_ID, with numbers from "
            "`gcloud compute backend-services describe` (docs/users.md)."
        )
    return audience


def parse_keys(raw: bytes | str, source: str) -> dict[str, ec.EllipticCurvePublicKey]:
    """``{kid: PEM}`` -> P-256 public keys. Raises ValueError (with the detail) if none is usable."""
    document = json.loads(raw)
    if not isinstance(document, dict):
        raise ValueError(f"{source} is not a JSON object of key id -> PEM")
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    for kid, pem in document.items():
        try:
            key = load_pem_public_key(str(pem).encode())
        except ValueError as exc:
            log.warning("IAP key %r in %s skipped: not a PEM public key (%s)", kid, source, exc)
            continue
        # A key of another type under an ES256 token would fail anyway; say why here, once.
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            log.warning("IAP key %r in %s skipped: not a P-256 (ES256) key", kid, source)
            continue
        keys[str(kid)] = key
    if not keys:
        raise ValueError(f"{source} holds no P-256 public key")
    return keys


class IAPKeys:
    """Google's IAP public keys by key id, read from ``keys_file`` or fetched from ``url``.

    Reloaded when a token names an unknown key id (a rotation) or the copy is older than
    ``max_age_s`` (a retired key stops being accepted), but never more often than once per
    ``min_refetch_s``: a flood of tokens with made-up key ids costs one fetch a minute, not one
    per request. A failed reload keeps the keys already held.
    """

    def __init__(
        self,
        url: str = GOOGLE_KEYS_URL,
        keys_file: Path | None = None,
        min_refetch_s: float = 60.0,
        max_age_s: float = 6 * 3600.0,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.url = url
        self.keys_file = keys_file
        self.min_refetch_s = min_refetch_s
        self.max_age_s = max_age_s
        self.timeout_s = timeout_s
        self.clock = clock
        self.keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self.loaded_at: float | None = None
        self.tried_at: float | None = None
        self.loads = 0  # successful and failed attempts, for the log and the tests
        self._lock = threading.Lock()

    @property
    def source(self) -> str:
        return str(self.keys_file) if self.keys_file else self.url

    def get(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        """The key for ``kid``, or None if it is not among IAP's keys. Raises KeysUnavailable when
        no key could ever be loaded (the request cannot be checked, so it is refused)."""
        with self._lock:
            now = self.clock()
            stale = self.loaded_at is None or now - self.loaded_at > self.max_age_s
            may_try = self.tried_at is None or now - self.tried_at >= self.min_refetch_s
            if (kid not in self.keys or stale) and may_try:
                self._reload(now)
            if not self.keys:
                raise KeysUnavailable(
                    "Sign-in cannot be checked right now: Google's IAP signing keys could not be "
                    "loaded; try again in a minute."
                )
            return self.keys.get(kid)

    def load_now(self) -> None:
        """Load at start (a keys file): a missing or broken file is a start-up error, not a 503 later."""
        with self._lock:
            self._reload(self.clock())
        if not self.keys:
            raise UserError(
                f"The IAP keys file {self.keys_file} could not be read as a JSON object of key id -> "
                "PEM public key (P-256); see the log for why."
            )

    def _reload(self, now: float) -> None:
        self.tried_at = now
        self.loads += 1
        try:
            keys = parse_keys(self._read(), self.source)
        except Exception as exc:  # whatever went wrong, the outcome is a refusal, never a crash
            held = f"keeping the {len(self.keys)} held" if self.keys else "none held"
            log.warning("IAP keys could not be loaded from %s (%s); %s", self.source, exc, held)
            return
        if set(keys) != set(self.keys):
            log.info("IAP keys loaded from %s: %s", self.source, ", ".join(sorted(keys)))
        self.keys, self.loaded_at = keys, now

    def _read(self) -> bytes:
        if self.keys_file:
            return Path(self.keys_file).read_bytes()[:MAX_KEYS_BYTES]
        response = httpx.get(self.url, timeout=self.timeout_s, follow_redirects=False)
        response.raise_for_status()
        if len(response.content) > MAX_KEYS_BYTES:
            raise ValueError(f"{len(response.content)} bytes is too large for a key list")
        return response.content


class IAPVerifier:
    """Checks an IAP assertion and returns the email it was signed for."""

    def __init__(self, audience: str, keys: IAPKeys, leeway_s: float = LEEWAY_S):
        self.audience = check_audience(audience)
        self.keys = keys
        self.leeway_s = leeway_s

    def email(self, assertion: bytes | None) -> str:
        """The token's ``email`` claim. Raises AssertionRejected (reason for the log) or KeysUnavailable."""
        if not assertion:
            raise AssertionRejected("no x-goog-iap-jwt-assertion header (missing)")
        token = assertion.decode("latin-1").strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AssertionRejected(f"malformed token ({exc})") from None
        # Pinned before any key is looked up: "none" and HS256-with-the-public-key are refused here,
        # and jwt.decode below accepts ES256 only as well.
        if header.get("alg") != ALGORITHM:
            raise AssertionRejected(f"algorithm {header.get('alg')!r} is not {ALGORITHM}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AssertionRejected("no key id (kid) in the token header")
        key = self.keys.get(kid)
        if key is None:
            raise AssertionRejected(f"unknown key id {kid[:64]!r} (not among IAP's public keys)")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=ISSUER,
                leeway=self.leeway_s,
                options={"require": ["exp", "iat", "aud", "iss", "email"]},
            )
        except jwt.ExpiredSignatureError:
            raise AssertionRejected("expired") from None
        except jwt.InvalidAudienceError:
            raise AssertionRejected("wrong audience (not DOCCHAT_IAP_AUDIENCE)") from None
        except jwt.InvalidIssuerError:
            raise AssertionRejected(f"wrong issuer (not {ISSUER})") from None
        except jwt.InvalidSignatureError:
            raise AssertionRejected(f"bad signature (not made by IAP key {kid[:64]!r})") from None
        except jwt.ImmatureSignatureError:
            raise AssertionRejected("issued in the future (iat)") from None
        except jwt.PyJWTError as exc:
            raise AssertionRejected(f"invalid token ({exc})") from None
        email = claims.get("email")
        if not isinstance(email, str) or not email.strip():
            raise AssertionRejected("no email claim")
        return email.strip()


def verifier_for(audience: str, keys_file: Path | None, keys_url: str) -> IAPVerifier:
    keys = IAPKeys(url=keys_url, keys_file=keys_file)
    verifier = IAPVerifier(audience, keys)
    if keys_file:
        keys.load_now()
    return verifier
