"""Assemble the Gradio Blocks from one tab object per feature."""

from __future__ import annotations

import gradio as gr

from webapp.services import Services
from webapp.ui.chat_tab import ChatTab
from webapp.ui.compare_tab import CompareTab
from webapp.ui.documents_tab import DocumentTabs

TITLE = "DocChat · private document chat on CPU"


def build_ui(services: Services) -> gr.Blocks:
    # Gradio's copies of files it served (benchmark downloads, uploads a handler did not consume)
    # are deleted hourly once an hour old, so the cache cannot grow without bound.
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600)) as blocks:
        gr.Markdown(f"## {TITLE}")
        with gr.Tab("Chat", id="chat"):
            ChatTab(services.chat).render()
        DocumentTabs(services.documents).render()
        with gr.Tab("Compare", id="compare"):
            CompareTab(services.bench).render()

        def tab_closed(request: gr.Request):
            # Whatever this tab started stops with it: its answer and its benchmark.
            if request is not None and request.session_hash:
                services.chat.stop(request.session_hash)
                services.bench.cancel(request.session_hash)

        blocks.unload(tab_closed)
    return blocks
