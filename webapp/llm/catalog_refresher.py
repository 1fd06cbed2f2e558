"""Keeps the model list current while the server runs, so nobody has to restart it.

The quantize Job may publish a model into the registry after the app started (readyz said 503
until a restart), and OVMS replicas come and go behind discovery. One background thread asks
every source again every ``catalog_refresh_s`` seconds and then makes sure the default model is
loaded, which is what /readyz waits for. Its first round runs right after the port opens: remote
servers and the Kubernetes API are asked there and not before, so an unreachable one cannot keep
the pod from answering its probes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from webapp.errors import UserError
from webapp.llm.catalog import ModelCatalog

log = logging.getLogger(__name__)


class CatalogRefresher:
    def __init__(
        self,
        catalog: ModelCatalog,
        interval_s: float,
        load_default: bool = True,
        first_round: Callable[[], None] | None = None,
    ):
        self._catalog = catalog
        self._interval_s = interval_s
        self._load_default = load_default
        self._first_round = first_round
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="catalog-refresh", daemon=True)
        self.rounds = 0  # finished rounds, for tests and the log
        self.first_round_done = threading.Event()  # every source asked once: /readyz waits for it

    def start(self) -> CatalogRefresher:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        if self._first_round:
            self._first_round()
        while not self._stop.is_set():
            self.refresh_once()
            if self._interval_s <= 0 or self._stop.wait(self._interval_s):
                return

    def refresh_once(self) -> None:
        before = {c.name for c in self._catalog.choices()}
        # Source by source, loading the default after each: a slow remote server or API (timeouts
        # bound them, webapp/cluster.py) does not hold back the local default model, /readyz.
        for source in self._catalog.sources:
            try:
                source.refresh()
                if self._load_default:
                    self._ensure_default_loaded()
            except Exception:  # a refresh must never end the thread: the next round may work
                log.exception("refreshing the %s models failed", source.kind)
        added = sorted({c.name for c in self._catalog.choices()} - before)
        if added and self.rounds:
            log.info("new models offered: %s", ", ".join(added))
        self.rounds += 1
        self.first_round_done.set()

    def _ensure_default_loaded(self) -> None:
        """Load the default model once it exists; a model that failed to load is not retried
        every round (its error stays visible in /readyz and the picker)."""
        catalog = self._catalog
        name = catalog.default_choice()
        if not name:
            if not self.rounds:
                log.warning("no chat model to load: %s", "; ".join(catalog.problems()) or "registry is empty")
            return
        if catalog.has_loaded(name) or catalog.load_error(name):
            return
        try:
            catalog.get(name)
        except UserError as exc:
            log.error("loading %s failed: %s", name, exc.user_message)
