"""The hostile-load test: each attack on a running `secretpatch serve`, while a client sends
normal reviews, measured against the same run without the attack.

For each attack it reports the normal reviews' p50 and p99 (concurrency 1, sibling pods of
one task, as the API server sends them), the p99's ratio to the quiet run, the server's peak
RSS, the slowest /healthz (a new TLS connection every 100 ms, as a kubelet probes), and how
the server answered the attack. Targets: p99 within 3x of quiet, peak RSS under 200 MiB,
no health check over 1 s; the script exits 1 when one is missed. All traffic goes to
127.0.0.1. `tests/test_hostile_load.py` runs a short version.

Usage: python bench/hostile.py [--seconds 5] [--only NAME ...] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import multiprocessing
import os
import resource
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from secretpatch.core.requests import MAX_ANNOTATION_LENGTH, encode_request
from secretpatch.webhook import certs
from workload import process_tree, realistic_pod, review_for, sibling, start_webhook, status_mib

TARGET_P99_RATIO = 3.0
TARGET_RSS_MIB = 200.0
TARGET_HEALTH_S = 1.0
PATH = "/mutate--v1-pod?timeout=10s"


@dataclass
class Target:
    port: int
    ca: str
    quick: bool

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca)

    def tls(self, timeout: float = 10.0) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return self.context().wrap_socket(raw, server_hostname="127.0.0.1")

    def https(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context(), timeout=30)


# ---- bodies -------------------------------------------------------------------------------


def review(pod: dict[str, Any]) -> bytes:
    body = json.loads(review_for(realistic_pod(), []))
    body["request"]["object"] = pod
    return json.dumps(body).encode()


def pod_with(annotations: dict[str, str], **spec: Any) -> dict[str, Any]:
    pod = realistic_pod()
    pod["metadata"]["annotations"] = annotations
    pod["spec"].update(spec)
    return pod


def backslashes(n: int) -> bytes:
    """Finding 1: annotations whose text is a run of backslashes, as long as the cap allows."""
    text = "group: '" + "\\" * (MAX_ANNOTATION_LENGTH * 5 // 8 - 10) + "'"
    value = encode_request(text)[:MAX_ANNOTATION_LENGTH]
    return review(pod_with({f"flyte.secrets/s{i}": value for i in range(19)}))


def many_decoded(n: int) -> bytes:
    """Finding 2: denied pods whose requests all decode (each new, with 400-character keys)
    before the last is refused: fills the decode and rule caches with distinct keys."""
    annotations = {
        f"flyte.secrets/s{i}": encode_request(f'group: "g{n}x{i}"\ngroup_version: "1"\nkey: "{"k" * 400}"\n')
        for i in range(60)
    }
    annotations["flyte.secrets/s60"] = encode_request('group: "bad group"\ngroup_version: "1"\n')
    return review(pod_with(annotations))


def long_env_lists(n: int) -> bytes:
    """Finding 2: valid pods (each asking for a new secret) with 20 containers of 2,000 env
    vars, one of them a name the composer looks up: the memo's facts."""
    env = [{"name": f"E{i}", "value": "v"} for i in range(2000)] + [{"name": "FLYTE_SECRETS_DEFAULT_DIR"}]
    containers = [{"name": f"c{i}", "image": "x", "env": env} for i in range(20)]
    annotations = {"flyte.secrets/s0": encode_request(f'group: "env-{n}"\ngroup_version: "1"\n')}
    return review(pod_with(annotations, containers=containers))


