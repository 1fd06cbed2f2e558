"""Accept an uploaded file: size cap, format by name confirmed by content, stored by its sha256.

The user's file name is kept only as a label: it never becomes a path, so
names like ``../../x.pdf``, 10,000 characters long or not valid UTF-8 are
harmless. Files are copied to a temp name in the files folder, fsynced and
renamed to ``<sha256>.<format>``, so the same content is stored once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import stat
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from webapp.atomic import fsync_dir
from webapp.errors import UserError
from webapp.readers.base import Format
from webapp.readers.registry import PDF, format_for

log = logging.getLogger(__name__)

HEAD_BYTES = 8192  # what a content check reads
MAX_LABEL = 160
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    path: Path
    label: str
    size_bytes: int
    format: str = "pdf"


def safe_label(name: str | bytes | None) -> str:
    """A display name from whatever the browser sent: no folders, no control characters, bounded."""
    if isinstance(name, bytes):
        name = name.decode("utf-8", errors="replace")
    name = str(name or "")
    name = re.split(r"[\\/]", name)[-1]  # drop any folder part, Windows or POSIX
    name = unicodedata.normalize("NFC", _CONTROL.sub("", name)).strip().lstrip(".")
    name = name.encode("utf-8", errors="replace").decode("utf-8")
    if len(name) > MAX_LABEL:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: MAX_LABEL - 8] + "…" + dot + ext[:6]) if dot else name[:MAX_LABEL]
    return name or "document.pdf"


def upload_problem(uploads_dir: Path, path: Path) -> str | None:
    """Why ``path`` is not a file the browser uploaded into ``uploads_dir`` (None if it is).

    Gradio already refuses client-named paths outside its upload folder; this second check sits
    in the service, so no future UI or API route can make the app read a server file (or block
    on a FIFO) by naming it.
    """
    try:
        root = Path(uploads_dir).resolve()
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(root):
            return "outside the uploads folder"
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return "not a regular file"
    except (OSError, ValueError) as exc:
        return f"unreadable ({exc})"
    return None


def discard_uploads(uploads_dir: Path, paths) -> None:
    """Delete Gradio's temp copies (and their per-upload folders) once they are stored or refused."""
    root = Path(uploads_dir).resolve()
    for p in paths:
        path = Path(p).parent.resolve() / Path(p).name  # a symlink itself is deleted, not its target
        if path == root or not path.is_relative_to(root):
            continue  # never delete anything outside the uploads folder
        try:
            path.unlink(missing_ok=True)
            parent = path.parent
            if parent != root and parent.is_relative_to(root) and not any(parent.iterdir()):
                shutil.rmtree(parent, ignore_errors=True)
        except OSError as exc:
            log.warning("could not delete upload %s: %s", path, exc)


def store_upload(src: Path, label: str, files_dir: Path, max_bytes: int) -> StoredFile:
    src = Path(src)
    label = safe_label(label)
    try:
        info = src.stat()
    except OSError as exc:
        raise UserError(f"The upload of {label} could not be read.") from exc
    if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
        raise UserError(f"{label} is not a regular file.")
    size = info.st_size
    if size == 0:
        raise UserError(f"{label} is empty (0 bytes).")
    if size > max_bytes:
        raise UserError(f"{label} is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.")
    with open(src, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    fmt = file_format(label, head)
    files_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=".tmp", dir=files_dir)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        sha = digest.hexdigest()
        target = files_dir / f"{sha}.{fmt.name}"
        if target.exists():
            os.unlink(tmp)
        else:
            os.replace(tmp, target)
            fsync_dir(files_dir)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return StoredFile(sha256=sha, path=target, label=label, size_bytes=size, format=fmt.name)


def file_format(label: str, head: bytes) -> Format:
    """The format a file is read as: its name's, when its content agrees. A name without a known
    extension is still read when its content is a PDF (as before other formats were read)."""
    fmt = format_for(label)
    if fmt is None:
        if PDF.looks_right(head):
            return PDF
        raise UserError(
            f"{label} is not a kind of file DocChat reads; it reads PDF, Word (.docx), PowerPoint (.pptx), "
            "web pages (.html), Markdown (.md), text (.txt) and Excel (.xlsx) files."
        )
    if not fmt.looks_right(head):
        article = "an" if fmt.kind[0] in "AEIOU" else "a"
        raise UserError(f"{label} is not {article} {fmt.kind} (its content is not {fmt.kind}, whatever its name says).")
    return fmt
