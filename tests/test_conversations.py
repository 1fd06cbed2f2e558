"""The conversation store on both engines (``store_location``: the data folder's SQLite and a real
PostgreSQL): turns, titles, scope, claim marks, export, and every query bound to its owner. Two
stores on one database stand for two app replicas."""

from __future__ import annotations

import pytest

from tests.conftest import replicas_of
from webapp.auth.access import Actor
from webapp.chat.conversations import ConversationStore, NoConversation
from webapp.errors import UserError

ANN, BEN = Actor("ann", "member"), Actor("ben", "member")
SOURCES = [{"document": "bees.pdf", "page": 2, "where": "p. 2"}]


@pytest.fixture
def replicas(store_location):
    yield from replicas_of(ConversationStore, store_location)


def test_create_append_list_rename_export_delete(replicas):
    store = replicas[0]
    first = store.create(ANN, "  What do bees\neat?  ", "garden")
    assert (first.title, first.collection, first.documents) == ("What do bees eat?", "garden", ())
    store.append(ANN, first.id, "user", "What do bees eat?")
    answer = store.append(ANN, first.id, "assistant", "Nectar and pollen.", SOURCES, {"evidence": [{"key": "e1"}]})
    store.add_claims(ANN, first.id, answer, [{"text": "Nectar", "supported": True, "source": 1}])
    store.set_documents(ANN, first.id, ["bees.pdf"])
    second = store.create(ANN, "x" * 200, None)
    assert len(second.title) == 80 and second.title.endswith("…")
    assert [c.id for c in store.list(ANN)] == [second.id, first.id]  # the newest first (ties: by id)
    store.append(ANN, first.id, "user", "And wasps?")
    assert store.get(ANN, first.id).updated_at >= second.updated_at
    messages = store.messages(ANN, first.id)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "What do bees eat?"),
        ("assistant", "Nectar and pollen."),
        ("user", "And wasps?"),
    ]
    assert messages[1].sources == SOURCES and messages[1].citation_line()
    assert messages[1].checks == {
        "evidence": [{"key": "e1"}],
        "claims": [{"text": "Nectar", "supported": True, "source": 1}],
    }
    assert store.get(ANN, first.id).documents == ("bees.pdf",)
    assert store.rename(ANN, first.id, "Bees").title == "Bees"
    with pytest.raises(UserError, match="Type a new title"):
        store.rename(ANN, first.id, "  ")
    exported = store.export_markdown(ANN, first.id)
    assert exported.startswith("# Bees") and "documents: garden" in exported and "Nectar and pollen." in exported
    assert "Sources: " in exported
    assert store.delete(ANN, first.id).id == first.id
    with pytest.raises(NoConversation, match="does not exist"):
        store.messages(ANN, first.id)
    with pytest.raises(NoConversation, match="Choose a conversation"):
        store.get(ANN, None)
    store.delete_all_of("ANN")  # names match ignoring case, as users' names do
    assert store.list(ANN) == []


def test_another_users_conversation_is_like_one_that_does_not_exist(replicas):
    store = replicas[0]
    mine = store.create(ANN, "Ann's private question", None)
    store.append(ANN, mine.id, "user", "Ann's private question")
    assert store.list(BEN) == []
    for call in (
        lambda: store.get(BEN, mine.id),
        lambda: store.messages(BEN, mine.id),
        lambda: store.append(BEN, mine.id, "user", "mine now"),
        lambda: store.rename(BEN, mine.id, "stolen"),
        lambda: store.export_markdown(BEN, mine.id),
        lambda: store.set_documents(BEN, mine.id, ["x.pdf"]),
        lambda: store.delete(BEN, mine.id),
    ):
        with pytest.raises(NoConversation, match="does not exist"):
            call()
    store.delete_all_of("ben")
    assert [m.content for m in store.messages(Actor("ANN", "member"), mine.id)] == ["Ann's private question"]


def test_a_conversation_started_on_one_replica_continues_on_another(replicas):
    one, two = replicas
    started = one.create(ANN, "Where do bees live?", None)
    one.append(ANN, started.id, "user", "Where do bees live?")
    answer = two.append(ANN, started.id, "assistant", "In hives.", SOURCES)
    one.add_claims(ANN, started.id, answer, [{"text": "In hives.", "supported": True, "source": 1}])
    assert [m.content for m in one.messages(ANN, started.id)] == ["Where do bees live?", "In hives."]
    assert two.messages(ANN, started.id)[1].checks["claims"][0]["supported"] is True
    two.rename(ANN, started.id, "Hives")
    assert [c.title for c in one.list(ANN)] == ["Hives"]
    one.delete(ANN, started.id)
    assert two.list(ANN) == []
