"""Assemble the Gradio Blocks from one tab object per feature.

The page config Gradio serves is the same for everyone, so nothing user-specific is built into
it: when a page loads, each tab fills its pickers, tables and conversation list for the signed-in
user and hides what the user's role cannot do (the services refuse it anyway). A timer and tab
changes keep the collection pickers current, so a collection someone shares appears without a
reload.
"""

from __future__ import annotations

import html

import gradio as gr

from webapp.auth.admin import UserAdmin
from webapp.services import Services
from webapp.ui.chat_tab import NO_DOCUMENTS, ChatTab
from webapp.ui.compare_tab import CompareTab
from webapp.ui.documents_tab import DocumentTabs
from webapp.ui.users_tab import UsersTab

TITLE = "DocChat · private document chat on CPU"
PICKER_REFRESH_S = 20


def user_banner(services: Services, actor) -> str:
    if not services.auth.enabled:
        return '<div id="user-banner"></div>'  # (an empty marker: the page has been filled for its user)
    who = f"Signed in as <b>{html.escape(actor.name)}</b> ({html.escape(actor.role)})"
    if services.auth.mode != "password":
        return f'<div id="user-banner">{who}</div>'
    return (
        f'<div id="user-banner">{who} · <form method="post" action="auth/logout" style="display:inline">'
        '<button type="submit" id="sign-out" style="text-decoration:underline;background:none;border:0;'
        'cursor:pointer;color:inherit">Sign out</button></form></div>'
    )


def build_ui(services: Services) -> gr.Blocks:
    auth = services.auth
    # Gradio's copies of files it served (benchmark downloads, uploads a handler did not consume)
    # are deleted hourly once an hour old, so the cache cannot grow without bound.
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600)) as blocks:
        with gr.Row():
            gr.Markdown(f"## {TITLE}")
            banner = gr.HTML("", elem_id="user-banner-box")
        with gr.Tabs() as tabs:
            with gr.Tab("Chat", id="chat"):
                chat = ChatTab(services.answers, services.conversations, auth)
                chat.render()
            documents = DocumentTabs(services.documents, auth, services.sync)
            documents.render()
            with gr.Tab("Compare", id="compare", visible=False) as compare_tab:
                CompareTab(services.bench, auth).render()
            users = UsersTab(UserAdmin(services.users), auth)
            users.render()
        known = gr.State([])  # the collection names this page was last given, to skip no-op updates

        def on_load(request: gr.Request):
            actor = auth.actor_of(request)
            return [
                user_banner(services, actor),
                gr.Tab(visible=actor.is_admin),
                *chat.on_load(actor),
                *documents.on_load(actor),
                *users.on_load(actor),
                documents.readable(actor),
            ]

        blocks.load(
            on_load,
            None,
            [banner, compare_tab, *chat.load_outputs(), *documents.load_outputs(), *users.load_outputs(), known],
            queue=False,
        )

        # The first run: Chat's empty state leads to Upload; an upload leads back to Chat on its collection.
        chat.to_upload.click(lambda: gr.Tabs(selected="upload"), None, [tabs], queue=False)
        documents.ask_button.click(lambda: gr.Tabs(selected="chat"), None, [tabs], queue=False).then(
            chat.ask_about,
            [documents.up_collection],
            [chat.collection, chat.scope, chat.empty_state, chat.to_upload],
            queue=False,
        )

        pickers = [chat.collection, *documents.pickers, known]

        def refresh_pickers(previous, request: gr.Request):
            actor = auth.actor_of(request)
            readable = documents.readable(actor)
            if readable == previous:
                return [gr.skip()] * len(pickers)
            return [gr.Dropdown(choices=[NO_DOCUMENTS] + readable), *documents.picker_updates(actor), readable]

        # A collection created or shared by someone else shows up within PICKER_REFRESH_S, or at once
        # when the user switches tabs.
        gr.Timer(PICKER_REFRESH_S).tick(refresh_pickers, [known], pickers, queue=False, show_progress="hidden")
        tabs.change(refresh_pickers, [known], pickers, queue=False, show_progress="hidden")

        def tab_closed(request: gr.Request):
            # Whatever this tab started stops with it: its answer and its benchmark.
            if request is not None and request.session_hash:
                services.chat.stop(request.session_hash)
                services.bench.cancel(request.session_hash)

        blocks.unload(tab_closed)
    return blocks
