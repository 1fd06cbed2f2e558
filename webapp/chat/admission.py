"""Admission control for answers: a fixed number generate at once, a short queue waits, the rest are told.

Why: with no bound, every chat that arrives starts at once; each holds a worker thread while it
waits for tokens, so a burst (or a stalled remote server) exhausts the pool and the pod stops
answering anything, its health probe included. Here at most ``slots`` answers run (sized to the
engine's batch, so they share forward passes), at most ``max_waiting`` wait in FIFO order and
can see how many are ahead of them, and anyone beyond that is refused at once with a sentence.

One session (a browser tab) holds at most one ticket: a new question from the same tab replaces
its waiting one, so one tab cannot fill the queue by pressing Send repeatedly.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from webapp.errors import UserError


class Busy(UserError):
    """The server is at capacity; the user should try again shortly."""


class Superseded(UserError):
    """A newer question from the same session took this one's place in the queue."""


WAITING, ACTIVE, DONE = "waiting", "active", "done"


@dataclass(frozen=True)
class AdmissionStats:
    slots: int
    active: int
    waiting: int
    max_waiting: int
    refused: int


class Ticket:
    """One answer's place: ``wait()`` until it is active, ``release()`` when the answer ends."""

    def __init__(self, admission: Admission, session: str | None):
        self._admission = admission
        self.session = session
        self.state = WAITING
        self.superseded = False

    def ahead(self) -> int:
        """How many answers are queued in front of this one (0 once it runs)."""
        return self._admission._ahead(self)

    def wait(self, timeout: float) -> bool:
        """True once this ticket may run; False if still waiting after ``timeout`` seconds."""
        return self._admission._wait(self, timeout)

    def release(self) -> None:
        self._admission._release(self)

    @property
    def active(self) -> bool:
        return self.state == ACTIVE


class Admission:
    def __init__(self, slots: int, max_waiting: int):
        if slots < 1 or max_waiting < 0:
            raise ValueError("need at least one slot and a non-negative queue")
        self.slots = slots
        self.max_waiting = max_waiting
        self._cond = threading.Condition()
        self._active = 0
        self._queue: deque[Ticket] = deque()
        self._by_session: dict[str, Ticket] = {}
        self._refused = 0

    def enter(self, session: str | None = None) -> Ticket:
        """A ticket that is active at once or waiting in line; raises Busy when the line is full."""
        ticket = Ticket(self, session)
        with self._cond:
            previous = self._by_session.get(session) if session else None
            if previous is not None and previous.state == WAITING:
                previous.superseded = True
                self._drop(previous)
            if self._active < self.slots and not self._queue:
                ticket.state = ACTIVE
                self._active += 1
            elif len(self._queue) >= self.max_waiting:
                self._refused += 1
                raise Busy(
                    f"The server is busy ({self._active} being answered, {len(self._queue)} waiting). "
                    "Please try again in a minute."
                )
            else:
                self._queue.append(ticket)
            if session:
                self._by_session[session] = ticket
        return ticket

    def stats(self) -> AdmissionStats:
        with self._cond:
            return AdmissionStats(self.slots, self._active, len(self._queue), self.max_waiting, self._refused)

    # -- ticket operations ------------------------------------------------------------
    def _ahead(self, ticket: Ticket) -> int:
        with self._cond:
            if ticket.state != WAITING:
                return 0
            try:
                return self._queue.index(ticket)
            except ValueError:
                return 0

    def _wait(self, ticket: Ticket, timeout: float) -> bool:
        with self._cond:
            self._cond.wait_for(lambda: ticket.state != WAITING, timeout)
            if ticket.superseded:
                raise Superseded("You asked a newer question; this one was dropped from the queue.")
            return ticket.state == ACTIVE

    def _release(self, ticket: Ticket) -> None:
        with self._cond:
            if ticket.state == ACTIVE:
                self._active -= 1
            elif ticket.state == WAITING:
                self._queue.remove(ticket)
            ticket.state = DONE
            if ticket.session and self._by_session.get(ticket.session) is ticket:
                del self._by_session[ticket.session]
            self._promote()

    def _drop(self, ticket: Ticket) -> None:
        """Remove a waiting ticket (caller holds the lock)."""
        self._queue.remove(ticket)
        ticket.state = DONE
        self._cond.notify_all()

    def _promote(self) -> None:
        while self._queue and self._active < self.slots:
            self._queue.popleft().state = ACTIVE
            self._active += 1
        self._cond.notify_all()
