"""Running the webhook: certificates, uvicorn, certificate reload, signals.

Everything that can be wrong at start-up (config, rules, templates, certificates, port) fails
here with the reason, before the first request. SIGTERM stops accepting connections, lets
in-flight reviews finish within the grace period, and exits 0.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import ssl
import sys
import tempfile
from pathlib import Path

import uvicorn

from ..core.runtime import Engine
from . import certs
from .accept import guarded_loop
from .app import WebhookApp
from .certwatch import CertWatcher
from .connections import ConnectionLimits, guarded_protocol
from .libc import release_memory
from .telemetry import JsonFormatter, ReviewLog
from .worker import ProcessReviews

log = logging.getLogger("secretpatch.server")

SWITCH_INTERVAL = 0.0005
TRIM_INTERVAL = 5.0


class ServeError(Exception):
    """The webhook cannot start; the message says why."""


async def _trim_memory() -> None:
    """Every few seconds, the C heap's free pages back to the system: reading large bodies
    and the worker thread's allocations leave free memory that the heap would keep."""
    while True:
        await asyncio.sleep(TRIM_INTERVAL)
        release_memory()


def _freeze_heap() -> None:
    """Just before serving: collect what start-up left, then have the garbage collector
    skip everything alive now (modules, rules, templates, the app) in every later
    collection (`gc.freeze`). A full collection walks every object the collector tracks;
    start-up leaves about as many as a filled cache, and a 50-secret review promotes enough
    of its own short-lived objects to start one every few reviews: each took 15-60 ms before,
    which at one review at a time was most of the p99. What is frozen is never collected,
    so this runs once, when nothing but start-up objects is alive, and before the event loop
    runs: the collection itself takes tens of milliseconds, which must not hold up the
    first requests."""
    gc.collect()
    gc.freeze()
    log.info("start-up objects frozen", extra={"fields": {"objects": gc.get_freeze_count()}})


def configure_logging(level: int = logging.INFO) -> None:
    # The logging module's own advice for hot paths: skip the caller lookup and the
    # thread/process fields, which the JSON lines do not print.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def dev_cert_dir() -> Path:
    """Throwaway certificates for a local run, valid for localhost and 127.0.0.1."""
    directory = Path(tempfile.mkdtemp(prefix="secretpatch-dev-certs-"))
    certs.write_files(certs.generate("secretpatch", "default", days=1, dev=True), directory)
    return directory


def serve(
    engine: Engine,
    *,
    host: str = "0.0.0.0",  # noqa: S104 - a webhook listens on the pod's address
    port: int = 9443,
    cert_dir: Path,
    reload_interval: float = 10.0,
    grace: float = 25.0,
    limits: ConnectionLimits | None = None,
    review_timeout: float = 10.0,
    max_pending_bytes: int = 16 * 1024 * 1024,
    config_source: str | Path | None = None,
) -> int:
    limits = limits or ConnectionLimits()
    cert, key = cert_dir / "tls.crt", cert_dir / "tls.key"
    for path in (cert, key):
        if not path.is_file():
            hint = f"run `secretpatch certs --out-dir {cert_dir}`, or use --dev-certs"
            raise ServeError(f"no {path.name} in {cert_dir}; {hint}")
    large_bodies = ProcessReviews(config_source, max_queued_bytes=max_pending_bytes)
    app = WebhookApp(
        engine,
        review_log=ReviewLog(sys.stderr),
        review_timeout=review_timeout,
        max_pending_bytes=max_pending_bytes,
        large_bodies=large_bodies,
    )
    metrics = app.metrics

    def count_event(event: str) -> None:
        metrics.count(metrics.connections, event)

    protocol = guarded_protocol(limits, count_event)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        loop="none",  # the loop is ours: guarded_loop
        http=protocol,
        ws="none",  # a webhook speaks no WebSocket; an upgrade request is an ordinary request
        lifespan="on",
        access_log=False,
        log_config=None,
        # The API server calls the webhook directly: no proxy's X-Forwarded-* headers to
        # trust (uvicorn's middleware for them cost a layer per request), and no
        # `server: uvicorn` header telling a caller what to attack.
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=int(grace),
    )
    try:
        config.load()
    except (OSError, ssl.SSLError) as exc:
        raise ServeError(f"cannot use the certificate in {cert_dir}: {exc}") from None
    if config.ssl is None:  # pragma: no cover - uvicorn builds one whenever a cert is given
        raise ServeError("uvicorn did not build a TLS context")
    config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    watcher = CertWatcher(
        config.ssl,
        cert,
        key,
        reload_interval,
        on_result=lambda ok: metrics.count(metrics.certificate_reloads, "loaded" if ok else "refused"),
        on_expiry=lambda not_after: metrics.certificate_expiry.set(not_after.timestamp()),
    )
    app._on_startup += [watcher.run, large_bodies.start, _trim_memory]
    # Reviews that need work run in a worker thread. When it holds the GIL, the event loop
    # waits for the switch interval (5 ms by default) before it can answer a health check or
    # a remembered review; 0.5 ms keeps that wait below a cheap review's own time.
    sys.setswitchinterval(SWITCH_INTERVAL)
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal it stopped on once it has shut down; a handler of our own
    # turns that into a normal return, so a graceful stop exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    log.info(
        "serving",
        extra={
            "fields": {
                "host": host,
                "port": port,
                "cert_dir": str(cert_dir),
                "rules": [r.name for r in engine.rules],
                "limits": vars(limits),
                "review_timeout": review_timeout,
            }
        },
    )
    _freeze_heap()
    try:
        with asyncio.Runner(loop_factory=lambda: guarded_loop(limits, count_event)) as runner:
            runner.run(server.serve())
    finally:
        large_bodies.close()
    if not server.started:
        raise ServeError(f"the server did not start on {host}:{port} (is the port in use?)")
    log.info("stopped")
    return 0
