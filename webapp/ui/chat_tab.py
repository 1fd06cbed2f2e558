"""The Chat tab: the user's conversations on the side, model and collection pickers, the
streaming answer, Stop, generation settings.

Conversations are stored per user on the server (webapp/chat/conversations.py): the history the
model sees comes from there, never from the client, and a reload or a second browser shows the
same chat. Per-browser state is the open conversation's id (a hidden field) and the Gradio
session id (which answer Stop cancels); nothing per-user lives on this object.
"""

from __future__ import annotations

import html
import logging
import urllib.parse

import gradio as gr

from webapp.auth.gate import Authenticator
from webapp.chat.answer_text import md_literal
from webapp.chat.answering import Answer, Answerer, EvidenceReady, Failed, Question, Stage, Token
from webapp.chat.conversations import ConversationStore, StoredMessage
from webapp.documents.section_view import section_html
from webapp.downloads import download_folder
from webapp.errors import BackendError, UserError
from webapp.llm.base import StreamStats
from webapp.rag.evidence import Claim, cite_inline
from webapp.ui.safe_markdown import plain_text, safe_markdown, warning

log = logging.getLogger(__name__)

NO_DOCUMENTS = "(none: chat without documents)"


def sources_markdown(passages) -> str:
    if not passages:
        return ""
    parts = []
    for n, p in enumerate(passages, start=1):
        quoted = "\n".join("> " + safe_markdown(line) for line in p.text.splitlines() if line.strip())
        parts.append(f"**[{n}] {plain_text(p.document)}, page {p.page}** (similarity {p.similarity:.2f})\n\n{quoted}")
    return "\n\n".join(parts)


UNSUPPORTED = " **[not in the sources]**"


def display(messages: list[StoredMessage], claims=None) -> list[dict]:
    """Stored turns as the Chatbot shows them: answers escaped, with their citation line; with
    ``claims`` (the last answer's check), supported sentences get their [n], the others a mark."""
    out = []
    for m in messages:
        if m.role == "user":
            out.append({"role": "user", "content": m.content})
        else:
            # Answers written by webapp/chat/answering.py carry their marks in the text already
            # (their checks say which mode wrote them); older ones are marked here from their claims.
            marks = None if "mode" in m.checks else claims if claims is not None else stored_claims(m)
            text = cite_inline(m.content, marks, UNSUPPORTED) if marks else m.content
            text = safe_markdown(text)
            if m.sources:
                text += "\n\n**Sources:** " + plain_text(m.citation_line())
            out.append({"role": "assistant", "content": text})
    return out


def stored_claims(message: StoredMessage) -> list[Claim]:
    return [
        Claim(c["text"], bool(c["supported"]), c.get("source"), float(c.get("score", 0.0)))
        for c in message.checks.get("claims", [])
        if isinstance(c, dict) and "text" in c
    ]


def last_checks(messages: list[StoredMessage]) -> list[dict]:
    """The Evidence list of the newest answer of a stored conversation."""
    for m in reversed(messages):
        if m.role == "assistant":
            return [c for c in m.checks.get("evidence", []) if isinstance(c, dict) and "key" in c]
    return []


def check_items(evidence, sources) -> list[dict]:
    """What the Evidence list offers: the evidence sentences, then one entry per cited passage
    (its best evidence sentence, or its opening words, is what gets highlighted)."""
    items = [
        {
            "key": f"e{n}",
            "document_id": e.document_id,
            "page": e.page,
            "text": e.text,
            "label": f"“{e.text}” — {e.document}, {e.where} (score {e.score:.2f})",
        }
        for n, e in enumerate(evidence)
    ]
    for n, p in enumerate(sources, start=1):
        best = next((e.text for e in evidence if e.source == n), None)
        items.append(
            {
                "key": f"c{n}",
                "document_id": p.document_id,
                "page": p.page,
                "text": best or " ".join(p.text.split()[:40]),
                "label": f"[{n}] {p.document}, {p.where}",
            }
        )
    return items


def evidence_radio(checks: list[dict]):
    return gr.Radio(choices=[(c["label"], c["key"]) for c in checks], value=None)


