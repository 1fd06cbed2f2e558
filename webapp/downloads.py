"""Folders for files the app hands to a browser (benchmark results, conversation exports).

Gradio copies a returned file into its own cache before serving it, so the original is only
needed for a moment; the newest few folders of each kind are kept and older ones deleted, so
downloads never fill the pod's small /tmp.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


def download_folder(kind: str, keep: int = 20) -> Path:
    """A new, empty folder under <tmp>/docchat-<kind>/, after pruning all but the newest ``keep``."""
    root = Path(tempfile.gettempdir()) / f"docchat-{kind}"
    root.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=root))
    for old in sorted(root.iterdir(), key=lambda p: p.stat().st_mtime)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return folder
