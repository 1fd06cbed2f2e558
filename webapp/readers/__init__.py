"""Readers: every format the app indexes, as labelled sections (registry.py lists them)."""