def _checks_out(checks: list[dict]) -> tuple:
    """The Evidence list and its State."""
    return evidence_radio(checks), checks


def answer_status(answer: Answer, model: str | None) -> str:
    """The line under a finished answer: model figures, and what the claim check did."""
    parts = [format_stats(answer.stats, model or "")] if answer.stats.completion_tokens else []
    if answer.evidence and not answer.refused:
        parts.append("opens with the sources' own sentences")
    if answer.claims:
        supported = sum(c.supported for c in answer.claims)
        parts.append(f"{supported} of {len(answer.claims)} checked sentences found in the sources")
    if answer.finish_reason == "loop":
        parts.append("the model started repeating itself and was stopped")
    if answer.question.collection is None:
        parts.append("answered without documents")
    elif answer.documents and not answer.question.documents:
        # a follow-up kept to what the previous answer quoted (webapp/chat/followups.py)
        parts.append("answered from the previous answer's " + ", ".join(md_literal(d) for d in answer.documents))
    return " · ".join(parts)


def page_html(doc_id: int, label: str, page: int, text: str) -> str:
    """The page image (drawn by /documents/<id>/pages/<n>.png, behind sign-in and access checks)
    and a link to the original opened at that page. Relative URLs keep any root path."""
    query = urllib.parse.urlencode({"highlight": text[:1500]})
    name = html.escape(label)
    image = f"documents/{doc_id}/pages/{page}.png?{html.escape(query)}"
    return (
        f'<p><a id="page-pdf-link" href="documents/{doc_id}.pdf#page={page}" target="_blank" rel="noopener">'
        f"Open {name} at page {page}</a></p>"
        # the image links to itself: opened in a tab of its own it can be zoomed like any picture
        f'<a id="page-image-full" href="{image}" target="_blank" rel="noopener" title="Open the page full size">'
        f'<img id="page-image" src="{image}" '
        f'alt="Page {page} of {name}, the sentence highlighted" style="max-width:100%;border:1px solid #ccc"></a>'
    )


def section_panel(doc_id: int, document: str, number: int, label: str, text: str, highlight: str) -> str:
    """A cited section of a document without pages, and links to it in a tab of its own and to the original."""
    query = html.escape(urllib.parse.urlencode({"highlight": highlight[:1500]}))
    return (
        f'<p><a id="section-link" href="documents/{doc_id}/sections/{number}.html?{query}#cited" target="_blank" '
        f'rel="noopener">Open {html.escape(label)} in a new tab</a> · '
        f'<a href="documents/{doc_id}/original">Download {html.escape(document)}</a></p>'
        f'<div id="section-view">{section_html(document, label, text, highlight)}</div>'
    )


def source_records(passages) -> list[dict]:
    return [{"document": p.document, "page": p.page, "where": p.where} for p in passages]


def format_stats(stats: StreamStats, model: str) -> str:
    parts = [f"**{model}**", f"{stats.completion_tokens} tokens"]
    if stats.ttft_s is not None:
        parts.append(f"first token {stats.ttft_s:.2f} s")
    if stats.decode_tok_s:
        parts.append(f"{stats.decode_tok_s:.1f} tok/s")
    if stats.finish_reason == "length":
        parts.append("stopped at the length limit")
    elif stats.finish_reason == "cancelled":
        parts.append("stopped")
    return " · ".join(parts)


SEARCHING = "Searching the documents…"
# The status line while an answer is written, from the answering events' stages.
STAGE_STATUS = {"answering": "Answering…", "checking": "Checking the answer against the sources…"}

NO_DOCUMENTS_BADGE = (
    "**Answering without documents**: the model answers from what it learned, not from your files. "
    "Choose a collection in *Answer from documents in* to answer from them."
)
ANSWER_MODES = [
    ("Automatic: quotes only with small models, quotes + a short checked answer with larger ones", "auto"),
    ("Quotes only: the sources' sentences, no model", "quote"),
    ("Quotes + a short answer, only what the sources support", "brief"),
    ("Quotes + the model's own text, unsupported sentences marked (strong models)", "free"),
]


