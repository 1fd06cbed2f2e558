"""The app factory: FastAPI with health routes and the Gradio UI mounted at /."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from contextlib import asynccontextmanager
from pathlib import Path

import gradio as gr
from fastapi import FastAPI
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from webapp import __version__
from webapp.api.mcp_tools import build_mcp
from webapp.api.openai_api import APIError, openai_router, validation_error_handler
from webapp.auth.access import Actor, Forbidden
from webapp.auth.gate import STATE_KEY, AuthGate, request_user
from webapp.auth.signin import signin_router
from webapp.documents.jobs import watch_jobs
from webapp.documents.routes import document_router
from webapp.errors import UserError
from webapp.http_limits import BodySizeLimit, UnknownEventIs404
from webapp.http_security import HostPolicy, SecurityHeaders, TrustedHosts
from webapp.llm.catalog_refresher import CatalogRefresher
from webapp.pg_db import is_postgres_url
from webapp.raw_uploads import UPLOAD_ROUTE, PendingUploads, UploadGuard
from webapp.services import Services, build_services
from webapp.settings import Settings, is_loopback
from webapp.ui.app import build_ui
from webapp.ui.look import page_style

log = logging.getLogger(__name__)

# Largest request body outside file uploads: a chat message plus its history is far below this.
MAX_JSON_BODY = 4 * 1024 * 1024
# What multipart framing adds to each file of an upload (boundary, part headers, file name).
PART_OVERHEAD = 64 * 1024


def _check_documents(services: Services) -> None:
    """Open and check the document store in the background, so problems reach the log early."""
    problem = services.documents.available()
    if problem:
        log.warning("documents unavailable: %s", problem)


def _fresh_upload_folder(settings: Settings) -> Path:
    """Gradio's folder for uploads in transit, emptied at start (a crash may have left copies).

    Gradio reads it from GRADIO_TEMP_DIR only, so it is set here, where Gradio is wired up. It
    lives on the data volume: the pod's /tmp is a small emptyDir and a 100 MB PDF would fill it.
    """
    folder = Path(settings.uploads_dir).resolve()
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder


def check_auth_settings(settings: Settings) -> None:
    """Refuse to serve everyone as an admin by accident (a pod binds 0.0.0.0)."""
    if settings.auth_mode == "none" and not is_loopback(settings.host) and not settings.insecure_no_auth:
        raise UserError(
            f"Refusing to listen on {settings.host} without sign-in: anyone who reaches the port would "
            "be an admin. Use --auth password (users from `python -m webapp users`) or --auth header "
            "(an identity-aware proxy), or --insecure-no-auth if this network is yours alone."
        )


def create_app(settings: Settings, services: Services | None = None, preload: bool = True) -> FastAPI:
    check_auth_settings(settings)
    services = services or build_services(settings, ask_remote_servers=False)
    uploads = _fresh_upload_folder(settings)
    auth = services.auth
    if auth.mode == "password" and not services.users.count_admins():
        log.warning(
            "sign-in is on but there is no active admin: create one with "
            "`python -m webapp users add NAME --role admin` (docs/users.md)"
        )
    log.info("sign-in mode: %s", auth.mode)

    mcp_server, mcp_routes = build_mcp(services)
    pending_uploads = PendingUploads(uploads, settings.upload_claim_s)

    running: dict[str, CatalogRefresher] = {}  # what the lifespan started, for the probes

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Everything slow or remote starts once the port is open: the remote servers and the
        # Kubernetes API are asked, and the default model loaded, by the catalog refresher.
        refresher = CatalogRefresher(
            services.catalog,
            settings.catalog_refresh_s,
            load_default=preload,
            first_round=(lambda: _check_documents(services)) if preload else None,
        ).start()
        running["refresher"] = refresher
        if settings.metrics_port:
            services.metrics.serve(settings.metrics_port)
        stop_sweeping = threading.Event()
        threading.Thread(target=pending_uploads.run, args=(stop_sweeping,), name="upload-sweeper", daemon=True).start()
        if is_postgres_url(settings.database_url):  # ingestion shared with other replicas (documents/jobs.py)
            threading.Thread(
                target=watch_jobs, args=(services.documents, stop_sweeping), name="job-watcher", daemon=True
            ).start()
        if settings.sync_interval_s > 0:  # the app's own schedule for synced sources (docs/documents.md, Sync)
            threading.Thread(
                target=services.sync.schedule,
                args=(settings.sync_interval_s, stop_sweeping),
                name="source-sync",
                daemon=True,
            ).start()
        try:
            async with mcp_server.session_manager.run():
                yield
        finally:
            stop_sweeping.set()
            refresher.stop()
        services.close()

    app = FastAPI(
        title="DocChat",
        version=__version__,
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.services = services
    app.add_middleware(
        BodySizeLimit,
        max_bytes=MAX_JSON_BODY,
        upload_paths=(UPLOAD_ROUTE,),
        upload_max_bytes=settings.max_upload_files * (int(settings.max_upload_mb * 1_000_000) + PART_OVERHEAD),
        upload_refusal=(
            f"The upload is too large: at most {settings.max_upload_files} files of "
            f"{settings.max_upload_mb:g} MB go at once; send fewer or smaller files."
        ),
    )

    # Health routes are async on purpose: sync handlers run in the thread pool that chats and
    # Gradio share, so a busy pod would fail its own liveness probe and be restarted.
    @app.get("/healthz", tags=["ops"])
    async def healthz():
        """The process is alive and serving HTTP."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["ops"])
    async def readyz():
        """Ready once the default chat model has loaded; 503 with the reason until then.

        It stays ready when that model is later unloaded to make room for another: the app
        still serves and loads it again on demand.
        """
        catalog = services.catalog
        name = catalog.default_choice()
        refresher = running.get("refresher")
        # Not before every model source was asked once: a page loaded earlier would not offer the
        # remote servers' (or discovered OVMS') models.
        asked = refresher is None or refresher.first_round_done.is_set()
        if asked and name and catalog.has_loaded(name):
            return {"ready": True, "model": name}
        reason = (
            catalog.load_error(name or "")
            or "; ".join(catalog.problems())
            or ("asking the model servers" if not asked else "")
            or (f"loading {name}" if name else "no chat model in the registry")
        )
        return JSONResponse({"ready": False, "model": name, "reason": reason}, status_code=503)

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def metrics():
        """Prometheus text format (behind sign-in; DOCCHAT_METRICS_PORT serves it to a scraper)."""
        return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if auth.enabled:
        app.include_router(signin_router(auth))
    app.include_router(document_router(services.documents, auth))
    app.include_router(openai_router(services))
    app.router.routes.extend(mcp_routes)  # /mcp, before Gradio's catch-all mount below
    app.add_exception_handler(APIError, lambda request, exc: exc.response())

    async def validation_error(request, exc):
        if request.url.path.startswith((settings.root_path or "") + "/v1/"):
            return validation_error_handler(request, exc)
        return await request_validation_exception_handler(request, exc)

    app.add_exception_handler(RequestValidationError, validation_error)

    blocks = build_ui(services)
    # Gradio runs at most max_threads events at once (and as many worker threads); each admitted
    # or queued answer holds one for its whole length, so leave room for everything else -
    # refusals, uploads, page loads - or they wait unseen in Gradio's own queue.
    blocks.max_threads = max(40, 2 * (settings.answer_slots + settings.answer_queue) + 32)
    # "predict" is where the browser posts events that skip the queue (queue=False), by fn_index.
    api_names = {fn.api_name for fn in blocks.fns.values() if fn.api_name} | {"predict"}
    app.add_middleware(UnknownEventIs404, known=lambda: api_names)

    def upload_refusal(scope) -> str | None:
        """Why this caller may not use Gradio's raw upload route (the gate has found the user)."""
        if not auth.enabled:
            return None
        user = scope.get("state", {}).get(STATE_KEY)
        if user is None:
            return "Sign in first."
        try:
            Actor(user.name, user.role).require_member("upload files")
        except Forbidden as exc:
            return exc.user_message
        return None

    # Inside the gate (added before it), so the user is known when the route is refused.
    app.add_middleware(UploadGuard, pending=pending_uploads, refusal=upload_refusal)
    # Gradio's own queue is bounded too: a flood of events is refused ("queue full") at once.
    blocks.queue(default_concurrency_limit=None, max_size=max(64, 4 * (settings.answer_slots + settings.answer_queue)))
    data = Path(settings.data_dir).resolve()
    mounted = gr.mount_gradio_app(
        app,
        blocks,
        path="/",
        root_path=settings.root_path or None,
        max_file_size=int(settings.max_upload_mb * 1_000_000),
        # Runs would keep chats and PDF passwords in the browser's localStorage.
        run_history=False,
        footer_links=["api", "settings"],
        **page_style(),
        # Gradio's own exceptions (bad payloads from hostile clients) carry object reprs and echo
        # the input; clients get a bare error, the log gets the detail. Our handlers report user
        # errors as sentences themselves, and gr.Error / gr.Warning are still shown.
        show_error=False,
        # The gate (below) has already found the user; Gradio only needs the name, which it hands
        # to every handler as gr.Request.username, and it refuses its own routes without one.
        auth_dependency=(lambda request: getattr(request_user(request), "name", None)) if auth.enabled else None,
        blocked_paths=[
            str(data / "store.sqlite3"),
            str(data / "files"),
            str(data / "index"),
            str(Path(settings.models_dir).resolve()),
        ],
    )
    # Gradio refuses client-named server files (a chat history entry {"type": "file", "path":
    # "/etc/passwd"}) only in apps it has launched itself; mount_gradio_app never sets the flag,
    # so without this line any file the process can read is copied to the cache and served.
    blocks.has_launched = True
    # Gradio keeps per-session state for its 10,000 most recent sessions, ~150 KB each here, and
    # every API call is a new session: 50 busy clients grew the process by 670 MB in 4 minutes.
    blocks.state_holder.capacity = settings.max_sessions
    if auth.enabled:
        # Nothing (not even Gradio's unguarded routes) runs for an unknown caller.
        mounted.add_middleware(AuthGate, authenticator=auth)
    # Outside the gate: a rebound host name is refused before anything else runs, and every
    # answer - refusals included - carries the security headers.
    hosts = HostPolicy.from_settings(settings)
    mounted.add_middleware(TrustedHosts, policy=hosts)
    mounted.add_middleware(SecurityHeaders)
    log.info("answering to host names: %s", hosts.describe())
    log.info("uploads in transit: %s (unclaimed ones deleted after %.0f s)", uploads, settings.upload_claim_s)
    return mounted
