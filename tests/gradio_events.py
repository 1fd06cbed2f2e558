"""Drive a Gradio event the way any HTTP client can: POST /gradio_api/call/<api_name>, then read
the event stream it answers with."""

from __future__ import annotations

import json

import httpx


def call_event(http: httpx.Client, api: str, data, timeout: float = 120) -> tuple[int, list[tuple[str, object]]]:
    """(status of the POST, [(event, data), ...]); ``data`` may be raw bytes (a malformed body)."""
    raw_body = isinstance(data, bytes)
    r = http.post(
        f"/gradio_api/call/{api}",
        json=None if raw_body else {"data": data},
        content=data if raw_body else None,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    if r.status_code != 200:
        return r.status_code, []
    events, kind = [], None
    with http.stream("GET", f"/gradio_api/call/{api}/{r.json()['event_id']}", timeout=timeout) as stream:
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                raw = line.split(":", 1)[1].strip()
                try:
                    events.append((kind, json.loads(raw)))
                except json.JSONDecodeError:
                    events.append((kind, raw))
    return 200, events
