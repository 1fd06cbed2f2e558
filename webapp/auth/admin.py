"""User management on behalf of a signed-in admin (the Users tab); the CLI uses UserStore directly,
as the operator who owns the data folder.

Every call checks the actor is an admin, and no call may leave the server without an active
admin (nobody could then manage users from the UI).
"""

from __future__ import annotations

import logging

from webapp.auth.access import Actor, Forbidden
from webapp.auth.users import TokenInfo, User, UserStore

log = logging.getLogger(__name__)


class UserAdmin:
    def __init__(self, users: UserStore):
        self.users = users

    def list(self, actor: Actor) -> list[User]:
        actor.require_admin("manage users")
        return self.users.list()

    def add(self, actor: Actor, name: str, role: str, password: str) -> User:
        actor.require_admin("manage users")
        user = self.users.add(name, role, password)
        log.info("user %s (%s) added by %s", user.name, user.role, actor.name)
        return user

    def _keep_an_admin(self, target: User, still_admin: bool) -> None:
        if target.role == "admin" and not target.disabled and not still_admin and self.users.count_admins() <= 1:
            raise Forbidden(f"{target.name} is the only active admin; make another admin first.")

    def set_role(self, actor: Actor, name: str, role: str) -> User:
        actor.require_admin("manage users")
        self._keep_an_admin(self.users.get(name), role == "admin")
        user = self.users.set_role(name, role)
        log.info("user %s is now %s (by %s)", user.name, user.role, actor.name)
        return user

    def set_disabled(self, actor: Actor, name: str, disabled: bool) -> User:
        actor.require_admin("manage users")
        if disabled:
            self._keep_an_admin(self.users.get(name), False)
        user = self.users.set_disabled(name, disabled)
        log.info("user %s %s by %s", user.name, "disabled" if disabled else "enabled", actor.name)
        return user

    def remove(self, actor: Actor, name: str) -> User:
        actor.require_admin("manage users")
        self._keep_an_admin(self.users.get(name), False)
        user = self.users.remove(name)
        log.info("user %s removed by %s", user.name, actor.name)
        return user

    def set_password(self, actor: Actor, name: str, password: str) -> int:
        """A new password; every session and API token of the user ends (returns how many)."""
        actor.require_admin("manage users")
        ended = self.users.set_password(name, password)
        log.info("password of %s set by %s; %d session(s) and token(s) revoked", name, actor.name, ended)
        return ended

    def issue_token(self, actor: Actor, name: str) -> str:
        actor.require_admin("manage users")
        log.info("API token for %s issued by %s", name, actor.name)
        return self.users.issue_token(name)

    def tokens(self, actor: Actor, name: str) -> list[TokenInfo]:
        actor.require_admin("manage users")
        return self.users.tokens(name)

    def revoke_tokens(self, actor: Actor, name: str, token_id: int | None = None) -> int:
        """End one API token of ``name`` (by id) or all of them; returns how many ended."""
        actor.require_admin("manage users")
        ended = self.users.revoke_tokens(name, token_id)
        log.info(
            "%d API token(s) of %s revoked by %s%s", ended, name, actor.name, f" (id {token_id})" if token_id else ""
        )
        return ended
