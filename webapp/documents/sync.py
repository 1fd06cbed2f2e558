"""Keep a collection equal to a folder or a Cloud Storage prefix (issue 25, docs/documents.md "Sync").

One run: list the source (only names with a known format, webapp/readers/registry.py), read each
file whose version changed since the last run (a folder: size, mtime, ctime and inode; a bucket:
the object's generation), compare its sha256 with the collection's document for that path (its
``source_key``), then add the new ones, add-and-index the changed ones, remove the documents whose
file is gone, and leave the rest alone. The CLI (`python -m webapp sync`), the Documents tab's
"Sync now" and the app's own schedule (DOCCHAT_SYNC_INTERVAL_S) each make one call: ``SyncService.run``.

What a run promises:

- Nothing is lost to a partial view: a source that cannot be listed changes nothing; a file that
  cannot be read (vanished mid-run, permission denied, a download failing) is one line under
  ``failed`` and its document stays as it was; a changed file whose new version fails to index
  keeps its previous version searchable. Only files absent from a complete listing are removed,
  and a listing that comes back empty while the collection holds files from it is refused (an
  unmounted volume looks like that) unless ``allow_empty``.
- A changed file's old version stays searchable until the new one is indexed (then it is removed).
- Names are only labels and keys: files are read into a staging folder under names of our own, so
  a name like ``../x.pdf``, 1,000 characters long or not UTF-8 never becomes a path. Symbolic links
  are never followed (neither files nor folders): a link to /etc or to anything outside the folder
  cannot bring it in; links are listed under ``skipped``.
- A document is unique per (collection, content): two files with the same bytes are one document,
  kept under the first path (in sorted order); the other is listed under ``skipped`` ("same content
  as ..."). A file moved (or renamed) in the source keeps its document under the new path, without
  re-reading it. Uploaded documents (no source key) are never removed by a sync.

Versions seen are cached per collection in ``data/sync/<hash>.json`` (written atomically; a lost
cache only costs one re-read of every file), so an unchanged object is never downloaded again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from webapp.atomic import atomic_write_text
from webapp.auth.access import LOCAL, Actor
from webapp.documents.service import DocumentService
from webapp.documents.uploads import safe_label
from webapp.errors import UserError
from webapp.gcs import default_client, is_gcs_url, not_found, parse_url
from webapp.rag.store import Document
from webapp.readers.registry import format_for

log = logging.getLogger(__name__)

CACHE_VERSION = 1
LISTED_MAX = 100  # names kept per list in a stored result (the counts are always whole)
Progress = Callable[[float, str], None]


class SourceFileError(UserError):
    """One file of the source could not be read: one sentence, the run goes on."""


@dataclass(frozen=True)
class SourceFile:
    key: str  # its path within the source, "/"-separated: the document's source_key
    version: str  # changes whenever its content can have changed (never read from the file itself)
    size: int
    ref: str  # where the source finds it again (a local path, an object name); never shown


@dataclass
class Listing:
    files: list[SourceFile] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name as shown, reason)


class Source(Protocol):
    url: str

    def listing(self) -> Listing: ...

    def fetch(self, item: SourceFile, dest: Path) -> None:
        """Copy ``item`` into ``dest`` (SourceFileError when it cannot be read)."""
        ...


def _shown(name: str) -> str:
    """A name fit for a summary line: printable, bounded."""
    text = "".join(ch if ch.isprintable() else "?" for ch in name)
    return text if len(text) <= 200 else text[:180] + "…" + text[-12:]


def _key_problem(key: str) -> str | None:
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "its name has an empty, '.' or '..' part"
    if any(not ch.isprintable() for ch in key):
        return "its name has control characters"
    if len(key.encode("utf-8", errors="replace")) > 1024:
        return "its name is longer than 1,024 bytes"
    return None


# -- sources -----------------------------------------------------------------------------
class FolderSource:
    """A local folder (a mounted volume, an NFS share). Polled: see docs/documents.md for why not inotify."""

    def __init__(self, url: str, allowed_roots: list[Path] | None = None):
        root = Path(url).expanduser()
        try:
            self.root = root.resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            raise UserError(f"The folder {_shown(str(root))} does not exist or cannot be opened.") from exc
        if not self.root.is_dir():
            raise UserError(f"{_shown(str(root))} is not a folder.")
        if allowed_roots is not None and not any(self.root.is_relative_to(r) for r in allowed_roots):
            where = f"inside {', '.join(map(str, allowed_roots))}" if allowed_roots else "none until it names some"
            raise UserError(
                f"The app syncs only folders that DOCCHAT_SYNC_FOLDERS allows ({where}); "
                "`python -m webapp sync` on the server may sync any folder."
            )
        self.url = str(self.root)

    def listing(self) -> Listing:
        found = Listing()
        try:
            self._walk(self.root, "", found)
        except OSError as exc:
            raise UserError(f"The folder {self.url} could not be listed ({exc.strerror or exc}).") from exc
        found.files.sort(key=lambda f: f.key)
        return found

    def _walk(self, folder: Path, prefix: str, found: Listing) -> None:
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                # A name that is not UTF-8 reaches Python with surrogates; as a key it is spelled
                # with \\x escapes (stored as text), while the file is still opened by its real name.
                key = prefix + os.fsencode(entry.name).decode("utf-8", errors="backslashreplace")
                if entry.is_symlink():
                    found.skipped.append((_shown(key), "a symbolic link (links are not followed)"))
                elif entry.is_dir(follow_symlinks=False):
                    if not entry.name.startswith("."):
                        self._walk(Path(entry.path), key + "/", found)
                elif format_for(entry.name) is None or entry.name.startswith((".", "~$")):
                    continue  # not a document (or an editor's lock / hidden file)
                elif (problem := _key_problem(key)) is not None:
                    found.skipped.append((_shown(key), problem))
                else:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # gone since the folder was read
                    if not stat.S_ISREG(st.st_mode):
                        found.skipped.append((_shown(key), "not a regular file"))
                        continue
                    # ctime cannot be set back by a user (touch -r sets mtime only), so an edit that
                    # keeps size and mtime still shows.
                    version = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
                    found.files.append(SourceFile(key, version, st.st_size, entry.path))

    def fetch(self, item: SourceFile, dest: Path) -> None:
        label = _shown(item.key)
        try:
            # O_NOFOLLOW: a file swapped for a link since the listing is refused, not followed;
            # O_NONBLOCK: a FIFO swapped in cannot block the run (it is then refused as not regular).
            fd = os.open(item.ref, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError as exc:
            raise SourceFileError(f"{label} disappeared during the sync; the next run removes its document.") from exc
        except OSError as exc:
            raise SourceFileError(f"{label} could not be read ({exc.strerror or exc}).") from exc
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SourceFileError(f"{label} is not a regular file.")
            parent = Path(os.path.realpath(os.path.dirname(item.ref)))
            if not parent.is_relative_to(self.root):  # a folder on its path was swapped for a link
                raise SourceFileError(f"{label} is no longer inside {self.url}.")
            with os.fdopen(fd, "rb", closefd=False) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        except OSError as exc:
            raise SourceFileError(f"{label} could not be read ({exc.strerror or exc}).") from exc
        finally:
            os.close(fd)


class BucketSource:
    """Objects under a Cloud Storage prefix, read with the google-cloud-storage client (Workload
    Identity in GKE). The listing carries each object's generation, so an unchanged one is never
    downloaded again, and a download asks for the listed generation (an object replaced meanwhile
    is picked up by the next run, never mixed into this one)."""

    def __init__(self, url: str, client: Any = None):
        self.bucket_name, self.prefix = parse_url(url.strip())
        self.url = f"gs://{self.bucket_name}/{self.prefix}".rstrip("/")
        self.client = client or default_client()

    def listing(self) -> Listing:
        found = Listing()
        start = self.prefix + "/" if self.prefix else ""
        try:
            blobs = list(self.client.list_blobs(self.bucket_name, prefix=start))
        except Exception as exc:
            if not_found(exc):
                raise UserError(f"The bucket gs://{self.bucket_name} does not exist (or cannot be seen).") from exc
            raise UserError(f"Cannot list {self.url}: {exc}") from exc
        for blob in blobs:
            key = blob.name[len(start) :]
            name = key.rsplit("/", 1)[-1]
            if not key or key.endswith("/") or format_for(name) is None or name.startswith((".", "~$")):
                continue
            problem = _key_problem(key)
            if problem is not None:
                found.skipped.append((_shown(key), problem))
                continue
            found.files.append(SourceFile(key, str(blob.generation), int(blob.size or 0), blob.name))
        found.files.sort(key=lambda f: f.key)
        return found

    def fetch(self, item: SourceFile, dest: Path) -> None:
        blob = self.client.bucket(self.bucket_name).blob(item.ref, generation=int(item.version))
        try:
            blob.download_to_filename(str(dest))
        except Exception as exc:
            if not_found(exc):
                raise SourceFileError(
                    f"{_shown(item.key)} was replaced or deleted during the sync; the next run picks that up."
                ) from exc
            raise SourceFileError(f"{_shown(item.key)} could not be downloaded ({type(exc).__name__}).") from exc


# -- a run's result ---------------------------------------------------------------------------
@dataclass
class SyncReport:
    collection: str
    source: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, the sentence)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, why it is not a document here)
    unchanged: int = 0
    fetched: int = 0  # files read (or downloaded) this run: what "touching" a file costs
    still_failed: int = 0  # documents of the source that failed in an earlier run, unchanged since
    error: str | None = None  # the run changed nothing: why
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "removed": len(self.removed),
            "moved": len(self.moved),
            "unchanged": self.unchanged,
            "failed": len(self.failed),
            "skipped": len(self.skipped),
            "fetched": self.fetched,
        }

    def summary(self) -> str:
        if self.error:
            return f"Sync of {self.collection} from {self.source} changed nothing: {self.error}"
        c = self.counts()
        text = (
            f"Synced {self.collection} from {self.source}: {c['added']} added, {c['updated']} updated, "
            f"{c['removed']} removed, {c['unchanged']} unchanged, {c['failed']} failed"
        )
        if self.moved:
            text += f", {c['moved']} moved"
        if self.skipped:
            text += f", {c['skipped']} skipped"
        text += f" ({self.fetched} file(s) read, {self.seconds:.1f} s)."
        if self.still_failed:
            text += (
                f" {self.still_failed} document(s) from earlier runs stay failed (Retry failed, or change the file)."
            )
        return text

    def lines(self) -> list[str]:
        """The summary, then one line per file that was not simply synced."""
        out = [self.summary()]
        out += [f"  failed  {key}: {reason}" for key, reason in self.failed]
        out += [f"  skipped {name}: {reason}" for name, reason in self.skipped]
        return out

    def as_json(self, limit: int | None = LISTED_MAX) -> dict[str, Any]:
        cut = (lambda xs: list(xs)[:limit]) if limit is not None else list
        return {
            "collection": self.collection,
            "source": self.source,
            "counts": self.counts(),
            "added": cut(self.added),
            "updated": cut(self.updated),
            "removed": cut(self.removed),
            "moved": [list(m) for m in cut(self.moved)],
            "failed": [{"key": k, "reason": r} for k, r in cut(self.failed)],
            "skipped": [{"name": n, "reason": r} for n, r in cut(self.skipped)],
            "still_failed": self.still_failed,
            "error": self.error,
            "seconds": round(self.seconds, 2),
        }


@dataclass(frozen=True)
class SourceStatus:
    collection: str
    url: str
    synced_at: str | None
    result: dict[str, Any] | None

    def text(self) -> str:
        if self.synced_at is None or not self.result:
            return f"Source {self.url}: not synced yet."
        r, c = self.result, self.result.get("counts", {})
        when = self.synced_at.replace("T", " ")[:16]
        if r.get("error"):
            return f"Source {self.url}: last sync {when} UTC changed nothing: {r['error']}"
        text = (
            f"Source {self.url}: last sync {when} UTC, {c.get('added', 0)} added, {c.get('updated', 0)} updated, "
            f"{c.get('removed', 0)} removed, {c.get('unchanged', 0)} unchanged, {c.get('failed', 0)} failed."
        )
        return text + "".join(f"\n- {f['key']}: {f['reason']}" for f in r.get("failed", [])[:10])


# -- the use case ----------------------------------------------------------------------------
def _age_s(stamp: str | None) -> float:
    """Seconds since an ISO-8601 time the store recorded (infinity when none or unreadable)."""
    from datetime import UTC, datetime

    try:
        return (datetime.now(UTC) - datetime.fromisoformat(stamp)).total_seconds() if stamp else float("inf")
    except (TypeError, ValueError):
        return float("inf")


class SyncService:
    """Sync collections with their sources; one run per collection at a time."""

    def __init__(self, documents: DocumentService, client_factory: Callable[[], Any] | None = None):
        self.documents = documents
        self.settings = documents.settings
        self._client_factory = client_factory or default_client
        self._lock = threading.Lock()
        self._running: set[str] = set()

    def _allowed_roots(self) -> list[Path]:
        return [Path(p.strip()).expanduser().resolve() for p in self.settings.sync_folders.split(",") if p.strip()]

    def open_source(self, url: str, operator: bool = False) -> Source:
        """The source ``url`` names. ``operator``: the CLI's operator may name any folder; the app
        only folders inside DOCCHAT_SYNC_FOLDERS (an admin of the app is not the server's root)."""
        url = (url or "").strip()
        if not url:
            raise UserError("Name a source: a folder or gs://BUCKET/PREFIX.")
        if is_gcs_url(url):
            return BucketSource(url, self._client_factory())
        if "://" in url:
            raise UserError(f"{_shown(url)} is neither a folder nor a gs:// URL.")
        return FolderSource(url, None if operator else self._allowed_roots())

    # -- sources of collections (admins) --
    def set_source(self, collection: str, url: str | None, actor: Actor = LOCAL, operator: bool = False) -> str | None:
        """Give ``collection`` a source (None or "": none any more); returns the source as recorded.
        Clearing a source keeps the collection's documents (they become plain documents' peers:
        a later sync from another source removes what that one does not hold)."""
        actor.require_admin("set a collection's source")
        name = self.documents.collection_to_manage(collection, actor)
        recorded = None
        if url and url.strip():
            recorded = self.open_source(url, operator).url
        self.documents.store.set_source(name, recorded)
        log.info("collection %r source set to %r by %s", name, recorded, actor.name)
        return recorded

    def status(self, collection: str, actor: Actor = LOCAL) -> SourceStatus | None:
        name = next((c for c in self.documents.collections(actor) if c == (collection or "").strip()), None)
        if name is None:
            return None
        found = self.documents.store.sources().get(name)
        return SourceStatus(name, **found) if found else None

    def sources(self) -> dict[str, str]:
        return {name: s["url"] for name, s in self.documents.store.sources().items()}

    # -- runs --
    def run(
        self,
        collection: str,
        url: str | None = None,
        actor: Actor = LOCAL,
        progress: Progress | None = None,
        operator: bool = False,
        allow_empty: bool = False,
    ) -> SyncReport:
        """Sync ``collection`` with ``url`` (which becomes its source) or with its recorded source.
        A source that cannot be opened or listed is reported (``error``) and changes nothing."""
        actor.require_admin("sync a collection with its source")
        docs = self.documents
        name = docs.collection_to_manage(collection, actor, create=url is not None)
        if url is None:
            url = docs.store.sources().get(name, {}).get("url")
            if not url:
                raise UserError(f"Collection {name} has no source; name a folder or gs://BUCKET/PREFIX.")
        with self._lock:
            if name in self._running:
                raise UserError(f"A sync of {name} is already running; wait for it to finish.")
            self._running.add(name)
        try:
            # On a shared database another replica may be syncing this collection: one at a time.
            with docs.store.exclusive(f"sync:{name}") as held:
                if not held:
                    raise UserError(f"A sync of {name} is already running on another server; wait for it to finish.")
                report = self._sync_held(name, url, actor, progress, operator, allow_empty)
        finally:
            with self._lock:
                self._running.discard(name)
        if name in docs.store.sources():
            docs.store.record_sync(name, report.as_json())
        log.info("%s", report.summary())
        return report

    def _sync_held(
        self, name: str, url: str, actor: Actor, progress: Progress | None, operator: bool, allow_empty: bool
    ) -> SyncReport:
        """One run of ``run`` once it holds the collection; failures become the report's error."""
        docs = self.documents
        started = time.monotonic()
        report = SyncReport(name, url)
        try:
            source = self.open_source(url, operator)
            report.source = source.url
            if docs.store.sources().get(name, {}).get("url") != source.url:
                docs.store.set_source(name, source.url)
            self._sync(name, source, report, actor, progress, allow_empty)
        except UserError as exc:
            report.error = exc.user_message
        except Exception:  # a bug or a broken disk: said in one sentence, the detail in the log
            log.exception("sync of %r from %s failed", name, url)
            report.error = "the sync stopped on an unexpected error (the server log has the detail)."
        report.seconds = time.monotonic() - started
        return report

    def run_all(self, stop: threading.Event | None = None, fresh_s: float = 0.0) -> list[SyncReport]:
        """Every collection that has a source, one after another (the app's schedule). A source
        synced less than ``fresh_s`` ago (by another replica on a shared database) is skipped."""
        reports = []
        for name, source in self.documents.store.sources().items():
            if stop is not None and stop.is_set():
                break
            if fresh_s and _age_s(source.get("synced_at")) < fresh_s:
                log.info("scheduled sync of %r skipped: synced %s", name, source.get("synced_at"))
                continue
            try:
                reports.append(self.run(name))
            except UserError as exc:  # running already (Sync now), or the collection went
                log.info("scheduled sync of %r skipped: %s", name, exc.user_message)
        return reports

    def schedule(self, interval_s: float, stop: threading.Event) -> None:
        """The app's own schedule (DOCCHAT_SYNC_INTERVAL_S): a run of every source, then a pause."""
        while not stop.wait(interval_s):
            try:
                # Every replica runs this schedule; the first to come takes a source (exclusive,
                # in run) and the others find it freshly synced and leave it.
                self.run_all(stop, fresh_s=interval_s / 2)
            except Exception:  # the next round tries again; the app keeps serving
                log.exception("scheduled sync failed")

    def watch(
        self,
        collection: str,
        url: str,
        interval_s: float,
        stop: threading.Event,
        on_report: Callable[[SyncReport], None],
        actor: Actor = LOCAL,
        allow_empty: bool = False,
    ) -> None:
        """`sync --watch`: a run, then one every ``interval_s`` until ``stop``."""
        while True:
            on_report(self.run(collection, url, actor, operator=True, allow_empty=allow_empty))
            if stop.wait(interval_s):
                return

    # -- one run --
    def _cache_path(self, collection: str) -> Path:
        digest = hashlib.sha256(collection.encode("utf-8")).hexdigest()[:24]
        return Path(self.settings.data_dir) / "sync" / f"{digest}.json"

    def _load_cache(self, collection: str, url: str) -> dict[str, tuple[str, str]]:
        path = self._cache_path(collection)
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            if body.get("version") != CACHE_VERSION or body.get("collection") != collection or body.get("url") != url:
                return {}
            return {k: (v[0], v[1]) for k, v in body["files"].items()}
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return {}  # none yet, or unreadable: every file is read once more

    def _save_cache(self, collection: str, url: str, files: dict[str, tuple[str, str]]) -> None:
        body = {"version": CACHE_VERSION, "collection": collection, "url": url, "files": files}
        atomic_write_text(self._cache_path(collection), json.dumps(body, ensure_ascii=False))

    @staticmethod
    def _sha256(path: Path) -> str:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        return digest.hexdigest()

    def _staging(self) -> Path:
        """A fresh folder for this run's downloads (beside the data, never under a source's name)."""
        base = Path(self.settings.data_dir) / "sync"
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".staging-", dir=base))

    def _sync(
        self,
        name: str,
        source: Source,
        report: SyncReport,
        actor: Actor,
        progress: Progress | None,
        allow_empty: bool,
    ) -> None:
        docs = self.documents
        listing = source.listing()
        report.skipped.extend(listing.skipped)
        listed = {f.key: f for f in listing.files}
        in_collection = docs.documents(name, actor)
        from_source = [d for d in in_collection if d.source_key is not None]
        if not listed and from_source and not allow_empty:
            raise UserError(
                f"{source.url} lists no documents while the collection holds {len(from_source)} from it; "
                "nothing was removed (an unmounted volume or a wrong prefix looks like this). "
                "Run `python -m webapp sync ... --allow-empty` to empty the collection."
            )
        by_key: dict[str, list[Document]] = {}
        for d in from_source:
            by_key.setdefault(d.source_key or "", []).append(d)
        by_sha = {d.sha256: d for d in in_collection}
        cache = self._load_cache(name, source.url)
        seen: dict[str, tuple[str, str]] = {}
        to_index: dict[int, str] = {}  # new document id -> its key
        replacing: dict[str, list[Document]] = {}  # key -> versions to remove once its new one is indexed
        remove: dict[int, tuple[Document, str | None]] = {}  # id -> (document, key to report or None)
        max_bytes = int(self.settings.max_upload_mb * 1e6)
        staging = self._staging()

        def fetch(item: Any, i: int) -> Path | None:
            """The file read into staging (counted), or None with its failure reported."""
            staged = staging / f"{i}.part"
            try:
                source.fetch(item, staged)
            except SourceFileError as exc:
                report.failed.append((item.key, exc.user_message))
                return None
            report.fetched += 1
            return staged

        try:
            for i, item in enumerate(listing.files):
                if progress:
                    progress(0.5 * i / max(1, len(listing.files)), f"checking {_shown(item.key)}")
                current = by_key.get(item.key, [])
                if item.size > max_bytes:
                    report.failed.append(
                        (
                            item.key,
                            f"{_shown(item.key)} is {item.size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.",
                        )
                    )
                    continue
                staged: Path | None = None
                cached = cache.get(item.key)
                if cached is not None and cached[0] == item.version:
                    sha = cached[1]
                else:
                    staged = fetch(item, i)
                    if staged is None:
                        continue
                    sha = self._sha256(staged)
                seen[item.key] = (item.version, sha)
                match = next((d for d in current if d.sha256 == sha), None)
                if match is not None:
                    report.unchanged += 1
                    if match.indexed_at is not None:  # older versions kept while a new one failed
                        for old in current:
                            if old.id != match.id:
                                remove[old.id] = (old, None)
                    continue
                holder = by_sha.get(sha)
                if holder is not None and holder.source_key is not None and holder.source_key not in listed:
                    # Moved or renamed in the source: the document follows, nothing is read again.
                    docs.store.set_source_key(holder.id, item.key, safe_label(item.key))
                    report.moved.append((holder.source_key, item.key))
                    by_key.setdefault(item.key, []).append(holder)
                    by_key.pop(holder.source_key, None)
                    for old in current:
                        remove[old.id] = (old, None)
                    continue
                if holder is not None:
                    where = holder.source_key or f"the uploaded document {holder.label}"
                    report.skipped.append((_shown(item.key), f"same content as {_shown(where)}"))
                    for old in current:  # its previous content was this path's own
                        remove[old.id] = (old, item.key)
                    continue
                if staged is None:  # known by its version, yet its document is gone: read it now
                    staged = fetch(item, i)
                    if staged is None:
                        continue
                result = docs.add_files(name, [(staged, safe_label(item.key))], actor, source_key=item.key)[0]
                staged.unlink(missing_ok=True)
                if result.error or result.document is None:
                    report.failed.append((item.key, result.error or "not stored"))
                    seen.pop(item.key, None)  # read again next time (the limit may change)
                    continue
                doc = result.document
                seen[item.key] = (item.version, doc.sha256)  # what was stored, if it changed meanwhile
                by_sha[doc.sha256] = doc
                if result.duplicate:  # the same content arrived by another way in between
                    report.skipped.append((_shown(item.key), f"same content as {_shown(doc.source_key or doc.label)}"))
                    continue
                to_index[doc.id] = item.key
                if current:
                    replacing[item.key] = current
            self._index(name, to_index, replacing, report, actor, progress, remove)
            for key, versions in by_key.items():
                if key not in listed:
                    for d in versions:
                        remove[d.id] = (d, key)
            for gone, gone_key in remove.values():
                try:
                    docs.delete(gone.id, actor)
                except UserError as exc:  # deleted meanwhile by someone else: the same outcome
                    log.info("sync: %s already gone: %s", gone.label, exc.user_message)
                if gone_key is not None and gone_key not in report.removed and gone_key not in listed:
                    report.removed.append(gone_key)
            self._save_cache(name, source.url, seen)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        report.still_failed = sum(
            1
            for d in docs.documents(name, actor)
            if d.source_key is not None and d.status == "failed" and d.source_key not in {k for k, _ in report.failed}
        )

    def _index(
        self,
        name: str,
        to_index: dict[int, str],
        replacing: dict[str, list[Document]],
        report: SyncReport,
        actor: Actor,
        progress: Progress | None,
        remove: dict[int, tuple[Document, str | None]],
    ) -> None:
        if not to_index:
            return
        step = (lambda f, what: progress(0.5 + 0.5 * f, what)) if progress else None
        outcome = self.documents.index_new(name, list(to_index), step, actor)
        done = {d.id for d in outcome.indexed}
        reasons = {d.id: d.reason or "it could not be read" for d in outcome.failed}
        for doc_id, key in to_index.items():
            old = replacing.get(key, [])
            if doc_id in done:
                (report.updated if old else report.added).append(key)
                for d in old:
                    remove[d.id] = (d, None)
            else:
                reason = reasons.get(doc_id, "it was not indexed")
                if old:
                    reason += " (its previous version stays searchable)"
                report.failed.append((key, reason))
