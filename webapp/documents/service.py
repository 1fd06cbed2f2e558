"""Documents: upload into collections, index (parse -> chunk -> embed -> store), search.

The UI tabs and the CLI (`python -m webapp index/search/ask`) both go through
this service, so a data folder built by one works with the other. The embedder
and store open lazily: the chat works even when no embedding model is built.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from webapp.auth.access import LOCAL, Actor, CollectionAccess, Forbidden
from webapp.auth.users import valid_name
from webapp.documents.indexer import Indexer, IndexReport, Progress
from webapp.documents.shared_files import SharedFiles
from webapp.documents.uploads import discard_uploads, safe_label, store_upload, upload_problem
from webapp.errors import UserError
from webapp.rag.page_image import PageImageError, PageImages, RenderBusy
from webapp.rag.retrieval import Passage, Retriever, search_terms
from webapp.rag.running_heads import running_heads, without_head
from webapp.rag.store import Document, StoreError, valid_collection_name
from webapp.rag.stores import AnyDocumentStore as DocumentStore
from webapp.rag.stores import open_document_store, recorded_embedding_model
from webapp.rag.summaries import Extract
from webapp.registry import RegistryError, load_entry, scan
from webapp.resources import usable_cpus
from webapp.settings import Settings

# A word typed with capitals inside, long enough to be two run together ("BERTLARGE", "BertLarge"); a
# plain lower-case word ("dataset", "generate") is left alone: hyphenation in PDFs ("gener-ate")
# would otherwise find a "split" for ordinary words.
_RUN_TOGETHER = re.compile(r"\b(?=[a-z]*[A-Z][a-z]*[A-Z])[A-Za-z]{7,24}\b")
log = logging.getLogger(__name__)

# The one refusal for a new collection's name, whether it is invalid or held by a collection the
# asker cannot read (create_collection says why the two must read the same).
NAME_REFUSED = (
    "That name cannot be used for a new collection; choose another of 1 to 64 characters, without control characters."
)


ALREADY_RUNNING = "Indexing is already running; wait for it to finish."


class DocumentsBusy(UserError):
    """The server is at capacity for this kind of work right now (HTTP 503); try again shortly."""


@dataclass(frozen=True)
class _ReadingAids:
    """What reading a document's sentences needs beside them: the abbreviations it defines (a
    claim may use either form) and the lines printed atop its pages (no quote opens with one)."""

    glossary: dict[str, tuple[str, ...]]
    heads: frozenset[str]


@dataclass
class UploadResult:
    label: str
    document: Document | None = None
    duplicate: bool = False
    error: str | None = None


class DocumentService:
    def __init__(self, settings: Settings, users=None, metrics=None):
        self.settings = settings
        self.metrics = metrics  # webapp.metrics.Metrics, when the app exports metrics
        self.users = users  # UserStore: names given to share() must exist
        self._open_lock = threading.Lock()
        # Indexing runs go side by side (one member's scan must not hold up another's upload);
        # what they may not share is recorded here, under _runs_lock: documents being indexed
        # (claimed, one run each), collections a management run holds (a re-index all, retry,
        # index queued: its queue stays its own), every collection (an admin's run over all), and
        # re-embedding, which replaces every vector and so runs alone.
        self._runs_lock = threading.Lock()
        self._claimed: set[int] = set()
        self._held: set[str] = set()
        self._all_held = False
        self._reembedding = False
        self._adopting: threading.Thread | None = None  # a document taken over from a dead replica
        self.shared = SharedFiles(Path(settings.data_dir), settings.files_url)
        self.indexer = Indexer(settings, self.shared, metrics)
        self._store: DocumentStore | None = None
        self._embedder = None
        self._retriever: Retriever | None = None
        self._pages = PageImages(
            Path(settings.data_dir) / "pages",
            settings.page_cache_mb,
            min(30.0, settings.pdf_timeout_s),
            settings.pdf_memory_mb,
            workers=settings.page_render_workers or usable_cpus(),
            wait_s=settings.page_render_wait_s,
        )
        self._evidence = None  # EvidenceFinder for the current embedder (it caches sentence vectors)
        self._aids: dict[tuple[int, str | None], _ReadingAids] = {}  # per indexed version of a document
        self._titles: dict[tuple[int, str | None], str] = {}  # per indexed version of a document
        self._aids_lock = threading.Lock()
        self.repairs: list[str] = []
        self.maintenance: threading.Thread | None = None  # background upkeep of an older store, if any
        self._closing = threading.Event()

    # -- lazy components ----------------------------------------------------------------
    def _open(self) -> None:
        with self._open_lock:
            if self._store is not None:
                return
            from webapp.rag.embedder import Embedder

            name = self.embedding_model_name()
            try:
                entry = load_entry(Path(self.settings.models_dir) / name)
            except RegistryError as exc:
                raise UserError(f"Documents need the embedding model {name}: {exc.user_message}") from exc
            embedder = Embedder(entry)
            store = open_document_store(self.settings, entry.name, embedder.dimension)
            # Originals live where every replica sees them (the data folder unless DOCCHAT_FILES_URL
            # names a shared folder; with a bucket the data folder is its cache): shared_files.py.
            store.files_dir = self.shared.files_dir
            store.files_dir.mkdir(parents=True, exist_ok=True)
            store.collection_id(self.settings.default_collection)
            self.repairs = store.check_and_repair()
            self._embedder, self._store = embedder, store
            self._retriever = self._retriever_for(store, embedder)
            if store.text_mend_pending():
                self.maintenance = threading.Thread(
                    target=self._mend_text, args=(store, embedder), name="mend-text", daemon=True
                )
                self.maintenance.start()

    def _mend_text(self, store: DocumentStore, embedder) -> None:
        """Chunks written before ligatures were spelled out, re-spelled beside the app: search
        keeps working on the old text meanwhile (webapp/rag/store.py: DocumentStore.mend_text)."""
        try:
            mended = store.mend_text(
                embedder.embed_documents,
                stop=self._closing,
                progress=lambda done, total: log.info("re-spelling old chunks: %d of %d", done, total),
            )
            if mended:
                self.repairs.append(f"{mended} chunks re-spelled (ligatures) and re-embedded")
        except Exception:  # the old text still works; the next start tries again
            log.exception("re-spelling old chunks failed; will retry at the next start")

    def _retriever_for(self, store: DocumentStore, embedder) -> Retriever:
        threshold = self.settings.min_similarity  # None: the embedding model's calibrated gate
        return Retriever(store, embedder, embedder.min_similarity if threshold is None else threshold)

    def embedding_model_name(self) -> str:
        """The model the data folder was built with; the setting only chooses it for a new folder.

        Vectors from two models are not comparable, so a folder never silently changes model
        (an upgrade that changes the default must not break a PVC full of documents).
        """
        recorded = recorded_embedding_model(self.settings)
        if recorded and recorded != self.settings.embedding_model:
            log.warning(
                "data folder %s was embedded with %s; using it (DOCCHAT_EMBEDDING_MODEL=%s applies to "
                "new folders; `python -m webapp reembed --model %s` converts this one)",
                self.settings.data_dir,
                recorded,
                self.settings.embedding_model,
                self.settings.embedding_model,
            )
        return recorded or self.settings.embedding_model

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
    # Every method takes the Actor it works for (LOCAL: auth none, or the operator's CLI) and
    # applies webapp/auth/access.py. A collection the actor may not read is reported exactly like
    # one that does not exist, so names of private collections never leak through errors.
    def _access(self, collection: str | None, actor: Actor) -> CollectionAccess:
        name = (collection or "").strip()
        found = next((c for c in self.store.collection_access() if c.name == name), None)
        if found is None or not found.can_read(actor):
            shown = "".join(ch for ch in name[:64] if ch.isprintable())
            raise UserError(f"There is no collection named {shown!r}.")
        return found

    def _managed(self, collection: str | None, actor: Actor) -> CollectionAccess:
        access = self._access(collection, actor)
        if not access.can_manage_documents(actor):
            raise Forbidden(
                f"You can read collection {access.name!r} but not change its documents; "
                "ask its owner to share it with you by name."
            )
        return access

    def collection_access(self, actor: Actor = LOCAL) -> list[CollectionAccess]:
        """The collections ``actor`` may read, with owner and sharing."""
        return [c for c in self.store.collection_access() if c.can_read(actor)]

    def collections(self, actor: Actor = LOCAL) -> list[str]:
        return [c.name for c in self.collection_access(actor)]

    def managed_collections(self, actor: Actor = LOCAL) -> list[str]:
        """The collections ``actor`` may upload to and manage documents in."""
        return [c.name for c in self.collection_access(actor) if c.can_manage_documents(actor)]

    def own_collections(self, actor: Actor = LOCAL) -> list[str]:
        """The collections ``actor`` owns and may upload to, private ones first: where an upload goes
        when the user names none (never one readable by more people than its owner chose)."""
        if actor is LOCAL:
            return []
        mine = [
            c
            for c in self.collection_access(actor)
            if (c.owner or "").lower() == actor.name.lower() and c.can_manage_documents(actor)
        ]
        order = {"private": 0, "shared": 1, "everyone": 2}
        return [c.name for c in sorted(mine, key=lambda c: order.get(c.visibility, 3))]

    def upload_collection(self, actor: Actor = LOCAL) -> str:
        """Where an upload that names no collection goes: the actor's own private collection, made on
        the spot the first time ("<name>-documents"; a member with no collection uploads without an
        error); without sign-in the default collection, as before users existed."""
        if actor is LOCAL:
            return self.settings.default_collection
        actor.require_member("upload documents")
        own = [c for c in self.own_collections(actor) if self._access(c, actor).visibility == "private"]
        if own:
            return own[0]
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", actor.name).strip("-.") or "my"
        for suffix in ["", *(f"-{n}" for n in range(2, 50))]:
            name = f"{base}-documents{suffix}"
            try:
                return self.create_collection(name, actor, "private")
            except UserError:
                continue  # the name is taken (perhaps by a collection this user cannot see)
        raise UserError("Could not make a collection for your upload; create one under New collection.")

    def create_collection(
        self, name: str, actor: Actor = LOCAL, visibility: str | None = None, members: Sequence[str] = ()
    ) -> str:
        """A new collection owned by ``actor`` (private unless said otherwise).

        With auth none (LOCAL) it belongs to the admins and everyone sees it, as before users existed.
        """
        actor.require_member("create collections")
        owner = None if actor is LOCAL else actor.name
        visibility = visibility or ("everyone" if actor is LOCAL else "private")
        created = (name or "").strip()
        try:
            valid_collection_name(created)
        except StoreError as exc:
            raise UserError(NAME_REFUSED) from exc
        # Names are one namespace for everyone (every route, the CLI and /v1 name a collection by
        # it), so a name another user's private collection holds cannot be given again. Saying
        # "already exists" would confirm that collection to someone who may not see it; instead
        # the refusal is word for word the one for an invalid name, and only a collection the
        # actor can read is said to exist. (Per-owner namespaces would hide even that a name is
        # taken, at the price of qualified names everywhere; see docs/users.md.)
        taken = next((c for c in self.store.collection_access() if c.name == created), None)
        if taken is not None:
            if taken.can_read(actor):
                raise UserError(f"A collection named {created!r} already exists.")
            log.info("collection name %r refused for %s: held by a collection they cannot read", created, actor.name)
            raise UserError(NAME_REFUSED)
        try:
            self.store.create_collection(created, owner=owner, visibility=visibility)
        except StoreError as exc:  # created by someone else between the check and here
            log.info("collection %r not created for %s: %s", created, actor.name, exc.user_message)
            raise UserError(NAME_REFUSED) from exc
        if members:
            self.share(created, visibility, members, actor)
        log.info("collection %r created by %s (%s)", created, actor.name, visibility)
        return created

    def share(self, collection: str, visibility: str, members: Sequence[str], actor: Actor = LOCAL) -> CollectionAccess:
        """Set who may read a collection: private, shared with the named users, or everyone."""
        access = self._access(collection, actor)
        if not access.can_change_sharing(actor):
            raise Forbidden(f"Only the owner of collection {access.name!r} or an admin can change who sees it.")
        names = []
        for raw in members:
            name = valid_name(raw)
            if self.users is not None:
                name = self.users.get(name).name  # refuses unknown names, with a sentence
            if name.lower() != (access.owner or "").lower() and name not in names:
                names.append(name)
        self.store.set_sharing(access.name, visibility, names if visibility == "shared" else [])
        log.info("collection %r sharing set to %s %s by %s", access.name, visibility, names, actor.name)
        return self._access(access.name, actor)

    def documents(self, collection: str | None = None, actor: Actor = LOCAL) -> list[Document]:
        if collection is None:
            readable = set(self.collections(actor))
            return [d for d in self.store.documents(None) if d.collection in readable]
        return self.store.documents(self._access(collection, actor).name)

    def collection_to_manage(self, collection: str, actor: Actor = LOCAL, create: bool = False) -> str:
        """The name of ``collection`` if ``actor`` may manage its documents (``create``: a new one
        is made, as the CLI's ``index`` and ``sync`` do); otherwise the refusal every route gives."""
        return self._ensure_writable(collection, actor) if create else self._managed(collection, actor).name

    def _ensure_writable(self, collection: str, actor: Actor) -> str:
        """The collection to store into; the CLI may name a new one, which is then created (a name
        held by a collection the actor cannot read is refused as create_collection refuses it)."""
        found = next((c for c in self.store.collection_access() if c.name == collection.strip()), None)
        if found is None or not found.can_read(actor):
            try:
                return self.create_collection(collection, actor)
            except UserError:
                # Another process (a second `index` run, another replica) may have made it between
                # the look and the creation: then it is used, if this actor may; else the refusal.
                found = next((c for c in self.store.collection_access() if c.name == collection.strip()), None)
                if found is None or not found.can_read(actor):
                    raise
        return self._managed(collection, actor).name

    def add_files(
        self,
        collection: str,
        files: Iterable[tuple[Path, str]],
        actor: Actor = LOCAL,
        source_key: str | None = None,
    ) -> list[UploadResult]:
        """Store files given by path (the CLI); each gets its own result, so one bad file never blocks the rest.

        ``source_key``: the file's path in the collection's synced source (webapp/documents/sync.py
        adds one file at a time)."""
        actor.require_member("upload documents")
        collection = self._ensure_writable(collection, actor)
        results = []
        max_bytes = int(self.settings.max_upload_mb * 1e6)
        for path, name in files:
            try:
                stored = store_upload(Path(path), name, self.store.files_dir, max_bytes)
                self.shared.publish(f"files/{stored.sha256}.{stored.format}")
                doc, new = self.store.add_document(
                    collection,
                    stored.sha256,
                    stored.label,
                    stored.size_bytes,
                    format=stored.format,
                    source_key=source_key,
                )
                results.append(UploadResult(stored.label, doc, duplicate=not new))
            except UserError as exc:
                log.info("upload %r refused: %s", name, exc.user_message)
                results.append(UploadResult(str(name), error=exc.user_message))
        return results

    def add_uploads(
        self, collection: str, files: Sequence[tuple[Path, str]], actor: Actor = LOCAL
    ) -> list[UploadResult]:
        """Store browser uploads: only files Gradio received into the uploads folder are read, and
        each temp copy is deleted once stored (or refused), so uploads never pile up on disk."""
        try:
            actor.require_member("upload documents")
            self._managed(collection, actor)
            if len(files) > self.settings.max_upload_files:
                raise UserError(
                    f"{len(files)} files were sent at once; the limit is "
                    f"{self.settings.max_upload_files}. Upload them in smaller groups."
                )
            accepted, results = [], []
            for path, name in files:
                problem = upload_problem(self.settings.uploads_dir, Path(path))
                if problem:
                    log.warning("upload %r refused: %s (%s)", name, problem, path)
                    results.append(UploadResult(safe_label(name), error="This file was not uploaded through the app."))
                else:
                    accepted.append((path, name))
            return results + self.add_files(collection, accepted, actor)
        finally:
            discard_uploads(self.settings.uploads_dir, [p for p, _ in files])

    def delete(self, doc_id: int, actor: Actor = LOCAL) -> Document:
        doc = self.store.document(int(doc_id))
        if doc is None or not self._readable(doc.collection, actor):
            raise UserError(f"There is no document with id {int(doc_id)}.")
        self._managed(doc.collection, actor)
        deleted = self.store.delete_document(doc.id)
        if deleted is None:
            raise UserError(f"There is no document with id {int(doc_id)}.")
        if not any(d.sha256 == doc.sha256 for d in self.store.documents()):  # the last copy went
            self.shared.remove(self.shared.original(doc))
            self.shared.remove(self.shared.ocr_words(doc.sha256))
        log.info("document %s (%s) deleted from %r by %s", doc.id, doc.label, doc.collection, actor.name)
        return deleted

    def _readable(self, collection: str, actor: Actor) -> bool:
        try:
            self._access(collection, actor)
            return True
        except UserError:
            return False

    # -- indexing ----------------------------------------------------------------------------
    def index_queued(
        self,
        collection: str | None = None,
        progress: Progress | None = None,
        passwords: dict[int, str] | None = None,
        actor: Actor = LOCAL,
    ) -> IndexReport:
        """Index every queued document (of one collection, or all); failures are per document."""
        return self.reindex(collection, [], progress=progress, passwords=passwords, actor=actor)

    def reindex(
        self,
        collection: str | None = None,
        doc_ids: Sequence[int] | None = None,
        only_failed: bool = False,
        progress: Progress | None = None,
        passwords: dict[int, str] | None = None,
        actor: Actor = LOCAL,
    ) -> IndexReport:
        """Queue documents again and index everything queued in the collection (or in all of them).

        ``doc_ids`` None means every document of the collection (``only_failed``: the failed
        ones), [] means none (just what is already queued). Such a run holds its collection: a
        second one there is refused (with ALREADY_RUNNING) before it changes any status, while
        runs in other collections and uploads' own runs (``index_new``) go side by side.
        Documents keep their old chunks searchable until the new ones commit (store.SEARCHABLE).
        """
        if collection is None:
            actor.require_admin("index every collection at once")
        else:
            collection = self._managed(collection, actor).name
        with self._runs_lock:
            if self._reembedding or self._all_held or collection in self._held:
                raise UserError(ALREADY_RUNNING)
            if collection is None and (self._held or self._claimed):
                raise UserError(ALREADY_RUNNING)
            docs = self.documents(collection)
            if doc_ids is None:
                chosen = [d for d in docs if not only_failed or d.status == "failed"]
            else:
                wanted = set(int(i) for i in doc_ids)
                chosen = [d for d in docs if d.id in wanted]
                missing = wanted - {d.id for d in chosen}
                if missing:
                    where = f" in collection {collection}" if collection else ""
                    raise UserError(f"There is no document {min(missing)}{where}.")
                if wanted & self._claimed:
                    raise UserError(ALREADY_RUNNING)
            # Documents an upload is indexing right now are left to it (here, or on another replica:
            # the store's claim skips a live lease held elsewhere).
            lease = self.settings.job_lease_s
            won = self.store.claim([d.id for d in chosen if d.id not in self._claimed], lease, requeue=True)
            fresh = self.documents(collection)  # with the statuses the claim set
            queued = [d.id for d in fresh if d.status == "queued" and d.id not in self._claimed]
            won += self.store.claim([i for i in queued if i not in won], lease)
            queue = [d for d in fresh if d.id in set(won)]
            self._claim(queue, collection, whole=True)
        try:
            return self._run(queue, progress, passwords or {})
        finally:
            self._unclaim(queue, collection, whole=True)

    def index_new(
        self, collection: str, doc_ids: Sequence[int], progress: Progress | None = None, actor: Actor = LOCAL
    ) -> IndexReport:
        """Index the documents an upload just added (and nothing else), beside any other run.

        Unlike ``reindex`` this never waits for or refuses because of another run in the
        collection: the new documents are in no other run's queue. One that a management run
        picked up first (it was queued in between) is left to that run."""
        collection = self._managed(collection, actor).name
        wanted = {int(i) for i in doc_ids}
        with self._runs_lock:
            if self._reembedding:
                raise UserError(ALREADY_RUNNING)
            queued = [
                d
                for d in self.documents(collection)
                if d.id in wanted and d.status == "queued" and d.id not in self._claimed
            ]
            won = set(self.store.claim([d.id for d in queued], self.settings.job_lease_s))
            queue = [d for d in queued if d.id in won]
            self._claim(queue, collection, whole=False)
        try:
            return self._run(queue, progress, {})
        finally:
            self._unclaim(queue, collection, whole=False)

    def _claim(self, docs: Sequence[Document], collection: str | None, whole: bool) -> None:
        """(under _runs_lock)"""
        self._claimed.update(d.id for d in docs)
        if whole:
            if collection is None:
                self._all_held = True
            else:
                self._held.add(collection)

    def _run(self, queue: list[Document], progress: Progress | None, passwords: dict[int, str]) -> IndexReport:
        self._open()
        return self.indexer.run(self.store, self._embedder, queue, progress, passwords)

    def adopt_abandoned(self) -> threading.Thread | None:
        """Start indexing a document whose worker died mid-way (its lease ran out; another replica,
        or this process before a restart), in a thread of its own, so the job watcher that calls
        this (webapp/documents/jobs.py) goes on renewing every lease of this process, this one's
        too. One at a time per replica; None when there was none, one is still running, or this
        process is re-embedding (the lease then stays to run out)."""
        with self._runs_lock:
            if self._reembedding or (self._adopting is not None and self._adopting.is_alive()):
                return None
            found = (self.store.document(i) for i in self.store.claim_abandoned(self.settings.job_lease_s))
            queue = [d for d in found if d is not None]
            if not queue:
                return None
            self._claim(queue, None, whole=False)

            def index() -> None:
                try:
                    log.info("taken-over indexing: %s", self._run(queue, None, {}).summary())
                except Exception:  # the lease runs out and another turn (or replica) tries again
                    log.exception("taken-over indexing of %s failed", [d.label for d in queue])
                finally:
                    self._unclaim(queue, None, whole=False)

            self._adopting = threading.Thread(target=index, name="taken-over-indexing", daemon=True)
            self._adopting.start()
            return self._adopting

    def renew_leases(self) -> None:
        """Keep this process's claims alive in a shared job queue; a document another replica took
        over (this one paused past its lease) is noticed at its next write (pg_store: JobLost)."""
        with self._runs_lock:
            held = sorted(self._claimed)
        if held and self._store is not None:
            kept = self._store.renew(held, self.settings.job_lease_s)
            if len(kept) < len(held):
                log.warning("leases lost to another replica: documents %s", sorted(set(held) - set(kept)))

    @property
    def shared_jobs(self) -> bool:
        """Whether indexing is a job queue shared with other replicas (PostgreSQL)."""
        self._open()
        return bool(self.store.shared_jobs)

    def _unclaim(self, docs: Sequence[Document], collection: str | None, whole: bool) -> None:
        if docs and self._store is not None:
            try:
                self._store.release([d.id for d in docs])
            except Exception:  # the leases run out by themselves; another replica then re-checks
                log.exception("could not release the claims of %d document(s)", len(docs))
        with self._runs_lock:
            self._claimed.difference_update(d.id for d in docs)
            if whole:
                if collection is None:
                    self._all_held = False
                else:
                    self._held.discard(collection)

    def embedding_models(self) -> list[str]:
        """Registered embedding models (what ``reembed`` can switch to)."""
        try:
            return [e.name for e in scan(Path(self.settings.models_dir)).embeddings()]
        except RegistryError:
            return []

    def reembed(self, model: str, progress: Progress | None = None, actor: Actor = LOCAL) -> int:
        """Re-embed every stored chunk with another registered embedding model (no re-parsing).

        Returns the number of chunks. The folder then records ``model``; another process
        still holding the old one is told to restart rather than mixing two vector spaces.
        """
        from webapp.rag.embedder import Embedder

        actor.require_admin("re-embed the documents")
        self._open()
        if model == self._store.embedding_model:
            raise UserError(f"The documents are already embedded with {model}.")
        try:
            entry = load_entry(Path(self.settings.models_dir) / model)
        except RegistryError as exc:
            raise UserError(f"Cannot re-embed with {model}: {exc.user_message}") from exc
        if entry.kind != "embedding":
            raise UserError(f"{model} is a {entry.kind} model, not an embedding model.")
        with self._runs_lock:
            if self._reembedding or self._claimed or self._held or self._all_held:
                raise UserError("Indexing is running; re-embed when it has finished.")
            self._reembedding = True
        try:
            embedder = Embedder(entry)
            report = (lambda i, n: progress(i / max(1, n), f"re-embedded {i}/{n} chunks")) if progress else None
            count = self._store.reembed(entry.name, embedder.dimension, embedder.embed_documents, report)
            self._embedder, self._retriever = embedder, self._retriever_for(self._store, embedder)
            return count
        finally:
            with self._runs_lock:
                self._reembedding = False

    # -- retrieval -------------------------------------------------------------------------
    def search(
        self,
        collection: str,
        question: str,
        k: int | None = None,
        mode: str = "hybrid",
        min_similarity: float | None = None,
        actor: Actor = LOCAL,
        keyword_hits: bool = False,
        documents: Sequence[str] | None = None,
    ) -> list[Passage]:
        """Passages from ``collection`` only, and only if ``actor`` may read it: retrieval is where
        a private document could leak into someone else's answer, so the check is here.
        ``keyword_hits``: see Retriever.search (grounded answers use them). ``documents``: names
        of documents in the collection to search alone (a scoped chat); see ``scope``."""
        if not (question or "").strip():
            raise UserError("Type a question first.")
        self._open()
        name = self._access(collection, actor).name
        ids = [d.id for d in self.scope(name, documents, actor)] if documents else None
        return self._retriever.search(
            name,
            question,
            k or self.settings.retrieval_k,
            mode,
            min_similarity,
            keyword_hits=keyword_hits,
            documents=ids,
        )

    def scope(self, collection: str, names: Sequence[str], actor: Actor = LOCAL) -> list[Document]:
        """The documents of ``collection`` named ``names`` (file names as listed), each searchable.
        A name that matches none is one sentence, never a silent fall-back to the whole collection:
        an answer from the wrong documents would look like an answer from the right ones."""
        docs = self.documents(collection, actor)
        by_label = {d.label: d for d in docs}
        by_folded = {d.label.casefold(): d for d in docs}
        found: list[Document] = []
        for raw in names:
            name = (raw or "").strip()
            doc = by_label.get(name) or by_folded.get(name.casefold())
            if doc is None:
                raise UserError(f"There is no document named “{name}” in the collection {collection}.")
            if doc.indexed_at is None:
                raise UserError(f"The document {doc.label} is not indexed yet ({doc.status}); pick it once it is.")
            if doc not in found:
                found.append(doc)
        return found

    def respell(self, collection: str, question: str, actor: Actor = LOCAL) -> str:
        """``question`` with words typed run together written apart where the collection writes them
        apart ("BERTLARGE" -> "BERT LARGE" when the documents say "BERT-large" or "BERT large"), so
        that every spelling of a compound is searched and scored alike (webapp/rag/compounds.py).
        One keyword-index probe per possible split of a long word: a few milliseconds."""
        from webapp.rag.compounds import splits

        self._open()
        cid = self.store.collection_id(self._access(collection, actor).name, create=False)

        def apart(m: re.Match[str]) -> str:
            word = m.group(0)
            for left, right in splits(word.lower()):
                if len(left) >= 3 and len(right) >= 3 and self.store.keyword_search(cid, f'"{left} {right}"', 1):
                    return f"{word[: len(left)]} {word[len(left) :]}"
            return word

        return _RUN_TOGETHER.sub(apart, question)

    # -- whole documents -------------------------------------------------------------------
    def summary(self, doc: Document, exclude: Callable[[str], bool] | None = None) -> list[Extract]:
        """The document's most central sentences with their pages (webapp/rag/summaries.py),
        computed once per indexed version of the document and stored with it (a re-index makes
        a new one). ``exclude``: sentences to leave out (benchmarks leave out the abstract); such
        a summary is neither read from nor written to the store."""
        from webapp.rag.summaries import METHOD, central, document_sentences

        self._open()
        heads = self._reading_aids(doc.id).heads  # shown without them, as evidence is (stored with)
        if exclude is None and doc.indexed_at:
            cached = self.store.cached_summary(doc.id, doc.indexed_at, METHOD)
            if cached is not None:
                return [Extract(**{**e, "text": without_head(e["text"], heads)}) for e in cached["sentences"]]
        sentences = document_sentences(self.store.page_texts(doc.id), exclude)
        picked = central(sentences, self._embedder.embed_documents, n=self.settings.summary_sentences)
        if exclude is None and doc.indexed_at:
            self.store.save_summary(doc.id, doc.indexed_at, METHOD, {"sentences": [e.as_json() for e in picked]})
        return [dataclasses.replace(e, text=without_head(e.text, heads)) for e in picked]

    def outline(self, doc: Document) -> list:
        """Numbered section headings and table/figure captions with their pages."""
        from webapp.rag.summaries import outline

        self._open()
        return outline(self.store.page_texts(doc.id))

    def title(self, doc: Document) -> str:
        """The document's title as its first page prints it (its file name when none is found)."""
        key = (doc.id, doc.indexed_at)
        if key in self._titles:
            return self._titles[key]
        from webapp.rag.summaries import first_page_title

        self._open()
        pages = self.store.page_texts(doc.id)
        found = (first_page_title(pages[0][1]) if pages else None) or doc.label
        self._titles[key] = found
        return found

    def names_of(self, doc: Document) -> set[str]:
        """What a question may call a document: its file name, without the extension, with spaces
        for underscores, and the short name its title opens with ("RoBERTa: A Robustly...")."""
        stem = re.sub(r"\.[A-Za-z0-9]{1,5}$", "", doc.label)
        names = {doc.label, stem, re.sub(r"[_\-.]+", " ", stem)}
        first = re.split(r"[_\-. ]+", stem)[0]
        if first != stem and len(first) >= 3 and first.isupper():  # an acronym: "MMLU_measure.pdf" is "MMLU"
            names.add(first)
        short = self.short_name(doc)
        if short:
            names.add(short)
        return names

    def short_name(self, doc: Document) -> str | None:
        """The name a title opens with, when it has one ("RoBERTa: A Robustly ..." -> "RoBERTa")."""
        title = self.title(doc)
        short = title.split(":")[0].strip()
        return short if ":" in title and 1 <= len(short.split()) <= 3 else None

    def named_in(self, collection: str, text: str, actor: Actor = LOCAL) -> list[Document]:
        """The indexed documents of ``collection`` that ``text`` names, in the order it names them:
        by file name ("roberta.pdf", "roberta") or by the short name a title opens with
        ("RoBERTa: A Robustly Optimized..." -> "RoBERTa")."""
        found: list[tuple[int, Document]] = []
        for doc in self.documents(collection, actor):
            if doc.indexed_at is None:
                continue
            at = [
                m.start()
                for name in self.names_of(doc)
                if len(name) >= 3
                for m in [re.search(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", text, re.IGNORECASE)]
                if m
            ]
            if at:
                found.append((min(at), doc))
        return [doc for _, doc in sorted(found, key=lambda x: x[0])]

    # -- checking answers ------------------------------------------------------------------
    def _finder(self):
        from webapp.rag.evidence import EvidenceFinder

        self._open()
        if self._evidence is None or self._evidence.embedder is not self._embedder:  # (re-embedded)
            self._evidence = EvidenceFinder(self._embedder)
        return self._evidence

    def evidence(self, question: str, passages: Sequence[Passage], k: int | None = None) -> list:
        """The sentences of ``passages`` that best answer ``question`` (webapp/rag/evidence.py),
        shown without the running head a page's first sentence carries (webapp/rag/running_heads.py)."""
        aids = {doc_id: self._reading_aids(doc_id) for doc_id in {p.document_id for p in passages}}
        weights = None
        first = self.store.document(passages[0].document_id) if passages else None
        if first is not None:  # all passages of one answer come from one collection
            cid = self.store.collection_id(first.collection, create=False)
            weights = self.store.term_weights(cid, search_terms(question))
        found = self._finder().evidence(
            question,
            passages,
            k or self.settings.evidence_sentences,
            {doc_id: a.glossary for doc_id, a in aids.items()},
            weights,
        )
        return [dataclasses.replace(e, text=without_head(e.text, aids[e.document_id].heads)) for e in found]

    def _reading_aids(self, doc_id: int) -> _ReadingAids:
        """What reading document ``doc_id``'s sentences needs beside them (the abbreviations it
        defines, the running heads atop its pages), found once per indexed version of it."""
        from webapp.rag.abbreviations import definitions

        doc = self.store.document(doc_id)
        key = (doc_id, doc.indexed_at if doc else None)
        with self._aids_lock:
            found = self._aids.get(key)
        if found is None:
            found = _ReadingAids(
                definitions(" ".join(self.store.document_text(doc_id).split())),
                running_heads(self.store.page_texts(doc_id)),
            )
            with self._aids_lock:
                self._aids[key] = found
                while len(self._aids) > 256:
                    self._aids.pop(next(iter(self._aids)))
        return found

    def claims(self, answer: str | Sequence[str], passages: Sequence[Passage]) -> list:
        """Each sentence of an answer (or of several texts), supported by the passages or not."""
        return self._finder().claims(answer, passages)

    def readable_document(self, doc_id: int, actor: Actor = LOCAL) -> Document:
        doc = self.store.document(int(doc_id))
        if doc is None or not self._readable(doc.collection, actor):
            raise UserError(f"There is no document with id {int(doc_id)}.")
        return doc

    def original(self, doc_id: int, actor: Actor = LOCAL) -> tuple[Document, Path]:
        """The stored original of a document ``actor`` may read (to open at a page, or download)."""
        doc = self.readable_document(doc_id, actor)
        return doc, self.shared.local(self.shared.original(doc))

    def page_image(self, doc_id: int, page: int, highlight: str, actor: Actor = LOCAL):
        """Page ``page`` of a PDF as a PNG with ``highlight`` marked (cached; rendered in the
        sandbox, a few at a time: DocumentsBusy when the render pool stays full)."""
        doc, path = self.original(doc_id, actor)
        if doc.format != "pdf":
            raise UserError(f"{doc.label} has no pages to draw; open its section instead.")
        try:
            return self._pages.get(
                path, doc.sha256, int(page), (highlight or "")[:4000], self.indexer.ocr_words(doc.sha256, int(page))
            )
        except RenderBusy as exc:
            raise DocumentsBusy(exc.user_message) from exc
        except PageImageError as exc:
            raise UserError(exc.user_message) from exc

    def section(self, doc_id: int, number: int, actor: Actor = LOCAL) -> tuple[Document, str, str]:
        """(document, label, text) of section ``number`` of an indexed document: what a citation of a
        document without PDF pages opens (its text as indexed, so the cited sentence is in it)."""
        doc = self.readable_document(doc_id, actor)
        text = dict(self.store.page_texts(doc.id)).get(int(number))
        if text is None:
            raise UserError(f"{doc.label} has no section {int(number)}.")
        label = self.store.page_labels(doc.id).get(int(number)) or f"p. {int(number)}"
        return doc, label, text

    @property
    def relevance_threshold(self) -> float:
        self._open()
        return self._retriever.min_similarity

    def close(self) -> None:
        self._closing.set()
        if self.maintenance is not None:
            self.maintenance.join(timeout=60)
        if self._store is not None:
            self._store.close()
