"""Flags that several commands share: where the webhook is (webhook-config, manifests) and
what one client may hold (serve)."""

from __future__ import annotations

import argparse
from typing import Any


def webhook_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--service", help="the webhook's Service (default: serviceName, else flyte-pod-webhook)"
    )
    parser.add_argument("--namespace", default="flyte", help="its namespace (default flyte)")
    parser.add_argument("--name", help="the webhook configuration's name (default: the service name)")
    parser.add_argument("--port", type=int, help="the Service port (default: servicePort, else 443)")
    parser.add_argument(
        "--timeout-seconds", type=int, default=5, help="how long the API server waits (default 5)"
    )
    parser.add_argument("--reinvocation-policy", choices=("Never", "IfNeeded"), default="Never")
    parser.add_argument("--failure-policy", choices=("Fail", "Ignore"), default="Fail")
    parser.add_argument(
        "--namespace-selector", metavar="JSON", help="a LabelSelector (default: namespaceSelector, else all)"
    )


def positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
        return value

    return parse


# (flag, type, metavar, default, help): what one client may hold. Why each default is what
# it is: docs/operations.md's limits table and connections.ConnectionLimits.
LIMIT_FLAGS: list[tuple[str, type[int] | type[float], str, float, str]] = [
    ("--max-header-bytes", int, "BYTES", 16 * 1024, "a request's headers; larger gets 431"),
    (
        "--max-connections",
        int,
        "N",
        128,
        "open connections; at the cap the one waiting longest on its client is closed",
    ),
    ("--request-timeout", float, "SECONDS", 10.0, "from a request's first byte to its last; then 408"),
    ("--keep-alive-timeout", float, "SECONDS", 120.0, "an idle connection is closed after this"),
    (
        "--review-timeout",
        float,
        "SECONDS",
        10.0,
        "a review's deadline when the API server sends no ?timeout=",
    ),
    (
        "--max-pending-bytes",
        int,
        "BYTES",
        16 * 1024 * 1024,
        "request bodies over 32 KiB held at once; then 503",
    ),
]


def limit_flags(serve: argparse.ArgumentParser) -> None:
    group = serve.add_argument_group("limits (see docs/operations.md)")
    for flag, kind, metavar, default, text in LIMIT_FLAGS:
        group.add_argument(
            flag, type=positive(kind), default=default, metavar=metavar, help=f"{text} (default %(default)s)"
        )
