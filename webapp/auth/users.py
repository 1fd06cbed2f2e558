"""The user store: names, roles, argon2 password hashes and API tokens, in the data folder's SQLite.

One database for everything the app keeps (documents and users share ``store.sqlite3``), so a
backup or a volume snapshot holds both. Passwords are hashed with argon2id through argon2-cffi
(memory-hard; its parameters live in the hash, so raising them later rehashes on next sign-in).
API tokens are 256-bit random strings shown once; only their SHA-256 is stored: a slow hash
protects guessable passwords, and a random token has nothing to guess.

Browser sessions are random tokens too: the cookie holds the token, the table its SHA-256, an
expiry and the user, so sign-out, disabling or removing a user ends every session at once, a
forged or replayed cookie matches nothing, and sessions survive a restart of the app. A new
password or disabling the account also revokes every session and API token of that user (the
one place that does it, whoever asks: the Users tab or `python -m webapp users`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from webapp.auth.access import ROLES
from webapp.auth.throttle import SCHEMA as THROTTLE_SCHEMA
from webapp.errors import UserError
from webapp.sqlite_db import ThreadConnections, migrate, transaction

SESSION_PREFIX = "dcs_"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 takes any length; a bound keeps one sign-in from costing megabytes
TOKEN_PREFIX = "dct_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

# Versioned migrations of the user tables (webapp/sqlite_db.py: migrate); a step is never edited
# once released, a change is a new step. 1: users, API tokens, sessions (folders made before
# versions were recorded already have them: CREATE ... IF NOT EXISTS). 2: the sign-in throttle's
# counts and familiar addresses (webapp/auth/throttle.py), kept across restarts.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS users (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            role TEXT NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
            password_hash TEXT,
            created_at TEXT NOT NULL,
            last_login_at TEXT,
            disabled INTEGER NOT NULL DEFAULT 0)""",
        """CREATE TABLE IF NOT EXISTS api_tokens (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            token_sha256 TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            last_used_at TEXT)""",
        """CREATE TABLE IF NOT EXISTS sessions (
            token_sha256 TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL)""",
    ),
    THROTTLE_SCHEMA,
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    created_at: str
    last_login_at: str | None
    disabled: bool
    tokens: int = 0


@dataclass(frozen=True)
class TokenInfo:
    id: int
    created_at: str
    last_used_at: str | None


def valid_name(name: str) -> str:
    name = (name or "").strip()
    if not _NAME.match(name):
        raise UserError(
            "A user name is 1 to 64 characters: letters, digits and . _ @ - (starting with a letter or digit)."
        )
    return name


def valid_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"The role must be one of {', '.join(ROLES)}.")
    return role


