"""The Users tab (admins only): who may sign in, with which role; passwords and API tokens."""

from __future__ import annotations

import gradio as gr

from webapp.auth.access import ROLES
from webapp.auth.admin import UserAdmin
from webapp.auth.gate import Authenticator
from webapp.errors import UserError
from webapp.ui.safe_markdown import plain_text, warning

HEADERS = ["user", "role", "state", "API tokens", "created", "last sign-in"]


class UsersTab:
    def __init__(self, admin: UserAdmin, auth: Authenticator):
        self.admin = admin
        self.auth = auth

    def rows(self, actor) -> list[list]:
        return [
            [
                u.name,
                u.role,
                "disabled" if u.disabled else "active",
                u.tokens,
                u.created_at[:16].replace("T", " "),
                (u.last_login_at or "never")[:16].replace("T", " "),
            ]
            for u in self.admin.list(actor)
        ]

    def render(self) -> None:
        with gr.Tab("Users", id="users", visible=False) as self.tab:
            gr.Markdown(
                "People who may sign in. Roles: **viewer** chats with shared collections; **member** also "
                "uploads to their own collections and those shared with them; **admin** does everything."
            )
            self.table = gr.Dataframe(headers=HEADERS, value=[], interactive=False, elem_id="users-table")
            with gr.Row():
                name = gr.Textbox(label="User name", max_lines=1, scale=2, elem_id="users-name")
                role = gr.Dropdown(list(ROLES), value="member", label="Role", scale=1, elem_id="users-role")
                password = gr.Textbox(
                    label="Password (new users, or to set a new one)",
                    type="password",
                    scale=2,
                    elem_id="users-password",
                )
            with gr.Row():
                add = gr.Button("Add user", variant="primary", elem_id="users-add")
                set_role = gr.Button("Set role", elem_id="users-set-role")
                set_password = gr.Button("Set password", elem_id="users-set-password")
                disable = gr.Button("Disable", elem_id="users-disable")
                enable = gr.Button("Enable", elem_id="users-enable")
                token = gr.Button("New API token", elem_id="users-token")
                revoke = gr.Button("Revoke API tokens", elem_id="users-revoke-tokens")
                remove = gr.Button("Remove", variant="stop", elem_id="users-remove")
            result = gr.Markdown(elem_id="users-result")
        outputs = [self.table, result, password]
        add.click(self.run("add"), [name, role, password], outputs, concurrency_limit=1)
        set_role.click(self.run("set_role"), [name, role, password], outputs, concurrency_limit=1)
        set_password.click(self.run("set_password"), [name, role, password], outputs, concurrency_limit=1)
        disable.click(self.run("disable"), [name, role, password], outputs, concurrency_limit=1)
        enable.click(self.run("enable"), [name, role, password], outputs, concurrency_limit=1)
        token.click(self.run("token"), [name, role, password], outputs, concurrency_limit=1)
        revoke.click(self.run("revoke_tokens"), [name, role, password], outputs, concurrency_limit=1)
        remove.click(self.run("remove"), [name, role, password], outputs, concurrency_limit=1)

    def on_load(self, actor) -> list:
        return [gr.Tab(visible=actor.is_admin), self.rows(actor) if actor.is_admin else []]

    def load_outputs(self) -> list:
        return [self.tab, self.table]

    def run(self, action: str):
        def handler(name, role, password, request: gr.Request):
            try:
                actor = self.auth.actor_of(request)
                message = self._do(actor, action, (name or "").strip(), role, password or "")
                return self.rows(actor), message, ""
            except UserError as exc:
                return gr.skip(), warning(exc), ""

        handler.__name__ = f"users_{action}"
        return handler

    def _do(self, actor, action: str, name: str, role: str, password: str) -> str:
        admin = self.admin
        if action == "add":
            user = admin.add(actor, name, role, password)
            return f"Added **{plain_text(user.name)}** ({user.role})."
        if action == "set_role":
            user = admin.set_role(actor, name, role)
            return f"**{plain_text(user.name)}** is now {user.role}."
        if action == "set_password":
            ended = admin.set_password(actor, name, password)
            return f"Password of **{plain_text(name)}** changed; {ended} session(s) and API token(s) revoked."
        if action == "revoke_tokens":
            ended = admin.revoke_tokens(actor, name)
            return f"Revoked {ended} API token(s) of **{plain_text(name)}**."
        if action in ("disable", "enable"):
            user = admin.set_disabled(actor, name, action == "disable")
            return (
                f"**{plain_text(user.name)}** is {'disabled: signed out everywhere' if user.disabled else 'enabled'}."
            )
        if action == "token":
            value = admin.issue_token(actor, name)
            return (
                f"API token for **{plain_text(name)}** (shown only now; send it as `Authorization: Bearer`):"
                f"\n\n`{value}`"
            )
        user = admin.remove(actor, name)
        return f"Removed **{plain_text(user.name)}**, their sessions, tokens and conversations."
