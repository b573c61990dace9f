"""`make fuzz`: hostile inputs at length, against the engine and against a live server.

Runs at least 100,000 generated AdmissionReviews (valid and invalid, see strategies.py)
through Engine.review, then 5,000 generated bodies (reviews and raw bytes) through a running
`secretpatch serve` over TLS. Every answer must be a well-formed AdmissionReview, an
InputError (engine) or an HTTP 400 (server); anything else is a crash. Prints how many inputs
were tried, refused and crashed, and exits 1 if anything crashed.
Usage: python -m tests.fuzz [--engine 100000] [--server 5000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import sys
import tempfile
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from secretpatch import Engine, InputError, certs

from .strategies import check_answer, reviews
from .test_server_e2e import start


def fuzz_engine(count: int) -> Counter[str]:
    engine = Engine.from_config(None)
    outcomes: Counter[str] = Counter()

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=False,
    )
    @given(reviews)
    def run(document: Any) -> None:
        try:
            answer = engine.review(document)
        except InputError:
            outcomes["refused (malformed review)"] += 1
            return
        except Exception:
            outcomes["crashed"] += 1
            traceback.print_exc()
            return
        try:
            outcomes[check_answer(document, answer)] += 1
        except Exception:
            outcomes["crashed"] += 1
            print(f"malformed answer for {document!r}: {answer!r}", file=sys.stderr)

    run()
    return outcomes


def fuzz_server(count: int) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    work = Path(tempfile.mkdtemp(prefix="secretpatch-fuzz-"))
    certs.write_files(certs.generate("secretpatch", "default", dev=True, days=1), work / "certs")
    server = start(work / "certs", work)
    context = ssl.create_default_context(cafile=str(work / "certs" / "ca.crt"))
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=10)
    bodies = st.one_of(reviews.map(lambda r: json.dumps(r).encode()), st.binary(max_size=300))

    @settings(max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(bodies)
    def run(body: bytes) -> None:
        nonlocal connection
        try:
            connection.request(
                "POST", "/mutate--v1-pod?timeout=10s", body=body, headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            outcomes["crashed"] += 1
            print(f"connection failed: {exc!r}", file=sys.stderr)
            connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=10)
            return
        if response.status == 400:
            outcomes["refused (400)"] += 1
        elif response.status == 200:
            try:
                outcomes[check_answer(json.loads(body), json.loads(data))] += 1
            except Exception:
                outcomes["crashed"] += 1
                print(f"malformed answer: {data[:300]!r}", file=sys.stderr)
        else:
            outcomes["crashed"] += 1
            print(f"HTTP {response.status}: {data[:300]!r}", file=sys.stderr)

    try:
        run()
        if server.process.poll() is not None:
            outcomes["crashed"] += 1
            print("the server died", file=sys.stderr)
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
    return outcomes


def report(name: str, outcomes: Counter[str]) -> None:
    tried = sum(outcomes.values())
    refused = outcomes["denied"] + outcomes["refused (malformed review)"] + outcomes["refused (400)"]
    detail = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
    print(f"{name}: tried {tried}, refused {refused}, crashed {outcomes['crashed']} ({detail})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", type=int, default=100_000)
    parser.add_argument("--server", type=int, default=5_000)
    args = parser.parse_args()
    engine = fuzz_engine(args.engine)
    report("engine", engine)
    server = fuzz_server(args.server)
    report("server", server)
    return 1 if engine["crashed"] or server["crashed"] else 0


if __name__ == "__main__":
    sys.exit(main())
