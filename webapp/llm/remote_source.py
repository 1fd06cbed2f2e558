"""Models of remote OpenAI-compatible servers (OVMS, vLLM, llama.cpp, another DocChat): the
configured endpoints plus, in a cluster, OVMS Services discovered by label. ``refresh()`` asks
every server for its /models at once; a server that is down becomes one unavailable choice with
the reason, never an error page."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from webapp.errors import ModelNotAvailable, UserError
from webapp.llm.base import ChatBackend
from webapp.llm.choices import ModelChoice
from webapp.settings import RemoteEndpoint, Settings

log = logging.getLogger(__name__)

REMOTE_PREFIX = "remote:"


def remote_choice_name(endpoint: str, model: str) -> str:
    """The id of a remote model ("remote:<server>/<model>"): stable for clients, never parsed here."""
    return f"{REMOTE_PREFIX}{endpoint}/{model}"


class RemoteSource:
    kind = "remote"

    def __init__(self, settings: Settings):
        self._settings = settings
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()  # one refresh at a time (Refresh may be pressed twice)
        self._servers: dict[str, Any] = {}  # name -> RemoteServer
        self._retired: list[Any] = []  # replaced or vanished servers: streams may still use them
        self._discovered: list[RemoteEndpoint] = []
        self._models: dict[str, list[str]] = {}
        self._errors: dict[str, str] = {}

    def refresh(self) -> None:
        with self._refreshing:
            self._refresh()

    def _refresh(self) -> None:
        from webapp.llm.openai_remote import RemoteServer

        endpoints = list(self._settings.remote_endpoints)
        if self._settings.discover_ovms:
            endpoints += self._discover()
        with self._lock:
            servers = dict(self._servers)
        wanted = {ep.name: ep for ep in endpoints}
        retired = [servers.pop(name) for name in set(servers) - set(wanted)]  # a discovered Service went away
        for name, endpoint in wanted.items():
            if name not in servers or servers[name].endpoint != endpoint:
                if name in servers:
                    retired.append(servers[name])
                servers[name] = RemoteServer(endpoint)
        models, errors = {}, {}
        # All servers at once: a refresh waits for the slowest endpoint, not for the sum of them.
        with ThreadPoolExecutor(max_workers=max(1, len(servers)), thread_name_prefix="list-models") as pool:
            asked = {name: pool.submit(server.list_models) for name, server in servers.items()}
        for name, future in asked.items():
            try:
                models[name] = future.result()
            except UserError as exc:
                log.warning("remote endpoint %s: %s", name, exc.user_message)
                errors[name] = exc.user_message
        with self._lock:
            # Retired servers are closed with the catalog, not now: an answer may still be streaming
            # through their connection pool.
            self._servers, self._models, self._errors = servers, models, errors
            self._retired += retired

    def _discover(self) -> list[RemoteEndpoint]:
        """OVMS Services in the namespace; a failure only costs the discovered entries."""
        from webapp.cluster import Cluster

        try:
            found = Cluster(self._settings.namespace).discover_ovms(self._settings.ovms_api_key_file)
        except UserError as exc:  # keep what was found before: a blip of the API server is not "OVMS is gone"
            log.warning(
                "OVMS discovery failed: %s; keeping the %d found before", exc.user_message, len(self._discovered)
            )
            return list(self._discovered)
        configured = {ep.name for ep in self._settings.remote_endpoints}
        log.info("discovered OVMS endpoints: %s", ", ".join(ep.base_url for ep in found) or "none")
        self._discovered = [ep for ep in found if ep.name not in configured]
        return list(self._discovered)

    def choices(self) -> list[ModelChoice]:
        with self._lock:
            models, errors = dict(self._models), dict(self._errors)
        out = [
            ModelChoice(remote_choice_name(server, m), f"{m} @ {server} (remote)", self.kind, server=server, model=m)
            for server, names in models.items()
            for m in names
        ]
        out += [
            ModelChoice(
                remote_choice_name(server, ""), f"{server}: unavailable", self.kind, False, error, server=server
            )
            for server, error in errors.items()
        ]
        return out

    def open(self, choice: ModelChoice) -> ChatBackend:
        from webapp.llm.openai_remote import RemoteChatBackend

        with self._lock:
            server = self._servers.get(choice.server or "")
        if server is None or not choice.model:
            raise ModelNotAvailable(f"No remote server named {choice.server!r} is configured.")
        return RemoteChatBackend(server, choice.model)

    def is_loaded(self, choice: ModelChoice) -> bool:
        return True  # nothing to load here; the server has it

    def has_loaded(self, choice: ModelChoice) -> bool:
        return True

    def load_error(self, name: str) -> str | None:
        return None

    def problems(self) -> list[str]:
        return []

    def engine_stats(self) -> dict[str, dict[str, Any]]:
        return {}

    def close(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()) + self._retired, {}
            self._retired = []
        for server in servers:
            server.close()
