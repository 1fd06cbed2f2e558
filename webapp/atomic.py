"""Atomic file writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (the directory entry itself is data)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temp path beside ``path`` to write to (by any means); on success fsync it, rename it
    over ``path`` and fsync the folder; on failure delete it, leaving ``path`` as it was.

    The temp file is created private (0600, mkstemp); ``mode`` sets the final permissions, e.g.
    0o644 for files another user must read (OVMS runs as its own uid on the model volume)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write to a temp file in the same folder, fsync, then os.replace over ``path``."""
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def atomic_write_json(path: Path, obj: Any, mode: int | None = None) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n", mode)


PRIVATE_DIR = 0o700


def make_private(root: Path) -> int:
    """Create ``root`` owner-only (0700) if missing, and take group and other access away from
    everything already under it (folders 0700, files 0600: the store, uploads, indexes, rendered
    pages); returns how many modes changed. Symlinks are neither followed nor changed.

    One exception: a root with the setgid bit is a Kubernetes volume whose group is the pod's
    fsGroup; it keeps its group bits, because the kubelet (fsGroupChangePolicy OnRootMismatch)
    would otherwise find the root "wrong" and re-walk the whole volume at every start, granting
    the group access again. Nothing outside the pod is in that group."""
    root = Path(root)
    root.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    changed = 0

    def strip(path: Path, keep_group: bool = False) -> None:
        nonlocal changed
        try:
            mode = path.lstat().st_mode
            wanted = mode & ~(0o007 if keep_group else 0o077)
            if wanted != mode:
                os.chmod(path, wanted & 0o7777)
                changed += 1
        except FileNotFoundError:  # removed meanwhile (a pruned page, a finished upload)
            pass

    strip(root, keep_group=bool(root.stat().st_mode & 0o2000))
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            if not path.is_symlink():
                strip(path)
    return changed
