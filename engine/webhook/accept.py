"""The server's own accept loop: TLS handshakes bounded in number and in time.

uvloop's server creates a connection's protocol only when its TLS handshake is done, so no
limit in `connections.py` sees a connection before then. `guarded_loop` gives uvicorn an
event loop whose TLS servers are `GuardedServer`s, which accept connections themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl as ssl_module
from collections.abc import Callable

import uvloop

from .connections import ConnectionLimits

log = logging.getLogger("secretpatch.server")

# uvloop waits this long for a client's close_notify after the server closes a TLS
# connection (its default is 30 s, during which it reads whatever the client still sends).
TLS_SHUTDOWN_TIMEOUT = 2.0
ACCEPTS_PER_WAKEUP = 64


def guarded_loop(
    limits: ConnectionLimits, on_event: Callable[[str], None] = lambda _: None
) -> asyncio.AbstractEventLoop:
    """A uvloop event loop whose TLS servers are `GuardedServer`s."""

    class GuardedLoop(uvloop.Loop):
        async def create_server(  # type: ignore[override]  # uvicorn's two call forms
            self,
            protocol_factory: Callable[[], asyncio.BaseProtocol],
            host: str | None = None,
            port: int | None = None,
            *,
            sock: socket.socket | None = None,
            ssl: ssl_module.SSLContext | None = None,
            backlog: int = 100,
        ) -> asyncio.AbstractServer:
            if ssl is None:
                raise ValueError("secretpatch serves TLS only")
            if sock is None:
                family = socket.AF_INET6 if host is not None and ":" in host else socket.AF_INET
                sock = socket.create_server((host or "", port or 0), family=family, backlog=backlog)
            return GuardedServer(self, sock, protocol_factory, context=ssl, limits=limits, on_event=on_event)

    return GuardedLoop()


class GuardedServer(asyncio.AbstractServer):
    """A TLS server that accepts connections itself, so that it can bound what uvloop's
    own server cannot: connections still in their TLS handshake. uvloop creates a
    connection's protocol only once the handshake is done, so until then nothing counts
    it: 4,000 ClientHellos held a server at 281 MiB. Here each handshake is a task; at
    `max_connections` handshakes in progress the oldest is dropped for the new one (a real
    client completes its handshake in milliseconds), and each has `request_timeout` to
    finish (uvloop's default is 60 s). A TLS close waits TLS_SHUTDOWN_TIMEOUT at most."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        *,
        context: ssl_module.SSLContext,
        limits: ConnectionLimits,
        on_event: Callable[[str], None],
    ) -> None:
        self._loop, self._sock, self._factory, self._context = loop, sock, protocol_factory, context
        self._limits, self._on_event = limits, on_event
        self._handshakes: dict[asyncio.Task[None], None] = {}  # oldest first
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._accept)
        self._serving = True

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_WAKEUP):
            try:
                connection, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors, say: the kernel keeps the rest queued
                log.warning("cannot accept a connection", extra={"fields": {"error": str(exc)}})
                return
            if len(self._handshakes) >= self._limits.max_connections:
                oldest = next(iter(self._handshakes))
                del self._handshakes[oldest]
                oldest.cancel()
                self._on_event("handshake-dropped")
            task = self._loop.create_task(self._handshake(connection))
            self._handshakes[task] = None
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._handshakes.pop(task, None)

    async def _handshake(self, connection: socket.socket) -> None:
        # A failed handshake is the client's; the transport has closed the socket.
        with contextlib.suppress(OSError, EOFError, TimeoutError):
            await self._loop.connect_accepted_socket(
                self._factory,
                connection,
                ssl=self._context,
                ssl_handshake_timeout=self._limits.request_timeout,
                ssl_shutdown_timeout=TLS_SHUTDOWN_TIMEOUT,
            )

    def close(self) -> None:
        if self._serving:
            self._serving = False
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            for task in list(self._handshakes):
                task.cancel()

    async def wait_closed(self) -> None:
        return None

    def is_serving(self) -> bool:
        return self._serving

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    async def start_serving(self) -> None:
        return None

    async def serve_forever(self) -> None:  # pragma: no cover - uvicorn drives the server
        raise NotImplementedError("GuardedServer is driven by uvicorn")

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self._sock,)
