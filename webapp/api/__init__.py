"""HTTP APIs beside the UI."""
