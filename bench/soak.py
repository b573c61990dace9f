"""Soak: the live webhook under load and faults, on loopback, for a bounded time.

Many keep-alive TLS clients send a mix of valid, denied and malformed reviews for a fixed
time. Halfway through, the certificate files are replaced with a new CA's (clients trust
both). For the second half, slow clients trickle request bytes one at a time; the others'
latency is reported for both halves, to show the slow ones do not hold anybody up. At the
end the server gets SIGTERM with requests in flight; every one sent before must be answered.
Prints requests sent, answered correctly, errors (must be 0; denials and 400s for malformed
bodies are intended), p50/p99 per half, and the server's memory at start and end.
Usage: python bench/soak.py [--seconds 60] [--clients 32] [--slow 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import ssl
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from secretpatch.webhook import certs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workload import realistic_pod, review_for, start_webhook


@dataclass
class Tally:
    sent: int = 0
    correct: int = 0
    # Which serving certificate each new connection was shown, by half: first or second CA's.
    handshakes: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"first half": {"old": 0, "new": 0}, "second half": {"old": 0, "new": 0}}
    )
    errors: list[str] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"first half": [], "second half": []})


def bodies() -> list[tuple[str, bytes]]:
    pod = realistic_pod()
    valid = review_for(pod, [f"secret-{i}" for i in range(3)])
    denied = json.loads(valid)
    denied["request"]["object"]["metadata"]["annotations"]["flyte.secrets/s0"] = "m4zg54lqhiqceozhhixvyxbcbi"
    return [
        ("valid", valid),
        ("valid", review_for(pod, ["one"])),
        ("denied", json.dumps(denied).encode()),
        ("malformed", b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}'),
        ("malformed", b"{not json"),
    ]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def request_bytes(port: int, body: bytes) -> bytes:
    return (
        f"POST /mutate--v1-pod?timeout=10s HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return status, await reader.readexactly(length)


def correct(kind: str, status: int, data: bytes) -> bool:
    if kind == "malformed":
        return status == 400
    if status != 200:
        return False
    allowed = json.loads(data)["response"]["allowed"]
    return allowed if kind == "valid" else not allowed


RECONNECT_EVERY = 100  # requests per connection, so that rotation is seen by new handshakes


async def connect(
    port: int, context: ssl.SSLContext, state: dict[str, object], tally: Tally
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    shown = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    tally.handshakes[str(state["half"])]["new" if shown == state["new_cert"] else "old"] += 1
    return reader, writer


async def client(
    port: int, context: ssl.SSLContext, mix: list[tuple[str, bytes]], state: dict[str, object], tally: Tally
) -> None:
    rng = random.Random()
    reader, writer = await connect(port, context, state, tally)
    count = 0
    try:
        while not state["stop"]:
            count += 1
            if count % RECONNECT_EVERY == 0:
                writer.close()
                reader, writer = await connect(port, context, state, tally)
            kind, body = rng.choice(mix)
            half = str(state["half"])
            started = time.perf_counter()
            writer.write(request_bytes(port, body))
            tally.sent += 1
            try:
                status, data = await read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError) as exc:
                tally.errors.append(f"{kind}: no answer ({type(exc).__name__})")
                return
            tally.latencies[half].append((time.perf_counter() - started) * 1000)
            if correct(kind, status, data):
                tally.correct += 1
            else:
                tally.errors.append(f"{kind}: HTTP {status} {data[:120]!r}")
    finally:
        writer.close()


async def trickler(port: int, context: ssl.SSLContext, body: bytes, state: dict[str, object]) -> None:
    """A slow client: one byte every 50 ms, for as long as the server lets it."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        for byte in request_bytes(port, body):
            if state["stop"]:
                break
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.close()
    except (ConnectionError, ssl.SSLError, OSError):
        return


async def soak(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="secretpatch-soak-"))
    cert_dir = work / "certs"
    first = certs.generate("secretpatch", "default", dev=True, days=1)
    second = certs.generate("secretpatch", "default", dev=True, days=1)
    certs.write_files(first, cert_dir)
    (work / "cas.pem").write_bytes(first.ca_cert + second.ca_cert)
    server, port = start_webhook(
        cert_dir, "--cert-reload-interval", "1", "--grace", "20", ca_file=work / "cas.pem"
    )
    context = ssl.create_default_context(cafile=str(work / "cas.pem"))
    mix = bodies()
    tally = Tally()
    new_cert = x509.load_pem_x509_certificate(second.cert).public_bytes(Encoding.DER)
    state: dict[str, object] = {"stop": False, "half": "first half", "new_cert": new_cert}
    warm = [asyncio.create_task(client(port, context, mix, state, Tally())) for _ in range(4)]
    await asyncio.sleep(2)
    state["stop"] = True
    await asyncio.gather(*warm)
    state["stop"] = False
    memory_start = rss_kib(server.pid)
    clients = [asyncio.create_task(client(port, context, mix, state, tally)) for _ in range(args.clients)]
    await asyncio.sleep(args.seconds / 2)
    certs.write_files(second, cert_dir)  # rotation while serving
    state["half"] = "second half"
    slow = [asyncio.create_task(trickler(port, context, mix[0][1], state)) for _ in range(args.slow)]
    await asyncio.sleep(args.seconds / 2)
    memory_end = rss_kib(server.pid)
    server.send_signal(signal.SIGTERM)  # with requests in flight
    state["stop"] = True
    await asyncio.gather(*clients, *slow)
    code = server.wait(timeout=60)

    print(
        f"secretpatch soak: {args.seconds} s, {args.clients} clients, {args.slow} slow clients, loopback TLS"
    )
    print(f"requests sent {tally.sent}, answered correctly {tally.correct}, errors {len(tally.errors)}")
    for half, values in tally.latencies.items():
        values.sort()
        if values:
            p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
            note = f" (with {args.slow} slow clients)" if half == "second half" else ""
            print(
                f"{half}{note}: {len(values)} answers, p50 {statistics.median(values):.2f} ms, p99 {p99:.2f} ms"
            )
    growth = (memory_end - memory_start) / memory_start * 100 if memory_start else 0.0
    print(
        f"server memory: {memory_start / 1024:.1f} MiB at start, {memory_end / 1024:.1f} MiB at end ({growth:+.1f}%)"
    )
    for half, seen in tally.handshakes.items():
        print(f"{half}: new connections shown the old certificate {seen['old']}, the new one {seen['new']}")
    print(f"server exit code after SIGTERM: {code}")
    for error in tally.errors[:10]:
        print(f"  error: {error}")
    rotated = tally.handshakes["second half"]["new"] > 0
    return 0 if not tally.errors and code == 0 and growth < 10 and rotated else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--slow", type=int, default=8)
    sys.exit(asyncio.run(soak(parser.parse_args())))


if __name__ == "__main__":
    main()
