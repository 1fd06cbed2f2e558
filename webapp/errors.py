"""Errors a user can cause, each carrying one sentence meant for that user.

Anything raised as a ``UserError`` is shown verbatim in the UI or CLI; the
technical detail belongs in the log line written where it is caught.
"""

from __future__ import annotations


class UserError(Exception):
    """An error whose message is a complete sentence for the end user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.user_message = message


class RegistryError(UserError):
    """The model registry folder, or one model in it, is missing or unreadable."""


class ModelNotAvailable(UserError):
    """A model was asked for that cannot be loaded."""


class InvalidMessage(UserError):
    """The chat message is empty or cannot fit in the model's context."""


class BackendError(UserError):
    """Generation failed inside a backend (engine crash, server error)."""