class ChatTab:
    def __init__(self, answers: Answerer, conversations: ConversationStore, auth: Authenticator):
        self.answers = answers
        self.chat = answers.chat
        self.documents = answers.documents
        self.conversations = conversations
        self.auth = auth

    def render(self) -> None:
        catalog = self.chat.catalog
        defaults = self.chat.default_params()
        with gr.Row(elem_id="chat-layout"):
            with gr.Column(scale=1, min_width=220, elem_id="conversation-sidebar"):
                new_chat = gr.Button("+ New conversation", elem_id="new-chat", size="sm")
                # Filled per user when the page loads: nothing of anyone's chats is in the page config.
                self.history_list = gr.Radio(choices=[], label="Your conversations", elem_id="conversations")
                with gr.Accordion("Rename, export, delete", open=False, elem_id="conversation-tools"):
                    self.title = gr.Textbox(label="Title", max_lines=1, elem_id="conversation-title")
                    rename = gr.Button("Rename", size="sm", elem_id="conversation-rename")
                    export = gr.Button("Export as Markdown", size="sm", elem_id="conversation-export")
                    export_file = gr.File(label="Markdown export", interactive=False, elem_id="conversation-file")
                    delete = gr.Button("Delete conversation", variant="stop", size="sm", elem_id="conversation-delete")
                    with gr.Group(visible=False) as confirm:
                        gr.Markdown("Delete this conversation for good?")
                        confirm_yes = gr.Button(
                            "Yes, delete it", variant="stop", size="sm", elem_id="conversation-delete-yes"
                        )
                        confirm_no = gr.Button("Keep it", size="sm", elem_id="conversation-delete-no")
                self.tools_note = gr.Markdown("", elem_id="conversation-note")
            with gr.Column(scale=4, elem_id="chat-main"):
                with gr.Row():
                    self.model = gr.Dropdown(
                        choices=[(c.label, c.name) for c in catalog.choices()],
                        value=catalog.default_choice(),
                        label="Model",
                        scale=4,
                        elem_id="model-picker",
                        interactive=True,
                    )
                    # Filled per user on load; the chat service checks any collection named here.
                    self.collection = gr.Dropdown(
                        choices=[NO_DOCUMENTS],
                        value=NO_DOCUMENTS,
                        allow_custom_value=True,
                        label="Answer from documents in",
                        scale=3,
                        elem_id="collection-picker",
                    )
                    refresh = gr.Button("Refresh models", scale=1, size="sm", elem_id="chat-refresh")
                # Empty: the whole collection. Kept with the conversation; filled when a collection is chosen.
                self.scope = gr.Dropdown(
                    choices=[],
                    value=[],
                    multiselect=True,
                    label="Only these documents (optional: empty means the whole collection)",
                    elem_id="document-picker",
                )
                # Visible while the chat answers without documents although the user has some.
                self.no_docs = gr.Markdown("", elem_id="no-documents-badge")
                # The first run: what to do when there is nothing to ask about yet (filled on load).
                self.empty_state = gr.Markdown("", elem_id="chat-empty-state")
                self.to_upload = gr.Button("Upload documents →", visible=False, size="sm", elem_id="go-to-upload")
                self.notice = gr.Markdown(self._registry_notice(), elem_id="registry-notice")
                # The open conversation (None: the next question starts a new one).
                self.conversation = gr.Number(value=None, precision=0, visible=False, elem_id="conversation-id")
                # The answer and its evidence side by side on wide screens (the evidence and its page
                # stay in view while reading the answer); on narrow ones the row wraps and they stack.
                with gr.Row(elem_id="answer-and-evidence"):
                    with gr.Column(scale=3, min_width=360, elem_id="answer-column"):
                        self.chatbot = gr.Chatbot(
                            label="Conversation",
                            height=480,
                            elem_id="chatbot",
                            buttons=["copy", "copy_all"],
                            feedback_options=None,
                        )
                        with gr.Row():
                            # lines=1 is what makes Enter send in Gradio (a taller box sends on Shift+Enter);
                            # the box still grows to max_lines as the text wraps, and Shift+Enter adds a line.
                            self.message = gr.Textbox(
                                placeholder="Ask something…",
                                label="Your question",  # its accessible name; the hint below stays visible
                                show_label=False,
                                lines=1,
                                max_lines=12,
                                scale=6,
                                elem_id="message",
                            )
                            with gr.Column(scale=1, min_width=120):
                                send = gr.Button("Send", variant="primary", elem_id="send")
                                # Enabled while an answer is being written (Send is not: one answer at a time).
                                stop = gr.Button("Stop", variant="stop", elem_id="stop", interactive=False)
                        # Out of the placeholder (faint, and gone once typing starts): always readable.
                        gr.Markdown("Enter sends · Shift+Enter adds a line", elem_id="message-hint")
                        self.stats = gr.Markdown("", elem_id="chat-stats")
                    with gr.Column(scale=2, min_width=300, elem_id="evidence-column"):
                        # Evidence: the sentences of the sources that answer the question, best first, then the
                        # citations; choosing one shows its page with the text highlighted.
                        self.checks = gr.State([])
                        self.evidence = gr.Radio(
                            choices=[],
                            value=None,
                            elem_id="evidence",
                            label="Evidence from the documents (choose one to see it on its page)",
                        )
                        self.evidence_key = gr.Textbox(visible=False, elem_id="evidence-key")
                        self.page_view = gr.HTML("", elem_id="page-view")
                with gr.Accordion("Source passages of the last answer", open=False):
                    self.sources = gr.Markdown("", elem_id="chat-sources")
                with gr.Accordion("Generation settings", open=False):
                    self.mode = gr.Radio(
                        choices=ANSWER_MODES,
                        value=self.answers.settings.answer_mode,
                        label="Answers from documents",
                        elem_id="answer-mode",
                    )
                    max_new = gr.Slider(
                        16,
                        self.chat.max_new_tokens_limit,
                        value=defaults.max_new_tokens,
                        step=16,
                        label="Max new tokens",
                    )
                    temperature = gr.Slider(
                        0.0, 1.5, value=defaults.temperature, step=0.05, label="Temperature (0 = deterministic)"
                    )

        inputs = [
            self.message,
            self.conversation,
            self.model,
            max_new,
            temperature,
            self.collection,
            self.mode,
            self.scope,
        ]
        self.collection.change(self.badge, [self.collection], [self.no_docs], queue=False, show_progress="hidden")
        # a collection picked by hand starts with its whole set of documents
        self.collection.input(self.scope_picker, [self.collection], [self.scope], queue=False, show_progress="hidden")
        # documents indexed since the page loaded appear when the picker is opened
        self.scope.focus(
            self.scope_picker, [self.collection, self.scope], [self.scope], queue=False, show_progress="hidden"
        )
        outputs = [
            self.chatbot,
            self.message,
            self.stats,
            self.sources,
            self.conversation,
            self.history_list,
            self.evidence,
            self.checks,
            self.page_view,
        ]
        # Buttons do something only when they are enabled: Send while no answer is being written,
        # Stop while one is. The answer runs between the two quick toggles; Stop cancels it and
        # toggles back itself (a cancelled event's .then does not run).
        busy = (lambda: (gr.Button(interactive=False), gr.Button(interactive=True)), None, [send, stop])
        idle = (lambda: (gr.Button(interactive=True), gr.Button(interactive=False)), None, [send, stop])
        quiet = dict(queue=False, show_progress="hidden", api_visibility="private")
        submit_evt = self.message.submit(*busy, **quiet).then(self.respond, inputs, outputs, concurrency_limit=None)
        submit_evt.then(*idle, **quiet)
        click_evt = send.click(*busy, **quiet).then(self.respond, inputs, outputs, concurrency_limit=None)
        click_evt.then(*idle, **quiet)
        stop.click(self.stop, None, None, cancels=[submit_evt, click_evt], queue=False).then(*idle, **quiet)
        self.evidence.input(
            lambda key: key, [self.evidence], [self.evidence_key], queue=False, api_visibility="private"
        ).then(self.show_page, [self.evidence_key, self.checks], [self.page_view], queue=False)
        opened = [
            self.conversation,
            self.chatbot,
            self.title,
            self.collection,
            self.scope,
            self.stats,
            self.sources,
            self.evidence,
            self.checks,
            self.page_view,
        ]
        new_chat.click(self.new_conversation, None, opened + [self.history_list], queue=False)
        # The list only offers this user's conversations; opening goes through the hidden id, so
        # API clients open a conversation by id (and the store decides whether it is theirs).
        self.history_list.input(
            lambda chosen: chosen, [self.history_list], [self.conversation], queue=False, api_visibility="private"
        ).then(self.open_conversation, [self.conversation], opened, queue=False)
        rename.click(self.rename, [self.conversation, self.title], [self.history_list, self.tools_note], queue=False)
        export.click(self.export, [self.conversation], [export_file, self.tools_note])
        # An export belongs to its conversation: opening another one (or a new one) takes it away.
        self.conversation.change(
            lambda: None, None, [export_file], queue=False, show_progress="hidden", api_visibility="private"
        )
        delete.click(
            lambda c: (gr.Group(visible=c is not None), "" if c is not None else "Open a conversation first."),
            [self.conversation],
            [confirm, self.tools_note],
            queue=False,
        )
        confirm_no.click(lambda: gr.Group(visible=False), None, [confirm], queue=False)
        confirm_yes.click(
            self.delete, [self.conversation], opened + [self.history_list, confirm, self.tools_note], queue=False
        )
        refresh.click(self.refresh_models, None, [self.model, self.notice], queue=False)

    # -- per-user state -----------------------------------------------------------------
    def load_outputs(self) -> list:
        return [
            self.history_list,
            self.conversation,
            self.chatbot,
            self.title,
            self.collection,
            self.scope,
            self.evidence,
            self.checks,
            self.model,
            self.empty_state,
            self.to_upload,
        ]

    def first_run(self, actor) -> tuple:
        """The empty state: shown while no collection this user may read has an indexed document."""
        documents = self.documents
        has_any = (
            documents is not None
            and documents.available() is None
            and any(d.indexed_at for d in documents.documents(None, actor))
        )
        if has_any:
            return "", gr.Button(visible=False)
        if actor.can_upload:
            text = (
                "**Nothing to ask about yet.** Upload documents (PDF, Word, PowerPoint, HTML, Markdown, text, "
                "Excel) in the **Upload** tab; once they are indexed, ask here: answers quote your documents "
                "and cite their pages."
            )
        else:
            text = "**No documents have been shared with you yet.** You can still chat with the model below."
        return text, gr.Button(visible=actor.can_upload)

    def model_picker(self):
        """The models offered now: the list refreshes itself while the server runs (remote servers
        are asked after the port opens, models published later appear), so each page load reads it."""
        catalog = self.chat.catalog
        return gr.Dropdown(choices=[(c.label, c.name) for c in catalog.choices()], value=catalog.default_choice())

    def on_load(self, actor) -> list:
        """The newest conversation reopened, the user's list, the collections they may read; the
        picker on the collection last used (else the only one with documents)."""
        listing = self.conversations.list(actor)
        collections = self.collection_choices(actor)
        chosen = self.default_collection(actor, listing, collections)
        if not listing:
            return [
                gr.Radio(choices=[], value=None),
                None,
                [],
                "",
                gr.Dropdown(choices=collections, value=chosen),
                self.scope_picker(chosen, request_actor=actor),
                *_checks_out([]),
                self.model_picker(),
                *self.first_run(actor),
            ]
        newest = listing[0]
        messages = self.conversations.messages(actor, newest.id)
        return [
            self._radio(actor, newest.id),
            newest.id,
            display(messages),
            newest.title,
            gr.Dropdown(
                choices=collections, value=(picked := self._picker_value(newest.collection, collections, chosen))
            ),
            self.scope_picker(picked, newest.documents if picked == newest.collection else (), request_actor=actor),
            *_checks_out(last_checks(messages)),
            self.model_picker(),
            *self.first_run(actor),
        ]

    def default_collection(self, actor, listing, choices: list[str]) -> str:
        """The collection last chatted with, else the only readable one that has documents, else none."""
        for conversation in listing:
            if conversation.collection in choices:
                return conversation.collection
        documents = self.documents
        if documents is None or len(choices) <= 1:
            return NO_DOCUMENTS
        with_documents = {d.collection for d in documents.documents(None, actor)}
        candidates = [c for c in choices[1:] if c in with_documents]
        return candidates[0] if len(candidates) == 1 else NO_DOCUMENTS

    def scope_picker(self, collection, picked=(), request: gr.Request = None, request_actor=None):
        """The document picker for ``collection``: its indexed documents, ``picked`` of them chosen."""
        names = self._indexed_names(collection, request_actor or self.auth.actor_of(request))
        return gr.Dropdown(choices=names, value=[n for n in picked if n in names])

    def ask_about(self, collection, request: gr.Request = None) -> tuple:
        """After an upload: the Chat tab on that collection, its whole set of documents, no empty state."""
        actor = self.auth.actor_of(request)
        choices = self.collection_choices(actor)
        value = collection if collection in choices else NO_DOCUMENTS
        return (
            gr.Dropdown(choices=choices, value=value),
            self.scope_picker(value, (), request_actor=actor),
            *self.first_run(actor),
        )

    def scope_choices(self, collection, request: gr.Request = None):
        """Only the choices, when the picker opens: the value is the user's, who may be choosing
        right now (sending it back would undo a pick made while this was on its way)."""
        return gr.Dropdown(choices=self._indexed_names(collection, self.auth.actor_of(request)))

    def _indexed_names(self, collection, actor) -> list[str]:
        if self.documents is None or collection in (None, "", NO_DOCUMENTS):
            return []
        try:
            return [d.label for d in self.documents.documents(collection, actor) if d.indexed_at]
        except UserError:
            return []

    def badge(self, collection) -> str:
        """The "answering without documents" badge, shown only when documents could have been used."""
        if collection not in (None, "", NO_DOCUMENTS):
            return ""
        return NO_DOCUMENTS_BADGE

    def collection_choices(self, actor) -> list[str]:
        documents = self.documents
        if documents is None or documents.available() is not None:
            return [NO_DOCUMENTS]
        return [NO_DOCUMENTS] + documents.collections(actor)

    @staticmethod
    def _picker_value(collection, choices, fallback=NO_DOCUMENTS):
        if collection in choices:
            return collection
        # a conversation that had no collection opens on the default one (answering from documents is
        # the default); one whose collection is gone (or no longer readable) opens without
        return fallback if collection is None else NO_DOCUMENTS

    def _radio(self, actor, selected=None):
        return gr.Radio(choices=[(c.title, c.id) for c in self.conversations.list(actor)], value=selected)

    # -- conversation list --------------------------------------------------------------
    def new_conversation(self, request: gr.Request):
        actor = self.auth.actor_of(request)
        return None, [], "", gr.skip(), gr.skip(), "", "", *_checks_out([]), "", self._radio(actor, None)

    def open_conversation(self, conversation_id, request: gr.Request):
        actor = self.auth.actor_of(request)
        try:
            found = self.conversations.get(actor, conversation_id)
            messages = self.conversations.messages(actor, found.id)
        except UserError as exc:
            return None, [], "", gr.skip(), gr.skip(), warning(exc), "", *_checks_out([]), ""
        choices = self.collection_choices(actor)
        picked = self._picker_value(found.collection, choices)
        return (
            found.id,
            display(messages),
            found.title,
            gr.Dropdown(choices=choices, value=picked),
            self.scope_picker(picked, found.documents if picked == found.collection else (), request_actor=actor),
            "",
            "",
            *_checks_out(last_checks(messages)),
            "",
        )

    def rename(self, conversation_id, title, request: gr.Request):
        actor = self.auth.actor_of(request)
        try:
            found = self.conversations.rename(actor, conversation_id, title)
        except UserError as exc:
            return gr.skip(), warning(exc)
        return self._radio(actor, found.id), f"Renamed to “{plain_text(found.title)}”."

    def export(self, conversation_id, request: gr.Request):
        actor = self.auth.actor_of(request)
        try:
            found = self.conversations.get(actor, conversation_id)
            text = self.conversations.export_markdown(actor, found.id)
        except UserError as exc:
            return None, warning(exc)
        folder = download_folder("exports")
        safe = (
            "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in found.title)[:40].strip("-") or "conversation"
        )
        path = folder / f"{safe}.md"
        path.write_text(text, encoding="utf-8")
        return str(path), ""

    def delete(self, conversation_id, request: gr.Request):
        actor = self.auth.actor_of(request)
        try:
            gone = self.conversations.delete(actor, conversation_id)
        except UserError as exc:
            return (gr.skip(),) * 10 + (gr.skip(), gr.Group(visible=False), warning(exc))
        return (
            None,
            [],
            "",
            gr.skip(),
            gr.skip(),
            "",
            "",
            *_checks_out([]),
            "",
            self._radio(actor, None),
            gr.Group(visible=False),
            f"Deleted “{plain_text(gone.title)}”.",
        )

    def _registry_notice(self) -> str:
        problems = self.chat.catalog.problems()
        if not problems:
            return ""
        return "\n".join(f"⚠ {p}" for p in problems)

    def refresh_models(self):
        self.chat.catalog.refresh()
        return self.model_picker(), self._registry_notice()

    def stop(self, request: gr.Request):
        if request is not None:
            self.chat.stop(request.session_hash)

    # -- answering ------------------------------------------------------------------------
    # The outputs of respond, in order; ``_emit`` fills what a step does not change with skip().
    RESPOND_OUTPUTS = (
        "chatbot",
        "message",
        "stats",
        "passages",
        "conversation",
        "listing",
        "evidence",
        "checks",
        "page",
    )

    @classmethod
    def _emit(cls, **values):
        return tuple(values.get(name, gr.skip()) for name in cls.RESPOND_OUTPUTS)

    def respond(
        self,
        message,
        conversation_id,
        model,
        max_new_tokens,
        temperature,
        collection,
        mode,
        scope=None,
        request: gr.Request = None,
    ):
        """One answer: the question stored, then the events of webapp/chat/answering.py shown as
        they come (evidence, the quoted opening, the model's checked sentences), the answer stored."""
        emit = self._emit
        session = request.session_hash if request is not None else None
        collection = None if collection in (None, "", NO_DOCUMENTS) else collection
        scope = tuple(str(n) for n in (scope or []) if isinstance(n, str))[:100] if collection else ()
        try:
            actor = self.auth.actor_of(request)
            # The history comes from the server's copy of this user's conversation, never from the
            # client: nothing a client sends can become a file URL or someone else's words.
            stored = self.conversations.messages(actor, conversation_id) if conversation_id is not None else []
            history, shown = [m.as_chat() for m in stored if m.content], display(stored)
            text = self.chat.validate(message)
            params = self.chat.params(max_new_tokens, temperature)
            mode = self.answers.mode(mode, model) if collection else None
            ticket = self.chat.admit(session)
        except UserError as exc:  # refused before anything started: the message stays in the box
            yield emit(message=message, stats=warning(exc))
            return
        if conversation_id is None:
            conversation_id = self.conversations.create(actor, text, collection).id
        self.conversations.set_documents(actor, conversation_id, scope)
        # Stored before answering: a crash or a closed tab never loses what the user asked.
        self.conversations.append(actor, conversation_id, "user", text)
        conversation = shown + [{"role": "user", "content": text}, {"role": "assistant", "content": ""}]
        answer: Answer | None = None
        checks: list[dict] = []
        stored = False

        def store_answer(note: str = "") -> None:
            nonlocal stored
            if stored or answer is None or not (answer.text or note):
                return
            stored = True
            self.conversations.append(
                actor,
                conversation_id,
                "assistant",
                answer.text + note,
                source_records(answer.sources),
                {
                    "evidence": checks,
                    "claims": [c.as_json() for c in answer.claims],
                    "mode": answer.mode,
                    "query": answer.query,
                    "left_out": answer.left_out,
                },
            )

        try:
            # Show the question at once; while the server is full, say how many are ahead.
            yield emit(
                chatbot=conversation,
                message="",
                stats="",
                passages="",
                conversation=conversation_id,
                listing=self._radio(actor, conversation_id),
                evidence=gr.Radio(choices=[], value=None),
                checks=[],
                page="",
            )
            for ahead in self.chat.wait_for_slot(ticket):
                yield emit(
                    chatbot=conversation,
                    stats=f"The server is busy: {ahead + 1} in line before your answer starts…",
                    conversation=conversation_id,
                )
            loading = not self.chat.catalog.is_loaded(model or "") and mode != "quote"
            # a question on a collection is searched inside start(), before its first event
            status = f"Loading {model}…" if loading and model else (SEARCHING if collection else "")
            if status:
                yield emit(chatbot=conversation, stats=status, conversation=conversation_id)
            answer = self.answers.start(
                Question(text, history, collection, model, mode, params, session, actor, scope), ticket
            )
            failure = ""
            for event in answer:
                if isinstance(event, EvidenceReady):
                    # The evidence is known before the model writes a word: show it at once.
                    checks = check_items(event.evidence, event.sources)
                    yield emit(
                        chatbot=conversation,
                        passages=sources_markdown(event.sources),
                        conversation=conversation_id,
                        evidence=evidence_radio(checks),
                        checks=checks,
                    )
                elif isinstance(event, Stage):
                    yield emit(stats=STAGE_STATUS.get(event.name, ""))
                elif isinstance(event, Token):
                    conversation[-1] = {"role": "assistant", "content": safe_markdown(answer.text)}
                    yield emit(chatbot=conversation, conversation=conversation_id)
                elif isinstance(event, Failed):
                    failure = event.message
            if failure:
                raise BackendError(failure)
            store_answer()
            conversation[-1] = display([self._as_stored(answer)])[0]
            yield emit(chatbot=conversation, stats=answer_status(answer, model), conversation=conversation_id)
        except UserError as exc:
            log.warning("chat failed for session %s: %s", session, exc.user_message)
            partial = answer.text if answer is not None else ""
            store_answer(("\n\n" if partial else "") + warning(exc))
            conversation[-1] = {
                "role": "assistant",
                "content": (safe_markdown(partial) + "\n\n" if partial else "") + warning(exc),
            }
            yield emit(chatbot=conversation, stats="", conversation=conversation_id)
        except Exception:
            log.exception("unexpected chat failure for session %s", session)
            partial = answer.text if answer is not None else ""
            store_answer(("\n\n" if partial else "") + "⚠ Something went wrong while answering.")
            conversation[-1] = {
                "role": "assistant",
                "content": (safe_markdown(partial) + "\n\n" if partial else "")
                + "⚠ Something went wrong while answering; the error is in the server log.",
            }
            yield emit(chatbot=conversation, stats="", conversation=conversation_id)
        finally:
            ticket.release()  # also when the tab went away or Stop cancelled this event mid-wait
            if answer is not None:
                answer.close()  # stops generation if the tab went away mid-answer
                store_answer(" [stopped]")  # stopped or tab closed mid-answer: keep what was said

    @staticmethod
    def _as_stored(answer: Answer) -> StoredMessage:
        return StoredMessage(
            "assistant", answer.text, source_records(answer.sources), {"mode": answer.mode, "claims": []}
        )

    def show_page(self, key, checks, request: gr.Request):
        """The page of the chosen evidence sentence or citation, its text highlighted."""
        item = next((c for c in checks or [] if c.get("key") == key), None)
        if item is None:
            return ""
        try:
            actor = self.auth.actor_of(request)
            doc, _ = self.documents.original(item["document_id"], actor)
            if doc.format != "pdf":  # no page to draw: the section's text, the sentence marked
                _, label, text = self.documents.section(doc.id, item["page"], actor)
                return section_panel(doc.id, doc.label, item["page"], label, text, item["text"])
        except UserError as exc:
            return f"<p>⚠ {html.escape(exc.user_message)}</p>"
        return page_html(doc.id, doc.label, item["page"], item["text"])
