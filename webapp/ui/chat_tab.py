"""The Chat tab: model picker, streaming conversation, Stop, generation settings.

Per-user state is the Chatbot's own value (the conversation) and the Gradio
session id (which answer Stop cancels); nothing per-user lives on this object.
"""

from __future__ import annotations

import logging

import gradio as gr

from webapp.chat.service import ChatService
from webapp.errors import UserError
from webapp.llm.base import ChatMessage, StreamStats
from webapp.rag.prompt import citation_line
from webapp.ui.safe_markdown import safe_markdown

log = logging.getLogger(__name__)

NO_DOCUMENTS = "(none: chat without documents)"


def sources_markdown(passages) -> str:
    if not passages:
        return ""
    parts = []
    for n, p in enumerate(passages, start=1):
        quoted = "\n".join("> " + safe_markdown(line) for line in p.text.splitlines() if line.strip())
        parts.append(f"**[{n}] {safe_markdown(p.document)}, page {p.page}** (similarity {p.similarity:.2f})"
                     f"\n\n{quoted}")
    return "\n\n".join(parts)


def message_text(content) -> str:
    """Gradio 6 may hand back content as a string or as a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    if isinstance(content, (list, tuple)):
        return "".join(message_text(part) for part in content)
    return ""


def history_from_chatbot(value) -> list[ChatMessage]:
    out = []
    for item in value or []:
        role = item.get("role") if isinstance(item, dict) else getattr(item, "role", None)
        content = item.get("content") if isinstance(item, dict) else getattr(item, "content", "")
        if role in ("user", "assistant"):
            out.append(ChatMessage(role, message_text(content)))
    return out


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


class ChatTab:
    def __init__(self, chat: ChatService):
        self.chat = chat

    def render(self) -> None:
        catalog = self.chat.catalog
        defaults = self.chat.default_params()
        with gr.Row():
            self.model = gr.Dropdown(
                choices=[(c.label, c.name) for c in catalog.choices()], value=catalog.default_choice(),
                label="Model", scale=4, elem_id="model-picker", interactive=True)
            self.collection = gr.Dropdown(choices=self._collection_choices(), value=NO_DOCUMENTS,
                                          label="Answer from documents in", scale=3, elem_id="collection-picker")
            refresh = gr.Button("↻ Refresh", scale=1, size="sm", elem_id="chat-refresh")
        self.notice = gr.Markdown(self._registry_notice(), elem_id="registry-notice")
        self.chatbot = gr.Chatbot(label="Conversation", height=480, elem_id="chatbot",
                                  buttons=["copy", "copy_all"], feedback_options=None)
        with gr.Row():
            # lines=1 is what makes Enter send in Gradio (a taller box sends on Shift+Enter);
            # the box still grows to max_lines as the text wraps, and Shift+Enter adds a line.
            self.message = gr.Textbox(placeholder="Ask something… (Enter to send, Shift+Enter for a new line)",
                                      show_label=False, lines=1, max_lines=12, scale=6, elem_id="message")
            with gr.Column(scale=1, min_width=120):
                send = gr.Button("Send", variant="primary", elem_id="send")
                stop = gr.Button("Stop", variant="stop", elem_id="stop")
                clear = gr.Button("Clear", elem_id="clear")
        self.stats = gr.Markdown("", elem_id="chat-stats")
        with gr.Accordion("Source passages of the last answer", open=False):
            self.sources = gr.Markdown("", elem_id="chat-sources")
        with gr.Accordion("Generation settings", open=False):
            max_new = gr.Slider(16, self.chat.max_new_tokens_limit, value=defaults.max_new_tokens, step=16, label="Max new tokens")
            temperature = gr.Slider(0.0, 1.5, value=defaults.temperature, step=0.05,
                                    label="Temperature (0 = deterministic)")

        inputs = [self.message, self.chatbot, self.model, max_new, temperature, self.collection]
        outputs = [self.chatbot, self.message, self.stats, self.sources]
        submit_evt = self.message.submit(self.respond, inputs, outputs, concurrency_limit=None)
        click_evt = send.click(self.respond, inputs, outputs, concurrency_limit=None)
        stop.click(self.stop, None, None, cancels=[submit_evt, click_evt], queue=False)
        clear.click(lambda: ([], "", "", ""), None, [self.chatbot, self.message, self.stats, self.sources],
                    queue=False)
        refresh.click(self.refresh_models, None, [self.model, self.notice, self.collection], queue=False)

    def _collection_choices(self) -> list[str]:
        documents = self.chat.documents
        if documents is None or documents.available() is not None:
            return [NO_DOCUMENTS]
        return [NO_DOCUMENTS] + documents.collections()

    def _registry_notice(self) -> str:
        problems = self.chat.catalog.problems()
        if not problems:
            return ""
        return "\n".join(f"⚠️ {p}" for p in problems)

    def refresh_models(self):
        catalog = self.chat.catalog
        catalog.refresh()
        return (gr.Dropdown(choices=[(c.label, c.name) for c in catalog.choices()],
                            value=catalog.default_choice()), self._registry_notice(),
                gr.Dropdown(choices=self._collection_choices()))

    def stop(self, request: gr.Request):
        if request is not None:
            self.chat.stop(request.session_hash)

    def respond(self, message, chatbot_value, model, max_new_tokens, temperature, collection,
                request: gr.Request):
        history = history_from_chatbot(chatbot_value)
        # Rebuilt from text only: whatever else a client put in the history (file entries naming
        # server paths, components) is never sent back, so it can never be turned into a file URL.
        conversation = [{"role": m.role, "content": m.content} for m in history]
        session = request.session_hash if request is not None else None
        try:
            text = self.chat.validate(message)
            params = self.chat.params(max_new_tokens, temperature)
            ticket = self.chat.admit(session)
        except UserError as exc:  # refused before anything started: the message stays in the box
            yield conversation, message, f"⚠️ {exc.user_message}", gr.skip()
            return
        collection = None if collection in (None, "", NO_DOCUMENTS) else collection
        conversation = conversation + [{"role": "user", "content": text},
                                       {"role": "assistant", "content": ""}]
        answer = ""
        try:
            # Show the question at once; while the server is full, say how many are ahead.
            yield conversation, "", "", ""
            for ahead in self.chat.wait_for_slot(ticket):
                yield conversation, "", f"⏳ The server is busy: {ahead + 1} in line before your answer starts…", ""
            loading = not self.chat.catalog.is_loaded(model or "")
            status = f"Loading {model}…" if loading and model else ("Searching the documents…" if collection else "")
            if status:
                yield conversation, "", status, ""
            stream = self.chat.reply(model, history, text, params, session=session, collection=collection,
                                     ticket=ticket)
            sources = sources_markdown(stream.sources)
            for piece in stream:
                answer += piece
                conversation[-1] = {"role": "assistant", "content": safe_markdown(answer)}
                yield conversation, "", "", sources
            if stream.sources:
                conversation[-1] = {"role": "assistant", "content": safe_markdown(answer)
                                    + "\n\n**Sources:** " + safe_markdown(citation_line(stream.sources))}
            stats = format_stats(stream.stats, model) if stream.stats.completion_tokens else ""
            yield conversation, "", stats, sources
        except UserError as exc:
            log.warning("chat failed for session %s: %s", session, exc.user_message)
            conversation[-1] = {"role": "assistant", "content": (safe_markdown(answer) + "\n\n" if answer else "")
                                + f"⚠️ {exc.user_message}"}
            yield conversation, "", "", gr.skip()
        except Exception:
            log.exception("unexpected chat failure for session %s", session)
            conversation[-1] = {"role": "assistant", "content": (safe_markdown(answer) + "\n\n" if answer else "")
                                + "⚠️ Something went wrong while answering; the error is in the server log."}
            yield conversation, "", "", gr.skip()
        finally:
            ticket.release()  # also when the tab went away or Stop cancelled this event mid-wait
