"""Benchmark of Engine.review against two baselines run in the same process.

- diff: what Flyte and controller-runtime do: deep-copy the pod, mutate it, and build the
  JSONPatch by diffing (here with jsonpatch.make_patch).
- floor: parse and serialise the same AdmissionReview, and nothing else.

Every measurement includes parsing the request body and serialising the answer, as a server
must. Three modes:

- cold: every secret has a name never seen before, so no cache helps;
- warm: pods of one task (the same secrets and shape; other names, env values, token-volume
  suffix and uid), so the review memo answers;
- new shape: the same secrets, but every pod has a shape the memo has not seen (another
  number of env variables), so the patch is composed from the decoded requests and
  rendered fragments the engine has cached.

The diff baseline has no cache of any kind: it decodes every annotation, as Flyte does.
Prints medians and p99s in microseconds and the ratios the targets are stated in.
Usage: python bench/engine.py [--quick]
"""

from __future__ import annotations

import argparse
import base64
import copy
import gc
import json
import platform
import posixpath
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonpatch
from secretpatch import Engine
from secretpatch.core.requests import decode_annotation, secret_annotations

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workload import realistic_pod, review_for, sibling

MOUNT = "/etc/flyte/secrets"
SHAPES = 50  # more than the memo keeps per request, so each new-shape pod is composed


def diff_baseline(body: bytes) -> bytes:
    """Deep copy, mutate as Flyte does, diff: the controller-runtime way."""
    review = json.loads(body)
    pod = review["request"]["object"]
    mutated = copy.deepcopy(pod)
    spec = mutated["spec"]
    annotations = sorted(
        secret_annotations(pod), key=lambda pair: int(pair[0].removeprefix("flyte.secrets/s"))
    )
    # Uncached (decode_annotation has no cache): the engine's cache must not help the baseline.
    for secret in (decode_annotation(name, value) for name, value in annotations):
        volumes = spec.setdefault("volumes", [])
        if not any(v["name"] == "gcp-secret-vol" for v in volumes):
            volumes.append({"name": "gcp-secret-vol", "emptyDir": {"medium": "Memory"}})
        inits = spec.setdefault("initContainers", [])
        secret_dir = posixpath.join(MOUNT, secret.group).lower()
        path = posixpath.join(secret_dir, secret.group_version).lower()
        line = (
            f"gcloud secrets versions access {secret.group}/versions/{secret.group_version} --out-file={path} || "
            f"gcloud secrets versions access {secret.group_version} --secret={secret.group} --out-file={path}; "
            f"chmod +rX {secret_dir} {path}"
        )
        inits.append(
            {
                "name": f"gcp-pull-secret-{len(inits)}",
                "image": "gcr.io/google.com/cloudsdktool/cloud-sdk:alpine",
                "command": ["sh", "-ec", line],
                "volumeMounts": [{"name": "gcp-secret-vol", "mountPath": MOUNT}],
                "resources": {
                    "requests": {"cpu": "200m", "memory": "500Mi"},
                    "limits": {"cpu": "200m", "memory": "500Mi"},
                },
            }
        )
        for container in inits + spec["containers"]:
            mounts = container.setdefault("volumeMounts", [])
            if not any(m["name"] == "gcp-secret-vol" for m in mounts):
                mounts.append({"name": "gcp-secret-vol", "readOnly": True, "mountPath": MOUNT})
        for name, value in (("FLYTE_SECRETS_DEFAULT_DIR", MOUNT), ("FLYTE_SECRETS_FILE_PREFIX", "")):
            for container in inits + spec["containers"]:
                env = container.setdefault("env", [])
                for i, var in enumerate(env):
                    if var["name"] == name:
                        del env[i]
                        break
                env.insert(0, {"name": name, "value": value})
    patch = jsonpatch.make_patch(pod, mutated).patch
    response = {
        "uid": review["request"]["uid"],
        "allowed": True,
        "patchType": "JSONPatch",
        "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
    }
    return json.dumps(
        {"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": response}
    ).encode()


