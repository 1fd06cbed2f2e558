"""The Upload and Index tabs: put PDFs into collections, index them with progress, manage them."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import gradio as gr

from webapp.documents.service import DocumentService
from webapp.errors import UserError
from webapp.ui.safe_markdown import safe_markdown

log = logging.getLogger(__name__)

TABLE_HEADERS = ["id", "document", "status", "pages", "chunks", "note / reason", "added"]
STATUS_ICON = {"queued": "⏳ queued", "parsing": "📄 parsing", "embedding": "🧮 embedding",
               "indexed": "✅ indexed", "failed": "❌ failed"}


def upload_name(file) -> tuple[Path, str]:
    """Gradio hands over a temp path; its original name is only a label for us."""
    path = Path(getattr(file, "name", None) or str(file))
    original = getattr(file, "orig_name", None) or path.name
    return path, original


class DocumentTabs:
    def __init__(self, documents: DocumentService):
        self.documents = documents

    # -- helpers ---------------------------------------------------------------------
    def _collections(self) -> list[str]:
        if self.documents.available() is not None:
            return [self.documents.settings.default_collection]
        return self.documents.collections()

    def table(self, collection: str):
        if self.documents.available() is not None:
            return []
        return [[d.id, d.label, STATUS_ICON.get(d.status, d.status), d.pages or "", d.chunks or "",
                 d.reason or "", d.added_at.replace("T", " ")[:16]]
                for d in self.documents.documents(collection)]

    def render(self) -> None:
        default = self.documents.settings.default_collection
        unavailable = self.documents.available()
        with gr.Tab("Upload", id="upload"):
            if unavailable:
                gr.Markdown(f"⚠️ {unavailable}")
            with gr.Row():
                up_collection = gr.Dropdown(self._collections(), value=default, label="Collection",
                                            allow_custom_value=False, scale=3, elem_id="upload-collection")
                new_name = gr.Textbox(label="New collection", placeholder="e.g. contracts-2026", scale=2)
                create = gr.Button("Create", scale=1)
            files = gr.File(label="PDF files", file_count="multiple", file_types=[".pdf"], elem_id="upload-files")
            index_now = gr.Checkbox(value=True, label="Index right after uploading")
            upload = gr.Button("Upload", variant="primary", elem_id="upload-button")
            upload_result = gr.Markdown(elem_id="upload-result")
        with gr.Tab("Index", id="index"):
            with gr.Row():
                ix_collection = gr.Dropdown(self._collections(), value=default, label="Collection", scale=3,
                                            elem_id="index-collection")
                refresh = gr.Button("↻ Refresh", scale=1)
            table = gr.Dataframe(headers=TABLE_HEADERS, value=self.table(default), interactive=False,
                                 wrap=True, elem_id="documents-table")
            with gr.Row():
                index_btn = gr.Button("Index queued", variant="primary", elem_id="index-button")
                reindex_btn = gr.Button("Re-index all")
                retry_btn = gr.Button("Retry failed")
            index_result = gr.Markdown(elem_id="index-result")
            if not unavailable:
                with gr.Accordion("Embedding model", open=False):
                    current = self.documents.embedding_model_name()
                    model_note = gr.Markdown(self._model_note(current), elem_id="embedding-model")
                    with gr.Row():
                        model_choice = gr.Dropdown(self.documents.embedding_models(), value=current, scale=3,
                                                   label="Re-embed every document with", elem_id="reembed-model")
                        reembed = gr.Button("Re-embed all documents", scale=1, elem_id="reembed-button")
            with gr.Row():
                doc_id = gr.Number(label="Document id", precision=0, minimum=0, scale=1)
                password = gr.Textbox(label="Password (encrypted PDFs)", type="password", scale=2)
                with gr.Column(scale=1):
                    with_password = gr.Button("Index with password")
                    delete = gr.Button("Delete document", variant="stop")

        create.click(self.create_collection, [new_name], [up_collection, ix_collection, new_name, upload_result])
        upload.click(self.upload, [up_collection, files, index_now],
                     [upload_result, table, files, ix_collection], concurrency_limit=1)
        ix_collection.change(self.table, [ix_collection], [table], queue=False)
        refresh.click(self.refresh, [ix_collection], [table, ix_collection, up_collection], queue=False)
        index_btn.click(self.index, [ix_collection], [index_result, table], concurrency_limit=1)
        reindex_btn.click(self.reindex_all, [ix_collection], [index_result, table], concurrency_limit=1)
        retry_btn.click(self.retry_failed, [ix_collection], [index_result, table], concurrency_limit=1)
        with_password.click(self.index_with_password, [ix_collection, doc_id, password],
                            [index_result, table, password], concurrency_limit=1)
        delete.click(self.delete, [ix_collection, doc_id], [index_result, table], concurrency_limit=1)
        if not unavailable:
            reembed.click(self.reembed, [model_choice], [model_note], concurrency_limit=1)

    @staticmethod
    def _model_note(name: str) -> str:
        return (f"Documents in this data folder are embedded with **{name}**. The default static model "
                "indexes about 8x faster; all-minilm-l6-v2 retrieves a little better and refuses unrelated "
                "questions more reliably (docs/documents.md). Switching re-embeds the stored text; the PDFs are "
                "not read again.")

    # -- handlers --------------------------------------------------------------------
    def reembed(self, model, progress=gr.Progress()):
        started = time.perf_counter()
        try:
            count = self.documents.reembed(model, progress=lambda f, what: progress(f, desc=what))
        except UserError as exc:
            return self._model_note(self.documents.embedding_model_name()) + f"\n\n⚠️ {exc.user_message}"
        return (self._model_note(model) + f"\n\n✅ Re-embedded {count} chunks in "
                f"{time.perf_counter() - started:.1f} s.")

    def refresh(self, collection):
        names = self._collections()
        return self.table(collection), gr.Dropdown(choices=names), gr.Dropdown(choices=names)

    def create_collection(self, name):
        try:
            created = self.documents.create_collection(name)
        except UserError as exc:
            return gr.skip(), gr.skip(), name, f"⚠️ {exc.user_message}"
        names = self._collections()
        return (gr.Dropdown(choices=names, value=created), gr.Dropdown(choices=names, value=created), "",
                f"Collection **{created}** is ready.")

    def upload(self, collection, files, index_now, progress=gr.Progress()):
        if not files:
            return "⚠️ Choose one or more PDF files first.", gr.skip(), gr.skip(), gr.skip()
        try:
            results = self.documents.add_uploads(collection, [upload_name(f) for f in files])
        except UserError as exc:
            return f"⚠️ {exc.user_message}", gr.skip(), None, gr.skip()
        lines = []
        for r in results:
            label = safe_markdown(r.label)
            if r.error:
                lines.append(f"- ❌ **{label}**: {r.error}")
            elif r.duplicate:
                lines.append(f"- ↺ **{label}** is already in this collection (same content as "
                             f"“{safe_markdown(r.document.label)}”), not added again.")
            else:
                lines.append(f"- ✅ **{label}** added.")
        text = "\n".join(lines)
        if index_now and any(r.document and not r.duplicate for r in results):
            text += "\n\n" + self._run_index(collection, progress, [])
        return text, self.table(collection), None, gr.Dropdown(value=collection)

    def _run_index(self, collection, progress, doc_ids=None, only_failed=False, passwords=None) -> str:
        try:
            report = self.documents.reindex(collection, doc_ids, only_failed=only_failed, passwords=passwords,
                                            progress=lambda f, what: progress(f, desc=what))
        except UserError as exc:
            return f"⚠️ {exc.user_message}"
        return safe_markdown(report.summary())

    def index(self, collection, progress=gr.Progress()):
        if not any(d.status == "queued" for d in self.documents.documents(collection)):
            return "Nothing is queued in this collection.", self.table(collection)
        return self._run_index(collection, progress, []), self.table(collection)

    def reindex_all(self, collection, progress=gr.Progress()):
        return self._run_index(collection, progress, None), self.table(collection)

    def retry_failed(self, collection, progress=gr.Progress()):
        if not any(d.status == "failed" for d in self.documents.documents(collection)):
            return "No document has failed in this collection.", self.table(collection)
        return self._run_index(collection, progress, None, only_failed=True), self.table(collection)

    def _find(self, collection, doc_id):
        if doc_id is None:
            raise UserError("Enter the id of a document from the table first.")
        doc = next((d for d in self.documents.documents(collection) if d.id == int(doc_id)), None)
        if doc is None:
            raise UserError(f"There is no document {int(doc_id)} in collection {collection}.")
        return doc

    def index_with_password(self, collection, doc_id, password, progress=gr.Progress()):
        try:
            doc = self._find(collection, doc_id)
        except UserError as exc:
            return f"⚠️ {exc.user_message}", self.table(collection), ""
        return (self._run_index(collection, progress, [doc.id], passwords={doc.id: password or ""}),
                self.table(collection), "")

    def delete(self, collection, doc_id):
        try:
            doc = self.documents.delete(self._find(collection, doc_id).id)
        except UserError as exc:
            return f"⚠️ {exc.user_message}", self.table(collection)
        return f"Deleted **{safe_markdown(doc.label)}** and its {doc.chunks or 0} chunks.", self.table(collection)
