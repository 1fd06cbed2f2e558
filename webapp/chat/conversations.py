"""Conversations kept per user in the data folder's SQLite, so a reload or a second browser
shows the same chat, and the model is given the history the server stored rather than whatever
a client sends.

Every query names the owner: another user's conversation id finds nothing, exactly like an id
that does not exist (no way to tell the two apart). Sources are stored as JSON with each answer
(document label and page), so an export reproduces the citations without the documents.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from webapp.auth.access import Actor
from webapp.errors import UserError
from webapp.llm.base import ChatMessage
from webapp.rag.prompt import format_citations
from webapp.rag.retrieval import where
from webapp.sqlite_db import ThreadConnections, transaction

MAX_TITLE = 80
SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL COLLATE NOCASE,
    title TEXT NOT NULL,
    collection TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations(owner, updated_at);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    sources TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    checks TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id, id);
"""


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    collection: str | None
    created_at: str
    updated_at: str
    documents: tuple[str, ...] = ()  # the documents of the collection it answers from alone; () = all


@dataclass(frozen=True)
class StoredMessage:
    role: str
    content: str
    sources: list[dict[str, Any]] = field(default_factory=list)  # [{"document": label, "page": n, "where": "p. n"}]
    # What made the answer checkable, kept so a reopened conversation shows it again:
    # {"evidence": [{"key", "document_id", "page", "text", "label"}], "claims": [{"text", "supported", "source"}]}
    checks: dict[str, Any] = field(default_factory=dict)

    def as_chat(self) -> ChatMessage:
        """The turn as the model sees it (without the citation line)."""
        return ChatMessage(self.role, self.content)

    def citation_line(self) -> str:
        # "where" is kept since store format 3 (issue 25); older messages cite PDF pages.
        return format_citations((s["document"], where(s["page"], s.get("where"))) for s in self.sources)


class NoConversation(UserError):
    pass


