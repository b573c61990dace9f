"""The server's limits, end to end: `secretpatch serve` as a process on 127.0.0.1 over real
TLS, with clients that behave as a hostile or broken one would (endless headers, idle or
stalled connections, many connections, large bodies sent slowly, reviews past their
deadline, hostile names). Each test bounds its own waits; none needs more than a few
seconds of the server's time."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import resource
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from secretpatch.webhook import certs, connections

from .conftest import admission_review, flyte_pod
from .test_server_e2e import Server, post, reviews_in_flight, start

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
# The event a connection closed to make room at the cap is counted under.
MADE_ROOM = next(event for event in connections.EVENTS if event.endswith("-connection-closed"))


def start_with(cert_dir: Path, tmp_path: Path, *flags: str) -> Server:
    """`test_server_e2e.start` with a short grace unless the flags give one."""
    grace = () if "--grace" in flags else ("--grace", "3")
    return start(cert_dir, tmp_path, *grace, *flags)


def stop(server: Server, patience: float = 6) -> None:
    """SIGTERM; after `patience` seconds SIGINT (uvicorn's forced stop); then SIGKILL to the
    server's process group, which holds its review process."""
    process = server.process
    for sig, wait in ((signal.SIGTERM, patience), (signal.SIGINT, 5)):
        if process.poll() is None:
            process.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=wait)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=5)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """`serve(*flags)`: a running server, stopped after the test."""
    cert_dir = tmp_path / "certs"
    certs.write_files(certs.generate("secretpatch", "default", dev=True, days=2), cert_dir)
    started: list[Server] = []

    def run(*flags: str) -> Server:
        server = start_with(cert_dir, tmp_path, *flags)
        started.append(server)
        return server

    yield run
    for server in started:
        stop(server)


def tls_socket(server: Server) -> ssl.SSLSocket:
    """A TLS connection, handshake done, no HTTP byte sent."""
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    return server.context().wrap_socket(raw, server_hostname="127.0.0.1")


def read_until_closed(sock: ssl.SSLSocket, within: float) -> tuple[bytes, float]:
    """What the server sends until it closes the connection, and when it closed it
    (`time.monotonic()`); AssertionError if it is still open after `within` seconds."""
    started = time.monotonic()
    data = b""
    while (left := within - (time.monotonic() - started)) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except (ConnectionError, ssl.SSLError):  # reset, or TLS torn down without close_notify
            chunk = b""
        if not chunk:
            return data, time.monotonic()
        data += chunk
    raise AssertionError(f"the connection is still open after {within} s; it sent {data[:300]!r}")


def is_open(sock: ssl.SSLSocket, wait: float = 0.05) -> bool:
    """Whether the server keeps the connection open (and silent) for `wait` seconds."""
    sock.settimeout(wait)
    try:
        chunk = sock.recv(65536)
    except TimeoutError:
        return True
    except (ConnectionError, ssl.SSLError):
        return False
    if chunk:
        raise AssertionError(f"the server sent {chunk[:300]!r} unasked")
    return False


def read_response(sock: ssl.SSLSocket) -> tuple[int, Any]:
    sock.settimeout(5)
    response = http.client.HTTPResponse(sock)  # type: ignore[arg-type]
    response.begin()
    data = response.read()
    return response.status, json.loads(data) if data.startswith(b"{") else data


def head(content_length: int, content_type: str = "application/json") -> bytes:
    return (
        f"POST /mutate--v1-pod?timeout=10s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {content_length}\r\n\r\n"
    ).encode()


def small_review(uid: str = "small") -> bytes:
    return json.dumps(admission_review(flyte_pod({"group": "db", "group_version": "1"}), uid=uid)).encode()


def expensive_review(uid: str = "expensive") -> bytes:
    """A valid pod with maxSecrets (500) secret requests no review has named before, so
    that nothing is remembered: about 0.1 s of the engine's time."""
    tag = uuid.uuid4().hex[:12]
    pod = flyte_pod(*({"group": f"g{tag}x{i}", "group_version": "1"} for i in range(500)))
    return json.dumps(admission_review(pod, uid=uid)).encode()


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.MULTILINE)
    assert match, status
    return int(match.group(1)) * 1024


def connection_events(server: Server) -> dict[str, float]:
    connection = server.connect()
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    found = re.findall(r'^secretpatch_connection_events_total\{event="([^"]+)"\} (\S+)$', text, re.MULTILINE)
    return {event: float(value) for event, value in found}


