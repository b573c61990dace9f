"""What the webhook tells its operators: Prometheus metrics and JSON log lines.

The server counts and logs through these; nothing here touches a request or an answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any, TextIO

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from ..core.runtime import Engine

log = logging.getLogger("secretpatch.server")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reviews = Counter(
            "secretpatch_reviews", "AdmissionReviews answered, by result", ["result"], registry=self.registry
        )
        self.denials = Counter(
            "secretpatch_denials", "Pods denied, by reason", ["reason"], registry=self.registry
        )
        self.admitted_refusals = Counter(
            "secretpatch_admitted_refusals",
            "Secret requests refused in pods admitted unchanged (secretpatch.onRefusal: admit), by reason",
            ["reason"],
            registry=self.registry,
        )
        self.secrets = Counter(
            "secretpatch_secrets_injected", "Secrets injected into pods", registry=self.registry
        )
        self.latency = Histogram(
            "secretpatch_review_duration_seconds",
            "Time to answer one review, from the last body byte to the answer",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.connections = Counter(
            "secretpatch_connection_events",
            "Connections refused or closed by a limit: header-too-large, request-timeout, "
            "connection-refused, waiting-connection-closed",
            ["event"],
            registry=self.registry,
        )
        self.certificate_reloads = Counter(
            "secretpatch_certificate_reloads",
            "Certificate pairs found on disk: loaded, or refused (the old pair keeps serving)",
            ["result"],
            registry=self.registry,
        )
        self.certificate_expiry = Gauge(
            "secretpatch_certificate_expiry_timestamp_seconds",
            "When the served certificate expires, in Unix time; alert well before it",
            registry=self.registry,
        )
        # The client library's standard process, Python and collector metrics (process_*,
        # python_info, python_gc_*): memory, CPU, open files, and how much the collector
        # finds to do (a served review leaves nothing for it: test_server_e2e).
        for standard in (ProcessCollector, PlatformCollector, GCCollector):
            standard(registry=self.registry)
        self._children: dict[tuple[Counter, str], Any] = {}

    def count(self, counter: Counter, label: str) -> None:
        """`counter.labels(label).inc()`, with the labelled child looked up once."""
        child = self._children.get((counter, label))
        if child is None:
            child = self._children[(counter, label)] = counter.labels(label)
        child.inc()


class EngineCollector(Collector):
    """The engine's caches and the review memo, read when Prometheus scrapes: each cache's
    budget, bytes held (keys and kept facts counted), entries and evictions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        stats = self.engine.cache_stats()
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
            "budget": GaugeMetricFamily(
                "secretpatch_cache_budget_bytes", "Each cache's byte budget", labels=["cache"]
            ),
            "bytes": GaugeMetricFamily(
                "secretpatch_cache_bytes", "Bytes each cache holds, keys included", labels=["cache"]
            ),
            "entries": GaugeMetricFamily(
                "secretpatch_cache_entries", "Entries in each cache", labels=["cache"]
            ),
            "evictions": CounterMetricFamily(
                "secretpatch_cache_evictions",
                "Entries each cache dropped to stay in budget",
                labels=["cache"],
            ),
        }
        for stat in stats:
            for field, family in families.items():
                family.add_metric([stat.name], getattr(stat, field))
        yield from families.values()
        memo = self.engine.memo
        if memo is None:
            return
        yield CounterMetricFamily(
            "secretpatch_review_memo_hits", "Reviews answered from a pod of the same shape", value=memo.hits
        )
        yield CounterMetricFamily(
            "secretpatch_review_memo_misses",
            "Reviews asking for secrets that were composed afresh",
            value=memo.misses,
        )


TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"  # local time, as the logging module keeps it


def log_review(fields: dict[str, Any]) -> None:
    log.info("review", extra={"fields": fields})


class ReviewLog:
    """Writes each review's line straight to a stream, in JsonFormatter's format.

    A webhook writes one such line per review, and the logging module's path (a record,
    filters, a lock, a formatter) costs about three times what the line itself does. Every
    other line still goes through the logging module, whose level this one follows."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._second = -1
        self._stamp = ""

    def __call__(self, fields: dict[str, Any]) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        now = time.time()
        if int(now) != self._second:
            self._second = int(now)
            self._stamp = time.strftime(TIME_FORMAT, time.localtime(now))
        entry = {"time": self._stamp, "level": "info", "msg": "review", **fields}
        self._stream.write(dumps_line(entry) + "\n")
        self._stream.flush()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, message and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, TIME_FORMAT),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return dumps_line(entry)


def dumps_line(entry: dict[str, Any]) -> str:
    """One JSON line; a value orjson cannot encode (an integer past 64 bits, a string with
    a lone surrogate) is written as its escaped repr, so that the line is never lost."""
    try:
        return orjson.dumps(entry, default=str).decode()
    except TypeError:
        safe = {
            key: value if isinstance(value, bool | float | type(None)) else _safe(value)
            for key, value in entry.items()
        }
        return orjson.dumps(safe, default=str).decode()


def _safe(value: Any) -> Any:
    try:
        orjson.dumps(value, default=str)
        return value
    except TypeError:
        return ascii(value)[:300]
