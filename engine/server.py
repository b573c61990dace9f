"""The HTTPS webhook: a minimal ASGI app around Engine.review_outcome, served by uvicorn.

The app only moves bytes: it checks the request (method, content type, size, JSON), hands the
document to the engine, and writes the answer. A malformed call gets HTTP 400 with the reason
(Kubernetes' first error channel); a pod that cannot get its secrets gets an AdmissionReview
with `allowed: false` (the second). Nothing a client sends can make it answer 500 or stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .admission import MUTATE_PATH
from .config import PARSER_DEPTH
from .engine import Engine
from .errors import InputError
from .telemetry import MemoCollector, Metrics, log_review

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("secretpatch.server")


class WebhookApp:
    """`review_log` writes each review's line (default: through the logging module)."""

    def __init__(
        self,
        engine: Engine,
        *,
        on_startup: list[Any] | None = None,
        review_log: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.review_log = review_log or log_review
        self.max_body = engine.config.limits.maxRequestBytes
        self.max_depth = engine.config.limits.maxJsonDepth
        self.metrics = Metrics()
        self.metrics.registry.register(MemoCollector(engine))
        self.ready = False
        self._on_startup = on_startup or []
        self._tasks: list[asyncio.Task[None]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._tasks = [asyncio.ensure_future(start()) for start in self._on_startup]
                self.ready = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.ready = False
                for task in self._tasks:
                    task.cancel()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if path == MUTATE_PATH:
            if method != "POST":
                await _answer(send, 405, _error(f"{MUTATE_PATH} takes POST, not {method}"), allow="POST")
                return
            await self._review(scope, receive, send)
        elif path in ("/healthz", "/readyz") and method in ("GET", "HEAD"):
            ok = path == "/healthz" or self.ready
            await _answer(send, 200 if ok else 503, b"ok\n" if ok else b"not ready\n", "text/plain")
        elif path == "/metrics" and method in ("GET", "HEAD"):
            await _answer(send, 200, generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST)
        else:
            await _answer(
                send, 404, _error(f"no route for {method} {path}; the webhook is POST {MUTATE_PATH}")
            )

    async def _review(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type != b"application/json":
            await self._malformed(
                send, f"content type must be application/json, not {content_type.decode('latin-1')!r}"
            )
            return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._malformed(send, f"the body is {int(declared)} bytes; the limit is {self.max_body}")
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._malformed(send, f"the body is over the limit of {self.max_body} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        started = time.perf_counter()
        body = b"".join(chunks)
        too_deep_message = (
            f"the body nests JSON deeper than the limit; secretpatch.limits.maxJsonDepth is {self.max_depth}"
        )
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            deep = "depth limit exceeded" in str(exc)
            await self._malformed(send, too_deep_message if deep else f"the body is not JSON: {exc}")
            return
        # orjson enforces the default (its own limit). A stricter cap costs a walk, done only
        # when the body has more brackets than the cap allows levels.
        strict = self.max_depth < PARSER_DEPTH
        if (
            strict
            and body.count(b"{") + body.count(b"[") > self.max_depth
            and too_deep(document, self.max_depth)
        ):
            await self._malformed(send, too_deep_message)
            return
        try:
            outcome = self.engine.review_outcome(document)
        except InputError as exc:
            await self._malformed(send, str(exc))
            return
        except Exception as exc:  # fail closed: a bug must deny, never crash the server
            log.exception("review failed")
            await self._malformed(
                send, f"secretpatch failed on this review: {type(exc).__name__}", status=500
            )
            return
        body = orjson.dumps(outcome.response)
        elapsed = time.perf_counter() - started
        await _answer(send, 200, body)
        metrics = self.metrics
        metrics.count(metrics.reviews, outcome.result)
        metrics.latency.observe(elapsed)
        if outcome.denial:
            metrics.count(metrics.denials, outcome.denial)
        if outcome.secrets:
            metrics.secrets.inc(len(outcome.secrets))
        pod = outcome.request.pod
        metadata = pod.get("metadata")
        if not isinstance(metadata, dict):
            metadata = {}
        self.review_log(
            {
                "uid": outcome.request.uid,
                "namespace": metadata.get("namespace"),
                "pod": metadata.get("name") or metadata.get("generateName"),
                "secrets": outcome.secrets,
                "result": outcome.result,
                "denial": outcome.denial,
                "duration_ms": round(elapsed * 1000, 3),
            }
        )

    async def _malformed(self, send: Send, reason: str, status: int = 400) -> None:
        self.metrics.count(self.metrics.reviews, "malformed" if status == 400 else "error")
        log.warning("bad request", extra={"fields": {"reason": reason, "status": status}})
        await _answer(send, status, _error(reason))


def too_deep(document: Any, limit: int) -> bool:
    """Whether `document` nests objects and arrays more than `limit` deep: level by level,
    without recursion, looking only at containers."""
    level = [document] if type(document) is dict or type(document) is list else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            children = node.values() if type(node) is dict else node
            below += [child for child in children if type(child) is dict or type(child) is list]
        level = below
    return False


def _error(message: str) -> bytes:
    return orjson.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message})


async def _answer(
    send: Send, status: int, body: bytes, content_type: str = "application/json", **extra: str
) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
