"""Sign-in throttling that slows guessing without locking the real user out.

The design follows two well-known schemes:

- Microsoft Entra's *smart lockout* keeps separate counts for familiar and unfamiliar sign-in
  locations, so an attacker elsewhere cannot lock the owner out of their usual place;
- OWASP's *exponential back-off* (and its "device cookie" note): instead of a lock, each failure
  past a few free ones pushes the next allowed attempt of that key further out (2 s, 4 s, 8 s ...)
  up to a cap, answered with 429 and Retry-After.

Here a location is the client address (an IPv6 address counts by its /64, as one host owns it).
An attempt is *familiar* when that user has signed in from that address before (``signin_known``);
it is then counted under its own key ``pair:<user>|<address>`` only, with a small cap
(``familiar_cap_s``): failures from other addresses, or by other people behind the same proxy,
never delay it, and the owner typing a wrong password waits at most the small cap. Any other
attempt is counted under ``user:<name>`` and ``addr:<address>``, with free failures
(``free_failures`` per name, four times as many per address) and a larger cap
(``stranger_cap_s``): that is where guessing from outside happens. The price: someone sharing the
owner's address (the same NAT, or every client when a load balancer hides addresses) guesses at
the small cap's pace, about 2,900 guesses a day at 30 s; argon2 and the 8-character minimum are
what remain against that, as with any scheme that never locks.

Counting is atomic and durable: an attempt reserves its slot (the failure is counted first, in one
``BEGIN IMMEDIATE`` transaction in the data folder's SQLite) *before* the password hash is
checked, so concurrent guesses from many threads or processes see each other and at most the free
ones get through; a success takes its reservation back. The counts survive a restart. A key quiet
for ``forget_s`` starts over, and such rows are pruned, so made-up names cannot grow the table
for long. On a shared PostgreSQL (``DOCCHAT_DATABASE_URL``) the counts hold across app replicas, and
an advisory lock takes the place of BEGIN IMMEDIATE.
"""

from __future__ import annotations

import ipaddress
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from webapp.database import Database

