"""Export / import of the document store as one .tar.gz, safe to run while the app serves.

Export copies SQLite with its online backup API (a consistent snapshot even
mid-indexing) plus the uploaded files it references. FAISS files are not
exported: on import they are rebuilt from the vectors in SQLite. Import only
accepts the member names an export writes, so a crafted archive cannot write
outside the data folder.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sqlite3
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from webapp.atomic import atomic_path
from webapp.errors import UserError
from webapp.readers.registry import FORMATS

BACKUP_FORMAT = 1
# Originals are files/<sha256>.<format> (store.original_path), one of the formats the app reads.
_MEMBER = re.compile(
    r"^(manifest\.json|store\.sqlite3|files/[0-9a-f]{64}\.(" + "|".join(f.name for f in FORMATS) + r"))$"
)


def export_store(data_dir: Path, archive: Path) -> dict:
    data_dir, archive = Path(data_dir), Path(archive)
    db_path = data_dir / "store.sqlite3"
    if not db_path.is_file():
        raise UserError(f"There is no document store in {data_dir} to export.")
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=archive.parent) as tmp:
        snapshot = Path(tmp) / "store.sqlite3"
        src = sqlite3.connect(db_path)
        dst = sqlite3.connect(snapshot)
        try:
            src.backup(dst)
        finally:
            src.close()
        columns = {r[1] for r in dst.execute("PRAGMA table_info(documents)")}
        kind = "format" if "format" in columns else "'pdf'"  # a store before format 3 holds PDFs only
        originals = [f"{sha}.{fmt}" for sha, fmt in dst.execute(f"SELECT DISTINCT sha256, {kind} FROM documents")]
        counts = {
            "documents": dst.execute("SELECT COUNT(*) FROM documents").fetchone()[0],
            "chunks": dst.execute("SELECT COUNT(*) FROM chunks").fetchone()[0],
        }
        dst.close()
        manifest = {
            "format_version": BACKUP_FORMAT,
            "created_at": datetime.now(UTC).isoformat(),
            **counts,
            "files": len(originals),
        }
        with atomic_path(archive) as partial, tarfile.open(partial, "w:gz") as tar:
            data = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            tar.add(snapshot, arcname="store.sqlite3")
            for name in originals:
                f = data_dir / "files" / name
                if f.is_file():
                    tar.add(f, arcname=f"files/{name}")
    return manifest


def import_store(archive: Path, data_dir: Path, max_bytes: int = 50 * 10**9) -> dict:
    """Unpack a backup into an empty data folder; all or nothing.

    The declared sizes are checked before anything is written (against ``max_bytes`` and the
    free space), the uploaded files are written first and the SQLite store last, after an
    integrity check, because its presence is what makes the folder a store: an import that
    fails or is killed half-way leaves no store behind, only files an import can redo.
    """
    data_dir = Path(data_dir)
    if (data_dir / "store.sqlite3").exists():
        raise UserError(f"{data_dir} already holds a document store; import into an empty folder.")
    try:
        tar = tarfile.open(archive, "r:gz")
    except (OSError, tarfile.TarError) as exc:
        raise UserError(f"{Path(archive).name} is not a DocChat backup (not a readable .tar.gz).") from exc
    with tar:
        try:
            members = tar.getmembers()
        except (OSError, tarfile.TarError, EOFError) as exc:
            raise UserError(f"{Path(archive).name} is damaged (the archive ends early or is corrupt).") from exc
        bad = [m.name for m in members if not _MEMBER.match(m.name) or not m.isfile()]
        if bad or "store.sqlite3" not in {m.name for m in members}:
            raise UserError(
                f"{Path(archive).name} is not a DocChat backup (unexpected content: "
                f"{', '.join(bad[:3]) or 'no store.sqlite3'})."
            )
        total = sum(m.size for m in members)
        data_dir.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(data_dir).free
        if total > max_bytes or total > free:
            raise UserError(
                f"{Path(archive).name} unpacks to {total / 1e9:.1f} GB; the limit is "
                f"{max_bytes / 1e9:.1f} GB and {free / 1e9:.1f} GB are free in {data_dir}."
            )
        manifest = json.loads(tar.extractfile("manifest.json").read()) if "manifest.json" in tar.getnames() else {}
        if manifest.get("format_version", BACKUP_FORMAT) != BACKUP_FORMAT:
            raise UserError(f"This backup has format {manifest.get('format_version')}; this app reads {BACKUP_FORMAT}.")
        (data_dir / "files").mkdir(parents=True, exist_ok=True)
        try:
            for m in sorted(members, key=lambda m: m.name == "store.sqlite3"):  # the store last
                if m.name == "manifest.json":
                    continue
                with atomic_path(data_dir / m.name) as tmp, tar.extractfile(m) as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                    if m.name == "store.sqlite3":
                        out.flush()
                        _check_sqlite(tmp, Path(archive).name)
        except (OSError, tarfile.TarError, EOFError) as exc:
            raise UserError(f"{Path(archive).name} could not be unpacked ({exc}); nothing was imported.") from exc
    return manifest


def _check_sqlite(path: Path, archive_name: str) -> None:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            ok = conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            conn.execute("SELECT COUNT(*) FROM documents").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise UserError(f"{archive_name} holds a damaged document store ({exc}); nothing was imported.") from exc
    if not ok:
        raise UserError(f"{archive_name} holds a damaged document store; nothing was imported.")
