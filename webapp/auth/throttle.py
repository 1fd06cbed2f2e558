"""Failed sign-ins counted per key (a user name, a client address) over a sliding window.

In memory on purpose: a restart forgets the counts, which costs an attacker a pod restart per
few guesses, and argon2 makes each guess slow anyway. The number of keys is bounded so a flood
of made-up names cannot grow the process.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque


class Throttle:
    def __init__(self, window_s: float = 900.0, max_keys: int = 20_000, clock=time.monotonic):
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def wait_s(self, limits: dict[str, int]) -> float:
        """Seconds until every key is under its limit again (0 = may try now)."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key, limit in limits.items():
                times = self._recent(key, now)
                if len(times) >= limit:
                    wait = max(wait, times[len(times) - limit] + self.window_s - now)
        return wait

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                times.append(now)
                self._failures[key] = times
                self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def forget(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
