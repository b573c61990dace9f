"""Where a served review's CPU goes: secretpatch against the HTTP stack beneath it.

Three servers, each pinned to one core and driven in turns by wrk (one thread, on the other
core) over TLS with keep-alive, at concurrency 1 and 32, on the same sibling reviews
(bench/vs_flyte.py's "siblings of one task"):

- "TLS floor": a uvloop TLS protocol with no HTTP library, that finds each request's end by
  its Content-Length and answers 2 KB (the size of secretpatch's answer at 1 secret);
- "uvicorn": uvicorn with secretpatch's settings (uvloop, httptools, no proxy headers, no
  server header) and bench/bare_app.py's `fixed` app, which reads the body and answers the
  same 2 KB;
- "secretpatch": `secretpatch serve`, which answers these reviews from its memo.

Prints each server's CPU per review (from /proc), the median over the rounds with the min-max
in brackets, and p50/p99 from wrk. It never asserts a timing.
Usage: python bench/floor.py [--rounds 3] [--seconds 5] [--secrets 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import ssl
import statistics
import sys
import tempfile
from pathlib import Path
from typing import cast

import uvloop
from secretpatch.webhook import certs

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vs_flyte
from bare_app import FIXED
from workload import serve_command, uvicorn_command

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(FIXED)


class FloorProtocol(asyncio.Protocol):
    """Answers each complete request with FIXED: no HTTP parsing beyond the length."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's TLS transport
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        self.pending += data
        while (end := self.pending.find(b"\r\n\r\n")) >= 0:
            head = self.pending[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.pending) < end + 4 + length:
                return
            self.pending = self.pending[end + 4 + length :]
            self.transport.write(HEAD + FIXED)


def serve_floor(cert_dir: Path, port: int) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_dir / "tls.crt", cert_dir / "tls.key")
    loop = uvloop.new_event_loop()
    loop.run_until_complete(loop.create_server(FloorProtocol, "127.0.0.1", port, ssl=context))
    loop.run_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--secrets", type=int, default=1, help="secrets per review (default 1)")
    parser.add_argument("--serve-floor", nargs=2, metavar=("CERT_DIR", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        serve_floor(Path(args.serve_floor[0]), int(args.serve_floor[1]))
        return
    if shutil.which("wrk") is None:
        print("skipped: wrk not found (apt-get install wrk; `make bench` installs it)")
        return

    cores = sorted(os.sched_getaffinity(0))
    taskset = shutil.which("taskset")
    server_core, wrk_core = cores[0], cores[-1]

    def pin(core: int) -> list[str]:
        return [taskset, "-c", str(core)] if taskset else []

    work = Path(tempfile.mkdtemp(prefix="floor-"))
    cert_dir = work / "certs"
    certs.write_files(certs.generate("secretpatch", "default", dev=True, days=1), cert_dir)
    source = vs_flyte.body_source(vs_flyte.realistic_pod(), args.secrets, "siblings", secrets.token_hex(3))
    bodies = vs_flyte.write_bodies(work / "bodies", source, vs_flyte.SIBLINGS)
    script = vs_flyte.lua_script(work, bodies, 0)
    commands = {
        "TLS floor": [sys.executable, __file__, "--serve-floor", str(cert_dir), "{port}"],
        "uvicorn": [*uvicorn_command("bare_app:fixed", "{port}", cert_dir), "--lifespan", "off"],
        "secretpatch": serve_command("{port}", cert_dir),
    }
    results: dict[tuple[str, int], list[vs_flyte.Served]] = {}
    print(
        f"{args.secrets} secret(s), siblings of one task; each server on core {server_core}, wrk on "
        f"core {wrk_core}; {args.rounds} round(s) of {args.seconds} s\n"
    )
    try:
        for round_ in range(args.rounds):
            names = list(commands) if round_ % 2 == 0 else list(reversed(commands))
            for name in names:
                server = vs_flyte.Server(
                    name.replace(" ", "-"), [*pin(server_core), *commands[name]], cert_dir
                )
                server.start()
                try:
                    vs_flyte.wait_idle(server.pid)
                    vs_flyte.run_wrk(server, 4, 1, script, pin(wrk_core))  # the memo learns the task
                    for connections in vs_flyte.CONCURRENCY:
                        vs_flyte.wait_idle(server.pid)
                        result = vs_flyte.run_wrk(server, connections, args.seconds, script, pin(wrk_core))
                        results.setdefault((name, connections), []).append(result)
                finally:
                    server.stop()
            sys.stdout.write(".")
            sys.stdout.flush()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n\n| server | conc. | CPU us per review | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for (name, connections), runs in results.items():
        print(
            f"| {name} | {connections} | {vs_flyte.cell([r.cpu for r in runs], ',.0f')} "
            f"| {vs_flyte.cell([r.p50 for r in runs], '.2f')} | {vs_flyte.cell([r.p99 for r in runs], '.2f')} "
            f"| {sum(r.errors for r in runs)} |"
        )
    for connections in vs_flyte.CONCURRENCY:
        cpu = {name: statistics.median(r.cpu for r in results[(name, connections)]) for name in commands}
        print(
            f"\nc={connections}: uvicorn adds {cpu['uvicorn'] - cpu['TLS floor']:,.0f} us to the TLS floor, "
            f"secretpatch {cpu['secretpatch'] - cpu['uvicorn']:,.0f} us to uvicorn"
        )


if __name__ == "__main__":
    main()
