"""Should the webhook use Starlette? Measures what it would add to each review, and what
the glance at a body (engine/webhook/glance.py) saves.

Calls ASGI apps in-process with the same AdmissionReview (1 and 10 secrets), which the memo
answers after its second sight: secretpatch's own minimal app (engine/webhook/app.py); the
same app parsing every body whole (its glance turned off); and the same work behind a
Starlette route (Request.body(), BodyReader.remembered and the engine, Response). All include
parsing, the engine and serialising; the difference between the first and the last is the
framework. Prints the medians in microseconds.
Usage: python bench/asgi.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from secretpatch import Engine
from secretpatch.webhook.app import WebhookApp
from secretpatch.webhook.bodies import BodyReader
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workload import realistic_pod, review_for


def starlette_app(engine: Engine) -> Starlette:
    reader = BodyReader(engine)

    async def mutate(request: Request) -> Response:
        outcome, document = reader.remembered(await request.body())
        if outcome is None:
            outcome = engine.review_outcome(document)
        return Response(orjson.dumps(outcome.response), media_type="application/json")

    return Starlette(routes=[Route("/mutate--v1-pod", mutate, methods=["POST"])])


async def time_app(app: Any, body: bytes, rounds: int) -> float:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "https",
        "path": "/mutate--v1-pod", "raw_path": b"/mutate--v1-pod", "query_string": b"timeout=10s",
        "root_path": "", "headers": headers, "server": ("127.0.0.1", 9443), "client": ("127.0.0.1", 5000),
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    times = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        await app(dict(scope), receive, send)
        times.append((time.perf_counter_ns() - started) / 1000)
    return statistics.median(times)


async def main() -> None:
    engine = Engine.from_config(None)
    whole = WebhookApp(engine)
    whole.reader.glance = lambda body: None  # type: ignore[method-assign]
    apps = {
        "secretpatch app": WebhookApp(engine),
        "whole parse": whole,
        "Starlette route": starlette_app(engine),
    }
    for count in (1, 10):
        body = review_for(realistic_pod(), [f"s{i}" for i in range(count)])
        for app in apps.values():
            await time_app(app, body, 200)
        medians = {name: await time_app(app, body, 3000) for name, app in apps.items()}
        own, framework = medians["secretpatch app"], medians["Starlette route"]
        parsed = medians["whole parse"]
        print(
            f"{count} secret(s): secretpatch app {own:,.0f} us, Starlette route {framework:,.0f} us "
            f"(Starlette adds {framework - own:+,.0f} us, {(framework - own) / own:+.0%}); "
            f"parsing the body whole instead of the glance: {parsed:,.0f} us ({parsed - own:+,.0f} us)"
        )


if __name__ == "__main__":
    asyncio.run(main())
