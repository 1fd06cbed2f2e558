"""The job watcher of a replica on a shared database: ingestion across replicas (issue 28).

With PostgreSQL every document being indexed is leased to one process (webapp/rag/pg_store.py:
claim, renew, claim_abandoned). Uploads are indexed by the replica that received them, so the
user who uploaded sees the progress; this thread, one per replica, keeps that replica's leases
alive and takes over documents whose replica died mid-way (its leases ran out), one at a time.
A document whose indexing was started MAX_ATTEMPTS times without finishing is marked failed
instead of retried for ever (it may be what kills the workers).

Why no separate worker Deployment: an upload's indexing then needs no second hop to report
progress, the HPA on CPU already adds replicas when indexing loads them, and the admission and
fair-share limits of each replica (parse workers, OCR budget) keep a big scan from starving that
replica's chats. docs/capacity.md says when a dedicated worker would pay.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


def watch_jobs(documents, stop: threading.Event) -> None:
    """Renew this replica's leases every third of the lease and take over abandoned documents,
    until ``stop`` is set. ``documents``: the DocumentService. Returns at once on an embedded store
    (one process: nothing to share)."""
    every = documents.settings.job_lease_s / 3
    try:
        if not documents.shared_jobs:
            return
    except Exception as exc:  # no embedding model yet, database down: the chat still works
        log.warning("job watcher not started: %s", exc)
        return
    log.info("job watcher: leases of %.0f s, renewed every %.0f s", documents.settings.job_lease_s, every)
    while not stop.wait(every):
        try:
            documents.renew_leases()
            # Each adoption indexes one document; more are taken at the next turn, so the
            # leases of this replica's own runs are renewed in between.
            documents.adopt_abandoned()
        except Exception:  # a database blip: the next turn tries again (leases are 3 turns long)
            log.exception("job watcher: one turn failed")
