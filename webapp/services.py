"""The service layer the UI and CLI share, built once from settings."""

from __future__ import annotations

from dataclasses import dataclass

from webapp.bench.service import BenchService
from webapp.chat.service import ChatService
from webapp.documents.service import DocumentService
from webapp.llm.catalog import ModelCatalog
from webapp.settings import Settings


@dataclass
class Services:
    settings: Settings
    catalog: ModelCatalog
    chat: ChatService
    documents: DocumentService
    bench: BenchService

    def close(self) -> None:
        self.catalog.close()
        self.documents.close()


def build_services(settings: Settings) -> Services:
    catalog = ModelCatalog(settings)
    documents = DocumentService(settings)
    return Services(settings=settings, catalog=catalog, documents=documents,
                    chat=ChatService(catalog, settings, documents), bench=BenchService(settings, catalog))
