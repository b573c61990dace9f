"""Pod start-up: the time from the pod's start to the moment its main container could start,
per-secret (Flyte: one init container per secret) against `fetch: batched` (one for all).

Each pod is the one the engine renders; its init containers run for real, as
tests/test_pod_starts.py runs them (tests/podstart/driver.py: `sh -ec` in a private mount
namespace, a memory filesystem at /etc/flyte/secrets, the stand-in gcloud of
tests/podstart/gcloud on PATH). Nothing here is a model: the shell lines, the waits and the
stand-in's sleeps are what is timed. The parameters, and where their defaults come from:

- --container-start (0.5 s): slept before each init container, the kubelet's cost of
  creating and starting one with its image already on the node. An assumption: Kubernetes
  publishes no per-container figure (its pod start-up SLO excludes init containers); vary it.
- --startup (0.8 s): slept by every gcloud call before it reads its arguments. Measured on
  this machine: SDK 528's `gcloud secrets versions access 1 --secret=foo --project=p`, which
  fails before any network call, took 0.75 to 0.84 s (`/usr/bin/time`), with 68 MB peak RSS.
- --latency (0.1 s): slept by every call that reaches the API (the token and the access
  call). An assumption; vary it.
- --names bare (the default): secrets named by ID, as in Flyte's examples. Flyte's line tries
  the full-name form first, which fails for a bare ID after gcloud has started, so each such
  secret costs two gcloud starts; `full` (projects/P/secrets/S) costs one.

CPU is not modelled: the stand-in sleeps where gcloud computes. Under a CPU limit the
concurrent starts of a batched fetch share it (docs/rules.md, "Sizing").

Prints, for each number of secrets, the median time of each mode over --repeats runs, and
each batched time as a ratio of batched with one secret (the issue's target: 10 secrets
within 1.5x of 1). Needs root and `unshare --mount`, as the pod-start tests do.
Usage: sudo python bench/podstart.py [--quick] [--secrets 1,5,10,20] [--concurrency 4,20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from secretpatch import Engine
from secretpatch.core.requests import encode_request

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "podstart"))
from harness import install_gcloud, run_plan

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "tests" / "podstart"
PROJECT = "bench-project"


def pod_for(count: int, names: str) -> dict[str, Any]:
    groups = [
        f"secret-{n}" if names == "bare" else f"projects/{PROJECT}/secrets/secret-{n}" for n in range(count)
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "bench",
            "labels": {"inject-flyte-secrets": "true"},
            "annotations": {
                f"flyte.secrets/s{n}": encode_request(f'group: "{g}"\ngroup_version: "1"\n')
                for n, g in enumerate(groups)
            },
        },
        "spec": {"containers": [{"name": "main", "image": "task:1"}]},
    }


def start(pod: dict[str, Any], folder: Path, args: argparse.Namespace) -> float:
    """Run the pod's init containers once; the seconds until the main container could start."""
    folder.mkdir(parents=True)
    store = {
        f"projects/{PROJECT}/secrets/secret-{n}": {"versions": {"1": f"value-{n}"}}
        for n in range(max(args.secrets))
    }
    (folder / "store.json").write_text(json.dumps(store))
    bin_dir = folder / "bin"
    install_gcloud(bin_dir)
    plan = {
        "mount_path": "/etc/flyte/secrets",
        "init_containers": pod["spec"]["initContainers"],
        "reads": [],
        "bin": str(bin_dir),
        "store": str(folder / "store.json"),
        "project": PROJECT,
        "container_start": args.container_start,
        "env": {"FAKE_GCLOUD_STARTUP": str(args.startup), "FAKE_GCLOUD_LATENCY": str(args.latency)},
    }
    done = run_plan(plan, folder, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"podstart: the driver failed: {done.stderr.strip()}")
    results = json.loads(done.stdout)
    failed = [init for init in results["init"] if init["code"] != 0]
    if failed:
        raise SystemExit(f"podstart: an init container failed: {failed[0]['stderr'].strip()}")
    return float(results["initialized"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--secrets", default="1,5,10,20", help="numbers of secrets per pod")
    parser.add_argument("--concurrency", default="4,20", help="fetchConcurrency values for batched")
    parser.add_argument("--container-start", type=float, default=0.5)
    parser.add_argument("--startup", type=float, default=0.8)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--names", choices=("bare", "full"), default="bare")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one run each")
    args = parser.parse_args()
    args.secrets = [int(n) for n in args.secrets.split(",")]
    concurrencies = [int(n) for n in args.concurrency.split(",")]
    repeats = 1 if args.quick else args.repeats
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        print("podstart: needs root and unshare (a private mount namespace per pod)", file=sys.stderr)
        return 2
    modes: list[tuple[str, dict[str, Any]]] = [("per-secret", {})]
    modes += [(f"batched x{k}", {"fetch": "batched", "fetchConcurrency": k}) for k in concurrencies]
    engines = {name: Engine.from_config({"secretpatch": {"values": {"gcp": gcp}}}) for name, gcp in modes}
    print(
        f"podstart: container start {args.container_start} s, gcloud start-up {args.startup} s, "
        f"API latency {args.latency} s, {args.names} names, median of {repeats}"
    )
    medians: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory(prefix="podstart-bench-") as scratch:
        os.chmod(scratch, 0o755)
        run = 0
        for count in args.secrets:
            for name, _ in modes:
                pod = engines[name].mutate(pod_for(count, args.names)).pod
                times = []
                for _ in range(repeats):
                    run += 1
                    times.append(start(pod, Path(scratch) / str(run), args))
                medians[(name, count)] = statistics.median(times)
    header = f"{'secrets':>8} | " + " | ".join(f"{name:>16}" for name, _ in modes)
    print(header)
    print("-" * len(header))
    for count in args.secrets:
        cells = []
        for name, _ in modes:
            seconds = medians[(name, count)]
            one = medians.get((name, 1))
            ratio = f" ({seconds / one:.2f}x)" if one and name != "per-secret" else ""
            cells.append(f"{seconds:7.2f} s{ratio:>8}")
        print(f"{count:>8} | " + " | ".join(f"{cell:>16}" for cell in cells))
    print("ratios: each batched time over the same mode with 1 secret (target: 10 secrets within 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
