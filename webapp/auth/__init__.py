"""Identities: the user store (sign-in and roles build on it)."""
