"""Slots for the indexer's sandboxed children, shared fairly between the runs that want them.

Every PDF range read and every page OCR'd runs in a child process that takes a core (and up to
DOCCHAT_PDF_MEMORY_MB) for seconds. Indexing used to be one global run at a time, so a member's
12-page scan held OCR for 23 s while another member's one-page upload waited behind it (a
3000-page scan: ~95 min). Now runs go side by side, at most ``slots`` children exist at once
whatever the number of runs, and a freed slot goes to the waiting run that holds the fewest slots
(on a tie, the one served longest ago). A run that has just arrived therefore gets the next slot
to free up: a small upload waits for one page of somebody else's scan, not for the whole scan.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

# Remembered "last served" marks beyond this many idle runs are forgotten (bounded memory).
_MAX_IDLE_MARKS = 1024


class _Ticket:
    __slots__ = ("granted",)

    def __init__(self) -> None:
        self.granted = False


class FairShare:
    def __init__(self, slots: int):
        self.slots = max(1, slots)
        self._cond = threading.Condition()
        self._free = self.slots
        self._active: dict[Hashable, int] = {}  # run -> slots it holds
        self._waiting: dict[Hashable, deque[_Ticket]] = {}  # run -> its tickets, oldest first
        self._served: dict[Hashable, int] = {}  # run -> mark of its latest grant
        self._clock = itertools.count()

    @contextmanager
    def slot(self, run: Hashable) -> Iterator[None]:
        """Hold one slot for ``run`` for the duration of the block (waiting for it first)."""
        ticket = _Ticket()
        with self._cond:
            self._waiting.setdefault(run, deque()).append(ticket)
            self._dispatch()
            try:
                while not ticket.granted:
                    self._cond.wait()
            except BaseException:  # interrupted while waiting: leave no ticket or slot behind
                if ticket.granted:
                    self._release(run)
                else:
                    self._waiting[run].remove(ticket)
                    if not self._waiting[run]:
                        del self._waiting[run]
                raise
        try:
            yield
        finally:
            with self._cond:
                self._release(run)

    def busy(self) -> tuple[int, int]:
        """(slots in use, tickets waiting), for logs and tests."""
        with self._cond:
            return self.slots - self._free, sum(len(q) for q in self._waiting.values())

    def _dispatch(self) -> None:
        granted = False
        while self._free and self._waiting:
            run = min(self._waiting, key=lambda r: (self._active.get(r, 0), self._served.get(r, -1)))
            queue = self._waiting[run]
            queue.popleft().granted = True
            if not queue:
                del self._waiting[run]
            self._free -= 1
            self._active[run] = self._active.get(run, 0) + 1
            self._served[run] = next(self._clock)
            granted = True
        if granted:
            self._cond.notify_all()
        if len(self._served) > _MAX_IDLE_MARKS:
            idle = [r for r in self._served if r not in self._active and r not in self._waiting]
            idle.sort(key=self._served.__getitem__)
            for r in idle[: len(idle) // 2]:
                del self._served[r]

    def _release(self, run: Hashable) -> None:
        self._free += 1
        left = self._active[run] - 1
        if left:
            self._active[run] = left
        else:
            del self._active[run]
        self._dispatch()
