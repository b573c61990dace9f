"""Connection limits: what uvicorn's httptools protocol leaves open to a hostile client.

httptools accepts a header of any size (one endless header took a server to 708 MiB), and
uvicorn times nothing before a connection's first response, so idle, partial-header and
partial-body connections stayed open for over 20 minutes. `guarded_protocol` makes a
protocol class that bounds each of these; the defaults are chosen against what the API
server does as a client (see `ConnectionLimits`). Connections still in their TLS handshake are
bounded by the accept loop in accept.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may hold, and for how long.

    The API server speaks HTTP/1.1 to webhooks (ALPN pinned to http/1.1), keeps up to 25
    idle connections per webhook host for 90 s (Go's IdleConnTimeout), and sends small
    headers and the whole body at once. A POST on a connection the server has just closed
    is not retried, so the server's keep-alive outlasts the client's: the client closes
    first."""

    max_header_bytes: int = 16 * 1024
    max_connections: int = 128
    request_timeout: float = 10.0  # from a request's first byte to its last; the TLS handshake too
    keep_alive_timeout: float = 120.0  # between requests, and before the first


log = logging.getLogger("secretpatch.server")

# Reported through `on_event`: a refusal or a close the limits caused.
EVENTS = (
    "header-too-large",
    "length-required",
    "request-timeout",
    "connection-refused",
    "waiting-connection-closed",
    "handshake-dropped",
)

CLOSE_GRACE = 1.0  # seconds a closed idle connection has to answer the TLS close
# After a request is refused before its body is in, what is still read of it.
LINGER_SECONDS = 1.0
LINGER_BYTES = 4 * 1024 * 1024

_CLOSE = b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"


def _status(code: int, reason: str, text: str) -> bytes:
    body = text.encode("ascii") + b"\n"
    head = f"HTTP/1.1 {code} {reason}\r\ncontent-length: {len(body)}\r\n".encode("ascii")
    return head + _CLOSE + b"\r\n" + body


class HeadWithBody:
    """A response's transport, as its uvicorn cycle writes to it: the status line and headers
    are held until the body's first write and leave with it in one write.

    uvicorn writes them apart, so every answer cost two TLS records and two sends, and the
    client two reads. A uvloop TLS server on loopback spent 21 us of CPU per 2 KB answer
    written once against 26 written in two, and 64 against 72 per 59 KB answer (50 secrets);
    a served review answered from the memo costs about 200 in all. Only the head is held,
    and only until the cycle writes again, closes, or completes without a body (a HEAD
    request); a `100 Continue`, written before the response starts, goes out at once.
    Everything else is the transport's.

    The cycle holds this transport, so this holds the cycle only weakly: each response's
    objects are then freed when the response is done, not left as a reference cycle for the
    collector (11 objects a review, which made a collection every 60 or so reviews)."""

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self._transport = cycle.transport
        self._cycle = weakref.ref(cycle)
        self._on_response = cycle.on_response
        self._head: bytes | None = None
        self._waiting = True  # for the head: the first write after the response starts
        cycle.transport = cast(asyncio.Transport, self)
        cycle.on_response = self._completed

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif self._waiting and getattr(self._cycle(), "response_started", False):
            self._waiting = False
            self._head = bytes(data)
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def _completed(self) -> None:
        self.flush()  # a response with no body (HEAD)
        self._on_response()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._head = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, ...
        return getattr(self._transport, name)


class LengthRequired(Exception):
    """Raised inside the HTTP parser to stop it at a request without Content-Length."""


