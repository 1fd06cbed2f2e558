"""An OpenAI-compatible API under /v1, on the same server and services as the UI.

    GET  /v1/models             chat models, plus "rag:<collection>" for each collection the caller may read
    POST /v1/chat/completions   streaming or not; max_tokens, temperature, stop, stream_options.include_usage
    POST /v1/search             ranked passages (the JSON of `python -m webapp search --json`)

A "rag:<collection>" model answers from that collection with the default chat model (or the one
named in the request's extra field ``docchat.model``), written in ``docchat.answer_mode`` (quote,
brief or free; default: the server's); earlier messages resolve what a follow-up refers to. The
response carries ``docchat`` with the mode, the query retrieval used, the citations, the evidence
sentences and the claim check (plain clients ignore unknown fields). The answer itself comes from
webapp/chat/answering.py, as in the UI, MCP and the CLI.
Same rules as the UI: sign-in (a user's API token as ``Authorization: Bearer``), the caller's
collections only, admission control (busy -> 429 at once), the same message and answer limits, and
a client that goes away stops generation. Errors use OpenAI's shape: {"error": {"message", "type",
"param", "code"}}.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from webapp.auth.gate import request_user
from webapp.chat.admission import Busy
from webapp.chat.answering import Answer, Failed, Question, Token, grounding_json
from webapp.chat.tasks import TASKS
from webapp.errors import BackendError, UserError
from webapp.llm.base import ChatMessage

log = logging.getLogger(__name__)

RAG_PREFIX = "rag:"


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}},
            status_code=self.status,
        )


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, str) or self.content is None:
            return self.content or ""
        return "".join(str(part.get("text", "")) for part in self.content if part.get("type") in (None, "text"))


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown OpenAI fields are accepted and ignored
    model: str = Field(max_length=300)
    messages: list[Message] = Field(min_length=1, max_length=10_000)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    stop: str | list[str] | None = None
    stream_options: StreamOptions | None = None
    # our extra: {"model": "<chat model for a rag: request>", "answer_mode": "quote" | "brief" | "free",
    #             "documents": ["bert.pdf", ...] (answer from these documents of the collection alone),
    #             "task": "summarize" | "compare" | "outline" | "overview" | "answer" (default: from the question)}
    docchat: dict[str, Any] | None = None


MAX_SCOPED_DOCUMENTS = 100


def scoped_documents(extra: dict[str, Any] | None) -> list[str]:
    """``docchat.documents``: names of documents to answer from alone; [] = the whole collection."""
    names = (extra or {}).get("documents") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise APIError(400, "docchat.documents must be a list of document names.", param="docchat.documents")
    if len(names) > MAX_SCOPED_DOCUMENTS:
        raise APIError(400, f"Pick at most {MAX_SCOPED_DOCUMENTS} documents.", param="docchat.documents")
    return names


class SearchRequest(BaseModel):
    collection: str = Field(max_length=200)
    query: str = Field(max_length=32_000)
    k: int = Field(5, ge=1, le=50)
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"
    documents: list[str] | None = Field(None, max_length=MAX_SCOPED_DOCUMENTS)  # search these documents alone


class _Cut:
    """Applies ``stop`` strings to streamed text: holds back what could be the start of one."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        if not self.stops:
            return piece
        self.pending += piece
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.pending, self.stopped = self.pending[: min(hits)], "", True
            return out
        keep = max(len(s) - 1 for s in self.stops)
        out, self.pending = self.pending[:-keep] if keep else self.pending, self.pending[-keep:] if keep else ""
        return out

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