def received_so_far(sock: ssl.SSLSocket) -> bytes | None:
    """What the server has sent, without waiting: None for nothing yet, b"" once closed."""
    sock.settimeout(0)
    try:
        return sock.recv(65536)
    except (ssl.SSLWantReadError, BlockingIOError):
        return None
    except (ConnectionError, ssl.SSLError):
        return b""
    finally:
        sock.settimeout(5)


def test_an_endless_header_gets_431_and_a_closed_connection_while_the_server_stays_small(
    serve: Callable[..., Server],
) -> None:
    server = serve()
    sock = tls_socket(server)
    sock.sendall(b"POST /mutate--v1-pod HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: ")
    chunk = b"a" * 16384
    sent, answer = 0, b""
    deadline = time.monotonic() + 10
    while sent < 64 * MiB and time.monotonic() < deadline:  # a server without the cap reads on
        try:
            sock.sendall(chunk)
        except (ConnectionError, ssl.SSLError):
            break
        sent += len(chunk)
        if (got := received_so_far(sock)) is not None:
            answer = got
            break
    rest, _ = read_until_closed(sock, 5)
    answer += rest
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:300]
    assert sent < 16 * MiB, f"the server read {sent} bytes of one header"
    assert rss_bytes(server.process.pid) < 150 * MiB
    assert post(server.connect(), small_review())[0] == 200
    assert connection_events(server) == {"header-too-large": 1.0}


