"""Benchmark of the webhook over TLS with keep-alive, driven by wrk (Debian's package).

For AdmissionReviews with 1 and 10 secrets, at concurrency 1 and 32, it measures reviews/s
and p50/p99 latency of `secretpatch serve` (one worker) and, in the same run with the same
uvicorn settings, of a bare ASGI app that only parses and echoes the body (bench/bare_app.py).
wrk runs one thread, so each side has one of the machine's two cores.
Usage: python bench/server.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from secretpatch import certs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workload import free_port, realistic_pod, review_for, start_server, start_webhook

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb")
wrk.body = f:read("*a")
f:close()
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), summary.errors.status + summary.errors.connect
    + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def start(kind: str, cert_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    if kind == "secretpatch":
        return start_webhook(cert_dir)
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "bare_app:app", "--host", "127.0.0.1", "--port", str(port),
        "--ssl-certfile", str(cert_dir / "tls.crt"), "--ssl-keyfile", str(cert_dir / "tls.key"),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
        "--app-dir", str(Path(__file__).resolve().parent),
    ]  # fmt: skip
    return start_server(command, port, cert_dir / "ca.crt"), port


def run_wrk(
    port: int, body_file: Path, connections: int, seconds: int, script: Path
) -> tuple[float, float, float, int]:
    output = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(script),
            f"https://127.0.0.1:{port}/mutate--v1-pod?timeout=10s",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    requests, duration_us, p50, p99, errors = (int(x) for x in line.split()[1:])
    return requests / (duration_us / 1e6), p50 / 1000, p99 / 1000, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="duration of each wrk run (default 5)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/server.py needs wrk: apt-get install wrk (make bench does it)")
    work = Path(tempfile.mkdtemp(prefix="secretpatch-bench-"))
    certs.write_files(certs.generate("secretpatch", "default", dev=True, days=1), work / "certs")
    pod = realistic_pod()
    bodies = {}
    for count in (1, 10):
        path = work / f"review-{count}.json"
        path.write_bytes(review_for(pod, [f"secret-{i}" for i in range(count)]))
        script = work / f"post-{count}.lua"
        script.write_text(LUA.replace("{body}", str(path)))
        bodies[count] = (path, script)
    print(f"secretpatch server benchmark: wrk, TLS, keep-alive, {args.seconds} s per run; latency in ms\n")
    print("| app | secrets | concurrency | reviews/s | p50 | p99 | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    results: dict[tuple[str, int, int], float] = {}
    for kind in ("secretpatch", "bare ASGI echo"):
        process, port = start("secretpatch" if kind == "secretpatch" else "bare", work / "certs")
        try:
            for count, (body, script) in bodies.items():
                run_wrk(port, body, 4, 1, script)  # warm-up: caches, JIT-free but page faults
                for connections in (1, 32):
                    rate, p50, p99, errors = run_wrk(port, body, connections, args.seconds, script)
                    results[(kind, count, connections)] = rate
                    print(
                        f"| {kind} | {count} | {connections} | {rate:,.0f} | {p50:.2f} | {p99:.2f} | {errors} |"
                    )
                    sys.stdout.flush()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    print()
    for count in (1, 10):
        for connections in (1, 32):
            share = (
                results[("secretpatch", count, connections)] / results[("bare ASGI echo", count, connections)]
            )
            print(
                f"{count} secret(s), concurrency {connections}: secretpatch serves {share:.0%} of the bare app's reviews/s"
            )
    print(json.dumps({"machine": f"{sys.platform}, Python {sys.version.split()[0]}"}))


if __name__ == "__main__":
    main()
