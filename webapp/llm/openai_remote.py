"""Generation on a remote OpenAI-compatible server: OpenVINO Model Server (/v3) or any /v1 server.

Streaming goes through the official ``openai`` client (its SSE parsing, its
error types) over an ``httpx`` client we configure: TLS verification on, an
optional private CA, connect/read timeouts. We do our own retrying, because
the rule is ours: retry with backoff only until the first token arrives;
after that a failure ends the answer with one sentence and the partial text is
kept (the UI shows both). Stop closes the HTTP stream, which is how an
OpenAI-compatible server learns to stop generating.

The API key is read from a file (a mounted Secret) or an environment variable
at request time, never logged and never shown in the UI.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from webapp.errors import BackendError, ModelNotAvailable
from webapp.llm.base import CancelToken, ChatMessage, Finished, GenerationParams, StreamEvent, TextDelta
from webapp.settings import RemoteEndpoint

log = logging.getLogger(__name__)

BACKOFF_S = (0.5, 1.0, 2.0, 4.0)
# Listing models is a small request made while the app starts and when the picker refreshes;
# a server that accepts connections but never answers must not hold that up for the whole
# streaming read timeout (60 s by default).
LIST_TIMEOUT_S = 10.0


class RemoteServer:
    """One configured endpoint: its HTTP client, key, model list and health."""

    def __init__(self, endpoint: RemoteEndpoint):
        import httpx

        self.endpoint = endpoint
        self.name = endpoint.name
        verify: bool | str = str(endpoint.ca_file) if endpoint.ca_file else endpoint.verify_tls
        timeout = httpx.Timeout(
            connect=endpoint.connect_timeout_s,
            read=endpoint.read_timeout_s,
            write=endpoint.read_timeout_s,
            pool=endpoint.connect_timeout_s,
        )
        self.http = httpx.Client(verify=verify, timeout=timeout)

    def api_key(self) -> str:
        ep = self.endpoint
        if ep.api_key_file:
            try:
                return ep.api_key_file.read_text().strip()
            except OSError as exc:
                log.error("cannot read the API key file of endpoint %s: %s", ep.name, type(exc).__name__)
                raise BackendError(f"The API key file for {ep.name} cannot be read.") from exc
        if ep.api_key_env:
            return os.environ.get(ep.api_key_env, "")
        return "none"  # servers without auth ignore it; the client insists on something

    def client(self) -> Any:
        from openai import OpenAI

        return OpenAI(
            base_url=self.endpoint.base_url.rstrip("/"),
            api_key=self.api_key() or "none",
            http_client=self.http,  # type: ignore[arg-type]  # openai types it as its vendored httpx2
            max_retries=0,
        )

    def list_models(self) -> list[str]:
        """Model ids the server offers; raises ModelNotAvailable with a sentence if it cannot be asked."""
        try:
            timeout = min(self.endpoint.read_timeout_s, LIST_TIMEOUT_S)
            return sorted(m.id for m in self.client().with_options(timeout=timeout).models.list())
        except Exception as exc:
            raise ModelNotAvailable(f"{self.name} is unavailable ({describe(exc)}).") from exc

    def ready(self) -> bool:
        """OVMS answers /v2/health/ready; other servers are ready when /models answers."""
        root = urlsplit(self.endpoint.base_url)
        try:
            r = self.http.get(f"{root.scheme}://{root.netloc}/v2/health/ready")
            if r.status_code in (200, 503):
                return r.status_code == 200
        except Exception:
            return False
        try:
            self.list_models()
            return True
        except ModelNotAvailable:
            return False

    def close(self) -> None:
        self.http.close()


def describe(exc: Exception) -> str:
    """A short, key-free description of a client error, for the user's sentence."""
    import openai

    # Most specific first: the status errors are all APIStatusError, timeouts are connection errors.
    for kind, text in (
        (openai.AuthenticationError, "the API key was refused (401)"),
        (openai.PermissionDeniedError, "access denied (403)"),
        (openai.NotFoundError, "model or endpoint not found (404)"),
        (
            openai.BadRequestError,
            "the server rejected the request (400), often a prompt longer than the model's context",
        ),
        (openai.APITimeoutError, "no answer within the timeout"),
        (openai.APIConnectionError, "cannot connect"),
    ):
        if isinstance(exc, kind):
            return text
    if isinstance(exc, openai.APIStatusError):
        return f"server error {exc.status_code}"
    return type(exc).__name__


def retryable(exc: Exception) -> bool:
    import openai

    if isinstance(exc, (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError)):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


class RemoteChatBackend:
    """One model on one remote server, behind the same interface as the local backend."""

    def __init__(self, server: RemoteServer, model: str):
        self.server = server
        self.model = model
        self.name = f"{model}@{server.name}"
        self.context_length = 0  # the server enforces its own

    def close(self) -> None:
        pass

    def _open_stream(self, messages: Sequence[ChatMessage], params: GenerationParams, cancel: CancelToken) -> Any:
        request = dict(
            model=self.model,
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": m.role, "content": m.content} for m in messages],
            max_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            extra_body={"repetition_penalty": params.repetition_penalty},
        )
        attempts = self.server.endpoint.retries + 1
        for attempt in range(attempts):
            try:
                return self.server.client().chat.completions.create(**request)
            except Exception as exc:
                if not retryable(exc) or attempt == attempts - 1 or cancel.cancelled:
                    log.warning("request to %s failed: %s", self.name, describe(exc))
                    raise BackendError(f"{self.server.name} could not answer: {describe(exc)}.") from exc
                delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
                log.info("request to %s failed (%s); retry %d in %.1f s", self.name, describe(exc), attempt + 1, delay)
                time.sleep(delay)

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams, cancel: CancelToken
    ) -> Iterator[StreamEvent]:
        stream = self._open_stream(messages, params, cancel)
        reason, usage, pieces, finished = "stop", None, 0, False
        try:
            for chunk in stream:
                if cancel.cancelled:
                    reason = "cancelled"
                    break
                if chunk.usage:
                    usage = chunk.usage
                for choice in chunk.choices or []:
                    text = choice.delta.content if choice.delta else None
                    if text:
                        pieces += 1
                        yield TextDelta(text, pieces)  # a streamed piece is about one token
                    if choice.finish_reason:
                        finished = True
                        reason = "length" if choice.finish_reason == "length" else "stop"
            if not finished and not cancel.cancelled:
                # The SSE stream just ended: the connection was cut before the answer finished.
                raise ConnectionError("the connection closed before the answer was complete")
        except Exception as exc:
            if cancel.cancelled:
                reason = "cancelled"
            else:
                log.warning("stream from %s broke after %d piece(s): %r", self.name, pieces, exc)
                what = (
                    "a malformed event in the stream"
                    if isinstance(exc, ValueError)
                    else str(exc)
                    if isinstance(exc, ConnectionError)
                    else describe(exc)
                )
                if pieces:
                    raise BackendError(
                        f"{self.server.name} stopped answering mid-way ({what}); the partial answer is kept."
                    ) from exc
                raise BackendError(f"{self.server.name} could not answer: {what}.") from exc
        finally:
            stream.close()  # closing the HTTP stream tells the server to stop generating
        yield Finished(
            reason, getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or pieces
        )