def test_idle_and_unfinished_requests_are_closed_after_their_timeouts(
    serve: Callable[..., Server],
) -> None:
    server = serve("--keep-alive-timeout", "1", "--request-timeout", "1")
    opened = time.monotonic()
    idle = tls_socket(server)
    partial_header = tls_socket(server)
    partial_header.sendall(b"POST /mutate--v1-pod HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
    partial_body = tls_socket(server)
    partial_body.sendall(head(1000) + b'{"apiVersi')
    for sock, status_line in (
        (idle, None),
        (partial_header, b"HTTP/1.1 408 "),
        (partial_body, b"HTTP/1.1 408 "),
    ):
        answer, closed = read_until_closed(sock, 5)
        if status_line is None:
            assert answer == b"", answer[:300]
        else:
            assert answer.startswith(status_line), answer[:300]
        assert 0.8 < closed - opened < 4, f"closed after {closed - opened:.2f} s"
        sock.close()
    assert connection_events(server) == {"request-timeout": 2.0}
    assert post(server.connect(), small_review())[0] == 200


def test_at_the_connection_cap_a_new_connection_closes_the_one_waiting_longest_on_its_client(
    serve: Callable[..., Server],
) -> None:
    server = serve("--max-connections", "5")
    idle = []
    for _ in range(5):
        idle.append(tls_socket(server))
        time.sleep(0.02)  # so that the first is the one idle longest
    sixth = server.connect()
    assert post(sixth, small_review())[0] == 200
    read_until_closed(idle[0], 2)
    assert all(is_open(sock) for sock in idle[1:])
    for sock in idle:
        sock.close()
    sixth.close()
    time.sleep(0.3)  # the server sees those connections go

    waiting = []
    for _ in range(5):
        sock = tls_socket(server)
        sock.sendall(b"POST /mutate--v1-pod HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        waiting.append(sock)
        time.sleep(0.02)
    newcomer = tls_socket(server)
    # Mid-request counts as waiting on the client: the stalled request that began first goes.
    time.sleep(0.3)
    closed = [sock for sock in [*waiting, newcomer] if not is_open(sock)]
    assert closed == [waiting[0]], f"{len(closed)} closed"
    for sock in [*waiting, newcomer]:
        sock.close()
    time.sleep(0.3)
    assert connection_events(server) == {MADE_ROOM: 2.0}


def test_a_large_body_over_the_pending_budget_gets_503_while_small_reviews_go_on(
    serve: Callable[..., Server],
) -> None:
    server = serve("--max-pending-bytes", "200000")
    body = small_review("large").ljust(150000)  # valid JSON: trailing spaces
    first = tls_socket(server)
    first.sendall(head(len(body)) + body[:70000])
    time.sleep(0.3)  # the server reads it and reserves 150,000 bytes
    second = tls_socket(server)
    second.sendall(head(len(body)) + body[:70000])
    status, answer = read_response(second)
    assert status == 503
    assert answer["kind"] == "Status" and "too many large reviews are pending" in answer["message"]
    assert post(server.connect(), small_review())[0] == 200
    first.sendall(body[70000:])
    status, answer = read_response(first)
    assert status == 200 and answer["response"]["allowed"] is True
    first.close()
    second.close()
    # The first's reservation is returned: another large body fits again.
    assert post(server.connect(), body)[0] == 200


def stalled_mid_body(server: Server) -> ssl.SSLSocket:
    sock = tls_socket(server)
    sock.sendall(head(1000) + b'{"apiVersi')
    return sock


def test_sigterm_closes_a_request_stalled_mid_body_at_once_and_answers_reviews_already_sent(
    serve: Callable[..., Server],
) -> None:
    server = serve("--grace", "20")
    stalled = stalled_mid_body(server)
    threads, statuses = reviews_in_flight(server, [expensive_review(f"in-flight-{i}") for i in range(3)])
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    answer, closed = read_until_closed(stalled, 3)
    assert answer == b"", answer[:300]
    stalled.close()  # a client that reads the server's close answers it
    assert server.process.wait(timeout=6) == 0
    assert time.monotonic() - signalled < 5
    assert closed - signalled < 2
    for thread in threads:
        thread.join(timeout=5)
    assert statuses == [200] * 3


def test_sigterm_exits_well_before_the_grace_period_even_if_the_stalled_client_never_reacts(
    serve: Callable[..., Server],
) -> None:
    server = serve("--grace", "20")
    stalled = stalled_mid_body(server)
    try:
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        try:
            code = server.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0, f"still running {time.monotonic() - signalled:.1f} s after SIGTERM"
    finally:
        stalled.close()
        stop(server, patience=0)


def test_a_connection_that_sends_only_blank_lines_is_still_closed_after_keep_alive_timeout(
    serve: Callable[..., Server],
) -> None:
    server = serve("--keep-alive-timeout", "1", "--request-timeout", "1")
    sock = tls_socket(server)
    try:
        sock.sendall(b"\r\n")
        read_until_closed(sock, 3)
    finally:
        sock.close()


def test_a_connection_that_never_starts_its_tls_handshake_is_closed_after_the_request_timeout(
    serve: Callable[..., Server],
) -> None:
    # Before a handshake the connection is not yet a protocol; uvloop's own limit was 60 s.
    server = serve("--request-timeout", "1")
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        started = time.monotonic()
        assert raw.recv(1) == b""
        assert time.monotonic() - started < 4
    finally:
        raw.close()


def test_a_review_past_its_deadline_gets_503_naming_it_and_the_server_keeps_serving(
    serve: Callable[..., Server],
) -> None:
    server = serve("--review-timeout", "0.001")
    connection = server.connect()
    connection.request(
        "POST", "/mutate--v1-pod?timeout=1ms", expensive_review(), {"Content-Type": "application/json"}
    )
    response = connection.getresponse()
    answer = json.loads(response.read())
    assert response.status == 503
    assert answer["kind"] == "Status" and "deadline of 0.0009 s" in answer["message"]
    # Without ?timeout=, --review-timeout is the deadline.
    connection.request("POST", "/mutate--v1-pod", expensive_review(), {"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = json.loads(response.read())
    assert response.status == 503 and "deadline of 0.001 s" in answer["message"]
    health = server.connect()
    health.request("GET", "/healthz")
    assert health.getresponse().read() == b"ok\n"
    assert post(server.connect(), small_review())[0] == 200


def test_an_operation_that_is_not_one_of_kubernetes_own_gets_400_naming_it(
    serve: Callable[..., Server],
) -> None:
    server = serve()
    connection = server.connect()
    for operation in (None, "", "create"):
        review = admission_review(flyte_pod(), operation=operation)
        status, answer = post(connection, json.dumps(review).encode())
        assert status == 400 and "request.operation" in answer["message"], (operation, answer)


def test_a_hostile_pod_name_makes_a_short_log_line_without_escape_sequences(
    serve: Callable[..., Server],
) -> None:
    server = serve()
    escapes = "\x1b[2J\x1b]0;owned\x07"  # clear the screen, set the terminal's title
    name = (escapes + "n" * (1000 - len(escapes))) * 100
    pod = flyte_pod({"group": "db", "group_version": "1"})
    pod["metadata"]["name"] = name
    status, _ = post(server.connect(), json.dumps(admission_review(pod, uid="hostile-name")).encode())
    assert status == 200
    deadline = time.monotonic() + 5
    lines: list[str] = []
    while not lines and time.monotonic() < deadline:
        lines = [line for line in server.log.read_text().splitlines() if '"hostile-name"' in line]
        time.sleep(0.05)
    assert len(lines) == 1
    assert len(lines[0]) < 2000
    assert "\x1b" not in server.log.read_text()
    assert len(name) == 100_000 and "100000" in json.loads(lines[0])["pod"]


def test_healthz_answers_within_a_second_while_expensive_reviews_keep_the_server_busy(
    serve: Callable[..., Server],
) -> None:
    server = serve()
    done = threading.Event()
    statuses: list[int] = []

    def busy() -> None:
        connection = server.connect()
        while not done.is_set():
            statuses.append(post(connection, expensive_review())[0])
        connection.close()

    # Ten clients keep ten reviews waiting: a server answering them on its event loop would
    # make each health check wait for all of them (about a second).
    threads = [threading.Thread(target=busy, daemon=True) for _ in range(10)]
    for thread in threads:
        thread.start()
    latencies: list[float] = []
    try:
        health = server.connect()
        until = time.monotonic() + 3
        while time.monotonic() < until:
            asked = time.monotonic()
            health.request("GET", "/healthz")
            assert health.getresponse().read() == b"ok\n"
            latencies.append(time.monotonic() - asked)
            time.sleep(0.05)
    finally:
        done.set()
        joined_by = time.monotonic() + 15
        for thread in threads:
            thread.join(timeout=max(0.0, joined_by - time.monotonic()))
    assert max(latencies) < 1.0, f"a health check took {max(latencies):.2f} s"
    assert statistics.median(latencies) < 0.25, latencies
    assert len(statuses) >= 10 and set(statuses) == {200}, statuses


def test_a_chunked_request_gets_411_before_its_trailers_are_read(serve: Callable[..., Server]) -> None:
    # Trailers are headers after the body: past the header cap, and kept by uvicorn; one
    # connection streaming them took a server to 1.4 GiB.
    # The answer is read before the trailers are sent: the server drops the connection
    # without reading on, and a client still sending could lose the answer to the reset.
    server = serve()
    sock = tls_socket(server)
    sock.sendall(
        b"POST /mutate--v1-pod HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n"
    )
    answer, _ = read_until_closed(sock, 3)
    with contextlib.suppress(OSError):  # the trailers, to a closed connection
        sock.sendall((b"X-T: " + b"a" * 100 + b"\r\n") * 600)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 411 ") and b"Content-Length" in answer
    assert connection_events(server) == {"length-required": 1.0}
    assert post(server.connect(), small_review())[0] == 200


def test_connections_that_vanish_without_a_tls_close_leave_nothing_behind(
    serve: Callable[..., Server],
) -> None:
    # A keep-alive timer left running held each such connection (and its 256 KiB TLS
    # buffer) for the whole keep-alive timeout: 600 of them, +160 MiB for 120 s.
    server = serve()
    before = rss_bytes(server.process.pid)
    for _ in range(300):
        sock = tls_socket(server)
        sock.sendall(b"\r\n" * 50_000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset
        sock.close()
    time.sleep(3)
    assert rss_bytes(server.process.pid) - before < 40 << 20


def test_a_flood_of_tls_handshakes_that_never_finish_keeps_the_server_small(
    serve: Callable[..., Server],
) -> None:
    # uvloop makes a connection's protocol only after its handshake, so nothing counted
    # handshakes in progress: 4,000 ClientHellos held a server at 281 MiB.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"needs 4,096 open files; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard))
    server = serve("--max-connections", "32")
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    hellos = []
    for _ in range(1500):
        outgoing = ssl.MemoryBIO()
        tls = client.wrap_bio(ssl.MemoryBIO(), outgoing)
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.do_handshake()
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        raw.sendall(outgoing.read())
        hellos.append(raw)
    try:
        time.sleep(1)
        assert rss_bytes(server.process.pid) < 150 << 20
        assert len(os.listdir(f"/proc/{server.process.pid}/fd")) < 200
        assert post(server.connect(), small_review())[0] == 200
        assert connection_events(server)["handshake-dropped"] > 1000
    finally:
        for raw in hellos:
            raw.close()
