"""Files every app replica must see: documents' originals and their OCR word boxes (issue 28).

By default they live in the data folder (``files/<sha256>.<format>``, ``ocr/<sha256>.json``), as
they always have. ``DOCCHAT_FILES_URL`` moves them where several replicas can reach them:

- a folder (``/mnt/shared/docchat``, a ReadWriteMany volume): the files are kept there directly;
- ``gs://bucket/prefix``: the bucket holds them and the data folder keeps a cache. A replica that
  needs a file another replica stored (to index it, draw a page, serve the original) fetches it
  once; an upload or an OCR run publishes what it wrote. Through the same Workload Identity as the
  model registry (webapp/gcs.py).

Page images stay a per-replica cache (drawn on demand from the original). Names are always
``<kind>/<sha256>.<ext>`` made by the app, never a user's file name.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

from webapp.errors import UserError
from webapp.gcs import default_client, is_gcs_url, not_found, parse_url

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(files|ocr)/[0-9a-f]{64}\.[a-z]{2,5}$")
# An upload waits for shared storage this long (retries included) before it is refused: a person is
# waiting, and the client's default (120 s of retries) would look like a hang.
DEADLINE_S = 20.0


def _retry() -> Any:
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(DEADLINE_S)


class SharedFiles:
    def __init__(self, data_dir: Path, url: str | None = None, client: Any = None):
        url = (url or "").strip()
        self.bucket_url = url if url and is_gcs_url(url) else None
        # Where the files are read from: the shared folder, else the data folder (the bucket's cache).
        self.root = Path(url) if url and not self.bucket_url else Path(data_dir)
        self._client = client
        self._bucket: Any = None
        self._prefix = ""
        self._lock = threading.Lock()
        if self.bucket_url:
            self._bucket_name, self._prefix = parse_url(self.bucket_url)

    @property
    def files_dir(self) -> Path:
        return self.root / "files"

    def _blob(self, name: str) -> Any:
        with self._lock:
            if self._bucket is None:
                client = self._client or default_client()
                self._bucket = client.bucket(self._bucket_name)
        return self._bucket.blob(f"{self._prefix}/{name}" if self._prefix else name)

    @staticmethod
    def original(doc: Any) -> str:
        """The shared name of a document's original file."""
        return f"files/{doc.sha256}.{doc.format}"

    @staticmethod
    def ocr_words(sha256: str) -> str:
        return f"ocr/{sha256}.json"

    def local(self, name: str) -> Path:
        """A local path holding ``name`` (fetched from the bucket the first time a replica needs it);
        the path may not exist when no replica ever stored it (a caller then says what is missing)."""
        if not _NAME.match(name):
            raise ValueError(f"not a shared file name: {name!r}")
        path = self.root / name
        if self.bucket_url and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".fetch-", dir=path.parent)
            os.close(fd)
            try:
                self._blob(name).download_to_filename(tmp, timeout=DEADLINE_S, retry=_retry())
                os.replace(tmp, path)
            except Exception as exc:
                if not_found(exc):
                    log.info("shared file %s is not in %s", name, self.bucket_url)
                else:
                    log.warning("could not fetch %s from %s: %s", name, self.bucket_url, exc)
                    raise UserError("The document's file could not be fetched from shared storage; try again.") from exc
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return path

    def publish(self, name: str) -> None:
        """Make a file just written under ``root`` visible to every replica (an upload to the bucket;
        nothing to do for a folder). A failure is the caller's: an upload that is not shared is not stored."""
        if not self.bucket_url:
            return
        path = self.root / name
        blob = self._blob(name)
        try:
            # content-addressed: a name never changes content, so an existing blob is never overwritten
            blob.upload_from_filename(str(path), if_generation_match=0, timeout=DEADLINE_S, retry=_retry())
        except Exception as exc:
            if type(exc).__name__ == "PreconditionFailed":  # already there (same name, same content)
                return
            log.warning("could not store %s in %s: %s", name, self.bucket_url, exc)
            raise UserError("The file could not be stored in shared storage; try again.") from exc

    def remove(self, name: str) -> None:
        """Delete the file everywhere (the last document using it went)."""
        (self.root / name).unlink(missing_ok=True)
        if self.bucket_url:
            try:
                self._blob(name).delete(timeout=DEADLINE_S, retry=_retry())
            except Exception as exc:
                if not not_found(exc):
                    log.warning("could not delete %s from %s: %s (left behind)", name, self.bucket_url, exc)
