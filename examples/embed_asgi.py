"""secretpatch's engine inside another admission server: a plain ASGI app.

Run it with any ASGI server, for example `uvicorn examples.embed_asgi:app --ssl-keyfile ...`.
The engine is built once at import (loading rules and templates, failing fast on a mistake)
and shared by every request; it is thread-safe and does no I/O per request.
"""

from __future__ import annotations

import json
from typing import Any

from secretpatch import Engine, InputError

engine = Engine.from_config(None)  # or a path to your Flyte webhook config


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    try:
        status, answer = 200, engine.review(json.loads(body))
    except (ValueError, InputError) as exc:  # not JSON, or not a pod AdmissionReview
        status, answer = 400, {"message": str(exc)}
    payload = json.dumps(answer).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
