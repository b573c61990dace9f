"""The HTTPS webhook: a minimal ASGI app around Engine.review_outcome, served by uvicorn.

The app only moves bytes: it checks the request (method, content type, size, JSON), hands the
document to the engine, and writes the answer. A malformed call gets HTTP 400 with the reason
(Kubernetes' first error channel); a pod that cannot get its secrets gets an AdmissionReview
with `allowed: false` (the second); a review that runs out of time or finds the server
full of large bodies gets 503, so the API server applies the failurePolicy. Nothing a
client sends can make it answer 500 or stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..core.admission import MUTATE_PATH
from ..core.errors import DeadlineExceeded, InputError, quote_value
from ..core.runtime import Engine
from .bodies import BodyReader, Malformed, Overloaded, Summary, estimated_cost_us, review_timeout, summarize
from .telemetry import EngineCollector, Metrics, log_review

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("secretpatch.server")


# Bodies up to this size are parsed on the event loop (a task pod's review is 5 to 20 KiB);
# larger ones draw from the budget of pending bytes and are parsed and answered elsewhere
# (`large_bodies`, a process in `secretpatch serve`), since parsing one holds the GIL.
INLINE_BODY = 32 * 1024
# Reviews whose estimated cost (bodies.estimated_cost_us) is at most this are answered on the
# event loop too: handing one to the worker thread and back cost more CPU than a review of a
# handful of secrets on one core (a thread switch each way, and the GIL passed back and
# forth). Costlier ones go to the worker, so a flood of them cannot hold the loop.
INLINE_COST_US = 5000

# Reviews the server answers with an HTTP error rather than an AdmissionReview, by their
# metrics label (a review answered has its admission.Result): 400 for a malformed review,
# 500 for a bug, 503 when too busy or past the deadline.
Unanswered = Literal["malformed", "error", "busy", "timeout"]


class WebhookApp:
    """`review_log` writes each review's line (default: through the logging module).

    Reviews that cost little (not a CREATE, no secrets, answered from the memo, or estimated
    at INLINE_COST_US or less) are answered on the event loop. Other small
    reviews go to one worker thread, large bodies to `large_bodies` (else the same thread),
    each with a deadline (the API server's `?timeout=`, else `review_timeout`): health checks
    and other reviews are answered meanwhile, and past the deadline the answer is 503 and the
    work stops (on the loop, the engine stops between secrets and the answer is the same 503).
    One worker also means that at most one large body is parsed at a time."""

    def __init__(
        self,
        engine: Engine,
        *,
        on_startup: list[Any] | None = None,
        review_log: Callable[[dict[str, Any]], None] | None = None,
        review_timeout: float = 10.0,
        max_pending_bytes: int = 16 * 1024 * 1024,
        large_bodies: Callable[[bytes, float], Awaitable[Summary]] | None = None,
    ) -> None:
        self.engine = engine
        self.reader = BodyReader(engine)
        self.large_bodies = large_bodies
        self.review_log = review_log or log_review
        self.max_body = engine.config.limits.maxRequestBytes
        self.review_timeout = review_timeout
        self.max_pending_bytes = max_pending_bytes
        self.pending_bytes = 0
        self.metrics = Metrics()
        self.metrics.registry.register(EngineCollector(engine))
        self.ready = False
        self._on_startup = on_startup or []
        self._tasks: list[asyncio.Task[None]] = []
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="secretpatch-review")

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
                self._worker.shutdown(wait=False, cancel_futures=True)
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
                send,
                404,
                _error(f"no route for {method} {quote_value(path)}; the webhook is POST {MUTATE_PATH}"),
            )

    async def _review(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type != b"application/json":
            shown = quote_value(content_type.decode("latin-1"))
            await self._malformed(send, f"content type must be application/json, not {shown}")
            return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._malformed(send, f"the body is {int(declared)} bytes; the limit is {self.max_body}")
            return
        expected = int(declared) if declared is not None and declared.isdigit() else self.max_body
        chunks: list[bytes] = []
        size = reserved = items = 0
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    await self._malformed(send, f"the body is over the limit of {self.max_body} bytes")
                    return
                # A body that may hold too many items (each takes a byte at least) has them
                # counted as it arrives, a chunk at a time, rather than in one pass over the
                # whole body that would hold the event loop, and no further once there are
                # too many; it is refused once it is in, so that the connection is kept rather
                # than dropped mid-body and reopened.
                if expected > self.reader.max_items >= items:
                    items += self.reader.items(chunk)
                if size > INLINE_BODY and not reserved:
                    reserved = max(expected, size)
                    if self.pending_bytes + reserved > self.max_pending_bytes:
                        reserved = 0
                        await self._unavailable(
                            send, "busy", "too many large reviews are pending; the API server may retry"
                        )
                        return
                    self.pending_bytes += reserved
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            if items > self.reader.max_items:
                await self._malformed(send, self.reader.too_many(items))
                return
            await self._answer_review(scope, b"".join(chunks), send)
        finally:
            self.pending_bytes -= reserved

    async def _answer_review(self, scope: Scope, body: bytes, send: Send) -> None:
        started = time.perf_counter()
        timeout = review_timeout(scope.get("query_string", b""), self.review_timeout)
        deadline = time.monotonic() + timeout
        try:
            if len(body) <= INLINE_BODY:
                outcome, document = self.reader.remembered(body)
                if outcome is not None:
                    summary = summarize(outcome)
                elif estimated_cost_us(document) <= INLINE_COST_US:
                    summary = self.reader.review_document(document, deadline)
                else:
                    summary = await self._in_worker(self.reader.review_document, document, deadline)
            elif self.large_bodies is not None:
                summary = await self.large_bodies(body, deadline)  # its items were counted
            else:
                summary = await self._in_worker(self.reader.review_body, body, deadline)
        except (Malformed, InputError) as exc:
            await self._malformed(send, str(exc))
            return
        except DeadlineExceeded:
            await self._unavailable(
                send, "timeout", f"the review took longer than its deadline of {timeout:g} s and was stopped"
            )
            return
        except Overloaded as exc:
            await self._unavailable(send, "busy", f"{exc}; the API server may retry")
            return
        except Exception as exc:  # fail closed: a bug must deny, never crash the server
            log.exception("review failed")
            await self._malformed(
                send, f"secretpatch failed on this review: {type(exc).__name__}", status=500
            )
            return
        elapsed = time.perf_counter() - started
        await _answer(send, 200, summary.response)
        metrics = self.metrics
        metrics.count(metrics.reviews, summary.result)
        metrics.latency.observe(elapsed)
        if summary.denial:
            metrics.count(metrics.denials, summary.denial)
        for code in summary.admitted:
            metrics.count(metrics.admitted_refusals, code)
        if summary.secrets:
            metrics.secrets.inc(len(summary.secrets))
        self.review_log(
            {
                "uid": summary.uid,
                "namespace": summary.namespace,
                "pod": summary.pod,
                "secrets": summary.secrets,
                "result": summary.result,
                "denial": summary.denial,
                **({"admitted_refusals": list(summary.admitted)} if summary.admitted else {}),
                "duration_ms": round(elapsed * 1000, 3),
            }
        )

    async def _in_worker(self, work: Callable[[Any, float], Summary], data: Any, deadline: float) -> Summary:
        future = asyncio.wrap_future(self._worker.submit(work, data, deadline))
        try:
            return await asyncio.wait_for(future, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise DeadlineExceeded("the review passed its deadline") from None

    async def _malformed(self, send: Send, reason: str, status: int = 400) -> None:
        self.metrics.count(self.metrics.reviews, "malformed" if status == 400 else "error")
        log.warning("bad request", extra={"fields": {"reason": reason, "status": status}})
        await _answer(send, status, _error(reason))

    async def _unavailable(self, send: Send, result: Unanswered, reason: str) -> None:
        """503: the API server applies the webhook's failurePolicy (and may retry). The
        connection closes with it: a server this busy reads no more of a body it will not
        use (connections.py drops such a connection at once)."""
        self.metrics.count(self.metrics.reviews, result)
        log.warning("review not answered", extra={"fields": {"reason": reason, "result": result}})
        await _answer(send, 503, _error(reason), connection="close")


def _error(message: str) -> bytes:
    return orjson.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message})


async def _answer(
    send: Send, status: int, body: bytes, content_type: str = "application/json", **extra: str
) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
