"""What the webhook tells its operators: Prometheus metrics and JSON log lines.

The server counts and logs through these; nothing here touches a request or an answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any, TextIO

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from .engine import Engine

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
        self.secrets = Counter(
            "secretpatch_secrets_injected", "Secrets injected into pods", registry=self.registry
        )
        self.latency = Histogram(
            "secretpatch_review_duration_seconds",
            "Time to answer one review, from the last body byte to the answer",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self._children: dict[tuple[Counter, str], Any] = {}

    def count(self, counter: Counter, label: str) -> None:
        """`counter.labels(label).inc()`, with the labelled child looked up once."""
        child = self._children.get((counter, label))
        if child is None:
            child = self._children[(counter, label)] = counter.labels(label)
        child.inc()


class MemoCollector(Collector):
    """The review memo's hits and misses, read when Prometheus scrapes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[CounterMetricFamily]:
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
        self._stream.write(orjson.dumps(entry, default=str, option=orjson.OPT_APPEND_NEWLINE).decode())
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
        return orjson.dumps(entry, default=str).decode()