# Step 2 of the user store's migrations (webapp/auth/users.py): released, so never edited; a change
# to these tables is a new step there.
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS signin_failures (
        key TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        last_at REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS signin_failures_by_time ON signin_failures(last_at)",
    """CREATE TABLE IF NOT EXISTS signin_known (
        user_name TEXT NOT NULL COLLATE NOCASE,
        address TEXT NOT NULL,
        last_at REAL NOT NULL,
        PRIMARY KEY (user_name, address))""",
)
# The same tables on PostgreSQL, component "throttle" (webapp/pg_db.py). Seconds since the epoch
# need DOUBLE PRECISION (Postgres' REAL is 4 bytes: whole minutes apart at today's dates). user_name
# is always written lower-cased (``begin``), so the key needs no case-insensitive collation.
POSTGRES_MIGRATIONS = (
    (
        """CREATE TABLE signin_failures (
            key TEXT PRIMARY KEY,
            failures INTEGER NOT NULL,
            last_at DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX signin_failures_by_time ON signin_failures(last_at)",
        """CREATE TABLE signin_known (
            user_name TEXT NOT NULL,
            address TEXT NOT NULL,
            last_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (user_name, address))""",
        "CREATE INDEX signin_known_by_time ON signin_known(last_at)",
    ),
)

KNOWN_FOR_S = 90 * 86400  # an address not used to sign in for 90 days is a stranger again


def address_key(address: str) -> str:
    """The location an address stands for: itself, or its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def delay_s(failures: int, free: int, cap_s: float) -> float:
    """Seconds a key must stay quiet after its last failure: none for the first ``free``, then
    2, 4, 8 ... seconds, never more than ``cap_s``."""
    if failures < free:
        return 0.0
    return min(cap_s, 2.0 ** min(failures - free + 1, 40))


@dataclass
class Attempt:
    """One sign-in attempt: refused (``retry_after_s`` > 0) or holding reserved failure slots."""

    user: str
    address: str
    familiar: bool
    retry_after_s: float = 0.0
    reserved: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return self.retry_after_s > 0


class SigninThrottle:
    """``location``: the data folder (whose tables the user store creates, webapp/auth/users.py), the
    postgresql:// URL of the shared database (the throttle migrates its own tables there), or either
    open as a Database (webapp/database.py)."""

    def __init__(
        self,
        location: Database | Path | str,
        free_failures: int = 5,
        familiar_cap_s: float = 30.0,
        stranger_cap_s: float = 900.0,
        forget_s: float = 3600.0,
        clock=time.time,  # wall clock: the counts outlive the process
    ):
        self._db = Database.at(location)
        if self._db.postgres:
            self._db.migrate("throttle", POSTGRES_MIGRATIONS)
        self.free = free_failures
        self.familiar_cap_s = familiar_cap_s
        self.stranger_cap_s = stranger_cap_s
        self.forget_s = forget_s
        self._clock = clock
        self._pruned_at = 0.0

    def _limits(self, attempt: Attempt) -> dict[str, tuple[int, float]]:
        """key -> (free failures, cap) for the keys this attempt is counted under."""
        if attempt.familiar:
            return {f"pair:{attempt.user}|{attempt.address}": (self.free, self.familiar_cap_s)}
        return {
            f"user:{attempt.user}": (self.free, self.stranger_cap_s),
            f"addr:{attempt.address}": (4 * self.free, self.stranger_cap_s),
        }

    def begin(self, user: str, address: str) -> Attempt:
        """Refuse the attempt, or count it as failed in advance (``succeeded`` takes that back)."""
        now = self._clock()
        attempt = Attempt(user.lower(), address_key(address), familiar=False)
        db = self._db
        with db.transaction(serialized="signin_throttle"):
            if now - self._pruned_at > 60:
                self._pruned_at = now
                db.execute("DELETE FROM signin_failures WHERE last_at < ?", (now - self.forget_s,))
                db.execute("DELETE FROM signin_known WHERE last_at < ?", (now - KNOWN_FOR_S,))
            known = db.execute(
                "SELECT 1 FROM signin_known WHERE user_name = ? AND address = ? AND last_at >= ?",
                (attempt.user, attempt.address, now - KNOWN_FOR_S),
            ).fetchone()
            attempt.familiar = known is not None
            limits = self._limits(attempt)
            counts = {}
            for key, (free, cap) in limits.items():
                row = db.execute("SELECT failures, last_at FROM signin_failures WHERE key = ?", (key,)).fetchone()
                failures = 0 if row is None or now - row["last_at"] > self.forget_s else row["failures"]
                counts[key] = failures
                if row is not None and failures:
                    # min(cap): a clock set back must not turn the wait into hours
                    wait = min(cap, row["last_at"] + delay_s(failures, free, cap) - now)
                    attempt.retry_after_s = max(attempt.retry_after_s, wait)
            if attempt.refused:
                return attempt
            for key, failures in counts.items():
                db.execute(
                    "INSERT INTO signin_failures(key, failures, last_at) VALUES (?, ?, ?) ON CONFLICT (key) "
                    "DO UPDATE SET failures = excluded.failures, last_at = excluded.last_at",
                    (key, failures + 1, now),
                )
            attempt.reserved = list(counts)
        return attempt

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: this user's counts start over, the address is now familiar, and
        the address count gets its reserved slot back (a valid account must not wipe the count of
        an address that also guesses at others)."""
        db = self._db
        with db.transaction():
            for key in attempt.reserved:
                if key.startswith("addr:"):
                    db.execute(
                        "UPDATE signin_failures SET failures = CASE WHEN failures > 1 THEN failures - 1 ELSE 0 END "
                        "WHERE key = ?",
                        (key,),
                    )
                else:
                    db.execute("DELETE FROM signin_failures WHERE key = ?", (key,))
            db.execute(
                "INSERT INTO signin_known(user_name, address, last_at) VALUES (?, ?, ?) "
                "ON CONFLICT (user_name, address) DO UPDATE SET last_at = excluded.last_at",
                (attempt.user, attempt.address, self._clock()),
            )

    def close(self) -> None:
        self._db.close()


def wait_sentence(seconds: float) -> str:
    """The one sentence a refused attempt gets."""
    if seconds < 90:
        n, unit = max(1, math.ceil(seconds)), "second"
    else:
        n, unit = math.ceil(seconds / 60), "minute"
    return f"Too many failed sign-ins; try again in {n} {unit}{'s' if n > 1 else ''}."