def _checks(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except ValueError:  # hand-edited or truncated: the answer still shows, without its checks
        return {}
    return value if isinstance(value, dict) else {}


def title_from(question: str) -> str:
    line = " ".join((question or "").split())
    line = "".join(ch for ch in line if ch.isprintable())
    return (line[: MAX_TITLE - 1] + "…") if len(line) > MAX_TITLE else (line or "New conversation")


def _now() -> str:
    from datetime import datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


class ConversationStore:
    def __init__(self, data_dir: Path):
        path = Path(data_dir) / "store.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connections = ThreadConnections(path)
        db = self._db()
        db.executescript(SCHEMA)
        # Added after format 2 shipped: one nullable-by-default column, which readers that select
        # their columns by name (all of them) ignore, so the store's format number stays 2.
        self._add_column(db, "messages", "checks", "TEXT NOT NULL DEFAULT '{}'")
        self._add_column(db, "conversations", "documents", "TEXT NOT NULL DEFAULT '[]'")  # a JSON list of names

    @staticmethod
    def _add_column(db: sqlite3.Connection, table: str, column: str, declaration: str) -> None:
        if column in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
            return
        try:
            with transaction(db):
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        except sqlite3.OperationalError as exc:  # another process (the CLI, a second server) added it first
            if "duplicate column" not in str(exc):
                raise

    def _db(self) -> sqlite3.Connection:
        return self._connections.get()

    @staticmethod
    def _conversation(row: sqlite3.Row) -> Conversation:
        return Conversation(
            row["id"],
            row["title"],
            row["collection"],
            row["created_at"],
            row["updated_at"],
            tuple(json.loads(row["documents"] or "[]")),
        )

    def list(self, actor: Actor, limit: int = 200) -> builtins.list[Conversation]:
        rows = self._db().execute(
            "SELECT * FROM conversations WHERE owner = ? ORDER BY updated_at DESC, id DESC LIMIT ?", (actor.name, limit)
        )
        return [self._conversation(r) for r in rows]

    def get(self, actor: Actor, conversation_id: int | None) -> Conversation:
        try:
            cid = int(conversation_id)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise NoConversation("Choose a conversation first.") from None
        row = self._db().execute("SELECT * FROM conversations WHERE id = ? AND owner = ?", (cid, actor.name)).fetchone()
        if row is None:
            raise NoConversation("That conversation does not exist (it may have been deleted).")
        return self._conversation(row)

    def create(self, actor: Actor, first_question: str, collection: str | None) -> Conversation:
        now = _now()
        cur = self._db().execute(
            "INSERT INTO conversations(owner, title, collection, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            (actor.name, title_from(first_question), collection, now, now),
        )
        return self.get(actor, cur.lastrowid)

    def set_documents(self, actor: Actor, conversation_id: int, documents: Sequence[str]) -> None:
        """Keep the documents the conversation answers from (the scope picked beside the collection)."""
        conversation = self.get(actor, conversation_id)
        self._db().execute(
            "UPDATE conversations SET documents = ? WHERE id = ?", (json.dumps(list(documents)), conversation.id)
        )

    def messages(self, actor: Actor, conversation_id: int) -> builtins.list[StoredMessage]:
        conversation = self.get(actor, conversation_id)
        rows = self._db().execute(
            "SELECT role, content, sources, checks FROM messages WHERE conversation_id = ? ORDER BY id",
            (conversation.id,),
        )
        return [
            StoredMessage(r["role"], r["content"], json.loads(r["sources"] or "[]"), _checks(r["checks"])) for r in rows
        ]

    def append(
        self,
        actor: Actor,
        conversation_id: int,
        role: str,
        content: str,
        sources: builtins.list[dict[str, Any]] | None = None,
        checks: dict[str, Any] | None = None,
    ) -> int:
        """Store one turn; returns its message id."""
        conversation = self.get(actor, conversation_id)
        with transaction(self._db()) as db:
            cur = db.execute(
                "INSERT INTO messages(conversation_id, role, content, sources, created_at, checks) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (conversation.id, role, content, json.dumps(sources or []), _now(), json.dumps(checks or {})),
            )
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (_now(), conversation.id))
        assert cur.lastrowid is not None
        return cur.lastrowid

    def add_claims(
        self, actor: Actor, conversation_id: int, message_id: int, claims: builtins.list[dict[str, Any]]
    ) -> None:
        """The claim check of one stored answer (it runs after the answer is stored; meanwhile another
        tab may have added turns, so the answer is named by its id)."""
        conversation = self.get(actor, conversation_id)
        with transaction(self._db()) as db:
            row = db.execute(
                "SELECT id, checks FROM messages WHERE id = ? AND conversation_id = ? AND role = 'assistant'",
                (message_id, conversation.id),
            ).fetchone()
            if row is not None:
                checks = _checks(row["checks"]) | {"claims": claims}
                db.execute("UPDATE messages SET checks = ? WHERE id = ?", (json.dumps(checks), row["id"]))

    def rename(self, actor: Actor, conversation_id: int, title: str) -> Conversation:
        conversation = self.get(actor, conversation_id)
        clean = title_from(title)
        if not (title or "").strip():
            raise UserError("Type a new title first.")
        self._db().execute("UPDATE conversations SET title = ? WHERE id = ?", (clean, conversation.id))
        return self.get(actor, conversation.id)

    def delete(self, actor: Actor, conversation_id: int) -> Conversation:
        conversation = self.get(actor, conversation_id)
        self._db().execute("DELETE FROM conversations WHERE id = ?", (conversation.id,))  # cascades to messages
        return conversation

    def delete_all_of(self, name: str) -> None:
        self._db().execute("DELETE FROM conversations WHERE owner = ?", (name,))

    def export_markdown(self, actor: Actor, conversation_id: int) -> str:
        conversation = self.get(actor, conversation_id)
        lines = [
            f"# {conversation.title}",
            "",
            f"_Exported from DocChat · started {conversation.created_at[:16].replace('T', ' ')} UTC"
            + (f" · documents: {conversation.collection}" if conversation.collection else "")
            + "_",
            "",
        ]
        for m in self.messages(actor, conversation.id):
            lines += [f"**{'You' if m.role == 'user' else 'DocChat'}:**", "", m.content.strip(), ""]
            if m.sources:
                lines += ["Sources: " + m.citation_line(), ""]
        return "\n".join(lines)

    def close(self) -> None:
        self._connections.close()
