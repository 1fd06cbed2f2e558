"""BenchService: what the Compare tab calls - list targets, run one comparison per session, export."""

from __future__ import annotations

import threading

from webapp.auth.access import LOCAL, Actor
from webapp.bench.engine import BenchConfig, Hooks, run_benchmark, token_counter
from webapp.bench.report import BenchReport
from webapp.bench.targets import Target, available_targets
from webapp.downloads import download_folder
from webapp.errors import UserError
from webapp.llm.base import CancelToken
from webapp.settings import Settings


class BenchService:
    def __init__(self, settings: Settings, catalog):
        self.settings = settings
        self.catalog = catalog
        self._lock = threading.Lock()
        self._running: dict[str, CancelToken] = {}
        # One comparison at a time: two would measure each other's load, not the targets.
        self._exclusive = threading.Lock()

    def targets(self) -> list[Target]:
        return available_targets(self.settings, self.catalog)

    def token_counter(self):
        return token_counter(self.settings)

    @property
    def enabled(self) -> bool:
        return self.settings.enable_bench

    def run(
        self, target_ids: list[str], cfg: BenchConfig, hooks: Hooks, session: str, actor: Actor = LOCAL
    ) -> BenchReport:
        actor.require_admin("run benchmarks")
        if not self.enabled:
            raise UserError(
                "Benchmarks are turned off on this server (DOCCHAT_ENABLE_BENCH=false): they load "
                "extra model copies and take every core from the chats."
            )
        chosen = self.select(target_ids)
        if not self._exclusive.acquire(blocking=False):
            raise UserError("Another comparison is running; results would disturb each other. Try again when it ends.")
        try:
            with self._lock:
                self._running[session] = hooks.cancel
            return run_benchmark(chosen, cfg, hooks, count_tokens=self.token_counter())
        finally:
            with self._lock:
                self._running.pop(session, None)
            self._exclusive.release()

    def select(self, target_ids: list[str] | None, default_if_empty: bool = False) -> list[Target]:
        """The targets named, in order; none named: the default model (``default_if_empty``, the
        CLI) or a sentence (the Compare tab, where nothing was ticked)."""
        targets = self.targets()
        if not target_ids:
            if default_if_empty and targets:
                default = f"openvino:{self.settings.default_model}"
                return [t for t in targets if t.id == default] or targets[:1]
            raise UserError("Choose at least one target to measure.")
        by_id = {t.id: t for t in targets}
        unknown = [i for i in target_ids if i not in by_id]
        if unknown:
            raise UserError(f"Unknown target(s): {', '.join(unknown)}; `python -m webapp bench --list` shows them.")
        return [by_id[i] for i in target_ids]

    def cancel(self, session: str) -> bool:
        with self._lock:
            token = self._running.get(session)
        if token:
            token.cancel()
        return token is not None

    # Downloads of past comparisons kept in the temp folder (a pod's /tmp is a small emptyDir).
    KEEP_EXPORTS = 20

    @classmethod
    def export(cls, report: BenchReport) -> list[str]:
        folder = download_folder("bench", keep=cls.KEEP_EXPORTS)
        paths = []
        for name, text in (
            ("benchmark.csv", report.to_csv()),
            ("benchmark.json", report.to_json()),
            ("benchmark.md", report.to_markdown()),
        ):
            path = folder / name
            path.write_text(text, encoding="utf-8")
            paths.append(str(path))
        return paths