def tiny_objects(n: int) -> bytes:
    """A body just under 3 MiB of tiny JSON objects: the most Python objects per byte."""
    pod = pod_with({})
    pod["metadata"]["labels"]["pad"] = str(n)
    body = review(pod)[:-2]
    padding = b',"pad":[' + b",".join([b"{}"] * ((3 * 1024 * 1024 - len(body) - 20) // 3)) + b"]}}"
    return body + padding


def new_secrets(n: int) -> bytes:
    """Valid but costly: 500 secrets never seen before (the worker's longest legitimate job)."""
    annotations = {
        f"flyte.secrets/s{i}": encode_request(f'group: "n{n}x{i}"\ngroup_version: "1"\n') for i in range(500)
    }
    return review(pod_with(annotations))


def bad_operation(n: int) -> bytes:
    body = json.loads(review(pod_with({})))
    body["request"]["operation"] = [None, "", "create"][n % 3]
    body["request"]["object"]["metadata"]["name"] = "\x1b[2J" + "p" * 100_000
    return json.dumps(body).encode()


# ---- attacks --------------------------------------------------------------------------------


def flood(
    make: Callable[[int], bytes], distinct: int = 64, threads: int = 2
) -> Callable[[Target, threading.Event, Any], None]:
    """Send `distinct` bodies `make(n)`, made beforehand, as fast as the server answers, from
    `threads` connections."""

    def attack(target: Target, stop: threading.Event, answers: Any) -> None:
        bodies = [make(n) for n in range(min(distinct, 16) if target.quick else distinct)]
        answers["bodies made"] = len(bodies)

        def worker(seed: int) -> None:
            n = seed
            connection = target.https()
            while not stop.is_set():
                body = bodies[n % len(bodies)]
                n += 1
                try:
                    connection.request("POST", PATH, body, {"Content-Type": "application/json"})
                    response = connection.getresponse()
                    response.read()
                    answers[str(response.status)] += 1
                except (OSError, http.client.HTTPException) as exc:
                    answers[type(exc).__name__] += 1
                    connection.close()
                    connection = target.https()

        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()

    return attack


def _outcome(sock: socket.socket, answers: Any, data: bytes | None = None) -> None:
    """Whether the server answered (and with what) or closed the connection."""
    try:
        data = sock.recv(64) if data is None else data
        answers[data.split(b" ")[1].decode() if data.startswith(b"HTTP/1.1 ") else "closed"] += 1
    except (OSError, IndexError):
        answers["closed"] += 1


def endless_header(target: Target, stop: threading.Event, answers: Any) -> None:
    """Finding 3: one header that never ends."""
    answers["started"] = 1
    while not stop.is_set():
        sock = target.tls()
        sock.sendall(b"POST /mutate--v1-pod HTTP/1.1\r\nHost: x\r\nX-A: ")
        try:
            while not stop.is_set():
                sock.sendall(b"a" * 65536)
        except OSError:
            pass
        _outcome(sock, answers)
        sock.close()


def held_bodies(target: Target, stop: threading.Event, answers: Any) -> None:
    """Finding 3: 150 connections each holding most of a 3 MiB body."""
    answers["started"] = 1
    count, size = (40, 3 * 1024 * 1024) if target.quick else (150, 3 * 1024 * 1024)
    socks = []
    for _ in range(count):
        if stop.is_set():
            break
        try:
            sock = target.tls()
            head = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
            # Past 32 KiB the server takes the body from its budget of pending bytes, or
            # refuses it: look for the refusal before sending the rest, so that it is seen
            # whatever the timing (a refused connection is dropped, and a client still
            # sending megabytes then loses the answer).
            first = head.encode() + b"[" + b" " * (64 * 1024)
            sock.sendall(first)
            sock.settimeout(0.2)
            try:
                answer = sock.recv(64)
            except TimeoutError:
                answer = None  # no answer: the server holds the body
            if answer is not None:
                _outcome(sock, answers, answer)  # refused (or closed)
                sock.close()
                continue
            sock.settimeout(10)
            sock.sendall(b" " * (size - len(first) - 1))
            socks.append(sock)
        except OSError:
            answers["send failed"] += 1
    stop.wait()
    for sock in socks:
        sock.settimeout(0.5)
        _outcome(sock, answers)
        sock.close()


def idle_connections(target: Target, stop: threading.Event, answers: Any) -> None:
    """Finding 3: thousands of TLS connections that never send a byte."""
    answers["started"] = 1
    socks = []
    count = 1500 if target.quick else 6000
    while len(socks) < count and not stop.is_set():
        try:
            socks.append(target.tls(timeout=5))
        except OSError:
            answers["connect failed"] += 1
    answers["opened"] = len(socks)
    stop.wait()
    closed = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            closed += sock.recv(1) == b""
        except (ssl.SSLWantReadError, BlockingIOError):
            pass
        except OSError:
            closed += 1
        sock.close()
    answers["closed by the server"] = closed


def stalled_requests(target: Target, stop: threading.Event, answers: Any) -> None:
    """Finding 3: partial headers and partial bodies, re-opened as the server closes them."""
    answers["started"] = 1
    socks: list[ssl.SSLSocket] = []
    count = 300 if target.quick else 1000
    parts = [
        b"POST /mutate--v1-pod HTTP/1.1\r\nHost: x\r\nContent-",
        b'POST /mutate--v1-pod HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"a":',
    ]
    while not stop.is_set():
        while len(socks) < count and not stop.is_set():
            try:
                sock = target.tls(timeout=5)
                sock.sendall(parts[len(socks) % 2])
                sock.setblocking(False)
                socks.append(sock)
            except OSError:
                answers["connect failed"] += 1
        alive = []
        for sock in socks:
            try:
                data = sock.recv(64)
                answers[data[9:12].decode() if data else "closed"] += 1
                sock.close()
            except (ssl.SSLWantReadError, BlockingIOError):
                alive.append(sock)
            except OSError:
                answers["closed"] += 1
        socks = alive
        stop.wait(0.5)
    for sock in socks:
        sock.close()


ATTACKS: dict[str, Callable[[Target, threading.Event, Any], None]] = {
    "backslash runs (19 x 3,397 characters)": flood(backslashes),
    "denied pods, 60 new requests each": flood(many_decoded, distinct=600),
    "long env lists, 20 x 2,000": flood(long_env_lists, distinct=40),
    "3 MiB of tiny JSON objects": flood(tiny_objects, distinct=4),
    "500 never-seen secrets": flood(new_secrets, distinct=100),
    "bad operation, 100 KB name": flood(bad_operation),
    "endless header": endless_header,
    "150 held 3 MiB bodies": held_bodies,
    "idle TLS connections (up to 6,000)": idle_connections,
    "stalled headers and bodies": stalled_requests,
}


def run_attack(name: str, target: Target, seconds: float, queue: Any) -> None:
    """In a process of its own, on the client's core at the lowest priority, so that the
    attacker's CPU does not slow the measuring client (see `pin`)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    os.nice(19)
    answers: collections.Counter[str] = collections.Counter()
    stop = threading.Event()
    thread = threading.Thread(target=ATTACKS[name], args=(target, stop, answers), daemon=True)
    thread.start()
    while not answers and thread.is_alive():  # the first count says the attack is under way
        time.sleep(0.05)
    queue.put("started")
    time.sleep(seconds)
    stop.set()
    thread.join(30)
    queue.put(dict(answers))


# ---- measuring ------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    reviews: int = 0
    errors: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    ratio: float = 0.0
    peak_rss_mib: float = 0.0
    peak_server_rss_mib: float = 0.0
    max_health_ms: float = 0.0
    health_failures: int = 0
    attack: dict[str, int] = field(default_factory=dict)

    def met(self) -> bool:
        return (
            self.ratio <= TARGET_P99_RATIO
            and self.peak_rss_mib < TARGET_RSS_MIB
            and self.max_health_ms < TARGET_HEALTH_S * 1000
            and self.health_failures == 0
            and self.errors == 0
        )


def rss_mib(pid: int) -> float:
    """The RSS of the server and every process under it (its review process): what a
    container's memory limit counts, near enough."""
    return sum(status_mib(member, "VmRSS") for member in process_tree(pid))


def measure(target: Target, pid: int, seconds: float, phase: Phase, attacking: threading.Event) -> None:
    """Normal reviews, health checks and RSS samples until `seconds` have passed."""
    stop = threading.Event()
    latencies: list[float] = []
    health: list[float] = []
    rss: list[float] = []
    own: list[float] = []
    base = review_for(realistic_pod(), ["db-password", "api-key"])
    bodies = [sibling(base, n) for n in range(64)]

    def normal() -> None:
        connection = target.https()
        n = 0
        while not stop.is_set():
            started = time.perf_counter()
            try:
                connection.request("POST", PATH, bodies[n % 64], {"Content-Type": "application/json"})
                response = connection.getresponse()
                ok = response.status == 200 and b'"allowed":true' in response.read()
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = target.https()
            latencies.append(time.perf_counter() - started)
            phase.errors += not ok
            n += 1

    def probe() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                connection = target.https()
                connection.request("GET", "/healthz")
                ok = connection.getresponse().status == 200
                connection.close()
            except (OSError, http.client.HTTPException):
                ok = False
            health.append(time.perf_counter() - started)
            phase.health_failures += not ok
            stop.wait(0.1)

    def sample() -> None:
        while not stop.is_set():
            rss.append(rss_mib(pid))
            own.append(status_mib(pid, "VmRSS"))
            stop.wait(0.05)

    threads = [threading.Thread(target=f) for f in (normal, probe, sample)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    ordered = sorted(latencies)
    phase.reviews = len(ordered)
    phase.p50_ms = statistics.median(ordered) * 1000
    phase.p99_ms = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    phase.peak_rss_mib = max(rss)
    phase.peak_server_rss_mib = max(own)
    phase.max_health_ms = max(health) * 1000


def pin(server: int) -> None:
    """The server and its review process on the first core, as in a pod with a CPU limit of
    one; this process and the attacker (at the lowest priority) on the others, so that the
    client measures the server, not the CPU it shares with the attacker."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return
    for member in process_tree(server):
        for thread in Path(f"/proc/{member}/task").iterdir():  # each thread has its own mask
            os.sched_setaffinity(int(thread.name), {cores[0]})
    os.sched_setaffinity(0, set(cores[1:]))


def run(seconds: float, only: list[str], quick: bool) -> list[Phase]:
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    with tempfile.TemporaryDirectory() as folder:
        cert_dir = Path(folder)
        certs.write_files(certs.generate("secretpatch", "default", days=1, dev=True), cert_dir)
        process, port = start_webhook(cert_dir)
        target = Target(port, str(cert_dir / "ca.crt"), quick)
        time.sleep(2)  # the review process starts
        pin(process.pid)
        try:
            quiet = Phase("quiet (no attack)")
            measure(target, process.pid, seconds, quiet, threading.Event())
            quiet.ratio = 1.0
            phases = [quiet]
            context = multiprocessing.get_context("spawn")
            for name in ATTACKS:
                if only and not any(word in name for word in only):
                    continue
                phase = Phase(name)
                queue = context.Queue()
                attacker = context.Process(target=run_attack, args=(name, target, seconds + 1, queue))
                attacker.start()
                queue.get(timeout=300)
                time.sleep(1)  # let the attack take hold
                measure(target, process.pid, seconds, phase, threading.Event())
                phase.attack = {k: v for k, v in queue.get(timeout=60).items() if k != "started"}
                attacker.join(30)
                phase.ratio = phase.p99_ms / quiet.p99_ms
                phases.append(phase)
                time.sleep(1)
        finally:
            process.terminate()
            process.wait(30)
        if process.returncode != 0:
            raise SystemExit(f"the server exited with {process.returncode} at the end")
    return phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per phase (default 5)")
    parser.add_argument("--only", nargs="*", default=[], help="attacks whose name holds one of these words")
    parser.add_argument("--quick", action="store_true", help="fewer connections (the test suite's version)")
    parser.add_argument("--json", type=Path, help="write the phases as JSON here too")
    args = parser.parse_args()
    phases = run(args.seconds, args.only, args.quick)
    print(
        f"secretpatch under attack, {args.seconds:g} s per phase, Python {sys.version.split()[0]}, {os.cpu_count()} cores"
    )
    print(
        "| attack | normal reviews | p50 ms | p99 ms | p99 vs quiet | peak RSS MiB (server) "
        "| slowest /healthz ms | the attack got | targets |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for phase in phases:
        got = ", ".join(f"{k}: {v}" for k, v in sorted(phase.attack.items())) or "-"
        print(
            f"| {phase.name} | {phase.reviews} ({phase.errors} failed) | {phase.p50_ms:.2f} | {phase.p99_ms:.2f} "
            f"| {phase.ratio:.2f}x | {phase.peak_rss_mib:.0f} ({phase.peak_server_rss_mib:.0f}) | {phase.max_health_ms:.0f} "
            f"({phase.health_failures} failed) | {got} | {'met' if phase.met() else 'MISSED'} |"
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(p) for p in phases], indent=2))
    return 0 if all(p.met() for p in phases) else 1


if __name__ == "__main__":
    sys.exit(main())
