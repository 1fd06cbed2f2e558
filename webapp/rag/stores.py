"""Which document store the app opens: the embedded one (SQLite + FAISS in the data folder, the
default) or PostgreSQL + pgvector when ``DOCCHAT_DATABASE_URL`` names one (several replicas)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from webapp.pg_db import is_postgres_url
from webapp.rag import store as embedded
from webapp.rag.pg_store import PgDocumentStore
from webapp.rag.store import DocumentStore

# Both implement the same methods (tests/test_store_backends.py holds them to one contract).
AnyDocumentStore = DocumentStore | PgDocumentStore


def open_document_store(settings: Any, embedding_model: str, dimension: int) -> AnyDocumentStore:
    """The store ``settings`` choose. Originals stay in ``data_dir/files`` either way (shared files
    for replicas, DOCCHAT_FILES_URL, are a later step of issue 28)."""
    if is_postgres_url(settings.database_url):
        return PgDocumentStore(settings.database_url, Path(settings.data_dir) / "files", embedding_model, dimension)
    return DocumentStore(settings.data_dir, embedding_model, dimension)


def recorded_embedding_model(settings: Any) -> str | None:
    """The embedding model the configured store was built with (None: a new store)."""
    if is_postgres_url(settings.database_url):
        from webapp.rag.pg_store import recorded_embedding_model as recorded_in_database

        return recorded_in_database(settings.database_url)
    return embedded.recorded_embedding_model(Path(settings.data_dir))
