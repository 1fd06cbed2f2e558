"""The Upload and Index tabs: put documents (PDF, Word, PowerPoint, ...) into collections, index them with progress, manage them,
decide who sees each collection.

Everything shown is what the signed-in user may see: pickers and the table are filled per user
when the page loads (never baked into the page config), and every handler passes the user's
Actor to the DocumentService, which refuses what the role or the sharing does not allow.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import gradio as gr

from webapp.auth.access import VISIBILITIES
from webapp.auth.gate import Authenticator
from webapp.documents.service import DocumentService
from webapp.documents.sync import SyncService
from webapp.errors import UserError
from webapp.readers.registry import EXTENSIONS
from webapp.ui.safe_markdown import plain_text, warning

log = logging.getLogger(__name__)

TABLE_HEADERS = ["id", "document", "status", "pages", "chunks", "note / reason", "added"]
# Words, not emoji: they read the same in every font and to a screen reader.
STATUS_WORDS = {
    "queued": "queued",
    "parsing": "reading",
    "embedding": "embedding",
    "indexed": "indexed",
    "failed": "FAILED",
}
# Uploads and indexing runs of different users go side by side (they share the indexer's CPU slots
# fairly, webapp/documents/fair_share.py): one group of events, so a big scan never makes someone
# else's upload wait in Gradio's queue. The bound only caps threads parked in waiting runs.
INGEST = dict(concurrency_id="ingest", concurrency_limit=16)
VISIBILITY_CHOICES = [
    ("Private: only me", "private"),
    ("Shared with the users named below", "shared"),
    ("Everyone signed in", "everyone"),
]


def upload_name(file) -> tuple[Path, str]:
    """Gradio hands over a temp path; its original name is only a label for us."""
    path = Path(getattr(file, "name", None) or str(file))
    original = getattr(file, "orig_name", None) or path.name
    return path, original


def member_names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").replace(";", ",").replace("\n", ",").split(",") if n.strip()]


class DocumentTabs:
    def __init__(self, documents: DocumentService, auth: Authenticator, sync: SyncService | None = None):
        self.documents = documents
        self.auth = auth
        self.sync = sync or SyncService(documents)

    # -- helpers ---------------------------------------------------------------------
    def readable(self, actor) -> list[str]:
        return [] if self.documents.available() is not None else self.documents.collections(actor)

    def _managed(self, actor) -> list[str]:
        return [] if self.documents.available() is not None else self.documents.managed_collections(actor)

    def rows(self, collection, actor):
        if self.documents.available() is not None or not collection:
            return []
        try:
            docs = self.documents.documents(collection, actor)
        except UserError:
            return []
        return [
            [
                d.id,
                d.label,
                STATUS_WORDS.get(d.status, d.status),
                d.pages or "",
                d.chunks or "",
                d.reason or "",
                d.added_at.replace("T", " ")[:16],
            ]
            for d in docs
        ]

    def sharing_text(self, collection, actor) -> str:
        found = (
            next((c for c in self.documents.collection_access(actor) if c.name == collection), None)
            if self.documents.available() is None
            else None
        )
        if found is None:
            return ""
        can = "you can manage its documents" if found.can_manage_documents(actor) else "read only for you"
        return (
            f"**{plain_text(found.name)}**: owner {plain_text(found.owner_label())}, "
            f"{plain_text(found.sharing_label())} ({can})."
        )

    def render(self) -> None:
        unavailable = self.documents.available()
        # Hidden until the page load shows it to roles that may upload (Gradio hides a tab
        # reliably only from hidden to shown, not the other way).
        with gr.Tab("Upload", id="upload", visible=False) as self.upload_tab:
            if unavailable:
                gr.Markdown(f"⚠ {unavailable}")
            with gr.Row():
                # Choices are filled per user on page load; API clients name a collection directly,
                # so any value is taken here and the DocumentService decides whether it may be used.
                self.up_collection = gr.Dropdown(
                    [],
                    label="Collection",
                    info=(
                        "Leave empty for your own private collection (made on your first upload)"
                        if self.auth.enabled
                        else f"Leave empty for {self.documents.settings.default_collection}"
                    ),
                    allow_custom_value=True,
                    scale=3,
                    elem_id="upload-collection",
                )
            with gr.Accordion("New collection", open=False, elem_id="new-collection"):
                with gr.Row():
                    new_name = gr.Textbox(
                        label="Name", placeholder="e.g. contracts-2026", scale=2, elem_id="new-collection-name"
                    )
                    new_visibility = gr.Radio(
                        VISIBILITY_CHOICES,
                        value="private",
                        label="Who can read it",
                        scale=3,
                        elem_id="new-collection-visibility",
                    )
                new_members = gr.Textbox(
                    label="Share with (user names, comma-separated)", elem_id="new-collection-members"
                )
                create = gr.Button("Create collection", elem_id="create-collection")
            files = gr.File(
                label="Files: PDF, Word, PowerPoint, HTML, Markdown, text, Excel",
                file_count="multiple",
                file_types=list(EXTENSIONS),
                elem_id="upload-files",
            )
            index_now = gr.Checkbox(value=True, label="Index right after uploading")
            upload = gr.Button("Upload", variant="primary", elem_id="upload-button")
            upload_result = gr.Markdown(elem_id="upload-result")
            # Shown once the upload's collection has something to search; app.py wires it to the Chat tab.
            self.ask_button = gr.Button("Ask about it →", visible=False, elem_id="ask-about-collection")
        with gr.Tab("Documents", id="index") as self.index_tab:
            with gr.Row():
                self.ix_collection = gr.Dropdown(
                    [], label="Collection", allow_custom_value=True, scale=3, elem_id="index-collection"
                )
                refresh = gr.Button("Refresh", scale=1, elem_id="index-refresh")
            sharing_note = gr.Markdown(elem_id="sharing-note")
            # The reason column gets the room: long file names used to push failure reasons out of view.
            table = gr.Dataframe(
                headers=TABLE_HEADERS,
                value=[],
                interactive=False,
                wrap=True,
                column_widths=["6%", "22%", "10%", "7%", "7%", "36%", "12%"],
                elem_id="documents-table",
            )
            gr.Markdown("Click a row to choose a document.", elem_id="table-hint")
            selected = gr.Number(value=None, precision=0, visible=False, elem_id="selected-document")
            selected_note = gr.Markdown(elem_id="selected-document-note")
            with gr.Row() as self.manage_row:
                index_btn = gr.Button("Index queued", variant="primary", elem_id="index-button")
                reindex_btn = gr.Button("Re-index all", elem_id="reindex-button")
                retry_btn = gr.Button("Retry failed", elem_id="retry-button")
                delete = gr.Button("Delete selected document", variant="stop", elem_id="delete-document")
            with gr.Group(visible=False) as confirm:
                confirm_text = gr.Markdown(elem_id="delete-confirm-text")
                with gr.Row():
                    confirm_yes = gr.Button("Yes, delete it", variant="stop", elem_id="delete-confirm")
                    confirm_no = gr.Button("Keep it", elem_id="delete-cancel")
            with gr.Accordion("Encrypted PDF", open=False) as self.password_box:
                with gr.Row():
                    password = gr.Textbox(label="Password of the selected document", type="password", scale=3)
                    with_password = gr.Button("Index with password", scale=1, elem_id="index-with-password")
            index_result = gr.Markdown(elem_id="index-result")
            with gr.Accordion("Who can read this collection", open=False) as self.sharing_box:
                with gr.Row():
                    visibility = gr.Radio(
                        VISIBILITY_CHOICES, value="private", label="Visibility", scale=3, elem_id="sharing-visibility"
                    )
                    members = gr.Textbox(
                        label="Shared with (user names, comma-separated)", scale=3, elem_id="sharing-members"
                    )
                share = gr.Button("Save sharing", elem_id="sharing-save")
            # Admins only: a source makes the app read a folder of the server or a bucket.
            with gr.Accordion("Source (sync)", open=False, visible=False) as self.source_box:
                source_note = gr.Markdown(elem_id="source-note")
                source_url = gr.Textbox(
                    label="Folder or gs://BUCKET/PREFIX this collection mirrors",
                    placeholder="gs://team-docs/handbook",
                    elem_id="source-url",
                )
                with gr.Row():
                    save_source = gr.Button("Save source", elem_id="source-save")
                    clear_source = gr.Button("Clear source", elem_id="source-clear")
                    sync_now = gr.Button("Sync now", variant="primary", elem_id="source-sync")
            with gr.Accordion("Embedding model", open=False, visible=not unavailable) as self.embedding_box:
                current = "" if unavailable else self.documents.embedding_model_name()
                model_note = gr.Markdown(self._model_note(current) if current else "", elem_id="embedding-model")
                with gr.Row():
                    model_choice = gr.Dropdown(
                        [] if unavailable else self.documents.embedding_models(),
                        value=current or None,
                        scale=3,
                        label="Re-embed every document with",
                        elem_id="reembed-model",
                    )
                    reembed = gr.Button("Re-embed all documents", scale=1, elem_id="reembed-button")

        self.pickers = [self.up_collection, self.ix_collection]
        create.click(
            self.create_collection,
            [new_name, new_visibility, new_members],
            [self.up_collection, self.ix_collection, new_name, upload_result],
            concurrency_limit=1,
        )
        self.upload_event = upload.click(
            self.upload,
            [self.up_collection, files, index_now],
            [upload_result, table, files, self.ix_collection, self.up_collection, self.ask_button],
            **INGEST,
        )
        # Actions the user may not take on this collection are hidden, and the sharing note says
        # why ("read only for you"): they no longer fail only after the click.
        shown = [
            table,
            sharing_note,
            visibility,
            members,
            selected,
            selected_note,
            confirm,
            self.manage_row,
            self.password_box,
            self.sharing_box,
        ]
        self.ix_collection.change(self.show_collection, [self.ix_collection], shown, queue=False).then(
            self.show_source, [self.ix_collection], [source_note, source_url], queue=False
        )
        save_source.click(self.save_source, [self.ix_collection, source_url], [source_note, source_url], queue=False)
        clear_source.click(self.clear_source, [self.ix_collection], [source_note, source_url], queue=False)
        sync_now.click(self.sync_now, [self.ix_collection], [source_note, table], **INGEST)
        refresh.click(self.refresh, [self.ix_collection], [self.up_collection, self.ix_collection] + shown, queue=False)
        table.select(self.select_row, [self.ix_collection], [selected, selected_note, confirm], queue=False)
        index_btn.click(self.index, [self.ix_collection], [index_result, table], **INGEST)
        reindex_btn.click(self.reindex_all, [self.ix_collection], [index_result, table], **INGEST)
        retry_btn.click(self.retry_failed, [self.ix_collection], [index_result, table], **INGEST)
        with_password.click(
            self.index_with_password,
            [self.ix_collection, selected, password],
            [index_result, table, password],
            **INGEST,
        )
        delete.click(
            self.ask_delete, [self.ix_collection, selected], [confirm, confirm_text, index_result], queue=False
        )
        confirm_no.click(lambda: gr.Group(visible=False), None, [confirm], queue=False)
        confirm_yes.click(
            self.delete,
            [self.ix_collection, selected],
            [index_result, table, selected, selected_note, confirm],
            concurrency_limit=1,
        )
        share.click(
            self.share, [self.ix_collection, visibility, members], [sharing_note, index_result], concurrency_limit=1
        )
        reembed.click(self.reembed, [model_choice], [model_note], concurrency_limit=1)

    # -- per-user state ----------------------------------------------------------------
    def load_outputs(self) -> list:
        return [
            self.upload_tab,
            self.up_collection,
            self.ix_collection,
            self.manage_row,
            self.password_box,
            self.sharing_box,
            self.embedding_box,
            self.source_box,
        ]

    def on_load(self, actor) -> list:
        managed, readable = self._managed(actor), self.readable(actor)
        default = self.documents.settings.default_collection
        # Uploads start in the user's own collection (private first), never in one readable by
        # more people than they chose; with none, empty: the upload makes a private one.
        own = self.documents.own_collections(actor) if self.documents.available() is None else []
        if not self.auth.enabled:
            first_managed = default if default in managed else (managed[0] if managed else None)
        else:
            first_managed = own[0] if own else None
        first_readable = default if default in readable else (readable[0] if readable else None)
        return [
            gr.Tab(visible=actor.can_upload),
            gr.Dropdown(choices=managed, value=first_managed),
            gr.Dropdown(choices=readable, value=first_readable),
            gr.Row(visible=actor.can_upload),
            gr.Accordion(visible=actor.can_upload),
            gr.Accordion(visible=actor.can_upload),
            gr.Accordion(visible=actor.is_admin and self.documents.available() is None),
            gr.Accordion(visible=actor.is_admin and self.documents.available() is None),
        ]

    def picker_updates(self, actor) -> list:
        """New choices for both pickers (a collection created or shared elsewhere appears)."""
        return [gr.Dropdown(choices=self._managed(actor)), gr.Dropdown(choices=self.readable(actor))]

    @staticmethod
    def _model_note(name: str) -> str:
        return (
            f"Documents in this data folder are embedded with **{name}**. The default static model "
            "indexes about 8x faster; all-minilm-l6-v2 retrieves a little better and refuses unrelated "
            "questions more reliably (docs/documents.md). Switching re-embeds the stored text; the PDFs are "
            "not read again."
        )

    # -- handlers --------------------------------------------------------------------
    def show_collection(self, collection, request: gr.Request):
        actor = self.auth.actor_of(request)
        found = (
            next((c for c in self.documents.collection_access(actor) if c.name == collection), None)
            if self.documents.available() is None
            else None
        )
        visibility = found.visibility if found else "private"
        members = ", ".join(found.members) if found else ""
        manage = found.can_manage_documents(actor) if found else actor.can_upload
        return (
            self.rows(collection, actor),
            self.sharing_text(collection, actor),
            visibility,
            members,
            None,
            "",
            gr.Group(visible=False),
            gr.Row(visible=manage),
            gr.Accordion(visible=manage),
            gr.Accordion(visible=found.can_change_sharing(actor) if found else actor.can_upload),
        )

    def refresh(self, collection, request: gr.Request):
        actor = self.auth.actor_of(request)
        return (*self.picker_updates(actor), *self.show_collection(collection, request))

    def select_row(self, collection, evt: gr.SelectData, request: gr.Request):
        actor = self.auth.actor_of(request)
        row = evt.row_value if evt is not None else None
        try:
            doc_id = int(row[0]) if row else None
        except (TypeError, ValueError):
            doc_id = None
        doc = (
            next((d for d in self.documents.documents(collection, actor) if d.id == doc_id), None)
            if doc_id is not None
            else None
        )
        if doc is None:
            return None, "", gr.Group(visible=False)
        return (
            doc.id,
            f"Selected: **{plain_text(doc.label)}** ({STATUS_WORDS.get(doc.status, doc.status)})",
            gr.Group(visible=False),
        )

    def reembed(self, model, request: gr.Request, progress=gr.Progress()):
        started = time.perf_counter()
        try:
            count = self.documents.reembed(
                model, progress=lambda f, what: progress(f, desc=what), actor=self.auth.actor_of(request)
            )
        except UserError as exc:
            return self._model_note(self.documents.embedding_model_name()) + "\n\n" + warning(exc)
        return self._model_note(model) + f"\n\nRe-embedded {count} chunks in {time.perf_counter() - started:.1f} s."

    def create_collection(self, name, visibility, members, request: gr.Request):
        try:
            actor = self.auth.actor_of(request)
            created = self.documents.create_collection(
                name, actor, visibility or "private", member_names(members) if visibility == "shared" else ()
            )
        except UserError as exc:
            return gr.skip(), gr.skip(), name, warning(exc)
        return (
            gr.Dropdown(choices=self._managed(actor), value=created),
            gr.Dropdown(choices=self.readable(actor), value=created),
            "",
            f"Collection **{plain_text(created)}** is ready.",
        )

    def share(self, collection, visibility, members, request: gr.Request):
        try:
            actor = self.auth.actor_of(request)
            if visibility not in VISIBILITIES:
                raise UserError("Choose who can read the collection.")
            self.documents.share(collection, visibility, member_names(members), actor)
        except UserError as exc:
            return gr.skip(), warning(exc)
        return self.sharing_text(collection, actor), "Sharing saved."

    def upload(self, collection, files, index_now, request: gr.Request, progress=gr.Progress()):
        if not files:
            return (
                "⚠ Choose one or more files first (PDF, Word, PowerPoint, HTML, Markdown, text or Excel).",
                gr.skip(),
                gr.skip(),
                gr.skip(),
                gr.skip(),
                gr.skip(),
            )
        try:
            actor = self.auth.actor_of(request)
            made = not (collection or "").strip()
            if made:  # none chosen: the user's own private collection, made on the spot if need be
                collection = self.documents.upload_collection(actor)
            results = self.documents.add_uploads(collection, [upload_name(f) for f in files], actor)
        except UserError as exc:
            return warning(exc), gr.skip(), None, gr.skip(), gr.skip(), gr.skip()
        lines = []
        for r in results:
            label = plain_text(r.label)
            if r.error:
                lines.append(f"- **{label}**: refused. {r.error}")
            elif r.duplicate:
                lines.append(
                    f"- **{label}** is already in this collection (same content as "
                    f"“{plain_text(r.document.label)}”), not added again."
                )
            else:
                lines.append(f"- **{label}** added.")
        text = "\n".join(lines)
        if made:
            text = f"Into your private collection **{plain_text(collection)}**:\n\n" + text
        added = [r.document.id for r in results if r.document and not r.duplicate]
        if index_now and added:
            text += "\n\n" + self._index_added(collection, added, progress, actor)
        searchable = any(d.indexed_at for d in self.documents.documents(collection, actor))
        return (
            text,
            self.rows(collection, actor),
            None,
            gr.Dropdown(choices=self.readable(actor), value=collection),
            gr.Dropdown(choices=self._managed(actor), value=collection),
            gr.Button(f"Ask about {collection} →", visible=searchable),
        )

    def _index_added(self, collection, doc_ids, progress, actor) -> str:
        """Index just what this upload added, beside whatever else is being indexed."""
        try:
            report = self.documents.index_new(
                collection, doc_ids, progress=lambda f, what: progress(f, desc=what), actor=actor
            )
        except UserError as exc:
            return warning(exc)
        return plain_text(report.summary())

    def _run_index(self, collection, progress, actor, doc_ids=None, only_failed=False, passwords=None) -> str:
        try:
            report = self.documents.reindex(
                collection,
                doc_ids,
                only_failed=only_failed,
                passwords=passwords,
                progress=lambda f, what: progress(f, desc=what),
                actor=actor,
            )
        except UserError as exc:
            return warning(exc)
        return plain_text(report.summary())

    # -- synced source (webapp/documents/sync.py) ---------------------------------------------
    def _source_text(self, collection, actor) -> tuple[str, str]:
        if not actor.is_admin or not collection or self.documents.available() is not None:
            return "", ""
        status = self.sync.status(collection, actor)
        if status is None:
            return "This collection has no source: its documents come from uploads.", ""
        return plain_text(status.text()).replace("\n", "  \n"), status.url

    def show_source(self, collection, request: gr.Request):
        return self._source_text(collection, self.auth.actor_of(request))

    def save_source(self, collection, url, request: gr.Request):
        actor = self.auth.actor_of(request)
        try:
            self.sync.set_source(collection, url or None, actor)
        except UserError as exc:
            return warning(exc), gr.skip()
        return self._source_text(collection, actor)

    def clear_source(self, collection, request: gr.Request):
        return self.save_source(collection, None, request)

    def sync_now(self, collection, request: gr.Request, progress=gr.Progress()):
        actor = self.auth.actor_of(request)
        try:
            report = self.sync.run(collection, actor=actor, progress=lambda f, what: progress(f, desc=what))
        except UserError as exc:
            return warning(exc), gr.skip()
        return plain_text("\n".join(report.lines()[:12])).replace("\n", "  \n"), self.rows(collection, actor)

    def _docs(self, collection, actor):
        try:
            return self.documents.documents(collection, actor)
        except UserError:
            return []

    def index(self, collection, request: gr.Request, progress=gr.Progress()):
        actor = self.auth.actor_of(request)
        if not any(d.status == "queued" for d in self._docs(collection, actor)):
            return "Nothing is queued in this collection.", self.rows(collection, actor)
        return self._run_index(collection, progress, actor, []), self.rows(collection, actor)

    def reindex_all(self, collection, request: gr.Request, progress=gr.Progress()):
        actor = self.auth.actor_of(request)
        return self._run_index(collection, progress, actor, None), self.rows(collection, actor)

    def retry_failed(self, collection, request: gr.Request, progress=gr.Progress()):
        actor = self.auth.actor_of(request)
        if not any(d.status == "failed" for d in self._docs(collection, actor)):
            return "No document has failed in this collection.", self.rows(collection, actor)
        return self._run_index(collection, progress, actor, None, only_failed=True), self.rows(collection, actor)

    def _find(self, collection, doc_id, actor):
        if doc_id is None:
            raise UserError("Click a document in the table first.")
        doc = next((d for d in self.documents.documents(collection, actor) if d.id == int(doc_id)), None)
        if doc is None:
            raise UserError(f"There is no document {int(doc_id)} in collection {collection}.")
        return doc

    def index_with_password(self, collection, doc_id, password, request: gr.Request, progress=gr.Progress()):
        try:
            actor = self.auth.actor_of(request)
            doc = self._find(collection, doc_id, actor)
        except UserError as exc:
            return warning(exc), gr.skip(), ""
        return (
            self._run_index(collection, progress, actor, [doc.id], passwords={doc.id: password or ""}),
            self.rows(collection, actor),
            "",
        )

    def ask_delete(self, collection, doc_id, request: gr.Request):
        try:
            doc = self._find(collection, doc_id, self.auth.actor_of(request))
        except UserError as exc:
            return gr.Group(visible=False), "", warning(exc)
        return (
            gr.Group(visible=True),
            f"Delete **{plain_text(doc.label)}** and its {doc.chunks or 0} chunks "
            "from the collection? This cannot be undone.",
            "",
        )

    def delete(self, collection, doc_id, request: gr.Request):
        try:
            actor = self.auth.actor_of(request)
            doc = self.documents.delete(self._find(collection, doc_id, actor).id, actor)
        except UserError as exc:
            return warning(exc), gr.skip(), gr.skip(), gr.skip(), gr.Group(visible=False)
        return (
            f"Deleted **{plain_text(doc.label)}** and its {doc.chunks or 0} chunks.",
            self.rows(collection, actor),
            None,
            "",
            gr.Group(visible=False),
        )