def guarded_protocol(
    limits: ConnectionLimits, on_event: Callable[[str], None] = lambda _: None
) -> type[HttpToolsProtocol]:
    """An httptools protocol class that enforces `limits`; uvicorn takes it as `http=`."""

    class GuardedProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._header_bytes = 0
            self._in_headers = False
            self._request_timer: asyncio.TimerHandle | None = None
            self._linger: int | None = None  # bytes still to be read after a refusal
            self._length_required = False
            self._later: list[asyncio.TimerHandle] = []  # drops scheduled for this connection
            # When the connection last started waiting on its client (idle, or receiving a
            # request); 0 while the app answers it.
            self._waiting_since = time.monotonic()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections and not self._make_room():
                on_event("connection-refused")
                transport.close()
                return
            # uvicorn arms its keep-alive timer only after a response; a connection that
            # never sends a byte is idle from the start.
            self.timeout_keep_alive = limits.keep_alive_timeout  # type: ignore[assignment]
            self.timeout_keep_alive_task = self.loop.call_later(
                limits.keep_alive_timeout, self.timeout_keep_alive_handler
            )

        def _make_room(self) -> bool:
            """At the cap, a new connection closes the one that has waited longest on its
            client, idle or mid-request (the API server sends a request at once and reopens
            what it needs, so that is a stalled or abandoned client); when every other
            connection is being answered, the new one is refused."""
            waiting = [
                c
                for c in self.connections
                if isinstance(c, GuardedProtocol) and c is not self and c._waiting_since
            ]
            if not waiting:
                return False
            oldest = min(waiting, key=lambda c: c._waiting_since)
            oldest._waiting_since = 0.0
            oldest.transport.abort()
            on_event("waiting-connection-closed")
            return True

        def connection_lost(self, exc: Exception | None) -> None:
            # uvicorn stops the keep-alive timer only on a clean close; a live timer would
            # hold the connection (and its 256 KiB TLS buffer) until it fires.
            self._cancel_request_timer()
            self._unset_keepalive_if_required()
            for handle in self._later:
                handle.cancel()
            self._later = []
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self.transport.is_closing():
                return
            if self._linger is not None:
                self._linger -= len(data)
                if self._linger < 0:
                    self.transport.abort()
                    return
            super().data_received(data)
            if self._between_requests() and self.timeout_keep_alive_task is None:
                # uvicorn stops the keep-alive timer on any byte, but httptools skips blank
                # lines before a request: such bytes start no request and no request timer.
                self.timeout_keep_alive_task = self.loop.call_later(
                    limits.keep_alive_timeout, self.timeout_keep_alive_handler
                )
            if self._in_headers and not self.transport.is_closing():
                # httptools keeps a partial header in memory; count what it may be holding.
                self._header_bytes += len(data)
                if self._header_bytes > limits.max_header_bytes:
                    on_event("header-too-large")
                    self._refuse(
                        431, "Request Header Fields Too Large", "the request's headers are too large"
                    )

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._waiting_since = time.monotonic()
            self._in_headers = True
            self._header_bytes = 0
            self._cancel_request_timer()
            self._request_timer = self.loop.call_later(limits.request_timeout, self._request_timed_out)

        def on_headers_complete(self) -> None:
            self._in_headers = False
            if any(name == b"transfer-encoding" for name, _ in self.headers):
                # A chunked body ends in trailers: headers again, after the header cap is
                # past, that uvicorn would keep. The API server always sends Content-Length.
                self._length_required = True
                raise LengthRequired
            earlier = self.cycle
            super().on_headers_complete()
            if self.cycle is not None and self.cycle is not earlier:
                HeadWithBody(self.cycle)

        def send_400_response(self, msg: str) -> None:
            # uvicorn's answer to what httptools cannot parse (and to LengthRequired), with
            # its TLS close bounded like every other refusal.
            if self._length_required:
                on_event("length-required")
                self._refuse(411, "Length Required", "a request must give its Content-Length")
            else:
                self._refuse(400, "Bad Request", msg)

        def on_message_complete(self) -> None:
            self._cancel_request_timer()
            self._waiting_since = 0.0
            super().on_message_complete()
            if self._linger is not None:  # the refused request's body is in: close
                self.transport.close()

        def on_response_complete(self) -> None:
            self._waiting_since = time.monotonic()
            if self.cycle is not None and self.cycle.more_body and not self.cycle.keep_alive:
                # Answered before its body arrived, with `connection: close` (the server is
                # too busy for it): the rest is not read.
                self.transport.abort()
            elif self.cycle is not None and self.cycle.more_body:
                # Answered before its body arrived (a refusal). A client that sends its whole
                # body before it reads (most do) would see a reset, not the answer, if the
                # connection were dropped now; so the rest is read and thrown away, but for
                # LINGER_SECONDS and LINGER_BYTES at most, and then the connection is dropped.
                self._linger = LINGER_BYTES
                self._later.append(self.loop.call_later(LINGER_SECONDS, self.transport.abort))
            super().on_response_complete()

        def shutdown(self) -> None:
            # A request still arriving when the server stops would hold the process for the
            # whole grace period and then get a 500, and a TLS close would wait for a silent
            # client: idle connections and requests still arriving are dropped now.
            if self._between_requests() or self._in_headers or self.cycle.more_body:
                self.transport.abort()
                return
            super().shutdown()

        def _between_requests(self) -> bool:
            return self._request_timer is None and (self.cycle is None or self.cycle.response_complete)

        def timeout_keep_alive_handler(self) -> None:
            # A TLS close waits up to 30 s for the client's close_notify; an idle client
            # that never sends one would hold its memory that long.
            if not self.transport.is_closing():
                self.transport.close()
                self._later.append(self.loop.call_later(CLOSE_GRACE, self.transport.abort))

        def _request_timed_out(self) -> None:
            self._request_timer = None
            on_event("request-timeout")
            self._refuse(408, "Request Timeout", "the request did not arrive in time")

        def _refuse(self, code: int, reason: str, text: str) -> None:
            """Answer `code` and drop the connection. A TLS close would wait for the client's
            close_notify, reading (and decrypting) whatever it still sends for up to 30 s,
            so a client that keeps streaming would keep the server busy: the connection is
            aborted as soon as the answer has been handed to the socket."""
            if self.transport.is_closing():
                return
            if self.cycle is None or not self.cycle.response_started:
                self.transport.write(_status(code, reason, text))
            self.transport.close()
            self.loop.call_soon(self.transport.abort)

        def _cancel_request_timer(self) -> None:
            if self._request_timer is not None:
                self._request_timer.cancel()
                self._request_timer = None

    return GuardedProtocol
