"""`make fuzz`: hostile inputs at length, against the engine and against a live server.

Runs at least 100,000 generated AdmissionReviews (valid and invalid, see strategies.py)
through Engine.review, then 5,000 generated bodies (reviews and raw bytes) through a running
`secretpatch serve` over TLS. Every answer must be a well-formed AdmissionReview, an
InputError (engine) or an HTTP 400 (server); anything else is a crash. Every input is also
timed and weighed: a review over ENGINE_CPU_SECONDS of CPU or ENGINE_PEAK_BYTES of Python
memory, a request over SERVER_SECONDS, or a server whose peak RSS passes SERVER_RSS_BYTES is
over budget. Prints how many inputs were tried, refused, crashed and over budget, the max and
p99 of each cost with the costliest input, and exits 1 if anything crashed or went over budget.
`--calibrate` measures the costliest valid review the strategies can generate, from which
the budgets are derived.
Usage: python -m tests.fuzz [--engine 100000] [--server 5000] [--calibrate]
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import ssl
import sys
import tempfile
import time
import traceback
import tracemalloc
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from secretpatch import Engine, InputError
from secretpatch.webhook import certs

from .conftest import admission_review, flyte_b32, flyte_pod, proto_text
from .strategies import ANNOTATION_CAP, POD_CAP, check_answer, reviews
from .test_server_e2e import post, start

# Budgets, about 5 times what the costliest valid review costs (`--calibrate`: 19 annotations
# of 3,397 characters, each a distinct request with every field at its longest, in a pod with
# 3 containers and 3 init containers; nothing the strategies generate costs more). On a 2-core
# machine, a fresh engine each time, 100 such reviews took at most 0.475 s of CPU (also with 4
# busy processes on the 2 cores: CPU time barely grows with load) and 388 KiB at peak. CPU time
# is taken while tracemalloc traces, which makes allocation-heavy code (base32 decoding) about
# 13 times slower; the 0.475 s was measured so too. The quadratic unescaping these budgets
# exist to catch took 7.6 to 10 s and 4.2 MiB for one 64 KiB annotation of backslashes.
ENGINE_CPU_SECONDS = 2.5
ENGINE_PEAK_BYTES = 2 << 20
# The same review over TLS took at most 0.52 s of wall time (no tracing in the server), 0.99 s
# with 4 busy processes on the 2 cores; the quadratic unescaping took 7.4 s.
SERVER_SECONDS = 2.0
# VmHWM: 56 MiB after `--calibrate`, 58 MiB after 5,000 fuzzed requests; the engine's caches
# may hold 31 MiB more by default. A leak or an unbounded cache passes 200 MiB long before a
# run ends.
SERVER_RSS_BYTES = 200 << 20


@dataclass
class Cost:
    """One cost over a run: each input's, the costliest input, how many went over budget."""

    name: str
    budget: float
    show: Callable[[float], str]
    values: list[float] = field(default_factory=list)
    highest: float = 0.0
    costliest: str = ""
    over: int = 0

    def record(self, value: float, subject: Any) -> None:
        if not self.values or value > self.highest:
            self.highest, self.costliest = value, shorten(subject)
        self.values.append(value)
        if value > self.budget:
            self.over += 1
            print(f"over budget: {self.name} {self.show(value)} for {shorten(subject)}", file=sys.stderr)

    def summary(self) -> str:
        budget = f"(budget {self.show(self.budget)})"
        if len(self.values) == 1:
            return f"{self.name} {self.show(self.highest)} {budget}"
        ranked = sorted(self.values)
        p99 = ranked[max(math.ceil(0.99 * len(ranked)) - 1, 0)] if ranked else 0.0
        return f"{self.name} max {self.show(self.highest)}, p99 {self.show(p99)} {budget}"


def shorten(subject: Any) -> str:
    """repr(subject)[:200], from the pod on if it holds one: the envelope before it is the
    same in most inputs."""
    text = repr(subject)
    pod = max(text.find("'object': "), text.find('"object": '))
    return text[max(pod, 0) :][:200]


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def kibibytes(size: float) -> str:
    return f"{size / 1024:.0f} KiB"


def review_cost(engine: Engine, document: Any) -> tuple[Any, float, int]:
    """`engine.review(document)` or the exception it raised, the CPU seconds it took and the
    most Python memory it held at once beyond what was held before, both while tracemalloc
    traces. Tracing starts and stops around the call unless it is on already, so that the
    inputs' generation runs at full speed."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    start = time.process_time()
    try:
        answer: Any = engine.review(document)
    except Exception as exc:
        answer = exc
    seconds = time.process_time() - start
    peak = tracemalloc.get_traced_memory()[1] - before
    if started:
        tracemalloc.stop()
    return answer, seconds, peak


def fuzz_engine(count: int) -> tuple[Counter[str], list[Cost]]:
    engine = Engine.from_config(None)
    outcomes: Counter[str] = Counter()
    cpu = Cost("CPU", ENGINE_CPU_SECONDS, milliseconds)
    memory = Cost("peak memory", ENGINE_PEAK_BYTES, kibibytes)

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=False,
    )
    @given(reviews)
    def run(document: Any) -> None:
        answer, seconds, peak = review_cost(engine, document)
        cpu.record(seconds, document)
        memory.record(peak, document)
        if isinstance(answer, InputError):
            outcomes["refused (malformed review)"] += 1
            return
        if isinstance(answer, Exception):
            outcomes["crashed"] += 1
            traceback.print_exception(answer)
            return
        try:
            outcomes[check_answer(document, answer)] += 1
        except Exception:
            outcomes["crashed"] += 1
            print(f"malformed answer for {document!r}: {answer!r}", file=sys.stderr)

    run()
    return outcomes, [cpu, memory]


def peak_rss(pid: int) -> int | None:
    """VmHWM of a process in bytes; None where /proc does not say."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def fuzz_server(count: int) -> tuple[Counter[str], list[Cost]]:
    outcomes: Counter[str] = Counter()
    wall = Cost("wall", SERVER_SECONDS, milliseconds)
    rss = Cost("peak RSS", SERVER_RSS_BYTES, lambda size: f"{size / (1 << 20):.0f} MiB")
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
        started = time.perf_counter()
        try:
            connection.request(
                "POST", "/mutate--v1-pod?timeout=10s", body=body, headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            wall.record(time.perf_counter() - started, body)
            outcomes["crashed"] += 1
            print(f"connection failed: {exc!r}", file=sys.stderr)
            connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=10)
            return
        wall.record(time.perf_counter() - started, body)
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
        else:
            peak = peak_rss(server.process.pid)
            if peak is not None:
                rss.record(peak, f"secretpatch serve after {count} requests")
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
    return outcomes, [wall, rss]


