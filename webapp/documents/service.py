"""Documents: upload into collections, index (parse -> chunk -> embed -> store), search.

The UI tabs and the CLI (`python -m webapp index/search/ask`) both go through
this service, so a data folder built by one works with the other. The embedder
and store open lazily: the chat works even when no embedding model is built.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from webapp.documents.uploads import store_upload
from webapp.errors import UserError
from webapp.rag.chunking import PageChunker
from webapp.rag.pdf_text import ParsedPdf, PdfProblem, parse_pdf
from webapp.rag.retrieval import Passage, Retriever
from webapp.rag.store import Document, DocumentStore
from webapp.registry import RegistryError, load_entry
from webapp.settings import Settings

log = logging.getLogger(__name__)

# progress(fraction 0..1, description)
Progress = Callable[[float, str], None]


@dataclass
class UploadResult:
    label: str
    document: Document | None = None
    duplicate: bool = False
    error: str | None = None


@dataclass
class IndexReport:
    indexed: list[Document] = field(default_factory=list)
    failed: list[Document] = field(default_factory=list)
    pages: int = 0
    chunks: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        rate = f", {self.pages / self.seconds:.1f} pages/s" if self.seconds > 0 and self.pages else ""
        text = f"Indexed {len(self.indexed)} document(s): {self.pages} pages, {self.chunks} chunks in {self.seconds:.1f} s{rate}."
        if self.failed:
            text += f" {len(self.failed)} failed: " + "; ".join(f"{d.label}: {d.reason}" for d in self.failed)
        return text


class DocumentService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._open_lock = threading.Lock()
        self._index_lock = threading.Lock()
        self._store: DocumentStore | None = None
        self._embedder = None
        self._retriever: Retriever | None = None
        self.chunker = PageChunker(settings.chunk_size, settings.chunk_overlap)
        self.repairs: list[str] = []

    # -- lazy components ----------------------------------------------------------------
    def _open(self) -> None:
        with self._open_lock:
            if self._store is not None:
                return
            from webapp.rag.embedder import Embedder

            try:
                entry = load_entry(Path(self.settings.models_dir) / self.settings.embedding_model)
            except RegistryError as exc:
                raise UserError(f"Documents need the embedding model {self.settings.embedding_model}: "
                                f"{exc.user_message}") from exc
            embedder = Embedder(entry)
            store = DocumentStore(self.settings.data_dir, entry.name, embedder.dimension)
            store.collection_id(self.settings.default_collection)
            self.repairs = store.check_and_repair()
            self._embedder, self._store = embedder, store
            self._retriever = Retriever(store, embedder, self.settings.min_similarity)

    @property
    def store(self) -> DocumentStore:
        self._open()
        return self._store

    def available(self) -> str | None:
        """None when documents work, else the sentence saying why not."""
        try:
            self._open()
            return None
        except UserError as exc:
            return exc.user_message

    # -- collections and documents ---------------------------------------------------------
    def collections(self) -> list[str]:
        return self.store.collections()

    def create_collection(self, name: str) -> str:
        self.store.collection_id(name, create=True)
        return name.strip()

    def documents(self, collection: str | None = None) -> list[Document]:
        return self.store.documents(collection)

    def add_files(self, collection: str, files: Iterable[tuple[Path, str]]) -> list[UploadResult]:
        """Store uploads; each file gets its own result, so one bad file never blocks the rest."""
        results = []
        max_bytes = int(self.settings.max_upload_mb * 1e6)
        for path, name in files:
            try:
                stored = store_upload(Path(path), name, self.store.files_dir, max_bytes)
                doc, new = self.store.add_document(collection, stored.sha256, stored.label, stored.size_bytes)
                results.append(UploadResult(stored.label, doc, duplicate=not new))
            except UserError as exc:
                log.info("upload %r refused: %s", name, exc.user_message)
                results.append(UploadResult(str(name), error=exc.user_message))
        return results

    def delete(self, doc_id: int) -> Document:
        doc = self.store.delete_document(int(doc_id))
        if doc is None:
            raise UserError(f"There is no document with id {doc_id}.")
        return doc

    def requeue(self, collection: str | None = None, only_failed: bool = False) -> int:
        docs = [d for d in self.documents(collection) if not only_failed or d.status == "failed"]
        for d in docs:
            self.store.set_status(d.id, "queued")
        return len(docs)

    # -- indexing ----------------------------------------------------------------------------
    def index_queued(self, collection: str | None = None, progress: Progress | None = None,
                     passwords: dict[int, str] | None = None) -> IndexReport:
        """Index every queued document (of one collection, or all); failures are per document."""
        if not self._index_lock.acquire(blocking=False):
            raise UserError("Indexing is already running; wait for it to finish.")
        try:
            report = IndexReport()
            started = time.perf_counter()
            queue = [d for d in self.documents(collection) if d.status == "queued"]
            passwords = passwords or {}
            # The next PDF is parsed (in its child process) while this one is embedded:
            # parsing then costs almost no wall time (docs/documents.md has the figures).
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pdf-prefetch") as prefetch:
                parsed = {}
                if queue:
                    parsed[0] = prefetch.submit(self._parse, queue[0], passwords.get(queue[0].id))
                for n, doc in enumerate(queue):
                    if n + 1 < len(queue):
                        nxt = queue[n + 1]
                        parsed[n + 1] = prefetch.submit(self._parse, nxt, passwords.get(nxt.id))

                    def step(fraction: float, what: str, n=n, doc=doc):
                        if progress:
                            progress((n + fraction) / max(1, len(queue)), f"{doc.label}: {what}")
                    done = self._index_one(doc, step, parsed.pop(n))
                    (report.indexed if done.status == "indexed" else report.failed).append(done)
                    if done.status == "indexed":
                        report.pages += done.pages or 0
                        report.chunks += done.chunks or 0
            report.seconds = time.perf_counter() - started
            if progress:
                progress(1.0, "done")
            return report
        finally:
            self._index_lock.release()

    def _parse(self, doc: Document, password: str | None) -> ParsedPdf:
        s = self.settings
        self.store.set_status(doc.id, "parsing")
        return parse_pdf(self.store.files_dir / f"{doc.sha256}.pdf", password=password, timeout_s=s.pdf_timeout_s,
                         memory_mb=s.pdf_memory_mb, max_pages=s.max_pages)

    def _index_one(self, doc: Document, step: Callable[[float, str], None], parsing: Future) -> Document:
        store = self.store
        try:
            step(0.0, "reading text")
            parsed = parsing.result()
            chunks = self.chunker.split(parsed.pages)
            if not chunks:
                raise PdfProblem("No usable text was found in this PDF.", "no-text")
            store.set_status(doc.id, "embedding")
            step(0.2, f"embedding {len(chunks)} chunks")
            vectors = self._embedder.embed_documents(
                [c.text for c in chunks], progress=lambda i, n: step(0.2 + 0.75 * i / n, f"embedded {i}/{n} chunks"))
            note = None
            if parsed.empty_pages:
                pages = ", ".join(map(str, parsed.empty_pages[:10])) + ("…" if len(parsed.empty_pages) > 10 else "")
                note = f"No text layer on page(s) {pages}."
            store.save_chunks(doc.id, [len(p) for p in parsed.pages], chunks, vectors, note=note)
        except PdfProblem as exc:
            store.set_status(doc.id, "failed", exc.user_message)
        except UserError as exc:
            store.set_status(doc.id, "failed", exc.user_message)
        except Exception:
            log.exception("indexing document %s (%s) failed", doc.id, doc.label)
            store.set_status(doc.id, "failed", "An unexpected error stopped indexing this file; see the server log.")
        return store.document(doc.id)

    # -- retrieval -------------------------------------------------------------------------
    def search(self, collection: str, question: str, k: int | None = None, mode: str = "hybrid") -> list[Passage]:
        if not (question or "").strip():
            raise UserError("Type a question first.")
        self._open()
        return self._retriever.search(collection, question, k or self.settings.retrieval_k, mode)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
