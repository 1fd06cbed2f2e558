"""Cloud Storage URLs and the client, shared by `quantize publish` and document sync.

google-cloud-storage is imported only when a gs:// URL is used, so the app starts (and every other
feature works) without it. Credentials: Application Default Credentials (Workload Identity in GKE,
``gcloud auth application-default login`` on a laptop); ``STORAGE_EMULATOR_HOST`` points the client
at an emulator (the tests run a real fake-gcs-server process).
"""

from __future__ import annotations

from typing import Any

from webapp.errors import UserError


def is_gcs_url(url: str) -> bool:
    return url.strip().startswith("gs://")


def parse_url(url: str) -> tuple[str, str]:
    """``gs://bucket/some/prefix`` -> ("bucket", "some/prefix")."""
    if not url.startswith("gs://"):
        raise UserError(f"{url!r} is not a Cloud Storage URL; use gs://BUCKET/PREFIX.")
    bucket, _, prefix = url[len("gs://") :].partition("/")
    prefix = prefix.strip("/")
    if not bucket or any(part in ("", ".", "..") for part in prefix.split("/") if prefix):
        raise UserError(f"{url!r} is not a usable Cloud Storage URL; use gs://BUCKET/PREFIX.")
    return bucket, prefix


def default_client() -> Any:
    try:
        from google.cloud import storage
    except ImportError:
        raise UserError("Cloud Storage needs google-cloud-storage: pip install -r requirements.txt.") from None
    try:
        return storage.Client()
    except Exception as exc:  # no credentials, no project
        raise UserError(
            f"Cannot reach Cloud Storage: {exc}. Sign in with `gcloud auth application-default "
            "login` (laptop) or run with Workload Identity (GKE)."
        ) from exc


def not_found(exc: BaseException) -> bool:
    """google.api_core's NotFound, recognised without importing it (the package is optional)."""
    return type(exc).__name__ == "NotFound"
