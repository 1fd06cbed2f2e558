"""HTTP routes for a document's original, its highlighted page images and (formats without pages) its sections.

Behind the same sign-in gate as everything else, and each checks that the signed-in user may read
the document's collection (an id from someone else's private collection is "not found").

    GET /documents/{id}.pdf                       the original, shown inline (add #page=N to open at a page)
    GET /documents/{id}/pages/{n}.png?highlight=  page n as a PNG with that text highlighted
    GET /documents/{id}/sections/{n}.html?highlight=  section n of a Word/PowerPoint/HTML/... document,
                                                  that text marked (add #cited to scroll to it)
    GET /documents/{id}/original                  the original file of any format, as a download

An upload is stored when its first KB holds ``%PDF-``, so an HTML page starting with that line is
stored too (nothing a user sends is lost). Only a document the sandboxed reader has indexed - pypdf
found its structure and read its pages - is a PDF by content and shown inline as application/pdf;
any other original is a download (application/octet-stream, attachment, a sandboxing CSP). Every
answer says nosniff, so no browser second-guesses the type.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from webapp.auth.gate import Authenticator, request_user
from webapp.documents.section_view import section_page
from webapp.documents.service import DocumentsBusy, DocumentService
from webapp.errors import UserError


def _inline_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label)[:100] or "document.pdf"


def _attachment(path, name: str) -> FileResponse:
    """A file the browser saves and never renders in this origin."""
    return FileResponse(
        path,
        media_type="application/octet-stream",
        headers={
            "content-disposition": f'attachment; filename="{name}"',
            "cache-control": "private, no-store",
            "x-content-type-options": "nosniff",
            "content-security-policy": "default-src 'none'; sandbox; frame-ancestors 'none'",
        },
    )


def document_router(documents: DocumentService, auth: Authenticator) -> APIRouter:
    router = APIRouter(prefix="/documents", tags=["documents"])

    def actor(request: Request):
        user = request_user(request)
        return auth.actor_for(user.name if user else None)

    @router.get("/{doc_id}.pdf")
    def original(doc_id: int, request: Request):
        """The stored PDF, inline, so the browser's viewer opens it (at #page=N); a download when the
        reader has not found it to be a PDF."""
        try:
            doc, path = documents.original(doc_id, actor(request))
        except UserError as exc:
            return JSONResponse({"detail": exc.user_message}, status_code=404)
        name = _inline_name(doc.label)
        if doc.status == "indexed" and doc.format == "pdf":
            return FileResponse(
                path,
                media_type="application/pdf",
                headers={
                    "content-disposition": f'inline; filename="{name}"',
                    "cache-control": "private, max-age=3600",
                    "x-content-type-options": "nosniff",
                    # Only framing by other sites is refused: browsers show a PDF through a viewer
                    # framed in this origin, and object-src or sandbox here would block that viewer.
                    "content-security-policy": "frame-ancestors 'self'",
                    "x-frame-options": "SAMEORIGIN",
                },
            )
        return _attachment(path, name)

    @router.get("/{doc_id}/original")
    def download(doc_id: int, request: Request):
        """Any document's original as a download: never rendered by the browser in this origin."""
        try:
            doc, path = documents.original(doc_id, actor(request))
        except UserError as exc:
            return JSONResponse({"detail": exc.user_message}, status_code=404)
        return _attachment(path, _inline_name(doc.label))

    @router.get("/{doc_id}/sections/{number}.html")
    def section(doc_id: int, number: int, request: Request, highlight: str = Query("", max_length=4000)):
        """Section ``number`` of a document without PDF pages, ``highlight`` marked; the document's
        text is escaped and the page may run no script at all."""
        try:
            doc, label, text = documents.section(doc_id, number, actor(request))
        except UserError as exc:
            return JSONResponse({"detail": exc.user_message}, status_code=404)
        return HTMLResponse(
            section_page(doc.label, label, text, highlight),
            headers={
                "cache-control": "private, no-store",
                "x-content-type-options": "nosniff",
                "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'",
            },
        )

    @router.get("/{doc_id}/pages/{page}.png")
    def page_image(doc_id: int, page: int, request: Request, highlight: str = Query("", max_length=4000)):
        """Page ``page`` drawn as an image with ``highlight`` marked (cached on the data volume)."""
        try:
            image = documents.page_image(doc_id, page, highlight, actor(request))
        except DocumentsBusy as exc:  # the render pool is full: try again, nothing is wrong with the page
            return JSONResponse({"detail": exc.user_message}, status_code=503, headers={"retry-after": "2"})
        except UserError as exc:
            return JSONResponse({"detail": exc.user_message}, status_code=404)
        return FileResponse(image.path, media_type="image/png", headers={"cache-control": "private, max-age=3600"})

    return router
