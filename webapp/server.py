"""The app factory: FastAPI with health routes and the Gradio UI mounted at /."""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from webapp import __version__
from webapp.errors import UserError
from webapp.services import Services, build_services
from webapp.settings import Settings
from webapp.ui.app import build_ui

log = logging.getLogger(__name__)


def _preload(services: Services) -> None:
    """Load the default model (and open + check the document store) in the background."""
    problem = services.documents.available()
    if problem:
        log.warning("documents unavailable: %s", problem)
    name = services.catalog.default_choice()
    if not name:
        log.warning("no chat model to preload: %s", "; ".join(services.catalog.problems()) or "registry is empty")
        return
    try:
        services.catalog.get(name)
    except UserError as exc:
        log.error("preloading %s failed: %s", name, exc.user_message)


def create_app(settings: Settings, services: Services | None = None, preload: bool = True) -> FastAPI:
    services = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if preload:
            threading.Thread(target=_preload, args=(services,), name="preload", daemon=True).start()
        yield
        services.close()

    app = FastAPI(title="DocChat", version=__version__, lifespan=lifespan, docs_url="/api/docs",
                  redoc_url=None, openapi_url="/api/openapi.json")
    app.state.services = services

    @app.get("/healthz", tags=["ops"])
    def healthz():
        """The process is alive and serving HTTP."""
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["ops"])
    def readyz():
        """Ready once the default chat model is loaded; 503 with the reason until then."""
        name = services.catalog.default_choice()
        if name and services.catalog.is_loaded(name):
            return {"ready": True, "model": name}
        reason = (services.catalog.load_error(name or "") or "; ".join(services.catalog.problems())
                  or (f"loading {name}" if name else "no chat model in the registry"))
        return JSONResponse({"ready": False, "model": name, "reason": reason}, status_code=503)

    blocks = build_ui(services)
    blocks.queue(default_concurrency_limit=None)
    return gr.mount_gradio_app(app, blocks, path="/", root_path=settings.root_path or None)