def valid_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise UserError(f"A password needs at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"A password can have at most {MAX_PASSWORD} characters.")
    return password


class UserStore:
    def __init__(self, data_dir: Path):
        from argon2 import PasswordHasher

        self.path = Path(data_dir) / "store.sqlite3"
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._hasher = PasswordHasher()
        # Verifying an unknown name still costs one argon2 check, so timing does not tell
        # which names exist.
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        self._connections = ThreadConnections(self.path)
        migrate(self._db(), "users", MIGRATIONS)

    def _db(self) -> sqlite3.Connection:
        return self._connections.get()

    # -- users -----------------------------------------------------------------------
    def add(self, name: str, role: str, password: str) -> User:
        name, role = valid_name(name), valid_role(role)
        digest = self._hasher.hash(valid_password(password))
        try:
            self._db().execute(
                "INSERT INTO users(name, role, password_hash, created_at) VALUES (?, ?, ?, ?)",
                (name, role, digest, _now()),
            )
        except sqlite3.IntegrityError as exc:
            raise UserError(f"There is already a user named {name}.") from exc
        return self.get(name)

    def add_external(self, name: str, role: str) -> User:
        """A user vouched for by the identity proxy (header auth): no password, cannot sign in with one."""
        name, role = valid_name(name), valid_role(role)
        self._db().execute("INSERT OR IGNORE INTO users(name, role, created_at) VALUES (?, ?, ?)", (name, role, _now()))
        return self.get(name)

    def touch_login(self, user: User) -> None:
        self._db().execute("UPDATE users SET last_login_at = ? WHERE id = ?", (_now(), user.id))

    _USER_SQL = "SELECT u.*, (SELECT COUNT(*) FROM api_tokens t WHERE t.user_id = u.id) AS tokens FROM users u"

    def get(self, name: str) -> User:
        row = self._db().execute(self._USER_SQL + " WHERE u.name = ?", ((name or "").strip(),)).fetchone()
        if row is None:
            shown = "".join(ch for ch in (name or "").strip()[:64] if ch.isprintable())
            raise UserError(f"There is no user named {shown!r}.")
        return self._user(row)

    @staticmethod
    def _user(row) -> User:
        return User(
            id=row["id"],
            name=row["name"],
            role=row["role"],
            created_at=row["created_at"],
            last_login_at=row["last_login_at"],
            disabled=bool(row["disabled"]),
            tokens=row["tokens"],
        )

    def list(self) -> list[User]:
        rows = self._db().execute(self._USER_SQL + " ORDER BY u.name")
        return [self._user(r) for r in rows]

    def set_password(self, name: str, password: str) -> int:
        """Set a new password and end every session and API token of the user (a password is
        changed because the old one may be known: whatever was obtained with it must stop
        working); returns how many sessions and tokens ended."""
        user = self.get(name)
        digest = self._hasher.hash(valid_password(password))
        db = self._db()
        with transaction(db):
            db.execute("UPDATE users SET password_hash = ? WHERE id = ?", (digest, user.id))
            return self._revoke_all(db, user.id)

    @staticmethod
    def _revoke_all(db: sqlite3.Connection, user_id: int) -> int:
        ended = db.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,)).rowcount
        return ended + db.execute("DELETE FROM api_tokens WHERE user_id = ?", (user_id,)).rowcount

    def set_role(self, name: str, role: str) -> User:
        user = self.get(name)
        self._db().execute("UPDATE users SET role = ? WHERE id = ?", (valid_role(role), user.id))
        return self.get(name)

    def set_disabled(self, name: str, disabled: bool = True) -> User:
        user = self.get(name)
        db = self._db()
        with transaction(db):
            db.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(disabled), user.id))
            if disabled:
                # Revoked, not merely refused while disabled: enabling the account again must not
                # bring back tokens that may have leaked (the likely reason it was disabled).
                self._revoke_all(db, user.id)
        return self.get(name)

    def remove(self, name: str) -> User:
        """Delete a user with their tokens, sessions and conversations; their collections go to
        the admins and their memberships end, so a later user of the same name inherits nothing."""
        user = self.get(name)
        db = self._db()
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        with transaction(db):
            if "collections" in tables:
                db.execute("UPDATE collections SET owner = NULL WHERE owner = ? COLLATE NOCASE", (user.name,))
                db.execute("DELETE FROM collection_members WHERE user_name = ?", (user.name,))
            if "signin_known" in tables:
                db.execute("DELETE FROM signin_known WHERE user_name = ?", (user.name,))
            if "conversations" in tables:
                db.execute("DELETE FROM conversations WHERE owner = ?", (user.name,))  # messages cascade
            db.execute("DELETE FROM users WHERE id = ?", (user.id,))  # cascades to tokens and sessions
        return user

    def count_admins(self) -> int:
        return self._db().execute("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0").fetchone()[0]

    # -- credentials -------------------------------------------------------------------
    def verify_password(self, name: str, password: str) -> User | None:
        """The user if the name and password match and the account is enabled, else None."""
        from argon2.exceptions import InvalidHashError, VerificationError

        row = (
            self._db()
            .execute("SELECT id, password_hash, disabled FROM users WHERE name = ?", ((name or "").strip(),))
            .fetchone()
        )
        digest = row["password_hash"] if row is not None and row["password_hash"] else self._dummy_hash
        try:
            self._hasher.verify(digest, (password or "")[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            return None
        if row is None or row["disabled"]:
            return None
        updates = {"last_login_at": _now()}
        if self._hasher.check_needs_rehash(digest):
            updates["password_hash"] = self._hasher.hash(password)
        sets = ", ".join(f"{k} = ?" for k in updates)
        self._db().execute(f"UPDATE users SET {sets} WHERE id = ?", (*updates.values(), row["id"]))
        return self.get(name)

    def issue_token(self, name: str) -> str:
        """A new API token for ``name``: returned once, only its hash is kept."""
        user = self.get(name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self._db().execute(
            "INSERT INTO api_tokens(user_id, token_sha256, created_at) VALUES (?, ?, ?)",
            (user.id, _sha256(token), _now()),
        )
        return token

    def tokens(self, name: str) -> list[TokenInfo]:
        """The API tokens of ``name`` (their ids and dates; the tokens themselves are not kept)."""
        user = self.get(name)
        rows = self._db().execute(
            "SELECT id, created_at, last_used_at FROM api_tokens WHERE user_id = ? ORDER BY id", (user.id,)
        )
        return [TokenInfo(r["id"], r["created_at"], r["last_used_at"]) for r in rows]

    def revoke_tokens(self, name: str, token_id: int | None = None) -> int:
        """End one API token of ``name`` (by its id) or all of them; returns how many ended."""
        user = self.get(name)
        if token_id is None:
            return self._db().execute("DELETE FROM api_tokens WHERE user_id = ?", (user.id,)).rowcount
        ended = (
            self._db().execute("DELETE FROM api_tokens WHERE user_id = ? AND id = ?", (user.id, int(token_id))).rowcount
        )
        if not ended:
            raise UserError(
                f"{user.name} has no API token {int(token_id)}; `users token {user.name} --list` shows them."
            )
        return ended

    def user_for_token(self, token: str) -> User | None:
        """The enabled user a token belongs to, else None."""
        if not (token or "").startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        row = (
            self._db()
            .execute(
                "SELECT u.name, t.id AS token_id, t.last_used_at FROM api_tokens t JOIN users u ON u.id = t.user_id "
                "WHERE t.token_sha256 = ? AND u.disabled = 0",
                (_sha256(token),),
            )
            .fetchone()
        )
        if row is None:
            return None
        # Every request carries the token: record its use once per ten minutes, not a write per request.
        stale = (datetime.now(UTC) - timedelta(minutes=10)).isoformat(timespec="seconds")
        if not row["last_used_at"] or row["last_used_at"] < stale:
            self._db().execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (_now(), row["token_id"]))
        return self.get(row["name"])

    # -- browser sessions ----------------------------------------------------------------
    def start_session(self, user: User, lifetime_s: float) -> str:
        """A new session token for a signed-in user (the cookie's value); only its hash is kept."""
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        expires = (datetime.now(UTC) + timedelta(seconds=lifetime_s)).isoformat(timespec="seconds")
        db = self._db()
        with transaction(db):
            db.execute("DELETE FROM sessions WHERE expires_at < ?", (_now(),))
            db.execute(
                "INSERT INTO sessions(token_sha256, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (_sha256(token), user.id, _now(), expires),
            )
        return token

    def user_for_session(self, token: str) -> User | None:
        """The enabled user of an unexpired session, else None."""
        if not (token or "").startswith(SESSION_PREFIX) or len(token) > 200:
            return None
        row = (
            self._db()
            .execute(
                "SELECT u.name FROM sessions s JOIN users u ON u.id = s.user_id "
                "WHERE s.token_sha256 = ? AND s.expires_at > ? AND u.disabled = 0",
                (_sha256(token), _now()),
            )
            .fetchone()
        )
        return self.get(row["name"]) if row else None

    def end_session(self, token: str) -> None:
        self._db().execute("DELETE FROM sessions WHERE token_sha256 = ?", (_sha256(token or ""),))

    def close(self) -> None:
        self._connections.close()
