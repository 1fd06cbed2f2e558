"""Two real app processes (`python -m webapp serve`) on one PostgreSQL, as two replicas behind a load
balancer: whoever signs in through one is signed in through the other, a token issued through
one works on the other, a sign-out or a revocation anywhere holds everywhere, and a user's
conversations are listed by both. Each process has its own data folder: nothing is shared but
DOCCHAT_DATABASE_URL."""

from __future__ import annotations

from contextlib import ExitStack

import httpx
import pytest

from tests.conftest import running_app
from tests.test_auth import Api, sign_in, text_of
from webapp.auth.access import Actor
from webapp.auth.users import UserStore
from webapp.chat.conversations import ConversationStore

pytestmark = pytest.mark.slow  # two app processes


def test_two_replicas_share_sign_ins_tokens_and_conversations(registry_dir, tmp_path, pg_url):
    store = UserStore(pg_url)
    store.add("ana", "member", "ana's long password")
    store.close()
    env = {"DOCCHAT_AUTH": "password", "DOCCHAT_DATABASE_URL": pg_url, "DOCCHAT_SIGNIN_MAX_FAILURES": "2"}
    with ExitStack() as stack:
        one, two = (stack.enter_context(running_app(registry_dir, tmp_path / name, env)) for name in ("one", "two"))

        signed_in = sign_in(one, "ana", "ana's long password")
        assert signed_in.status_code == 303
        cookie = {"docchat_session": signed_in.cookies["docchat_session"]}
        assert httpx.get(two + "/config", cookies=cookie, timeout=30).status_code == 200
        httpx.post(two + "/auth/logout", cookies=cookie, timeout=30)
        assert httpx.get(one + "/config", cookies=cookie, timeout=30).status_code == 401

        store = UserStore(pg_url)  # as `python -m webapp users token` on a third machine
        token = store.issue_token("ana")
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.get(one + "/config", headers=bearer, timeout=30).status_code == 200
        store.revoke_tokens("ana")
        store.close()
        assert httpx.get(two + "/config", headers=bearer, timeout=30).status_code == 401

        conversations, store = ConversationStore(pg_url), UserStore(pg_url)
        conversations.create(Actor("ana", "member"), "A question asked through replica one", None)
        token = store.issue_token("ana")
        conversations.close()
        store.close()
        assert "A question asked through replica one" in text_of(Api(two, token).result("on_load", []))

        # Failed sign-ins count across replicas: the third wrong password is delayed wherever it arrives.
        assert sign_in(one, "ana", "wrong password 1").status_code == 401
        assert sign_in(two, "ana", "wrong password 2").status_code == 401
        assert sign_in(one, "ana", "wrong password 3").status_code == 429
    for name in ("one", "two"):
        assert pg_url not in (tmp_path / name / "server.log").read_text()