def report(name: str, outcomes: Counter[str], costs: list[Cost]) -> None:
    tried = sum(outcomes.values())
    refused = outcomes["denied"] + outcomes["refused (malformed review)"] + outcomes["refused (400)"]
    over = sum(cost.over for cost in costs)
    detail = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
    print(
        f"{name}: tried {tried}, refused {refused}, crashed {outcomes['crashed']}, over budget {over} ({detail})"
    )
    slowest = costs[0].costliest
    print(f"{name} costs: {'; '.join(cost.summary() for cost in costs)}; slowest input: {slowest}")


def costliest_valid_review(variant: int) -> dict[str, Any]:
    """A review costlier than any patched one the strategies generate: as many annotations at
    the cap as a pod may hold (19), each a distinct valid request with every field at its
    longest, padded with a comment; 3 containers and 3 init containers, as many as strategies
    give. Each `variant` has other annotations, so that no cache or memo has seen it."""
    annotations = {}
    for i in range(POD_CAP // ANNOTATION_CAP):
        project = f"p{variant:05d}{i:02d}".ljust(30, "a")
        text = proto_text(
            group=f"projects/{project}/secrets/{'s' * 255}",
            group_version="a" + "v" * 62,
            key="k" * 253,
            mount_requirement="FILE",
            env_var="E" * 253,
        )
        padding = 5 * (ANNOTATION_CAP - 1) // 8 + 1 - len(text) - len("#\n")
        annotations[f"flyte.secrets/s{i}"] = flyte_b32(text + "#" + "c" * padding + "\n")
    containers = [
        {
            "name": f"c{i}",
            "image": "x",
            "env": [{"name": name, "value": "v"} for name in ("A", "FLYTE_SECRETS_DEFAULT_DIR", "B", "C")],
            "volumeMounts": [{"name": name, "mountPath": "/m"} for name in ("gcp-secret-vol", "data", "x")],
        }
        for i in range(3)
    ]
    pod = flyte_pod(containers=containers, initContainers=containers, volumes=[{"name": "v"}] * 3)
    pod["metadata"]["annotations"] = annotations
    return admission_review(pod, uid=f"u{variant}")


def calibrate(rounds: int = 10) -> None:
    """Print what the costliest valid review costs the engine (fresh each time) and a server."""
    engine_costs = []
    for variant in range(rounds):
        document = costliest_valid_review(variant)
        answer, seconds, peak = review_cost(Engine.from_config(None), document)
        if check_answer(document, answer) != "patched":
            raise SystemExit(f"the calibration review was not patched: {answer!r}")
        engine_costs.append((seconds, peak))
    seconds, peak = max(s for s, _ in engine_costs), max(p for _, p in engine_costs)
    print(
        f"engine, costliest valid review: CPU max {milliseconds(seconds)}, peak memory max {kibibytes(peak)}"
    )
    work = Path(tempfile.mkdtemp(prefix="secretpatch-calibrate-"))
    certs.write_files(certs.generate("secretpatch", "default", dev=True, days=1), work / "certs")
    server = start(work / "certs", work)
    try:
        connection = server.connect()
        walls = []
        for variant in range(rounds, 2 * rounds):
            body = json.dumps(costliest_valid_review(variant)).encode()
            started = time.perf_counter()
            status, answer = post(connection, body)
            walls.append(time.perf_counter() - started)
            if status != 200 or "patch" not in answer["response"]:
                raise SystemExit(f"the calibration review was not patched: {status} {answer!r}")
        rss = peak_rss(server.process.pid) or 0
        print(f"server, the same review: wall max {milliseconds(max(walls))}, peak RSS {rss >> 20} MiB")
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", type=int, default=100_000)
    parser.add_argument("--server", type=int, default=5_000)
    parser.add_argument("--calibrate", action="store_true", help="measure what the budgets derive from")
    args = parser.parse_args()
    if args.calibrate:
        calibrate()
        return 0
    engine, engine_costs = fuzz_engine(args.engine)
    report("engine", engine, engine_costs)
    server, server_costs = fuzz_server(args.server)
    report("server", server, server_costs)
    failed = engine["crashed"] or server["crashed"] or any(cost.over for cost in engine_costs + server_costs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
