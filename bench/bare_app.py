"""The baseline for bench/server.py: an ASGI app that only parses the body and echoes it.

Served by the same uvicorn settings as secretpatch (TLS, uvloop, httptools), so the
difference between the two is what secretpatch does with a review."""

from __future__ import annotations

from typing import Any

import orjson


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = orjson.dumps(orjson.loads(body))
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answer)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})


FIXED = b'{"fixed": "' + b"x" * 1989 + b'"}'  # 2,003 bytes: secretpatch's answer at 1 secret


async def fixed(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """For bench/floor.py: reads the body and answers the same 2 KB whatever it was, so
    that what remains is uvicorn's own cost."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(FIXED))],
        }
    )
    await send({"type": "http.response.body", "body": FIXED})
