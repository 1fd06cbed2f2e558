"""The service layer the UI and CLI share, built once from settings."""

from __future__ import annotations

from dataclasses import dataclass

from webapp.auth.gate import Authenticator
from webapp.auth.users import UserStore
from webapp.bench.service import BenchService
from webapp.chat.answering import Answerer
from webapp.chat.conversations import ConversationStore
from webapp.chat.service import ChatService
from webapp.documents.service import DocumentService
from webapp.documents.sync import SyncService
from webapp.llm.catalog import ModelCatalog
from webapp.llm.registry_source import RegistrySource
from webapp.metrics import Metrics
from webapp.settings import Settings


@dataclass
class Services:
    settings: Settings
    catalog: ModelCatalog
    chat: ChatService
    answers: Answerer
    documents: DocumentService
    sync: SyncService  # collections kept equal to a folder or a bucket (docs/documents.md, Sync)
    bench: BenchService
    users: UserStore
    conversations: ConversationStore
    auth: Authenticator
    metrics: Metrics

    def close(self) -> None:
        self.catalog.close()
        self.documents.close()
        self.conversations.close()
        self.users.close()


def build_services(settings: Settings, ask_remote_servers: bool = True) -> Services:
    """``ask_remote_servers=False`` scans only the local registry now: the server asks remote
    servers (and the Kubernetes API, for discovery) after its port is open (webapp/server.py),
    so an unreachable one cannot keep the pod from answering its probes."""
    catalog = ModelCatalog(settings)
    catalog.refresh(None if ask_remote_servers else [RegistrySource.kind])
    users = UserStore.for_settings(settings)
    metrics = Metrics()
    documents = DocumentService(settings, users, metrics)
    chat = ChatService(catalog, settings, metrics)
    return Services(
        settings=settings,
        catalog=catalog,
        documents=documents,
        sync=SyncService(documents),
        chat=chat,
        answers=Answerer(chat, documents, settings),
        bench=BenchService(settings, catalog),
        users=users,
        conversations=ConversationStore(users.database),  # one connection per thread for both
        auth=Authenticator(settings, users),
        metrics=metrics,
    )
