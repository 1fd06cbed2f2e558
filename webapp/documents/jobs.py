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
    (one process: nothing to share). A database that is down (or a store that cannot open yet) is
    tried again every turn: the watcher must not stay off once it is back."""
    every = documents.settings.job_lease_s / 3
    said = None  # the last problem logged, so a long outage is one line, not one per turn
    started = False
    while True:
        try:
            if not documents.shared_jobs:
                return
            if not started:
                log.info("job watcher: leases of %.0f s, renewed every %.0f s", documents.settings.job_lease_s, every)
                started = True
            documents.renew_leases()
            # Each adoption indexes one document; more are taken at the next turn, so the
            # leases of this replica's own runs are renewed in between.
            documents.adopt_abandoned()
            said = None
        except Exception as exc:
            problem = getattr(exc, "user_message", None) or repr(exc)
            if problem != said:
                log.warning(
                    "job watcher: %s (tried again every %.0f s)",
                    problem,
                    every,
                    exc_info=not hasattr(exc, "user_message"),
                )
                said = problem
        if stop.wait(every):
            return
