"""Read many PDFs on every core: small files whole, big files split into page ranges.

pypdf is pure Python, so reading PDFs is most of the indexing time and only more
processes make it faster. Files are started largest first (a big file started
last would leave the other cores idle at the end). A file's first job reads its
first FIRST_RANGE pages and learns the page count; the rest of a longer file is
split into one range per worker (at most MAX_RANGE pages each) and those ranges
jump the queue, so a single 500-page manual is read by every core instead of one.
Each range runs in its own limited child process (webapp.rag.pdf_text.read_pages),
started when the service's fair share of children grants it a slot; bounded ranges
mean a 3000-page file gives a slot back every few seconds to whoever else is waiting.

Results come back per document in completion order, as a function that returns
the assembled ParsedPdf or raises the PdfProblem that stopped it, so the caller
handles a failure exactly where it would handle any other.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from webapp.rag.pdf_text import PageRange, ParsedPdf, assemble
from webapp.rag.store import Document

# Pages read by a file's first job; a paper is usually done in one job.
FIRST_RANGE = 32
# The smallest range worth another process (each opens the PDF again).
MIN_RANGE = 16
# The largest: ~5 s of pypdf (about 26 pages/s per core), the longest another upload waits for a slot.
MAX_RANGE = 128

# read(document, password, start, stop) -> PageRange
ReadRange = Callable[[Document, "str | None", int, "int | None"], PageRange]


@dataclass
class _File:
    doc: Document
    password: str | None
    parts: list[PageRange] = field(default_factory=list)
    unread: int = 1  # ranges queued or running; the first job is the only one until it returns
    done: bool = False


class ParsePool:
    def __init__(self, read: ReadRange, workers: int, on_start: Callable[[Document], None] = lambda d: None):
        self.read = read
        self.workers = max(1, workers)
        self.on_start = on_start

    def parsed(
        self, docs: list[Document], passwords: dict[int, str] | None = None
    ) -> Iterator[tuple[Document, Callable[[], ParsedPdf]]]:
        passwords = passwords or {}
        jobs: deque[tuple[_File, int, int | None]] = deque(
            (_File(d, passwords.get(d.id)), 0, FIRST_RANGE) for d in sorted(docs, key=lambda d: -d.size_bytes)
        )
        running: dict[Future, tuple[_File, int, int | None]] = {}
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="pdf-parse") as pool:
            while jobs or running:
                # A few jobs queued beyond the running ones so no core idles between them;
                # parsed text waits in memory only that far ahead.
                while jobs and len(running) < 2 * self.workers:
                    file, start, stop = jobs.popleft()
                    if file.done:  # its document already failed
                        continue
                    if start == 0:
                        self.on_start(file.doc)
                    running[pool.submit(self.read, file.doc, file.password, start, stop)] = (file, start, stop)
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    file, start, stop = running.pop(future)
                    file.unread -= 1
                    if file.done:
                        continue
                    try:
                        part = future.result()
                    except BaseException as exc:  # the document fails; its other ranges are dropped
                        file.done = True
                        yield file.doc, _raiser(exc)
                        continue
                    file.parts.append(part)
                    read = start + len(part.pages)  # a non-PDF document comes whole, past FIRST_RANGE
                    if start == 0 and stop is not None and part.total > read:
                        rest = [(file, a, b) for a, b in self._ranges(read, part.total)]
                        file.unread += len(rest)
                        jobs.extendleft(reversed(rest))
                    if file.unread == 0:
                        file.done = True
                        yield file.doc, _assembler(file.parts)

    def _ranges(self, start: int, total: int) -> list[tuple[int, int]]:
        size = min(MAX_RANGE, max(MIN_RANGE, math.ceil((total - start) / self.workers)))
        return [(a, min(a + size, total)) for a in range(start, total, size)]


def _raiser(exc: BaseException) -> Callable[[], ParsedPdf]:
    def parse() -> ParsedPdf:
        raise exc

    return parse


def _assembler(parts: list[PageRange]) -> Callable[[], ParsedPdf]:
    return lambda: assemble(parts)
