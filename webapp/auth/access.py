"""Who may do what: the actor every service call is made on behalf of, and the rules.

The rules live here and are applied by the services (documents, chat, bench, users), never by
the UI alone: the UI hides what a role cannot do, the services refuse it. A collection has an
owner (None for collections made before users existed: they belong to the admins) and a
visibility:

- ``private``: its owner only;
- ``shared``: its owner and the users it names (who may also add and manage documents in it);
- ``everyone``: readable by every signed-in user; managed by its owner.

Admins may do everything. Members create collections and manage their own and those shared with
them by name. Viewers chat with what they may read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from webapp.errors import UserError

ROLES = ("admin", "member", "viewer")
VISIBILITIES = ("private", "shared", "everyone")


class Forbidden(UserError):
    """The signed-in user's role or the collection's sharing does not allow this."""


@dataclass(frozen=True)
class Actor:
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def can_upload(self) -> bool:
        return self.role in ("admin", "member")

    def require_admin(self, what: str) -> None:
        if not self.is_admin:
            raise Forbidden(f"Only an admin can {what}.")

    def require_member(self, what: str) -> None:
        if not self.can_upload:
            raise Forbidden(f"Your role ({self.role}) cannot {what}; ask an admin to make you a member.")


# With auth "none" (one person on a laptop, or the operator's CLI) the caller may do everything.
LOCAL = Actor("local", "admin")


@dataclass(frozen=True)
class CollectionAccess:
    """What the rules need to know about one collection."""

    name: str
    owner: str | None
    visibility: str
    members: tuple[str, ...] = field(default_factory=tuple)

    def _named(self, actor: Actor) -> bool:
        lowered = actor.name.lower()
        return (self.owner or "").lower() == lowered or any(m.lower() == lowered for m in self.members)

    def can_read(self, actor: Actor) -> bool:
        if actor.is_admin or self.visibility == "everyone":
            return True
        if self.visibility == "private":
            return (self.owner or "").lower() == actor.name.lower()
        return self._named(actor)

    def can_manage_documents(self, actor: Actor) -> bool:
        """Upload to, index in and delete from this collection."""
        if actor.is_admin:
            return True
        if not actor.can_upload:
            return False
        if self.visibility == "shared":
            return self._named(actor)
        return (self.owner or "").lower() == actor.name.lower()

    def can_change_sharing(self, actor: Actor) -> bool:
        return actor.is_admin or (actor.can_upload and (self.owner or "").lower() == actor.name.lower())

    def owner_label(self) -> str:
        return self.owner or "admins"

    def sharing_label(self) -> str:
        if self.visibility == "shared":
            return "shared with " + (", ".join(self.members) if self.members else "nobody yet")
        return {"private": "private", "everyone": "everyone"}[self.visibility]
