"""Reviews of large bodies, answered in a process of their own.

Parsing a body of a megabyte, and freeing what it parsed, holds Python's GIL for tens of
milliseconds; in the server's process that would stall every other review and health check
for as long. `secretpatch serve` hands bodies over `server.INLINE_BODY` to one child
process, started with the same configuration, and waits for it with the review's deadline.
One process also means that one large document at most is in memory at a time; the child
imports only the engine and bodies.py, not the server. A real task pod's review is far
smaller, so the child sees only what is unusual, and keeps its own caches for it. If the
child dies (the kernel's OOM killer, say), the next large review starts a new one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import hashlib
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from ..core.config import load_config
from ..core.errors import DeadlineExceeded, LoadError
from ..core.rules.select import load_rules
from ..core.runtime import Engine
from .bodies import BodyReader, Overloaded, Summary
from .libc import die_with, release_memory

log = logging.getLogger("secretpatch.server")

_reader: BodyReader | None = None


# The child's caches get this share of each budget: it sees few pods, all unusual.
CHILD_BUDGET_SHARE = 4
# The child runs at a lower CPU priority than the server's event loop, which answers health
# checks and every ordinary review: where the two share a CPU (a pod's CPU limit), the
# kernel runs the loop first whenever it has work, and the child takes the time it leaves.
REVIEW_NICENESS = 10
_BUDGETS = ("memoBytes", "decodeCacheBytes", "ruleCacheBytes", "renderCacheBytes", "encoderCacheBytes")


def _start(source: str | None, digest: str | None, parent: int) -> None:
    global _reader  # noqa: PLW0603 - the child process's one engine
    die_with(parent)
    os.nice(REVIEW_NICENESS)
    logging.getLogger("secretpatch").setLevel(logging.ERROR)  # the parent reported the config
    if source is not None and _digest(Path(source)) != digest:
        raise LoadError(
            "the config file has changed since the server started; the review process will not "
            "answer with another configuration than the server's: restart the server",
            file=source,
        )
    config = load_config(source)
    shares = {key: getattr(config.limits, key) // CHILD_BUDGET_SHARE for key in _BUDGETS}
    config = dataclasses.replace(config, limits=dataclasses.replace(config.limits, **shares))
    _reader = BodyReader(Engine(config, *load_rules(config)))
    gc.collect()  # as the server does once it is up (run._freeze_heap)
    gc.freeze()


def _review(body: bytes, deadline: float) -> Summary:
    if _reader is None:  # pragma: no cover - the initializer always runs first
        raise RuntimeError("the review process has no engine")
    try:
        return _reader.review_body(body, deadline)
    finally:
        release_memory()


class ProcessReviews:
    """`await reviews(body, deadline)`: the Summary of a large body's review, from the child.

    The bodies waiting for or in the child hold at most `max_queued_bytes`; beyond that the
    answer is Overloaded at once. The server's own budget of pending bytes is given back when
    a review times out, while its body still waits in the pool's queue: without this bound,
    bodies of timed-out reviews would pile up there. The child reads the config file the server was
    started with; if the file has changed since (a ConfigMap updated without a rollout), the
    child refuses to start rather than answer with another configuration."""

    def __init__(self, config: str | Path | None, max_queued_bytes: int = 16 << 20) -> None:
        path = None if config is None else Path(config).absolute()  # a ConfigMap's link, not its target
        self._config = None if path is None else str(path)
        self._digest = None if path is None else _digest(path)
        self._pool = self._new_pool()
        self._max_queued_bytes = max_queued_bytes
        self._queued_bytes = 0

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(self._config, self._digest, os.getpid()),
        )

    async def start(self) -> None:
        """Start the child now (it loads the rules in about a second), not on the first
        large body."""
        pool = self._pool
        try:
            await asyncio.wrap_future(pool.submit(time.monotonic))
        except BrokenProcessPool:
            log.error("the review process cannot start; large bodies will get 503 (see the error above)")
            self._replace(pool)

    async def __call__(self, body: bytes, deadline: float) -> Summary:
        if self._queued_bytes + len(body) > self._max_queued_bytes:
            raise Overloaded("too many large reviews are waiting for the review process")
        pool = self._pool
        try:
            submitted = pool.submit(_review, body, deadline)
        except BrokenProcessPool:
            self._replace(pool)
            raise Overloaded("the review process stopped; a new one is starting") from None
        self._queued_bytes += len(body)
        submitted.add_done_callback(lambda _: self._done(len(body)))
        try:
            return await asyncio.wait_for(
                asyncio.wrap_future(submitted), max(0.0, deadline - time.monotonic())
            )
        except TimeoutError:
            raise DeadlineExceeded("the review passed its deadline") from None
        except BrokenProcessPool:
            self._replace(pool)
            raise Overloaded("the review process stopped before it answered; a new one is starting") from None

    def _done(self, size: int) -> None:
        self._queued_bytes -= size  # from the pool's thread; the event loop only reads it

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        if self._pool is broken:  # one new pool, however many reviews saw the old one break
            log.error("the review process stopped; starting a new one")
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