def with_env(pod: dict[str, Any], extra: int) -> dict[str, Any]:
    """The pod with `extra` more env variables in its task container: another shape."""
    pod = copy.deepcopy(pod)
    pod["spec"]["containers"][0]["env"] += [{"name": f"EXTRA_{i}", "value": "x"} for i in range(extra)]
    return pod


def floor(body: bytes) -> bytes:
    return json.dumps(json.loads(body)).encode()


def measure(fns: list[Callable[[bytes], bytes]], bodies: list[bytes]) -> list[tuple[float, float]]:
    """Median and p99 of each function, interleaved body by body so that the machine's drift
    (this is a shared machine) affects every column alike. The cyclic GC is paused while
    timing; none of these functions creates cycles."""
    times: list[list[float]] = [[] for _ in fns]
    gc.collect()
    gc.disable()
    try:
        for body in bodies:
            for fn, bucket in zip(fns, times, strict=True):
                start = time.perf_counter_ns()
                fn(body)
                bucket.append((time.perf_counter_ns() - start) / 1000)
    finally:
        gc.enable()
    result = []
    for bucket in times:
        bucket.sort()
        result.append((statistics.median(bucket), bucket[min(len(bucket) - 1, int(len(bucket) * 0.99))]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    args = parser.parse_args()
    engine = Engine.from_config(None)
    pod = realistic_pod()

    def ours(body: bytes) -> bytes:
        return json.dumps(engine.review(json.loads(body))).encode()

    print(
        f"secretpatch engine benchmark: Python {platform.python_version()}, {platform.machine()}, review body ~{len(review_for(pod, ['x'])) // 1024} KiB"
    )
    print("times in microseconds, median / p99\n")
    header = "| secrets | mode | secretpatch | diff baseline | JSON floor | diff / secretpatch | secretpatch / floor |"
    print(header)
    print("|---:|---|---:|---:|---:|---:|---:|")
    serial = 0
    medians: dict[tuple[int, str], float] = {}
    for count in (1, 10, 100, 500):
        iterations = max(20 if count > 100 else 40, (60 if args.quick else 1000) // max(1, count // 10))
        for mode in ("cold", "warm", "new shape"):
            if mode == "cold":
                bodies = []
                for _ in range(iterations):
                    bodies.append(review_for(pod, [f"secret-{serial + i}" for i in range(count)]))
                    serial += count
            elif mode == "warm":
                body = review_for(pod, [f"warm-{i}" for i in range(count)])
                bodies = [sibling(body, i) for i in range(iterations)]
            else:
                names = [f"warm-{i}" for i in range(count)]
                shaped = [review_for(with_env(pod, extra), names) for extra in range(SHAPES)]
                bodies = [shaped[i % SHAPES] for i in range(iterations)]
            if mode != "cold":
                for fn in (ours, diff_baseline, floor):
                    for b in bodies[:10]:
                        fn(b)
            (ours_m, ours_p), (diff_m, diff_p), (floor_m, floor_p) = measure(
                [ours, diff_baseline, floor], bodies
            )
            medians[(count, mode)] = ours_m
            print(
                f"| {count} | {mode} | {ours_m:,.0f} / {ours_p:,.0f} | {diff_m:,.0f} / {diff_p:,.0f} | {floor_m:,.0f} / {floor_p:,.0f} "
                f"| {diff_m / ours_m:.1f}x | {ours_m / floor_m:.2f}x |"
            )
            sys.stdout.flush()
    for mode in ("cold", "warm", "new shape"):
        low = (medians[(10, mode)] - medians[(1, mode)]) / 9
        high = (medians[(100, mode)] - medians[(10, mode)]) / 90
        cap = (medians[(500, mode)] - medians[(100, mode)]) / 400
        print(
            f"\n{mode}: cost per added secret {low:,.1f} us (1 to 10 secrets), {high:,.1f} us (10 to 100), "
            f"{cap:,.1f} us (100 to 500, the maxSecrets cap)",
            end="",
        )
    print()


if __name__ == "__main__":
    main()
