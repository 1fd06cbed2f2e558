"""Indexing: read (PDF pages or another format's sections) -> OCR -> chunk -> embed -> store.

DocumentService decides which documents a run may take (webapp/documents/service.py: claims,
access); this module does the work for one run's queue. Reading happens in sandboxed children
(webapp/rag/pdf_text.py for PDFs, webapp/readers for the other formats), spread over every core
by the parse pool and shared fairly between runs. Failures are per document: each ends
``indexed`` or ``failed`` with one sentence.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webapp.atomic import atomic_write_json
from webapp.documents.fair_share import FairShare
from webapp.documents.parse_pool import ParsePool
from webapp.documents.shared_files import SharedFiles
from webapp.errors import UserError
from webapp.rag.chunking import PageChunker
from webapp.rag.ocr import MISSING as OCR_MISSING
from webapp.rag.ocr import OcrResult, ocr_pages
from webapp.rag.pdf_text import PageRange, ParsedPdf, PdfProblem, read_pages, unusable
from webapp.rag.store import Document, DocumentGone, DocumentStore, JobLost
from webapp.rag.text_forms import normalize
from webapp.readers.base import DocumentProblem, Limits
from webapp.readers.registry import format_named, read_sections
from webapp.resources import usable_cpus
from webapp.settings import Settings

log = logging.getLogger(__name__)

TAKEN_OVER = object()  # _index_one's outcome when another replica took the document over

# progress(fraction 0..1, description)
Progress = Callable[[float, str], None]


@dataclass
class IndexReport:
    indexed: list[Document] = field(default_factory=list)
    failed: list[Document] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # labels of documents deleted while queued/indexing
    taken_over: list[str] = field(default_factory=list)  # labels another replica took over (lease ran out)
    pages: int = 0
    chunks: int = 0
    seconds: float = 0.0
    ocr_pages: int = 0  # scanned pages read by OCR
    ocr_seconds: float = 0.0
    ocr_over_budget: int = 0  # scanned pages left unread: past a document's OCR budget

    def summary(self) -> str:
        rate = f", {self.pages / self.seconds:.1f} pages/s" if self.seconds > 0 and self.pages else ""
        text = f"Indexed {len(self.indexed)} document(s): {self.pages} pages, {self.chunks} chunks in {self.seconds:.1f} s{rate}."
        if self.ocr_pages:
            text += f" {self.ocr_pages} scanned page(s) read by OCR in {self.ocr_seconds:.1f} s."
        if self.ocr_over_budget:
            text += f" {self.ocr_over_budget} scanned page(s) were past the OCR budget and not read (see each note)."
        if self.failed:
            text += f" {len(self.failed)} failed: " + "; ".join(f"{d.label}: {d.reason}" for d in self.failed)
        if self.deleted:
            text += f" {len(self.deleted)} deleted while indexing: " + ", ".join(self.deleted) + "."
        if self.taken_over:
            text += f" {len(self.taken_over)} finished by another server: " + ", ".join(self.taken_over) + "."
        return text


def _pages(numbers: Sequence[int]) -> str:
    return ", ".join(map(str, numbers[:10])) + ("…" if len(numbers) > 10 else "")


def _no_text_sentence(all_pages_empty: bool, ocr, ocr_enabled: bool) -> str:
    if not all_pages_empty:
        return "No usable text was found in this PDF."
    if not ocr_enabled:
        return (
            "No text layer was found in this PDF (it looks scanned or image-only) and OCR is turned off "
            "on this server (DOCCHAT_OCR_ENABLED)."
        )
    if ocr is not None and ocr.over_budget:
        return (
            f"No text layer was found in this PDF and OCR found no text in the {len(ocr.texts) + len(ocr.failed)} "
            f"scanned page(s) it tried; the other {len(ocr.over_budget)} were not read (past this server's "
            "OCR budget per document)."
        )
    if ocr is not None and ocr.failed and not ocr.pages:
        reason = next(iter(ocr.failed.values()))
        if reason == OCR_MISSING:
            return "No text layer was found in this PDF, and OCR is not available on this server (Tesseract is not installed)."
        return f"No text layer was found in this PDF and OCR could not read it: {reason.rstrip('.')}."
    return "No text layer was found in this PDF and OCR read no text from its pages."


@dataclass(frozen=True)
class _Run:
    store: DocumentStore
    embedder: Any
    id: int  # the run's key in the fair share of children


class Indexer:
    def __init__(self, settings: Settings, shared: SharedFiles, metrics: Any = None):
        self.settings = settings
        self.shared = shared  # where originals and OCR word boxes are (webapp/documents/shared_files.py)
        self.metrics = metrics
        self.chunker = PageChunker(settings.chunk_size, settings.chunk_overlap)
        self.limits = Limits(max_sections=settings.max_pages)
        self._run_ids = itertools.count(1)
        # The sandboxed children (PDF ranges, OCR pages, other formats) across all runs, shared fairly.
        self._share = FairShare(settings.parse_workers or usable_cpus())

    def run(
        self,
        store: DocumentStore,
        embedder: Any,
        queue: list[Document],
        progress: Progress | None,
        passwords: dict[int, str],
    ) -> IndexReport:
        """Index ``queue`` (documents the caller's run has claimed); failures are per document."""
        report = IndexReport()
        started = time.perf_counter()
        ctx = _Run(store, embedder, next(self._run_ids))  # the id is this run's key in the fair share
        # PDFs are read on every core, big ones split into page ranges (parse_pool.py), and
        # each is chunked and embedded as soon as it has been read, in whatever order that is.
        finished = [0]

        def reading(d: Document) -> None:
            store.set_status(d.id, "parsing")
            if progress:
                progress(finished[0] / max(1, len(queue)), f"{d.label}: reading pages")

        def read(d: Document, password: str | None, start: int, stop: int | None) -> PageRange:
            with self._share.slot(ctx.id):
                return self._read_range(store, d, password, start, stop)

        pool = ParsePool(read, self.settings.parse_workers or usable_cpus(), on_start=reading)
        for n, (doc, parse) in enumerate(pool.parsed(queue, passwords)):
            finished[0] = n

            def step(fraction: float, what: str, n=n, doc=doc):
                if progress:
                    progress((n + fraction) / max(1, len(queue)), f"{doc.label}: {what}")

            done = self._index_one(ctx, doc, step, parse, report)
            if done is TAKEN_OVER:
                report.taken_over.append(doc.label)
            elif done is None:
                report.deleted.append(doc.label)
            elif done.status == "indexed":
                report.indexed.append(done)
                report.pages += done.pages or 0
                report.chunks += done.chunks or 0
            else:
                report.failed.append(done)
        report.seconds = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.documents.labels("indexed").inc(len(report.indexed))
            self.metrics.documents.labels("failed").inc(len(report.failed))
            self.metrics.pages.inc(report.pages)
            self.metrics.ocr_pages.inc(report.ocr_pages)
        if progress:
            progress(1.0, "done")
        return report

    def _read_range(
        self, store: DocumentStore, doc: Document, password: str | None, start: int, stop: int | None
    ) -> PageRange:
        """Pages [start, stop) of a PDF; a document of another format is read whole, as one range
        whose "pages" are its sections (webapp/readers)."""
        s = self.settings
        path = self.shared.local(self.shared.original(doc))
        if doc.format != "pdf":
            sections = read_sections(
                format_named(doc.format), str(path), self.limits, s.pdf_timeout_s, s.pdf_memory_mb, s.pdf_parser_nice
            )
            texts = [normalize(x.text) for x in sections]
            return PageRange(0, texts, len(texts), labels=[x.label for x in sections])
        return read_pages(
            path,
            start,
            stop,
            password=password,
            timeout_s=s.pdf_timeout_s,
            memory_mb=s.pdf_memory_mb,
            max_pages=s.max_pages,
            max_figure_kb=s.pdf_max_figure_kb,
            nice=s.pdf_parser_nice,
        )

    def _index_one(
        self,
        ctx: _Run,
        doc: Document,
        step: Callable[[float, str], None],
        parse: Callable[[], ParsedPdf],
        report: IndexReport,
    ) -> Document | None | object:
        """The document as indexing left it, None if it was deleted meanwhile, TAKEN_OVER if another
        replica took it over (this process's lease ran out: its work is dropped, not stored twice)."""
        store = ctx.store
        try:
            step(0.0, "reading text")
            parsed = parse()
            ocr = self._ocr(ctx, doc, parsed, step)
            if ocr:
                report.ocr_pages += ocr.pages
                report.ocr_seconds += ocr.seconds
                report.ocr_over_budget += len(ocr.over_budget)
            empty = [p for p in parsed.empty_pages if unusable(parsed.pages[p - 1])]
            chunks = self.chunker.split(parsed.pages, parsed.tables)
            if not chunks:
                if doc.format != "pdf":
                    raise DocumentProblem(f"No text was found in this {format_named(doc.format).kind}.", "no-text")
                raise PdfProblem(
                    _no_text_sentence(len(empty) == len(parsed.pages), ocr, self.settings.ocr_enabled), "no-text"
                )
            store.set_status(doc.id, "embedding")
            step(0.2, f"embedding {len(chunks)} chunks")
            vectors = ctx.embedder.embed_documents(
                [c.text for c in chunks], progress=lambda i, n: step(0.2 + 0.75 * i / n, f"embedded {i}/{n} chunks")
            )
            notes = []
            if ocr and ocr.over_budget:
                notes.append(self._over_budget_note(ocr, len(parsed.empty_pages)))
            elif ocr and ocr.pages:
                notes.append(f"Read {ocr.pages} scanned page(s) by OCR in {ocr.seconds:.1f} s.")
            if ocr and ocr.failed:
                notes += sorted(
                    {
                        f"OCR skipped page(s) {_pages(sorted(p for p, r in ocr.failed.items() if r == reason))}: "
                        f"{reason.rstrip('.')}."
                        for reason in ocr.failed.values()
                    }
                )
            if empty:
                notes.append(
                    f"No text layer on page(s) {_pages(empty)}"
                    + (" (OCR found no text there either)." if ocr and not ocr.failed else ".")
                )
            if parsed.skipped_figures:
                notes.append(f"Text inside {parsed.skipped_figures} very large figure(s) was not read.")
            note = " ".join(notes) or None
            store.save_chunks(
                doc.id, [len(p) for p in parsed.pages], chunks, vectors, note=note, page_labels=parsed.labels
            )
            if ocr and ocr.words:
                self._save_ocr_words(doc, ocr)
        except DocumentGone:
            log.info("document %s (%s) was deleted while being indexed", doc.id, doc.label)
        except JobLost as exc:
            log.warning("document %s (%s): %s; this run's result dropped", doc.id, doc.label, exc)
            return TAKEN_OVER
        except (PdfProblem, DocumentProblem) as exc:
            store.set_status(doc.id, "failed", exc.user_message)
        except UserError as exc:
            store.set_status(doc.id, "failed", exc.user_message)
        except Exception:
            log.exception("indexing document %s (%s) failed", doc.id, doc.label)
            store.set_status(doc.id, "failed", "An unexpected error stopped indexing this file; see the server log.")
        return store.document(doc.id)

    def _ocr(self, ctx: _Run, doc: Document, parsed: ParsedPdf, step) -> OcrResult | None:
        """OCR the pages without a text layer (in place), within the document's budget; None when
        off or none (or not a PDF). Each page takes a slot of the fair share, as parsing does."""
        s = self.settings
        if not parsed.empty_pages or not s.ocr_enabled or doc.format != "pdf":
            return None
        step(0.05, f"OCR of {len(parsed.empty_pages)} scanned page(s)")
        result = ocr_pages(
            self.shared.local(self.shared.original(doc)),
            parsed.empty_pages,
            dpi=s.ocr_dpi,
            language=s.ocr_language,
            timeout_s=s.ocr_page_timeout_s,
            memory_mb=s.pdf_memory_mb,
            nice=s.pdf_parser_nice,
            command=s.ocr_command,
            max_pages=s.ocr_max_pages,
            budget_s=s.ocr_max_seconds,
            slot=lambda: self._share.slot(ctx.id),
            progress=lambda done, n: step(0.05 + 0.15 * done / n, f"OCR: {done} of {n} scanned page(s) read"),
        )
        for page, text in result.texts.items():
            parsed.pages[page - 1] = text
        log.info(
            "OCR of %s: %d page(s) read, %d failed, %d over budget, %.1f s",
            doc.label,
            result.pages,
            len(result.failed),
            len(result.over_budget),
            result.seconds,
        )
        return result

    def _save_ocr_words(self, doc: Document, ocr: OcrResult) -> None:
        """The word boxes that let a citation highlight OCR'd text on the page (webapp/rag/page_image.py),
        written once the chunks are committed, so a failed re-index leaves the boxes of the text still
        being searched; failing to write them costs highlights, never the indexed document."""
        try:
            atomic_write_json(
                self.ocr_words_path(doc.sha256),
                {"format_version": 1, "pages": {str(p): w for p, w in ocr.words.items()}},
            )
            self.shared.publish(self.shared.ocr_words(doc.sha256))
        except (OSError, UserError) as exc:
            log.warning("could not keep the OCR word boxes of %s: %s", doc.label, exc)

    def _over_budget_note(self, ocr: OcrResult, scanned: int) -> str:
        s = self.settings
        return (
            f"Read {ocr.pages} of {scanned} scanned page(s) by OCR in {ocr.seconds:.1f} s; page(s) "
            f"{_pages(ocr.over_budget)} were not read: this server reads at most {s.ocr_max_pages} scanned "
            f"pages and {s.ocr_max_seconds:.0f} s of OCR per document."
        )

    def ocr_words_path(self, sha256: str) -> Path:
        return self.shared.root / self.shared.ocr_words(sha256)

    def ocr_words(self, sha256: str, page: int) -> list | None:
        """The OCR'd words of a scanned page (None for born-digital pages)."""
        try:
            path = self.shared.local(self.shared.ocr_words(sha256))
            return json.loads(path.read_text())["pages"].get(str(page))
        except (OSError, ValueError, KeyError, UserError):
            return None
