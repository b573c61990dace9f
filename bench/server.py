"""Benchmark of the webhook over TLS with keep-alive, driven by wrk (Debian's package).

wrk sends the reviews of 64 pods of one task in turn (other names, env values, token-volume
suffix and uid; the same secrets and shape), with 1 and 10 secrets, at concurrency 1 and 32.
It measures reviews/s and p50/p99 latency of `secretpatch serve` (one worker) and, in the same run with the same
uvicorn settings, of a bare ASGI app that only parses and echoes the body (bench/bare_app.py).
wrk runs one thread, so each side has one of the machine's two cores. Both servers run for
the whole benchmark and are driven in turns, several rounds each, so that the machine's
drift affects both alike; the figures are the medians over the rounds.
Usage: python bench/server.py [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from secretpatch.webhook import certs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workload import (
    free_port,
    realistic_pod,
    review_for,
    run_wrk_script,
    sibling,
    start_server,
    start_webhook,
    uvicorn_command,
)

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {}
for i = 1, {count} do
  local f = io.open("{stem}-" .. i .. ".json", "rb")
  bodies[i] = f:read("*a")
  f:close()
end
local next_body = 0
function request()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), summary.errors.status + summary.errors.connect
    + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""
PODS = 64  # reviews of pods of one task, sent in turn


def start(kind: str, cert_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    if kind == "secretpatch":
        return start_webhook(cert_dir)
    port = free_port()
    command = uvicorn_command("bare_app:app", port, cert_dir)
    return start_server(command, port, cert_dir / "ca.crt"), port


def run_wrk(
    server: tuple[subprocess.Popen[bytes], int], connections: int, seconds: int, script: Path
) -> tuple[float, float, float, int, float]:
    """reviews/s, p50 and p99 in ms, errors, and the server's CPU microseconds per review
    (its review process included)."""
    process, port = server
    fields, cpu = run_wrk_script(
        f"https://127.0.0.1:{port}/mutate--v1-pod?timeout=10s", connections, seconds, script, pid=process.pid
    )
    requests, duration_us, p50, p99, errors = (int(x) for x in fields)
    return requests / (duration_us / 1e6), p50 / 1000, p99 / 1000, errors, cpu / max(requests, 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="duration of each wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per app and case (default 3)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/server.py needs wrk: apt-get install wrk (make bench does it)")
    work = Path(tempfile.mkdtemp(prefix="secretpatch-bench-"))
    certs.write_files(certs.generate("secretpatch", "default", dev=True, days=1), work / "certs")
    pod = realistic_pod()
    scripts = {}
    for count in (1, 10):
        body = review_for(pod, [f"secret-{i}" for i in range(count)])
        stem = work / f"review-{count}"
        for n in range(1, PODS + 1):
            Path(f"{stem}-{n}.json").write_bytes(sibling(body, n))
        scripts[count] = work / f"post-{count}.lua"
        scripts[count].write_text(LUA.replace("{stem}", str(stem)).replace("{count}", str(PODS)))
    print(
        f"secretpatch server benchmark: wrk, TLS, keep-alive, {args.seconds} s per run, "
        f"median of {args.rounds} rounds; latency in ms\n"
    )
    kinds = ("secretpatch", "bare ASGI echo")
    servers = {
        kind: start("secretpatch" if kind == "secretpatch" else "bare", work / "certs") for kind in kinds
    }
    runs: dict[tuple[str, int, int], list[tuple[float, float, float, int, float]]] = {}
    try:
        for count, script in scripts.items():
            for kind in kinds:
                run_wrk(servers[kind], 4, 1, script)  # warm-up: caches and page faults
            for connections in (1, 32):
                for round_ in range(args.rounds):
                    for kind in kinds if round_ % 2 == 0 else reversed(kinds):
                        result = run_wrk(servers[kind], connections, args.seconds, script)
                        runs.setdefault((kind, count, connections), []).append(result)
    finally:
        for process, _ in servers.values():
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    print("| app | secrets | concurrency | reviews/s | p50 | p99 | errors | server CPU per review (us) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    rates: dict[tuple[str, int, int], float] = {}
    cpus: dict[tuple[str, int, int], float] = {}
    for kind in kinds:
        for count in (1, 10):
            for connections in (1, 32):
                results = runs[(kind, count, connections)]
                rate = rates[(kind, count, connections)] = statistics.median(r[0] for r in results)
                p50 = statistics.median(r[1] for r in results)
                p99 = statistics.median(r[2] for r in results)
                errors = sum(r[3] for r in results)
                cpu = cpus[(kind, count, connections)] = statistics.median(r[4] for r in results)
                print(
                    f"| {kind} | {count} | {connections} | {rate:,.0f} | {p50:.2f} | {p99:.2f} | {errors} "
                    f"| {cpu:,.0f} |"
                )
    print()
    for count in (1, 10):
        for connections in (1, 32):
            share = rates[("secretpatch", count, connections)] / rates[("bare ASGI echo", count, connections)]
            spread = ", ".join(
                f"{ours[0] / bare[0]:.0%}"
                for ours, bare in zip(
                    runs[("secretpatch", count, connections)],
                    runs[("bare ASGI echo", count, connections)],
                    strict=True,
                )
            )
            cpu_share = (
                cpus[("bare ASGI echo", count, connections)] / cpus[("secretpatch", count, connections)]
            )
            # Busy near 100% means the server, not wrk, was the bottleneck.
            busy = ", ".join(
                f"{kind.split()[0]} {rates[(kind, count, connections)] * cpus[(kind, count, connections)] / 1e6:.0%}"
                for kind in kinds
            )
            print(
                f"{count} secret(s), concurrency {connections}: secretpatch serves {share:.0%} "
                f"of the bare app's reviews/s (round by round: {spread}); "
                f"by CPU per review, {cpu_share:.0%}; server CPU busy: {busy}"
            )
    print(json.dumps({"machine": f"{sys.platform}, Python {sys.version.split()[0]}"}))


if __name__ == "__main__":
    main()