def openai_router(services) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["OpenAI-compatible API"])
    chat, answers, documents = services.chat, services.answers, services.documents
    catalog, auth = services.catalog, services.auth

    def actor_of(request: Request):
        user = request_user(request)
        return auth.actor_for(user.name if user else None)

    def readable_collections(actor) -> list[str]:
        return documents.collections(actor) if documents.available() is None else []

    @router.get("/models")
    def models(request: Request):
        """Chat models and one ``rag:<collection>`` per collection the caller may read."""
        actor = actor_of(request)
        data = [
            {"id": c.name, "object": "model", "created": 0, "owned_by": "docchat"}
            for c in catalog.choices()
            if c.available
        ]
        data += [
            {"id": RAG_PREFIX + name, "object": "model", "created": 0, "owned_by": "docchat"}
            for name in readable_collections(actor)
        ]
        return {"object": "list", "data": data}

    @router.post("/search")
    def search(body: SearchRequest, request: Request):
        """Ranked passages from one collection (no model involved)."""
        try:
            passages = documents.search(
                body.collection, body.query, k=body.k, mode=body.mode, actor=actor_of(request), documents=body.documents
            )
        except UserError as exc:
            raise APIError(404 if "no collection" in exc.user_message else 400, exc.user_message) from exc
        return {"object": "list", "data": [p.as_json(n) for n, p in enumerate(passages, start=1)]}

    @router.post("/chat/completions")
    async def completions(body: ChatRequest, request: Request):
        actor = actor_of(request)
        model, collection = body.model, None
        if model.startswith(RAG_PREFIX):
            collection = model[len(RAG_PREFIX) :]
            model = str((body.docchat or {}).get("model") or catalog.default_choice() or "")
        elif model not in {c.name for c in catalog.choices()}:
            raise APIError(
                404,
                f"The model {body.model!r} does not exist; GET /v1/models lists them.",
                code="model_not_found",
                param="model",
            )
        turns = [m for m in body.messages if m.role in ("user", "assistant")]
        if not turns or turns[-1].role != "user":
            raise APIError(400, "The last message must come from the user.", param="messages")
        history = [ChatMessage(m.role, m.text()) for m in turns[:-1]]
        try:
            text = chat.validate(turns[-1].text())
            params = chat.params(body.max_completion_tokens or body.max_tokens, body.temperature)
        except UserError as exc:
            raise APIError(400, exc.user_message, param="messages") from exc
        try:
            mode = answers.mode((body.docchat or {}).get("answer_mode"), model) if collection else None
        except UserError as exc:
            raise APIError(400, exc.user_message, param="docchat.answer_mode") from exc
        session = "api-" + secrets.token_hex(8)  # its own: Stop and supersede never touch a browser tab
        try:
            ticket = chat.admit(session)
        except Busy as exc:
            raise APIError(429, exc.user_message, type_="rate_limit_error", code="server_busy") from exc
        stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        task = (body.docchat or {}).get("task")
        if task is not None and task not in TASKS:
            raise APIError(400, f"docchat.task must be one of {', '.join(TASKS)}.", param="docchat.task")
        question = Question(
            text, history, collection, model, mode, params, session, actor, scoped_documents(body.docchat), task
        )

        def start():
            for _ in chat.wait_for_slot(ticket):
                pass
            return answers.start(question, ticket)

        try:
            answer = await asyncio.to_thread(start)
        except Busy as exc:
            raise APIError(503, exc.user_message, type_="server_error", code="server_busy") from exc
        except UserError as exc:
            ticket.release()
            status = 404 if "no collection" in exc.user_message or "does not exist" in exc.user_message else 400
            raise APIError(status, exc.user_message) from exc
        completion_id = "chatcmpl-" + secrets.token_hex(12)
        created = int(time.time())
        shown_model = body.model
        pieces = _pieces(answer, _Cut(stops), chat, session)

        def extra() -> dict | None:
            return grounding_json(answer) if collection else None

        def usage() -> dict:
            prompt, completion = answer.stats.prompt_tokens or 0, answer.stats.completion_tokens or 0
            return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

        if not body.stream:
            text_out, reason = "", "stop"
            try:
                async for piece, finish in pieces:
                    if await request.is_disconnected():
                        break
                    text_out += piece
                    reason = finish or reason
            finally:
                await pieces.aclose()
            message = {"role": "assistant", "content": text_out}
            result = {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": shown_model,
                "choices": [{"index": 0, "message": message, "finish_reason": reason}],
                "usage": usage(),
            }
            found = extra()
            if found:
                result["docchat"] = found
            return result

        def chunk(delta: dict, finish: str | None = None, **more) -> str:
            payload = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": shown_model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **more,
            }
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

        async def events():
            reason = "stop"
            try:
                yield chunk({"role": "assistant", "content": ""})
                async for piece, finish in pieces:
                    if await request.is_disconnected():
                        log.info("API client went away; answer %s stopped", completion_id)
                        return
                    reason = finish or reason
                    if piece:
                        yield chunk({"content": piece})
                found = extra()
                yield chunk({}, reason, **({"docchat": found} if found else {}))
                if body.stream_options and body.stream_options.include_usage:
                    yield (
                        f"data: {json.dumps({'id': completion_id, 'object': 'chat.completion.chunk', 'created': created, 'model': shown_model, 'choices': [], 'usage': usage()})}\n\n"
                    )
                yield "data: [DONE]\n\n"
            except UserError as exc:  # the engine died or the remote server broke off mid-answer
                error = {"error": {"message": exc.user_message, "type": "server_error", "param": None, "code": None}}
                yield f"data: {json.dumps(error)}\n\n"
            finally:
                await pieces.aclose()

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"cache-control": "no-store", "x-accel-buffering": "no"}
        )

    return router


async def _pieces(answer: Answer, cut: _Cut, chat, session: str):
    """(text, finish_reason) from an Answer read in a worker thread, ``stop`` applied; closing
    this generator (client gone, stop string seen) stops generation and frees the slot."""
    queue: asyncio.Queue = asyncio.Queue()
    loop = asyncio.get_running_loop()
    done = threading.Event()

    def pump():
        try:
            for event in answer:
                if done.is_set():
                    break
                if isinstance(event, Token):
                    loop.call_soon_threadsafe(queue.put_nowait, ("text", event.text))
                elif isinstance(event, Failed):
                    raise BackendError(event.message)
            answer.close()
            loop.call_soon_threadsafe(queue.put_nowait, ("end", answer.finish_reason or "stop"))
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, which raises it
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

    worker = threading.Thread(target=pump, name="api-answer", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "error":
                raise value
            if kind == "end":
                rest = cut.flush() if not cut.stopped else ""
                yield rest, ("stop" if cut.stopped else ("length" if value == "length" else "stop"))
                return
            out = cut.feed(value)
            if out:
                yield out, None
            if cut.stopped:
                yield "", "stop"
                return
    finally:
        done.set()
        chat.stop(session)  # cancels generation if it is still running; the stream then releases its slot


def validation_error_handler(request: Request, exc: RequestValidationError):
    """400 in OpenAI's shape for /v1 (FastAPI's default is a 422 of its own shape)."""
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
    message = f"{where}: {first.get('msg')}" if where else str(first.get("msg") or "Invalid request.")
    return APIError(400, message, param=where).response()
